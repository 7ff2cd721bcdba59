"""The purifier's outcome as an engine build's gate: do cheaper engines change BDMAE's answers?

An fp16 or int8 model and restorer can each stay close to fp32 output by output and still
move the purifier's answers: its scores count answer flips over dozens of restorations. So a
build of the pair is accepted only when purifying the same held-back frames with the new
engines gives the fp32 engines' answer on all but ``max_disagreement`` of them. Each of CA,
BA and ASR is a mean over frames of something decided by the answer alone, so on these
frames none of them moves by more than the disagreement.

    report = purifier_gate(("model.onnx", "mae.onnx"), ("model.int8.onnx", "mae.int8.onnx"), frames)
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

import numpy as np

from edgeguard.errors import InvalidArgumentError, InvalidInputError, ModelFormatError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PurifierGateReport:
    """frames: frames purified by both pairs; disagreement: share whose answers differ
    (regression: by more than the purifier's ``tolerance_deg``); changed_reference and
    changed_candidate: shares whose answer purification changed, with each pair."""

    frames: int
    disagreement: float
    changed_reference: float
    changed_candidate: float

    def __str__(self) -> str:
        return (f"purifier gate: answers differ on {self.disagreement:.1%} of {self.frames} frames "
                f"(purification changed {self.changed_reference:.1%} with the reference engines, "
                f"{self.changed_candidate:.1%} with the new ones)")


def compare_purifiers(reference, candidate, frames: np.ndarray, config=None, output: Optional[str] = None,
                      batch: int = 25) -> PurifierGateReport:
    """Purify ``frames`` with the ``reference`` and the ``candidate`` (model, restorer) pairs
    (anything ``load_engine`` takes) and measure how often the answers differ. ``frames``:
    (N, H, W, C) uint8 or (N, C, H, W) float, held back from any calibration, triggered ones
    welcome (BA and ASR are then covered too). ``config``: the PurifierConfig to deploy
    (default: faithful)."""
    from edgeguard.purify import Purifier, PurifierConfig

    if len(frames) == 0:
        raise InvalidInputError("comparing purifiers needs frames (none given)")
    config = config or PurifierConfig()
    answers, changed = [], []
    for model, restorer in (reference, candidate):
        purifier = Purifier(model, restorer, config, output=output)
        results = [purifier(frames[i:i + batch]) for i in range(0, len(frames), batch)]
        answers.append(np.concatenate([r.prediction for r in results]))
        changed.append(float(np.concatenate([r.changed for r in results]).mean()))
    differ = purifier.output.moved(answers[1], answers[0], config.tolerance_deg)
    return PurifierGateReport(frames=len(frames), disagreement=float(np.mean(differ)),
                              changed_reference=changed[0], changed_candidate=changed[1])


def purifier_gate(reference, candidate, frames: np.ndarray, config=None, max_disagreement: float = 0.01,
                  output: Optional[str] = None, batch: int = 25) -> PurifierGateReport:
    """``compare_purifiers``, and ModelFormatError when the answers differ on more than
    ``max_disagreement`` of the frames."""
    if not 0.0 <= max_disagreement < 1.0:
        raise InvalidArgumentError(f"max_disagreement must be in [0, 1), got {max_disagreement}")
    report = compare_purifiers(reference, candidate, frames, config, output, batch)
    log.info("%s", report)
    if report.disagreement > max_disagreement:
        raise ModelFormatError(f"{report}, above the {max_disagreement:.1%} allowed: keep this pair in a higher "
                               "precision (or build only the model in it)")
    return report
