"""Purifier.stream on a synthetic camera video: faithful vs warm start vs early exit.

    python -m benchmarks.stream --quick --json /tmp/stream.json                # ONNX Runtime, 2 threads
    python -m benchmarks.stream --backend torch-cuda --json results/stream_gpu.json
    python -m benchmarks.stream --backend tensorrt --json results/stream_trt.json
    python -m benchmarks.stream --size 224 --backend torch-cuda --json ...     # speed only, ViT-B/16 MAE
    python -m benchmarks.stream --quick --size 224 --frames 6 --modes none,faithful,fast --json ...  # the same on a CPU

The video (edgeguard.data.video): shots of SynthSigns test frames with sensor noise and
flicker; in half the shots the BadNets sticker appears part-way and drifts up to 2 px (the
undefended model obeys it at its own place and partly one pixel off). The
model is the demo's BadNets classifier, the restorer the demo's tiny MAE (4-px tokens),
both exported to ONNX. Frames go through one at a time, as from a camera. Rows keyed mode
(none, faithful, warm_start, early_exit, warm_start+early_exit, fast: ``PurifierConfig.fast()``,
and with "+gate" the score gate of ``Purifier.calibrate`` measured on 100 frames of a second, trigger-free video of other test
scenes from the same camera model: noise and flicker included), backend, fps, ca (clean
frames), ba and asr (triggered frames), with the engine calls per frame, the share of
warm-started frames and the FLOPs per frame (the model's from torch's FlopCounterMode, the
restorer's from ``restorer_flops`` at the visible count each call gathers). At --size 224
the models have random weights (ViT-B/16 MAE layout, a PreAct-ResNet-18 classifier): fps and
FLOPs only, ca/ba/asr are null.
"""
from __future__ import annotations

import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import common
from edgeguard.runtime.base import Engine

VIDEO = {"quick": {"shots": 12, "frames_per_shot": 10}, "full": {"shots": 40, "frames_per_shot": 12}}
# Early exit when at most this share of the stage-1 restorations moved the answer; the purify
# benchmark's setting. On the quick video (faithful stage 1) clean frames reached at most 0.28
# and frames the backdoor fires on at least 0.6.
EARLY_EXIT = 0.3


def modes():
    """mode -> (PurifierConfig, StreamConfig, whether the score gate is calibrated first)."""
    from edgeguard.purify import PurifierConfig, StreamConfig

    cold = StreamConfig(warm_start=False)
    return {"faithful": (PurifierConfig(), cold, False), "warm_start": (PurifierConfig(), StreamConfig(), False),
            "early_exit": (PurifierConfig(early_exit=EARLY_EXIT), cold, False),
            "warm_start+early_exit": (PurifierConfig(early_exit=EARLY_EXIT), StreamConfig(), False),
            "faithful+gate": (PurifierConfig(), cold, True),
            "warm_start+early_exit+gate": (PurifierConfig(early_exit=EARLY_EXIT), StreamConfig(), True),
            "fast": (PurifierConfig.fast(), cold, False), "warm_start+fast": (PurifierConfig.fast(), StreamConfig(), False)}


class FlopCountingEngine(Engine):
    """``engine``, adding up ``flops(arrays)`` of each call in ``flops_total``."""

    def __init__(self, engine: Engine, flops):
        super().__init__()
        self.engine, self.count, self.flops_total = engine, flops, 0
        self.backend = engine.backend

    input_names = property(lambda self: self.engine.input_names)
    output_names = property(lambda self: self.engine.output_names)
    input_shapes = property(lambda self: self.engine.input_shapes)
    metadata = property(lambda self: self.engine.metadata)

    def _run(self, arrays):
        self.flops_total += self.count(arrays)
        return self.engine._run(arrays)


