"""Backdoor metrics on numpy arrays (no torch), as defined in spec/attacks.md section 3.

Classification: CA, ASR (non-target images only), BA/RA, DER. Regression (gaze): mean
angular error in degrees, attack error, ASR@tol. The set a model is judged by comes from
its output kind: ``edgeguard.outputs.OutputKind.metrics``.
"""
from __future__ import annotations

import numpy as np

from edgeguard.errors import InvalidArgumentError, InvalidInputError


def _labels(pred: np.ndarray) -> np.ndarray:
    """Class ids from (N,) ids or (N, K) logits."""
    pred = np.asarray(pred)
    return pred.argmax(axis=1) if pred.ndim == 2 else pred


def _check_same_length(*arrays: np.ndarray) -> None:
    n = {len(a) for a in arrays}
    if len(n) != 1:
        raise InvalidInputError(f"arrays must have the same length, got {[len(a) for a in arrays]}")


def clean_accuracy(pred: np.ndarray, labels: np.ndarray) -> float:
    """CA: fraction of clean images classified correctly. pred: (N,) ids or (N, K) logits."""
    pred = _labels(pred)
    _check_same_length(pred, labels)
    return float(np.mean(pred == labels)) if len(pred) else float("nan")


def attack_success_rate(pred: np.ndarray, labels: np.ndarray, target: np.ndarray) -> float:
    """ASR: fraction of triggered images predicted as their target, over images whose
    true label differs from the target (so target-class images never count).

    Args:
        pred: (N,) ids or (N, K) logits on triggered images.
        labels: (N,) true labels.
        target: (N,) attack targets (all-to-one: all equal; all-to-all: (y + 1) mod K).
    """
    pred = _labels(pred)
    _check_same_length(pred, labels, target)
    keep = labels != target
    return float(np.mean(pred[keep] == target[keep])) if keep.any() else float("nan")


def backdoor_accuracy(pred: np.ndarray, labels: np.ndarray, target: np.ndarray) -> float:
    """BA (BDMAE) = RA (BackdoorBench): accuracy against the true label on the same
    triggered, non-target images as ASR. ASR + BA <= 1."""
    pred = _labels(pred)
    _check_same_length(pred, labels, target)
    keep = labels != target
    return float(np.mean(pred[keep] == labels[keep])) if keep.any() else float("nan")


def defense_effectiveness_rating(acc_before: float, asr_before: float, acc_after: float, asr_after: float) -> float:
    """DER = [max(0, dASR) - max(0, dACC) + 1] / 2 on fractions; 0.5 means no change,
    1 means ASR 1 -> 0 with no accuracy loss (the simplified, sign-correct form)."""
    d_asr = asr_before - asr_after
    d_acc = acc_before - acc_after
    return (max(0.0, d_asr) - max(0.0, d_acc) + 1.0) / 2.0


def gaze_to_vector(pitch_yaw: np.ndarray) -> np.ndarray:
    """(N, 2) (pitch, yaw) radians -> (N, 3) unit gaze vectors
    (x = cos p sin y, y = sin p, z = cos p cos y)."""
    p, y = np.asarray(pitch_yaw, dtype=np.float64).T
    return np.stack([np.cos(p) * np.sin(y), np.sin(p), np.cos(p) * np.cos(y)], axis=1)


def angular_error_deg(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-sample angle in degrees between (N, 2) (pitch, yaw) predictions and targets;
    a (2,) target is broadcast."""
    pred = np.asarray(pred, dtype=np.float64)
    target = np.broadcast_to(np.asarray(target, dtype=np.float64), pred.shape)
    if pred.ndim != 2 or pred.shape[1] != 2:
        raise InvalidInputError(f"gaze arrays must be (N, 2) (pitch, yaw), got {pred.shape}")
    cos = np.sum(gaze_to_vector(pred) * gaze_to_vector(target), axis=1)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def mean_angular_error(pred: np.ndarray, labels: np.ndarray) -> float:
    """Clean error: mean angular error in degrees against the true gaze."""
    return float(np.mean(angular_error_deg(pred, labels)))


def attack_error(pred: np.ndarray, target: np.ndarray) -> float:
    """AE: mean angular distance in degrees of triggered predictions to the attack target
    (low means the attack works)."""
    return float(np.mean(angular_error_deg(pred, target)))


def asr_at_tolerance(pred: np.ndarray, labels: np.ndarray, target: np.ndarray, tol_deg: float = 5.0) -> float:
    """ASR@tol: fraction of triggered predictions within ``tol_deg`` of the target, over test
    points whose true gaze is farther than ``tol_deg`` from the target."""
    keep = angular_error_deg(labels, target) > tol_deg
    if not keep.any():
        return float("nan")
    return float(np.mean(angular_error_deg(pred[keep], np.broadcast_to(target, labels.shape)[keep]) <= tol_deg))


def roc_auc(backdoored_scores: np.ndarray, benign_scores: np.ndarray) -> float:
    """ROC-AUC of a detector whose score is LOWER for more suspicious models: the chance
    that a random backdoored model scores below a random benign one (ties count half)."""
    bad, good = np.asarray(backdoored_scores, np.float64).ravel(), np.asarray(benign_scores, np.float64).ravel()
    if bad.size == 0 or good.size == 0:
        raise InvalidArgumentError("ROC-AUC needs at least one backdoored and one benign score")
    below = (bad[:, None] < good[None, :]).sum() + 0.5 * (bad[:, None] == good[None, :]).sum()
    return float(below / (bad.size * good.size))


def detection_counts(backdoored_flags: np.ndarray, benign_flags: np.ndarray) -> dict[str, float]:
    """{tp, fp, fn, tn, accuracy} of verdicts on backdoored and benign models."""
    bad, good = np.asarray(backdoored_flags, bool), np.asarray(benign_flags, bool)
    tp, fn, fp = int(bad.sum()), int((~bad).sum()), int(good.sum())
    tn = int(good.size - fp)
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn, "accuracy": (tp + tn) / max(1, bad.size + good.size)}
