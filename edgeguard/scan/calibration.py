"""Thresholds from trusted (benign) models only: a user has no backdoored ones."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from edgeguard.errors import InvalidArgumentError

# The calibration margin: a threshold this fraction of the trusted models' median statistic.
# Why 0.85: on the benign models of the development and quick gaze zoos (11, each against the
# median of the others in its zoo) the statistic sits at 0.92-1.09 of that median but for one
# odd model (0.68); the robust spread (1.4826 x MAD) of those ratios is 0.045, and 0.85 is three
# of it below 1 (docs/decisions.md).
CALIBRATION_MARGIN = 0.85


def calibrate(statistics: "list[float] | np.ndarray", quantile: float = 0.5,
              margin: float = CALIBRATION_MARGIN) -> float:
    """A threshold from benign models' statistics only (a user has no backdoored models):
    ``margin`` times their ``quantile`` (default: the median, so one odd trusted model does not
    move it; the smallest benign statistic, ``quantile=0``, did).

    >>> round(calibrate([0.013, 0.014, 0.009]), 5)
    0.01105
    """
    values = np.asarray(statistics, dtype=np.float64)
    if values.size == 0 or not np.isfinite(values).all():
        raise InvalidArgumentError("need finite statistics of at least one benign model")
    if not 0.0 <= quantile <= 1.0 or margin <= 0:
        raise InvalidArgumentError(f"quantile must be in [0, 1] and margin positive, got {quantile}, {margin}")
    return float(margin * np.quantile(values, quantile))


ANY_COLLAPSE = math.inf


def threshold_from_trusted(statistics: Sequence[float], collapsed: Sequence[bool],
                           margin: float = CALIBRATION_MARGIN) -> float:
    """The decision threshold from scans of trusted (benign) models: their statistics and
    whether each search's outputs collapsed (``ScanResult.statistic``, ``.collapsed``).

    Only collapsed searches calibrate: one that never collapsed found no edit that acts like a
    trigger, so its change says nothing about a trigger's size. The threshold is ``calibrate``
    of the collapsed ones; if none collapsed, ``ANY_COLLAPSE`` (inf): a scanned model is then
    flagged as soon as its outputs collapse at all.

    >>> round(threshold_from_trusted([0.02, 0.001, 0.015], [True, False, True]), 5)
    0.01488
    >>> threshold_from_trusted([0.001], [False])
    inf
    """
    if len(statistics) != len(collapsed):
        raise InvalidArgumentError(f"{len(statistics)} statistics but {len(collapsed)} collapse flags")
    used = [s for s, c in zip(statistics, collapsed) if c]
    return calibrate(used, margin=margin) if used else ANY_COLLAPSE
