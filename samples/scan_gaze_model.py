"""Vet a gaze estimator before it ships: scan it with DRMGuard, repair it if flagged.

    python samples/scan_gaze_model.py [--attack badnets] [--steps 300] [--out scan_report/]

The steps an ML team takes: someone hands over a trained model (here we train one on
SynthGaze, backdoored with ``--attack``, or clean with ``--attack none``); the team has a
few hundred labelled clean frames of its own. ``scan`` reverse engineers a trigger and says
whether the model is backdoored; ``repair`` fine-tunes it against the found trigger. The
script prints the verdict, the estimated attack target against the real one, and the
model's clean error and attack success before and after repair, and writes the report PNG.
The same flow from a shell: ``edgeguard scan model.safetensors --data clean.npz --repair out.safetensors``.
"""
from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import numpy as np
import torch

from edgeguard.attacks import get_attack
from edgeguard.data import make_gaze
from edgeguard.models import create_model
from edgeguard.outputs import OutputKind
from edgeguard.scan import DRMGuardConfig, repair, scan
from edgeguard.scan.report import write_report
from edgeguard.train import TrainConfig, fit, predict

GAZE = OutputKind.REGRESSION


def metrics(model, test, backdoor) -> str:
    if backdoor is None:
        return f"clean error {GAZE.metrics(predict(model, test.images), test.labels)['clean_err_deg']:.2f} deg"
    m = GAZE.metrics(predict(model, test.images), test.labels, predict(model, backdoor.images), backdoor.labels,
                     backdoor.targets)
    return f"clean error {m['clean_err_deg']:.2f} deg, attack error {m['attack_err_deg']:.1f} deg, ASR@5deg {m['asr_at_5deg']:.2f}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--attack", default="badnets", help="the backdoor planted in the handed-over model, or none")
    p.add_argument("--n-train", type=int, default=4000)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--steps", type=int, default=300, help="scan steps (the paper: 2000)")
    p.add_argument("--threshold", type=float, default=DRMGuardConfig.threshold,
                   help="decision threshold; calibrate it on models you trust (edgeguard.scan.calibrate)")
    p.add_argument("--out", default="scan_report", help="folder for the report PNG and JSON")
    args = p.parse_args(argv)

    # The handed-over model: trained elsewhere, possibly on poisoned data.
    train, test = make_gaze(args.n_train, seed=0), make_gaze(600, seed=1)
    torch.manual_seed(0)
    model = create_model("gaze_resnet18", num_outputs=2, width=0.25)
    attack = None
    if args.attack != "none":  # 20% poison, a 6-px patch: what the small model learns in 10 epochs
        attack = get_attack(args.attack, poison_rate=0.2, **({"size": 6} if args.attack == "badnets" else {})).fit(train)
    fit(model, attack.poison(train).data if attack else train, TrainConfig(epochs=args.epochs, lr=0.05, precision="auto"))
    model.eval()
    backdoor = attack.backdoor_test(test) if attack else None  # the real trigger: the defender never sees it
    print(f"handed-over model: {metrics(model, test, backdoor)}")

    clean = make_gaze(300, seed=2)  # the team's own labelled clean frames
    config = DRMGuardConfig(steps=args.steps, batch_size=32, generator_width=8, threshold=args.threshold)
    result = scan(model, clean.images, config)
    print(result)
    if attack is not None:
        print(f"real target {np.round(attack.target_, 3).tolist()}, estimated {np.round(result.target, 3).tolist()}")
    out = Path(args.out)
    write_report(result, model, clean.images, out / "scan.png", out / "scan.json")
    if result.backdoored:
        repaired = copy.deepcopy(model)
        done = repair(repaired, result.generator, clean, scan_config=config)  # re-scans with the same settings
        print(f"repaired model ({done.rounds} round(s)): {metrics(repaired, test, backdoor)}")
    print(f"wrote {out / 'scan.png'}")
    return 3 if result.backdoored else 0


if __name__ == "__main__":
    sys.exit(main())
