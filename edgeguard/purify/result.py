"""PurifyResult: what the purifier did to a batch of frames."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class PurifyResult:
    """What the purifier did to a batch of N frames (arrays lead with N).

    Attributes:
        purified: the purified frames, in the layout and dtype they came in.
        prediction: the model's answer on the purified frames: (N,) class ids or (N, D) outputs.
        original_prediction: the answer on the frames as given.
        outputs: raw model outputs (logits or regression values) on the purified frames.
        token_scores: (N, G, G) combined trigger scores in token space.
        pixel_mask: (N, H, W) bool, pixels replaced by restorations.
        model_calls, restorer_calls: engine queries per frame (a mean over the batch when
            early exit lets some frames skip stages 2 and 3).
        seconds: wall-clock for the batch.
        flip_share: (N,) share of the stage-1 restorations that moved each frame's answer
            (high on triggered frames: the restorations remove the trigger).
        warm_started: (N,) bool, frames that built on the previous frame (Purifier.stream).
        stage1_scores: (image, label) stage-1 token scores, each (N, L), before refinement.
    """

    purified: np.ndarray
    prediction: np.ndarray
    original_prediction: np.ndarray
    outputs: np.ndarray
    token_scores: np.ndarray
    pixel_mask: np.ndarray
    model_calls: float
    restorer_calls: float
    seconds: float
    flip_share: np.ndarray
    warm_started: np.ndarray
    stage1_scores: tuple[np.ndarray, np.ndarray] = field(repr=False)
    changed: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        p, o = self.prediction, self.original_prediction
        self.changed = (p != o) if p.ndim == 1 else np.any(p != o, axis=tuple(range(1, p.ndim)))

    def __len__(self) -> int:
        return len(self.prediction)

    def __repr__(self) -> str:
        n = len(self)
        return (f"PurifyResult({n} frames, {int(self.changed.sum())} answers changed, "
                f"{self.pixel_mask.mean() * 100:.1f}% pixels restored, {self.model_calls:g} model + "
                f"{self.restorer_calls:g} restorer calls per frame, {self.seconds / max(n, 1) * 1e3:.1f} ms/frame)")
