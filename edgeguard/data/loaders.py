"""Loaders for real datasets on disk: CIFAR-10 python batches, ImageFolder/GTSRB, .npz.

Every loader returns an ``ImageDataset`` and raises ``DataFormatError`` naming the file and
what was expected when something is missing or corrupt. Nothing is downloaded.
"""
from __future__ import annotations

import csv
import pickle
from pathlib import Path
from typing import Union

import numpy as np

from edgeguard.data.dataset import ImageDataset
from edgeguard.data.images import IMAGE_SUFFIXES, read_image
from edgeguard.errors import DataFormatError, EdgeGuardError, InvalidArgumentError

PathLike = Union[str, Path]

_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_TEST = ("test_batch",)
_GTSRB_COLUMNS = ("Filename", "Roi.X1", "Roi.Y1", "Roi.X2", "Roi.Y2", "ClassId")


# --- CIFAR-10 ---


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only, so a crafted file cannot run code."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"), ("builtins", "bytearray"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict:
    if not path.is_file():
        raise DataFormatError(f"{path}: file not found (expected a CIFAR-10 python batch)")
    try:
        with open(path, "rb") as f:
            obj = _ArrayUnpickler(f, encoding="bytes").load()
    except Exception as exc:  # any parse failure means a corrupt or foreign file
        raise DataFormatError(f"{path}: not a readable CIFAR-10 pickle ({exc})") from exc
    if not isinstance(obj, dict):
        raise DataFormatError(f"{path}: expected a pickled dict, got {type(obj).__name__}")
    # Python-2 pickles have bytes keys, pickles written by Python 3 may have str keys.
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _cifar_dir(root: Path) -> Path:
    for candidate in (root, root / "cifar-10-batches-py"):
        if (candidate / "batches.meta").is_file() or (candidate / "test_batch").is_file():
            return candidate
    raise DataFormatError(
        f"{root}: no CIFAR-10 batches found (expected data_batch_1..5, test_batch and batches.meta "
        f"in this folder or in {root / 'cifar-10-batches-py'})"
    )


def load_cifar10(root: PathLike, split: str = "train") -> ImageDataset:
    """CIFAR-10 from its "python version" batches.

    Args:
        root: the ``cifar-10-batches-py`` folder or its parent.
        split: "train" (data_batch_1..5) or "test" (test_batch).

    Returns:
        ImageDataset: images (N, 32, 32, 3) uint8, labels (N,) int64, class names from
        batches.meta (``class0``.. if it is absent), name "cifar10-<split>".
    """
    if split not in ("train", "test"):
        raise InvalidArgumentError(f"split must be 'train' or 'test', got {split!r}")
    folder = _cifar_dir(Path(root))
    images, labels = [], []
    for name in _CIFAR_TRAIN if split == "train" else _CIFAR_TEST:
        path = folder / name
        batch = _unpickle(path)
        if "data" not in batch or "labels" not in batch:
            raise DataFormatError(f"{path}: expected keys b'data' and b'labels', found {sorted(batch)}")
        data = np.asarray(batch["data"])
        batch_labels = np.asarray(batch["labels"])
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            raise DataFormatError(f"{path}: b'data' must be (N, 3072) uint8, got {data.shape} {data.dtype}")
        if batch_labels.shape != (len(data),) or not np.issubdtype(batch_labels.dtype, np.integer):
            raise DataFormatError(f"{path}: b'labels' must be {len(data)} integers, got shape {batch_labels.shape}")
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(batch_labels.astype(np.int64))
    labels_all = np.concatenate(labels)
    class_names = tuple(f"class{i}" for i in range(10))
    meta_path = folder / "batches.meta"
    if meta_path.is_file():
        meta = _unpickle(meta_path)
        names = meta.get("label_names")
        if not isinstance(names, list) or not names:
            raise DataFormatError(f"{meta_path}: expected a non-empty list under b'label_names'")
        class_names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
    if labels_all.size and (labels_all.min() < 0 or labels_all.max() >= len(class_names)):
        raise DataFormatError(f"{folder}: labels must lie in [0, {len(class_names)}), got {labels_all.min()}..{labels_all.max()}")
    return ImageDataset(np.ascontiguousarray(np.concatenate(images)), labels_all, "classification",
                        class_names, f"cifar10-{split}")


# --- ImageFolder / GTSRB ---


def _read_gtsrb_csv(path: Path) -> list[tuple[str, tuple[int, int, int, int], int]]:
    """Rows (filename, ROI box (x1, y1, x2 + 1, y2 + 1), class id) of a GTSRB annotation file."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f, delimiter=";"))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataFormatError(f"{path}: cannot read GTSRB annotations ({exc})") from exc
    if not rows or any(c not in rows[0] for c in _GTSRB_COLUMNS):
        raise DataFormatError(
            f"{path}: expected a ';'-separated header with {', '.join(_GTSRB_COLUMNS)} and at least one row"
        )
    out = []
    for i, row in enumerate(rows, start=2):
        try:
            x1, y1, x2, y2 = (int(row[c]) for c in ("Roi.X1", "Roi.Y1", "Roi.X2", "Roi.Y2"))
            out.append((row["Filename"], (x1, y1, x2 + 1, y2 + 1), int(row["ClassId"])))
        except (TypeError, ValueError) as exc:
            raise DataFormatError(f"{path}, line {i}: ROI and ClassId must be integers ({exc})") from exc
    return out


def _inside(folder: Path, name: str, listed_in: Path) -> Path:
    """``folder / name``, refused when an annotation names a file outside ``folder`` (an
    absolute path, ``..``, or a link leading out): a dataset must not read other files."""
    path = folder / name
    if Path(name).is_absolute() or not path.resolve().is_relative_to(folder.resolve()):
        raise DataFormatError(f"{listed_in}: Filename {name!r} points outside {folder}; annotations may only "
                              "name files in their own folder")
    return path


def _gtsrb_root(root: Path) -> Path:
    """Descend from a GTSRB archive root to the folder holding the class folders."""
    for sub in ("Final_Training/Images", "GTSRB/Final_Training/Images", "Images"):
        if (root / sub).is_dir():
            return root / sub
    return root


def load_image_folder(root: PathLike, size: int = 32) -> ImageDataset:
    """Images in one sub-folder per class (ImageFolder) or in the GTSRB training layout.

    Class ids follow the sorted folder names. When a class folder holds a GTSRB annotation
    file (``GT-*.csv``: Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId), only the
    files it lists are read, each cropped to its ROI and labelled with its ClassId.

    Args:
        root: the folder of class folders (for GTSRB, ``Final_Training/Images`` or a parent).
        size: output side; images are converted to RGB and resized to size x size.

    Returns:
        ImageDataset: images (N, size, size, 3) uint8, labels (N,) int64, class names = folder
        names, name = the folder's name.
    """
    if size < 1:
        raise InvalidArgumentError(f"size must be >= 1, got {size}")
    root = Path(root)
    if not root.is_dir():
        raise DataFormatError(f"{root}: folder not found (expected one sub-folder of images per class)")
    folder = _gtsrb_root(root)
    class_dirs = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not class_dirs:
        raise DataFormatError(f"{folder}: no class sub-folders (expected <root>/<class name>/<image files>)")
    images, labels = [], []
    for class_id, class_dir in enumerate(class_dirs):
        annotations = sorted(class_dir.glob("GT-*.csv"))
        if annotations:
            for filename, box, label in _read_gtsrb_csv(annotations[0]):
                images.append(read_image(_inside(class_dir, filename, annotations[0]), box=box, size=size))
                labels.append(label)
        else:
            for path in sorted(p for p in class_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
                images.append(read_image(path, size=size))
                labels.append(class_id)
    if not images:
        raise DataFormatError(f"{folder}: class folders hold no images ({', '.join(IMAGE_SUFFIXES)})")
    labels_arr = np.asarray(labels, dtype=np.int64)
    class_names = [d.name for d in class_dirs]
    if labels_arr.max() >= len(class_names):  # GTSRB ClassIds beyond the folders present
        class_names += [f"{i:05d}" for i in range(len(class_names), int(labels_arr.max()) + 1)]
    return ImageDataset(np.stack(images), labels_arr, "classification", class_names, root.name or "images")


# --- npz ---


def save_npz(dataset: ImageDataset, path: PathLike) -> Path:
    """Write a dataset to a compressed .npz (keys images, labels, output, class_names, name)."""
    path = Path(path)
    np.savez_compressed(
        path,
        images=dataset.images,
        labels=dataset.labels,
        output=np.array(dataset.output.value),
        class_names=np.array(list(dataset.class_names), dtype=str),
        name=np.array(dataset.name),
    )
    return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")


def load_npz(path: PathLike) -> ImageDataset:
    """Read a dataset written by ``save_npz``; the file is validated, never unpickled."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: file not found (expected an .npz written by save_npz)")
    try:
        with np.load(path, allow_pickle=False) as z:
            kind_key = "output" if "output" in z.files else "task"  # "task": files written by 0.1
            missing = {"images", "labels", kind_key} - set(z.files)
            if missing:
                raise DataFormatError(f"{path}: missing keys {sorted(missing)} (expected images, labels, output, "
                                      "class_names, name)")
            images, labels, output = z["images"], z["labels"], str(z[kind_key])
            class_names = tuple(str(c) for c in z["class_names"]) if "class_names" in z.files else ()
            name = str(z["name"]) if "name" in z.files else path.stem
    except DataFormatError:
        raise
    except Exception as exc:  # zip/format errors, object arrays refused by allow_pickle=False
        raise DataFormatError(f"{path}: not a readable .npz dataset ({exc})") from exc
    if output == "classification" and not np.issubdtype(labels.dtype, np.integer):
        raise DataFormatError(f"{path}: classification labels must be integers, got {labels.dtype}")
    if output == "regression" and not np.issubdtype(labels.dtype, np.floating):
        raise DataFormatError(f"{path}: regression labels must be floats, got {labels.dtype}")
    try:
        return ImageDataset(images, labels, output, class_names, name)
    except EdgeGuardError as exc:
        raise DataFormatError(f"{path}: {exc}") from exc


