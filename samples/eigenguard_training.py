"""Train a classifier on poisoned data with EigenGuard, then ship it as ONNX.

    python samples/eigenguard_training.py --attack badnets --out protected.onnx [--n-train 10000 --epochs 10]

The steps a user takes: take an ordinary model, ``protect`` it (one line), train as usual
on data that may be poisoned, switch to eval mode (the running statistics become a fixed
map) and export; the exported model has no EigenGuard-specific operators. The script
prints clean accuracy and attack success with and without the layer, measured on the
exported ONNX model with ONNX Runtime, the way it will run on the device.
"""
from __future__ import annotations

import argparse
import sys

import torch

from edgeguard.attacks import get_attack
from edgeguard.data import make_signs
from edgeguard.data.dataset import to_float_nchw
from edgeguard.deploy import export_model
from edgeguard.runtime import ModelSpec
from edgeguard.eigenguard import DEFAULT_AT, EigenGuardConfig, protect
from edgeguard.models import create_model
from edgeguard.runtime import load_engine
from edgeguard.train import TrainConfig, fit


def train_and_export(protected: bool, args, poisoned, out: str):
    torch.manual_seed(0)
    model = create_model("preact_resnet18", num_outputs=poisoned.num_classes, width=0.25)
    if protected:
        protect(model, at=args.at, config=EigenGuardConfig(k=args.k))  # the one line EigenGuard needs
    fit(model, poisoned, TrainConfig(epochs=args.epochs, lr=0.05, crop_padding=0, precision="auto"))
    model.eval()  # the running statistics become a fixed map: batch size 1 works
    spec = ModelSpec(role="model", input_shape=(3, 32, 32), output="classification", outputs=poisoned.num_classes)
    return load_engine(export_model(model, out, spec))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--attack", default="badnets", help="badnets, blended, sig, lc, spread, ...")
    p.add_argument("--out", default="protected.onnx", help="where to write the protected model")
    p.add_argument("--n-train", type=int, default=10000)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--k", type=int, default=EigenGuardConfig.k, help="EigenGuard's k")
    p.add_argument("--at", default=DEFAULT_AT, help="the block whose output is filtered")
    args = p.parse_args(argv)

    train, test = make_signs(args.n_train, seed=0), make_signs(2000, seed=1)
    attack = get_attack(args.attack).fit(train)
    poisoned = attack.poison(train).data  # the untrusted training set
    backdoor = attack.backdoor_test(test)
    for protected in (False, True):
        out = args.out if protected else args.out.replace(".onnx", "_unprotected.onnx")
        engine = train_and_export(protected, args, poisoned, out)
        run = lambda images: engine(to_float_nchw(images))
        m = test.output.metrics(run(test.images), test.labels, run(backdoor.images), backdoor.labels,
                                backdoor.targets)
        print(f"{'EigenGuard' if protected else 'no defense':>10}: CA {m['ca']:.3f}  ASR {m['asr']:.3f}  -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
