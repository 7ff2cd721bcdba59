"""Markdown tables from benchmark JSON: ``python -m benchmarks.report benchmarks/results/attacks.json``.

README tables are pasted from this script's output, so every figure there comes from a
committed results file.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

_SKIP = {"task", "all_to_all"}


def _fmt(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else ""
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
    return "" if v is None else str(v)


def markdown(record: dict) -> str:
    """One table per task (rows in the JSON's order) plus the machine line."""
    m = record["machine"]
    trained = sum(r.get("train_seconds", 0.0) for r in record["results"])
    # Cached models keep the training time they were made with; the run itself may be short.
    training = f" (the models took {trained / 60:.0f} min to train)" if trained else ""
    lines = [f"Machine: {m.get('cpu')} ({m.get('cores')} cores), GPU: {m.get('gpu') or 'none'}, "
             f"torch {m.get('torch')}, backend {m.get('backend')}; mode {record['config'].get('mode')}, "
             f"run {record['seconds'] / 60:.0f} min{training}.", ""]
    tasks = dict.fromkeys(r.get("task", "") for r in record["results"])
    for task in tasks:
        rows = [r for r in record["results"] if r.get("task", "") == task]
        cols = [c for c in dict.fromkeys(k for r in rows for k in r) if c not in _SKIP]
        if task:
            lines.append(f"**{task}**")
            lines.append("")
        lines.append("| " + " | ".join(cols) + " |")
        lines.append("|" + "---|" * len(cols))
        for r in rows:
            name = r.get("attack", "")
            if r.get("all_to_all"):
                name += " (all-to-all)"
            lines.append("| " + " | ".join(_fmt(name if c == "attack" else r.get(c)) for c in cols) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print(__doc__)
        return 2
    for path in args:
        print(markdown(json.loads(Path(path).read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
