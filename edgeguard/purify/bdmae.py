"""BDMAE test-time purification (Sun et al., "Mask and Restore"), faithful mode.

    purifier = Purifier(load_engine("model.onnx"), load_engine("mae.onnx"))
    result = purifier(frames)            # (N, H, W, C) uint8 or (N, C, H, W) float in [0, 1]
    result.prediction, result.purified, result.pixel_mask

The model is a black box: only its outputs are read (hard labels for classification). The
algorithm and every default follow the official code (shared/spec/bdmae.md section 2):

1. 25 token masks (5 rounds x 5, cut from concatenated random permutations, ratio 0.75).
   Label score S_l: share of the 25 restorations whose answer moved, per masked token.
   Image score S_i: 1 - SSIM(x, cumulative average restoration), per token, mean of 5 rounds.
2. Topology-aware refinement, 10 steps per score: restore a connected blob grown inside the
   top-K tokens, then move +-beta of score between the blob and the rest of the top-K.
3. S = alpha S_i + (1 - alpha) S_l; five nested masks at thresholds 0.60..0.40 (capped at 25%
   of the tokens), restorations averaged inside the largest mask; one final query.

Departures, all about batches: the official code couples images of a batch (shared K, the
25% cap over the batch, equal mask sizes). Here every decision is per image, so an image's
result depends only on the image and the seed; images are still batched through the
engines for speed. The official code also queries the model on the five stage-3
restorations without using the answers; those calls are skipped (47 model calls and 50
restorer calls per image instead of 52 and 50).

Beyond the paper, off by default: ``PurifierConfig(early_exit=...)`` returns frames whose
stage-1 answers barely moved unchanged, skipping stages 2 and 3; ``Purifier.stream`` with
``StreamConfig(warm_start=True)`` lets a video frame build on the previous frame's scores.
"""
from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Optional

import numpy as np

from edgeguard import kernels
from edgeguard.errors import InvalidArgumentError, InvalidInputError
from edgeguard.metrics import angular_error_deg
from edgeguard.runtime import load_engine

log = logging.getLogger(__name__)

TASKS = ("classification", "regression")


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


def _as_nchw(frames: np.ndarray) -> tuple[np.ndarray, str]:
    """Frames in either layout -> (N, C, H, W) float32 in [0, 1] and the layout tag."""
    x = np.asarray(frames)
    if x.dtype == np.uint8:
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4 or x.shape[-1] not in (1, 3):
            raise InvalidInputError(f"uint8 frames must be (N, H, W, C) or (H, W, C) with C 1 or 3, got {x.shape}")
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0, "uint8"
    if not np.issubdtype(x.dtype, np.floating):
        raise InvalidInputError(f"frames must be uint8 (N, H, W, C) or float (N, C, H, W), got dtype {x.dtype}")
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise InvalidInputError(f"float frames must be (N, C, H, W) or (C, H, W) with C 1 or 3, got {x.shape}")
    if not np.isfinite(x).all() or x.min() < -1e-3 or x.max() > 1 + 1e-3:
        raise InvalidInputError("float frames must be finite and in [0, 1]")
    return np.ascontiguousarray(x, dtype=np.float32), "float"


def _from_nchw(x: np.ndarray, layout: str) -> np.ndarray:
    if layout == "uint8":
        return np.clip(x.transpose(0, 2, 3, 1) * 255 + 0.5, 0, 255).astype(np.uint8)
    return x


def token_grid_of(restorer) -> tuple[int, int, int]:
    """(tokens per side G, MAE input size S, patch size P) from an engine's ModelSpec (or, for
    files exported before it, the single metadata keys)."""
    spec = getattr(restorer, "spec", None)
    if spec is not None and spec.role == "restorer":
        return spec.token_grid, spec.mae_img_size, spec.patch_size
    meta = getattr(restorer, "metadata", {}) or {}
    try:
        size, patch = int(meta["mae_img_size"]), int(meta["mae_patch_size"])
    except (KeyError, ValueError):
        raise InvalidArgumentError(
            f"{restorer!r} does not say its token grid: export the restorer with "
            "edgeguard.deploy.export_restorer or pass an MAE module") from None
    return size // patch, size, patch


@functools.lru_cache(maxsize=16)
def pixel_token_map(h: int, w: int, size: int, patch: int) -> np.ndarray:
    """(h, w) int: the token each pixel belongs to under BDMAE's nearest resize (read-only,
    cached: a video asks for the same map every frame)."""
    def axis(n: int) -> np.ndarray:
        scaled = np.floor(np.arange(n) * np.float32(size / n)).astype(np.int64)
        return np.minimum(scaled, size - 1) // patch
    grid = size // patch
    tokens = axis(h)[:, None] * grid + axis(w)[None, :]
    tokens.flags.writeable = False
    return tokens


