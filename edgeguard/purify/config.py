"""The purifier's settings: BDMAE's (PurifierConfig) and the video ones (StreamConfig)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from edgeguard import kernels
from edgeguard.errors import InvalidArgumentError

FULL_ROUNDS = 5  # BDMAE's stage-1 rounds (rp_init_out)


@dataclass(frozen=True)
class PurifierConfig:
    """BDMAE settings; the defaults are the official code's.

    Attributes:
        rounds, masks_per_round: stage-1 masks (rp_init_out x rp_init_in = 5 x 5).
        mask_ratio: stage-1 share of tokens per mask.
        refine_steps: refinement iterations per score (rp_refine).
        beta: refinement score step.
        neighbour_bonus: growth bonus for tokens 4-adjacent to the blob (topo_po).
        image_score_cut: S_i level that counts a token as a candidate (sets K for S_i).
        alpha: weight of the image score in the combined score.
        thresholds: the five token-score thresholds of the nested purification masks.
        max_masked: largest share of tokens the loosest threshold may select.
        cap_factor, cap_steps: the cap raises thresholds by scaling 1 - tau with cap_factor,
            at most cap_steps times.
        ssim_mode: "mean" (per-token average of the SSIM map) or "point" (one pixel per
            token, as the official code reads it).
        ssim_border: "replicate" (official) or "reflect" padding of the SSIM window.
        tolerance_deg: regression: an output counts as changed when it moves by more than
            this angle (gaze (pitch, yaw) in radians).
        early_exit: None (faithful) or a share in [0, 1): frames whose stage-1 answers moved
            on at most this share of the 25 restorations are taken as clean and returned
            unchanged, skipping refinement and purification (0.0: exit only when no
            restoration moved the answer). Not in BDMAE; it trades a little robustness to
            triggers that few masks remove for clean accuracy and about half the compute.
        first_round_exit: None (faithful) or a share in [0, 1): frames whose answer moved on at
            most this share of the first round's 5 restorations skip the other 4 rounds and
            stages 2-3, keeping their answer. Not in BDMAE. A round's masks cover every token
            2 to 4 times, so a trigger inside one token that the restorer removes moves the
            answer on at least 2 of the 5 (0.4); a larger trigger may move it less often
            (``bdmae_fast_5rounds`` in benchmarks/purify.py measures what it lets through).
        score_gate: None (faithful) or a token score: frames whose highest combined token
            score after refinement is at or below it keep their input and answer (no token
            looks like a trigger; needs ``rounds=5``). Not in BDMAE; set it with ``Purifier.calibrate`` from the
            user's clean frames (the score's 99th percentile over them), which is where
            faithful BDMAE's per-frame clean cost goes (docs/decisions.md). Frames that
            ``Purifier.stream`` warm-starts are not gated: their scores come from fewer masks
            and steps, and gating them let triggered frames through (benchmarks/stream.py).
        seed: mask randomness; every image uses the same stream, so results do not depend
            on batch composition (official seed 33333).
        max_batch: largest batch sent to an engine at once (memory bound only).
    """

    rounds: int = 5
    masks_per_round: int = 5
    mask_ratio: float = 0.75
    refine_steps: int = 10
    beta: float = 0.05
    neighbour_bonus: float = 0.5
    image_score_cut: float = 0.2
    alpha: float = 0.5
    thresholds: tuple[float, ...] = (0.60, 0.55, 0.50, 0.45, 0.40)
    max_masked: float = 0.25
    cap_factor: float = 0.99
    cap_steps: int = 200
    ssim_mode: str = "mean"
    ssim_border: str = "replicate"
    tolerance_deg: float = 5.0
    early_exit: Optional[float] = None
    first_round_exit: Optional[float] = None
    score_gate: Optional[float] = None
    seed: int = 33333
    max_batch: int = 512

    def __post_init__(self) -> None:
        if self.rounds < 1 or self.masks_per_round < 1:
            raise InvalidArgumentError("rounds and masks_per_round must be >= 1")
        if not 0.0 < self.mask_ratio < 1.0:
            raise InvalidArgumentError(f"mask_ratio must be in (0, 1), got {self.mask_ratio}")
        if not 0.0 <= self.alpha <= 1.0:
            raise InvalidArgumentError(f"alpha must be in [0, 1], got {self.alpha}")
        if not self.thresholds or list(self.thresholds) != sorted(self.thresholds, reverse=True):
            raise InvalidArgumentError(f"thresholds must be non-empty and descending, got {self.thresholds}")
        if self.ssim_mode not in kernels.MODES or self.ssim_border not in kernels.BORDERS:
            raise InvalidArgumentError(f"ssim_mode in {kernels.MODES}, ssim_border in {kernels.BORDERS}")
        if self.early_exit is not None and not 0.0 <= self.early_exit < 1.0:
            raise InvalidArgumentError(f"early_exit must be None or in [0, 1), got {self.early_exit}")
        if self.first_round_exit is not None and not 0.0 <= self.first_round_exit < 1.0:
            raise InvalidArgumentError(f"first_round_exit must be None or in [0, 1), got {self.first_round_exit}")
        if self.score_gate is not None and not (math.isfinite(self.score_gate) and self.score_gate >= 0.0):
            raise InvalidArgumentError(f"score_gate must be None or a finite score >= 0, got {self.score_gate}")
        if self.score_gate is not None and self.rounds < FULL_ROUNDS:
            # Measured: with PurifierConfig.fast() (1 round) and a gate calibrated for it,
            # gaze ASR@5deg went from 0.03 to 0.88 and signs iab BA from 0.94 to 0.82.
            raise InvalidArgumentError(
                f"the score gate needs the full stage 1 ({FULL_ROUNDS} rounds of masks), got rounds={self.rounds}: "
                "with fewer masks triggered frames score lower and pass under it; calibrate a config with "
                f"rounds={FULL_ROUNDS} (e.g. PurifierConfig(first_round_exit=0.2, early_exit=0.3))")
        if self.max_batch < 1 or self.refine_steps < 0 or self.cap_steps < 0:
            raise InvalidArgumentError(f"max_batch must be >= 1, refine_steps and cap_steps >= 0, got "
                                       f"{self.max_batch}, {self.refine_steps}, {self.cap_steps}")
        if not 0.0 < self.max_masked <= 1.0 or not 0.0 < self.cap_factor < 1.0:
            raise InvalidArgumentError(f"max_masked must be in (0, 1] and cap_factor in (0, 1), got "
                                       f"{self.max_masked}, {self.cap_factor}")

    @classmethod
    def fast(cls, **changes) -> "PurifierConfig":
        """The fast preset (not in BDMAE): about 5x faithful's frames per second.

        Stage 1 runs one round of 5 masks instead of 5 rounds (``rounds=1``); a frame whose
        answer moved on at most 1 of them (``early_exit=0.2``) keeps it, the others get 1
        refinement step per score instead of 10. On 32-px SynthSigns: 12-14 engine rows per
        clean frame and 21 per triggered one instead of 97, 5.7x faithful's frames per
        second, CA 0.99-0.995, BA 0.99 and ASR 0.01 against faithful's 0.95-0.975 / 1.0 / 0
        (chosen on the badnets and blended_patch victims only; ``benchmarks/purify.py``
        reports every attack, triggers never tuned on included). ``changes`` override fields
        (e.g. ``refine_steps=3``: BA 0.995-1.0, ASR 0, 4.5x).

        >>> PurifierConfig.fast().rounds, PurifierConfig.fast(refine_steps=3).refine_steps
        (1, 3)
        """
        return cls(**{"rounds": 1, "early_exit": 0.2, "refine_steps": 1, **changes})


@dataclass(frozen=True)
class StreamConfig:
    """Video settings of ``Purifier.stream`` (not in BDMAE; measured by benchmarks/stream.py).

    Consecutive frames of a camera are nearly the same picture, so a frame can build on the
    previous frame's stage-1 scores instead of starting over.

    Attributes:
        warm_start: False gives every frame the full method (faithful).
        momentum: share of the previous frame's stage-1 token scores a warm frame keeps; its
            own single round of 5 masks gives the rest. The rounds rotate frame by frame, so
            five frames together see the faithful 25 masks.
        refine_steps: refinement steps per score on a warm frame (faithful: 10).
        scene_cut: mean |frame - previous frame| (on the [0, 1] scale) above which the frame
            starts cold: the scene changed. A frame on which the model answers differently
            from the previous frame also starts cold.
        flip_jump: a warm frame whose share of answer-moving restorations differs from the
            previous frame's by more than this starts cold: a trigger appeared or left.
    """

    warm_start: bool = True
    momentum: float = 0.6
    refine_steps: int = 4
    scene_cut: float = 0.08
    flip_jump: float = 0.3

    def __post_init__(self) -> None:
        if not 0.0 <= self.momentum < 1.0:
            raise InvalidArgumentError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.refine_steps < 0 or self.scene_cut < 0 or not 0.0 <= self.flip_jump <= 1.0:
            raise InvalidArgumentError("refine_steps and scene_cut must be >= 0, flip_jump in [0, 1]")
