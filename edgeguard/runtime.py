"""Inference engines behind one interface (numpy in, numpy out).

    engine = load_engine("model.onnx")              # ONNX Runtime, CPU unless told otherwise
    logits = engine(frames)                         # (N, 3, 32, 32) float32 in [0, 1]
    restored = load_engine("mae.onnx")(frames, mask)

Backends: ``onnxruntime`` (any CPU; CUDA when onnxruntime-gpu is installed) and ``torch``
(wraps an ``nn.Module``). Sessions are created on first use, and optional dependencies are
imported there, with an error that names the package to install. Nothing here imports
torch unless a torch module is handed in.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from edgeguard.errors import InvalidArgumentError, InvalidInputError, ModelFormatError, require

log = logging.getLogger(__name__)

BACKENDS = ("auto", "onnxruntime", "torch")


class Engine:
    """A callable model: ``engine(*arrays) -> first output`` with arrays in input order.

    Subclasses implement ``_run(arrays) -> list of outputs``; ``calls`` counts invocations
    and ``samples`` the batch rows seen, for reporting.
    """

    backend = "base"

    def __init__(self) -> None:
        self.calls = 0
        self.samples = 0

    @property
    def input_names(self) -> tuple[str, ...]:
        raise NotImplementedError

    @property
    def metadata(self) -> dict[str, str]:
        """Facts the model carries about itself, e.g. an MAE's ``mae_img_size``/``mae_patch_size``."""
        return {}

    def _run(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError

    def __call__(self, *arrays: np.ndarray) -> np.ndarray:
        names = self.input_names
        if len(arrays) != len(names):
            raise InvalidInputError(f"{self} takes {len(names)} input(s) {list(names)}, got {len(arrays)}")
        arrays = [np.ascontiguousarray(a, dtype=np.float32) for a in arrays]
        self.calls += 1
        self.samples += len(arrays[0])
        return self._run(arrays)[0]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.backend})"


class OnnxRuntimeEngine(Engine):
    """An ONNX model run by ONNX Runtime; the session is created lazily."""

    backend = "onnxruntime"

    def __init__(self, path: str | Path, providers: Optional[Sequence[str]] = None, threads: Optional[int] = None):
        super().__init__()
        self.path = Path(path)
        if not self.path.is_file():
            raise InvalidArgumentError(f"model file {self.path} does not exist")
        self.providers = list(providers) if providers else ["CPUExecutionProvider"]
        self.threads = threads
        self._session = None

    @property
    def session(self):
        if self._session is None:
            ort = require("onnxruntime", "the ONNX Runtime backend", "onnx")
            options = ort.SessionOptions()
            if self.threads:
                options.intra_op_num_threads = self.threads
            try:
                self._session = ort.InferenceSession(str(self.path), options, providers=self.providers)
            except Exception as exc:  # onnxruntime raises its own exception types
                raise ModelFormatError(f"ONNX Runtime cannot load {self.path}: {exc}") from exc
            log.info("ONNX Runtime session for %s on %s", self.path.name, self._session.get_providers()[0])
        return self._session

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(i.name for i in self.session.get_inputs())

    @property
    def metadata(self) -> dict[str, str]:
        return dict(self.session.get_modelmeta().custom_metadata_map)

    def _run(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        try:
            return self.session.run(None, dict(zip(self.input_names, arrays)))
        except Exception as exc:
            shapes = [a.shape for a in arrays]
            raise InvalidInputError(f"{self.path.name} rejected inputs of shapes {shapes}: {exc}") from exc

    def __repr__(self) -> str:
        return f"OnnxRuntimeEngine({self.path.name}, {self.providers[0]})"


class TorchEngine(Engine):
    """An ``nn.Module`` run under ``torch.no_grad`` in eval mode on its own device."""

    backend = "torch"

    def __init__(self, module: Any, input_names: Sequence[str] = ("image",)):
        super().__init__()
        self.module = module.eval()
        self._names = tuple(input_names)

    @property
    def input_names(self) -> tuple[str, ...]:
        return self._names

    @property
    def metadata(self) -> dict[str, str]:
        config = getattr(self.module, "config", None)
        if hasattr(config, "patch_size") and hasattr(config, "img_size"):
            return {"mae_img_size": str(config.img_size), "mae_patch_size": str(config.patch_size)}
        return {}

    def _run(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        import torch

        device = next(self.module.parameters()).device
        with torch.no_grad():
            out = self.module(*(torch.from_numpy(a).to(device) for a in arrays))
        return [out.float().cpu().numpy()]


def load_engine(source: Any, backend: str = "auto", **options: Any) -> Engine:
    """An Engine for ``source``: an ``.onnx`` path (ONNX Runtime), an ``nn.Module``
    (torch), or an Engine (returned as is).

    Options go to the backend: ``providers``/``threads`` for onnxruntime, ``input_names``
    for torch (an MAE restorer gets ("image", "mask") automatically).
    """
    if backend not in BACKENDS:
        raise InvalidArgumentError(f"unknown backend {backend!r}; choose one of {list(BACKENDS)}")
    if isinstance(source, Engine):
        return source
    if isinstance(source, (str, Path)):
        path = Path(source)
        if backend == "torch":
            raise InvalidArgumentError("the torch backend takes an nn.Module, not a file")
        if path.suffix != ".onnx":
            raise InvalidArgumentError(f"{path}: expected an .onnx file (TensorRT engines are not supported yet)")
        return OnnxRuntimeEngine(path, **options)
    if hasattr(source, "forward") and hasattr(source, "parameters"):
        if backend == "onnxruntime":
            raise InvalidArgumentError("export the module first (edgeguard.deploy.export_onnx) to run it with onnxruntime")
        if "input_names" not in options and hasattr(getattr(source, "config", None), "num_tokens"):
            options["input_names"] = ("image", "mask")
        return TorchEngine(source, **options)
    raise InvalidArgumentError(f"cannot make an engine from {type(source).__name__}; pass an .onnx path or an nn.Module")
