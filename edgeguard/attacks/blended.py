"""Blended: alpha-blend a trigger image, over the whole frame or inside a local patch."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from edgeguard.attacks import triggers
from edgeguard.attacks.base import Attack
from edgeguard.errors import InvalidArgumentError


@dataclass
class Blended(Attack):
    """Dirty-label blend x' = (1 - alpha) x + alpha t (Chen et al. 2017).

    BackdoorBench blends a photo (Hello Kitty) over the whole image with alpha 0.2 at train
    and test time; we ship no such photo, so the default trigger is scikit-image's
    ``chelsea`` cat photo.

    Attributes:
        alpha: blend weight.
        photo: name of a ``skimage.data`` photo used as the trigger image.
    """

    alpha: float = 0.2
    photo: str = "chelsea"

    name: ClassVar[str] = "blended"

    def _build(self, train) -> None:
        if not 0.0 < self.alpha <= 1.0:
            raise InvalidArgumentError(f"alpha must be in (0, 1], got {self.alpha}")
        h, w, _ = self.image_shape_
        self.trigger_ = triggers.resized_photo(self.photo, h, w)

    def _apply(self, images: np.ndarray) -> np.ndarray:
        return triggers.blend(images, self.trigger_, self.alpha)


@dataclass
class BlendedPatch(Attack):
    """A local blended patch (BDMAE's ``blended_patch`` kind): a fixed noise pattern of
    ``size`` x ``size`` pixels blended with weight ``alpha`` near the bottom-right corner,
    ``margin`` pixels from the border. BDMAE's exact icon, size and alpha are unpublished;
    these defaults make a faint local trigger that a small model still learns (at margin 1
    the small CPU victims did not learn it).
    """

    alpha: float = 0.5
    size: int = 6
    margin: int = 6

    name: ClassVar[str] = "blended_patch"

    def _build(self, train) -> None:
        h, w, c = self.image_shape_
        if not 0.0 < self.alpha <= 1.0:
            raise InvalidArgumentError(f"alpha must be in (0, 1], got {self.alpha}")
        if self.size + self.margin > min(h, w):
            raise InvalidArgumentError(f"patch of {self.size} px (+{self.margin} margin) does not fit {h}x{w}")
        top, left = h - self.size - self.margin, w - self.size - self.margin
        self.trigger_ = np.zeros((h, w, c), np.uint8)
        self.trigger_[top : top + self.size, left : left + self.size] = triggers.noise_pattern(
            self.size, self.size, c, self.seed + 7
        )
        self.alpha_map_ = np.zeros((h, w, 1), np.float32)
        self.alpha_map_[top : top + self.size, left : left + self.size] = self.alpha

    def _apply(self, images: np.ndarray) -> np.ndarray:
        return triggers.blend(images, self.trigger_, self.alpha_map_)
