"""BDMAE's speed side by side: faithful, the fast preset, its score gate and int8 engines.

    python -m benchmarks.speed --quick --json /tmp/speed.json

The demo's models (BadNets SynthSigns classifier and the fine-tuned tiny MAE, shipped with
the package, so nothing trains) as ONNX Runtime engines, at 1 and 2 intra-op threads. Frames
go through one at a time, as from a camera: 200 clean and 200 triggered test frames (quick:
100 + 100), the modes taking turns on each chunk of 25 frames so that a slow spell of the
machine hits every mode alike. Rows (mode, threads): fps (frames / purifier seconds),
rows_per_frame and rows_clean / rows_backdoor (model + restorer rows), ca, ba, asr.

  faithful        PurifierConfig(): the paper's algorithm
  fast            PurifierConfig.fast()
  fast+int8       fast on int8 model and restorer (build_engine, calibrated on 300 clean
                  frames of the restorer's fine-tuning domain)
  fast+int8_model fast on the int8 model and the fp32 restorer

The int8 rows carry the purifier gate of their pair (``edgeguard.deploy.purifier_gate`` on
held-back clean and triggered test frames, fast preset): ``gate_disagreement`` and
``accepted`` (build_engine.py refuses a pair above 1%).
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import common

THREADS = (1, 2)
CHUNK = 25


def main(argv=None) -> int:
    p = common.parser("speed", __doc__)
    args = p.parse_args(argv)
    n = 100 if args.quick else 200

    def body() -> list[dict]:
        from edgeguard.bench.demo import demo_models
        from edgeguard.bench.victims import restorer_images
        from edgeguard.data.dataset import to_float_nchw
        from edgeguard.deploy import BuildConfig, build_engine, export_model, export_restorer
        from edgeguard.deploy.purifier_gate import compare_purifiers
        from edgeguard.purify import Purifier, PurifierConfig
        from edgeguard.runtime import load_engine

        victim, mae = demo_models(progress=False, allow_training=False)
        work = Path(tempfile.mkdtemp(prefix="edgeguard-speed-"))
        fp32 = {"model": export_model(victim.model, work / "model.onnx"),
                "restorer": export_restorer(mae, work / "mae.onnx", (3, 32, 32))}
        int8_config = BuildConfig(backend="onnxruntime", precision="int8")
        calibration = restorer_images(victim.config, 300)
        int8 = {role: build_engine(path, work / f"{role}.int8.onnx", int8_config, images=calibration).engine
                for role, path in fp32.items()}
        test, bd = victim.test, victim.backdoor
        # Even picks are evaluated, odd ones feed the int8 pairs' purifier gate.
        pick_clean = np.linspace(0, len(test) - 1, 2 * n).astype(int)
        pick_bd = np.linspace(0, len(bd.images) - 1, 2 * n).astype(int)
        frames = to_float_nchw(np.concatenate([test.images[pick_clean[::2]], bd.images[pick_bd[::2]]]))
        labels = np.concatenate([test.labels[pick_clean[::2]], bd.labels[pick_bd[::2]]])
        targets = bd.targets[pick_bd[::2]]
        held_clean, held_bd = test.images[pick_clean[1::2]], bd.images[pick_bd[1::2]]
        fast = PurifierConfig.fast()
        gates = {name: compare_purifiers((fp32["model"], fp32["restorer"]), pair,
                                         np.concatenate([held_clean, held_bd]), fast).disagreement
                 for name, pair in (("fast+int8", (int8["model"], int8["restorer"])),
                                    ("fast+int8_model", (int8["model"], fp32["restorer"])))}
        rows = []
        for threads in THREADS:
            engines = {key: load_engine(path, threads=threads) for key, path in
                       (("model", fp32["model"]), ("restorer", fp32["restorer"]),
                        ("model8", int8["model"]), ("restorer8", int8["restorer"]))}
            fp32_pair = (engines["model"], engines["restorer"])
            purifiers = {"faithful": Purifier(*fp32_pair), "fast": Purifier(*fp32_pair, fast),
                         "fast+int8": Purifier(engines["model8"], engines["restorer8"], fast),
                         "fast+int8_model": Purifier(engines["model8"], engines["restorer"], fast)}
            for purifier in purifiers.values():  # sessions made and warm before any timing
                purifier(frames[:1])
            stats = {name: {"pred": [], "seconds": 0.0, "rows": []} for name in purifiers}
            for start in range(0, len(frames), CHUNK):
                for name, purifier in purifiers.items():
                    for i in range(start, min(start + CHUNK, len(frames))):
                        t0 = time.perf_counter()
                        result = purifier(frames[i:i + 1])
                        stats[name]["seconds"] += time.perf_counter() - t0
                        stats[name]["pred"].append(int(result.prediction[0]))
                        stats[name]["rows"].append(result.model_calls + result.restorer_calls)
            for name, s in stats.items():
                pred, calls = np.array(s["pred"]), np.array(s["rows"])
                row = {"mode": name, "threads": threads, "fps": round(len(frames) / s["seconds"], 2),
                       "rows_per_frame": round(float(calls.mean()), 1), "rows_clean": round(float(calls[:n].mean()), 1),
                       "rows_backdoor": round(float(calls[n:].mean()), 1),
                       **victim.test.output.metrics(pred[:n], labels[:n], pred[n:], labels[n:], targets)}
                if name in gates:
                    row.update(gate_disagreement=round(gates[name], 4), accepted=gates[name] <= 0.01)
                print(row, file=sys.stderr, flush=True)
                rows.append(row)
        return rows

    record = common.run("speed", {"quick": args.quick, "frames": 2 * n, "threads": list(THREADS), "chunk": CHUNK},
                        body, args.json, backend="onnxruntime-cpu")
    print(f"wrote {args.json} in {record['seconds']:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
