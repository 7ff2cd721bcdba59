"""One training loop for classifiers and regressors.

``fit(model, data, config)`` trains in place with SGD + cosine schedule (BackdoorBench's
recipe), random-crop augmentation, a tqdm progress bar and per-epoch checkpoints it can
resume from. Training-controlled attacks (WaNet, input-aware) plug in through a
``BatchHook`` that rewrites each augmented mini-batch.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional, Protocol, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from edgeguard.data.dataset import ImageDataset, to_float_nchw
from edgeguard.errors import InvalidArgumentError
from edgeguard.fileio import write_atomically
from edgeguard.outputs import OutputKind
from edgeguard.runtime.spec import ModelSpec

log = logging.getLogger(__name__)

OPTIMIZERS = ("sgd", "adam")
LOSSES = {"cross_entropy": F.cross_entropy, "l1": F.l1_loss, "mse": F.mse_loss}
PRECISIONS = ("fp32", "bf16", "auto")


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of the training loop.

    Attributes:
        epochs: passes over the data.
        batch_size: images per step (the last partial batch is dropped, as BackdoorBench does).
        optimizer: "sgd" (BackdoorBench's, with momentum) or "adam".
        lr, momentum, weight_decay: optimiser settings; the learning rate follows a per-step cosine.
        crop_padding: random-crop augmentation with this zero padding (0 disables).
        hflip: random horizontal flips (off: a flip changes a sign's arrow or a gaze's yaw).
        loss: "auto" (cross-entropy for classification, L1 for regression), "cross_entropy", "l1", "mse".
        seed: seeds initialisation order, shuffling and augmentation.
        precision: "fp32", "bf16" (autocast on the CPU) or "auto": bf16 where the CPU runs it
            natively (AVX512-BF16/AMX; about 2x faster for the small victims), else fp32.
    """

    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    crop_padding: int = 4
    hflip: bool = False
    loss: str = "auto"
    seed: int = 0
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise InvalidArgumentError(f"epochs and batch_size must be >= 1, got {self.epochs}, {self.batch_size}")
        if self.optimizer not in OPTIMIZERS:
            raise InvalidArgumentError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if not self.lr > 0 or not 0 <= self.momentum < 1 or self.weight_decay < 0 or self.crop_padding < 0:
            raise InvalidArgumentError(f"need lr > 0, momentum in [0, 1), weight_decay >= 0, crop_padding >= 0; got "
                                       f"{self.lr}, {self.momentum}, {self.weight_decay}, {self.crop_padding}")
        if self.loss not in ("auto", *LOSSES):
            raise InvalidArgumentError(f"unknown loss {self.loss!r}; choose one of {sorted(LOSSES)} or 'auto'")
        if self.precision not in PRECISIONS:
            raise InvalidArgumentError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")


class BatchHook(Protocol):
    """Rewrites each training mini-batch (training-controlled attacks).

    ``__call__(x, y)`` gets the augmented batch (N, C, H, W) in [0, 1] and its labels and
    returns the batch to train on, its labels and an extra loss (or None). ``step()`` runs
    after the model's backward pass (e.g. to update a trigger generator).
    """

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]: ...

    def step(self) -> None: ...


