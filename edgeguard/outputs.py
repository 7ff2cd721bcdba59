"""What a model's outputs mean: the one place that knows classification from regression.

An ``OutputKind`` turns raw outputs into the answer, decides whether an answer moved, checks
labels, names the training loss and computes the standard metrics. Datasets, model specs,
the purifier, training, attacks and the scanner all hold one; the *dataset* (signs, gaze) is
a separate notion (``edgeguard.bench.victims.DATASETS``).

    >>> import numpy as np
    >>> kind = OutputKind.of("classification")
    >>> kind.answer(np.array([[0.1, 0.9], [0.8, 0.2]]))
    array([1, 0])
    >>> gaze = OutputKind.REGRESSION
    >>> gaze.moved(np.radians([[0.0, 0.0]]), np.radians([[0.0, 10.0]]), tolerance_deg=5.0)
    array([ True])
    >>> gaze == "regression", gaze.loss
    (True, 'l1')
"""
from __future__ import annotations

from enum import Enum
from typing import Optional, Sequence, Union

import numpy as np

from edgeguard import metrics
from edgeguard.errors import InvalidArgumentError, InvalidInputError


class OutputKind(str, Enum):
    """The kind of a model's outputs. A ``str``, so it compares equal to its name and is
    written to JSON and ONNX metadata as that name."""

    CLASSIFICATION = "classification"  # (N, K) scores, one per class; the answer is a class id
    REGRESSION = "regression"  # (N, D) values (gaze: pitch, yaw in radians); the answer is the vector

    __str__ = str.__str__
    __format__ = str.__format__

    @classmethod
    def of(cls, value: Union[str, "OutputKind"]) -> "OutputKind":
        """The kind named by ``value``; a typed error naming the choices otherwise."""
        try:
            return cls(value)
        except ValueError:
            raise InvalidArgumentError(f"output kind must be one of {[k.value for k in cls]}, got {value!r}") from None

    # -- answers --------------------------------------------------------------------------
    def answer(self, outputs: np.ndarray) -> np.ndarray:
        """(N, K) scores -> (N,) class ids; (N, D) regression outputs are their own answer."""
        return outputs.argmax(axis=1) if self is OutputKind.CLASSIFICATION else outputs

    def moved(self, answer: np.ndarray, reference: np.ndarray, tolerance_deg: float = 5.0) -> np.ndarray:
        """(N,) bool: whether each answer differs from its reference: another class, or a
        gaze direction more than ``tolerance_deg`` away."""
        if self is OutputKind.CLASSIFICATION:
            return answer != reference
        return metrics.angular_error_deg(answer, reference) > tolerance_deg

    # -- labels and training --------------------------------------------------------------
    def check_labels(self, labels: np.ndarray) -> np.ndarray:
        """Labels in this kind's layout: (N,) int64 class ids or (N, D) float32 values."""
        labels = np.asarray(labels)
        if self is OutputKind.CLASSIFICATION:
            if labels.ndim != 1:
                raise InvalidInputError(f"classification labels must be (N,), got {labels.shape}")
            if labels.dtype.kind == "f" and not (np.isfinite(labels).all() and (labels == np.round(labels)).all()):
                raise InvalidInputError("classification labels must be whole class ids (found NaN, inf or fractions)")
            if len(labels) and labels.min() < 0:
                raise InvalidInputError(f"classification labels must be class ids >= 0, found {labels.min()}")
            return labels.astype(np.int64, copy=False)
        if labels.ndim != 2:
            raise InvalidInputError(f"regression labels must be (N, D), got {labels.shape}")
        if not np.isfinite(labels).all():
            bad = int((~np.isfinite(labels)).any(axis=1).sum())
            raise InvalidInputError(f"{bad} of {len(labels)} regression labels hold NaN or inf")
        return labels.astype(np.float32, copy=False)

    def num_outputs(self, labels: np.ndarray, class_names: Sequence[str] = ()) -> int:
        """Classes (classification) or output values per sample (regression)."""
        if self is OutputKind.REGRESSION:
            return int(labels.shape[1])
        return len(class_names) if class_names else int(labels.max()) + 1

    @property
    def loss(self) -> str:
        """The default training loss: "cross_entropy" or "l1" (the gaze literature's)."""
        return "cross_entropy" if self is OutputKind.CLASSIFICATION else "l1"

    @property
    def scan_outputs(self) -> str:
        """What DRMGuard reads from such a model (``DRMGuardConfig.outputs``): "softmax" or
        "regression"."""
        return "softmax" if self is OutputKind.CLASSIFICATION else "regression"

    # -- metrics --------------------------------------------------------------------------
    def metrics(self, clean_pred: np.ndarray, clean_labels: np.ndarray, bd_pred: Optional[np.ndarray] = None,
                bd_labels: Optional[np.ndarray] = None, bd_target: Optional[np.ndarray] = None,
                tol_deg: float = 5.0) -> dict[str, float]:
        """The standard metric set of one model: {ca, asr, ba} or {clean_err_deg,
        attack_err_deg, asr_at_5deg}; backdoor keys only when triggered predictions are given.
        Predictions are raw outputs (or class ids)."""
        if self is OutputKind.CLASSIFICATION:
            out = {"ca": metrics.clean_accuracy(clean_pred, clean_labels)}
            if bd_pred is not None:
                out["asr"] = metrics.attack_success_rate(bd_pred, bd_labels, bd_target)
                out["ba"] = metrics.backdoor_accuracy(bd_pred, bd_labels, bd_target)
            return out
        out = {"clean_err_deg": metrics.mean_angular_error(clean_pred, clean_labels)}
        if bd_pred is not None:
            out["attack_err_deg"] = metrics.attack_error(bd_pred, bd_target)
            out[f"asr_at_{tol_deg:g}deg"] = metrics.asr_at_tolerance(bd_pred, bd_labels, bd_target, tol_deg)
        return out

    @property
    def headline_metric(self) -> str:
        """The clean-quality key of ``metrics()``: "ca" or "clean_err_deg"."""
        return "ca" if self is OutputKind.CLASSIFICATION else "clean_err_deg"
