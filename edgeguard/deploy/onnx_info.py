"""What an ONNX model says about itself: input shapes, output names, metadata, checksum."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgeguard.errors import ModelFormatError, require
from edgeguard.runtime.sidecar import file_sha256


@dataclass(frozen=True)
class OnnxInfo:
    """Attributes:
        inputs: input name -> per-sample shape (batch axis left out), in order.
        outputs: output names.
        metadata: the model's metadata_props (``task``, ``mae_img_size``, ...).
        sha256: checksum of the file.
    """

    inputs: dict[str, list[int]]
    outputs: list[str]
    metadata: dict[str, str]
    sha256: str


def read_onnx_info(path: str | Path) -> OnnxInfo:
    """Read ``path``; every input must have a batch axis and fixed other dimensions."""
    onnx = require("onnx", "reading ONNX models", "onnx")
    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(f"ONNX file {path} does not exist")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and friends
        raise ModelFormatError(f"{path} is not an ONNX model: {exc}") from exc
    initializers = {i.name for i in proto.graph.initializer}
    inputs = {}
    for value in proto.graph.input:
        if value.name in initializers:
            continue
        dims = value.type.tensor_type.shape.dim
        sample = [d.dim_value for d in dims[1:]]
        if len(dims) < 2 or not all(sample):
            raise ModelFormatError(f"{path}: input {value.name!r} needs a batch axis and fixed sizes after it, "
                                   f"got {[d.dim_param or d.dim_value for d in dims]}")
        inputs[value.name] = sample
    return OnnxInfo(inputs=inputs, outputs=[o.name for o in proto.graph.output],
                    metadata={p.key: p.value for p in proto.metadata_props}, sha256=file_sha256(path))
