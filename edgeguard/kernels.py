"""Compiled image kernels (numpy in, numpy out, no torch): SSIM maps and per-token SSIM.

SSIM is Wang et al. (2004) as skimage computes it with ``structural_similarity(...,
gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0)``: an
11x11 Gaussian window (sigma 1.5), C1 = 0.01**2, C2 = 0.03**2 (images on the [0, 1]
scale), population moments, per-channel maps averaged over channels. Results are
float32 with double-precision internals (within ~1e-7 of skimage run in float64).

Border policy near the image edges:
  ``"reflect"`` (default): scipy's half-sample symmetric mode (d c b a | a b c d), the one
  skimage uses, so the full map equals skimage's everywhere.
  ``"replicate"``: edge pixels repeated, as the official BDMAE code pads.

The implementation is csrc/ssim.c (OpenMP across images when built with it); its header
csrc/ssim.h has the details.
"""
from __future__ import annotations

import numbers

import numpy as np

from edgeguard.errors import InvalidArgumentError, InvalidInputError, MissingDependencyError

try:
    from edgeguard import _kernels

    _IMPORT_ERROR = None
except ImportError as exc:  # extension not compiled
    _kernels, _IMPORT_ERROR = None, exc

MODES = ("mean", "point")
BORDERS = ("reflect", "replicate")


def _ext():
    if _kernels is None:
        raise MissingDependencyError(
            "edgeguard's compiled kernels (edgeguard._kernels) are not built: run "
            "`pip install --no-build-isolation -e .` in the edgeguard source tree"
        ) from _IMPORT_ERROR
    return _kernels


def _images(a, b) -> tuple[np.ndarray, np.ndarray]:
    """Validates an image pair; returns C-contiguous float32 arrays of equal shape."""
    out = []
    for name, x in (("a", a), ("b", b)):
        x = np.asarray(x)
        if not np.issubdtype(x.dtype, np.floating):
            raise InvalidInputError(
                f"{name} must be a float array on the [0, 1] scale, got dtype {x.dtype} "
                "(for uint8 images use x.astype(np.float32) / 255)"
            )
        if x.ndim not in (3, 4) or min(x.shape[-3:]) < 1:
            raise InvalidInputError(
                f"{name} must be (N, C, H, W) or (C, H, W) with C, H, W >= 1, got shape {x.shape}"
            )
        with np.errstate(over="ignore"):  # out-of-range float64 becomes inf, reported below
            x = np.ascontiguousarray(x, dtype=np.float32)
        if not np.isfinite(x).all():
            raise InvalidInputError(f"{name} holds NaN or inf (after conversion to float32)")
        out.append(x)
    if out[0].shape != out[1].shape:
        raise InvalidInputError(f"a and b must have the same shape, got {out[0].shape} and {out[1].shape}")
    return out[0], out[1]


def _choice(value, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise InvalidArgumentError(f"unknown {what} {value!r}; expected one of {list(allowed)}")
    return value


def _call(fn, *args, **kwargs) -> np.ndarray:
    try:
        return fn(*args, **kwargs)
    except ValueError as exc:  # the extension's own checks; ours should have caught it first
        raise InvalidInputError(str(exc)) from exc


def ssim_map(a, b, *, border: str = "reflect") -> np.ndarray:
    """Per-pixel SSIM of two images or batches, averaged over channels.

    Args:
        a, b: (N, C, H, W) or (C, H, W) float arrays on the [0, 1] scale (any float dtype;
            converted to float32). Any H, W >= 1 works.
        border: "reflect" (skimage) or "replicate" (official BDMAE code).

    Returns:
        float32 (N, H, W), or (H, W) for a single (C, H, W) pair; values in [-1, 1].
    """
    border = _choice(border, BORDERS, "border")
    a, b = _images(a, b)
    return _call(_ext().ssim_map, a, b, border)


def ssim_tokens(a, b, grid: tuple[int, int], mode: str = "mean", *, border: str = "reflect") -> np.ndarray:
    """Per-token SSIM: the SSIM map reduced to a (gh, gw) token grid.

    Args:
        a, b: (N, C, H, W) or (C, H, W) float arrays on the [0, 1] scale.
        grid: (gh, gw) tokens per column and row, e.g. (14, 14) for a ViT-B/16 at 224.
        mode: "mean" averages the map over each token's H/gh x W/gw pixels (gh, gw must
            divide H, W). "point" reads one pixel per token the way the official BDMAE
            code does (torch nearest resize): token row i reads map row
            min(floor(i * float32(H / gh)), H - 1), e.g. rows 0, 2, 4, 6, 9, ... for
            32 -> 14 and the top-left pixel of each patch for 224 -> 14; needs gh <= H, gw <= W.
        border: "reflect" (skimage) or "replicate" (official BDMAE code).

    Returns:
        float32 (N, gh, gw), or (gh, gw) for a single pair; values in [-1, 1].
        BDMAE's token image score is ``1 - ssim_tokens(x, restored, (14, 14), "point")``.
    """
    mode = _choice(mode, MODES, "mode")
    border = _choice(border, BORDERS, "border")
    try:
        gh, gw = grid
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"grid must be a pair (gh, gw), got {grid!r}") from None
    if not all(isinstance(g, numbers.Integral) and not isinstance(g, bool) and g >= 1 for g in (gh, gw)):
        raise InvalidArgumentError(f"grid must hold two positive integers, got {grid!r}")
    gh, gw = int(gh), int(gw)
    a, b = _images(a, b)
    h, w = a.shape[-2:]
    if mode == "mean" and (h % gh or w % gw):
        raise InvalidInputError(
            f"mean mode needs H, W divisible by the grid: image {h}x{w}, grid {gh}x{gw}"
        )
    if mode == "point" and (gh > h or gw > w):
        raise InvalidInputError(f"point mode needs a grid no larger than the image: image {h}x{w}, grid {gh}x{gw}")
    return _call(_ext().ssim_tokens, a, b, (gh, gw), mode, border)
