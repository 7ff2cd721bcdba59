# cython: language_level=3, boundscheck=False, wraparound=False
"""Compiled kernels (module ``edgeguard._kernels``): SSIM, token reductions, mask sampling.

Thin wrapper over csrc/ssim.c and csrc/masks.c; their headers hold the definitions (border
policy, random numbers, selection rule). Bad shapes, dtypes or arguments raise
``ValueError``; ``edgeguard.kernels`` is the documented API and turns these into typed errors.
"""
from libc.stdint cimport int32_t, uint8_t, uint64_t

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

cdef extern from "masks.h" nogil:
    uint64_t eg_rng_key(uint64_t seed, uint64_t stream)
    uint64_t eg_rng_draw(uint64_t key, uint64_t counter)
    float eg_rng_uniform(uint64_t key, uint64_t counter)
    int eg_stage1_masks(int num_tokens, int rounds, int per_round, double ratio, uint64_t seed,
                        float* out)
    int eg_grow_regions(const float* scores, const uint8_t* top, const int32_t* sizes, int n,
                        int grid_h, int grid_w, float bonus, uint64_t seed,
                        const uint64_t* streams, uint8_t* out)
    int eg_nested_topk(const float* scores, const int32_t* counts, int n, int num_tokens,
                       int levels, float* out)
    int eg_tokens_from_map(const float* maps, const int32_t* pixel_token, int n, int h, int w,
                           int num_tokens, float empty, float* out)

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


cdef _check(int status, str kernel="SSIM"):
    if status == EG_ERR_NOMEM:
        raise MemoryError(f"{kernel} kernel could not allocate its workspace")
    if status != EG_OK:
        raise ValueError(f"{kernel} kernel rejected its arguments")


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


def _exact(x, dtype, ndim, name):
    """x as a C-contiguous array of exactly this dtype and rank, or ValueError."""
    x = np.asarray(x)
    if x.dtype != dtype or x.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-d {np.dtype(dtype)} array, got {x.ndim}-d {x.dtype}")
    return np.ascontiguousarray(x)


def rng_draws(uint64_t seed, uint64_t stream, counters):
    """(draw, uniform) of stream (seed, stream) at uint64 counters (K,) -> uint64 (K,), float32 (K,)."""
    cdef const uint64_t[::1] cv = _exact(counters, np.uint64, 1, "counters")
    draws = np.empty(cv.shape[0], np.uint64)
    uniforms = np.empty(cv.shape[0], np.float32)
    cdef uint64_t[::1] dv = draws
    cdef float[::1] uv = uniforms
    cdef uint64_t key = eg_rng_key(seed, stream)
    cdef Py_ssize_t i
    for i in range(cv.shape[0]):
        dv[i] = eg_rng_draw(key, cv[i])
        uv[i] = eg_rng_uniform(key, cv[i])
    return draws, uniforms


def stage1_masks(int num_tokens, int rounds, int per_round, double ratio, uint64_t seed):
    """float32 (rounds * per_round, num_tokens) 0/1 masks from concatenated permutations."""
    out = np.empty((max(rounds, 0) * max(per_round, 0), max(num_tokens, 0)), np.float32)
    cdef float[:, ::1] ov = out
    cdef float* op = &ov[0, 0] if out.size else NULL
    cdef int status
    with nogil:
        status = eg_stage1_masks(num_tokens, rounds, per_round, ratio, seed, op)
    _check(status, "stage-1 mask")
    return out


def grow_regions(scores, top, sizes, grid, float bonus, uint64_t seed, streams=None):
    """Regions: float32 (B, L) scores, uint8 (B, L) top set, int32 (B,) sizes -> uint8 (B, L)."""
    cdef const float[:, ::1] sv = _exact(scores, np.float32, 2, "scores")
    cdef const uint8_t[:, ::1] tv = _exact(top, np.uint8, 2, "top")
    cdef const int32_t[::1] zv = _exact(sizes, np.int32, 1, "sizes")
    cdef int gh = grid[0], gw = grid[1]
    cdef Py_ssize_t n = sv.shape[0]
    if tv.shape[0] != n or tv.shape[1] != sv.shape[1] or zv.shape[0] != n or <Py_ssize_t>gh * gw != sv.shape[1]:
        raise ValueError("scores (B, L), top (B, L), sizes (B,) and grid (gh, gw) with gh * gw = L disagree")
    cdef const uint64_t[::1] rv
    cdef const uint64_t* rp = NULL
    if streams is not None:
        rv = _exact(streams, np.uint64, 1, "streams")
        if rv.shape[0] != n:
            raise ValueError("streams must be (B,)")
        if n:
            rp = &rv[0]
    out = np.empty((n, sv.shape[1]), np.uint8)
    cdef uint8_t[:, ::1] ov = out
    cdef int status = EG_OK
    if n:
        with nogil:
            status = eg_grow_regions(&sv[0, 0], &tv[0, 0], &zv[0], <int>n, gh, gw, bonus, seed, rp,
                                     &ov[0, 0])
    _check(status, "region growing")
    return out


def nested_topk(scores, counts):
    """Nested top-k masks: float32 (B, L) scores, int32 (B, T) counts -> float32 (B, T, L)."""
    cdef const float[:, ::1] sv = _exact(scores, np.float32, 2, "scores")
    cdef const int32_t[:, ::1] cv = _exact(counts, np.int32, 2, "counts")
    cdef Py_ssize_t n = sv.shape[0], length = sv.shape[1], levels = cv.shape[1]
    if cv.shape[0] != n:
        raise ValueError("scores (B, L) and counts (B, T) disagree on B")
    out = np.empty((n, levels, length), np.float32)
    cdef float[:, :, ::1] ov = out
    cdef int status = EG_OK
    if out.size:
        with nogil:
            status = eg_nested_topk(&sv[0, 0], &cv[0, 0], <int>n, <int>length, <int>levels,
                                    &ov[0, 0, 0])
    _check(status, "nested top-k")
    return out


def tokens_from_map(maps, pixel_token, int num_tokens, float empty):
    """Per-token means: float32 (N, H, W) maps, int32 (H, W) token of each pixel -> float32 (N, L)."""
    cdef const float[:, :, ::1] mv = _exact(maps, np.float32, 3, "maps")
    cdef const int32_t[:, ::1] pv = _exact(pixel_token, np.int32, 2, "pixel_token")
    cdef Py_ssize_t n = mv.shape[0]
    if pv.shape[0] != mv.shape[1] or pv.shape[1] != mv.shape[2]:
        raise ValueError("maps (N, H, W) and pixel_token (H, W) disagree on (H, W)")
    out = np.empty((n, max(num_tokens, 0)), np.float32)
    cdef float[:, ::1] ov = out
    cdef int status = EG_OK
    if n and mv.shape[1] and mv.shape[2] and num_tokens > 0:
        with nogil:
            status = eg_tokens_from_map(&mv[0, 0, 0], &pv[0, 0], <int>n, <int>mv.shape[1],
                                        <int>mv.shape[2], num_tokens, empty, &ov[0, 0])
    elif n:
        status = EG_ERR_ARG
    _check(status, "token reduction")
    return out