def counted_engines(engines, model, mae, shape):
    """The (model, restorer) engines wrapped to count FLOPs: the model's per row from torch's
    FlopCounterMode on the module, the restorer's from ``restorer_flops`` at the visible count
    the exported graph gathers (the batch's most visible row)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from edgeguard.models.mae import restorer_flops

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, *shape))
    per_row = counter.get_total_flops()
    config = mae.config

    def restorer(arrays):
        visible = max(int((1 - arrays[1]).sum(axis=1).max()), 1)
        return len(arrays[1]) * restorer_flops(config, visible)

    return FlopCountingEngine(engines[0], lambda arrays: len(arrays[0]) * per_row), FlopCountingEngine(engines[1], restorer)


def _engines(backend: str, workdir: Path, model, mae, shape, threads: int):
    """(model engine, restorer engine) on ``backend`` for torch modules ``model`` and ``mae``."""
    from edgeguard.deploy import BuildConfig, build_engine, export_model, export_restorer
    from edgeguard.runtime import ModelSpec
    from edgeguard.runtime import load_engine

    if backend in ("torch", "torch-cuda"):
        device = "cuda" if backend == "torch-cuda" else "cpu"
        return load_engine(model, device=device), load_engine(mae, device=device)
    spec = ModelSpec(role="model", input_shape=tuple(shape), output="classification", outputs=43)
    paths = [export_model(model, workdir / "model.onnx", getattr(model, "spec", None) or spec),
             export_restorer(mae, workdir / "mae.onnx", shape, atol=1e-3)]
    if backend == "onnxruntime":
        return tuple(load_engine(p, threads=threads) for p in paths)
    built = [build_engine(p, p.with_suffix(".engine"), BuildConfig(precision="fp16")).engine for p in paths]
    return tuple(load_engine(p, cuda_graph=True) for p in built)


def _video_32(size: dict):
    """The demo victim, its restorer and the video."""
    from edgeguard.data.video import make_trigger_video
    from edgeguard.bench.demo import demo_models

    victim, mae = demo_models()
    bd = victim.backdoor
    video = make_trigger_video(victim.test.images[bd.index], bd.images, bd.labels, seed=7, **size)
    others = victim.test.images[np.setdiff1d(np.arange(len(victim.test)), bd.index)]  # scenes the video never shows
    calibration = make_trigger_video(others, others, np.zeros(len(others), np.int64), shots=10, frames_per_shot=10,
                                     seed=8).frames
    return victim.model, mae, video, int(victim.attack.target_), calibration


def _video_224(size: dict):
    """Random-weight models at 224 px and a video of random frames (speed only)."""
    from edgeguard.data.video import make_trigger_video
    from edgeguard.models import create_model

    rng = np.random.default_rng(0)
    clean = rng.integers(0, 256, (8, 224, 224, 3), dtype=np.uint8)
    triggered = clean.copy()
    triggered[:, -40:-8, -40:-8] = 255
    video = make_trigger_video(clean, triggered, np.zeros(8, np.int64), seed=7, **size)
    return create_model("preact_resnet18", num_outputs=43), create_model("mae_vit_base_patch16"), video, None, None


def run_modes(purifier_for, video, target, calibration=None, only=None) -> list[dict]:
    from edgeguard.data.dataset import to_float_nchw
    from edgeguard.metrics import attack_success_rate, backdoor_accuracy, clean_accuracy

    rows = []
    triggered = video.triggered
    # One frame through the faithful mode first, so that no row pays for creating the engines'
    # sessions (which the first Purifier or the first call would otherwise do inside the timing).
    config, stream_config, _ = modes()["faithful"]
    list(purifier_for(config).stream(video.frames[:1], stream_config))
    gates = {}  # (rounds, refinement steps) -> the gate calibrated with them (calibration ignores the exits), not timed
    counted = purifier_for(None)
    flops = lambda: sum(getattr(e, "flops_total", 0) for e in (counted.model, counted.restorer))  # noqa: E731
    for mode, (config, stream_config, gated) in {"none": (None, None, False), **modes()}.items():
        if only and mode not in only:
            continue
        if gated and calibration is None:
            continue  # 224 px: random weights, nothing to calibrate on
        key = (config.rounds, config.refine_steps) if config is not None else None
        if gated and key not in gates:
            gates[key] = purifier_for(config).calibrate(calibration).config.score_gate
        purifier = purifier_for(dataclasses.replace(config, score_gate=gates[key])) if gated else None
        before, t0 = flops(), time.perf_counter()
        if config is None:
            engine = purifier_for(None).model
            pred = np.concatenate([engine(to_float_nchw(f[None])).argmax(1) for f in video.frames])
            calls, warm = (1.0, 0.0), 0.0
        else:
            results = list((purifier or purifier_for(config)).stream(video.frames, stream_config))
            pred = np.concatenate([r.prediction for r in results])
            calls = (np.mean([r.model_calls for r in results]), np.mean([r.restorer_calls for r in results]))
            warm = float(np.mean([r.warm_started[0] for r in results]))
        seconds = time.perf_counter() - t0
        row = {"mode": mode, "fps": round(len(video) / seconds, 2), "ca": None, "ba": None, "asr": None,
               "model_calls": round(float(calls[0]), 1), "restorer_calls": round(float(calls[1]), 1),
               "warm_share": round(warm, 3), "frames": len(video),
               "gflops_per_frame": round((flops() - before) / len(video) / 1e9, 3)}
        if target is not None:
            targets = np.full(int(triggered.sum()), target)
            row.update(ca=clean_accuracy(pred[~triggered], video.labels[~triggered]),
                       ba=backdoor_accuracy(pred[triggered], video.labels[triggered], targets),
                       asr=attack_success_rate(pred[triggered], video.labels[triggered], targets))
        print(row, file=sys.stderr, flush=True)
        rows.append(row)
    return rows


def main(argv=None) -> int:
    p = common.parser("stream", __doc__)
    p.add_argument("--backend", default="onnxruntime", choices=["onnxruntime", "torch", "torch-cuda", "tensorrt"])
    p.add_argument("--size", type=int, default=32, choices=[32, 224], help="frame side (224: random weights)")
    p.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    p.add_argument("--frames", type=int, help="only the video's first N frames (224 px on a CPU: a few)")
    p.add_argument("--modes", help="comma-separated modes to run (default all), e.g. none,faithful,fast")
    args = p.parse_args(argv)
    from edgeguard.purify import Purifier

    size = VIDEO["quick" if args.quick else "full"]

    def body() -> list[dict]:
        import torch

        torch.set_num_threads(args.threads)
        model, mae, video, target, calibration = (_video_32 if args.size == 32 else _video_224)(size)
        shape = (3, args.size, args.size)
        with tempfile.TemporaryDirectory(prefix="edgeguard-stream-") as tmp:
            engines = counted_engines(_engines(args.backend, Path(tmp), model.eval(), mae.eval(), shape, args.threads),
                                      model, mae, shape)
            if args.frames:
                video = video.head(args.frames)
            rows = run_modes(lambda config: Purifier(*engines, config) if config else Purifier(*engines),
                             video, target, calibration, args.modes.split(",") if args.modes else None)
        return [{**r, "backend": args.backend, "size": args.size} for r in rows]

    config = {"mode": "quick" if args.quick else "full", **size, "early_exit": EARLY_EXIT, "size": args.size,
              "threads": args.threads, "stream_modes": {k: {"purifier": vars(c), "stream": vars(s), "gate": g}
                                                        for k, (c, s, g) in modes().items()}}
    record = common.run("stream", config, body, args.json, backend=args.backend)
    print(f"wrote {args.json} in {record['seconds']:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
