"""Trigger stamping on raw pixels: the functional core the attack classes wrap.

All functions take and return (N, H, W, C) uint8 images, compute in float, round and clip,
as BackdoorBench applies triggers before augmentation.
"""
from __future__ import annotations

import functools

import numpy as np

# BDMAE's 3x3 colour patch (cifar10_3by3_color.npy), rows 16-18, cols 27-29 of a 32x32 image.
BDMAE_COLOR_PATCH = np.array(
    [
        [(214, 240, 47), (176, 208, 235), (249, 73, 252)],
        [(0, 9, 236), (253, 75, 134), (106, 104, 78)],
        [(18, 113, 236), (68, 62, 205), (125, 62, 29)],
    ],
    dtype=np.uint8,
)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def match_channels(pattern: np.ndarray, channels: int) -> np.ndarray:
    """(h, w, 3) or (h, w, 1) pattern -> (h, w, channels); RGB -> grey uses luminance."""
    if pattern.shape[-1] == channels:
        return pattern
    if channels == 1:
        grey = pattern.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return _to_uint8(grey)[..., None]
    return np.repeat(pattern, channels, axis=-1)


def stamp(images: np.ndarray, pattern: np.ndarray, top: int, left: int) -> np.ndarray:
    """Replace the pixels under a (h, w, C) pattern placed at (top, left)."""
    out = images.copy()
    h, w = pattern.shape[:2]
    out[:, top : top + h, left : left + w] = match_channels(pattern, images.shape[-1])
    return out


def blend(images: np.ndarray, trigger: np.ndarray, alpha: np.ndarray | float) -> np.ndarray:
    """x' = (1 - alpha) x + alpha t, with t (H, W, C) and alpha a scalar or (H, W, 1) map."""
    t = match_channels(trigger, images.shape[-1]).astype(np.float32)
    return _to_uint8((1.0 - alpha) * images.astype(np.float32) + alpha * t)


def add(images: np.ndarray, signal: np.ndarray) -> np.ndarray:
    """x' = clip(x + s) for a signal s broadcastable to (N, H, W, C), in 0..255 units."""
    return _to_uint8(images.astype(np.float32) + signal)


def sinusoid(height: int, width: int, delta: float = 40.0, frequency: float = 6.0) -> np.ndarray:
    """SIG's horizontal signal v(i, j) = delta sin(2 pi j f / W), shape (H, W, 1)."""
    v = delta * np.sin(2.0 * np.pi * np.arange(width) * frequency / width)
    return np.broadcast_to(v[None, :, None], (height, width, 1)).astype(np.float32)


def checkerboard(size: int = 3) -> np.ndarray:
    """A (size, size, 1) black/white checkerboard with white corners (0/255)."""
    i, j = np.indices((size, size))
    return (((i + j) % 2 == 0) * 255).astype(np.uint8)[..., None]


@functools.lru_cache(maxsize=8)
def resized_photo(name: str, height: int, width: int) -> np.ndarray:
    """A scikit-image sample photo resized to (height, width, 3) uint8 (bilinear)."""
    from PIL import Image
    import skimage.data

    photo = getattr(skimage.data, name)()
    if photo.ndim == 2:
        photo = np.repeat(photo[..., None], 3, axis=-1)
    return np.asarray(Image.fromarray(photo[..., :3]).resize((width, height), Image.BILINEAR))


def noise_pattern(height: int, width: int, channels: int, seed: int) -> np.ndarray:
    """A fixed uniform-noise (height, width, channels) uint8 pattern."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)
