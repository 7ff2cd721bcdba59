"""Input-aware dynamic backdoor (IAB / IAD, Nguyen & Tran 2020).

A pattern generator G and a mask generator M make a different trigger for every image:
x' = x + (G(x) - x) * M(x). M is pre-trained alone to be sparse (density 0.032) and
diverse, then frozen; G trains jointly with the victim so its triggers work, while
"cross" samples carrying another image's trigger keep their true label.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from edgeguard.attacks.base import Attack
from edgeguard.attacks.wanet import batch_counts, batch_rng_state, load_batch_rng_state
from edgeguard.data.dataset import to_float_nchw, to_uint8_nhwc

_EPS = 1e-7


def _nets():
    """Build the generator classes lazily, so this module imports without torch."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    def conv(i: int, o: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(inplace=True))

    class TriggerGenerator(nn.Module):
        """Encoder-decoder: (N, C, H, W) in [0, 1] -> (N, out, H, W) in [0, 1]."""

        def __init__(self, channels: int, out_channels: int, width: int = 16, is_mask: bool = False):
            super().__init__()
            w = width
            self.encoder = nn.Sequential(conv(channels, w), conv(w, w), nn.MaxPool2d(2), conv(w, 2 * w), conv(2 * w, 2 * w),
                                         nn.MaxPool2d(2), conv(2 * w, 2 * w))
            self.decoder = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear"), conv(2 * w, w),
                                         nn.Upsample(scale_factor=2, mode="bilinear"), conv(w, w))
            self.out = nn.Conv2d(w, out_channels, 3, padding=1)
            self.is_mask = is_mask

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            z = self.decoder(self.encoder(x))
            z = self.out(F.interpolate(z, size=x.shape[-2:], mode="bilinear", align_corners=False))
            if self.is_mask:  # a steep soft step makes the mask nearly binary
                return torch.tanh(torch.sigmoid(z) * 20 - 10) / (2 + _EPS) + 0.5
            return torch.tanh(z) / 2 + 0.5

    return TriggerGenerator


def _partners(n: int, generator):
    """A random pairing with no image paired to itself (a cyclic derangement)."""
    import torch

    order = torch.randperm(n, generator=generator)
    partner = torch.empty_like(order)
    partner[order] = order.roll(1)
    return partner


def _diversity(x1, x2, g1, g2):
    """mean ||x1 - x2|| / ||g1 - g2|| (RMS distances): penalises generators whose outputs
    collapse to one trigger for different inputs."""
    import torch

    d_in = torch.sqrt(torch.mean((x1 - x2) ** 2, dim=(1, 2, 3)) + _EPS)
    d_out = torch.sqrt(torch.mean((g1 - g2) ** 2, dim=(1, 2, 3)) + _EPS)
    return torch.mean(d_in / (d_out + _EPS))


