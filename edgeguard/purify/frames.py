"""Frames and tokens: the two layouts the purifier takes, and BDMAE's pixel-to-token map.

The map is the one the MAE restorer composites with (edgeguard.models.mae, pinned to this
one by tests/test_mae.py), so a token mask means the same pixels on both sides.

    >>> pixel_token_map(4, 4, size=8, patch=4)  # a 4x4 frame on an 8-px MAE of 2x2 tokens
    array([[0, 0, 1, 1],
           [0, 0, 1, 1],
           [2, 2, 3, 3],
           [2, 2, 3, 3]])
"""
from __future__ import annotations

import functools

import numpy as np

from edgeguard.data.dataset import to_float_nchw, to_uint8_nhwc
from edgeguard.errors import InvalidArgumentError, InvalidInputError


def as_nchw(frames: np.ndarray) -> tuple[np.ndarray, str]:
    """Frames in either layout -> (N, C, H, W) float32 in [0, 1] and the layout tag."""
    try:
        x = np.asarray(frames)
    except (ValueError, TypeError) as exc:  # ragged nested lists and the like
        raise InvalidInputError(f"frames must be an array, got {type(frames).__name__} ({exc})") from exc
    if x.dtype == np.uint8:
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4 or x.shape[-1] not in (1, 3):
            raise InvalidInputError(f"uint8 frames must be (N, H, W, C) or (H, W, C) with C 1 or 3, got {x.shape}")
        return to_float_nchw(x), "uint8"
    if not np.issubdtype(x.dtype, np.floating):
        raise InvalidInputError(f"frames must be uint8 (N, H, W, C) or float (N, C, H, W), got dtype {x.dtype}")
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise InvalidInputError(f"float frames must be (N, C, H, W) or (C, H, W) with C 1 or 3, got {x.shape}")
    if x.size == 0:
        raise InvalidInputError(f"frames are empty: shape {x.shape}")
    if not np.isfinite(x).all() or x.min() < -1e-3 or x.max() > 1 + 1e-3:
        raise InvalidInputError("float frames must be finite and in [0, 1]")
    return np.ascontiguousarray(x, dtype=np.float32), "float"


def from_nchw(x: np.ndarray, layout: str) -> np.ndarray:
    """(N, C, H, W) float frames back to the layout ``as_nchw`` read them in."""
    return to_uint8_nhwc(x) if layout == "uint8" else x


def token_grid_of(restorer) -> tuple[int, int, int]:
    """(tokens per side G, MAE input size S, patch size P) from an engine's ModelSpec (or, for
    files exported before it, the single metadata keys)."""
    spec = getattr(restorer, "spec", None)
    if spec is not None and spec.role == "restorer":
        return spec.token_grid, spec.mae_img_size, spec.patch_size
    meta = getattr(restorer, "metadata", {}) or {}
    try:
        size, patch = int(meta["mae_img_size"]), int(meta["mae_patch_size"])
    except (KeyError, ValueError):
        raise InvalidArgumentError(
            f"{restorer!r} does not say its token grid: export the restorer with "
            "edgeguard.deploy.export_restorer or pass an MAE module") from None
    return size // patch, size, patch


@functools.lru_cache(maxsize=16)
def pixel_token_map(h: int, w: int, size: int, patch: int) -> np.ndarray:
    """(h, w) int: the token each pixel belongs to under BDMAE's nearest resize (read-only,
    cached: a video asks for the same map every frame)."""
    def axis(n: int) -> np.ndarray:
        scaled = np.floor(np.arange(n) * np.float32(size / n)).astype(np.int64)
        return np.minimum(scaled, size - 1) // patch
    grid = size // patch
    tokens = axis(h)[:, None] * grid + axis(w)[None, :]
    tokens.flags.writeable = False
    return tokens
