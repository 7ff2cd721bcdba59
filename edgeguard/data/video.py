"""Synthetic camera video with a sticker trigger that comes and goes and drifts.

Shots of a still scene (a test image) with sensor noise and flicker; in some shots a
trigger sticker appears part-way through and then drifts a pixel at a time, as a sticker on
a sign does when the camera sways. The sticker is whatever the attack changed: the pixels
where the triggered copy of the image differs from the clean one, so any local trigger works.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeguard.errors import InvalidArgumentError, InvalidInputError


@dataclass
class TriggerVideo:
    """Attributes:
        frames: (T, H, W, C) uint8.
        labels: (T,) or (T, D) true labels of the scene in each frame.
        triggered: (T,) bool, the sticker is in the frame.
        shot: (T,) int, the shot each frame belongs to (a new shot is a scene cut).
        offset: (T, 2) int, the sticker's (dy, dx) drift from where the attack put it.
    """

    frames: np.ndarray
    labels: np.ndarray
    triggered: np.ndarray
    shot: np.ndarray
    offset: np.ndarray

    def __len__(self) -> int:
        return len(self.frames)

    def head(self, n: int) -> "TriggerVideo":
        """The first ``n`` frames."""
        return TriggerVideo(self.frames[:n], self.labels[:n], self.triggered[:n], self.shot[:n], self.offset[:n])


def _paste(image: np.ndarray, sticker: np.ndarray, where: np.ndarray, dy: int, dx: int) -> np.ndarray:
    out = image.copy()
    ys, xs = np.nonzero(where)
    out[ys + dy, xs + dx] = sticker[ys, xs]
    return out


def make_trigger_video(clean: np.ndarray, triggered: np.ndarray, labels: np.ndarray, shots: int = 10,
                       frames_per_shot: int = 12, trigger_share: float = 0.5, max_drift: int = 2,
                       drift_prob: float = 0.3, noise: float = 2.0, flicker: float = 0.03, seed: int = 0) -> TriggerVideo:
    """A video of ``shots`` shots of ``frames_per_shot`` frames.

    Args:
        clean, triggered: (N, H, W, C) uint8 pairs: an image and its triggered copy (e.g.
            ``victim.test.images[bd.index]`` and ``bd.images``); shot scenes are drawn from them.
        labels: (N,) or (N, D) true labels of the clean images.
        trigger_share: share of the shots in which the sticker appears (from a random frame
            in the shot's first half on).
        max_drift: largest |dy|, |dx| the sticker wanders from its place (pixels; kept inside
            the image).
        drift_prob: chance per frame that the sticker takes a one-pixel step (random walk).
        noise, flicker: sensor noise std (grey levels) and brightness change per frame (share).
    """
    clean, triggered = np.asarray(clean), np.asarray(triggered)
    if clean.dtype != np.uint8 or clean.ndim != 4 or triggered.shape != clean.shape:
        raise InvalidInputError(f"clean and triggered must be (N, H, W, C) uint8 of one shape, "
                                f"got {clean.shape} {clean.dtype} and {triggered.shape}")
    if shots < 1 or frames_per_shot < 2 or not 0.0 <= trigger_share <= 1.0 or max_drift < 0:
        raise InvalidArgumentError("need shots >= 1, frames_per_shot >= 2, trigger_share in [0, 1], max_drift >= 0")
    rng = np.random.default_rng(seed)
    h, w = clean.shape[1:3]
    with_trigger = rng.permutation(shots) < round(trigger_share * shots)
    frames, out_labels, flags, shot_ids, offsets = [], [], [], [], []
    for s in range(shots):
        i = int(rng.integers(len(clean)))
        where = np.any(clean[i] != triggered[i], axis=-1)
        ys, xs = np.nonzero(where)
        onset = int(rng.integers(1, frames_per_shot // 2 + 1)) if with_trigger[s] and len(ys) else frames_per_shot
        dy = dx = 0
        for f in range(frames_per_shot):
            on = f >= onset
            if on and f > onset and rng.random() < drift_prob:
                dy = int(np.clip(dy + rng.integers(-1, 2), max(-max_drift, -ys.min()), min(max_drift, h - 1 - ys.max())))
                dx = int(np.clip(dx + rng.integers(-1, 2), max(-max_drift, -xs.min()), min(max_drift, w - 1 - xs.max())))
            frame = _paste(clean[i], triggered[i], where, dy, dx) if on else clean[i]
            frame = frame.astype(np.float32) * (1 + rng.uniform(-flicker, flicker)) + rng.normal(0, noise, frame.shape)
            frames.append(np.clip(frame + 0.5, 0, 255).astype(np.uint8))
            out_labels.append(labels[i])
            flags.append(on)
            shot_ids.append(s)
            offsets.append((dy, dx) if on else (0, 0))
    return TriggerVideo(frames=np.stack(frames), labels=np.asarray(out_labels), triggered=np.asarray(flags),
                        shot=np.asarray(shot_ids), offset=np.asarray(offsets, np.int64))
