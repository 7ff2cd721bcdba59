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
engines for speed. The official code's clean accuracy owes much to that coupling on batches of
clean frames only (benchmarks.clean_cost; docs/decisions.md): per frame it loses as much as this
class does. The official code also queries the model on the five stage-3
restorations without using the answers; those calls are skipped (47 model calls and 50
restorer calls per image instead of 52 and 50).

Beyond the paper, off by default: ``PurifierConfig(early_exit=...)`` returns frames whose
stage-1 answers barely moved unchanged, skipping stages 2 and 3 (``first_round_exit`` already
after the first 5 masks; ``PurifierConfig.fast()`` scores from those 5 alone, exits at 1 of
5 and refines 1 step: about 5x faithful's speed);
``Purifier.calibrate(clean)``
sets ``score_gate``, under which a frame whose highest token score stays within what the
user's clean frames reach keeps its answer; ``Purifier.stream`` with
``StreamConfig(warm_start=True)`` lets a video frame build on the previous frame's scores.
"""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Iterable, Iterator, Optional

import numpy as np

from edgeguard import kernels
from edgeguard.errors import InvalidArgumentError, InvalidInputError
from edgeguard.outputs import OutputKind
from edgeguard.purify.config import PurifierConfig, StreamConfig
from edgeguard.purify.frames import as_nchw, from_nchw, pixel_token_map, token_grid_of
from edgeguard.purify.result import PurifyResult
from edgeguard.runtime import load_engine

if TYPE_CHECKING:
    from edgeguard.purify.stream import WarmStart

log = logging.getLogger(__name__)

__all__ = ["Purifier", "PurifierConfig", "PurifyResult", "StreamConfig"]


class Purifier:
    """Black-box BDMAE purification of frames.

    Args:
        model: an engine, .onnx path or nn.Module (see ``edgeguard.runtime.load_engine``)
            mapping (N, C, H, W) in [0, 1] to logits (classification) or outputs (regression).
        restorer: the MAE restorer in the same forms: (images, token mask) -> restoration.
        config: algorithm settings.
        output: the model's ``OutputKind``: "classification" (hard labels) or "regression"
            (the answer moved when it turns by more than ``config.tolerance_deg``). None: what
            the model's ModelSpec says (files from ``edgeguard.deploy.export_model``,
            edgeguard's victims), else "classification".
    """

    def __init__(self, model, restorer, config: PurifierConfig = PurifierConfig(),
                 output: Optional[str] = None):
        self.model = load_engine(model)
        self.restorer = load_engine(restorer)
        self.config = config
        model_spec, restorer_spec = self.model.spec, self.restorer.spec
        if (model_spec is not None and model_spec.role == "restorer") or \
                (restorer_spec is not None and restorer_spec.role == "model"):
            raise InvalidArgumentError("model and restorer are swapped: Purifier(model, restorer) takes the "
                                       "protected model first, the MAE restorer second")
        said = model_spec.output if model_spec is not None else None
        if output is not None and said is not None and output != said:
            raise InvalidArgumentError(f"output '{output}' given, but the model's spec says '{said}'")
        self.output = OutputKind.of(output or said or OutputKind.CLASSIFICATION)

    def _check_frames(self, x: np.ndarray) -> None:
        """InvalidInputError before any engine call when frames (N, C, H, W) are empty or not
        the size and channels the engines' specs say they take."""
        if len(x) == 0:
            raise InvalidInputError("no frames to purify (an empty batch)")
        for role, engine in (("model", self.model), ("restorer", self.restorer)):
            spec = engine.spec
            if spec is not None and tuple(x.shape[1:]) != tuple(spec.input_shape):
                raise InvalidInputError(f"frames are {tuple(x.shape[1:])} (C, H, W); the {role} takes "
                                        f"{tuple(spec.input_shape)}: resize them first (edgeguard.data.resize_frames)")

    # -- engine plumbing --------------------------------------------------------------------
    def _run(self, engine, *arrays: np.ndarray) -> np.ndarray:
        step = self.config.max_batch
        parts = [engine(*(a[i:i + step] for a in arrays)) for i in range(0, len(arrays[0]), step)]
        return np.concatenate(parts)

    def _answer(self, outputs: np.ndarray) -> np.ndarray:
        return self.output.answer(outputs)

    def _moved(self, answer: np.ndarray, reference: np.ndarray) -> np.ndarray:
        return self.output.moved(answer, reference, self.config.tolerance_deg)

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

    # The three decisions the official code takes per batch and this class per image
    # (benchmarks.clean_cost measures what that changes).
    def _sizes(self, image_score: np.ndarray, label_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B,) refinement sizes K: tokens with image score >= the cut; floor of the label score's sum."""
        k_image = (image_score >= self.config.image_score_cut).sum(axis=1)
        return k_image, np.floor(label_score.sum(axis=1)).astype(np.int64)

    def _mask_counts(self, score: np.ndarray, taus: np.ndarray) -> np.ndarray:
        """(B, T) final mask sizes: tokens at or above each threshold."""
        return (score[:, None, :] >= taus[:, :, None]).sum(axis=2)

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

    def _stage1(self, x, reference, rounds: np.ndarray, grid: int, pix2tok: np.ndarray, first_round_exit=None):
        """Stage 1 for frames x (B, C, H, W) with the stage-1 mask rounds ``rounds`` (indices
        into the 5): image scores (B, L), label scores (B, L), the share of restorations that
        moved each frame's answer (B,) and which frames left after the first round (B,) bool.

        With ``first_round_exit`` (a share), frames whose answer moved on at most that share
        of the first round's restorations skip the other rounds: their scores and share come
        from the first round alone."""
        b = len(x)
        masks = self._stage1_masks(grid * grid)[rounds]
        if first_round_exit is None or len(masks) == 1:
            restored, moved = self._stage1_restore(x, reference, masks)
            return (*self._stage1_scores(x, restored, moved, masks, grid, pix2tok), np.zeros(b, bool))
        restored, moved = self._stage1_restore(x, reference, masks[:1])
        left = moved.mean(axis=1) <= first_round_exit
        stay = np.flatnonzero(~left)
        groups = [(np.flatnonzero(left), restored[left], moved[left], masks[:1])]
        if len(stay):
            more_restored, more_moved = self._stage1_restore(x[stay], reference[stay], masks[1:])
            groups.append((stay, np.concatenate([restored[stay], more_restored], axis=1),
                           np.concatenate([moved[stay], more_moved], axis=1), masks))
        image_score, label_score = np.zeros((2, b, grid * grid), np.float32)
        share = np.zeros(b)
        for i, group_restored, group_moved, group_masks in groups:
            if len(i):
                image_score[i], label_score[i], share[i] = self._stage1_scores(
                    x[i], group_restored, group_moved, group_masks, grid, pix2tok)
        return image_score, label_score, share, left

    def _stage1_restore(self, x, reference, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Restorations (B, rounds, per_round, C, H, W) of frames x under stage-1 ``masks``
        (rounds, per_round, L), and whether each moved the frame's answer (B, rounds * per_round)."""
        b = len(x)
        flat = masks.reshape(-1, masks.shape[-1])
        restored = self._run(self.restorer, np.repeat(x, len(flat), axis=0), np.tile(flat, (b, 1)))
        answers = self._answer(self._run(self.model, restored))
        moved = self._moved(answers, np.repeat(reference, len(flat), axis=0)).reshape(b, len(flat))
        return restored.reshape(b, *masks.shape[:2], *x.shape[1:]), moved

    def _stage1_scores(self, x, restored, moved, masks, grid: int, pix2tok):
        """Image and label token scores (B, L) and the moved share (B,) from stage-1 restorations."""
        b, _, h, w = x.shape
        shape = x.shape[1:]
        n_rounds, per_round, length = masks.shape
        flat = masks.reshape(-1, length)
        # A mean over the masks, so fewer masks (stream warm start) keep the scale of K = floor(sum).
        label_score = (moved[:, :, None] * flat[None]).sum(axis=1) / len(flat)
        pixel_masks = flat[:, pix2tok]  # (masks, h, w)
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
        k_image, k_label = self._sizes(image_score, label_score)
        refined = self._refine(model, restorer, np.concatenate([x, x]), np.concatenate([image_score, label_score]),
                               np.concatenate([k_image, k_label]), np.concatenate([reference, reference]), grid,
                               np.repeat(np.array([0, 1], np.int64), b), steps)
        image_score, label_score = refined[:b], refined[b:]
        score = cfg.alpha * image_score + (1 - cfg.alpha) * label_score

        # Nested masks, restorations averaged inside the largest one.
        nested = kernels.nested_topk(score, self._mask_counts(score, self._thresholds(score)))  # (B, T, L)
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
        x, layout = as_nchw(frames)
        return self._purify(x, layout)

    def _purify(self, x: np.ndarray, layout: str, warm: Optional["WarmStart"] = None) -> PurifyResult:
        """BDMAE on frames x (B, C, H, W); with ``warm`` (one frame, Purifier.stream) stage 1
        runs one round of masks blended with the previous frame's scores, unless the model's
        answer changed or the share of restorations that move it jumped: then the frame is cold."""
        t0 = time.perf_counter()
        self._check_frames(x)
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
            image_score, label_score, flips, _ = self._stage1(x, reference, np.array([warm.round]), grid, pix2tok)
            warm_started = abs(float(flips[0]) - warm.flip_share) <= warm.config.flip_jump
            if warm_started:
                m = warm.config.momentum
                image_score = m * warm.image_score + (1 - m) * image_score
                label_score = m * warm.label_score + (1 - m) * label_score
                steps = warm.config.refine_steps
        left = np.zeros(b, bool)  # frames that left after the first stage-1 round
        if not warm_started:
            image_score, label_score, flips, left = self._stage1(x, reference, np.arange(cfg.rounds), grid, pix2tok,
                                                                 cfg.first_round_exit)
        stage1 = (image_score.copy(), label_score.copy())

        # Frames that stage 1 finds clean (early exit) keep their frame and answer.
        score = cfg.alpha * image_score + (1 - cfg.alpha) * label_score
        purified, outputs, restored_px = x.copy(), original.copy(), np.zeros((b, h, w), bool)
        active = ~left if cfg.early_exit is None else ~left & (flips > cfg.early_exit)
        if active.any():
            i = np.flatnonzero(active)
            score[i], purified[i], restored_px[i] = self._refine_and_purify(
                x[i], image_score[i], label_score[i], reference[i], grid, pix2tok, steps)
            # No token scores like a trigger: keep the frame. The gate was measured on the full
            # method; a warm-started frame (fewer masks and steps) scores lower, so it is not gated.
            if cfg.score_gate is not None and not warm_started:
                quiet = i[score[i].max(axis=1) <= cfg.score_gate]
                purified[quiet], restored_px[quiet] = x[quiet], False
                i = np.setdiff1d(i, quiet)
            if len(i):
                outputs[i] = self._run(model, purified[i])
        log.debug("purified %d frames (%d past stage 1) in %.3f s; masks cover %.1f%% of pixels", b,
                  int(active.sum()), time.perf_counter() - t0, 100 * float(restored_px.mean()))
        return PurifyResult(
            purified=from_nchw(purified, layout),
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

    def calibrate(self, clean_frames: np.ndarray, quantile: float = 0.99) -> "Purifier":
        """A Purifier like this one whose ``score_gate`` is the ``quantile`` of the highest
        token score (after refinement) over ``clean_frames``, frames of the deployment domain
        with no trigger (e.g. those the restorer was fine-tuned on, better ones it was not).
        At least ``1 / (1 - quantile)`` frames (100 at 0.99) are needed. The clean frames run
        through the full method (about 0.1 s each on 2 CPU cores at 32 px).

        >>> purifier = Purifier(model, restorer).calibrate(clean)   # doctest: +SKIP
        """
        import dataclasses
        import math

        if not 0.5 <= quantile < 1.0:
            raise InvalidArgumentError(f"quantile must be in [0.5, 1), got {quantile}")
        dataclasses.replace(self.config, score_gate=0.0)  # a config that cannot take a gate fails before the work
        x, _ = as_nchw(clean_frames)
        need = math.ceil(1.0 / (1.0 - quantile) - 1e-9)
        if len(x) < need:
            raise InvalidInputError(f"calibrating at quantile {quantile} needs at least {need} clean frames, got {len(x)}")
        every_frame = dataclasses.replace(self.config, early_exit=None, first_round_exit=None, score_gate=None)
        full = Purifier(self.model, self.restorer, every_frame, output=self.output)
        batch = max(1, min(self.config.max_batch // 100, 64))  # ~100 engine rows per frame
        highest = np.concatenate([full(x[i:i + batch]).token_scores.reshape(min(batch, len(x) - i), -1).max(axis=1)
                                  for i in range(0, len(x), batch)])
        gate = float(np.quantile(highest, quantile))
        log.info("calibrated on %d clean frames: score gate %.3f (quantile %.3f)", len(x), gate, quantile)
        return Purifier(self.model, self.restorer, dataclasses.replace(self.config, score_gate=gate), output=self.output)

    def stream(self, frames: Iterable[np.ndarray], config: Optional[StreamConfig] = None) -> Iterator[PurifyResult]:
        """Purify a video frame by frame: one PurifyResult (of one frame) per frame, in order.

        Each frame is (H, W, C) uint8 or (C, H, W) float in [0, 1] (or a batch of one). With
        ``StreamConfig(warm_start=False)`` every frame gets the full method, exactly what
        ``__call__`` gives it; with warm start, see StreamConfig. ``PurifierConfig.early_exit``
        applies either way. A camera loop that must survive bad frames uses ``FrameStream``.
        """
        from edgeguard.purify.stream import FrameStream

        stream = FrameStream(self, config)
        for frame in frames:
            yield stream(frame)
