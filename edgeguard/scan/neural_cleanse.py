"""Neural Cleanse adapted to regression: the baseline DRMGuard is compared against
(shared/spec/drmguard.md section 10.6).

Neural Cleanse looks, per class, for the smallest mask m and pattern p such that
x' = (1 - m) * x + m * p sends every clean image to that class. A regression model has no
classes to enumerate, so the target becomes a free variable y_t (the paper's adaptation):

    min_{m, p, y_t}  mean_i ||f(x'_i) - y_t||^2 / sum_j Var_i f_j(x_i)  +  lambda * mean(m)

The statistic is the mask's mean (the fraction of the image a trigger needs); a model is
flagged when it is below ``threshold``. Calibrate the threshold on benign models with
``edgeguard.scan.calibrate`` as for DRMGuard.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from edgeguard.errors import InvalidArgumentError, InvalidInputError
from edgeguard.scan.drmguard import ScanResult
from edgeguard.scan.plumbing import as_float_images, batched, frozen_eval, output_variance


@dataclass(frozen=True)
class NeuralCleanseConfig:
    """Settings of the adapted Neural Cleanse.

    Attributes:
        steps, batch_size, lr: Adam on the mask / pattern logits and the target.
        lambda_mask: weight of the mask's mean against the normalised output error (with
            0.5 the mask also spreads over the eye of a backdoored gaze model; 2.0 halves
            it and keeps the trigger).
        threshold: flag as backdoored when the mask mean is below it (calibrate it).
        collapse: ... and the outputs' variance under the mask is below this fraction of the clean one.
        seed: initialisation and batch order.
    """

    steps: int = 200
    batch_size: int = 50
    lr: float = 0.3
    lambda_mask: float = 2.0
    threshold: float = 0.02
    collapse: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 2:
            raise InvalidArgumentError("steps must be >= 1 and batch_size >= 2")
        if min(self.lr, self.threshold) <= 0 or self.lambda_mask < 0:
            raise InvalidArgumentError("lr and threshold must be positive, lambda_mask non-negative")
        if not 0.0 < self.collapse <= 1.0:
            raise InvalidArgumentError(f"collapse must be in (0, 1], got {self.collapse}")


class MaskPatternTrigger(nn.Module):
    """x -> (1 - m) * x + m * p with m = sigmoid (1, 1, H, W) and p = sigmoid (1, C, H, W)."""

    def __init__(self, channels: int, height: int, width: int):
        super().__init__()
        self.mask_logit = nn.Parameter(torch.full((1, 1, height, width), -3.0))
        self.pattern_logit = nn.Parameter(torch.zeros(1, channels, height, width))

    @property
    def mask(self) -> torch.Tensor:
        return torch.sigmoid(self.mask_logit)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.mask
        return (1 - m) * x + m * torch.sigmoid(self.pattern_logit)


def neural_cleanse(model: nn.Module, images, config: NeuralCleanseConfig = NeuralCleanseConfig(),
                   progress: bool = True) -> ScanResult:
    """Search a small mask + pattern + target that collapses ``model``'s outputs; decide.

    Args:
        model: a regression model; frozen during the search and left unchanged.
        images: clean inputs, (N, H, W, C) uint8 or (N, C, H, W) float in [0, 1]; N >= 2.
        config: the search's settings.
        progress: show a per-step progress bar.

    Returns a ScanResult whose statistic is the mask mean and whose ``generator`` is the
    trained MaskPatternTrigger."""
    x_all = as_float_images(images)
    if len(x_all) < 2:
        raise InvalidInputError("need at least 2 clean images")
    t0 = time.perf_counter()
    torch.manual_seed(config.seed)
    trigger = MaskPatternTrigger(*x_all.shape[1:])
    rng = np.random.default_rng(config.seed)
    losses: list[float] = []
    with frozen_eval(model):
        clean_var = output_variance(model, x_all)
        target = nn.Parameter(batched(lambda b: model(b).float(), x_all).mean(dim=0))
        opt = torch.optim.Adam([*trigger.parameters(), target], lr=config.lr)
        bar = tqdm(range(config.steps), desc="Neural Cleanse", disable=not progress, unit="step")
        for _ in bar:
            batch = x_all[rng.choice(len(x_all), min(config.batch_size, len(x_all)), replace=False)]
            error = (model(trigger(batch)).float() - target).pow(2).sum(dim=1).mean() / clean_var
            mask_mean = trigger.mask.mean()
            loss = error + config.lambda_mask * mask_mean
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            bar.set_postfix(err=f"{error.item():.2e}", mask=f"{mask_mean.item():.4f}")
        outputs = batched(lambda b: model(trigger(b)).float(), x_all)
        statistic = float(trigger.mask.detach().mean())
    residual = float(outputs.var(dim=0).sum() / clean_var)
    collapsed = residual < config.collapse
    return ScanResult(statistic=statistic, threshold=config.threshold, residual_variance=residual,
                      collapsed=collapsed, backdoored=collapsed and statistic < config.threshold,
                      target=outputs.mean(dim=0).numpy(), losses=losses, seconds=time.perf_counter() - t0,
                      generator=trigger.eval())

