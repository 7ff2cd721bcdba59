"""Markdown tables from benchmark JSON.

    python -m benchmarks.report benchmarks/results/attacks.json   # print one file's tables
    python -m benchmarks.report --update docs/results.md          # regenerate a page's tables

A page marks each generated block with ``<!-- report PATH -->`` ... ``<!-- /report -->``;
``--update`` rewrites what lies between from the JSON at PATH (relative to the repository)
and leaves the prose around it alone, so every figure in the tables comes from a committed
results file. tests/test_results_page.py fails when docs/results.md is not up to date.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np

_SKIP = {"task", "all_to_all"}
ROOT = Path(__file__).resolve().parents[1]
_BLOCK = re.compile(r"(<!-- report (?P<path>\S+) -->\n)(?P<body>.*?)(<!-- /report -->)", re.S)


def _fmt(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else ""
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
    return "" if v is None else str(v)


def _cell(r: dict) -> str:
    if "clean_err_deg" in r:
        return f"{r['clean_err_deg']:.2f} / {r['asr_at_5deg']:.2f}"
    return f"{r['ca']:.2f} / {r['ba']:.2f} / {r['asr']:.2f}"


def defense_grid(rows: list[dict]) -> list[str]:
    """Attack x defense table of "CA / BA / ASR" cells (regression: "clean error / ASR@5deg"),
    plus the cost lines the rows carry (BDMAE's ms per frame, EigenGuard's overheads)."""
    defenses = list(dict.fromkeys(r["defense"] for r in rows))
    attacks = list(dict.fromkeys((r["attack"], r.get("all_to_all", False)) for r in rows))
    legend = "clean error (deg) / ASR@5deg" if "clean_err_deg" in rows[0] else "CA / BA / ASR"
    lines = [f"Cells are {legend}.", "", "| attack | " + " | ".join(defenses) + " |",
             "|---|" + "---|" * len(defenses)]
    for attack, a2a in attacks:
        cells = {r["defense"]: _cell(r) for r in rows if r["attack"] == attack and r.get("all_to_all", False) == a2a}
        held_out = any(r.get("held_out") for r in rows if r["attack"] == attack)
        name = attack + (" (all-to-all)" if a2a else "") + (" (held out)" if held_out else "")
        lines.append(f"| {name} | " + " | ".join(cells.get(d, "") for d in defenses) + " |")
    lines.append("")
    if any("ms_per_image" in r for r in rows):
        ms = {d: float(np.mean([r["ms_per_image"] for r in rows if r["defense"] == d])) for d in defenses}
        lines.append("Mean ms per frame: " + ", ".join(f"{d} {v:.2f}" for d, v in ms.items()) + ". Engine calls per frame: "
                     + ", ".join(f"{r['defense']} {r['model_calls']:g} model + {r['restorer_calls']:g} restorer"
                                 for r in rows if r["attack"] == attacks[0][0] and
                                 (r["restorer_calls"] or r["model_calls"] > 1)) + ".")
        lines.append("")
    if any("rows_clean" in r for r in rows):
        split = {d: [r for r in rows if r["defense"] == d and "rows_clean" in r] for d in defenses}
        lines.append("Engine rows (model + restorer) per clean / triggered frame, mean over attacks: " + ", ".join(
            f"{d} {np.mean([r['rows_clean'] for r in rs]):.1f} / {np.mean([r['rows_backdoor'] for r in rs]):.1f}"
            for d, rs in split.items() if rs) + ".")
        lines.append("")
    folded = next((r for r in rows if "overhead_bs1" in r), None)
    if folded is not None:
        lines.append(f"EigenGuard's cost: exported model latency (ONNX Runtime, 1 thread) "
                     f"{folded['overhead_bs1']:+.1%} at batch 1 and {folded['overhead_bs25']:+.1%} at batch 25 "
                     f"over the unprotected export; training step {folded['train_overhead']:+.1%}.")
        lines.append("")
    return lines


def markdown(record: dict) -> str:
    """One table per task (rows in the JSON's order; an attack x defense grid for defense
    benchmarks) plus the machine line."""
    m = record["machine"]
    trained = sum(r.get("train_seconds", 0.0) for r in record["results"])
    # Cached models keep the training time they were made with; the run itself may be short.
    training = f" (the models took {trained / 60:.0f} min to train)" if trained else ""
    mode = f"mode {record['config']['mode']}, " if record["config"].get("mode") else ""
    isa = f", {'/'.join(m['isa'])}" if m.get("isa") else ""
    lines = [f"Machine: {m.get('cpu')} ({m.get('cores')} cores{isa}), GPU: {m.get('gpu') or 'none'}, "
             f"torch {m.get('torch')}, backend {m.get('backend')}; {mode}"
             f"run {record['seconds'] / 60:.0f} min{training}.", ""]
    tasks = dict.fromkeys(r.get("task", "") for r in record["results"])
    for task in tasks:
        rows = [r for r in record["results"] if r.get("task", "") == task]
        cols = [c for c in dict.fromkeys(k for r in rows for k in r) if c not in _SKIP]
        if task:
            lines.append(f"**{task}**")
            lines.append("")
        if "defense" in cols:
            lines += defense_grid(rows)
            continue
        lines += _table(rows, cols)
    if record.get("benchmark") == "scan" and record.get("models"):
        lines += ["**statistic per model** (lower = more suspicious; in brackets the estimated target's "
                  "error in degrees, or whether it is the attack's class; *: the outputs never collapsed, "
                  "ranked as clean)", ""] + scan_statistics(record["models"])
    if record.get("dropped"):
        lines += [f"Dropped (never learned): {', '.join(d['name'] for d in record['dropped'])}", ""]
    if record.get("repair"):
        lines += ["**repair**", ""] + _table(record["repair"], list(dict.fromkeys(k for r in record["repair"] for k in r)))
    return "\n".join(lines)


def scan_statistics(models: list[dict]) -> list[str]:
    """A scan benchmark's per-model records as one row per model, one column per method."""
    def name(r: dict) -> str:
        return r.get("name") or f"{r['attack']}-{r['index']}"

    methods = list(dict.fromkeys(r["method"] for r in models))
    names = list(dict.fromkeys(name(r) for r in models))
    cells, learned = {}, {}
    for r in models:
        cell = f"{r['statistic']:.4f}" + ("*" if r.get("collapsed") is False else "")
        if r.get("target_err_deg") is not None:
            cell += f" ({r['target_err_deg']:.0f})"
        elif r.get("target_found") is not None:
            cell += " (class)" if r["target_found"] else " (other)"
        cells[(name(r), r["method"])] = cell
        learned[name(r)] = r.get("learned")
    lines = ["| model | learned | " + " | ".join(methods) + " |", "|" + "---|" * (len(methods) + 2)]
    for model in names:
        lines.append(f"| {model} | {_fmt(learned[model])} | " + " | ".join(cells.get((model, m), "") for m in methods)
                     + " |")
    return lines + [""]


def _table(rows: list[dict], cols: list[str]) -> list[str]:
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        name = r.get("attack", "")
        if r.get("all_to_all"):
            name += " (all-to-all)"
        lines.append("| " + " | ".join(_fmt(name if c == "attack" else r.get(c)) for c in cols) + " |")
    return lines + [""]


def update_page(text: str, root: Path = ROOT) -> str:
    """``text`` with every marked block regenerated from its JSON file."""
    def fresh(match: re.Match) -> str:
        record = json.loads((root / match["path"]).read_text())
        return match.group(1) + markdown(record).strip() + "\n" + match.group(4)

    return _BLOCK.sub(fresh, text)


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print(__doc__)
        return 2
    if args[0] == "--update":
        for page in map(Path, args[1:]):
            text = page.read_text()
            updated = update_page(text)
            if updated != text:
                page.write_text(updated)
            print(f"{page}: {'updated' if updated != text else 'up to date'}")
        return 0
    for path in args:
        print(markdown(json.loads(Path(path).read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
