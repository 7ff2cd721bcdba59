"""The ``edgeguard`` command.

    edgeguard attack --task signs --attack wanet [--all-to-all]
    edgeguard demo --out demo.png

Exit status: 0 on success, 2 on a usage or input error (an ``EdgeGuardError``).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any, Optional, Sequence

from edgeguard.errors import EdgeGuardError, InvalidArgumentError


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_options(pairs: Sequence[str]) -> dict[str, Any]:
    """["k=4", "pattern=color"] -> {"k": 4, "pattern": "color"} (values parsed as JSON when they can be)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidArgumentError(f"--option expects KEY=VALUE, got {pair!r}")
        out[key] = _parse_value(value)
    return out


def format_table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    """A plain-text table; floats with 4 decimals, missing cells as '-'."""
    def cell(v: Any) -> str:
        return f"{v:.4f}" if isinstance(v, float) else ("-" if v is None else str(v))

    body = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(b[i]) for b in body)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(b, widths)) for b in body]
    return "\n".join(lines)


def _victim_config(args: argparse.Namespace, attack: str):
    from edgeguard.train import TrainConfig
    from edgeguard.victims import TASKS, VictimConfig

    if args.task not in TASKS:
        raise InvalidArgumentError(f"unknown task {args.task!r}; choose one of {sorted(TASKS)}")
    train = TASKS[args.task].train
    if args.epochs is not None:
        if args.epochs < 1:
            raise InvalidArgumentError(f"--epochs must be >= 1, got {args.epochs}")
        train = TrainConfig(**{**train.__dict__, "epochs": args.epochs, "seed": args.seed})
    else:
        train = TrainConfig(**{**train.__dict__, "seed": args.seed})
    return VictimConfig(task=args.task, attack=attack, attack_options=parse_options(args.option) if attack != "none" else {},
                        all_to_all=args.all_to_all and attack != "none", n_train=args.n_train, n_test=args.n_test,
                        num_classes=args.classes, width=args.width, train=train, seed=args.seed)


def cmd_attack(args: argparse.Namespace) -> int:
    from edgeguard.victims import get_victim

    from edgeguard.attacks import list_attacks

    if args.attack not in list_attacks() + ["none"]:
        raise InvalidArgumentError(f"unknown attack {args.attack!r}; choose one of {list_attacks() + ['none']}")
    names = (["none"] if args.with_clean and args.attack != "none" else []) + [args.attack]
    rows = []
    for name in names:
        victim = get_victim(_victim_config(args, name), progress=not args.quiet, use_cache=not args.no_cache)
        rows.append({"task": args.task, "attack": name + (" (all-to-all)" if victim.config.all_to_all else ""),
                     **victim.metrics, "train_s": victim.train_seconds, "cached": victim.from_cache})
    columns = list(dict.fromkeys(k for r in rows for k in r))
    print(format_table(rows, columns))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from edgeguard.demo import run_demo

    run_demo(args.out, attack=args.attack, progress=not args.quiet)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgeguard", description="Backdoor defenses for image models on edge devices.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("attack", help="train (or load from the cache) a backdoored model and print its metrics")
    p.add_argument("--task", default="signs", help="signs (SynthSigns classification) or gaze (SynthGaze regression)")
    p.add_argument("--attack", default="badnets", help="badnets, blended, blended_patch, sig, lc, wanet, iab, or none")
    p.add_argument("--all-to-all", action="store_true", help="label y -> (y + 1) mod K instead of target 0")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="attack option, e.g. pattern=color")
    p.add_argument("--n-train", type=int, default=10000, help="training samples (default 10000)")
    p.add_argument("--n-test", type=int, default=2000, help="test samples (default 2000)")
    p.add_argument("--classes", type=int, default=43, help="SynthSigns classes (default 43)")
    p.add_argument("--width", type=float, default=0.125, help="model width multiplier (default 0.125)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default: the task's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--with-clean", action="store_true", help="also train/load the clean model and show both rows")
    p.add_argument("--no-cache", action="store_true", help="retrain even when a cached model exists")
    p.add_argument("--json", help="also write the rows to this JSON file")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_attack)

    p = sub.add_parser("demo", help="the README demo: a backdoored SynthSigns model, its metrics and a PNG")
    p.add_argument("--out", default="demo.png", help="PNG to write")
    p.add_argument("--attack", default="badnets")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except EdgeGuardError as exc:
        print(f"edgeguard: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
