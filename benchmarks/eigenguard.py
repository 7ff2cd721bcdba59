"""EigenGuard figure: training on poisoned data with and without defenses.

    python -m benchmarks.eigenguard --quick --json /tmp/eigenguard.json

One row per (dataset, attack, defense). Defenses: none (the attack harness's victim),
eigenguard (the layer, torch eval mode with its running-statistics map; ``ca_batch`` /
``asr_batch`` give the per-batch mode on test batches of 128), eigenguard_folded (the same
model exported to ONNX, the map as constants, run by ONNX Runtime; ``overhead_bs1`` and
``overhead_bs25`` compare its latency with the unprotected export, ``train_overhead`` the
seconds per training step, both timed side by side in the run), ft (fine-tuning on 5%
clean data) and ss (Spectral Signatures filtering and retraining; data-poisoning attacks
only, since WaNet and IAB poison inside the training loop). ``train_seconds`` counts all
training a defense needs (SS: the first model and the retrained one).
"""
from __future__ import annotations

import copy
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import common
from benchmarks.attacks import SIZES, victim_config

ATTACKS = {"signs": ["badnets", "blended", "sig", "lc", "wanet", "iab", "spread"], "gaze": ["badnets", "blended"]}
FULL_EXTRA = {"signs": [], "gaze": ["wanet"]}
TRAINING_CONTROLLED = {"wanet", "iab"}


def _metrics(victim, predict_fn) -> dict:
    bd = victim.backdoor
    return victim.test.output.metrics(predict_fn(victim.test.images), victim.test.labels,
                                      predict_fn(bd.images), bd.labels, bd.targets)


def _torch_predict(model, batch_size: int = 512):
    from edgeguard.train import predict

    return lambda images: predict(model, images, batch_size=batch_size)


def _engine_predict(engine, batch_size: int = 512):
    from edgeguard.data.dataset import to_float_nchw

    return lambda images: np.concatenate([engine(to_float_nchw(images[i:i + batch_size]))
                                          for i in range(0, len(images), batch_size)])


