"""One model's pre-deployment check, end to end: what ``edgeguard scan`` runs.

    record = scan_model(model, clean, "report/", trusted=[benign_1, benign_2], repair_to="fixed.safetensors")
    record["backdoored"]

Calibrate on trusted models (optional), scan, repair (optional, judged on held-out frames),
write ``scan.png`` and ``scan.json``. The frames the scan uses are a seeded sample of
``clean``; repair is judged on the rest.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
from torch import nn

from edgeguard.data.dataset import ImageDataset, to_float_nchw
from edgeguard.errors import InvalidArgumentError, InvalidInputError
from edgeguard.fileio import write_atomically
from edgeguard.scan.calibration import CALIBRATION_MARGIN, threshold_from_trusted
from edgeguard.scan.drmguard import DRMGuardConfig, scan
from edgeguard.scan.neural_cleanse import NeuralCleanseConfig, neural_cleanse

METHODS = ("drmguard", "nc")
# The fewest clean frames a verdict rests on. The shipped threshold was calibrated on scans of
# 300 frames; on a handful the generator can collapse any model's outputs by fitting those
# frames (on 2 frames a benign model was called backdoored), so its statistic is not
# comparable. 100 is a floor, not a recommendation: use 300 where you have them.
MIN_SCAN_IMAGES = 100


def check_scan_inputs(model: nn.Module, clean: ImageDataset, images: int) -> None:
    """Refuse, before any work, data that no verdict could rest on, naming which side is at
    fault: too few frames, or frames and labels that do not fit the model's ``spec`` (a
    ``ModelSpec``, when the model carries one: input shape, output kind and count)."""
    if images < MIN_SCAN_IMAGES:
        raise InvalidArgumentError(f"images must be >= {MIN_SCAN_IMAGES} (a verdict on fewer frames is not "
                                   f"comparable with the calibrated threshold), got {images}")
    if len(clean) < MIN_SCAN_IMAGES:
        raise InvalidInputError(f"the data holds {len(clean)} labelled frames; a scan needs at least {MIN_SCAN_IMAGES} "
                                f"(300 recommended) held-out clean frames of the model's task")
    spec = getattr(model, "spec", None)
    if spec is None:
        return
    shape = tuple(int(d) for d in to_float_nchw(clean.images[:1]).shape[1:])
    if shape != tuple(spec.input_shape):
        raise InvalidInputError(f"the data's frames are {shape} (C, H, W) but the model takes {tuple(spec.input_shape)}: "
                                "these frames are not the model's input (another task or camera?); resize or convert "
                                "them first (edgeguard.data.resize_frames), the scan never broadcasts or resizes")
    if spec.output is not None and spec.output != clean.output:
        raise InvalidInputError(f"the data's labels are {clean.output.value} labels but the model is a "
                                f"{spec.output.value} model: the data belongs to another task")
    regression = clean.output == "regression"
    if spec.outputs is not None and (clean.num_classes != spec.outputs if regression else clean.num_classes > spec.outputs):
        what = "label dimensions" if regression else "class ids"
        raise InvalidInputError(f"the data has {clean.num_classes} {what} but the model answers with {spec.outputs} "
                                "outputs: the data belongs to another model")


def default_config(method: str, clean: ImageDataset, seed: int = 0, **overrides):
    """The method's config for models answering like ``clean``'s labels (DRMGuard reads
    softmax vectors of a classifier, raw outputs of a regressor)."""
    if method not in METHODS:
        raise InvalidArgumentError(f"method must be one of {METHODS}, got {method!r}")
    if method == "nc":
        return NeuralCleanseConfig(seed=seed, **overrides)
    return DRMGuardConfig(seed=seed, outputs=clean.output.scan_outputs, **overrides)


def calibrated(config, method: str, trusted: Sequence[nn.Module], images: np.ndarray, progress: bool = True,
               say: Callable[[str], None] = print, names: Sequence[str] = ()):
    """``config`` with the threshold set from scans of ``trusted`` (benign) models on ``images``
    (``names`` label them in the messages)."""
    run = neural_cleanse if method == "nc" else scan
    found = [run(benign, images, config, progress=progress) for benign in trusted]
    for i, r in enumerate(found):
        name = names[i] if i < len(names) else f"trusted model {i}"
        say(f"calibration: {name}: statistic {r.statistic:.4f}" if r.collapsed else
            f"calibration: {name}: outputs never collapsed (residual variance "
            f"{r.residual_variance:.3f}); not used for the threshold")
    threshold = threshold_from_trusted([r.statistic for r in found], [r.collapsed for r in found])
    used = sum(r.collapsed for r in found)
    say(f"calibrated threshold {threshold:.4f} ({CALIBRATION_MARGIN} x the median of {used} trusted models)" if used
        else "no trusted model's outputs collapsed: any collapse is flagged (threshold inf)")
    return dataclasses.replace(config, threshold=threshold)


def scan_model(model: nn.Module, clean: ImageDataset, report_dir: "str | Path", method: str = "drmguard",
               images: int = 300, config=None, trusted: Sequence[nn.Module] = (), trusted_names: Sequence[str] = (),
               repair_to: "str | Path | None" = None, seed: int = 0, details: Optional[dict] = None,
               progress: bool = True, say: Callable[[str], None] = print) -> dict:
    """Scan ``model`` with ``images`` frames sampled from ``clean`` (labelled clean data);
    returns the report's record (``record["backdoored"]`` is the verdict).

    Args:
        config: the method's settings (default: ``default_config``); with ``trusted`` models its
            threshold is calibrated on them first (``trusted_names`` label them in messages).
        repair_to: also fine-tune the model against the found trigger (``edgeguard.scan.repair``)
            and write its weights here (.safetensors); judged on the frames the scan did not use.
        details: extra entries for the record (e.g. where the model came from).
    """
    from safetensors.torch import save_file

    from edgeguard.scan.repair import repair
    from edgeguard.scan.report import write_report

    check_scan_inputs(model, clean, images)
    config = config if config is not None else default_config(method, clean, seed)
    order = np.random.default_rng(seed).permutation(len(clean))
    scan_data = clean.subset(order[:images])
    if trusted:
        config = calibrated(config, method, trusted, scan_data.images, progress, say, trusted_names)
    result = (neural_cleanse if method == "nc" else scan)(model, scan_data.images, config, progress=progress)
    say(str(result))
    out = Path(report_dir)
    out.mkdir(parents=True, exist_ok=True)
    extra = {**(details or {}), "images": len(scan_data)}
    if repair_to is not None:
        held_out = clean.subset(order[images:]) if len(clean) > images + 1 else scan_data
        before = repair_metrics(model, result.generator, held_out)
        # NC's mask and pattern are unlearned the same way; its re-scans use DRMGuard's defaults
        done = repair(model, result.generator, scan_data, progress=progress,
                      scan_config=None if method == "nc" else config)
        after = repair_metrics(model, result.generator, held_out)
        weights = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        write_atomically(repair_to, lambda tmp: save_file(weights, str(tmp)))
        extra["repair"] = {"before": before, "after": after, "weights": str(repair_to), "rounds": done.rounds,
                           "rescan_statistics": [r.statistic for r in done.rescans]}
        say(f"repair ({done.rounds} round(s)): {before} -> {after}; wrote {repair_to}")
    record = write_report(result, model, scan_data.images, out / "scan.png", out / "scan.json", method=method,
                          regression=clean.output == "regression", details=extra)
    say(f"wrote {out / 'scan.png'} and {out / 'scan.json'}")
    return record


def repair_metrics(model: nn.Module, generator: nn.Module, data: ImageDataset) -> dict:
    """Clean quality on ``data`` and on its reverse-engineered triggered copy, scored against
    the true labels (a repaired model answers them correctly)."""
    from edgeguard.scan.repair import apply_trigger
    from edgeguard.train import predict

    kind, key = data.output, data.output.headline_metric
    clean = kind.metrics(predict(model, data.images), data.labels)
    triggered = kind.metrics(predict(model, apply_trigger(generator, data.images)), data.labels)
    return {key: round(float(clean[key]), 4), f"generated_{key}": round(float(triggered[key]), 4)}
