"""Two engines on the same feeds, output by output: the export parity check and the build gate.

    report = compare(load_engine(module), load_engine("model.onnx"), feeds, Tolerances(max_abs_diff=1e-4))
    report.raise_for("model.onnx")   # ModelFormatError naming what differs, if anything does

Outputs are matched by name when both engines use the same names, else by position (a torch
module's single output is called "output" whatever the ONNX file calls it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Optional

import numpy as np

from edgeguard.errors import InvalidArgumentError, ModelFormatError
from edgeguard.runtime.base import Engine


@dataclass(frozen=True)
class Tolerances:
    """What a candidate may differ from the reference by; None: not checked.

    Attributes:
        max_abs_diff: largest |candidate - reference| on any output element.
        min_top1_agreement: least share of rows (of 2-D outputs) whose argmax agrees: a
            classifier's answers. None also skips computing it.
    """

    max_abs_diff: Optional[float] = None
    min_top1_agreement: Optional[float] = None

    def __post_init__(self) -> None:
        if self.max_abs_diff is not None and not self.max_abs_diff >= 0:
            raise InvalidArgumentError(f"max_abs_diff must be >= 0, got {self.max_abs_diff}")
        if self.min_top1_agreement is not None and not 0.0 <= self.min_top1_agreement <= 1.0:
            raise InvalidArgumentError(f"min_top1_agreement must be in [0, 1], got {self.min_top1_agreement}")


@dataclass(frozen=True)
class Comparison:
    """Per output (the reference's names): the largest absolute difference and, where
    asked for, the top-1 agreement; ``rows`` is the batch rows compared."""

    max_abs_diff: dict[str, float]
    top1_agreement: dict[str, float]
    rows: int
    tolerances: Tolerances

    @property
    def failures(self) -> list[str]:
        """What exceeds the tolerances, in words; empty when the candidate passes."""
        out, tol = [], self.tolerances
        for name, diff in self.max_abs_diff.items():
            if tol.max_abs_diff is not None and not diff <= tol.max_abs_diff:
                out.append(f"output {name!r} differs by {diff:.2e} (> {tol.max_abs_diff:.0e} allowed)")
        for name, share in self.top1_agreement.items():
            if tol.min_top1_agreement is not None and share < tol.min_top1_agreement:
                out.append(f"output {name!r} agrees on only {share:.1%} of top-1 answers "
                           f"(< {tol.min_top1_agreement:.0%} required)")
        return out

    def raise_for(self, what: str, fix: str = "") -> None:
        """Raise ModelFormatError naming ``what`` and every failure (and ``fix``) if any."""
        if self.failures:
            raise ModelFormatError(f"{what}: " + "; ".join(self.failures) + f" on {self.rows} inputs" +
                                   (f"; {fix}" if fix else ""))


def compare(reference: Engine, candidate: Engine, feeds: Iterable[Mapping[str, np.ndarray]],
            tolerances: Tolerances = Tolerances()) -> Comparison:
    """Run both engines on every feed ({input name: (N, ...) array}) and measure how far the
    candidate's outputs are from the reference's.

    >>> class Scale(Engine):  # a stand-in backend: y = k x
    ...     input_names, output_names = ("x",), ("y",)
    ...     def __init__(self, k):
    ...         super().__init__()
    ...         self.k = k
    ...     def _run(self, arrays):
    ...         return [arrays[0] * self.k]
    >>> feeds = [{"x": np.eye(4, dtype=np.float32)}]
    >>> compare(Scale(1.0), Scale(1.0), feeds, Tolerances(max_abs_diff=0.0, min_top1_agreement=1.0)).failures
    []
    >>> report = compare(Scale(1.0), Scale(1.5), feeds, Tolerances(max_abs_diff=0.1))
    >>> report.max_abs_diff, report.failures
    ({'y': 0.5}, ["output 'y' differs by 5.00e-01 (> 1e-01 allowed)"])
    """
    ref_names, cand_names = reference.output_names, candidate.output_names
    if len(ref_names) != len(cand_names):
        raise InvalidArgumentError(f"{reference} has outputs {list(ref_names)}, {candidate} {list(cand_names)}: "
                                   "nothing to compare them by")
    same_names = set(ref_names) == set(cand_names)
    diffs = {name: 0.0 for name in ref_names}
    agree = {name: 0 for name in ref_names}
    rows = 0
    for feed in feeds:
        want, got = reference.infer(feed), candidate.infer(feed)
        for position, name in enumerate(ref_names):
            w = want[name]
            g = got[name] if same_names else got[cand_names[position]]
            if w.shape != g.shape:
                raise ModelFormatError(f"output {name!r}: {candidate} gives shape {g.shape}, {reference} {w.shape}")
            diffs[name] = max(diffs[name], float(np.abs(g.astype(np.float64) - w).max(initial=0.0)))
            if tolerances.min_top1_agreement is not None and w.ndim == 2:
                agree[name] += int((g.argmax(1) == w.argmax(1)).sum())
        rows += len(next(iter(feed.values())))
    if rows == 0:
        raise InvalidArgumentError("no feeds to compare the engines on")
    top1 = ({name: agree[name] / rows for name in ref_names}
            if tolerances.min_top1_agreement is not None else {})
    return Comparison(max_abs_diff=diffs, top1_agreement=top1, rows=rows, tolerances=tolerances)
