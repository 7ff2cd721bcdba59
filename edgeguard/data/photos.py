"""The real-photo pool: photos that ship inside scikit-image and scikit-learn.

Nothing is downloaded: only image files present in the installed packages are read
(scikit-image fetches some of its ``skimage.data`` images on first use; those are not used).
The crops serve as generic data for MAE pre-training and as backgrounds for SynthSigns.
"""
from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Optional

import numpy as np

from edgeguard.errors import InvalidArgumentError

# Natural photos among the files bundled with scikit-image (synthetic test patterns,
# silhouettes and tiny images are left out).
_SKIMAGE_PHOTOS = (
    "astronaut.png", "brick.png", "camera.png", "cell.png", "chelsea.png", "clock_motion.png",
    "coffee.png", "coins.png", "grass.png", "gravel.png", "hubble_deep_field.jpg", "ihc.png",
    "moon.png", "motorcycle_left.png", "motorcycle_right.png", "page.png", "retina.jpg",
    "rocket.jpg", "text.png",
)
_SKLEARN_PHOTOS = ("china.jpg", "flower.jpg")

# Fraction of each photo's width given to the "train" split; "test" gets the rest.
_TRAIN_FRACTION = 0.8


def _package_dir(package: str) -> Optional[Path]:
    """Folder of an installed package, found without importing it (None if not installed)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _photo_files() -> list[Path]:
    files = []
    skimage_dir = _package_dir("skimage")
    if skimage_dir is not None:
        files += [skimage_dir / "data" / name for name in _SKIMAGE_PHOTOS]
    sklearn_dir = _package_dir("sklearn")
    if sklearn_dir is not None:
        files += [sklearn_dir / "datasets" / "images" / name for name in _SKLEARN_PHOTOS]
    return [f for f in files if f.is_file()]


@functools.lru_cache(maxsize=1)
def _photo_tuple() -> tuple[np.ndarray, ...]:
    from PIL import Image

    photos = []
    for path in _photo_files():
        with Image.open(path) as im:
            photo = np.asarray(im.convert("RGB"), dtype=np.uint8)
        photo.setflags(write=False)
        photos.append(photo)
    if not photos:
        raise InvalidArgumentError(
            "no photos found: the photo pool needs scikit-image (pip install scikit-image)"
        )
    return tuple(photos)


def photo_pool() -> list[np.ndarray]:
    """The bundled photos, each (H, W, 3) uint8 RGB (grey photos replicated to 3 channels).

    Loaded once per process; the arrays are read-only and shared between calls.
    """
    return list(_photo_tuple())


@functools.lru_cache(maxsize=1)
def _pyramids() -> tuple[np.ndarray, np.ndarray]:
    """All photos and their 2x box-filtered mip levels, flattened into one buffer.

    Returns ``(buffer, table)``: buffer is (P,) uint32, each an RGBA uint8 pixel packed for
    fast gathers; table[photo, level] holds (offset, height, width) of that level inside
    buffer, zeros where the level does not exist.
    """
    photos = _photo_tuple()
    levels_per_photo = []
    for photo in photos:
        level = photo.astype(np.float32)
        levels = [level]
        while min(level.shape[:2]) >= 32:
            h, w = level.shape[0] // 2 * 2, level.shape[1] // 2 * 2
            level = level[:h, :w].reshape(h // 2, 2, w // 2, 2, 3).mean(axis=(1, 3))
            levels.append(level)
        levels_per_photo.append(levels)
    max_levels = max(len(levels) for levels in levels_per_photo)
    table = np.zeros((len(photos), max_levels, 3), dtype=np.int64)
    chunks, offset = [], 0
    for p, levels in enumerate(levels_per_photo):
        for k, level in enumerate(levels):
            table[p, k] = (offset, level.shape[0], level.shape[1])
            rgba = np.zeros((level.shape[0] * level.shape[1], 4), dtype=np.uint8)
            rgba[:, :3] = np.clip(level.reshape(-1, 3) + 0.5, 0, 255)
            chunks.append(rgba.view(np.uint32).ravel())
            offset += level.shape[0] * level.shape[1]
    return np.concatenate(chunks), table


def _split_columns(width: np.ndarray, split: Optional[str]) -> tuple[np.ndarray, np.ndarray]:
    """First column and number of columns of each photo that a split may use."""
    cut = np.floor(width * _TRAIN_FRACTION).astype(np.int64)
    if split is None:
        return np.zeros_like(width), width
    if split == "train":
        return np.zeros_like(width), cut
    if split == "test":
        return cut, width - cut
    raise InvalidArgumentError(f"split must be None, 'train' or 'test', got {split!r}")


def random_crops(
    n: int,
    size: int,
    seed: int | np.random.Generator = 0,
    scale: tuple[float, float] = (0.1, 1.0),
    split: Optional[str] = None,
) -> np.ndarray:
    """Random square crops of the photo pool, resized to ``size`` x ``size``.

    Each crop takes a random photo, a side of ``U(scale) * shorter side`` of the usable
    region, a random position and a random horizontal flip; downscaling is anti-aliased
    (bilinear sampling from a 2x mip pyramid).

    Args:
        n: number of crops.
        size: output side in pixels.
        seed: an int seed or a numpy Generator.
        scale: (low, high) crop side as a fraction of the shorter side, 0 < low <= high <= 1.
        split: None (whole photos), "train" (left 80% of every photo) or "test" (right 20%),
            so that training and evaluation crops never share pixels.

    Returns:
        (n, size, size, 3) uint8.
    """
    if n < 0 or size < 1:
        raise InvalidArgumentError(f"need n >= 0 and size >= 1, got n={n}, size={size}")
    low, high = scale
    if not 0.0 < low <= high <= 1.0:
        raise InvalidArgumentError(f"scale must satisfy 0 < low <= high <= 1, got {scale}")
    rng = np.random.default_rng(seed)
    buffer, table = _pyramids()
    num_photos = table.shape[0]

    photo = rng.integers(0, num_photos, n)
    height, width = table[photo, 0, 1], table[photo, 0, 2]
    col0, cols = _split_columns(width, split)
    side = rng.uniform(low, high, n) * np.minimum(height, cols)
    side = np.maximum(side, 1.0)
    top = rng.uniform(0.0, 1.0, n) * (height - side)
    left = col0 + rng.uniform(0.0, 1.0, n) * (cols - side)
    flip = rng.random(n) < 0.5

    step = side / size  # source pixels per output pixel at level 0
    level = np.floor(np.log2(np.maximum(step, 1.0))).astype(np.int64)
    # Only use levels that exist for this photo.
    level = np.minimum(level, (table[photo, :, 1] > 0).sum(axis=1) - 1)
    factor = 2.0 ** level
    offset, lh, lw = (table[photo, level, j] for j in range(3))

    out = np.empty((n, size, size, 3), dtype=np.uint8)
    grid = np.arange(size, dtype=np.float64) + 0.5
    chunk = max(1, 131072 // (size * size))
    for start in range(0, n, chunk):
        sl = slice(start, min(n, start + chunk))
        k = sl.stop - sl.start
        g = np.where(flip[sl, None], grid[::-1], grid)
        # Output pixel centre -> level-0 coordinate -> level coordinate (pixel-centre convention).
        ys = (top[sl, None] + grid * step[sl, None]) / factor[sl, None] - 0.5
        xs = (left[sl, None] + g * step[sl, None]) / factor[sl, None] - 0.5
        ys = np.clip(ys, 0.0, lh[sl, None] - 1.0)
        xs = np.clip(xs, 0.0, lw[sl, None] - 1.0)
        y0 = np.minimum(ys.astype(np.int64), lh[sl, None] - 2).clip(0)
        x0 = np.minimum(xs.astype(np.int64), lw[sl, None] - 2).clip(0)
        wy = (ys - y0).astype(np.float32)[:, :, None, None]
        wx = (xs - x0).astype(np.float32)[:, None, :, None]
        base = offset[sl, None, None] + y0[:, :, None] * lw[sl, None, None] + x0[:, None, :]
        stride = lw[sl, None, None]
        p00, p01, p10, p11 = (
            np.take(buffer, base + d).view(np.uint8).reshape(k, size, size, 4).astype(np.float32)
            for d in (0, 1, stride, stride + 1)
        )
        top_row = p00 + (p01 - p00) * wx
        bottom_row = p10 + (p11 - p10) * wx
        crop = top_row + (bottom_row - top_row) * wy
        out[sl] = (crop[..., :3] + 0.5).astype(np.uint8)
    return out
