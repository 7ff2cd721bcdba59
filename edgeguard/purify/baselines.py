"""Input-transformation baselines BDMAE is compared with: Blur and ShrinkPad.

Each defense maps frames (N, C, H, W) float in [0, 1] to transformed frames of the same
shape; the model then classifies those. BDMAE's code ships no baseline, so the settings
are ours: "weak" and "strong" as in its comparison tables, scaled for 32-px frames.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeguard.errors import InvalidArgumentError


def gaussian_kernel(sigma: float) -> np.ndarray:
    """1-D Gaussian of radius ceil(2 sigma), normalised to sum 1."""
    radius = max(1, int(np.ceil(2 * sigma)))
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    return (k / k.sum()).astype(np.float32)


def _convolve_axis(x: np.ndarray, kernel: np.ndarray, axis: int) -> np.ndarray:
    r = len(kernel) // 2
    pad = [(0, 0)] * x.ndim
    pad[axis] = (r, r)
    padded = np.pad(x, pad, mode="reflect")
    n = x.shape[axis]
    return sum(k * np.take(padded, np.arange(i, i + n), axis=axis) for i, k in enumerate(kernel))


@dataclass(frozen=True)
class NoDefense:
    """Frames pass unchanged."""

    name = "none"

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        return frames


@dataclass(frozen=True)
class Blur:
    """Separable Gaussian blur with standard deviation ``sigma`` pixels (reflect borders)."""

    sigma: float = 1.0
    name = "blur"

    def __post_init__(self) -> None:
        if not self.sigma > 0:
            raise InvalidArgumentError(f"sigma must be > 0, got {self.sigma}")

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        k = gaussian_kernel(self.sigma)
        return _convolve_axis(_convolve_axis(frames, k, 2), k, 3).astype(np.float32)


@dataclass(frozen=True)
class ShrinkPad:
    """ShrinkPad (Li et al. 2021): shrink by ``pad`` pixels per side (bilinear), then zero-pad
    back to the original size at a random offset. Seeded per call, so runs repeat."""

    pad: int = 2
    seed: int = 0
    name = "shrinkpad"

    def __post_init__(self) -> None:
        if self.pad < 1:
            raise InvalidArgumentError(f"pad must be >= 1 pixel, got {self.pad}")

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        n, c, h, w = frames.shape
        if not 0 < 2 * self.pad < min(h, w):
            raise InvalidArgumentError(f"pad must be in (0, {min(h, w) // 2}), got {self.pad}")
        sh, sw = h - 2 * self.pad, w - 2 * self.pad
        # Bilinear resize (pixel-centre convention) as two interpolation matrices.
        small = np.einsum("ih,nchw,jw->ncij", _resize_matrix(h, sh), frames, _resize_matrix(w, sw))
        rng = np.random.default_rng(self.seed)
        out = np.zeros_like(frames)
        top = rng.integers(0, 2 * self.pad + 1, n)
        left = rng.integers(0, 2 * self.pad + 1, n)
        for i in range(n):
            out[i, :, top[i]:top[i] + sh, left[i]:left[i] + sw] = small[i]
        return out


def _resize_matrix(src: int, dst: int) -> np.ndarray:
    """(dst, src) bilinear interpolation weights (align_corners=False)."""
    pos = np.clip((np.arange(dst) + 0.5) * src / dst - 0.5, 0, src - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, src - 1)
    frac = pos - lo
    m = np.zeros((dst, src), np.float32)
    m[np.arange(dst), lo] += 1 - frac
    m[np.arange(dst), hi] += frac
    return m


# Weak/strong settings for 32-px frames (ours; the papers do not publish theirs).
_DEFENSES = {
    "none": NoDefense(),
    "blur": Blur(1.0), "blur_strong": Blur(2.0),
    "shrinkpad": ShrinkPad(2), "shrinkpad_strong": ShrinkPad(4),
}


def get_defense(name: str):
    """A baseline by name: none, blur, blur_strong, shrinkpad, shrinkpad_strong."""
    if name not in _DEFENSES:
        raise InvalidArgumentError(f"unknown defense {name!r}; choose one of {sorted(_DEFENSES)}")
    return _DEFENSES[name]
