"""edgeguard.kernels (compiled SSIM): parity with skimage, border policy, token modes, errors.

Oracles: skimage's full SSIM map (float64 input, per-channel maps averaged), a scipy
re-derivation for other borders and tiny images, and the numpy token reductions below.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.ndimage import gaussian_filter
from skimage.metrics import structural_similarity

from edgeguard import kernels
from edgeguard.errors import InvalidArgumentError, InvalidInputError

TOL = 1e-5


def skimage_map(a, b):
    """(N, C, H, W) pair -> (N, H, W) float64: skimage's full map, averaged over channels."""
    maps = []
    for x, y in zip(a.astype(np.float64), b.astype(np.float64)):
        _, full = structural_similarity(
            x, y, channel_axis=0, gaussian_weights=True, sigma=1.5,
            use_sample_covariance=False, data_range=1.0, full=True,
        )
        maps.append(full.mean(axis=0))  # skimage returns the (C, H, W) per-channel maps
    return np.stack(maps)


def scipy_map(a, b, mode):
    """The same SSIM from scipy.ndimage.gaussian_filter with any border mode and size."""
    a, b = a.astype(np.float64), b.astype(np.float64)

    def filt(z):
        return gaussian_filter(z, sigma=(0, 0, 1.5, 1.5), truncate=3.5, mode=mode)

    ua, ub = filt(a), filt(b)
    va, vb, vab = filt(a * a) - ua * ua, filt(b * b) - ub * ub, filt(a * b) - ua * ub
    c1, c2 = 0.01**2, 0.03**2
    s = (2 * ua * ub + c1) * (2 * vab + c2) / ((ua**2 + ub**2 + c1) * (va + vb + c2))
    return s.mean(axis=1)