# --- dispatch ---


def load_images(path: PathLike, size: int = 32, split: str = "train") -> np.ndarray:
    """(N, H, W, C) uint8 images only, for work that needs no labels (fine-tuning a restorer):
    an .npz with an ``images`` array (labels optional), or whatever ``load_dataset`` reads."""
    path = Path(path)
    if not (path.is_file() and path.suffix == ".npz"):
        return load_dataset(path, size, split).images
    try:
        with np.load(path, allow_pickle=False) as z:
            if "images" not in z.files:
                raise DataFormatError(f"{path}: no 'images' array (found {sorted(z.files)})")
            images = z["images"]
    except DataFormatError:
        raise
    except Exception as exc:  # zip/format errors, object arrays refused by allow_pickle=False
        raise DataFormatError(f"{path}: not a readable .npz ({exc})") from exc
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3) or not len(images):
        raise DataFormatError(f"{path}: images must be (N, H, W, C) uint8 with C 1 or 3, got {images.shape} {images.dtype}")
    return images


def load_dataset(path: PathLike, size: int = 32, split: str = "train") -> ImageDataset:
    """Load whatever dataset ``path`` holds: an .npz file, CIFAR-10 batches or an image folder.

    ``split`` applies to CIFAR-10 only; ``size`` to image folders only.
    """
    path = Path(path)
    if path.is_file():
        if path.suffix == ".npz":
            return load_npz(path)
        raise DataFormatError(f"{path}: unknown dataset file (expected .npz, a CIFAR-10 folder or an image folder)")
    if not path.is_dir():
        raise DataFormatError(f"{path}: no such file or folder")
    try:
        _cifar_dir(path)
    except DataFormatError:
        return load_image_folder(path, size)
    return load_cifar10(path, split)
