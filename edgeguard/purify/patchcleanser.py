"""PatchCleanser (Xiang et al., USENIX Security 2022): double masking against patch triggers.

A set of k x k rectangular masks is built so that any square patch of up to ``patch``
pixels lies entirely under at least one mask. Round 1 classifies the frame under every
mask. If all answers agree, that is the answer. Otherwise every mask whose answer differs
from the majority is tried with every second mask; if all those two-mask answers agree
with its own one-mask answer, it wins (the trigger was under it). Failing that, the
majority of round 1 is the answer.

Unlike Blur and ShrinkPad this defense queries the model itself, so it is a callable on
(model, frames) returning answers. Hard labels only (classification). The mask settings
are ours, scaled to 32-px frames: BDMAE's comparison does not publish them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeguard.errors import InvalidArgumentError, InvalidInputError


def mask_windows(size: int, patch: int, per_side: int) -> list[tuple[int, int]]:
    """(start, length) of the 1-D mask windows covering any run of ``patch`` pixels.

    Stride s = ceil((size - patch + 1) / per_side) and length patch + s - 1, the paper's
    construction; the last window is moved back inside the frame.
    """
    if not 0 < patch <= size or per_side < 1:
        raise InvalidArgumentError(f"need 0 < patch <= {size} and per_side >= 1, got {patch}, {per_side}")
    stride = -(-(size - patch + 1) // per_side)
    length = min(size, patch + stride - 1)
    starts = sorted({min(i * stride, size - length) for i in range(per_side)})
    return [(s, length) for s in starts]


@dataclass(frozen=True)
class PatchCleanser:
    """Double-masking defense.

    Attributes:
        patch: side of the largest square trigger (pixels) the mask set must cover.
        per_side: masks per axis (k); k * k masks in all.
        fill: value written under a mask, on the [0, 1] scale.
    """

    patch: int = 6
    per_side: int = 6
    fill: float = 0.5
    name = "patchcleanser"

    def __post_init__(self) -> None:
        if self.patch < 1 or self.per_side < 1 or not 0.0 <= self.fill <= 1.0:
            raise InvalidArgumentError(f"need patch >= 1, per_side >= 1 and fill in [0, 1], got "
                                       f"{self.patch}, {self.per_side}, {self.fill}")

    def masks(self, height: int, width: int) -> np.ndarray:
        """(k*k, H, W) bool, True where a mask hides the frame."""
        out = []
        for top, h in mask_windows(height, self.patch, self.per_side):
            for left, w in mask_windows(width, self.patch, self.per_side):
                m = np.zeros((height, width), bool)
                m[top:top + h, left:left + w] = True
                out.append(m)
        return np.stack(out)

    def __call__(self, model, frames: np.ndarray) -> np.ndarray:
        """Answers (N,) for frames (N, C, H, W) float in [0, 1]; ``model`` maps frames to logits."""
        if frames.ndim != 4:
            raise InvalidInputError(f"frames must be (N, C, H, W), got shape {frames.shape}")
        masks = self.masks(*frames.shape[-2:])
        answers = np.empty(len(frames), np.int64)
        for i, x in enumerate(frames.astype(np.float32)):
            one = model(np.where(masks[:, None], np.float32(self.fill), x[None])).argmax(1)
            values, counts = np.unique(one, return_counts=True)
            majority = values[np.argmax(counts)]
            answers[i] = majority
            if len(values) == 1:
                continue
            for j in np.flatnonzero(one != majority):
                both = np.where((masks[j] | masks)[:, None], np.float32(self.fill), x[None])
                if (model(both).argmax(1) == one[j]).all():
                    answers[i] = one[j]
                    break
        return answers
