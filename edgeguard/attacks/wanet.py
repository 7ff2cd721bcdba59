"""WaNet: an imperceptible warping trigger, poisoned per mini-batch (Nguyen & Tran 2021)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from edgeguard.attacks.base import Attack
from edgeguard.data.dataset import to_float_nchw, to_uint8_nhwc
from edgeguard.errors import InvalidArgumentError


def batch_counts(n: int, poison_rate: float, cross_ratio: float, rng: np.random.Generator) -> tuple[int, int]:
    """Backdoor and cross (noise-mode) samples in a batch of ``n``: the first
    ``poison_rate * n`` samples are poisoned (when that is below one, a random subset of
    batches gets one), then ``cross_ratio`` times as many keep their label."""
    expected = poison_rate * n
    n_bd = int(round(expected)) if expected >= 1 else int(rng.random() < expected)
    n_cross = min(n - n_bd, int(round(cross_ratio * n_bd)))
    return n_bd, n_cross


@dataclass
class WaNet(Attack):
    """Training-controlled warping attack.

    Attributes:
        k: control-grid size (4).
        s: warping strength (0.5).
        grid_rescale: scale of the warped grid (1).
        cross_ratio: noise-mode samples per backdoor sample in a batch, trained with their
            true labels so the model learns only this exact warp (2).
    """

    k: int = 4
    s: float = 0.5
    grid_rescale: float = 1.0
    cross_ratio: float = 2.0

    name: ClassVar[str] = "wanet"
    kind: ClassVar[str] = "training"

    def _build(self, train) -> None:
        import torch
        import torch.nn.functional as F

        h, w, _ = self.image_shape_
        if self.k < 2 or self.k > min(h, w):
            raise InvalidArgumentError(f"k must be in [2, {min(h, w)}], got {self.k}")
        rng = np.random.default_rng(self.seed)
        ins = torch.from_numpy(rng.uniform(-1, 1, (1, 2, self.k, self.k)).astype(np.float32))
        ins = ins / ins.abs().mean()
        noise = F.interpolate(ins, size=(h, w), mode="bicubic", align_corners=True).permute(0, 2, 3, 1)
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
        identity = torch.stack((xs, ys), dim=2)[None]
        scale = torch.tensor([1.0 / w, 1.0 / h])  # displacement per axis in that axis' pixels
        self.grid_ = torch.clamp((identity + self.s * noise * scale) * self.grid_rescale, -1, 1)
        self.pixel_scale_ = scale

    def warp(self, x, noise: bool = False, generator=None):
        """Warp (N, C, H, W) float images with the trigger grid; ``noise`` adds the per-sample
        random jitter of WaNet's noise mode."""
        import torch
        import torch.nn.functional as F

        grid = self.grid_.expand(len(x), -1, -1, -1)
        if noise:
            jitter = torch.rand(grid.shape, generator=generator) * 2 - 1
            grid = torch.clamp(grid + jitter * self.pixel_scale_, -1, 1)
        return F.grid_sample(x, grid, align_corners=True)

    def _apply(self, images: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return to_uint8_nhwc(self.warp(torch.from_numpy(to_float_nchw(images))).numpy())

    def training_hook(self, train, progress: bool = True):
        self._check_fitted(train.images)
        return _WaNetHook(self)


class _WaNetHook:
    """Warps the first samples of every batch (target label) and noise-warps the next ones
    (true label)."""

    def __init__(self, attack: WaNet):
        import torch

        self.attack = attack
        self.rng = np.random.default_rng(attack.seed)
        self.generator = torch.Generator().manual_seed(attack.seed)

    def __call__(self, x, y):
        import torch

        a = self.attack
        n_bd, n_cross = batch_counts(len(x), a.poison_rate, a.cross_ratio, self.rng)
        x, y = x.clone(), y.clone()
        if n_bd:
            x[:n_bd] = a.warp(x[:n_bd])
            y[:n_bd] = torch.from_numpy(a.targets(y[:n_bd].numpy()))
        if n_cross:
            x[n_bd : n_bd + n_cross] = a.warp(x[n_bd : n_bd + n_cross], noise=True, generator=self.generator)
        return x, y, None

    def step(self) -> None:
        pass

    def state_dict(self) -> dict:
        """The batch randomness so far (a checkpoint's resumed run draws what this one would)."""
        return batch_rng_state(self)

    def load_state_dict(self, state: dict) -> None:
        load_batch_rng_state(self, state)


def batch_rng_state(hook) -> dict:
    """A hook's numpy ``rng`` and torch ``generator`` states, for checkpoints."""
    return {"rng": hook.rng.bit_generator.state, "generator": hook.generator.get_state()}


def load_batch_rng_state(hook, state: dict) -> None:
    hook.rng.bit_generator.state = state["rng"]
    hook.generator.set_state(state["generator"])
