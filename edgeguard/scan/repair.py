"""Repair a model a scan flagged: unlearn the reverse-engineered trigger
(shared/spec/drmguard.md section 6).

The model is fine-tuned on the clean images plus the same images passed through the scan's
trigger generator, both with the clean images' true labels, so the trigger stops moving the
output. The mix is 50/50 and the schedule short (a few epochs at a small learning rate), so
clean behaviour is kept.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import nn

from edgeguard.data.dataset import ImageDataset, to_float_nchw
from edgeguard.errors import InvalidArgumentError, InvalidInputError
from edgeguard.train import TrainConfig, TrainHistory, fit, predict


@dataclass(frozen=True)
class RepairConfig:
    """Fine-tuning settings of the repair (SGD, cosine schedule, no augmentation).

    Attributes:
        train: the fine-tuning schedule.
        freeze_norm: keep the model's batch-norm statistics as trained (see ``fit``): a few
            hundred frames, half of them triggered, estimate them worse than the training set
            did. On the development zoo's two BadNets models it left more attack error after
            repair (27 vs 22 and 14 vs 11 degrees) at about the same clean error (+1.2 vs +1.4,
            +0.6 vs +0.5 degrees).
        labels: what both copies of a frame are trained towards: "model", the flagged model's
            own answer on the clean frame (no labels needed; the clean behaviour is the
            starting point, so only the trigger's effect is trained away), or "given", the
            frames' labels.
    """

    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=5, lr=0.005, crop_padding=0, batch_size=64))
    freeze_norm: bool = True
    labels: str = "given"

    def __post_init__(self) -> None:
        if self.labels not in ("model", "given"):
            raise InvalidArgumentError(f"labels must be 'model' or 'given', got {self.labels!r}")


@torch.no_grad()
def apply_trigger(generator: nn.Module, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """(N, H, W, C) uint8 -> the generator's output, (N, H, W, C) uint8."""
    generator.eval()
    out = [generator(torch.from_numpy(to_float_nchw(images[i:i + batch_size]))).clamp(0, 1).mul(255).round()
           .to(torch.uint8).permute(0, 2, 3, 1).numpy() for i in range(0, len(images), batch_size)]
    return np.concatenate(out)


def repair(model: nn.Module, generator: nn.Module, clean: ImageDataset, config: RepairConfig = RepairConfig(),
           progress: bool = True) -> TrainHistory:
    """Fine-tune ``model`` in place on ``clean`` and on ``generator(clean)`` with the clean labels.

    Args:
        model: the flagged model.
        generator: ``ScanResult.generator`` of its scan.
        clean: labelled clean images (the scan's, or more of them).
    """
    if len(clean) < 2:
        raise InvalidInputError("repair needs at least 2 labelled clean images")
    labels = clean.labels
    if config.labels == "model":
        answers = predict(model, clean.images)
        labels = answers.argmax(1).astype(clean.labels.dtype) if clean.task == "classification" \
            else answers.astype(np.float32)
    triggered = apply_trigger(generator, clean.images)
    mixed = replace(clean, images=np.concatenate([clean.images, triggered]), labels=np.concatenate([labels, labels]))
    train = replace(config.train, batch_size=min(config.train.batch_size, len(mixed)))
    return fit(model, mixed, train, progress=progress, freeze_norm=config.freeze_norm)
