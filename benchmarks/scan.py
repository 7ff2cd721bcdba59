"""Scanner figure: DRMGuard and the adapted Neural Cleanse on a zoo of SynthGaze regressors.

    python -m benchmarks.scan --quick --json /tmp/scan.json                  # zoos/gaze_quick.json
    python -m benchmarks.scan --quick --dataset signs --json /tmp/scan_signs.json  # softmax extension
    python -m benchmarks.scan --zoo my_zoo.json --quick --json /tmp/mine.json  # any zoo file
    python -m benchmarks.scan --quick --jobs 2 --json /tmp/scan.json         # two models at a time
    python -m benchmarks.scan --quick --jobs 2 --scan-jobs 1 --json /tmp/scan.json  # train 2, scan 1

The zoo is a JSON file (schema and the learned-only rule: edgeguard/bench/zoo.py): benign models
and backdoored ones per attack, each with its own seed and target. A backdoored model is
scanned only if it learned its attack (gaze ASR@5deg >= 0.8, signs ASR >= 0.9 on held-out
triggered frames, after at most two retrains); the others are listed under ``dropped``.
Every model is scanned with 300 held-out clean frames by each method. The threshold is
calibrated on benign models only, leave-one-out: a benign model is judged with the threshold
from the other benign models, a backdoored one with the threshold from all of them, so no
model calibrates its own verdict. The statistic is lower for more suspicious models; ROC-AUC
uses it directly. Rows: one per (attack, method) and a pooled "all" row per method, keyed
attack, method, tp, fp, fn, tn, accuracy, roc_auc, seconds_per_model. ``models`` lists
every scan; ``repair`` the badnets models before and after DRMGuard's repair.

``--dataset signs`` (or its older name ``--task signs``) checks the authors' extension to classifiers (DRMGuard on the variance of the
softmax vectors; they report TP 7, FP 0, FN 3, TN 10 on CIFAR-10): benign and BadNets
SynthSigns classifiers at the published 10% poison rate, each with a random target class,
DRMGuard only (the adapted Neural Cleanse is for regression), no repair rows.
"""
from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks import common
from edgeguard.errors import InvalidArgumentError

ZOO_DIR = Path(__file__).parent / "zoos"  # the committed zoo files (schema: edgeguard/bench/zoo.py)
DEFAULT_ZOOS = {("gaze", True): "gaze_quick.json", ("gaze", False): "gaze_full.json",
                ("signs", True): "signs_quick.json", ("signs", False): "signs_full.json"}


