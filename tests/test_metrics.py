import numpy as np
import pytest

from edgeguard import metrics
from edgeguard.errors import InvalidArgumentError, InvalidInputError


def test_classification_metrics_exclude_target_images():
    labels = np.array([0, 1, 2, 3, 1])
    target = np.zeros(5, dtype=int)
    pred = np.array([0, 0, 2, 0, 1])  # image 0 is target class and must not count
    assert metrics.attack_success_rate(pred, labels, target) == pytest.approx(2 / 4)
    assert metrics.backdoor_accuracy(pred, labels, target) == pytest.approx(2 / 4)
    logits = np.eye(4)[pred]
    assert metrics.attack_success_rate(logits, labels, target) == pytest.approx(0.5)
    assert metrics.clean_accuracy(pred, labels) == pytest.approx(3 / 5)


def test_all_to_all_targets_count_every_image():
    labels = np.array([0, 1, 2])
    target = (labels + 1) % 3
    assert metrics.attack_success_rate(np.array([1, 2, 2]), labels, target) == pytest.approx(2 / 3)


def test_der_matches_formula():
    assert metrics.defense_effectiveness_rating(0.9, 1.0, 0.9, 0.0) == pytest.approx(1.0)
    assert metrics.defense_effectiveness_rating(0.9, 0.5, 0.9, 0.5) == pytest.approx(0.5)
    assert metrics.defense_effectiveness_rating(0.9, 0.9, 0.8, 0.1) == pytest.approx((0.8 - 0.1 + 1) / 2)


def test_angular_error_known_angles():
    a = np.array([[0.0, 0.0], [0.0, 0.0]])
    b = np.array([[0.0, np.radians(10)], [np.radians(-20), 0.0]])
    np.testing.assert_allclose(metrics.angular_error_deg(a, b), [10, 20], atol=1e-9)
    assert metrics.mean_angular_error(a, a) == pytest.approx(0.0, abs=1e-6)


def test_asr_at_tolerance_skips_points_near_target():
    target = np.array([0.2, -0.4])
    labels = np.array([[0.2, -0.4], [0.0, 0.3], [-0.3, 0.2]])
    pred = np.array([[0.5, 0.5], [0.2, -0.39], [0.0, 0.0]])
    # first point is already at the target: excluded; of the others one is within 5 deg
    assert metrics.asr_at_tolerance(pred, labels, target) == pytest.approx(0.5)
    assert metrics.attack_error(pred[1:2], target) < 1.0


def test_bad_shapes_raise():
    with pytest.raises(InvalidInputError):
        metrics.clean_accuracy(np.zeros(3), np.zeros(4))
    with pytest.raises(InvalidInputError):
        metrics.angular_error_deg(np.zeros((3, 3)), np.zeros((3, 3)))




def test_roc_auc_counts_pairs_with_lower_scores_as_suspicious():
    from edgeguard.metrics import roc_auc

    assert roc_auc([0.1, 0.2], [0.3, 0.4, 0.5]) == 1.0
    assert roc_auc([0.3, 0.4], [0.1, 0.2]) == 0.0
    # 2 x 2 pairs: (0.1 < 0.2) yes, (0.1 < 0.3) yes, (0.3 < 0.2) no, (0.3 == 0.3) half
    assert roc_auc([0.1, 0.3], [0.2, 0.3]) == pytest.approx(2.5 / 4)
    with pytest.raises(InvalidArgumentError):
        roc_auc([], [0.1])


def test_detection_counts():
    from edgeguard.metrics import detection_counts

    out = detection_counts([True, True, False], [False, True, False, False])
    assert out == {"tp": 2, "fp": 1, "fn": 1, "tn": 3, "accuracy": 5 / 7}
