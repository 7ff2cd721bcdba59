"""BadNets: a small patch that replaces pixels (Gu et al. 2017)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

import numpy as np

from edgeguard.attacks import triggers
from edgeguard.attacks.base import Attack
from edgeguard.errors import InvalidArgumentError


@dataclass
class BadNets(Attack):
    """Dirty-label patch trigger.

    Attributes:
        pattern: "color" (default: BDMAE's 3x3 random-colour patch, rows 16-18, cols
            27-29 on 32x32, placed proportionally on other sizes), "white" (BackdoorBench:
            solid white, bottom-right corner, no margin) or "checker" (black/white
            checkerboard, bottom-right). The small CPU victims learn the colour patch but
            not the corner ones within their short schedule.
        size: patch side in pixels; None gives 3 on small images and 15 on 224-px ones.
    """

    pattern: str = "color"
    size: Optional[int] = None

    name: ClassVar[str] = "badnets"

    def _build(self, train) -> None:
        if not isinstance(self.pattern, str):
            raise InvalidArgumentError("BadNets' pattern is a name ('color', 'white', 'checker'); for a patch of your "
                                       "own use the 'trigger' attack (edgeguard.attacks.TriggerImage)")
        h, w, _ = self.image_shape_
        size = self.size or (3 if min(h, w) <= 64 else max(3, round(15 * min(h, w) / 224)))
        if self.pattern == "white":
            patch = np.full((size, size, 1), 255, np.uint8)
            self.position_ = (h - size, w - size)
        elif self.pattern == "checker":
            patch = triggers.checkerboard(size)
            self.position_ = (h - size, w - size)
        elif self.pattern == "color":
            patch = triggers.BDMAE_COLOR_PATCH
            if size != 3:
                patch = np.repeat(np.repeat(patch, -(-size // 3), 0), -(-size // 3), 1)[:size, :size]
            self.position_ = (min(h - size, round(16 * h / 32)), min(w - size, round(27 * w / 32)))
        else:
            raise InvalidArgumentError(f"pattern must be 'white', 'color' or 'checker', got {self.pattern!r}; for a "
                                       "patch of your own use the 'trigger' attack (edgeguard.attacks.TriggerImage)")
        if size > min(h, w):
            raise InvalidArgumentError(f"patch size {size} does not fit a {h}x{w} image")
        self.patch_ = patch

    def _apply(self, images: np.ndarray) -> np.ndarray:
        return triggers.stamp(images, self.patch_, *self.position_)