def scanners(quick: bool, dataset: str = "gaze") -> dict:
    """method -> (scan function, config). The first entries are the defaults the benchmark
    runs (gaze: DRMGuard and Neural Cleanse; signs: DRMGuard); the rest are the DRMGuard
    variants measured to choose its defaults (``--methods``). Quick DRMGuard: 300 steps of
    batch 32 with a width-8 generator (the published 2000 x 50 takes about 25 min per model
    on 2 cores); full: 1000 steps of 50 at width 16."""
    from edgeguard.scan import DRMGuardConfig, NeuralCleanseConfig, neural_cleanse, scan

    outputs = "softmax" if dataset == "signs" else "regression"
    size = dict(steps=300, batch_size=32, generator_width=8) if quick else dict(steps=1000)
    drm = DRMGuardConfig(outputs=outputs, **size)
    paper_terms = dict(lambda_feat=800.0, mtr_gamma=5.0)
    if dataset == "signs":
        # The default (mask x pattern generator) and the residual generator it replaced, without
        # and with MTR (r_f is never computed for softmax outputs, so its weight is inert here).
        # In benchmarks/results/scan_signs_quick.json, run before the switch, these are the
        # methods drmguard-mask, drmguard and drmguard-residual-rf-mtr.
        return {"drmguard": (scan, drm),
                "drmguard-residual": (scan, DRMGuardConfig(outputs=outputs, trigger="residual", **size)),
                "drmguard-residual-rf-mtr": (scan, DRMGuardConfig(outputs=outputs, trigger="residual",
                                                                  **paper_terms, **size))}
    # The variants behind the defaults (docs/results.md, "DRMGuard: zoos as data ..."): the previous
    # default (residual generator, lambda_sim 80, the paper's r_f at 800, MTR at 5), and the
    # mask x pattern generator with each of the paper's terms put back.
    variants = {
        "drmguard-residual": DRMGuardConfig(trigger="residual", **paper_terms, **size),
        "drmguard-mask-rf-mtr": DRMGuardConfig(trigger="mask_pattern", **paper_terms, **size),
        "drmguard-mask-mtr": DRMGuardConfig(trigger="mask_pattern", mtr_gamma=5.0, **size),
        "drmguard-mask-rfnorm": DRMGuardConfig(trigger="mask_pattern", lambda_feat=1.0, feature_norm=True, **size),
        "drmguard-universal": DRMGuardConfig(trigger="mask_pattern", generator_width=0,
                                             **{k: v for k, v in size.items() if k != "generator_width"}),
        "drmguard-adaptive": DRMGuardConfig(trigger="mask_pattern", adaptive=True, **size),
        "drmguard-reference": DRMGuardConfig(trigger="mask_pattern", reference=1.5, **size),
        "drmguard-restarts": DRMGuardConfig(trigger="mask_pattern", restarts=3,
                                            **{**size, "steps": size["steps"] // 2}),
    }
    return {"drmguard": (scan, drm), "nc": (neural_cleanse, NeuralCleanseConfig()),
            **{name: (scan, config) for name, config in variants.items()}}


DEFAULT_METHODS = {"gaze": ["drmguard", "nc"], "signs": ["drmguard"]}


def _clean_frames(victim, count: int):
    """The labelled clean frames a scan (and the repair) of ``victim`` uses: held-out data."""
    from edgeguard.bench.victims import DATASETS

    config = victim.config
    return DATASETS[config.dataset].make_data(count, 90000 + config.seed, config.num_classes)


def _scan_all(members: list, methods: dict, scan_images: int) -> tuple[list[dict], dict]:
    """Scan every model with every method -> (records, {(attack, index): DRMGuard's ScanResult}
    for the badnets models, which the repair rows reuse)."""
    from edgeguard.metrics import angular_error_deg

    records, kept = [], {}
    for model, victim in members:
        attack, index = model.attack, model.index
        clean = _clean_frames(victim, scan_images).images
        for method, (fn, config) in methods.items():
            t0 = time.perf_counter()
            result = fn(victim.model, clean, config, progress=False)
            record = {"attack": attack, "index": index, "name": model.name, "seed": victim.config.seed,
                      "method": method, "statistic": result.statistic,
                      "residual_variance": result.residual_variance,
                      "collapsed": bool(result.collapsed),
                      "seconds": round(time.perf_counter() - t0, 1),
                      "learned": victim.metrics.get("asr_at_5deg", victim.metrics.get("asr")),
                      **{k: victim.metrics[k] for k in ("clean_err_deg", "ca") if k in victim.metrics}}
            if getattr(result, "restarts", None) and len(result.restarts) > 1:
                record["restarts"] = result.restarts
            if getattr(result, "reference_change", None) is not None:
                record["change"], record["reference_change"] = result.change, result.reference_change
            if attack != "none" and victim.config.dataset == "gaze":
                target = np.asarray(victim.attack.target_, np.float64)
                record["target_err_deg"] = float(angular_error_deg(result.target[None], target[None])[0])
            elif attack != "none":
                record["target_found"] = bool(int(np.argmax(result.target)) == victim.attack.target_)
            records.append(record)
            print(record, file=sys.stderr, flush=True)
            if attack == "badnets" and method == "drmguard":
                kept[(attack, index)] = result
    return records, kept


def _score(record: dict) -> float:
    """The statistic a model is ranked and judged by: a search whose outputs never collapsed
    found no trigger, however small its change (the scan's own verdict needs both), so it
    ranks as clean as can be."""
    return record["statistic"] if record.get("collapsed", True) else math.inf


def _scorable(benign: int, total: int) -> bool:
    """A run is scored with thresholds from its benign models: it needs two of them and at
    least one backdoored model."""
    return benign >= 2 and benign < total


def calibration_rule() -> dict:
    """How the verdicts of a run were thresholded, for its results JSON."""
    from edgeguard.scan import CALIBRATION_MARGIN

    return {"rule": "leave-one-out: margin x the median statistic of the other benign models whose outputs "
                    "collapsed (edgeguard.scan.threshold_from_trusted)", "margin": CALIBRATION_MARGIN}


def _verdicts(records: list[dict], method: str) -> dict:
    """(attack, index) -> flagged, with leave-one-out thresholds from the benign models
    (the CLI's ``--calibrate`` rule: ``edgeguard.scan.threshold_from_trusted``)."""
    from edgeguard.scan import threshold_from_trusted

    rows = [r for r in records if r["method"] == method]
    benign = {r["index"]: r for r in rows if r["attack"] == "none"}
    flags = {}
    for r in rows:
        others = [b for i, b in benign.items() if not (r["attack"] == "none" and i == r["index"])]
        threshold = threshold_from_trusted([b["statistic"] for b in others],
                                           [b.get("collapsed", True) for b in others])
        flags[(r["attack"], r["index"])] = _score(r) < threshold
    return flags


def summary_rows(records: list[dict]) -> list[dict]:
    from edgeguard.metrics import detection_counts, roc_auc

    rows = []
    for method in dict.fromkeys(r["method"] for r in records):
        flags = _verdicts(records, method)
        mine = [r for r in records if r["method"] == method]
        benign = [r for r in mine if r["attack"] == "none"]
        attacks = list(dict.fromkeys(r["attack"] for r in mine if r["attack"] != "none"))
        for attack in attacks + ["all"]:
            bad = [r for r in mine if r["attack"] != "none" and attack in ("all", r["attack"])]
            counted = bad + benign
            rows.append({"attack": attack, "method": method,
                         **detection_counts([flags[(r["attack"], r["index"])] for r in bad],
                                            [flags[(r["attack"], r["index"])] for r in benign]),
                         "roc_auc": roc_auc([_score(r) for r in bad], [_score(r) for r in benign]),
                         "seconds_per_model": round(float(np.mean([r["seconds"] for r in counted])), 1)})
    return rows


def repair_rows(members: list, scans: dict, scan_images: int, scan_config=None) -> list[dict]:
    """DRMGuard's repair of the badnets models with their scans' generators (on the scan's
    labelled frames; re-scans with ``scan_config``): clean and attack error on the test set
    before and after."""
    import copy

    from edgeguard.scan import repair
    from edgeguard.bench.victims import evaluate

    rows = []
    for model, victim in members:
        if (model.attack, model.index) not in scans:
            continue
        clean = _clean_frames(victim, scan_images)
        result = scans[(model.attack, model.index)]
        repaired = copy.deepcopy(victim.model)
        t0 = time.perf_counter()
        done = repair(repaired, result.generator, clean, progress=False, scan_config=scan_config)
        after = evaluate(repaired, victim.test, victim.backdoor)
        row = {"attack": model.attack, "index": model.index, "seconds": round(time.perf_counter() - t0, 1),
               "rounds": done.rounds, "rescan_statistics": [round(r.statistic, 5) for r in done.rescans]}
        row.update({f"{k}_before": v for k, v in victim.metrics.items()})
        row.update({f"{k}_after": v for k, v in after.items()})
        rows.append(row)
        print(row, file=sys.stderr, flush=True)
    return rows


def _train_job(zoo, name: str, threads: int) -> list[dict]:
    """Train (or load) one model of ``zoo`` under the learned-only rule -> its ``dropped`` records."""
    import torch

    from edgeguard.bench.zoo import train_zoo

    torch.set_num_threads(threads)
    return train_zoo(zoo.subset([name]))[1]


def _scan_job(zoo, name: str, methods: dict, repair: bool, threads: int) -> tuple[list[dict], list[dict]]:
    """Scan one (trained, learned) model of ``zoo`` with every method -> (records, repair rows)."""
    import torch

    from edgeguard.bench.zoo import train_zoo

    torch.set_num_threads(threads)
    members, _ = train_zoo(zoo.subset([name]))  # from the cache _train_job filled
    records, scans = _scan_all(members, methods, zoo.scan_images)
    rows = repair_rows(members, scans, zoo.scan_images, methods.get("drmguard", (None, None))[1]) if repair else []
    return records, rows


def zoo_shown(path: str) -> str:
    """A zoo's path as the results JSON records it: relative to the repository when inside it,
    so a committed result does not carry the machine's checkout folder."""
    try:
        return str(Path(path).resolve().relative_to(Path(__file__).resolve().parents[1]))
    except ValueError:
        return str(path)


def _call(indexed_job: tuple) -> tuple:
    index, fn, job = indexed_job
    return index, fn(*job)


def _map(fn, jobs: list[tuple], workers: int, desc: str = "") -> list:
    """``[fn(*job) for job in jobs]``, in ``workers`` processes when more than one, with a
    progress bar (models done, elapsed, an estimate of what is left) on stderr."""
    from tqdm import tqdm

    results = [None] * len(jobs)
    with tqdm(total=len(jobs), desc=desc, unit="model", file=sys.stderr, dynamic_ncols=True) as bar:
        if workers <= 1:
            for index, job in enumerate(jobs):
                results[index] = fn(*job)
                bar.update()
            return results
        import multiprocessing

        # spawn: a forked child of a process that has run torch's thread pool can deadlock.
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            indexed = [(index, fn, job) for index, job in enumerate(jobs)]
            for index, result in pool.imap_unordered(_call, indexed, chunksize=1):
                results[index] = result
                bar.update()
    return results


def rescore(source: str, out: str) -> int:
    """Summary rows of ``source`` recomputed from its ``models`` records; written to ``out``
    with ``rescored_from`` naming the source (whose run, machine and timings it keeps)."""
    import json
    from pathlib import Path

    if Path(out).resolve() == Path(source).resolve():
        raise InvalidArgumentError(f"--rescore {source}: give a different --json; the source stays as it was")
    try:
        record = json.loads(Path(source).read_text())
        scanners_used = record["config"]["scanners"]
        for r in record["models"]:
            missing = sorted({"attack", "index", "method", "statistic", "residual_variance"} - set(r))
            if missing:
                raise KeyError(f"a model record without {missing}")
            r.setdefault("collapsed", bool(r["residual_variance"] < scanners_used[r["method"]]["collapse"]))
    except OSError as err:
        raise InvalidArgumentError(f"--rescore {source}: cannot read it ({err.strerror})") from err
    except (ValueError, KeyError, TypeError) as err:
        raise InvalidArgumentError(f"--rescore {source}: not a scan benchmark's results JSON (config.scanners and "
                                   f"per-model records with statistics are needed): {err}") from err
    record["results"] = summary_rows(record["models"])
    record["calibration"] = calibration_rule()
    record["rescored_from"] = str(source)
    Path(out).write_text(json.dumps(record, indent=2))
    print(f"wrote {out}")
    return 0


def main(argv=None) -> int:
    p = common.parser("scan", __doc__)
    p.add_argument("--dataset", "--task", dest="dataset", default="gaze", choices=["gaze", "signs"],
                   help="which committed zoo to run when --zoo is not given (default gaze)")
    p.add_argument("--zoo", help="a zoo file (schema: edgeguard/bench/zoo.py); default benchmarks/zoos/"
                                 "{gaze,signs}_{quick,full}.json by --dataset and --quick")
    p.add_argument("--methods", help="comma-separated scanners to run (default: the dataset's; see scanners())")
    p.add_argument("--models", help="comma-separated model names of the zoo to run (default: all)")
    p.add_argument("--no-repair", action="store_true", help="skip the repair rows")
    p.add_argument("--jobs", type=int, default=1,
                   help="models trained and scanned at once, each on cores/jobs threads (default 1: torch's own "
                        "thread count). Training the small victims gains little from a second thread, scanning "
                        "does: time both on your machine (docs/results.md). Statistics move slightly with the "
                        "thread count")
    p.add_argument("--scan-jobs", type=int,
                   help="models scanned at once (default: --jobs); e.g. --jobs 2 --scan-jobs 1 trains two "
                        "one-thread models side by side, then scans one model at a time on every core")
    p.add_argument("--rescore", metavar="RESULTS",
                   help="recompute the summary rows of a results JSON from its per-model records (after a "
                        "change to the scoring rules) instead of scanning; writes --json")
    args = p.parse_args(argv)
    if args.rescore:
        try:
            return rescore(args.rescore, args.json)
        except InvalidArgumentError as err:
            p.error(str(err))
    from edgeguard.bench.zoo import ZooError, load_zoo

    zoo = load_zoo(args.zoo or ZOO_DIR / DEFAULT_ZOOS[(args.dataset, args.quick)])
    if args.models:
        try:
            zoo = zoo.subset(args.models.split(","))
        except ZooError as err:
            p.error(str(err))
    benign_chosen = sum(m.benign for m in zoo.models)
    if not _scorable(benign_chosen, len(zoo.models)):
        p.error(f"{len(zoo.models)} models chosen, {benign_chosen} benign: a run is scored with thresholds from "
                "the benign models, so it needs >= 2 benign models and >= 1 backdoored one")
    methods = scanners(args.quick, zoo.dataset)
    wanted = args.methods.split(",") if args.methods else DEFAULT_METHODS[zoo.dataset]
    unknown = [m for m in wanted if m not in methods]
    if unknown:
        p.error(f"unknown method(s) {unknown} for dataset {zoo.dataset}; choose from {sorted(methods)}")
    methods = {m: methods[m] for m in wanted}
    extra = {}

    scan_jobs = args.jobs if args.scan_jobs is None else args.scan_jobs
    for flag, value in (("--jobs", args.jobs), ("--scan-jobs", scan_jobs)):
        if value < 1:
            p.error(f"{flag} must be >= 1, got {value}")
    import torch

    def threads_for(jobs: int) -> int:
        # One job keeps torch's own setting (OMP_NUM_THREADS is honoured); N jobs share the cores.
        return torch.get_num_threads() if jobs == 1 else max(1, (os.cpu_count() or 1) // jobs)

    threads, scan_threads = threads_for(args.jobs), threads_for(scan_jobs)
    by_name = {m.name: m for m in zoo.models}
    names = list(by_name)
    repair = zoo.dataset == "gaze" and not args.no_repair

    def body() -> list[dict]:
        trained = _map(_train_job, [(zoo, name, threads) for name in names], args.jobs, "train")
        extra["dropped"] = [d for dropped in trained for d in dropped]
        kept = [name for name, dropped in zip(names, trained) if not dropped]
        benign = sum(by_name[name].benign for name in kept)
        if not _scorable(benign, len(kept)):
            raise SystemExit("the zoo needs >= 2 benign models and >= 1 learned backdoor to be scored")
        scanned = _map(_scan_job, [(zoo, name, methods, repair, scan_threads) for name in kept], scan_jobs,
                       "scan")
        extra["models"] = [r for records, _ in scanned for r in records]
        extra["calibration"] = calibration_rule()
        if repair:
            extra["repair"] = [row for _, rows in scanned for row in rows]
        return summary_rows(extra["models"])

    config = {"mode": "quick" if args.quick else "full", "zoo": zoo_shown(zoo.source), **zoo.to_dict(),
              "jobs": args.jobs, "threads_per_job": threads, "scan_jobs": scan_jobs,
              "threads_per_scan_job": scan_threads,
              "scanners": {k: dataclasses.asdict(c) for k, (_, c) in methods.items()}}
    record = common.run("scan", config, body, args.json, extra=extra)
    print(f"wrote {args.json} in {record['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