@dataclass
class InputAware(Attack):
    """Training-controlled, sample-specific trigger.

    Attributes:
        mask_density: target fraction of masked pixels (0.032).
        lambda_norm: weight of the mask-density loss (100).
        lambda_div: weight of the diversity losses (1).
        mask_epochs: epochs of mask-generator pre-training (25 in BackdoorBench).
        cross_ratio: cross samples per backdoor sample in a batch (1).
        lr: Adam learning rate of both generators (0.01, betas 0.5/0.9).
        width: base channels of the generators.
    """

    mask_density: float = 0.032
    lambda_norm: float = 100.0
    lambda_div: float = 1.0
    mask_epochs: int = 25
    cross_ratio: float = 1.0
    lr: float = 0.01
    width: int = 16

    name: ClassVar[str] = "iab"
    kind: ClassVar[str] = "training"

    def _build(self, train) -> None:
        import torch

        torch.manual_seed(self.seed)
        Gen = _nets()
        c = self.image_shape_[2]
        self.pattern_net_ = Gen(c, c, self.width)
        self.mask_net_ = Gen(c, 1, self.width, is_mask=True)

    def triggered(self, x, pattern_source=None):
        """x + (G(s) - x) * M(s) for (N, C, H, W) images, with the trigger made from
        ``pattern_source`` (default: x itself)."""
        s = x if pattern_source is None else pattern_source
        return x + (self.pattern_net_(s) - x) * self.mask_net_(s)

    def _apply(self, images: np.ndarray) -> np.ndarray:
        import torch

        self.pattern_net_.eval()
        self.mask_net_.eval()
        with torch.no_grad():
            x = torch.from_numpy(to_float_nchw(images))
            return to_uint8_nhwc(self.triggered(x).clamp(0, 1).numpy())

    def pretrain_mask(self, train, epochs: int, batch_size: int = 128, progress: bool = True) -> None:
        """Train M alone: sparse (density loss) and input-dependent (diversity loss)."""
        import torch
        import torch.nn.functional as F
        from tqdm.auto import tqdm

        gen = torch.Generator().manual_seed(self.seed)
        x_all = torch.from_numpy(to_float_nchw(train.images))
        opt = torch.optim.Adam(self.mask_net_.parameters(), lr=self.lr, betas=(0.5, 0.9))
        self.mask_net_.train()
        for _ in tqdm(range(epochs), desc="iab mask pre-training", disable=not progress, unit="epoch"):
            order = torch.randperm(len(x_all), generator=gen)
            for i in range(0, len(x_all) - batch_size + 1, batch_size):
                x1 = x_all[order[i : i + batch_size]]
                x2 = x1[_partners(len(x1), gen)]
                m1, m2 = self.mask_net_(x1), self.mask_net_(x2)
                loss = self.lambda_norm * F.relu(m1 - self.mask_density).mean() + self.lambda_div * _diversity(x1, x2, m1, m2)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        self.mask_net_.eval()
        for p in self.mask_net_.parameters():
            p.requires_grad_(False)

    def training_hook(self, train, progress: bool = True):
        self._check_fitted(train.images)
        self.pretrain_mask(train, self.mask_epochs, progress=progress)
        return _InputAwareHook(self)

    def state_dict(self) -> dict[str, np.ndarray]:
        out = {}
        for prefix, net in (("pattern", self.pattern_net_), ("mask", self.mask_net_)):
            out.update({f"{prefix}.{k}": v.detach().cpu().numpy() for k, v in net.state_dict().items()})
        return out

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        import torch

        self._check_fitted()
        for prefix, net in (("pattern", self.pattern_net_), ("mask", self.mask_net_)):
            sub = {k[len(prefix) + 1 :]: torch.from_numpy(np.asarray(v)) for k, v in state.items() if k.startswith(prefix + ".")}
            net.load_state_dict(sub)
            net.eval()


class _InputAwareHook:
    """Per batch: backdoor samples get their own trigger and the target label, cross
    samples get a shuffled partner's trigger and keep their label; G is updated with the
    victim's loss plus the pattern-diversity loss."""

    def __init__(self, attack: InputAware):
        import torch

        self.attack = attack
        self.rng = np.random.default_rng(attack.seed)
        self.generator = torch.Generator().manual_seed(attack.seed)
        self.opt = torch.optim.Adam(attack.pattern_net_.parameters(), lr=attack.lr, betas=(0.5, 0.9))

    def __call__(self, x, y):
        import torch

        a = self.attack
        a.pattern_net_.train()
        self.opt.zero_grad(set_to_none=True)
        n_bd, n_cross = batch_counts(len(x), a.poison_rate, a.cross_ratio, self.rng)
        end = n_bd + n_cross
        if end < 2:
            return x, y, None
        # Generators only run on the samples they modify (the diversity loss is an
        # average over pairs, so a subset estimates it as well as the whole batch).
        x1 = x[:end]
        x2 = x[_partners(len(x), self.generator)[:end]]
        p1, p2 = a.pattern_net_(x1), a.pattern_net_(x2)
        with torch.no_grad():
            m1, m2 = a.mask_net_(x1), a.mask_net_(x2)
        x_bd = x1[:n_bd] + (p1[:n_bd] - x1[:n_bd]) * m1[:n_bd]
        x_cross = x1[n_bd:] + (p2[n_bd:] - x1[n_bd:]) * m2[n_bd:]
        x_out = torch.cat([x_bd, x_cross, x[end:]])
        y_out = y.clone()
        if n_bd:
            y_out[:n_bd] = torch.from_numpy(a.targets(y[:n_bd].numpy()))
        return x_out, y_out, a.lambda_div * _diversity(x1, x2, p1, p2)

    def step(self) -> None:
        self.opt.step()

    def state_dict(self) -> dict:
        """G's weights and optimiser and the batch randomness (M is pre-trained again, from
        the same seed, when a resumed run builds its hook)."""
        return {**batch_rng_state(self), "pattern_net": self.attack.pattern_net_.state_dict(),
                "optimizer": self.opt.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        load_batch_rng_state(self, state)
        self.attack.pattern_net_.load_state_dict(state["pattern_net"])
        self.opt.load_state_dict(state["optimizer"])
