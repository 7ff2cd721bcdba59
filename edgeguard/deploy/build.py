"""ONNX in, deployable engine + sidecar out: TensorRT engines, or ONNX Runtime-optimised models.

    report = build_engine("model.onnx", "model.engine", BuildConfig(precision="fp16"))
    report = build_engine("model.onnx", "model.ort.onnx", BuildConfig(backend="onnxruntime"))

Every build writes ``<out>.json`` (edgeguard.runtime.sidecar) and checks the result against
the fp32 ONNX model on ONNX Runtime (the accuracy gate: fp16 and int8 can break a model).
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from edgeguard.deploy.onnx_info import OnnxInfo, read_onnx_info
from edgeguard.deploy.quantize import calibration_feeds, quantize_int8
from edgeguard.errors import InvalidArgumentError, ModelFormatError, require
from edgeguard.runtime import load_engine
from edgeguard.runtime.compare import Tolerances, compare
from edgeguard.runtime.sidecar import BUILT_KEY, EngineSidecar, file_sha256, sidecar_path
from edgeguard.runtime.spec import ModelSpec

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8")
BUILD_BACKENDS = ("tensorrt", "onnxruntime")
DEFAULT_MAX_ABS_DIFF = {"fp32": 1e-3, "fp16": 5e-2, "int8": None}


@dataclass(frozen=True)
class BuildConfig:
    """How to build.

    Attributes:
        backend: "tensorrt" (an engine for this machine's GPU) or "onnxruntime" (a portable
            model with ONNX Runtime's graph optimisations applied offline).
        precision: "fp32", "fp16" (TensorRT only) or "int8" (Q/DQ, calibrated on images).
        profiles: TensorRT optimisation profiles as (min, opt, max) batch sizes. The defaults
            cover what the purifier sends per frame: a static batch of 1 (refinement steps and
            the final query, CUDA-graph friendly) and 1 to 25 (the 25 stage-1 masks).
        timing_cache: TensorRT timing-cache file, read if present and written after the
            build (same GPU and TensorRT only); cuts rebuilds from minutes to seconds.
        workspace_gib: TensorRT workspace limit (cap it at 1-2 GiB on 4-8 GB Jetsons).
        optimization_level: TensorRT builder optimisation level 0-5 (lower builds faster).
        max_abs_diff: largest |engine - ONNX fp32| the accuracy gate allows; None: the
            precision's default (fp32 1e-3, fp16 5e-2, int8 unchecked).
        min_agreement: classifiers: least share of the given images whose top-1 class
            matches fp32 (not checked on the random inputs used when no images are given).
    """

    backend: str = "tensorrt"
    precision: str = "fp32"
    profiles: tuple[tuple[int, int, int], ...] = ((1, 1, 1), (1, 25, 25))
    timing_cache: Optional[str] = None
    workspace_gib: float = 1.0
    optimization_level: int = 3
    max_abs_diff: Optional[float] = None
    min_agreement: float = 0.95

    def __post_init__(self) -> None:
        if self.backend not in BUILD_BACKENDS:
            raise InvalidArgumentError(f"backend must be one of {BUILD_BACKENDS}, got {self.backend!r}")
        if self.precision not in PRECISIONS:
            raise InvalidArgumentError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.backend == "onnxruntime" and self.precision == "fp16":
            raise InvalidArgumentError("fp16 is for TensorRT; ONNX Runtime on a CPU runs fp32 or int8")
        if not self.profiles or any(len(p) != 3 or not 1 <= p[0] <= p[1] <= p[2] for p in self.profiles):
            raise InvalidArgumentError(f"profiles must be (min, opt, max) batch sizes with 1 <= min <= opt <= max, "
                                       f"got {self.profiles}")
        if self.workspace_gib <= 0 or not 0 <= self.optimization_level <= 5:
            raise InvalidArgumentError("workspace_gib must be > 0 and optimization_level in 0..5")


@dataclass
class BuildReport:
    """What a build produced: the engine, its sidecar, and the accuracy gate's figures
    (largest |engine - ONNX fp32| and, for classifiers, top-1 agreement) on ``frames`` inputs."""

    engine: Path
    sidecar: Path
    precision: str
    seconds: float
    max_abs_diff: float
    top1_agreement: Optional[float]
    frames: int

    def __str__(self) -> str:
        agree = f", top-1 agreement {self.top1_agreement:.3f}" if self.top1_agreement is not None else ""
        return (f"{self.engine} ({self.precision}, {self.seconds:.1f} s): max |engine - onnx fp32| "
                f"{self.max_abs_diff:.2e} on {self.frames} inputs{agree}; sidecar {self.sidecar.name}")


def build_engine(onnx_path: str | Path, out_path: str | Path, config: BuildConfig = BuildConfig(),
                 images: Optional[np.ndarray] = None) -> BuildReport:
    """Build ``out_path`` from ``onnx_path``.

    Args:
        images: frames for int8 calibration and the accuracy gate, (N, C, H, W) float in
            [0, 1] or (N, H, W, C) uint8; required for int8 (a few hundred real frames),
            otherwise random inputs are used for the gate.
    """
    t0 = time.perf_counter()
    out_path = Path(out_path)
    if out_path.resolve() in (Path(onnx_path).resolve(), sidecar_path(onnx_path).resolve()) or \
            sidecar_path(out_path).resolve() == Path(onnx_path).resolve():
        raise InvalidArgumentError(f"the engine {out_path} would replace its source {onnx_path} (and the accuracy "
                                   "gate would compare the build with itself); write it elsewhere")
    info = read_onnx_info(onnx_path)
    if config.precision == "int8" and images is None:
        raise InvalidArgumentError("int8 needs calibration images (a few hundred frames like the deployed ones)")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # Built and gated under the final name in a private folder beside out_path, then moved into
    # place: a refused or interrupted build leaves nothing, and an engine already there survives.
    stage = Path(tempfile.mkdtemp(dir=out_path.parent, prefix=f".{out_path.name}."))
    try:
        staged = stage / out_path.name
        with tempfile.TemporaryDirectory(prefix="edgeguard-build-") as tmp:
            source = Path(onnx_path)
            if config.precision == "int8":
                source = quantize_int8(onnx_path, Path(tmp) / "int8.onnx", images)
            if config.backend == "onnxruntime":
                sidecar = _build_onnxruntime(source, staged, info, config)
            else:
                from edgeguard.deploy.tensorrt_build import build_tensorrt

                sidecar = build_tensorrt(source, staged, info, config, Path(tmp))
        sidecar.write(staged)
        report = _accuracy_gate(onnx_path, staged, info, config, images)
        os.replace(staged, out_path)
        os.replace(sidecar_path(staged), sidecar_path(out_path))
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    report.engine, report.sidecar = out_path, sidecar_path(out_path)
    report.seconds = time.perf_counter() - t0
    log.info("%s", report)
    return report


def _build_onnxruntime(source: Path, out_path: Path, info: OnnxInfo, config: BuildConfig) -> EngineSidecar:
    """Apply ONNX Runtime's graph optimisations offline ("extended": fusions that stay
    portable across CPUs; "all" would bake in this CPU's memory layouts)."""
    ort = require("onnxruntime", "the ONNX Runtime build", "onnx")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(out_path)
    try:
        ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ModelFormatError(f"ONNX Runtime cannot load {source}: {exc}") from exc
    onnx = require("onnx", "the ONNX Runtime build", "onnx")
    proto = onnx.load(str(out_path))
    entry = proto.metadata_props.add()
    entry.key, entry.value = BUILT_KEY, f"onnxruntime {config.precision}"
    onnx.save(proto, str(out_path))
    return EngineSidecar(backend="onnxruntime", engine_sha256=file_sha256(out_path), inputs=info.inputs,
                         outputs=info.outputs, model=info.metadata, precision=config.precision,
                         onnx_sha256=info.sha256)


def _accuracy_gate(onnx_path, out_path: Path, info: OnnxInfo, config: BuildConfig,
                   images: Optional[np.ndarray]) -> BuildReport:
    """Compare the built engine with the fp32 ONNX on ONNX Runtime; raise above tolerance."""
    real = images is not None
    if not real:
        first = next(iter(info.inputs))
        images = np.random.default_rng(0).random((25, *info.inputs[first]), dtype=np.float32)
    feeds = calibration_feeds(info.inputs, images[:100], seed=1)
    spec = ModelSpec.from_metadata(info.metadata)
    classifier = (spec.output if spec is not None else info.metadata.get("task")) == "classification"
    limit = config.max_abs_diff if config.max_abs_diff is not None else DEFAULT_MAX_ABS_DIFF[config.precision]
    # Top-1 agreement is measured for every classifier, required only on real frames (random
    # inputs make no answers worth agreeing on).
    tolerances = Tolerances(max_abs_diff=limit,
                            min_top1_agreement=(config.min_agreement if real else 0.0) if classifier else None)
    report = compare(load_engine(onnx_path), load_engine(out_path), feeds, tolerances)
    report.raise_for(f"{out_path} against the fp32 ONNX",
                     "build in a higher precision" + (" or calibrate on more frames" if real and classifier else ""))
    diff = max(report.max_abs_diff.values())
    agreement = min(report.top1_agreement.values()) if report.top1_agreement else None
    return BuildReport(engine=out_path, sidecar=sidecar_path(out_path),
                       precision=config.precision, seconds=0.0, max_abs_diff=diff, top1_agreement=agreement,
                       frames=report.rows)
