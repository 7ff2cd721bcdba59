"""SIG: a clean-label sinusoidal signal (Barni et al. 2019)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from edgeguard.attacks import triggers
from edgeguard.attacks.base import Attack


@dataclass
class SIG(Attack):
    """Additive horizontal sinusoid v(i, j) = delta sin(2 pi j f / W), same for every row and
    channel; poisoned samples come from the target class and keep their labels.

    Attributes:
        delta: amplitude in 0..255 units (BackdoorBench: 40).
        frequency: periods across the width (6).
    """

    delta: float = 40.0
    frequency: float = 6.0

    name: ClassVar[str] = "sig"
    kind: ClassVar[str] = "clean_label"

    def _build(self, train) -> None:
        h, w, _ = self.image_shape_
        self.signal_ = triggers.sinusoid(h, w, self.delta, self.frequency)

    def _apply(self, images: np.ndarray) -> np.ndarray:
        return triggers.add(images, self.signal_)