def mean_tokens(m, grid):
    n, h, w = m.shape
    gh, gw = grid
    return m.reshape(n, gh, h // gh, gw, w // gw).mean(axis=(2, 4))


def point_index(size, out):
    """torch F.interpolate(mode='nearest') source index: floor(i * float32(size / out))."""
    scale = np.float32(size) / np.float32(out)
    return np.minimum(np.floor(np.arange(out, dtype=np.float32) * scale).astype(np.int64), size - 1)


def point_tokens(m, grid):
    rows, cols = point_index(m.shape[1], grid[0]), point_index(m.shape[2], grid[1])
    return m[:, rows][:, :, cols]


def pair(shape, seed, noise=0.1):
    """A smooth-ish image batch and a noisy copy, float32 on [0, 1]."""
    rng = np.random.default_rng(seed)
    a = gaussian_filter(rng.random(shape), sigma=(0, 0, 1, 1))
    b = np.clip(a + noise * rng.standard_normal(shape), 0, 1)
    return a.astype(np.float32), b.astype(np.float32)


SHAPES = [((25, 3, 32, 32), (8, 8)), ((2, 3, 224, 224), (14, 14))]


@pytest.mark.parametrize("shape,grid", SHAPES)
def test_map_and_tokens_match_skimage(shape, grid):
    a, b = pair(shape, seed=0)
    ref = skimage_map(a, b)
    m = kernels.ssim_map(a, b)
    assert m.dtype == np.float32 and m.shape == ref.shape
    np.testing.assert_allclose(m, ref, rtol=0, atol=TOL)  # everywhere, borders included
    for mode, oracle in (("mean", mean_tokens), ("point", point_tokens)):
        t = kernels.ssim_tokens(a, b, grid, mode)
        assert t.dtype == np.float32 and t.shape == (shape[0], *grid)
        np.testing.assert_allclose(t, oracle(ref, grid), rtol=0, atol=TOL)


def test_bdmae_point_tokens_on_cifar():
    a, b = pair((4, 3, 32, 32), seed=1)
    t = kernels.ssim_tokens(a, b, (14, 14), "point")
    np.testing.assert_allclose(t, point_tokens(skimage_map(a, b), (14, 14)), rtol=0, atol=TOL)
    # point tokens are exact copies of map pixels
    m = kernels.ssim_map(a, b)
    np.testing.assert_array_equal(t, point_tokens(m, (14, 14)))


def test_point_index_is_bdmae_mapping():
    assert point_index(32, 14).tolist() == [0, 2, 4, 6, 9, 11, 13, 16, 18, 20, 22, 25, 27, 29]
    assert point_index(224, 14).tolist() == list(range(0, 224, 16))
    # float32 arithmetic, not floor(i * H / gh): they differ here
    assert point_index(26, 22)[11] == 12 and (11 * 26) // 22 == 13


@pytest.mark.parametrize("h,w,gh,gw", [(32, 32, 14, 14), (26, 39, 22, 33), (62, 60, 14, 58)])
def test_point_index_matches_torch_nearest(h, w, gh, gw):
    torch = pytest.importorskip("torch")
    rows = torch.arange(h, dtype=torch.float32).view(1, 1, h, 1).expand(1, 1, h, w)
    cols = torch.arange(w, dtype=torch.float32).view(1, 1, 1, w).expand(1, 1, h, w)
    resize = torch.nn.functional.interpolate
    assert resize(rows, size=(gh, gw), mode="nearest")[0, 0, :, 0].long().tolist() == point_index(h, gh).tolist()
    assert resize(cols, size=(gh, gw), mode="nearest")[0, 0, 0, :].long().tolist() == point_index(w, gw).tolist()
    a, b = pair((1, 2, h, w), seed=2)
    np.testing.assert_array_equal(
        kernels.ssim_tokens(a, b, (gh, gw), "point"), point_tokens(kernels.ssim_map(a, b), (gh, gw))
    )


def test_border_policy_is_scipy_reflect():
    # Strong edge structure: every border policy gives a different 5-px rim.
    a, b = pair((2, 3, 24, 20), seed=3, noise=0.3)
    a[..., :3, :] = 1.0
    b[..., :, -2:] = 0.0
    m = kernels.ssim_map(a, b)
    rim = np.ones(m.shape[1:], bool)
    rim[5:-5, 5:-5] = False
    np.testing.assert_allclose(m[:, rim], skimage_map(a, b)[:, rim], rtol=0, atol=TOL)
    np.testing.assert_allclose(m, scipy_map(a, b, "reflect"), rtol=0, atol=TOL)
    for other in ("mirror", "nearest", "constant", "wrap"):
        assert np.abs(m[:, rim] - scipy_map(a, b, other)[:, rim]).max() > 1e-3, other
    # the interior never sees the border
    np.testing.assert_allclose(m[:, ~rim], scipy_map(a, b, "constant")[:, ~rim], rtol=0, atol=TOL)


def test_replicate_border_matches_scipy_nearest():
    a, b = pair((2, 3, 24, 20), seed=4, noise=0.3)
    m = kernels.ssim_map(a, b, border="replicate")
    np.testing.assert_allclose(m, scipy_map(a, b, "nearest"), rtol=0, atol=TOL)
    t = kernels.ssim_tokens(a, b, (6, 5), "point", border="replicate")
    np.testing.assert_array_equal(t, point_tokens(m, (6, 5)))


@pytest.mark.parametrize("h,w", [(1, 1), (3, 7), (10, 4)])
def test_images_smaller_than_window(h, w):
    # scipy's reflect is periodic (period 2 * size), so tiny images are well defined
    a, b = pair((2, 2, h, w), seed=5, noise=0.2)
    for border, mode in (("reflect", "reflect"), ("replicate", "nearest")):
        np.testing.assert_allclose(kernels.ssim_map(a, b, border=border), scipy_map(a, b, mode), rtol=0, atol=TOL)


def test_identical_images_give_one():
    a, _ = pair((3, 3, 32, 32), seed=6)
    np.testing.assert_allclose(kernels.ssim_map(a, a), 1.0, rtol=0, atol=1e-6)
    np.testing.assert_allclose(kernels.ssim_tokens(a, a, (8, 8)), 1.0, rtol=0, atol=1e-6)
    flat = np.full((1, 3, 16, 16), 0.5, np.float32)
    np.testing.assert_allclose(kernels.ssim_map(flat, flat), 1.0, rtol=0, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 3), c=st.integers(1, 3), h=st.integers(11, 24), w=st.integers(11, 24),
    seed=st.integers(0, 2**32 - 1), kind=st.sampled_from(["noisy", "inverted", "independent", "flat"]),
)
def test_properties_on_random_images(n, c, h, w, seed, kind):
    rng = np.random.default_rng(seed)
    a = rng.random((n, c, h, w)).astype(np.float32)
    b = {
        "noisy": np.clip(a + 0.05 * rng.standard_normal(a.shape), 0, 1),
        "inverted": 1 - a,
        "independent": rng.random(a.shape),
        "flat": np.full(a.shape, rng.random()),
    }[kind].astype(np.float32)
    m = kernels.ssim_map(a, b)
    np.testing.assert_allclose(m, skimage_map(a, b), rtol=0, atol=TOL)
    np.testing.assert_allclose(m, kernels.ssim_map(b, a), rtol=0, atol=1e-6)
    assert np.all(m >= -1) and np.all(m <= 1)
    gh, gw = rng.integers(1, h + 1), rng.integers(1, w + 1)
    np.testing.assert_array_equal(kernels.ssim_tokens(a, b, (gh, gw), "point"), point_tokens(m, (gh, gw)))
    gh, gw = max(g for g in range(1, 7) if h % g == 0), max(g for g in range(1, 7) if w % g == 0)
    np.testing.assert_allclose(kernels.ssim_tokens(a, b, (gh, gw)), mean_tokens(m, (gh, gw)), rtol=0, atol=1e-6)


