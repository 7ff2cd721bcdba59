"""Purify image files: read frames from files or folders, write purified PNGs and a JSON record.

    records = purify_files(purifier, ["frames/"], "purified/")   # what ``edgeguard purify`` runs

The user's files are never touched: an output folder that is, or holds, an input is refused
before any work starts; every output name is unique and names its input (``x.png`` and
``x.bmp`` become ``x_png.png`` and ``x_bmp.png``); every file is written to a temporary name in its
folder and renamed into place, so an interrupted run leaves no half-written frame, and
``results.json`` is rewritten after every batch, so it lists exactly the frames written.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from edgeguard.data.images import IMAGE_SUFFIXES, read_image
from edgeguard.errors import InvalidArgumentError, InvalidInputError
from edgeguard.fileio import write_atomically


def image_files(paths: Sequence["str | Path"]) -> list[Path]:
    """The image files named by ``paths`` (files, or folders read in name order)."""
    files = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            files.append(p)
        else:
            raise InvalidInputError(f"{p} is neither an image file nor a folder")
    if not files:
        raise InvalidInputError("no image files found")
    return files


def read_frames(files: Sequence[Path], channels: int = 3) -> np.ndarray:
    """(N, H, W, channels) uint8 frames of one size from image files, RGB or grey
    (DataFormatError for one that cannot be read)."""
    frames = [read_image(f, channels) for f in files]
    shapes = {fr.shape for fr in frames}
    if len(shapes) > 1:
        raise InvalidInputError(f"frames must share one size, got {sorted(shapes)}")
    return np.stack(frames)


def output_names(files: Sequence[Path]) -> list[str]:
    """One unique PNG name per input: its stem, then its extension, then its folder, then its
    position, as far as needed to tell it apart from the others.

    >>> output_names([Path("a/x.png"), Path("a/x.bmp"), Path("b/x.png"), Path("a/y.jpg")])
    ['a_x_png.png', 'x_bmp.png', 'b_x_png.png', 'y.png']
    """
    def name(f: Path, detail: int, i: int) -> str:
        parts = [f.stem]
        if detail >= 1:
            parts.append(f.suffix.lstrip(".").lower())
        if detail >= 2:
            parts.insert(0, f.parent.name)
        if detail >= 3:
            parts.insert(0, f"{i:05d}")
        return "_".join(p for p in parts if p) + ".png"

    detail = [0] * len(files)
    while True:
        names = [name(f, d, i) for i, (f, d) in enumerate(zip(files, detail))]
        seen: dict[str, list[int]] = {}
        for i, n in enumerate(names):
            seen.setdefault(n, []).append(i)
        clashes = [i for group in seen.values() if len(group) > 1 for i in group]
        if not clashes:
            return names
        for i in clashes:
            detail[i] += 1


def check_output_folder(out: Path, files: Sequence[Path]) -> None:
    """Refuse an output folder that is, or contains, an input's folder."""
    out = out.resolve()
    for f in files:
        folder = f.resolve().parent
        if folder == out or out in folder.parents:
            raise InvalidArgumentError(f"output folder {out} holds the input {f}: purified frames would land among "
                                       "(or overwrite) the originals; choose another --out")


def purify_files(purifier, paths: Sequence["str | Path"], out: "str | Path", batch: int = 32,
                 report: Optional[Callable[[str], None]] = None) -> list[dict]:
    """Purify the image files named by ``paths`` in batches of ``batch``; write one PNG per
    frame and ``results.json`` (one record per frame: input, output, answers, whether the answer
    changed, the stage-1 flip share, the restored share, engine calls, ms) into ``out``.
    ``report`` gets one line per batch (default: stderr). Returns the records."""
    from PIL import Image

    if batch < 1:
        raise InvalidArgumentError(f"batch must be >= 1, got {batch}")
    files = image_files(paths)
    out = Path(out)
    check_output_folder(out, files)
    spec = getattr(getattr(purifier, "model", None), "spec", None)
    frames = read_frames(files, channels=spec.input_shape[0] if spec is not None else 3)  # grey stays grey
    names = output_names(files)
    out.mkdir(parents=True, exist_ok=True)
    report = report or (lambda line: print(line, file=sys.stderr))
    records = []
    for start in range(0, len(frames), batch):
        result = purifier(frames[start:start + batch])
        for i, (f, name) in enumerate(zip(files[start:start + batch], names[start:start + batch])):
            image = result.purified[i]
            image = image[..., 0] if image.shape[-1] == 1 else image  # PIL takes grey as (H, W)
            write_atomically(out / name, lambda tmp, image=image: Image.fromarray(image).save(tmp, "PNG"))
            records.append({"file": str(f), "purified": str(out / name),
                            "prediction": np.asarray(result.prediction[i]).tolist(),
                            "original_prediction": np.asarray(result.original_prediction[i]).tolist(),
                            "changed": bool(result.changed[i]),
                            "flip_share": float(result.flip_share[i]),
                            "restored_fraction": float(result.pixel_mask[i].mean()),
                            "model_calls": result.model_calls, "restorer_calls": result.restorer_calls,
                            "ms": round(1e3 * result.seconds / len(result), 2)})
        # After every batch, so an interrupted run leaves a record of each frame it wrote.
        write_atomically(out / "results.json", lambda tmp: tmp.write_text(json.dumps(records, indent=2)))
        report(str(result))
    return records
