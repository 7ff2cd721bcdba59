"""The metadata sidecar written next to every built engine (``model.engine.json``).

TensorRT plans carry no metadata of their own and are valid only for the TensorRT version
and GPU they were built with, so the builder records what a loader must know and check:
input shapes and value range, the model's task and token grid, precision, optimisation
profiles, and the versions and GPU of the build. ``load_engine`` reads it before it
touches the engine and refuses a mismatch with an error that says to rebuild.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from edgeguard.errors import ModelFormatError
from edgeguard.fileio import file_sha256
from edgeguard.version import __version__

FORMAT = "edgeguard-engine/1"


# Metadata key that build_engine stamps into the ONNX files it writes: such a file without its
# sidecar has lost its checks and is refused (ONNX files straight from export need no sidecar).
BUILT_KEY = "edgeguard.built"


def _check_fields(sidecar: "EngineSidecar") -> None:
    """ValueError unless the fields the runtime reads have their types (a hand-edited or
    truncated sidecar fails here, by name, not later in the middle of a run)."""
    inputs, outputs = sidecar.inputs, sidecar.outputs
    if not isinstance(inputs, dict) or not inputs or not all(
            isinstance(name, str) and isinstance(shape, list) and all(isinstance(d, int) and d > 0 for d in shape)
            for name, shape in inputs.items()):
        raise ValueError(f"inputs must map names to per-sample shapes of positive ints, got {inputs!r}")
    if not isinstance(outputs, list) or not outputs or not all(isinstance(o, str) for o in outputs):
        raise ValueError(f"outputs must be a non-empty list of names, got {outputs!r}")
    if not isinstance(sidecar.model, dict) or not isinstance(sidecar.engine_sha256, str):
        raise ValueError("model must be an object and engine_sha256 a string")


def sidecar_path(engine_path: str | Path) -> Path:
    """``model.engine`` -> ``model.engine.json``."""
    path = Path(engine_path)
    return path.with_name(path.name + ".json")


@dataclass
class EngineSidecar:
    """What an engine file is and where it may run.

    Attributes:
        backend: "tensorrt" or "onnxruntime".
        engine_sha256: checksum of the engine file this sidecar describes.
        inputs: input name -> per-sample shape (batch axis left out), in input order.
        outputs: output names, in order.
        model: the ONNX model's own metadata (``task``, ``labels``, ``mae_img_size``, ...).
        precision: "fp32", "fp16" or "int8".
        profiles: per optimisation profile, the (min, opt, max) batch size.
        input_range, layout: what the inputs hold: float32 NCHW on the [0, 1] scale
            (normalisation is inside the model).
        onnx_sha256: checksum of the ONNX the engine was built from.
        tensorrt_version, gpu, compute_capability: the build's TensorRT and device
            (None for ONNX Runtime models, which are portable).
        edgeguard_version: the edgeguard that built it.
    """

    backend: str
    engine_sha256: str
    inputs: dict[str, list[int]]
    outputs: list[str]
    model: dict[str, str] = field(default_factory=dict)
    precision: str = "fp32"
    profiles: list[list[int]] = field(default_factory=list)
    input_range: list[float] = field(default_factory=lambda: [0.0, 1.0])
    layout: str = "NCHW float32"
    onnx_sha256: str = ""
    tensorrt_version: Optional[str] = None
    gpu: Optional[str] = None
    compute_capability: Optional[str] = None
    edgeguard_version: str = __version__
    format: str = FORMAT

    def write(self, engine_path: str | Path) -> Path:
        path = sidecar_path(engine_path)
        path.write_text(json.dumps(dataclasses.asdict(self), indent=2) + "\n")
        return path

    @classmethod
    def read(cls, engine_path: str | Path) -> "EngineSidecar":
        """The sidecar of ``engine_path``, checked to belong to that file."""
        path = sidecar_path(engine_path)
        if not path.is_file():
            raise ModelFormatError(
                f"{engine_path} has no metadata sidecar {path.name}: build engines with "
                "export/build_engine.py, which writes one, and keep it next to the engine")
        try:
            raw: dict[str, Any] = json.loads(path.read_text())
            if not isinstance(raw, dict):
                raise ValueError(f"a JSON {type(raw).__name__}, expected an object")
            if raw.get("format") != FORMAT:
                raise ValueError(f"format {raw.get('format')!r}, expected {FORMAT!r}")
            known = {f.name for f in dataclasses.fields(cls)}
            sidecar = cls(**{k: v for k, v in raw.items() if k in known})
            _check_fields(sidecar)
        except (ValueError, TypeError) as exc:
            raise ModelFormatError(f"{path} is not an edgeguard engine sidecar: {exc}") from exc
        if sidecar.engine_sha256 != file_sha256(engine_path):
            raise ModelFormatError(
                f"{path.name} describes another file than {Path(engine_path).name} (checksum differs): "
                "the engine was rebuilt or replaced without its sidecar; rebuild both with export/build_engine.py")
        return sidecar

    def check_runtime(self, tensorrt_version: Optional[str], gpu: Optional[str]) -> None:
        """Refuse a TensorRT engine built with another TensorRT or on another GPU model."""
        if self.backend != "tensorrt":
            return
        if tensorrt_version != self.tensorrt_version:
            raise ModelFormatError(
                f"engine built with TensorRT {self.tensorrt_version}, this machine has {tensorrt_version}: "
                "TensorRT plans only load in the exact version that built them; rebuild on this machine")
        if gpu is not None and self.gpu is not None and gpu != self.gpu:
            raise ModelFormatError(
                f"engine built on {self.gpu}, this machine has {gpu}: rebuild the engine on the target device")
