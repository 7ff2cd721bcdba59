# cython: language_level=3, boundscheck=False, wraparound=False
"""Compiled kernels (module ``edgeguard._kernels``): SSIM maps and per-token SSIM.

Thin wrapper over csrc/ssim.c; see csrc/ssim.h for the definition and border policy.
Bad shapes, dtypes or arguments raise ``ValueError``; ``edgeguard.kernels`` is the
documented API and turns these into typed errors.
"""
import numpy as np

cdef extern from "ssim.h" nogil:
    enum:
        EG_OK
        EG_ERR_ARG
        EG_ERR_NOMEM
        EG_BORDER_REFLECT
        EG_BORDER_REPLICATE
        EG_TOKENS_MEAN
        EG_TOKENS_POINT
    int eg_ssim_map(const float* a, const float* b, int n, int c, int h, int w, int border,
                    float* out_map)
    int eg_ssim_tokens(const float* a, const float* b, int n, int c, int h, int w, int border,
                       int grid_h, int grid_w, int mode, float* out_tokens)

_BORDERS = {"reflect": EG_BORDER_REFLECT, "replicate": EG_BORDER_REPLICATE}
_MODES = {"mean": EG_TOKENS_MEAN, "point": EG_TOKENS_POINT}
_MAX_SIDE = 2 ** 29  # csrc/ssim.c keeps 2 * side + 10 within int


def _batch(a, b):
    """Returns (a, b) as C-contiguous (N, C, H, W) float32 and whether a batch axis was added."""
    a = np.asarray(a)
    b = np.asarray(b)
    if a.dtype != np.float32 or b.dtype != np.float32:
        raise ValueError(f"images must be float32, got {a.dtype} and {b.dtype}")
    if a.shape != b.shape:
        raise ValueError(f"images must have the same shape, got {a.shape} and {b.shape}")
    if a.ndim not in (3, 4):
        raise ValueError(f"images must be (N, C, H, W) or (C, H, W), got shape {a.shape}")
    single = a.ndim == 3
    if single:
        a = a[None]
        b = b[None]
    if min(a.shape[1:]) < 1:
        raise ValueError(f"images need C, H, W >= 1, got shape {a.shape}")
    if max(a.shape) >= _MAX_SIDE:
        raise ValueError(f"image dimensions must be below {_MAX_SIDE}, got shape {a.shape}")
    return np.ascontiguousarray(a), np.ascontiguousarray(b), single


def _lookup(table, key, what):
    try:
        return table[key]
    except (KeyError, TypeError):
        raise ValueError(f"unknown {what} {key!r}; expected one of {sorted(table)}") from None


cdef _check(int status):
    if status == EG_ERR_NOMEM:
        raise MemoryError("SSIM kernel could not allocate its workspace")
    if status != EG_OK:
        raise ValueError("SSIM kernel rejected its arguments")


def ssim_map(a, b, border="reflect"):
    """Channel-averaged SSIM map: float32 (N, C, H, W) x2 -> (N, H, W); (C, H, W) -> (H, W)."""
    cdef int bmode = _lookup(_BORDERS, border, "border")
    a, b, single = _batch(a, b)
    cdef int n = a.shape[0], c = a.shape[1], h = a.shape[2], w = a.shape[3]
    out = np.empty((n, h, w), dtype=np.float32)
    cdef const float[:, :, :, ::1] av = a
    cdef const float[:, :, :, ::1] bv = b
    cdef float[:, :, ::1] ov = out
    cdef int status = EG_OK
    if n > 0:
        with nogil:
            status = eg_ssim_map(&av[0, 0, 0, 0], &bv[0, 0, 0, 0], n, c, h, w, bmode,
                                 &ov[0, 0, 0])
    _check(status)
    return out[0] if single else out


def ssim_tokens(a, b, grid, mode="mean", border="reflect"):
    """Per-token SSIM: float32 (N, C, H, W) x2 -> (N, gh, gw); (C, H, W) -> (gh, gw).

    ``grid`` is (gh, gw). ``mode`` "mean" averages the map over each token (grid must
    divide H, W); "point" samples one pixel per token as torch nearest resizing does.
    """
    cdef int tmode = _lookup(_MODES, mode, "mode")
    cdef int bmode = _lookup(_BORDERS, border, "border")
    a, b, single = _batch(a, b)
    cdef int n = a.shape[0], c = a.shape[1], h = a.shape[2], w = a.shape[3]
    try:
        gh, gw = (int(g) for g in grid)
    except (TypeError, ValueError):
        raise ValueError(f"grid must be two integers (gh, gw), got {grid!r}") from None
    if gh < 1 or gw < 1:
        raise ValueError(f"grid must be positive, got {grid!r}")
    if tmode == EG_TOKENS_MEAN and (h % gh or w % gw):
        raise ValueError(f"mean mode needs a grid dividing the image: {(gh, gw)} vs {(h, w)}")
    if tmode == EG_TOKENS_POINT and (gh > h or gw > w):
        raise ValueError(f"point mode needs a grid no larger than the image: {(gh, gw)} vs {(h, w)}")
    out = np.empty((n, gh, gw), dtype=np.float32)
    cdef const float[:, :, :, ::1] av = a
    cdef const float[:, :, :, ::1] bv = b
    cdef float[:, :, ::1] ov = out
    cdef int status = EG_OK
    cdef int cgh = gh, cgw = gw
    if n > 0:
        with nogil:
            status = eg_ssim_tokens(&av[0, 0, 0, 0], &bv[0, 0, 0, 0], n, c, h, w, bmode,
                                    cgh, cgw, tmode, &ov[0, 0, 0])
    _check(status)
    return out[0] if single else out