@dataclass
class TrainHistory:
    """Per-epoch mean training loss (and accuracy for classification), plus seconds."""

    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    seconds: float = 0.0


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Per-image random crop of (N, C, H, W) after zero padding by ``padding`` pixels."""
    if padding <= 0:
        return x
    n, c, h, w = x.shape
    padded = F.pad(x, (padding,) * 4)
    oy = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    ox = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    rows = (oy[:, None] + torch.arange(h))[:, None, :, None]
    cols = (ox[:, None] + torch.arange(w))[:, None, None, :]
    return padded[torch.arange(n)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols]


def use_bf16(precision: str) -> bool:
    """Whether a precision setting means bf16 autocast on this machine."""
    if precision not in PRECISIONS:
        raise InvalidArgumentError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return precision == "bf16"


def loss_function(output: Union[OutputKind, str], name: str = "auto"):
    """The loss callable: ``name``, or with "auto" the output kind's (cross-entropy for
    classification, L1 for regression)."""
    if name == "auto":
        name = OutputKind.of(output).loss
    if name not in LOSSES:
        raise InvalidArgumentError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)} or 'auto'")
    return LOSSES[name]


def _save_checkpoint(path: Path, model: nn.Module, opt, sched, epoch: int, history: TrainHistory,
                     hook: Optional[BatchHook] = None) -> None:
    state = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "epoch": epoch,
        "loss": history.loss,
        "accuracy": history.accuracy,
        "seconds": history.seconds,
    }
    if hasattr(hook, "state_dict"):  # a training-controlled attack's own state (RNGs, generator)
        state["hook"] = hook.state_dict()
    write_atomically(path, lambda tmp: torch.save(state, tmp))


def fit(
    model: nn.Module,
    data: ImageDataset,
    config: TrainConfig = TrainConfig(),
    hook: Optional[BatchHook] = None,
    checkpoint: Optional[Path] = None,
    progress: bool = True,
    freeze_norm: bool = False,
) -> TrainHistory:
    """Train ``model`` in place on ``data``.

    Args:
        model: maps (N, C, H, W) in [0, 1] to (N, K) logits or (N, D) regression outputs.
        data: training images (already poisoned, for data-poisoning attacks).
        config: hyper-parameters.
        hook: optional per-batch rewrite (training-controlled attacks).
        checkpoint: file written after every epoch; when it exists, training resumes from it.
            A hook with ``state_dict``/``load_state_dict`` is saved and restored with it (a
            checkpoint without the hook's state is not resumed).
        progress: show a tqdm bar.
        freeze_norm: keep batch-norm layers in eval mode (running statistics untouched): for
            fine-tuning on a few hundred images, whose batch statistics would overwrite them.
    """
    if len(data) < config.batch_size:
        raise InvalidArgumentError(f"need at least batch_size={config.batch_size} samples, got {len(data)}")
    torch.manual_seed(config.seed)
    criterion = loss_function(data.output, config.loss)
    classifier = data.output is OutputKind.CLASSIFICATION
    x_all = torch.from_numpy(to_float_nchw(data.images))
    y_all = torch.from_numpy(data.labels)
    steps_per_epoch = len(data) // config.batch_size
    if config.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.epochs * steps_per_epoch)
    history = TrainHistory()
    start = 0
    state = torch.load(checkpoint, weights_only=True) if checkpoint is not None and Path(checkpoint).exists() else None
    if state is not None and hasattr(hook, "load_state_dict") and "hook" not in state:
        log.info("%s holds no state of the batch hook; training from the start", checkpoint)
        state = None
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start, history.loss, history.accuracy = state["epoch"], list(state["loss"]), list(state["accuracy"])
        history.seconds = float(state.get("seconds", 0.0))  # so a resumed run reports its whole training time
        if "hook" in state and hasattr(hook, "load_state_dict"):
            hook.load_state_dict(state["hook"])
        log.info("resuming from %s at epoch %d", checkpoint, start)
    generator = torch.Generator().manual_seed(config.seed)
    bf16 = use_bf16(config.precision)
    # bf16 convolutions are fastest channels-last; fp32 stays in the default layout, where
    # torch 2.13's CPU backward crashes for some small channels-last shapes (width 0.125 at
    # 36x60 segfaults).
    layout = torch.channels_last if bf16 else torch.contiguous_format
    model.to(memory_format=layout)
    t0, resumed_seconds = time.perf_counter(), history.seconds
    desc = f"train {data.name}" if checkpoint is None else f"train {data.name} (cached in {Path(checkpoint).parent})"
    bar = tqdm(range(start, config.epochs), desc=desc, disable=not progress, unit="epoch")
    for epoch in bar:
        generator.manual_seed(config.seed * 1000 + epoch)  # resumable: each epoch's randomness is fixed
        model.train()
        if freeze_norm:
            for module in model.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        order = torch.randperm(len(data), generator=generator)
        total, correct, seen = 0.0, 0, 0
        for step in range(steps_per_epoch):
            idx = order[step * config.batch_size : (step + 1) * config.batch_size]
            x = random_crop(x_all[idx], config.crop_padding, generator)
            if config.hflip:
                flip = torch.rand(len(x), generator=generator) < 0.5
                x = torch.where(flip[:, None, None, None], x.flip(3), x)
            y = y_all[idx]
            extra = None
            if hook is not None:
                x, y, extra = hook(x, y)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = model(x.contiguous(memory_format=layout))
            out = out.float()
            loss = criterion(out, y)
            if extra is not None:
                loss = loss + extra
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if hook is not None:
                hook.step()
            total += float(loss.detach()) * len(x)
            seen += len(x)
            if classifier:
                correct += int((out.argmax(1) == y).sum())
        history.loss.append(total / seen)
        if classifier:
            history.accuracy.append(correct / seen)
        bar.set_postfix(loss=f"{history.loss[-1]:.3f}", **({"acc": f"{history.accuracy[-1]:.3f}"} if history.accuracy else {}))
        if checkpoint is not None:
            _save_checkpoint(Path(checkpoint), model, opt, sched, epoch + 1,
                             replace(history, seconds=resumed_seconds + time.perf_counter() - t0), hook)
    history.seconds = resumed_seconds + time.perf_counter() - t0
    model.to(memory_format=torch.contiguous_format)
    model.eval()
    return history


@torch.no_grad()
def predict(model: nn.Module, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Model outputs for (N, H, W, C) uint8 images -> (N, K) float32 numpy, eval mode."""
    model.eval()
    outs = []
    for i in range(0, len(images), batch_size):
        x = torch.from_numpy(to_float_nchw(images[i : i + batch_size]))
        outs.append(model(x).float().numpy())
    if not outs:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(outs)


def spec_of(data: ImageDataset) -> ModelSpec:
    """The ModelSpec of a model trained on ``data``: its frames' shape, output kind and count."""

    return ModelSpec(role="model", input_shape=tuple(int(d) for d in to_float_nchw(data.images[:1]).shape[1:]),
                     output=data.output, outputs=data.num_classes)


def train_model(data: ImageDataset, config: TrainConfig = TrainConfig(), arch: Optional[str] = None,
                width: float = 0.25, checkpoint: Optional[Union[str, Path]] = None, progress: bool = True) -> nn.Module:
    """A model trained on your ``data`` (classification or regression, from its labels) and
    returned in eval mode, carrying its ``ModelSpec`` as ``model.spec`` so ``export_model`` and
    the Purifier know its input and outputs. ``arch``: an ``edgeguard.models`` name (default
    ``preact_resnet18`` for classification, ``gaze_resnet18`` for regression); ``width``: its
    channel multiplier; ``checkpoint``: a file to resume from after an interruption."""
    from edgeguard.models import create_model

    if len(data) < config.batch_size:
        raise InvalidArgumentError(f"{len(data)} training images are fewer than one batch ({config.batch_size}); "
                                   "lower TrainConfig.batch_size")
    arch = arch or ("gaze_resnet18" if data.output is OutputKind.REGRESSION else "preact_resnet18")
    torch.manual_seed(config.seed)
    model = create_model(arch, num_outputs=data.num_classes, width=width)
    channels = data.image_shape[-1]
    if getattr(model.config, "in_channels", channels) != channels:  # grey data, colour default (or back)
        mean, std = float(np.mean(model.config.mean)), float(np.mean(model.config.std))
        torch.manual_seed(config.seed)
        model = create_model(arch, num_outputs=data.num_classes, width=width, in_channels=channels,
                             mean=(mean,) * channels, std=(std,) * channels)
    model.spec = spec_of(data)
    fit(model, data, config, checkpoint=checkpoint, progress=progress)
    return model.eval()
