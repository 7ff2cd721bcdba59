"""The MAE restorer with and without dropping masked tokens before the encoder.

    python -m benchmarks.restorer --quick --json /tmp/restorer.json [--threads 1]

Two layouts with random weights (speed does not depend on them): ``mae_tiny_patch4`` at
32 px (8x8 tokens, the CPU restorer) and ``mae_vit_base_patch16`` at 224 px (14x14 tokens,
the official BDMAE restorer). Each is exported to ONNX twice: ``drop_masked`` (the encoder
sees the visible tokens only, gathered inside the graph) and ``full`` (every token through
the encoder, masked ones hidden from attention: the form before). Per mask kind, a row with
the engine's median ms per restoration (one ONNX Runtime session, ``--threads`` intra-op
threads, both forms timed alternately in one process) and the FLOPs per restoration
(``edgeguard.models.mae.restorer_flops``: matmuls and attention, 2 per multiply-add):

  stage1   BDMAE's stage-1 masks, 75% of the tokens masked (25 of a frame's 50 restorations)
  purify   nested purification masks, 25% masked (the loosest of stage 3; refinement masks
           are smaller still, so they gain less)

``max_abs_diff`` is the largest difference between the two forms' restorations.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks import common
from benchmarks.kernels import median_ms

LAYOUTS = {"mae_tiny_patch4": {"rows": 25}, "mae_vit_base_patch16": {"rows": 5}}
MASKS = {"stage1": 0.75, "purify": 0.25}


def masks_of(kind: str, rows: int, length: int) -> np.ndarray:
    """(rows, length) float32 masks with the kind's share masked (stage 1: BDMAE's own)."""
    from edgeguard import kernels

    if kind == "stage1":
        return kernels.stage1_masks(length, 5, 5, 0.75, 33333)[:rows].astype(np.float32)
    rng = np.random.default_rng(0)
    out = np.zeros((rows, length), np.float32)
    for row in out:
        row[rng.permutation(length)[:int(length * MASKS[kind])]] = 1.0
    return out


def main(argv=None) -> int:
    p = common.parser("restorer", __doc__)
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads (default 1)")
    args = p.parse_args(argv)
    from edgeguard.deploy import export_restorer
    from edgeguard.models import create_model
    from edgeguard.models.mae import restorer_flops
    from edgeguard.runtime import load_engine

    seconds = 1.0 if args.quick else 3.0

    def body() -> list[dict]:
        import torch

        rows, workdir = [], Path(tempfile.mkdtemp(prefix="edgeguard-restorer-"))
        for name, setting in LAYOUTS.items():
            torch.manual_seed(0)
            mae = create_model(name).eval()
            c = mae.config
            engines = {}
            for form, drop in (("drop_masked", True), ("full", False)):
                path = export_restorer(mae, workdir / f"{name}-{form}.onnx", (3, c.img_size, c.img_size), atol=1e-3,
                                       drop_masked=drop)
                engines[form] = load_engine(path, threads=args.threads)
            rng = np.random.default_rng(0)
            images = rng.random((setting["rows"], 3, c.img_size, c.img_size), dtype=np.float32)
            for kind in MASKS:
                masks = masks_of(kind, setting["rows"], c.num_tokens)
                visible = int((1 - masks).sum(axis=1).max())
                out = {form: engine(images, masks) for form, engine in engines.items()}
                ms = {form: [] for form in engines}
                for _ in range(3):  # alternate, so a slow spell of the machine hits both forms
                    for form, engine in engines.items():
                        ms[form].append(median_ms(lambda: engine(images, masks), seconds) / len(images))
                row = {"layout": name, "img_size": c.img_size, "tokens": c.num_tokens, "masks": kind,
                       "visible_tokens": visible, "batch": len(images), "threads": args.threads,
                       "max_abs_diff": float(np.abs(out["drop_masked"] - out["full"]).max())}
                for form, drop in (("drop_masked", True), ("full", False)):
                    row[f"{form}_ms"] = round(float(np.median(ms[form])), 3)
                    row[f"{form}_gflops"] = round(restorer_flops(c, visible, drop_masked=drop) / 1e9, 4)
                row["speedup"] = round(row["full_ms"] / row["drop_masked_ms"], 2)
                print(row, file=sys.stderr, flush=True)
                rows.append(row)
        return rows

    record = common.run("restorer", {"threads": args.threads, "quick": args.quick, "min_seconds": seconds}, body,
                        args.json, backend="onnxruntime-cpu")
    print(f"wrote {args.json} in {record['seconds']:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
