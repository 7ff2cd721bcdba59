"""Video: per-frame purification that builds on the previous frame (StreamConfig)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import numpy as np

from edgeguard.errors import InvalidInputError
from edgeguard.purify.config import StreamConfig
from edgeguard.purify.frames import as_nchw
from edgeguard.purify.result import PurifyResult

if TYPE_CHECKING:
    from edgeguard.purify.bdmae import Purifier


class FrameStream:
    """Per-frame purification with the state warm start needs; ``Purifier.stream`` iterates it.

        stream = FrameStream(purifier, StreamConfig())
        result = stream(frame)      # a frame that raises leaves the state as it was
    """

    def __init__(self, purifier: Purifier, config: Optional[StreamConfig] = None):
        self.purifier = purifier
        self.config = config or StreamConfig()
        self.frames_seen = 0
        self._previous: Optional[tuple[np.ndarray, PurifyResult]] = None

    def reset(self) -> None:
        """Forget the previous frame (the next one starts cold)."""
        self._previous = None

    def __call__(self, frame: np.ndarray) -> PurifyResult:
        x, layout = as_nchw(frame)
        if len(x) != 1:
            raise InvalidInputError(f"stream takes one frame at a time, got a batch of {len(x)}")
        config, previous = self.config, self._previous
        warm = None
        if (config.warm_start and previous is not None and previous[0].shape == x.shape
                and float(np.abs(x - previous[0]).mean()) <= config.scene_cut):
            before = previous[1]
            warm = WarmStart(*before.stage1_scores, flip_share=float(before.flip_share[0]),
                              answer=before.original_prediction,
                              round=self.frames_seen % self.purifier.config.rounds, config=config)
        result = self.purifier._purify(x, layout, warm)
        self._previous = (x, result)
        self.frames_seen += 1
        return result


@dataclass
class WarmStart:
    """The previous frame's stage-1 state that a warm-started frame builds on."""

    image_score: np.ndarray
    label_score: np.ndarray
    flip_share: float
    answer: np.ndarray
    round: int
    config: StreamConfig
