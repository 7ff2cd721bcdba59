"""The trigger generator DRMGuard optimises: an image-to-image network x -> x'.

A small U-Net (two down-sampling stages, skip connections, BatchNorm + ReLU) whose output is
added to the input and clamped to [0, 1], so at initialisation (last layer zeroed) it is the
identity and optimisation starts from "no change" (shared/spec/drmguard.md section 4.4).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class TriggerGenerator(nn.Module):
    """(N, C, H, W) in [0, 1] -> (N, C, H, W) in [0, 1]; any H, W (padded to a multiple of 4).

    Args:
        channels: image channels C.
        width: channels of the first stage (doubled at each of the two lower stages).
        image_size: (H, W) to add a free per-pixel offset (C, H, W) to the residual: a
            convolutional net is translation-equivariant and finds a fixed-position patch
            only slowly; the offset gets the batch-mean gradient directly. None: no offset.
    """

    def __init__(self, channels: int, width: int = 16, image_size: "tuple[int, int] | None" = None):
        super().__init__()
        self.offset = nn.Parameter(torch.zeros(channels, *image_size)) if image_size is not None else None
        w = width
        self.enc1 = nn.Sequential(_conv(channels, w), _conv(w, w))
        self.enc2 = nn.Sequential(_conv(w, 2 * w), _conv(2 * w, 2 * w))
        self.mid = nn.Sequential(_conv(2 * w, 4 * w), _conv(4 * w, 4 * w))
        self.dec2 = nn.Sequential(_conv(6 * w, 2 * w), _conv(2 * w, 2 * w))
        self.dec1 = nn.Sequential(_conv(3 * w, w), _conv(w, w))
        self.out = nn.Conv2d(w, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        pad_h, pad_w = (-h) % 4, (-w) % 4
        xp = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        e1 = self.enc1(xp)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        m = self.mid(F.max_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([F.interpolate(m, scale_factor=2.0, mode="bilinear", align_corners=False), e2], 1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, scale_factor=2.0, mode="bilinear", align_corners=False), e1], 1))
        residual = self.out(d1)[..., :h, :w]
        if self.offset is not None:
            residual = residual + self.offset
        return (x + residual).clamp(0.0, 1.0)
