"""Build deployable engines: ONNX in, TensorRT engine (or ONNX Runtime model) + sidecar out.

    python export/build_engine.py model.onnx --precision fp16            # -> model.engine (+ .json)
    python export/build_engine.py model.onnx --backend onnxruntime       # -> model.ort.onnx, no GPU needed
    python export/build_engine.py --dataset signs --attack badnets --restorer --out-dir engines/

With --dataset, the cached victim model (trained if missing) and, with --restorer, the tiny MAE
restorer fine-tuned for that dataset are first exported to ONNX in --out-dir, then built. A pair
built in fp16 or int8 must also pass the purifier gate: BDMAE's answers on the victim's held-back
clean and triggered frames stay those of the fp32 pair on all but --max-disagreement of them.
A thin CLI over ``edgeguard.deploy``; exit status 0 on success, 2 on any error (a missing
tensorrt package, a bad ONNX, an engine failing the accuracy gate), with the reason.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _profile(text: str) -> tuple[int, int, int]:
    try:
        low, opt, high = (int(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"profile must be MIN:OPT:MAX batch sizes, got {text!r}") from None
    return low, opt, high


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("onnx", nargs="?", help="ONNX model to build (or use --dataset)")
    p.add_argument("-o", "--out", help="engine file to write (default: next to the ONNX, .engine or .ort.onnx)")
    p.add_argument("--backend", default="tensorrt", choices=["tensorrt", "onnxruntime"])
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "int8"])
    p.add_argument("--calibration", metavar="DIR_OR_NPZ",
                   help="frames like the deployed ones, in any dataset format edgeguard reads (image folder, "
                        "CIFAR batches, .npz): int8 calibration and the accuracy gate; a few hundred are enough")
    p.add_argument("--profile", action="append", type=_profile, metavar="MIN:OPT:MAX",
                   help="TensorRT optimisation profile (repeatable; default 1:1:1 and 1:25:25)")
    p.add_argument("--timing-cache", help="TensorRT timing cache file (read if present, then updated)")
    p.add_argument("--workspace-gib", type=float, default=1.0)
    p.add_argument("--opt-level", type=int, default=3, help="TensorRT builder optimisation level 0-5")
    g = p.add_argument_group("export a cached edgeguard model first")
    g.add_argument("--dataset", "--task", dest="dataset", choices=["signs", "gaze"],
                   help="export the cached victim of this dataset (--task: its older name)")
    g.add_argument("--attack", default="none", help="which cached victim to export (trained if missing)")
    g.add_argument("--weights", help="a safetensors state dict of the dataset's model instead of a cached victim")
    g.add_argument("--width", type=float, default=0.25, help="model width multiplier (the cached victims' 0.25)")
    g.add_argument("--restorer", action="store_true", help="also export and build the dataset's MAE restorer")
    g.add_argument("--out-dir", default="engines", help="where exported ONNX and engines go (with --dataset)")
    g.add_argument("--max-disagreement", type=float, default=0.01, metavar="SHARE",
                   help="fp16/int8 model + restorer: refuse the pair when BDMAE's answers with it differ from the "
                        "fp32 pair's on more than this share of held-back frames (default 0.01)")
    return p


def _export(args) -> list[Path]:
    """ONNX files of the cached model (and restorer) of ``args.dataset`` in --out-dir."""
    from edgeguard.deploy import export_model, export_restorer
    from edgeguard.bench.victims import DATASETS, VictimConfig, get_victim, model_spec, restorer_images

    out = Path(args.out_dir)
    config = VictimConfig(dataset=args.dataset, attack=args.attack, width=args.width)
    if args.weights:
        from edgeguard.deploy.weights import load_model_weights

        model = load_model_weights(DATASETS[args.dataset].model, args.weights, width=args.width)
    else:
        model = get_victim(config).model
    spec = model_spec(config)
    paths = [export_model(model, out / "model.onnx", spec)]
    if args.restorer:
        from edgeguard.bench.restorer import FINETUNE, get_restorer

        mae = get_restorer(finetune=FINETUNE, images=restorer_images(config))
        paths.append(export_restorer(mae, out / "mae.onnx", spec.input_shape))
    return paths


def _gate_frames(args):
    """Frames for the purifier gate: the cached victim's clean and triggered test frames (100
    each), or with --weights 200 fresh frames of the dataset; never calibration frames."""
    import numpy as np

    from edgeguard.bench.victims import DATASETS, VictimConfig, get_victim

    config = VictimConfig(dataset=args.dataset, attack=args.attack, width=args.width)
    if args.weights:
        return DATASETS[args.dataset].make_data(200, config.seed + 777, config.num_classes).images
    victim = get_victim(config)
    parts = [victim.test.images[:100 if victim.backdoor is not None else 200]]
    if victim.backdoor is not None:
        parts.append(victim.backdoor.images[:100])
    return np.concatenate(parts)


def _build_pair_gated(args, sources, outs, config, images) -> None:
    """Build model and restorer beside their outputs, accept them only if BDMAE's answers
    with them stay those of the fp32 ONNX pair (edgeguard.deploy.purifier_gate), then move
    both into place: a refused pair leaves nothing, and engines already there survive."""
    import os
    import shutil
    import tempfile

    from edgeguard.deploy import build_engine
    from edgeguard.deploy.purifier_gate import purifier_gate
    from edgeguard.runtime.sidecar import sidecar_path

    stage = Path(tempfile.mkdtemp(dir=outs[0].parent, prefix=".pair."))
    try:
        staged = [stage / out.name for out in outs]
        for source, target in zip(sources, staged):
            print(build_engine(source, target, config, images=images))
        print(purifier_gate(tuple(sources), tuple(staged), _gate_frames(args),
                            max_disagreement=args.max_disagreement))
        for target, out in zip(staged, outs):
            os.replace(target, out)
            os.replace(sidecar_path(target), sidecar_path(out))
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _default_out(onnx: Path, backend: str) -> Path:
    return onnx.with_suffix(".engine") if backend == "tensorrt" else onnx.with_suffix(".ort.onnx")


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if (args.onnx is None) == (args.dataset is None):
        print("build_engine: error: give an ONNX file or --dataset (not both)", file=sys.stderr)
        return 2
    if args.out and args.dataset and args.restorer:
        print("build_engine: error: --out names one engine; with --restorer use --out-dir", file=sys.stderr)
        return 2

    import numpy as np

    from edgeguard.deploy import BuildConfig, build_engine
    from edgeguard.errors import EdgeGuardError
    from edgeguard.fileio import check_writable

    try:
        if args.out:
            check_writable(args.out, "--out")
        if args.dataset:
            check_writable(args.out_dir, "--out-dir", folder=True)
        images = None
        if args.calibration:
            from edgeguard.data.loaders import load_dataset

            images = load_dataset(args.calibration).images[:500]
        config = BuildConfig(backend=args.backend, precision=args.precision,
                             profiles=tuple(args.profile) if args.profile else BuildConfig.profiles,
                             timing_cache=args.timing_cache, workspace_gib=args.workspace_gib,
                             optimization_level=args.opt_level)
        sources = _export(args) if args.dataset else [Path(args.onnx)]
        outs = [Path(args.out) if args.out else _default_out(source, args.backend) for source in sources]
        images = None if images is None else np.asarray(images)
        if len(sources) == 2 and args.precision != "fp32":
            _build_pair_gated(args, sources, outs, config, images)
            return 0
        for source, out in zip(sources, outs):
            # The restorer's calibration frames are the model's; both see the same camera.
            print(build_engine(source, out, config, images=images))
    except EdgeGuardError as exc:
        print(f"build_engine: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