class Purifier:
    """Black-box BDMAE purification of frames.

    Args:
        model: an engine, .onnx path or nn.Module (see ``edgeguard.runtime.load_engine``)
            mapping (N, C, H, W) in [0, 1] to logits (classification) or outputs (regression).
        restorer: the MAE restorer in the same forms: (images, token mask) -> restoration.
        config: algorithm settings.
        task: "classification" (hard labels) or "regression" (answer changed when it moves
            by more than ``config.tolerance_deg``). None: what the model's ModelSpec says
            (files from ``edgeguard.deploy.export_model``, edgeguard's victims), else
            "classification".
    """

    def __init__(self, model, restorer, config: PurifierConfig = PurifierConfig(),
                 task: Optional[str] = None):
        self.model = load_engine(model)
        self.restorer = load_engine(restorer)
        self.config = config
        model_spec, restorer_spec = self.model.spec, self.restorer.spec
        if (model_spec is not None and model_spec.role == "restorer") or \
                (restorer_spec is not None and restorer_spec.role == "model"):
            raise InvalidArgumentError("model and restorer are swapped: Purifier(model, restorer) takes the "
                                       "protected model first, the MAE restorer second")
        said = model_spec.output if model_spec is not None else None
        if task is not None and said is not None and task != said:
            raise InvalidArgumentError(f"task {task!r} given, but the model's spec says {said!r}")
        self.task = task or said or "classification"

    # -- engine plumbing --------------------------------------------------------------------
    def _run(self, engine, *arrays: np.ndarray) -> np.ndarray:
        step = self.config.max_batch
        parts = [engine(*(a[i:i + step] for a in arrays)) for i in range(0, len(arrays[0]), step)]
        return np.concatenate(parts)

    def _answer(self, outputs: np.ndarray) -> np.ndarray:
        return outputs.argmax(axis=1) if self.task == "classification" else outputs

    def _moved(self, answer: np.ndarray, reference: np.ndarray) -> np.ndarray:
        if self.task == "classification":
            return answer != reference
        return angular_error_deg(answer, reference) > self.config.tolerance_deg

    # -- stages ---------------------------------------------------------------------------
    def _stage1_masks(self, length: int) -> np.ndarray:
        """(rounds, masks_per_round, L) float32 masks from concatenated permutations."""
        cfg = self.config
        masks = kernels.stage1_masks(length, cfg.rounds, cfg.masks_per_round, cfg.mask_ratio, cfg.seed)
        return masks.reshape(cfg.rounds, cfg.masks_per_round, length)

    def _token_ssim(self, x: np.ndarray, restored: np.ndarray, pix2tok: np.ndarray, grid: int) -> np.ndarray:
        """(B, L) per-token SSIM between frames and restorations."""
        cfg = self.config
        if cfg.ssim_mode == "point":
            return kernels.ssim_tokens(x, restored, (grid, grid), "point", border=cfg.ssim_border).reshape(len(x), -1)
        return kernels.tokens_from_map(kernels.ssim_map(x, restored, border=cfg.ssim_border), pix2tok,
                                       grid * grid, empty=1.0)

    def _refine(self, model, restorer, x, score, sizes, reference, grid, phase: np.ndarray,
                steps: int) -> np.ndarray:
        """``steps`` refinement steps of scores (B, L); returns the refined copy.

        Row i's step j grows its regions from random stream phase[i] * refine_steps + j + 1
        of the seed (stage 1 uses stream 0), so a frame's regions depend only on the frame.
        The image score (phase 0) and the label score (phase 1) of a frame are independent,
        so both go through here as rows of one batch: half the engine calls."""
        cfg = self.config
        score = score.copy()
        for step in range(steps):
            top = kernels.nested_topk(score, sizes[:, None])[:, 0] > 0
            streams = (phase * cfg.refine_steps + step + 1).astype(np.uint64)
            blob = kernels.grow_regions(score, top, np.maximum(sizes // 2, 1), (grid, grid),
                                        bonus=cfg.neighbour_bonus, seed=cfg.seed, streams=streams)
            restored = self._run(restorer, x, blob.astype(np.float32))
            same = ~self._moved(self._answer(self._run(model, restored)), reference)
            beta = np.where(same, cfg.beta, -cfg.beta)[:, None]
            # Official update: S(B) -= beta, S += beta (A - B); a seed outside A loses 2 beta.
            score += beta * (top.astype(np.float32) - 2.0 * blob)
        return score

    def _thresholds(self, score: np.ndarray) -> np.ndarray:
        """(B, T) per-image thresholds after the max-masked cap."""
        cfg = self.config
        base = 1.0 - np.asarray(cfg.thresholds, np.float64)  # official "thrs"
        b, length = score.shape
        scale = np.ones(b)
        for _ in range(cfg.cap_steps):
            loosest = 1.0 - base[-1] * scale
            over = (score >= loosest[:, None]).mean(axis=1) >= cfg.max_masked
            if not over.any():
                break
            scale = np.where(over, scale * cfg.cap_factor, scale)
        return 1.0 - base[None, :] * scale[:, None]

    def _stage1(self, x, reference, rounds: np.ndarray, grid: int, pix2tok: np.ndarray):
        """Stage 1 for frames x (B, C, H, W) with the stage-1 mask rounds ``rounds`` (indices
        into the 5): image scores (B, L), label scores (B, L) and the share of restorations
        that moved each frame's answer (B,)."""
        b, _, h, w = x.shape
        shape = x.shape[1:]
        length = grid * grid
        masks = self._stage1_masks(length)[rounds]
        n_rounds, per_round = masks.shape[:2]
        flat = masks.reshape(-1, length)
        restored = self._run(self.restorer, np.repeat(x, len(flat), axis=0), np.tile(flat, (b, 1)))
        answers = self._answer(self._run(self.model, restored))
        moved = self._moved(answers, np.repeat(reference, len(flat), axis=0)).reshape(b, len(flat))
        # A mean over the masks, so fewer masks (stream warm start) keep the scale of K = floor(sum).
        label_score = (moved[:, :, None] * flat[None]).sum(axis=1) / len(flat)
        pixel_masks = flat[:, pix2tok]  # (masks, h, w)
        restored = restored.reshape(b, n_rounds, per_round, *shape)
        weighted = np.cumsum((restored * pixel_masks.reshape(n_rounds, per_round, 1, h, w)).sum(axis=2), axis=1)
        coverage = np.cumsum(pixel_masks.reshape(n_rounds, per_round, h, w).sum(axis=1), axis=0)[:, None]
        average = np.where(coverage > 0, weighted / np.maximum(coverage, 1), x[:, None])
        ssim = self._token_ssim(np.repeat(x, n_rounds, axis=0), average.reshape(-1, *shape), pix2tok, grid)
        image_score = (1.0 - ssim).reshape(b, n_rounds, length).mean(axis=1)
        return image_score, label_score, moved.mean(axis=1)

    def _refine_and_purify(self, x, image_score, label_score, reference, grid, pix2tok, steps: int):
        """Stages 2 and 3 for frames x (B, C, H, W): refined combined scores (B, L), purified
        frames (B, C, H, W) and the restored-pixel masks (B, H, W)."""
        cfg = self.config
        model, restorer = self.model, self.restorer
        b, length = image_score.shape
        shape = x.shape[1:]
        k_image = (image_score >= cfg.image_score_cut).sum(axis=1)
        k_label = np.floor(label_score.sum(axis=1)).astype(np.int64)
        refined = self._refine(model, restorer, np.concatenate([x, x]), np.concatenate([image_score, label_score]),
                               np.concatenate([k_image, k_label]), np.concatenate([reference, reference]), grid,
                               np.repeat(np.array([0, 1], np.int64), b), steps)
        image_score, label_score = refined[:b], refined[b:]
        score = cfg.alpha * image_score + (1 - cfg.alpha) * label_score

        # Nested masks, restorations averaged inside the largest one.
        taus = self._thresholds(score)
        counts = (score[:, None, :] >= taus[:, :, None]).sum(axis=2)  # (B, T)
        nested = kernels.nested_topk(score, counts)  # (B, T, L)
        levels = nested.shape[1]
        restored = self._run(restorer, np.repeat(x, levels, axis=0), nested.reshape(-1, length))
        pix = nested[:, :, pix2tok][:, :, None]  # (B, T, 1, h, w)
        total = pix.sum(axis=1)
        purified = np.where(total > 0, (restored.reshape(b, levels, *shape) * pix).sum(axis=1)
                            / np.maximum(total, 1), x).astype(np.float32)
        return score, purified, total[:, 0] > 0

    # -- the whole thing ------------------------------------------------------------------
    def __call__(self, frames: np.ndarray) -> PurifyResult:
        """Purify a batch of frames: (N, H, W, C) uint8 or (N, C, H, W) float in [0, 1]."""
        x, layout = _as_nchw(frames)
        return self._purify(x, layout)

    def _purify(self, x: np.ndarray, layout: str, warm: Optional["_WarmStart"] = None) -> PurifyResult:
        """BDMAE on frames x (B, C, H, W); with ``warm`` (one frame, Purifier.stream) stage 1
        runs one round of masks blended with the previous frame's scores, unless the model's
        answer changed or the share of restorations that move it jumped: then the frame is cold."""
        if self.task not in TASKS:
            raise InvalidArgumentError(f"task must be one of {TASKS}, got {self.task!r}")
        t0 = time.perf_counter()
        cfg = self.config
        b, _, h, w = x.shape
        model, restorer = self.model, self.restorer
        grid, size, patch = token_grid_of(restorer)
        pix2tok = pixel_token_map(h, w, size, patch)
        seen = (model.samples, restorer.samples)

        original = self._run(model, x)
        reference = self._answer(original)
        steps, warm_started = cfg.refine_steps, False
        if warm is not None and not self._moved(reference, warm.answer)[0]:
            image_score, label_score, flips = self._stage1(x, reference, np.array([warm.round]), grid, pix2tok)
            warm_started = abs(float(flips[0]) - warm.flip_share) <= warm.config.flip_jump
            if warm_started:
                m = warm.config.momentum
                image_score = m * warm.image_score + (1 - m) * image_score
                label_score = m * warm.label_score + (1 - m) * label_score
                steps = warm.config.refine_steps
        if not warm_started:
            image_score, label_score, flips = self._stage1(x, reference, np.arange(cfg.rounds), grid, pix2tok)
        stage1 = (image_score.copy(), label_score.copy())

        # Frames that stage 1 finds clean (early exit) keep their frame and answer.
        score = cfg.alpha * image_score + (1 - cfg.alpha) * label_score
        purified, outputs, restored_px = x.copy(), original.copy(), np.zeros((b, h, w), bool)
        active = np.ones(b, bool) if cfg.early_exit is None else flips > cfg.early_exit
        if active.any():
            i = np.flatnonzero(active)
            score[i], purified[i], restored_px[i] = self._refine_and_purify(
                x[i], image_score[i], label_score[i], reference[i], grid, pix2tok, steps)
            outputs[i] = self._run(model, purified[i])
        log.debug("purified %d frames (%d past stage 1) in %.3f s; masks cover %.1f%% of pixels", b,
                  int(active.sum()), time.perf_counter() - t0, 100 * float(restored_px.mean()))
        return PurifyResult(
            purified=_from_nchw(purified, layout),
            prediction=self._answer(outputs),
            original_prediction=reference,
            outputs=outputs,
            token_scores=score.reshape(b, grid, grid).astype(np.float32),
            pixel_mask=restored_px,
            model_calls=(model.samples - seen[0]) / b,
            restorer_calls=(restorer.samples - seen[1]) / b,
            seconds=time.perf_counter() - t0,
            flip_share=flips,
            warm_started=np.full(b, warm_started),
            stage1_scores=stage1,
        )

    def stream(self, frames: Iterable[np.ndarray], config: Optional[StreamConfig] = None) -> Iterator[PurifyResult]:
        """Purify a video frame by frame: one PurifyResult (of one frame) per frame, in order.

        Each frame is (H, W, C) uint8 or (C, H, W) float in [0, 1] (or a batch of one). With
        ``StreamConfig(warm_start=False)`` every frame gets the full method, exactly what
        ``__call__`` gives it; with warm start, see StreamConfig. ``PurifierConfig.early_exit``
        applies either way. A camera loop that must survive bad frames uses ``FrameStream``.
        """
        stream = FrameStream(self, config)
        for frame in frames:
            yield stream(frame)


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
        x, layout = _as_nchw(frame)
        if len(x) != 1:
            raise InvalidInputError(f"stream takes one frame at a time, got a batch of {len(x)}")
        config, previous = self.config, self._previous
        warm = None
        if (config.warm_start and previous is not None and previous[0].shape == x.shape
                and float(np.abs(x - previous[0]).mean()) <= config.scene_cut):
            before = previous[1]
            warm = _WarmStart(*before.stage1_scores, flip_share=float(before.flip_share[0]),
                              answer=before.original_prediction,
                              round=self.frames_seen % self.purifier.config.rounds, config=config)
        result = self.purifier._purify(x, layout, warm)
        self._previous = (x, result)
        self.frames_seen += 1
        return result


@dataclass
class _WarmStart:
    """The previous frame's stage-1 state that a warm-started frame builds on."""

    image_score: np.ndarray
    label_score: np.ndarray
    flip_share: float
    answer: np.ndarray
    round: int
    config: StreamConfig