def test_single_image_float64_and_views():
    a, b = pair((2, 3, 20, 28), seed=7)
    m = kernels.ssim_map(a, b)
    np.testing.assert_array_equal(kernels.ssim_map(a[1], b[1]), m[1])  # (C, H, W) -> (H, W)
    assert kernels.ssim_tokens(a[1], b[1], (4, 7)).shape == (4, 7)
    np.testing.assert_array_equal(kernels.ssim_map(a.astype(np.float64), b.astype(np.float64)), m)
    at = np.ascontiguousarray(a.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)  # non-contiguous view
    np.testing.assert_array_equal(kernels.ssim_map(at, b), m)
    assert kernels.ssim_map(a[:0], b[:0]).shape == (0, 20, 28)
    assert kernels.ssim_tokens(a[:0], b[:0], (4, 4)).shape == (0, 4, 4)


def test_openmp_batch_equals_per_image():
    a, b = pair((7, 3, 32, 32), seed=8)
    batch = kernels.ssim_tokens(a, b, (14, 14), "point")
    for i in range(len(a)):
        np.testing.assert_array_equal(batch[i], kernels.ssim_tokens(a[i], b[i], (14, 14), "point"))


def _bad(**over):
    a, b = pair((2, 3, 32, 32), seed=9)
    args = {"a": a, "b": b, "grid": (8, 8), "mode": "mean"}
    args.update(over)
    return args


@pytest.mark.parametrize(
    "args",
    [
        _bad(a=(np.ones((2, 3, 32, 32)) * 255).astype(np.uint8)),
        _bad(a=np.ones((2, 3, 32, 32), bool)),
        _bad(a=np.full((2, 3, 32, 32), np.nan, np.float32)),
        _bad(b=np.full((2, 3, 32, 32), np.inf, np.float32)),
        _bad(a=np.full((2, 3, 32, 32), 1e300)),  # inf once in float32
        _bad(b=np.zeros((2, 3, 32, 30), np.float32)),
        _bad(a=np.zeros((32, 32), np.float32), b=np.zeros((32, 32), np.float32)),
        _bad(a=np.zeros((1, 2, 3, 32, 32), np.float32), b=np.zeros((1, 2, 3, 32, 32), np.float32)),
        _bad(a=np.zeros((2, 0, 32, 32), np.float32), b=np.zeros((2, 0, 32, 32), np.float32)),
        _bad(grid=(14, 14)),  # mean mode: 14 does not divide 32
        _bad(grid=(33, 8), mode="point"),
    ],
    ids=["uint8", "bool", "nan", "inf", "overflow", "shape", "2d", "5d", "no-channels", "grid", "point-grid"],
)
def test_bad_inputs_raise_invalid_input(args):
    with pytest.raises(InvalidInputError):
        kernels.ssim_tokens(**args)
    if args["grid"] == (8, 8):
        with pytest.raises(InvalidInputError):
            kernels.ssim_map(args["a"], args["b"])