def _latency_ms(path: Path, batch: int, shape) -> float:
    """Best-of-7 mean ms per call of an ONNX model on ONNX Runtime (1 intra-op thread)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((batch, *shape), dtype=np.float32)
    for _ in range(20):
        session.run(None, {"image": x})
    best = np.inf
    for _ in range(7):
        t0 = time.perf_counter()
        for _ in range(30):
            session.run(None, {"image": x})
        best = min(best, (time.perf_counter() - t0) / 30)
    return best * 1e3


def _train_overhead(dataset: str, config, guard_config, guard_at: str) -> float:
    """Seconds per training step with EigenGuard / without - 1, timed in this process on
    the same data and loop (the cached victims' train_seconds may come from other runs)."""
    import torch

    from edgeguard.eigenguard import protect
    from edgeguard.models import create_model
    from edgeguard.train import fit
    from edgeguard.bench.victims import DATASETS, make_datasets

    spec = DATASETS[dataset]
    data = make_datasets(dataclasses.replace(config, n_train=1024, n_test=8))[0]
    short = dataclasses.replace(config.train, epochs=2)
    seconds = {False: [], True: []}
    for _ in range(2):
        for protected in (False, True):
            torch.manual_seed(0)
            model = create_model(spec.model, num_outputs=data.num_classes, width=config.width)
            if protected:
                protect(model, guard_at, guard_config, input_shape=(data.image_shape[2], *data.image_shape[:2]))
            seconds[protected].append(fit(model, data, short, progress=False).seconds)
    return round(min(seconds[True]) / min(seconds[False]) - 1, 4)


def _cached_model(kind: str, key: str, model, train) -> float:
    """Load ``model``'s weights from the cache entry, or run ``train()`` (-> seconds) and store them."""
    import json

    from safetensors.torch import load_file, save_file

    from edgeguard import cache

    from edgeguard.fileio import write_atomically

    folder = cache.entry_dir(kind, key)
    if cache.intact(folder, ("model.safetensors", "info.json")):
        try:
            model.load_state_dict(load_file(folder / "model.safetensors"))
            model.eval()
            return json.loads((folder / "info.json").read_text())["train_seconds"]
        except Exception as exc:  # safetensors, torch and json each raise their own types
            cache.discard(folder, f"cannot load it: {exc}")
    seconds = train()
    cache.entry_dir(kind, key, create=True)
    weights = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    write_atomically(folder / "model.safetensors", lambda tmp: save_file(weights, str(tmp)))
    write_atomically(folder / "info.json", lambda tmp: tmp.write_text(json.dumps({"train_seconds": seconds})))
    cache.seal(folder, ["model.safetensors", "info.json"])
    return seconds


def rows_for(size: dict, dataset: str, attack: str, guard_config, guard_at: str, latency: dict) -> list[dict]:
    """The five defense rows of one (dataset, attack)."""
    import torch

    from edgeguard import cache
    from edgeguard.deploy import export_model
    from edgeguard.eigenguard import guards
    from edgeguard.eigenguard.baselines import (FineTuneConfig, SpectralSignaturesConfig, fine_tune,
                                                spectral_signature_keep)
    from edgeguard.models import create_model
    from edgeguard.runtime import load_engine
    from edgeguard.train import fit
    from edgeguard.bench.victims import DATASETS, get_victim, make_datasets, poisoned_training_set

    config = victim_config(size, dataset, attack)
    base = {"task": dataset, "attack": attack}
    victim = get_victim(config)
    rows = [{**base, "defense": "none", **victim.metrics, "train_seconds": round(victim.train_seconds, 1)}]

    protected_config = dataclasses.replace(config, eigenguard=guard_config, eigenguard_at=guard_at)
    protected = get_victim(protected_config)
    row = {**base, "defense": "eigenguard", **protected.metrics, "train_seconds": round(protected.train_seconds, 1)}
    for g in guards(protected.model):
        g.config = dataclasses.replace(g.config, eval_mode="batch")
    batch_mode = _metrics(protected, _torch_predict(protected.model, batch_size=128))
    for g in guards(protected.model):
        g.config = dataclasses.replace(g.config, eval_mode="running")
    protected.model.eval()
    row.update({f"{k}_batch": v for k, v in batch_mode.items() if k in ("ca", "asr", "clean_err_deg", "asr_at_5deg")})
    rows.append(row)

    with tempfile.TemporaryDirectory() as tmp:
        shape = victim.test.images.shape[1:]
        chw = (shape[2], shape[0], shape[1])
        path = export_model(protected.model, Path(tmp) / "protected.onnx")  # parity to 1e-4 checked
        folded = _metrics(protected, _engine_predict(load_engine(path, backend="onnxruntime")))
        if dataset not in latency:
            plain = export_model(victim.model, Path(tmp) / "plain.onnx")
            latency[dataset] = {f"overhead_bs{b}": round(_latency_ms(path, b, chw) / _latency_ms(plain, b, chw) - 1, 4)
                             for b in (1, 25)}
            latency[dataset]["train_overhead"] = _train_overhead(dataset, config, guard_config, guard_at)
    rows.append({**base, "defense": "eigenguard_folded", **folded, "train_seconds": row["train_seconds"], **latency[dataset]})
    row["train_overhead"] = latency[dataset]["train_overhead"]

    spec = DATASETS[dataset]
    ft = FineTuneConfig()
    clean = spec.make_data(round(ft.clean_fraction * config.n_train), config.seed + 777, config.num_classes)
    tuned = copy.deepcopy(victim.model)
    key = cache.config_key(config, victim.attack, ft, version="ft1")
    ft_seconds = _cached_model("defended", key, tuned, lambda: fine_tune(tuned, clean, ft).seconds)
    rows.append({**base, "defense": "ft", **_metrics(victim, _torch_predict(tuned)),
                 "train_seconds": round(victim.train_seconds + ft_seconds, 1)})

    if attack not in TRAINING_CONTROLLED:
        ss = SpectralSignaturesConfig()
        train, _ = make_datasets(config)
        poisoned, _ = poisoned_training_set(config, victim.attack, train, progress=False)
        keep = spectral_signature_keep(poisoned.data, victim.model, ss)
        torch.manual_seed(config.seed)
        retrained = create_model(spec.model, num_outputs=train.num_classes, width=config.width)
        key = cache.config_key(config, victim.attack, ss, version="ss1")
        ss_seconds = _cached_model("defended", key, retrained,
                                   lambda: fit(retrained, poisoned.data.subset(np.flatnonzero(keep)), config.train).seconds)
        removed = float(np.mean(~keep[poisoned.poison_index])) if len(poisoned.poison_index) else 0.0
        rows.append({**base, "defense": "ss", **_metrics(victim, _torch_predict(retrained)),
                     "train_seconds": round(victim.train_seconds + ss_seconds, 1), "poison_removed": round(removed, 4)})
    return rows


def main(argv=None) -> int:
    args = common.parser("eigenguard", __doc__).parse_args(argv)
    from edgeguard.eigenguard import DEFAULT_AT, EigenGuardConfig

    size = SIZES["quick" if args.quick else "full"]
    guard, at = EigenGuardConfig(), DEFAULT_AT

    def body() -> list[dict]:
        results, latency = [], {}
        for dataset, attacks in ATTACKS.items():
            for attack in attacks + ([] if args.quick else FULL_EXTRA[dataset]):
                for row in rows_for(size, dataset, attack, guard, at, latency):
                    print(row, file=sys.stderr, flush=True)
                    results.append(row)
        return results

    config = {"mode": "quick" if args.quick else "full", **size, "eigenguard": dataclasses.asdict(guard), "at": at}
    record = common.run("eigenguard", config, body, args.json)
    print(f"wrote {args.json} in {record['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
