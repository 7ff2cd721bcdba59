"""The training-time defenses EigenGuard is compared with.

- **Fine-tuning (FT)**: keep training the (possibly backdoored) model for a few epochs on a
  small clean set, 5% of the training set's size (BackdoorBench's FT baseline).
- **Spectral Signatures (SS**, Tran et al. 2018): train on the untrusted data, score every
  training sample by its squared projection on the top singular vector of its class's
  centred penultimate features, drop the ``removal_factor * poison_rate`` highest-scoring
  fraction of each class and retrain from scratch on the rest. A regression dataset has no
  classes: its samples form one group.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from edgeguard.data.dataset import ImageDataset, to_float_nchw
from edgeguard.errors import InvalidArgumentError
from edgeguard.train import TrainConfig, TrainHistory, fit


@dataclass(frozen=True)
class FineTuneConfig:
    """FT: ``clean_fraction`` of the training set's size in clean images, trained with ``train``."""

    clean_fraction: float = 0.05
    train: TrainConfig = TrainConfig(epochs=10, batch_size=64, lr=0.01, crop_padding=0)

    def __post_init__(self) -> None:
        if not 0 < self.clean_fraction <= 1:
            raise InvalidArgumentError(f"clean_fraction must be in (0, 1], got {self.clean_fraction}")


def fine_tune(model: nn.Module, clean: ImageDataset, config: FineTuneConfig = FineTuneConfig()) -> TrainHistory:
    """Fine-tune ``model`` in place on ``clean`` (already cut to the clean budget)."""
    return fit(model, clean, config.train, progress=False)


@dataclass(frozen=True)
class SpectralSignaturesConfig:
    """SS: drop ``removal_factor * poison_rate`` of each class (the paper's 1.5 epsilon)."""

    poison_rate: float = 0.1
    removal_factor: float = 1.5

    def __post_init__(self) -> None:
        if not 0 < self.poison_rate * self.removal_factor < 1:
            raise InvalidArgumentError("removal_factor * poison_rate must be in (0, 1)")


@torch.no_grad()
def penultimate_features(model: nn.Module, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """(N, H, W, C) uint8 images -> (N, D) float64 features of ``model.forward_features``."""
    if not hasattr(model, "forward_features"):
        raise InvalidArgumentError(f"{type(model).__name__} has no forward_features(); SS needs penultimate features")
    model.eval()
    out = [model.forward_features(torch.from_numpy(to_float_nchw(images[i:i + batch_size]))).double().numpy()
           for i in range(0, len(images), batch_size)]
    return np.concatenate(out)


def spectral_signature_scores(features: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """(N, D) features and (N,) group ids -> (N,) outlier scores: each sample's squared
    projection, after centring within its group, on the group's top right singular vector."""
    scores = np.zeros(len(features))
    for g in np.unique(groups):
        index = np.flatnonzero(groups == g)
        centred = features[index] - features[index].mean(axis=0)
        top = np.linalg.svd(centred, full_matrices=False)[2][0]
        scores[index] = (centred @ top) ** 2
    return scores


def spectral_signature_keep(data: ImageDataset, model: nn.Module,
                            config: SpectralSignaturesConfig = SpectralSignaturesConfig()) -> np.ndarray:
    """(N,) bool: the training samples SS keeps, judged by ``model`` trained on ``data``."""
    groups = data.labels if data.output == "classification" else np.zeros(len(data), dtype=np.int64)
    scores = spectral_signature_scores(penultimate_features(model, data.images), groups)
    keep = np.ones(len(data), dtype=bool)
    for g in np.unique(groups):
        index = np.flatnonzero(groups == g)
        drop = int(np.ceil(config.removal_factor * config.poison_rate * len(index) - 1e-9))  # 1.5 * 0.1 != 0.15
        keep[index[np.argsort(scores[index])[len(index) - drop:]]] = False
    return keep