@pytest.mark.parametrize(
    "over", [{"grid": 8}, {"grid": (8,)}, {"grid": (8.0, 8)}, {"grid": (0, 8)}, {"grid": (True, 8)}, {"mode": "max"}]
)
def test_bad_arguments_raise_invalid_argument(over):
    with pytest.raises(InvalidArgumentError):
        kernels.ssim_tokens(**_bad(**over))


def test_bad_border_raises_invalid_argument():
    a, b = pair((1, 1, 16, 16), seed=10)
    with pytest.raises(InvalidArgumentError):
        kernels.ssim_map(a, b, border="zeros")


def test_extension_rejects_bad_arguments_with_value_error():
    from edgeguard import _kernels

    a, b = pair((1, 3, 16, 16), seed=11)
    for call in (
        lambda: _kernels.ssim_map(a.astype(np.float64), b),
        lambda: _kernels.ssim_map(a, b[..., :8]),
        lambda: _kernels.ssim_tokens(a, b, (3, 3), "mean"),
        lambda: _kernels.ssim_tokens(a, b, (4, 4), "median"),
    ):
        with pytest.raises(ValueError):
            call()


def _cuda_ext():
    """edgeguard._cuda (built by the install where nvcc was found), else skip."""
    return pytest.importorskip("edgeguard._cuda", reason="edgeguard._cuda not built (no nvcc at install)")


def test_cuda_launcher_validates_arguments():
    # Checked before any CUDA call, so this runs without a GPU.
    cuda = _cuda_ext()
    reflect, mean, point = 0, 0, 1
    cuda.ssim_tokens(0, 0, 0, 3, 32, 32, reflect, 8, 8, mean, 0, 0)  # empty batch: nothing to do
    with pytest.raises(ValueError):
        cuda.ssim_tokens(0, 0, 1, 3, 32, 32, reflect, 8, 8, mean, 0, 0)  # null pointers
    bad = [(1, 3, 32, 32, reflect, 14, 14, mean), (1, 3, 32, 32, reflect, 33, 8, point),
           (1, 0, 32, 32, reflect, 8, 8, mean), (1, 3, 32, 32, 2, 8, 8, mean), (1, 3, 32, 32, reflect, 8, 8, 2)]
    for n, c, h, w, border, gh, gw, mode in bad:
        with pytest.raises(ValueError):
            cuda.ssim_tokens(8, 8, n, c, h, w, border, gh, gw, mode, 8, 0)
    with pytest.raises(ValueError):
        cuda.grow_regions(8, 8, 8, 1, 0, 8, 0.5, 0, 0, 8, 0)  # empty grid


def test_device_api_rejects_host_arrays():
    _cuda_ext()
    a = np.zeros((1, 3, 8, 8), np.float32)
    with pytest.raises(InvalidInputError, match="CUDA device array"):
        kernels.ssim_tokens_device(a, a, np.zeros((1, 2, 2), np.float32), (2, 2))


@pytest.mark.gpu
@pytest.mark.parametrize("border", ["reflect", "replicate"])
@pytest.mark.parametrize(
    "shape,grid,mode",
    [(s, g, m) for s, g in SHAPES for m in ("mean", "point")]
    + [((2, 3, 32, 32), (14, 14), "point"), ((2, 3, 32, 32), (32, 32), "mean"), ((2, 2, 70, 51), (2, 1), "mean")],
)
def test_cuda_tokens_match_cpu(shape, grid, mode, border):
    torch = pytest.importorskip("torch")
    if not kernels.cuda_available():  # the device itself: conftest's gpu marker
        pytest.skip("needs edgeguard._cuda (built where nvcc is found at install)")
    a, b = pair(shape, seed=12)
    out = torch.full((shape[0], *grid), float("nan"), device="cuda")
    kernels.ssim_tokens_device(torch.from_numpy(a).cuda(), torch.from_numpy(b).cuda(), out, grid, mode,
                               border=border, stream=torch.cuda.current_stream().cuda_stream)
    torch.cuda.synchronize()
    expected = kernels.ssim_tokens(a, b, grid, mode, border=border)
    np.testing.assert_allclose(out.cpu().numpy(), expected, rtol=0, atol=TOL)
