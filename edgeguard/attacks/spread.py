"""An adaptive attack on spectral defenses: a trigger spread over many feature directions.

EigenGuard (and Spectral Signatures) rely on the trigger's features concentrating in a few
top singular directions of a batch. This attack splits the poison over ``patterns``
independent random-colour patches at random positions: each poisoned image carries one of
them, so each pattern's direction holds only 1/patterns of the poison energy and none
need reach a batch's top-k. At test time every image gets one pattern (chosen per image).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import zlib

import numpy as np

from edgeguard.attacks import triggers
from edgeguard.attacks.base import Attack
from edgeguard.errors import InvalidArgumentError


@dataclass
class SpreadPatch(Attack):
    """Dirty-label attack with ``patterns`` distinct patch triggers sharing one target.

    Attributes:
        patterns: how many distinct patches (each random colours, random position).
        size: patch side in pixels.
    """

    patterns: int = 16
    size: int = 3

    name: ClassVar[str] = "spread"

    def _build(self, train) -> None:
        h, w, c = self.image_shape_
        if self.patterns < 1:
            raise InvalidArgumentError(f"patterns must be >= 1, got {self.patterns}")
        if self.size > min(h, w):
            raise InvalidArgumentError(f"patch size {self.size} does not fit a {h}x{w} image")
        rng = np.random.default_rng(self.seed + 7919)
        self.patches_ = rng.integers(0, 256, (self.patterns, self.size, self.size, c), dtype=np.uint8)
        self.positions_ = np.stack([rng.integers(0, h - self.size + 1, self.patterns),
                                    rng.integers(0, w - self.size + 1, self.patterns)], axis=1)

    def _apply(self, images: np.ndarray) -> np.ndarray:
        # The pattern depends on the image's content, so a frame always gets the same one.
        choice = np.array([zlib.crc32(img.tobytes()) % self.patterns for img in images], dtype=np.int64)
        out = images.copy()
        for p in np.unique(choice):
            index = np.flatnonzero(choice == p)
            out[index] = triggers.stamp(images[index], self.patches_[p], *self.positions_[p])
        return out
