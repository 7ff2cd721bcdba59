"""ONNX export with the TorchScript exporter, a symbolic batch axis and a parity check."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from edgeguard.errors import InvalidArgumentError, ModelFormatError, require

log = logging.getLogger(__name__)

MIN_OPSET = 17  # LayerNormalization; TensorRT 10 parses 9-24


def export_onnx(
    model,
    path: str | Path,
    input_shape: Sequence[int],
    opset: int = MIN_OPSET,
    input_name: str = "image",
    output_name: str = "output",
    dynamic_batch: bool = True,
    atol: float = 1e-4,
) -> Path:
    """Export ``model`` (eval mode) to ONNX and check ONNX Runtime matches torch.

    Args:
        model: an ``nn.Module`` taking one (N, C, H, W) float32 tensor in [0, 1].
        path: the .onnx file to write.
        input_shape: (C, H, W) of one image.
        opset: ONNX opset, at least 17.
        dynamic_batch: make the batch axis symbolic.
        atol: largest tolerated |onnx - torch| on a random batch of 3; raises ModelFormatError above.
    """
    torch = require("torch", "ONNX export", "train")
    if opset < MIN_OPSET:
        raise InvalidArgumentError(f"opset must be >= {MIN_OPSET}, got {opset}")
    if len(input_shape) != 3:
        raise InvalidArgumentError(f"input_shape must be (C, H, W), got {tuple(input_shape)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    example = torch.rand(2, *input_shape)
    axes = {input_name: {0: "batch"}, output_name: {0: "batch"}} if dynamic_batch else None
    with torch.no_grad():
        # The TorchScript exporter is pinned explicitly: torch >= 2.9 defaults to dynamo.
        torch.onnx.export(model, (example,), str(path), opset_version=opset, dynamo=False,
                          input_names=[input_name], output_names=[output_name], dynamic_axes=axes)
    onnx = require("onnx", "ONNX export", "onnx")
    onnx.checker.check_model(str(path))
    ort = require("onnxruntime", "ONNX parity check", "onnx")
    batch = torch.rand(3 if dynamic_batch else 2, *input_shape)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {input_name: batch.numpy()})[0]
    with torch.no_grad():
        want = model(batch).numpy()
    err = float(np.abs(got - want).max())
    if err > atol:
        raise ModelFormatError(f"exported {path} differs from torch by {err:.2e} (> {atol:.0e})")
    log.info("exported %s (opset %d, max |onnx - torch| = %.1e)", path, opset, err)
    return path
