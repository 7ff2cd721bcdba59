"""Compiled kernels (numpy in, numpy out, no torch): SSIM, token reductions, mask sampling.

SSIM is Wang et al. (2004) as skimage computes it with ``structural_similarity(...,
gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0)``: an
11x11 Gaussian window (sigma 1.5), C1 = 0.01**2, C2 = 0.03**2 (images on the [0, 1]
scale), population moments, per-channel maps averaged over channels. Results are
float32 with double-precision internals (within ~1e-7 of skimage run in float64).

Border policy near the image edges:
  ``"reflect"`` (default): scipy's half-sample symmetric mode (d c b a | a b c d), the one
  skimage uses, so the full map equals skimage's everywhere.
  ``"replicate"``: edge pixels repeated, as the official BDMAE code pads.

Mask sampling (BDMAE, shared/spec/bdmae.md sections 2-3) is seeded and per image: an
image's masks depend only on its own inputs, the seed and its stream id, never on the
rest of the batch. The random numbers are counter based (SplitMix64), so anyone can
reproduce them; with ``mix64`` the SplitMix64 output function and uint64 wrap-around:

  key(seed, stream) = mix64(mix64(seed) ^ stream)
  draw(key, i)      = mix64(key + (i + 1) * 0x9e3779b97f4a7c15)        (uint64)
  uniform(key, i)   = (draw(key, i) >> 40) * 2**-24                     (float32, [0, 1))

Each function below says which counters it reads. Use distinct (seed, stream) pairs for
draws that should be independent. The CUDA region growing (``grow_regions_device``) draws
the same numbers and returns the same regions, bit for bit.

GPU: ``ssim_tokens_device`` and ``grow_regions_device`` enqueue the CUDA kernels of
libedgeguard_cuda on device arrays (anything with ``__cuda_array_interface__``: torch CUDA
tensors, CuPy, pycuda GPUArrays), so a GPU pipeline keeps its restorations on the device.
They need the optional extension ``edgeguard._cuda``, built by the install where nvcc is found.

The implementation is csrc/ssim.c and csrc/masks.c (OpenMP across images when built with
it); their headers csrc/ssim.h and csrc/masks.h have the details.
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

try:
    from edgeguard import _cuda
except ImportError:  # optional: built only where the install found nvcc
    _cuda = None

MODES = ("mean", "point")
BORDERS = ("reflect", "replicate")
_UINT64_LIMIT = 2**64


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


# -- token reductions and mask sampling ------------------------------------------------------
def _integer(value, what: str, minimum: int = 0, maximum: int | None = None) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise InvalidArgumentError(f"{what} must be an integer, got {value!r}")
    value = int(value)
    if value < minimum or (maximum is not None and value > maximum):
        upper = "" if maximum is None else f" and <= {maximum}"
        raise InvalidArgumentError(f"{what} must be >= {minimum}{upper}, got {value}")
    return value


def _seed(seed) -> int:
    return _integer(seed, "seed", 0, _UINT64_LIMIT - 1)


def _real(value, what: str) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not np.isfinite(value):
        raise InvalidArgumentError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def _grid(grid) -> tuple[int, int]:
    try:
        gh, gw = grid
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"grid must be a pair (gh, gw), got {grid!r}") from None
    return _integer(gh, "grid height", 1), _integer(gw, "grid width", 1)


def _scores(scores, what: str = "scores", margin: float = 0.0) -> np.ndarray:
    """(B, L) finite float scores as C-contiguous float32, with |scores| + margin finite too."""
    x = np.asarray(scores)
    if not np.issubdtype(x.dtype, np.floating) or x.ndim != 2 or x.shape[1] < 1:
        raise InvalidInputError(f"{what} must be a (B, L) float array with L >= 1, got {x.dtype} {x.shape}")
    if x.dtype != np.float32 or not x.flags.c_contiguous:
        with np.errstate(over="ignore"):
            x = np.ascontiguousarray(x, dtype=np.float32)
    # A float64 sum cannot overflow on float32 values, so it is finite iff they all are.
    # Adding the margin can only overflow float32 when the margin itself is huge.
    finite = np.isfinite(x.sum(dtype=np.float64))
    if finite and margin > 1e30 and x.size:
        with np.errstate(over="ignore"):
            finite = np.isfinite(x.min() - np.float32(margin)) and np.isfinite(x.max() + np.float32(margin))
    if not finite:
        raise InvalidInputError(f"{what} hold NaN or inf (after conversion to float32)"
                                + (f", or overflow float32 when {margin:g} is added" if margin else ""))
    return x


def _indices(x, what: str, shape: tuple, low: int, high: int) -> np.ndarray:
    """An integer array of this shape with values in [low, high], as C-contiguous int32."""
    x = np.asarray(x)
    if x.dtype == bool or not np.issubdtype(x.dtype, np.integer):
        raise InvalidInputError(f"{what} must be an integer array, got dtype {x.dtype}")
    if x.shape != shape:
        raise InvalidInputError(f"{what} must have shape {shape}, got {x.shape}")
    if x.size and (x.min() < low or x.max() > high):
        raise InvalidInputError(f"{what} must lie in [{low}, {high}], got values in [{x.min()}, {x.max()}]")
    return np.ascontiguousarray(x, dtype=np.int32)


def _streams(streams, batch: int) -> np.ndarray | None:
    if streams is None:
        return None
    x = np.asarray(streams)
    if x.dtype == bool or not np.issubdtype(x.dtype, np.integer) or x.shape != (batch,):
        raise InvalidInputError(f"streams must be a ({batch},) integer array, got {x.dtype} {x.shape}")
    if x.size and np.issubdtype(x.dtype, np.signedinteger) and x.min() < 0:
        raise InvalidInputError("streams must be non-negative (they are uint64 stream ids)")
    return np.ascontiguousarray(x, dtype=np.uint64)


def stage1_masks(num_tokens: int, rounds: int, per_round: int, ratio: float, seed: int) -> np.ndarray:
    """BDMAE's stage-1 masks: cuts of concatenated random permutations of the tokens.

    With count = int(num_tokens * ratio): for each round, ``per_round`` random
    permutations of the tokens are concatenated and mask i of the round holds the tokens
    at positions [count * i, count * (i + 1)) of that list (masks that straddle two
    permutations may hold fewer than ``count`` distinct tokens). Permutation g (rounds
    in order, g = round * per_round + p) sorts the tokens by draw(key(seed, 0), g * L + t)
    ascending, ties by token index.

    Args:
        num_tokens: L >= 1. rounds, per_round: >= 0. ratio: in [0, 1].
        seed: in [0, 2**64).

    Returns:
        float32 (rounds * per_round, L) of 0/1, round-major (row round * per_round + i).
    """
    length = _integer(num_tokens, "num_tokens", 1, 2**31 - 1)
    rounds = _integer(rounds, "rounds", 0, 2**31 - 1)
    per_round = _integer(per_round, "per_round", 0, 2**31 - 1)
    ratio = _real(ratio, "ratio")
    if not 0.0 <= ratio <= 1.0:
        raise InvalidArgumentError(f"ratio must lie in [0, 1], got {ratio}")
    return _call(_ext().stage1_masks, length, rounds, per_round, ratio, _seed(seed))


def grow_regions(scores, top, sizes, grid: tuple[int, int], *, bonus: float = 0.5, seed: int,
                 streams=None) -> np.ndarray:
    """BDMAE's topology-aware region growing (``gen_local_sample``), one region per image.

    Image b uses key = key(seed, streams[b]) (stream 0 for all when ``streams`` is None)
    and takes sizes[b] steps; step j draws u_t = uniform(key, j * L + t) for every token t:
      - step 0 (seed): argmax over all tokens of u_t * S(t);
      - later steps: the token of the lowest class [t not in top] + [t selected], and
        within it the largest u_t * (S(t) + bonus * [t is 4-adjacent to the region]),
    ties to the lower index. This is the official argmax of u * (S + bonus * adj) -
    100 * [not in top] - 100 * [selected] whenever |S| + |bonus| < 50. Values are float32:
    S + bonus and u * that are each rounded once.

    The region has exactly sizes[b] tokens when at least sizes[b] - 1 tokens of the top
    set differ from the seed; past that a step may pick a selected token again, as the
    official formula does. Size 0 gives an empty region.

    Args:
        scores: (B, L) finite float scores S (converted to float32).
        top: (B, L) bool, the top-K set A of each image.
        sizes: (B,) integers in [0, L], or one integer for all images.
        grid: (gh, gw) with gh * gw = L; tokens are row-major on it.
        bonus: neighbour bonus (``topo_po``, 0.5 in BDMAE).
        seed: in [0, 2**64).
        streams: optional (B,) non-negative integer stream ids (uint64). Without them every
            image uses stream 0, so an image's region depends only on its own row and the seed.

    Returns:
        bool (B, L): the regions.
    """
    bonus32 = np.float32(_real(bonus, "bonus"))
    scores = _scores(scores, margin=abs(float(bonus32)))
    batch, length = scores.shape
    gh, gw = _grid(grid)
    if gh * gw != length:
        raise InvalidInputError(f"grid {gh}x{gw} does not hold the {length} tokens of scores")
    top = np.asarray(top)
    if top.dtype != bool or top.shape != scores.shape:
        raise InvalidInputError(f"top must be a bool array of shape {scores.shape}, got {top.dtype} {top.shape}")
    sizes = _indices(np.broadcast_to(sizes, (batch,)) if np.ndim(sizes) == 0 else sizes,
                     "sizes", (batch,), 0, length)
    out = _call(_ext().grow_regions, scores, np.ascontiguousarray(top).view(np.uint8), sizes, (gh, gw),
                float(bonus32), _seed(seed), _streams(streams, batch))
    return out.view(bool)


def nested_topk(scores, counts) -> np.ndarray:
    """Nested top-k token masks (BDMAE stage 3), per image.

    Tokens are ranked by descending score, ties to the lower index (a stable sort); mask k
    of image b holds the first counts[b, k] tokens of its ranking, so masks with growing
    counts are nested.

    Args:
        scores: (B, L) finite float scores (converted to float32).
        counts: (B, T) integers in [0, L].

    Returns:
        float32 (B, T, L) of 0/1.
    """
    scores = _scores(scores)
    counts = np.asarray(counts)
    if counts.ndim != 2 or counts.shape[0] != scores.shape[0]:
        raise InvalidInputError(f"counts must be ({scores.shape[0]}, T), got shape {counts.shape}")
    counts = _indices(counts, "counts", counts.shape, 0, scores.shape[1])
    return _call(_ext().nested_topk, scores, counts)


def tokens_from_map(maps, pixel_token, num_tokens: int, *, empty: float = float("nan")) -> np.ndarray:
    """Mean of per-pixel maps over each token's pixels, for any pixel -> token assignment.

    Use it for token scores when the frame maps onto the token grid by something other
    than an even split, e.g. BDMAE's nearest resize of a 32-px frame to a 224-px MAE:
    ``tokens_from_map(ssim_map(x, restored), pixel_token, 196)``.

    Args:
        maps: (N, H, W) float maps (converted to float32; NaN/inf propagate).
        pixel_token: (H, W) integers in [0, num_tokens): the token of each pixel.
        num_tokens: L >= 1.
        empty: the value of tokens that own no pixel.

    Returns:
        float32 (N, L); sums are taken in double.
    """
    length = _integer(num_tokens, "num_tokens", 1, 2**31 - 1)
    maps = np.asarray(maps)
    if not np.issubdtype(maps.dtype, np.floating) or maps.ndim != 3 or min(maps.shape[1:]) < 1:
        raise InvalidInputError(f"maps must be an (N, H, W) float array with H, W >= 1, got {maps.dtype} {maps.shape}")
    pixel_token = _indices(pixel_token, "pixel_token", maps.shape[1:], 0, length - 1)
    if not isinstance(empty, numbers.Real) or isinstance(empty, bool):
        raise InvalidArgumentError(f"empty must be a number, got {empty!r}")
    with np.errstate(over="ignore"):
        maps = np.ascontiguousarray(maps, dtype=np.float32)
    return _call(_ext().tokens_from_map, maps, pixel_token, length, float(empty))


# -- CUDA (device arrays) ------------------------------------------------------------------
def cuda_available() -> bool:
    """Whether the CUDA kernels are built and a CUDA device is usable."""
    return _cuda is not None and _cuda.device_count() > 0


def _cuda_ext():
    if _cuda is None:
        raise MissingDependencyError(
            "edgeguard's CUDA kernels (edgeguard._cuda) are not built: install the CUDA toolkit "
            "(nvcc on PATH, or CUDACXX=/path/to/nvcc), then reinstall edgeguard from source "
            "(`pip install --no-binary edgeguard edgeguard`, or `pip install .` in a checkout)")
    return _cuda


def _device_pointer(x, what: str, dtypes: tuple, shape: tuple) -> int:
    """The device address of a C-contiguous CUDA array of one of ``dtypes`` and this shape."""
    iface = getattr(x, "__cuda_array_interface__", None)
    if iface is None:
        raise InvalidInputError(
            f"{what} must be a CUDA device array (a torch CUDA tensor, CuPy or pycuda array), "
            f"got {type(x).__name__}")
    dtype = np.dtype(iface["typestr"])
    if dtype not in [np.dtype(d) for d in dtypes]:
        raise InvalidInputError(f"{what} must have dtype {' or '.join(np.dtype(d).name for d in dtypes)}, got {dtype}")
    if tuple(iface["shape"]) != tuple(shape):
        raise InvalidInputError(f"{what} must have shape {tuple(shape)}, got {tuple(iface['shape'])}")
    strides = iface.get("strides")
    if strides is not None and tuple(strides) != tuple(np.empty((0,) + tuple(shape[1:]), dtype).strides):
        raise InvalidInputError(f"{what} must be C-contiguous")
    return int(iface["data"][0])


def _shape_of(x, what: str) -> tuple:
    iface = getattr(x, "__cuda_array_interface__", None)
    if iface is None:
        raise InvalidInputError(f"{what} must be a CUDA device array, got {type(x).__name__}")
    return tuple(iface["shape"])


def _launch(fn, *args) -> None:
    try:
        fn(*args)
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from exc


def ssim_tokens_device(a, b, out, grid: tuple[int, int], mode: str = "mean", *,
                       border: str = "reflect", stream: int = 0) -> None:
    """Per-token SSIM on the GPU, the same definition as ``ssim_tokens``; asynchronous.

    Args:
        a, b: (N, C, H, W) float32 C-contiguous device arrays on the [0, 1] scale.
        out: (N, gh, gw) float32 device array, written by the kernel.
        grid, mode, border: as in ``ssim_tokens``.
        stream: the CUDA stream handle to enqueue on, as an integer (e.g. torch's
            ``torch.cuda.current_stream().cuda_stream``); 0 is the default stream.
    """
    ext = _cuda_ext()
    mode = _choice(mode, MODES, "mode")
    border = _choice(border, BORDERS, "border")
    gh, gw = _grid(grid)
    shape = _shape_of(a, "a")
    if len(shape) != 4:
        raise InvalidInputError(f"a must be (N, C, H, W), got shape {shape}")
    pa = _device_pointer(a, "a", (np.float32,), shape)
    pb = _device_pointer(b, "b", (np.float32,), shape)
    po = _device_pointer(out, "out", (np.float32,), (shape[0], gh, gw))
    _launch(ext.ssim_tokens, pa, pb, *shape, _ext()._BORDERS[border], gh, gw, _ext()._MODES[mode], po,
            int(stream))


def grow_regions_device(scores, top, sizes, out, grid: tuple[int, int], *, bonus: float = 0.5,
                        seed: int, streams=None, stream: int = 0) -> None:
    """``grow_regions`` on the GPU, bit for bit the same regions; asynchronous.

    Args:
        scores: (B, L) float32 device array (finite). top: (B, L) bool or uint8 device array.
        sizes: (B,) int32 device array (clamped to [0, L]: device data is not checked).
        out: (B, L) bool or uint8 device array, written by the kernel.
        grid, bonus, seed: as in ``grow_regions``. streams: optional (B,) uint64 device array.
        stream: the CUDA stream handle (integer); 0 is the default stream.
    """
    ext = _cuda_ext()
    shape = _shape_of(scores, "scores")
    if len(shape) != 2:
        raise InvalidInputError(f"scores must be (B, L), got shape {shape}")
    gh, gw = _grid(grid)
    if gh * gw != shape[1]:
        raise InvalidInputError(f"grid {gh}x{gw} does not hold the {shape[1]} tokens of scores")
    ps = _device_pointer(scores, "scores", (np.float32,), shape)
    pt = _device_pointer(top, "top", (np.bool_, np.uint8), shape)
    pz = _device_pointer(sizes, "sizes", (np.int32,), shape[:1])
    po = _device_pointer(out, "out", (np.bool_, np.uint8), shape)
    pr = 0 if streams is None else _device_pointer(streams, "streams", (np.uint64,), shape[:1])
    _launch(ext.grow_regions, ps, pt, pz, shape[0], gh, gw, float(np.float32(_real(bonus, "bonus"))),
            _seed(seed), pr, po, int(stream))
