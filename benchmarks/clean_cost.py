"""Where faithful BDMAE's clean cost comes from: per-image decisions vs the official batch coupling.

    python -m benchmarks.clean_cost --quick --json benchmarks/results/clean_cost.json

The official code decides the refinement sizes K, the 25% cap and the five final mask sizes
once per batch (batch means), and its published clean accuracy comes from batches of 256
clean frames only. ``Purifier`` decides them per image, so a frame's answer depends only on
the frame (what a camera needs). On the demo's BadNets victim and restorer, with the same
200 clean and 200 triggered frames, this benchmark reports:

- ``per_image``: the Purifier as shipped, for several seeds (masks and region growing), with
  the mean and the point (official) per-token SSIM;
- ``batch_coupled``: the official coupling (``BatchCoupledPurifier`` below) on batches of
  clean frames only, triggered frames only, and the two mixed half and half.

Rows: variant, ssim, seed, batch (what a batch held), ca, ba, asr, clean_flipped (clean
frames whose answer the defense changed), mask_share and mask_share_flipped (restored pixels,
mean over all clean frames and over the flipped ones).
"""
from __future__ import annotations

import sys

import numpy as np

from benchmarks import common
from edgeguard.purify import Purifier

SEEDS = {"quick": (33333, 1, 2), "full": (33333, 1, 2, 3, 4)}


class BatchCoupledPurifier(Purifier):
    """The official code's batch-wide decisions, for measurement only: the refinement sizes
    (mean over the batch of the per-image counts, rounded down), one 25% cap loop over all the
    batch's scores, and the five final mask sizes as batch means. A frame's answer then
    depends on the other frames of its batch."""

    def _thresholds(self, score: np.ndarray) -> np.ndarray:
        cfg = self.config
        base = 1.0 - np.asarray(cfg.thresholds, np.float64)
        scale = 1.0
        for _ in range(cfg.cap_steps):
            if (score >= 1.0 - base[-1] * scale).mean() < cfg.max_masked:
                break
            scale *= cfg.cap_factor
        return np.repeat((1.0 - base * scale)[None], len(score), axis=0)

    def _sizes(self, image_score: np.ndarray, label_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        b, length = image_score.shape
        k_image = int((image_score >= self.config.image_score_cut).mean(axis=0).sum())
        return np.full(b, k_image), np.full(b, int(label_score.mean() * length))

    def _mask_counts(self, score: np.ndarray, taus: np.ndarray) -> np.ndarray:
        counts = (score[:, None, :] >= taus[:, :, None]).mean(axis=0).sum(axis=1).astype(np.int64)
        return np.repeat(counts[None], len(score), axis=0)


def _measure(purifier, clean_x, bd_x, labels, bd_labels, bd_targets, batches) -> dict:
    from edgeguard.metrics import attack_success_rate, backdoor_accuracy, clean_accuracy

    n = len(clean_x)
    frames = np.concatenate([clean_x, bd_x])
    pred, mask = np.zeros(len(frames), np.int64), np.zeros(len(frames))
    reference = np.zeros(len(frames), np.int64)
    for index in batches:
        result = purifier(frames[index])
        pred[index], reference[index] = result.prediction, result.original_prediction
        mask[index] = result.pixel_mask.mean(axis=(1, 2))
    flipped = pred[:n] != reference[:n]
    return {"ca": clean_accuracy(pred[:n], labels), "ba": backdoor_accuracy(pred[n:], bd_labels, bd_targets),
            "asr": attack_success_rate(pred[n:], bd_labels, bd_targets), "clean_flipped": int(flipped.sum()),
            "mask_share": round(float(mask[:n].mean()), 4),
            "mask_share_flipped": round(float(mask[:n][flipped].mean()), 4) if flipped.any() else None}


def main(argv=None) -> int:
    args = common.parser("clean_cost", __doc__).parse_args(argv)
    from benchmarks.purify import EVAL
    from edgeguard.bench.demo import demo_models
    from edgeguard.data.dataset import to_float_nchw
    from edgeguard.deploy import export_model, export_restorer
    from edgeguard.purify import PurifierConfig
    from edgeguard.runtime import load_engine

    mode = "quick" if args.quick else "full"
    n = EVAL[mode]

    def body() -> list[dict]:
        import tempfile
        from pathlib import Path

        victim, mae = demo_models()
        workdir = Path(tempfile.mkdtemp(prefix="edgeguard-clean-cost-"))
        model = load_engine(export_model(victim.model, workdir / "model.onnx"))
        restorer = load_engine(export_restorer(mae, workdir / "mae.onnx", (3, 32, 32)))
        test, bd = victim.test, victim.backdoor
        ci = np.linspace(0, len(test) - 1, n).astype(int)
        bi = np.linspace(0, len(bd.images) - 1, n).astype(int)
        data = (to_float_nchw(test.images[ci]), to_float_nchw(bd.images[bi]), test.labels[ci], bd.labels[bi],
                bd.targets[bi])
        clean, triggered = np.arange(n), np.arange(n, 2 * n)
        mixed = np.stack([clean, triggered], axis=1).reshape(-1)  # clean and triggered alternate
        rows = []

        def add(variant, ssim, seed, batch, purifier, batches):
            row = {"variant": variant, "ssim": ssim, "seed": seed, "batch": batch,
                   **_measure(purifier, *data, batches)}
            print(row, file=sys.stderr, flush=True)
            rows.append(row)

        per_image = [np.arange(i, min(i + 50, 2 * n)) for i in range(0, 2 * n, 50)]  # batching changes nothing
        for seed in SEEDS[mode]:
            for ssim in ("mean", "point") if seed == SEEDS[mode][0] else ("mean",):
                add("per_image", ssim, seed, "any", Purifier(model, restorer, PurifierConfig(seed=seed, ssim_mode=ssim)),
                    per_image)
        coupled = BatchCoupledPurifier(model, restorer, PurifierConfig())
        add("batch_coupled", "mean", 33333, f"{n} clean, then {n} triggered", coupled, [clean, triggered])
        add("batch_coupled", "mean", 33333, f"{2 * n} mixed (half triggered)", coupled, [mixed])
        return rows

    config = {"mode": mode, "frames": n, "victim": "demo (signs, badnets)", "restorer": "demo (fine-tuned mae_tiny_patch4)"}
    record = common.run("clean_cost", config, body, args.json, backend="onnxruntime-cpu")
    print(f"wrote {args.json} in {record['seconds']:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
