"""The ``edgeguard`` command.

    edgeguard attack --dataset signs --attack wanet [--all-to-all]
    edgeguard train-mae --onnx mae.onnx [--finetune-on clean.npz]
    edgeguard purify --model model.onnx --restorer mae.onnx frames/ --out purified/
    edgeguard scan model.safetensors --dataset gaze --data clean.npz [--repair repaired.safetensors]
    edgeguard demo --out demo.png
    edgeguard cache list|verify|clear

Exit status: 0 on success, 2 on a usage or input error (an ``EdgeGuardError``); ``scan``
exits 3 when it finds the model backdoored.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

from edgeguard.errors import EdgeGuardError, InvalidArgumentError
from edgeguard.fileio import check_writable, write_atomically


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
    from edgeguard.bench.victims import DATASETS, VictimConfig

    if args.dataset not in DATASETS:
        raise InvalidArgumentError(f"unknown dataset {args.dataset!r}; choose one of {sorted(DATASETS)}")
    train = DATASETS[args.dataset].train
    if args.epochs is not None:
        if args.epochs < 1:
            raise InvalidArgumentError(f"--epochs must be >= 1, got {args.epochs}")
        train = TrainConfig(**{**train.__dict__, "epochs": args.epochs, "seed": args.seed})
    else:
        train = TrainConfig(**{**train.__dict__, "seed": args.seed})
    guard, at = _eigenguard(getattr(args, "eigenguard", None))
    return VictimConfig(dataset=args.dataset, attack=attack, attack_options=parse_options(args.option) if attack != "none" else {},
                        all_to_all=args.all_to_all and attack != "none", n_train=args.n_train, n_test=args.n_test,
                        num_classes=args.classes, width=args.width, train=train, seed=args.seed,
                        eigenguard=guard, eigenguard_at=at)


def _eigenguard(spec: Optional[str]):
    """"k=32,scale=0.001,at=layer2" -> (EigenGuardConfig, block name); None -> (None, None)."""
    if spec is None:
        return None, None
    from edgeguard.eigenguard import DEFAULT_AT, EigenGuardConfig

    options = parse_options([p for p in spec.split(",") if p])
    at = options.pop("at", DEFAULT_AT)
    try:
        return EigenGuardConfig(**options), str(at)
    except TypeError as exc:
        raise InvalidArgumentError(f"--eigenguard: {exc}; options are the fields of EigenGuardConfig and at=BLOCK") from None


def cmd_attack(args: argparse.Namespace) -> int:
    from edgeguard.bench.victims import get_victim

    from edgeguard.attacks import list_attacks

    if args.attack not in list_attacks() + ["none"]:
        raise InvalidArgumentError(f"unknown attack {args.attack!r}; choose one of {list_attacks() + ['none']}")
    if args.json:
        check_writable(args.json, "--json")
    names = (["none"] if args.with_clean and args.attack != "none" else []) + [args.attack]
    rows = []
    for name in names:
        victim = get_victim(_victim_config(args, name), progress=not args.quiet, use_cache=not args.no_cache)
        rows.append({"dataset": args.dataset, "attack": name + (" (all-to-all)" if victim.config.all_to_all else ""),
                     **({"defense": "eigenguard"} if victim.config.eigenguard else {}), **victim.metrics, "train_s": victim.train_seconds, "cached": victim.from_cache})
    columns = list(dict.fromkeys(k for r in rows for k in r))
    print(format_table(rows, columns))
    if args.json:
        write_atomically(args.json, lambda tmp: tmp.write_text(json.dumps(rows, indent=2)))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from edgeguard.bench.demo import run_demo

    check_writable(args.out, "--out")
    run_demo(args.out, attack=args.attack, progress=not args.quiet, retrain=args.retrain)
    return 0


def cmd_train_mae(args: argparse.Namespace) -> int:
    from edgeguard.bench.restorer import train_restorer
    from edgeguard.data.loaders import load_images
    from edgeguard.deploy import export_restorer

    outputs = [check_writable(p, option) for p, option in ((args.out, "--out"), (args.onnx, "--onnx")) if p]
    if len(set(outputs)) < len(outputs):
        raise InvalidArgumentError("--out and --onnx name the same file; give each its own")
    frames = load_images(args.finetune_on) if args.finetune_on else None
    trained = train_restorer(args.steps, frames, args.finetune_steps, seed=args.seed, progress=not args.quiet)
    print("restoration PSNR at 75% masking (masked pixels): "
          + ", ".join(f"{name} {value:.2f} dB" for name, value in trained.psnr.items()))
    if args.out:
        print(f"wrote {trained.save(args.out)}")
    if args.onnx:
        size = trained.mae.config.img_size
        print(f"wrote {export_restorer(trained.mae, args.onnx, (trained.mae.config.in_chans, size, size))}")
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from edgeguard import cache

    if args.action == "clear":
        freed = cache.clear(args.kind)
        print(f"removed {'the ' + args.kind if args.kind else 'every'} cache entry folder ({freed / 2**20:.1f} MiB) "
              f"from {cache.cache_root()}")
        return 0
    rows = [r for r in cache.entries() if args.kind is None or r["kind"] == args.kind]
    total = sum(r["bytes"] for r in rows)
    if args.action == "list":
        table = [{"kind": r["kind"], "key": r["key"], "MiB": f"{r['bytes'] / 2**20:.1f}", "holds": r["holds"],
                  "status": r["status"].split(":")[0].split(" (")[0]} for r in rows]
        if table:
            print(format_table(table, ["kind", "key", "MiB", "holds", "status"]))
        print(f"{len(rows)} entries, {total / 2**20:.1f} MiB in {cache.cache_root()}")
        return 0
    damaged = [r for r in rows if r["status"].startswith("damaged")]
    for r in damaged:
        print(f"{r['path']}: {r['status']}")
    intact = sum(r["status"] == "intact" for r in rows)
    print(f"{len(rows)} entries checked: {intact} intact, {len(damaged)} damaged (rebuilt on next use), "
          f"{len(rows) - intact - len(damaged)} interrupted, empty or from before checksums (checked when they load)")
    return 1 if damaged else 0


def cmd_purify(args: argparse.Namespace) -> int:
    from edgeguard.purify import Purifier, PurifierConfig
    from edgeguard.purify.files import check_output_folder, image_files, purify_files, read_frames

    from edgeguard.runtime import load_engine

    if args.batch < 1 or (args.threads is not None and args.threads < 1):
        raise InvalidArgumentError(f"--batch and --threads must be >= 1, got {args.batch}, {args.threads}")
    check_writable(args.out, "--out", folder=True)
    engines = [load_engine(path, threads=args.threads) if args.threads else path for path in (args.model, args.restorer)]
    exit_share = {} if args.early_exit is None else {"early_exit": args.early_exit}  # else the preset's
    config = (PurifierConfig.fast if args.fast else PurifierConfig)(ssim_mode=args.ssim, seed=args.seed, **exit_share)
    purifier = Purifier(*engines, config, output=args.output_kind)
    if args.calibrate_on:
        check_output_folder(Path(args.out), image_files(args.images))  # refused before the calibration's work
        spec = purifier.model.spec
        clean = read_frames(image_files(args.calibrate_on), channels=spec.input_shape[0] if spec is not None else 3)
        purifier = purifier.calibrate(clean)
        print(f"calibrated on {len(clean)} clean frames: score gate {purifier.config.score_gate:.3f}")
    records = purify_files(purifier, args.images, args.out, batch=args.batch)
    changed = sum(r["changed"] for r in records)
    print(f"purified {len(records)} frames ({changed} answers changed); wrote {args.out}/ and "
          f"{args.out}/results.json")
    return 0


EXIT_BACKDOORED = 3


def cmd_scan(args: argparse.Namespace) -> int:
    from edgeguard.bench.victims import DATASETS, VictimConfig, model_spec
    from edgeguard.data.loaders import load_dataset
    from edgeguard.deploy.weights import load_model_weights
    from edgeguard.scan.workflow import default_config, scan_model

    if args.dataset not in DATASETS:
        raise InvalidArgumentError(f"unknown dataset {args.dataset!r}; choose one of {sorted(DATASETS)}")
    if args.threshold is not None and args.calibrate:
        raise InvalidArgumentError("give --threshold or --calibrate, not both")
    inputs = [args.model, args.data, *(args.calibrate or [])]
    if args.repair and any(Path(args.repair).resolve() == Path(p).resolve() for p in inputs):
        raise InvalidArgumentError(f"--repair {args.repair} is one of the inputs; write the repaired weights elsewhere")
    check_writable(args.report, "--report", folder=True)
    if args.repair:
        check_writable(args.repair, "--repair")
    spec = model_spec(VictimConfig(dataset=args.dataset))
    if Path(args.data).is_dir() and spec.output != "classification":
        raise InvalidArgumentError(
            f"--data {args.data} is a folder: image folders carry class labels (one sub-folder per class), a "
            f"{args.dataset} scan needs the model's {spec.output} labels; give an .npz with 'images' (N, H, W, C) "
            f"uint8 at the model's size {spec.input_shape[1:]} and 'labels' (edgeguard.data.loaders.save_npz writes one)")
    arch = DATASETS[args.dataset].model
    model = load_model_weights(arch, args.model, width=args.width)
    trusted = [load_model_weights(arch, path, width=args.width) for path in args.calibrate or []]
    data = load_dataset(args.data)
    # What the dataset's models take and answer, so scan_model refuses frames of another task.
    model.spec = dataclasses.replace(spec, outputs=int(model.head.out_features))
    overrides = {k: v for k, v in (("steps", args.steps), ("threshold", args.threshold)) if v is not None}
    record = scan_model(model, data, args.report, method=args.method, images=args.images,
                        config=default_config(args.method, data, args.seed, **overrides), trusted=trusted,
                        trusted_names=args.calibrate or (), repair_to=args.repair, seed=args.seed,
                        details={"model": str(args.model), "dataset": args.dataset}, progress=not args.quiet)
    return EXIT_BACKDOORED if record["backdoored"] else 0


def _victim_arguments(p: argparse.ArgumentParser) -> None:
    """The options of the commands that train or load one victim model."""
    p.add_argument("--dataset", "--task", dest="dataset", default="signs",
                   help="signs (SynthSigns classification) or gaze (SynthGaze regression); --task: its older name")
    p.add_argument("--attack", default="badnets", help="badnets, blended, blended_patch, sig, lc, wanet, iab, or none")
    p.add_argument("--all-to-all", action="store_true", help="label y -> (y + 1) mod K instead of target 0")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="attack option, e.g. pattern=color")
    p.add_argument("--n-train", type=int, default=10000, help="training samples (default 10000)")
    p.add_argument("--n-test", type=int, default=2000, help="test samples (default 2000)")
    p.add_argument("--classes", type=int, default=43, help="SynthSigns classes (default 43)")
    p.add_argument("--width", type=float, default=0.25, help="model width multiplier (default 0.25)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default: the dataset's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--with-clean", action="store_true", help="also train/load the clean model and show both rows")
    p.add_argument("--no-cache", action="store_true", help="retrain even when a cached model exists")
    p.add_argument("--json", help="also write the rows to this JSON file")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_attack)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgeguard", description="Backdoor defenses for image models on edge devices.",
        epilog=f"exit status: 0 success, 2 usage or input error, {EXIT_BACKDOORED} scan found a backdoor, "
               "130 interrupted (Ctrl-C)")
    from edgeguard.version import __version__

    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    parser.add_argument("--version", action="version", version=f"edgeguard {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # -v also after the subcommand (SUPPRESS: a subcommand without it keeps the main parser's value)
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log progress details")

    def command(name: str, **kwargs) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[verbose], **kwargs)

    p = command("attack", help="train (or load from the cache) a backdoored model and print its metrics")
    _victim_arguments(p)
    p = command("train", help="train (or load) a model on possibly poisoned data, optionally with EigenGuard")
    _victim_arguments(p)
    p.add_argument("--eigenguard", metavar="K=V,...", help="insert EigenGuard, e.g. k=32 or k=32,scale=0.001,at=layer2 "
                   "(fields of edgeguard.eigenguard.EigenGuardConfig)")

    p = command("train-mae", help="pre-train the MAE restorer on photo crops, optionally fine-tune it on "
                                         "clean frames (both cached)")
    p.add_argument("--steps", type=int, default=3000, help="pre-training steps (default 3000)")
    p.add_argument("--finetune-on", metavar="DATA",
                   help="clean frames of the deployment domain to fine-tune on (.npz with an 'images' array, no "
                        "labels needed; a CIFAR folder or an image folder); strongly recommended for small frames. "
                        "A tenth of them (at most 500) is held out to report the PSNR on your frames")
    p.add_argument("--finetune-steps", type=int, default=12000, help="fine-tuning steps (default 12000)")
    p.add_argument("--out", help="write the weights here (.safetensors)")
    p.add_argument("--onnx", help="export the restorer here (.onnx) for edgeguard purify")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train_mae)

    p = command("purify", help="BDMAE: purify frames with an ONNX model and restorer; writes PNGs and JSON")
    p.add_argument("images", nargs="+", help="image files or folders of them")
    p.add_argument("--model", required=True, help="the deployed model (.onnx), input (N, 3, H, W) in [0, 1]")
    p.add_argument("--restorer", required=True, help="the MAE restorer (.onnx from edgeguard train-mae --onnx)")
    p.add_argument("--out", default="purified", help="output folder (default purified/)")
    p.add_argument("--output-kind", "--task", dest="output_kind", choices=["classification", "regression"],
                   help="the model's output kind (default: what the model file says, else classification); "
                        "--task: its older name")
    p.add_argument("--ssim", default="mean", choices=["mean", "point"], help="per-token SSIM: mean, or point (official)")
    p.add_argument("--batch", type=int, default=32, help="frames per engine batch")
    p.add_argument("--threads", type=int, default=None, help="CPU threads per ONNX Runtime engine (default: its own)")
    p.add_argument("--early-exit", type=float, default=None, metavar="SHARE",
                   help="not in BDMAE: return a frame unchanged when at most this share of the stage-1 "
                        "restorations moved its answer (about half the compute; see PurifierConfig.early_exit)")
    p.add_argument("--fast", action="store_true",
                   help="not in BDMAE: the fast preset, about 5x faithful's speed (see PurifierConfig.fast; "
                        "--early-exit still overrides its exit; it takes no --calibrate-on)")
    p.add_argument("--calibrate-on", metavar="CLEAN", nargs="+",
                   help="not in BDMAE: clean frames of the same camera or domain (files or folders, >= 100): a frame "
                        "whose token scores stay within what 99%% of them reach keeps its answer "
                        "(see Purifier.calibrate; most of faithful BDMAE's clean cost goes)")
    p.add_argument("--seed", type=int, default=33333)
    p.set_defaults(func=cmd_purify)

    p = command("scan", help="DRMGuard: decide whether a model is backdoored from a few hundred clean images; "
                                    f"exit status 0 clean, {EXIT_BACKDOORED} backdoored")
    p.add_argument("model", help="the model's weights (.safetensors state dict of the dataset's edgeguard model)")
    p.add_argument("--dataset", "--task", dest="dataset", default="gaze",
                   help="gaze (regression, the paper's setting) or signs (classification: the softmax-variance "
                        "extension); --task: its older name")
    p.add_argument("--data", required=True, metavar="DIR_OR_NPZ", help="labelled clean images (.npz with images and "
                   "labels, a CIFAR-10 folder or an image folder)")
    p.add_argument("--method", default="drmguard", choices=["drmguard", "nc"], help="scanner (nc: Neural Cleanse "
                   "adapted to regression, the baseline)")
    p.add_argument("--images", type=int, default=300, help="clean images the scan uses (default 300, at least 100: the threshold "
                   "was calibrated on 300-frame scans)")
    p.add_argument("--steps", type=int, default=None, help="optimisation steps (default: the method's)")
    p.add_argument("--threshold", type=float, default=None, help="decision threshold: flagged below it. The "
                   "shipped default was calibrated on benign SynthGaze models (docs/user_guide.md); for your models use "
                   "--calibrate, or a threshold you calibrated before")
    p.add_argument("--calibrate", nargs="+", metavar="TRUSTED", help="weights of models you trust (benign, same "
                   "dataset): each is scanned on the same frames and the threshold becomes 0.85 x the median "
                   "of their statistics, so one odd trusted model does not move it (a trusted model whose "
                   "outputs never collapsed sets nothing; if none collapsed, any collapse is flagged)")
    p.add_argument("--width", type=float, default=0.25, help="model width multiplier (default 0.25)")
    p.add_argument("--report", default="scan_report", help="folder for scan.png and scan.json (default scan_report/)")
    p.add_argument("--repair", metavar="OUT", help="fine-tune the model against the found trigger; write its "
                   "weights here (.safetensors)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_scan)

    p = command("cache", help="list, verify or clear the cache of trained models (~/.cache/edgeguard or "
                                     "$EDGEGUARD_CACHE)")
    p.add_argument("action", choices=["list", "verify", "clear"], help="list: entries, sizes, status; verify: check "
                   "every file against its entry's checksums (exit 1 if any is damaged); clear: delete the entries")
    p.add_argument("--kind", help="only this kind of entry (victims, restorers, ...)")
    p.set_defaults(func=cmd_cache)

    p = command("demo", help="the README demo: a backdoored SynthSigns model, its metrics and a PNG")
    p.add_argument("--out", default="demo.png", help="PNG to write")
    p.add_argument("--attack", default="badnets")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--retrain", action="store_true", help="train the victim and the restorer (about 55 minutes on "
                   "2 cores; the result is cached) instead of using the weights shipped with edgeguard")
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
    except KeyboardInterrupt:
        print("edgeguard: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
