"""Repair a model a scan flagged: unlearn the reverse-engineered trigger
(shared/spec/drmguard.md section 6).

The model is fine-tuned on the clean images plus the same images passed through the scan's
trigger generator, both with the clean images' true labels, so the trigger stops moving the
output. The mix is 50/50 and the schedule short (a few epochs at a small learning rate), so
clean behaviour is kept.

A scan does not always find the trigger itself: on some models the cheapest collapse is
another edit that sends every frame near (not onto) the target. So the repair runs in
rounds: after each fine-tune the repaired model is scanned again, and while its outputs
still collapse under some edit, the next round unlearns every generator found so far.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Optional

import numpy as np
import torch
from torch import nn

from edgeguard.data.dataset import ImageDataset, to_float_nchw
from edgeguard.errors import InvalidArgumentError, InvalidInputError
from edgeguard.train import TrainConfig, TrainHistory, fit, predict

if TYPE_CHECKING:
    from edgeguard.scan.drmguard import DRMGuardConfig


@dataclass(frozen=True)
class RepairConfig:
    """Fine-tuning settings of the repair (SGD, cosine schedule, no augmentation).

    Attributes:
        train: the fine-tuning schedule.
        freeze_norm: keep the model's batch-norm statistics as trained (see ``fit``): a few
            hundred frames, half of them triggered, estimate them worse than the training set
            did (figures: docs/decisions.md).
        labels: what both copies of a frame are trained towards: "model", the flagged model's
            own answer on the clean frame (no labels needed; the clean behaviour is the
            starting point, so only the trigger's effect is trained away), or "given", the
            frames' labels.
        rounds: scan-and-unlearn rounds (>= 1). Round k > 1 re-scans the repaired model and,
            if its outputs still collapse, fine-tunes it again against every generator found
            so far; it stops early once a re-scan finds no collapse. The second round helps
            where the first scan's collapse missed the trigger (it unlearns one more edit)
            and, with the clean copies repeated, gives back some of the first round's clean
            error; the benchmark's repair rows report both rounds' effect.
    """

    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=5, lr=0.005, crop_padding=0, batch_size=64))
    freeze_norm: bool = True
    labels: str = "given"
    rounds: int = 2

    def __post_init__(self) -> None:
        if self.labels not in ("model", "given"):
            raise InvalidArgumentError(f"labels must be 'model' or 'given', got {self.labels!r}")
        if not isinstance(self.rounds, int) or self.rounds < 1:
            raise InvalidArgumentError(f"rounds must be an integer >= 1, got {self.rounds!r}")


@dataclass
class RepairResult:
    """What a repair did.

    Attributes:
        history: the fine-tuning of each round that ran.
        rescans: the re-scan before each round after the first (and the one that stopped
            the repair early, if any): ``ScanResult`` of the partly repaired model.
        generators: the generators unlearned (the scan's first).
    """

    history: list[TrainHistory]
    rescans: list = field(default_factory=list)
    generators: list = field(default_factory=list)

    @property
    def rounds(self) -> int:
        return len(self.history)


@torch.no_grad()
def apply_trigger(generator: nn.Module, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """(N, H, W, C) uint8 -> the generator's output, (N, H, W, C) uint8."""
    generator.eval()
    out = [generator(torch.from_numpy(to_float_nchw(images[i:i + batch_size]))).clamp(0, 1).mul(255).round()
           .to(torch.uint8).permute(0, 2, 3, 1).numpy() for i in range(0, len(images), batch_size)]
    return np.concatenate(out)


def repair(model: nn.Module, generator: nn.Module, clean: ImageDataset, config: RepairConfig = RepairConfig(),
           progress: bool = True, scan_config: Optional["DRMGuardConfig"] = None) -> RepairResult:
    """Fine-tune ``model`` in place on ``clean`` and on ``generator(clean)`` with the clean
    labels, then (``config.rounds`` > 1) re-scan it and unlearn what the re-scan finds too.

    Args:
        model: the flagged model.
        generator: ``ScanResult.generator`` of its scan.
        clean: labelled clean images (the scan's, or more of them); the re-scans use them.
        scan_config: the re-scans' settings (use the first scan's); default: DRMGuard's
            defaults for the data's output kind.
    """
    from edgeguard.scan.drmguard import DRMGuardConfig, scan

    if len(clean) < 2:
        raise InvalidInputError("repair needs at least 2 labelled clean images")
    if scan_config is None and config.rounds > 1:
        scan_config = DRMGuardConfig(outputs=clean.output.scan_outputs)
    labels = clean.labels
    if config.labels == "model":
        answers = predict(model, clean.images)
        labels = clean.output.check_labels(clean.output.answer(answers))
    result = RepairResult(history=[], generators=[generator])
    for round_ in range(config.rounds):
        if round_ > 0:
            found = scan(model, clean.images, scan_config, progress=progress)
            result.rescans.append(found)
            if not found.collapsed:  # no edit collapses the outputs any more
                break
            result.generators.append(found.generator)
        triggered = [apply_trigger(g, clean.images) for g in result.generators]
        copies = len(triggered)
        mixed = replace(clean, images=np.concatenate([clean.images] * copies + triggered),
                        labels=np.concatenate([labels] * (2 * copies)))
        train = replace(config.train, batch_size=min(config.train.batch_size, len(mixed)))
        result.history.append(fit(model, mixed, train, progress=progress, freeze_norm=config.freeze_norm))
        model.eval()
    return result
