"""Your own trigger: an image and a placement rule, no new class needed."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Optional, Union

import numpy as np

from edgeguard.attacks import triggers
from edgeguard.attacks.base import Attack
from edgeguard.errors import InvalidArgumentError

PLACEMENTS = ("bottom_right", "bottom_left", "top_right", "top_left", "center", "random")


@dataclass
class TriggerImage(Attack):
    """Dirty-label attack with a user-supplied trigger, stamped or blended where a rule says.

        attack = TriggerImage(image=my_sticker, alpha=0.6, position="center", target=3)
        get_victim(VictimConfig(attack="trigger", attack_options={"image": my_sticker}))

    Attributes:
        image: the trigger, (h, w, C) or (h, w) uint8 (C 1 or 3; converted to the frames'
            channels).
        alpha: 1.0 replaces the pixels under the trigger (BadNets-like); below 1 blends
            x' = (1 - alpha) x + alpha t. A (h, w) map in [0, 1] gives the trigger a shape
            (0 where it is transparent).
        position: (top, left) in pixels, or a rule: "bottom_right" (default), "bottom_left",
            "top_right", "top_left" (each ``margin`` pixels from the borders), "center", or
            "random" (a new place per image, drawn from ``seed``: a trigger that moves).
        margin: pixels between the trigger and the borders for the corner rules.
    """

    image: Optional[np.ndarray] = field(default=None, repr=False)
    alpha: Union[float, np.ndarray] = 1.0
    position: Union[str, tuple[int, int]] = "bottom_right"
    margin: int = 1

    name: ClassVar[str] = "trigger"

    def _build(self, train) -> None:
        if self.image is None:
            raise InvalidArgumentError("TriggerImage needs image=(h, w, C) uint8 pixels of the trigger")
        image = np.asarray(self.image)
        if image.ndim == 2:
            image = image[..., None]
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] not in (1, 3) or 0 in image.shape:
            raise InvalidArgumentError(f"trigger image must be (h, w, C) or (h, w) uint8 with C 1 or 3, "
                                       f"got {np.asarray(self.image).shape} {np.asarray(self.image).dtype}")
        h, w, c = self.image_shape_
        th, tw = image.shape[:2]
        if th > h or tw > w:
            raise InvalidArgumentError(f"a {th}x{tw} trigger does not fit {h}x{w} frames")
        alpha = np.asarray(self.alpha, np.float32)
        if alpha.ndim not in (0, 2) or (alpha.ndim == 2 and alpha.shape != (th, tw)) \
                or not np.isfinite(alpha).all() or alpha.min() < 0 or alpha.max() > 1:
            raise InvalidArgumentError(f"alpha must be in [0, 1], a number or a ({th}, {tw}) map, got shape {alpha.shape}")
        if isinstance(self.position, str):
            if self.position not in PLACEMENTS:
                raise InvalidArgumentError(f"position must be (top, left) or one of {PLACEMENTS}, got {self.position!r}")
            corner = self.position not in ("center", "random")
            if corner and (self.margin < 0 or th + self.margin > h or tw + self.margin > w):
                raise InvalidArgumentError(f"margin {self.margin} does not leave room for a {th}x{tw} trigger "
                                           f"in {h}x{w} frames")
        else:
            top, left = self.position
            if not (0 <= top <= h - th and 0 <= left <= w - tw):
                raise InvalidArgumentError(f"position {self.position} puts the {th}x{tw} trigger outside {h}x{w} frames")
        self.pattern_ = triggers.match_channels(image, c)
        self.alpha_ = np.broadcast_to(alpha, (th, tw))[..., None]

    def positions(self, count: int) -> np.ndarray:
        """(count, 2) top-left corners the trigger goes to on ``count`` frames."""
        self._check_fitted()
        h, w, _ = self.image_shape_
        th, tw = self.pattern_.shape[:2]
        m = self.margin
        fixed = {"bottom_right": (h - th - m, w - tw - m), "bottom_left": (h - th - m, m),
                 "top_right": (m, w - tw - m), "top_left": (m, m), "center": ((h - th) // 2, (w - tw) // 2)}
        if self.position == "random":
            rng = np.random.default_rng(self.seed + 911)
            return np.stack([rng.integers(0, h - th + 1, count), rng.integers(0, w - tw + 1, count)], axis=1)
        corner = fixed[self.position] if isinstance(self.position, str) else tuple(self.position)
        return np.tile(np.asarray(corner, np.int64), (count, 1))

    def _apply(self, images: np.ndarray) -> np.ndarray:
        out = images.copy()
        th, tw = self.pattern_.shape[:2]
        for i, (top, left) in enumerate(self.positions(len(images))):
            region = out[i : i + 1, top : top + th, left : left + tw]
            out[i : i + 1, top : top + th, left : left + tw] = triggers.blend(region, self.pattern_, self.alpha_)
        return out
