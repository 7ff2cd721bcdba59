"""The compiled kernels against the libraries a user would otherwise reach for.

    python -m benchmarks.kernels --json /tmp/kernels.json [--threads 2]

SSIM per token (11x11 Gaussian window, sigma 1.5, token means of the channel-mean map) on
(25, 3, 32, 32) pairs (BDMAE stage 1 on the tiny MAE: 8x8 tokens) and (5, 3, 224, 224)
pairs (stage 3 on ViT-B/16: 14x14 tokens):
  edgeguard       kernels.ssim_tokens, mean mode
  skimage         structural_similarity(full=True) per image, then token means in numpy
  pytorch_msssim  ssim(size_average=False): per-image means, no map (so a lower bound on
                  what a map plus token reduction would cost); valid convolution
  kornia          kornia.metrics.ssim (the map), then avg_pool2d to tokens
Region growing (BDMAE refinement, neighbour bonus 0.5) on (50, 64) scores with 16-token
regions and (5, 196) with 30-token regions: ``edgeguard`` (kernels.grow_regions) against
``numpy``, the batch-vectorised numpy version the purifier used before (one argmax over
the batch per step, numpy's generator for the draws).

Every implementation runs at the same thread count (``--threads``: OpenMP for edgeguard,
torch.set_num_threads for the torch libraries; skimage and numpy use one). Each row is the
median of repeated calls after warm-up. With a CUDA device and edgeguard._cuda, also
``edgeguard_cuda`` (kernels.ssim_tokens_device) against ``pytorch_msssim_cuda``.
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np

from benchmarks import common

SSIM_SHAPES = [((25, 3, 32, 32), 8), ((5, 3, 224, 224), 14)]
GROW_SHAPES = [((50, 64), 8, 16), ((5, 196), 14, 30)]
BONUS = 0.5


def median_ms(fn, min_seconds: float = 1.0, min_repeats: int = 5, sync=lambda: None) -> float:
    """Median wall time of ``fn()`` in ms after three warm-up calls."""
    for _ in range(3):
        fn()
    sync()
    times, start = [], time.perf_counter()
    while len(times) < min_repeats or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def _pairs(shape, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.random(shape, dtype=np.float32)
    b = np.clip(a + 0.1 * rng.standard_normal(shape, dtype=np.float32), 0, 1)
    return a, b


def ssim_implementations(a, b, grid):
    """name -> zero-argument callable computing per-token SSIM (or its nearest equivalent)."""
    import torch
    import torch.nn.functional as F
    from kornia.metrics import ssim as kornia_ssim
    from pytorch_msssim import ssim as msssim_ssim
    from skimage.metrics import structural_similarity

    from edgeguard import kernels

    n, _, h, w = a.shape
    th, tw = h // grid, w // grid

    def skimage_tokens():
        out = np.empty((n, grid, grid))
        for i in range(n):
            _, full = structural_similarity(a[i], b[i], channel_axis=0, gaussian_weights=True, sigma=1.5,
                                            use_sample_covariance=False, data_range=1.0, full=True)
            out[i] = full.mean(axis=0).reshape(grid, th, grid, tw).mean(axis=(1, 3))
        return out

    ta, tb = torch.from_numpy(a), torch.from_numpy(b)

    def kornia_tokens():
        with torch.no_grad():
            return F.avg_pool2d(kornia_ssim(ta, tb, 11).mean(dim=1, keepdim=True), (th, tw))

    def msssim_means():
        with torch.no_grad():
            return msssim_ssim(ta, tb, data_range=1.0, size_average=False, win_size=11, win_sigma=1.5)

    return {"edgeguard": lambda: kernels.ssim_tokens(a, b, (grid, grid), "mean"),
            "skimage": skimage_tokens, "pytorch_msssim": msssim_means, "kornia": kornia_tokens}


def grow_numpy(score, top, sizes, grid, rng):
    """The batch-vectorised numpy region growing (official formula, numpy's generator)."""
    b, length = score.shape
    seed = np.argmax(rng.random((b, length)) * score, axis=1)
    blob = np.zeros((b, length), bool)
    blob[np.arange(b), seed] = True
    for step in range(int(sizes.max()) - 1):
        rows = np.flatnonzero(step < sizes - 1)
        g = blob[rows].reshape(-1, grid, grid)
        near = np.zeros_like(g)
        near[:, 1:] |= g[:, :-1]
        near[:, :-1] |= g[:, 1:]
        near[:, :, 1:] |= g[:, :, :-1]
        near[:, :, :-1] |= g[:, :, 1:]
        value = (rng.random((len(rows), length)) * (score[rows] + BONUS * near.reshape(len(rows), length))
                 - 100.0 * ~top[rows] - 100.0 * blob[rows])
        blob[rows, np.argmax(value, axis=1)] = True
    return blob


def cuda_rows(threads: int) -> list[dict]:
    import torch
    from pytorch_msssim import ssim as msssim_ssim

    from edgeguard import kernels

    if not (torch.cuda.is_available() and kernels.cuda_available()):
        return []
    sync, rows = torch.cuda.synchronize, []
    for shape, grid in SSIM_SHAPES:
        a, b = (torch.from_numpy(x).cuda() for x in _pairs(shape))
        out = torch.empty((shape[0], grid, grid), device="cuda")
        stream = torch.cuda.current_stream().cuda_stream
        impls = {"edgeguard_cuda": lambda: kernels.ssim_tokens_device(a, b, out, (grid, grid), stream=stream),
                 "pytorch_msssim_cuda": lambda: msssim_ssim(a, b, data_range=1.0, size_average=False)}
        for name, fn in impls.items():
            with torch.no_grad():
                rows.append({"kernel": "ssim_tokens", "impl": name, "shape": list(shape), "grid": grid,
                             "ms": round(median_ms(fn, sync=sync), 4), "threads": threads,
                             "device": torch.cuda.get_device_name(0)})
    return rows


def main(argv=None) -> int:
    p = common.parser("kernels", __doc__)
    p.add_argument("--threads", type=int, default=2, help="threads for every implementation (default 2)")
    args = p.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # read when the OpenMP runtime starts
    import torch

    from edgeguard import kernels

    torch.set_num_threads(args.threads)

    def body() -> list[dict]:
        rows = []
        for shape, grid in SSIM_SHAPES:
            a, b = _pairs(shape)
            for name, fn in ssim_implementations(a, b, grid).items():
                rows.append({"kernel": "ssim_tokens", "impl": name, "shape": list(shape), "grid": grid,
                             "ms": round(median_ms(fn), 4), "threads": 1 if name == "skimage" else args.threads})
                print(rows[-1], file=sys.stderr, flush=True)
        for (n, length), grid, size in GROW_SHAPES:
            rng = np.random.default_rng(0)
            score = rng.random((n, length)).astype(np.float32)
            top = np.zeros((n, length), bool)
            np.put_along_axis(top, np.argsort(-score, axis=1)[:, :2 * size], True, axis=1)
            sizes = np.full(n, size, np.int32)
            impls = {"edgeguard": lambda: kernels.grow_regions(score, top, sizes, (grid, grid), bonus=BONUS, seed=1),
                     "numpy": lambda: grow_numpy(score, top, sizes, grid, rng)}
            for name, fn in impls.items():
                rows.append({"kernel": "grow_regions", "impl": name, "shape": [n, length], "region_tokens": size,
                             "ms": round(median_ms(fn), 4), "threads": args.threads if name == "edgeguard" else 1})
                print(rows[-1], file=sys.stderr, flush=True)
        rows += cuda_rows(args.threads)
        for row in rows:
            base = next(r["ms"] for r in rows if r["kernel"] == row["kernel"] and r["shape"] == row["shape"]
                        and r["impl"] == ("edgeguard_cuda" if row["impl"].endswith("_cuda") else "edgeguard"))
            row["edgeguard_speedup"] = round(row["ms"] / base, 2)
        return rows

    record = common.run("kernels", {"threads": args.threads}, body, args.json, backend="cpu")
    for r in record["results"]:
        print(f"{r['kernel']:13s} {str(r['shape']):18s} {r['impl']:20s} {r['ms']:10.3f} ms  "
              f"edgeguard {r['edgeguard_speedup']:.1f}x faster", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
