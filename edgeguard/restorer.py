"""Train, cache and measure the MAE restorer.

BDMAE restores with a generic ImageNet MAE, never the task's data. Our CPU default does
the same at small scale: ``mae_tiny_patch4`` pre-trained on random crops of the real
photos (scikit-image), optionally fine-tuned on a user's clean images.

    mae = get_restorer()                         # trains once, then loads from the cache
    psnr = restoration_psnr(mae, images)         # dB on the masked pixels
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from tqdm.auto import tqdm

from edgeguard import cache
from edgeguard.data.dataset import to_float_nchw
from edgeguard.data.photos import random_crops
from edgeguard.errors import InvalidArgumentError, InvalidInputError
from edgeguard.models import create_model
from edgeguard.models.mae import MaskedAutoencoder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RestorerConfig:
    """MAE pre-training on photo crops.

    Attributes:
        arch: an MAE variant of ``edgeguard.models`` (its img_size is the crop size).
        steps: optimiser steps; batch_size crops are drawn fresh for every step.
        lr, weight_decay, warmup_steps: AdamW with linear warm-up then cosine decay.
        mask_ratio: share of tokens masked per training image (MAE's 0.75).
        crop_scale: crop side as a fraction of the photo's shorter side.
        seed: crops, masks and initialisation.
    """

    arch: str = "mae_tiny_patch4"
    steps: int = 3000
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_steps: int = 200
    mask_ratio: float = 0.75
    crop_scale: tuple[float, float] = (0.05, 0.6)
    seed: int = 0


def train_mae(
    config: RestorerConfig = RestorerConfig(),
    images: Optional[np.ndarray] = None,
    init: Optional[MaskedAutoencoder] = None,
    progress: bool = True,
) -> MaskedAutoencoder:
    """Pre-train (or fine-tune) an MAE.

    Args:
        config: training settings.
        images: None trains on photo crops; else (N, S, S, C) uint8 clean images at the
            MAE's size to fine-tune on (drawn with replacement, random horizontal flips).
        init: start from this model (fine-tuning) instead of a fresh one.
        progress: show a tqdm bar.
    """
    if config.steps < 1 or config.batch_size < 1:
        raise InvalidArgumentError(f"steps and batch_size must be >= 1, got {config.steps}, {config.batch_size}")
    torch.manual_seed(config.seed)
    mae = init if init is not None else create_model(config.arch)
    size = mae.config.img_size
    if images is not None:
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[1:3] != (size, size) or images.dtype != np.uint8:
            raise InvalidInputError(f"fine-tuning images must be (N, {size}, {size}, C) uint8, "
                                    f"got {images.shape} {images.dtype}")
        if images.shape[-1] != mae.config.in_chans:
            raise InvalidInputError(f"images have {images.shape[-1]} channels, the MAE {mae.config.in_chans}")
    opt = torch.optim.AdamW(mae.parameters(), lr=config.lr, weight_decay=config.weight_decay, betas=(0.9, 0.95))

    def lr_at(step: int) -> float:
        if step < config.warmup_steps:
            return config.lr * (step + 1) / config.warmup_steps
        t = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
        return config.lr * 0.5 * (1 + math.cos(math.pi * t))

    rng = np.random.default_rng(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    mae.train()
    bar = tqdm(range(config.steps), desc="train MAE", disable=not progress, unit="step", mininterval=1.0)
    t0 = time.perf_counter()
    for step in bar:
        if images is None:
            batch = random_crops(config.batch_size, size, rng, scale=config.crop_scale, split="train")
        else:
            batch = images[rng.integers(0, len(images), config.batch_size)]
            flip = rng.random(config.batch_size) < 0.5
            batch = np.where(flip[:, None, None, None], batch[:, :, ::-1], batch)
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        loss = mae.loss(torch.from_numpy(to_float_nchw(batch)), config.mask_ratio, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    log.info("trained %s for %d steps in %.0f s", config.arch, config.steps, time.perf_counter() - t0)
    return mae.eval()


def get_restorer(config: RestorerConfig = RestorerConfig(), progress: bool = True) -> MaskedAutoencoder:
    """The pre-trained restorer for ``config``: from the cache, or trained and cached."""
    from safetensors.torch import load_file, save_file

    folder = cache.entry_dir("restorers", cache.config_key(config))
    path = folder / "mae.safetensors"
    mae = create_model(config.arch)
    if path.exists():
        mae.load_state_dict(load_file(str(path)))
        return mae.eval()
    mae = train_mae(config, progress=progress)
    tmp = path.with_suffix(".tmp")
    save_file({k: v.contiguous() for k, v in mae.state_dict().items()}, str(tmp))
    tmp.replace(path)
    return mae


def random_token_masks(n: int, num_tokens: int, ratio: float, seed: int = 0) -> np.ndarray:
    """(n, num_tokens) float32 masks with round(ratio * num_tokens) tokens set to 1 each."""
    rng = np.random.default_rng(seed)
    count = int(round(ratio * num_tokens))
    order = np.argsort(rng.random((n, num_tokens)), axis=1)
    mask = np.zeros((n, num_tokens), np.float32)
    np.put_along_axis(mask, order[:, :count], 1.0, axis=1)
    return mask


@torch.no_grad()
def restoration_psnr(mae: MaskedAutoencoder, images: np.ndarray, mask_ratio: float = 0.75,
                     seed: int = 0, batch_size: int = 256) -> float:
    """PSNR (dB, peak 1) of the restored pixels against the originals, over masked pixels
    only, for random token masks at ``mask_ratio``. images: (N, H, W, C) uint8."""
    x = torch.from_numpy(to_float_nchw(images))
    mask = torch.from_numpy(random_token_masks(len(x), mae.config.num_tokens, mask_ratio, seed))
    se, count = 0.0, 0.0
    for i in range(0, len(x), batch_size):
        xb, mb = x[i:i + batch_size], mask[i:i + batch_size]
        out = mae(xb, mb).clamp(0, 1)
        pixel = mae.pixel_mask(mb, xb.shape[-2:]).expand_as(xb)
        se += float((((out - xb) ** 2) * pixel).sum())
        count += float(pixel.sum())
    return float(10 * np.log10(1.0 / max(se / max(count, 1.0), 1e-12)))
