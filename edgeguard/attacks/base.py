"""The Attack base class: what every backdoor attack in the registry provides.

An attack is a dataclass: the constructor only stores parameters. ``fit(train)`` reads
the output kind (classification or regression), image size and classes and builds the trigger;
``poison(train)`` returns the poisoned training set; ``apply(images)`` stamps the test-time
trigger; ``backdoor_test(test)`` builds the triggered test set that ASR is measured on.
Training-controlled attacks (WaNet, input-aware) instead return a batch hook for the
training loop from ``training_hook(train)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Optional, Union

import numpy as np

from edgeguard.data.dataset import ImageDataset
from edgeguard.errors import InvalidArgumentError, InvalidInputError
from edgeguard.outputs import OutputKind

# Default regression target: a gaze (pitch, yaw) in radians, up and to the side.
DEFAULT_GAZE_TARGET = (0.2, -0.4)


@dataclass
class PoisonedSet:
    """A training set after poisoning and which samples were poisoned."""

    data: ImageDataset
    poison_index: np.ndarray  # (P,) int64 indices into data


@dataclass
class BackdoorTestSet:
    """Triggered test images with their true labels and the attack's target labels.

    Classification all-to-one excludes target-class images (spec/attacks.md section 1).
    """

    images: np.ndarray  # (M, H, W, C) uint8, triggered
    labels: np.ndarray  # (M,) true class or (M, D) true regression values
    targets: np.ndarray  # (M,) target class or (M, D) target values
    index: np.ndarray  # (M,) indices into the clean test set


@dataclass
class Attack:
    """Common parameters.

    Attributes:
        target: target class (classification) or target vector (regression); None picks
            class 0, or DEFAULT_GAZE_TARGET for regression.
        all_to_all: classification only: label y goes to (y + 1) mod K instead of ``target``.
        poison_rate: poisoned samples / whole training set (also for clean-label attacks).
        seed: picks the poisoned samples and any random trigger parts.
    """

    target: Optional[Union[int, tuple[float, ...]]] = None
    all_to_all: bool = False
    poison_rate: float = 0.1
    seed: int = 0

    name: ClassVar[str] = "attack"
    kind: ClassVar[str] = "dirty"  # "dirty", "clean_label" or "training"

    def __post_init__(self) -> None:
        if not 0.0 <= self.poison_rate <= 1.0:
            raise InvalidArgumentError(f"poison_rate must be in [0, 1], got {self.poison_rate}")

    # -- set-up ---------------------------------------------------------------------------
    def fit(self, train: ImageDataset) -> "Attack":
        """Read output kind, image shape and classes from ``train`` and build the trigger."""
        self.output_ = train.output
        self.image_shape_ = train.image_shape
        self.num_classes_ = train.num_classes
        if train.output is OutputKind.CLASSIFICATION:
            target = 0 if self.target is None else self.target
            if not isinstance(target, (int, np.integer)) or not 0 <= target < self.num_classes_:
                raise InvalidArgumentError(f"target must be a class id in [0, {self.num_classes_}), got {target!r}")
            self.target_ = int(target)
        else:
            if self.all_to_all:
                raise InvalidArgumentError("all_to_all applies to classification only")
            target = DEFAULT_GAZE_TARGET if self.target is None else self.target
            target = np.asarray(target, dtype=np.float32).reshape(-1)
            if target.shape != (train.labels.shape[1],):
                raise InvalidArgumentError(f"regression target must have {train.labels.shape[1]} values, got {target}")
            self.target_ = target
        self._build(train)
        return self

    def _build(self, train: ImageDataset) -> None:
        """Subclasses build their trigger here."""

    def _check_fitted(self, images: Optional[np.ndarray] = None) -> None:
        if not hasattr(self, "image_shape_"):
            raise InvalidArgumentError(f"call {type(self).__name__}.fit(train) before using the attack")
        if images is not None:
            if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != self.image_shape_:
                raise InvalidInputError(
                    f"expected (N, {', '.join(map(str, self.image_shape_))}) uint8 images, "
                    f"got {images.shape} {images.dtype}"
                )

    # -- labels ---------------------------------------------------------------------------
    def targets(self, labels: np.ndarray) -> np.ndarray:
        """The label each sample should get when triggered."""
        self._check_fitted()
        if self.output_ is OutputKind.REGRESSION:
            return np.broadcast_to(self.target_, labels.shape).astype(np.float32)
        if self.all_to_all:
            return (labels + 1) % self.num_classes_
        return np.full_like(labels, self.target_)

    def _is_target(self, labels: np.ndarray, tol_deg: float = 5.0) -> np.ndarray:
        """Samples that already carry the target label (regression: within tol_deg)."""
        return ~self.output_.moved(labels, self.targets(labels), tol_deg)

    # -- triggers -------------------------------------------------------------------------
    def apply(self, images: np.ndarray) -> np.ndarray:
        """Stamp the test-time trigger: (N, H, W, C) uint8 -> same."""
        self._check_fitted(images)
        return self._apply(images)

    def _apply(self, images: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def poison(self, train: ImageDataset, **context: Any) -> PoisonedSet:
        """Poison ``round(poison_rate * N)`` training samples.

        Dirty-label attacks draw them from all samples and relabel them to the target;
        clean-label attacks draw them from target-class samples only and keep labels;
        training-controlled attacks return the data unchanged (they poison per batch).
        """
        self._check_fitted(train.images)
        if self.kind == "training":
            return PoisonedSet(train, np.zeros(0, dtype=np.int64))
        rng = np.random.default_rng(self.seed)
        count = int(round(self.poison_rate * len(train)))
        if self.kind == "clean_label":
            pool = np.flatnonzero(self._is_target(train.labels))
        else:
            pool = np.arange(len(train))
        index = np.sort(rng.choice(pool, size=min(count, len(pool)), replace=False))
        images, labels = train.images.copy(), train.labels.copy()
        images[index] = self._poison_images(train.images[index], train.labels[index], **context)
        if self.kind == "dirty":
            labels[index] = self.targets(train.labels[index])
        return PoisonedSet(train.replace(images=images, labels=labels), index)

    def _poison_images(self, images: np.ndarray, labels: np.ndarray, **context: Any) -> np.ndarray:
        """Training-time version of the trigger (LC adds an adversarial perturbation)."""
        return self._apply(images)

    def training_hook(self, train: ImageDataset, progress: bool = True):
        """A ``edgeguard.train.BatchHook`` for training-controlled attacks, else None."""
        return None

    def backdoor_test(self, test: ImageDataset) -> BackdoorTestSet:
        """Trigger every test image whose label is not already the target."""
        self._check_fitted(test.images)
        index = np.flatnonzero(~self._is_target(test.labels)) if self.output_ is OutputKind.CLASSIFICATION \
            else np.arange(len(test))
        labels = test.labels[index]
        return BackdoorTestSet(self.apply(test.images[index]), labels, self.targets(labels), index)

    # -- learned state (input-aware generators) -------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Learned trigger parameters to save with the victim model (most attacks: none)."""
        return {}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore what ``state_dict`` returned (after ``fit``)."""
