"""Inference engines behind one interface (numpy in, numpy out).

    engine = load_engine("model.onnx")              # ONNX Runtime, CPU unless told otherwise
    logits = engine(frames)                         # (N, 3, 32, 32) float32 in [0, 1]
    restored = load_engine("mae.engine")(frames, mask)   # TensorRT, with its sidecar mae.engine.json

Backends: ``onnxruntime`` (.onnx; any CPU, CUDA with onnxruntime-gpu), ``tensorrt``
(.engine/.plan built by export/build_engine.py; needs tensorrt and pycuda) and ``torch``
(an ``nn.Module``, on the CPU or a CUDA device). Sessions and engines are created on first
use, and optional dependencies are imported there, with an error that names the package to
install. Nothing here imports torch unless a torch module is handed in. ``compare`` runs two
engines on the same feeds and measures how far apart their outputs are (the export parity
check and the build gate both use it).
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Optional, Sequence

from edgeguard.errors import InvalidArgumentError
from edgeguard.runtime.base import Engine
from edgeguard.runtime.compare import Comparison, Tolerances, compare
from edgeguard.runtime.onnx_runtime import OnnxRuntimeEngine
from edgeguard.runtime.sidecar import EngineSidecar, sidecar_path
from edgeguard.runtime.spec import ModelSpec
from edgeguard.runtime.tensorrt_engine import TensorRTEngine
from edgeguard.runtime.torch_engine import TorchEngine, module_spec

# name -> (its Engine class, the file suffixes it runs; none: it runs in-memory torch modules)
REGISTRY: dict[str, tuple[type, tuple[str, ...]]] = {
    "onnxruntime": (OnnxRuntimeEngine, (".onnx",)),
    "tensorrt": (TensorRTEngine, (".engine", ".plan", ".trt")),
    "torch": (TorchEngine, ()),
}
BACKENDS = ("auto", *REGISTRY)


def load_engine(source: Any, backend: str = "auto", *, input_shape: Optional[Sequence[int]] = None,
                **options: Any) -> Engine:
    """An Engine for ``source``: an ``.onnx`` path (ONNX Runtime), an ``.engine``/``.plan``
    path (TensorRT), an ``nn.Module`` (torch), or an Engine (returned as is).

    Args:
        source: what to run.
        backend: "auto" picks by the source's kind; naming one refuses a source of another kind.
        input_shape: the per-sample shape of the first input this pipeline will feed, e.g.
            (3, 32, 32); an engine built for another size is refused (ModelFormatError).
        options: for the backend: ``providers``/``threads`` (onnxruntime), ``cuda_graph``
            (tensorrt), ``input_names``/``device``/``half`` (torch; an MAE restorer gets
            ("image", "mask") automatically).
    """
    if backend not in BACKENDS:
        raise InvalidArgumentError(f"unknown backend {backend!r}; choose one of {list(BACKENDS)}")
    engine = _make(source, backend, options)
    if input_shape is not None:
        engine.check_input_shape(input_shape)
    return engine


def _make(source: Any, backend: str, options: dict) -> Engine:
    if isinstance(source, Engine):
        return source
    if isinstance(source, (str, Path)):
        path = Path(source)
        if backend != "auto" and not REGISTRY[backend][1]:
            raise InvalidArgumentError(f"the {backend} backend takes an nn.Module, not a file")
        kind = next((name for name, (_, suffixes) in REGISTRY.items() if path.suffix in suffixes), None)
        if kind is None:
            known = {name: list(suffixes) for name, (_, suffixes) in REGISTRY.items() if suffixes}
            raise InvalidArgumentError(f"{path}: not a model file of any backend (by suffix: {known})")
        if backend not in ("auto", kind):
            raise InvalidArgumentError(f"{path} is a file of the {kind} backend; the {backend} backend cannot run it")
        cls = REGISTRY[kind][0]
        return cls(path, **_checked(cls, kind, options))
    if hasattr(source, "forward") and hasattr(source, "parameters"):
        if backend not in ("auto", "torch"):
            raise InvalidArgumentError(f"export the module first (export/build_engine.py) to run it with {backend}")
        spec = module_spec(source)
        if "input_names" not in options and spec is not None and spec.role == "restorer":
            options["input_names"] = ("image", "mask")
        return TorchEngine(source, **_checked(TorchEngine, "torch", options))
    raise InvalidArgumentError(
        f"cannot make an engine from {type(source).__name__}; pass an .onnx/.engine path or an nn.Module")


def _checked(cls: type, kind: str, options: dict) -> dict:
    """``options`` if ``cls`` takes them all, else InvalidArgumentError naming what it takes."""
    allowed = [name for name in inspect.signature(cls.__init__).parameters if name not in ("self", "path", "module")]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise InvalidArgumentError(f"the {kind} backend takes no option(s) {unknown}; it takes {allowed}")
    return options


__all__ = ["BACKENDS", "REGISTRY", "Comparison", "Engine", "EngineSidecar", "ModelSpec", "OnnxRuntimeEngine", "TensorRTEngine",
           "Tolerances", "TorchEngine", "compare", "load_engine", "sidecar_path"]
