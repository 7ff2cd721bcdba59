"""The trigger generators DRMGuard optimises: image-to-image networks x -> x'.

Both are a small U-Net (two down-sampling stages, skip connections, BatchNorm + ReLU;
shared/spec/drmguard.md section 4.4) with a free per-pixel term beside it: a convolutional net
is translation-equivariant and finds a fixed-position patch only slowly, while a per-pixel
parameter gets the batch's gradient directly (and Adam moves every pixel at the same pace).

- ``TriggerGenerator``: x' = clamp(x + residual(x)); the identity at initialisation.
- ``MaskPatternGenerator``: x' = (1 - m(x)) x + m(x) p(x), mask and pattern both generated
  (input-dependent, so warps and per-image triggers are covered), each with a free per-pixel
  logit. The similarity cost can then price the mask (how much of the image is replaced)
  rather than the intensity change, so a bright patch costs what its area costs.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class _UNet(nn.Module):
    """(N, C, H, W) -> (N, out, H, W) features; any H, W (padded to a multiple of 4)."""

    def __init__(self, channels: int, out: int, width: int):
        super().__init__()
        w = width
        self.enc1 = nn.Sequential(_conv(channels, w), _conv(w, w))
        self.enc2 = nn.Sequential(_conv(w, 2 * w), _conv(2 * w, 2 * w))
        self.mid = nn.Sequential(_conv(2 * w, 4 * w), _conv(4 * w, 4 * w))
        self.dec2 = nn.Sequential(_conv(6 * w, 2 * w), _conv(2 * w, 2 * w))
        self.dec1 = nn.Sequential(_conv(3 * w, w), _conv(w, w))
        self.out = nn.Conv2d(w, out, 1)
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
        return self.out(d1)[..., :h, :w]


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
        self.net = _UNet(channels, channels, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.net(x)
        if self.offset is not None:
            residual = residual + self.offset
        return (x + residual).clamp(0.0, 1.0)


class MaskPatternGenerator(nn.Module):
    """(N, C, H, W) in [0, 1] -> (1 - m) x + m p, m = sigmoid(mask logit) (N, 1, H, W),
    p = sigmoid(pattern logit) (N, C, H, W); each logit is a free per-pixel term plus the
    U-Net's output (zero at initialisation).

    Args:
        channels: image channels C.
        width: channels of the U-Net's first stage; 0: no U-Net, one mask and pattern for
            every image (a universal trigger, as Neural Cleanse searches).
        image_size: (H, W) of the free per-pixel terms.
        mask_init: initial mask logit everywhere (-3: every pixel 5% replaced, so the search
            starts with a gradient at every pixel, as Neural Cleanse's does).
    """

    def __init__(self, channels: int, width: int, image_size: "tuple[int, int]", mask_init: float = -3.0):
        super().__init__()
        self.channels = channels
        self.mask_logit = nn.Parameter(torch.full((1, 1, *image_size), float(mask_init)))
        self.pattern_logit = nn.Parameter(torch.zeros(1, channels, *image_size))
        self.net = _UNet(channels, channels + 1, width) if width > 0 else None

    def mask_and_pattern(self, x: torch.Tensor) -> "tuple[torch.Tensor, torch.Tensor]":
        """(m (N, 1, H, W), p (N, C, H, W)) for the images ``x``."""
        if self.net is None:
            n = len(x)
            return (torch.sigmoid(self.mask_logit).expand(n, -1, -1, -1),
                    torch.sigmoid(self.pattern_logit).expand(n, -1, -1, -1))
        logits = self.net(x)
        mask = torch.sigmoid(self.mask_logit + logits[:, :1])
        pattern = torch.sigmoid(self.pattern_logit + logits[:, 1:])
        return mask, pattern

    @staticmethod
    def blend(x: torch.Tensor, mask: torch.Tensor, pattern: torch.Tensor) -> torch.Tensor:
        """(1 - mask) x + mask pattern."""
        return (1 - mask) * x + mask * pattern

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blend(x, *self.mask_and_pattern(x))
