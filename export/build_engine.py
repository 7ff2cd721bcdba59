"""Export a model for deployment: ``python export/build_engine.py --task signs --attack badnets --onnx model.onnx``.

A thin CLI over ``edgeguard.deploy``. Today it writes an ONNX model (opset >= 17, symbolic
batch axis, checked against torch with ONNX Runtime) from a victim model in the cache, or
from a safetensors state dict given with ``--weights``. TensorRT engine building is not
written yet.
"""
from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    p.add_argument("--task", default="signs", choices=["signs", "gaze"])
    p.add_argument("--attack", default="none", help="which cached victim to export (trained if missing)")
    p.add_argument("--weights", help="a safetensors state dict of the task's model instead of a cached victim")
    p.add_argument("--width", type=float, default=0.125)
    p.add_argument("--onnx", required=True, help="ONNX file to write")
    p.add_argument("--opset", type=int, default=17)
    args = p.parse_args(argv)

    from edgeguard.deploy import export_onnx
    from edgeguard.errors import EdgeGuardError
    from edgeguard.victims import TASKS, VictimConfig, get_victim

    try:
        if args.weights:
            from edgeguard.deploy.weights import load_model_weights

            model = load_model_weights(TASKS[args.task].model, args.weights, width=args.width)
        else:
            model = get_victim(VictimConfig(task=args.task, attack=args.attack, width=args.width)).model
        shape = (3, 32, 32) if args.task == "signs" else (1, 36, 60)
        path = export_onnx(model, args.onnx, shape, opset=args.opset)
    except EdgeGuardError as exc:
        print(f"build_engine: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
