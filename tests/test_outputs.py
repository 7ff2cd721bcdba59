"""OutputKind: the one place that tells classification from regression."""
import json

import numpy as np
import pytest

from edgeguard.data.dataset import ImageDataset
from edgeguard.errors import InvalidArgumentError, InvalidInputError
from edgeguard.outputs import OutputKind

CLS, REG = OutputKind.CLASSIFICATION, OutputKind.REGRESSION


def test_a_kind_is_named_by_its_string_and_written_as_it():
    assert OutputKind.of("regression") is REG and OutputKind.of(CLS) is CLS
    assert CLS == "classification" and f"{REG}" == "regression" and json.dumps({"k": REG}) == '{"k": "regression"}'
    with pytest.raises(InvalidArgumentError, match="classification.*regression.*'pose'"):
        OutputKind.of("pose")


def test_answers_and_whether_they_moved():
    scores = np.array([[0.1, 0.7, 0.2], [0.9, 0.05, 0.05]])
    assert CLS.answer(scores).tolist() == [1, 0]
    assert CLS.moved(np.array([1, 0]), np.array([1, 2])).tolist() == [False, True]
    gaze = np.radians([[0.0, 0.0], [0.0, 0.0]])
    assert REG.answer(gaze) is gaze
    # pure yaw turns: the angle between the gaze vectors is the yaw difference
    other = np.radians([[0.0, 4.0], [0.0, 6.0]])
    assert REG.moved(gaze, other, tolerance_deg=5.0).tolist() == [False, True]
    assert REG.moved(gaze, other, tolerance_deg=3.0).tolist() == [True, True]


def test_labels_losses_and_scan_outputs():
    assert CLS.check_labels(np.array([1.0, 2.0])).dtype == np.int64
    assert REG.check_labels(np.zeros((3, 2), np.float64)).dtype == np.float32
    with pytest.raises(InvalidInputError, match=r"\(N,\)"):
        CLS.check_labels(np.zeros((3, 2)))
    with pytest.raises(InvalidInputError, match=r"\(N, D\)"):
        REG.check_labels(np.zeros(3))
    with pytest.raises(InvalidInputError, match="1 of 2 regression labels hold NaN"):
        REG.check_labels(np.array([[0.1, np.nan], [0.0, 0.2]]))
    for bad in (np.array([1.0, np.nan]), np.array([0.5, 1.0]), np.array([-1, 2])):
        with pytest.raises(InvalidInputError, match="class ids"):
            CLS.check_labels(bad)
    assert (CLS.loss, REG.loss) == ("cross_entropy", "l1")
    assert (CLS.scan_outputs, REG.scan_outputs) == ("softmax", "regression")
    assert CLS.num_outputs(np.array([0, 4]), ()) == 5 and CLS.num_outputs(np.array([0]), ("a", "b", "c")) == 3
    assert REG.num_outputs(np.zeros((2, 2))) == 2


def test_metrics_by_kind():
    labels = np.array([0, 1, 2, 3])
    logits = np.eye(4)[[0, 1, 2, 0]]  # one of four wrong
    bd_labels, bd_target = np.array([1, 2, 3, 0]), np.zeros(4, np.int64)
    out = CLS.metrics(logits, labels, np.eye(4)[[0, 0, 3, 0]], bd_labels, bd_target)
    # ASR over the three non-target images (two hit the target); BA: triggered answers that are right
    assert out == {"ca": 0.75, "asr": pytest.approx(2 / 3), "ba": pytest.approx(1 / 3)}
    assert CLS.headline_metric == "ca" and REG.headline_metric == "clean_err_deg"
    zeros = np.zeros((4, 2))
    out = REG.metrics(zeros, zeros, zeros, np.full((4, 2), 0.5), zeros)
    assert set(out) == {"clean_err_deg", "attack_err_deg", "asr_at_5deg"}
    assert out["clean_err_deg"] == 0.0 and out["asr_at_5deg"] == 1.0
    assert set(REG.metrics(zeros, zeros)) == {"clean_err_deg"}


def test_a_dataset_holds_a_kind():
    ds = ImageDataset(np.zeros((2, 4, 4, 3), np.uint8), np.array([0, 1]), "classification")
    assert ds.output is CLS and ds.num_classes == 2
    with pytest.raises(InvalidInputError, match="output kind"):
        ImageDataset(np.zeros((2, 4, 4, 3), np.uint8), np.array([0, 1]), "pose")
