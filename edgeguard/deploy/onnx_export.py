"""ONNX export with the TorchScript exporter, a symbolic batch axis and a parity check."""
from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Collection, Mapping, Optional, Sequence


from edgeguard.errors import InvalidArgumentError, require
from edgeguard.fileio import write_atomically
from edgeguard.runtime.spec import ModelSpec

log = logging.getLogger(__name__)

MIN_OPSET = 17  # LayerNormalization; TensorRT 10 parses 9-24


def export_onnx(
    model,
    path: str | Path,
    inputs: Sequence[int] | Mapping[str, Sequence[int]],
    opset: int = MIN_OPSET,
    output_name: str = "output",
    binary_inputs: Collection[str] = (),
    dynamic_batch: bool = True,
    atol: float = 1e-4,
    metadata: Mapping[str, object] | None = None,
) -> Path:
    """Export ``model`` (eval mode) to ONNX and check ONNX Runtime matches torch; ``path`` is
    written only when the check passes (an existing file there stays until then).

    Args:
        model: an ``nn.Module`` taking float32 tensors with a leading batch axis.
        path: the .onnx file to write.
        inputs: the per-sample shape of the one input (named "image"), e.g. (3, 32, 32), or
            {name: per-sample shape} for several, in the order ``forward`` takes them.
        opset: ONNX opset, at least 17.
        output_name: name of the (single) output.
        binary_inputs: inputs drawn as 0/1 for the check (masks); the others uniform in [0, 1].
        dynamic_batch: make the batch axis symbolic.
        atol: largest tolerated |onnx - torch| on a random batch of 3; raises ModelFormatError above.
        metadata: facts stored in the model's metadata_props (as strings), e.g. ``task``
            ("classification" or "regression"); engines built from it carry them on.
    """
    torch = require("torch", "ONNX export", "train")
    if opset < MIN_OPSET:
        raise InvalidArgumentError(f"opset must be >= {MIN_OPSET}, got {opset}")
    if not isinstance(inputs, Mapping):
        inputs = {"image": inputs}
    for name, shape in inputs.items():
        if len(shape) < 1 or not all(isinstance(d, int) and d > 0 for d in shape):
            raise InvalidArgumentError(f"input {name!r}: per-sample shape must be positive ints, got {tuple(shape)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()

    def write(target: Path) -> float:
        """Export, check and tag ``target``; returns the largest |onnx - torch|."""
        gen = torch.Generator().manual_seed(0)

        def make(batch: int) -> dict:
            feeds = {}
            for name, shape in inputs.items():
                x = torch.rand(batch, *shape, generator=gen)
                feeds[name] = (x < 0.5).float() if name in binary_inputs else x
            return feeds

        names = list(inputs)
        axes = {n: {0: "batch"} for n in names + [output_name]} if dynamic_batch else None
        with torch.no_grad(), warnings.catch_warnings():
            # Shape checks become constants in the trace, which is right for fixed-size frames.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            # The TorchScript exporter is pinned explicitly: torch >= 2.9 defaults to dynamo.
            torch.onnx.export(model, tuple(make(2).values()), str(target), opset_version=opset, dynamo=False,
                              input_names=names, output_names=[output_name], dynamic_axes=axes)
        onnx = require("onnx", "ONNX export", "onnx")
        onnx.checker.check_model(str(target))
        require("onnxruntime", "ONNX parity check", "onnx")
        from edgeguard.runtime.compare import Tolerances, compare
        from edgeguard.runtime.onnx_runtime import OnnxRuntimeEngine
        from edgeguard.runtime.torch_engine import TorchEngine

        check = {name: t.numpy() for name, t in make(3 if dynamic_batch else 2).items()}
        with OnnxRuntimeEngine(target, providers=["CPUExecutionProvider"]) as exported:
            report = compare(TorchEngine(model, input_names=names, output_name=output_name), exported, [check],
                             Tolerances(max_abs_diff=atol))
        report.raise_for(f"exported {path} against torch")
        err = report.max_abs_diff[output_name]
        if metadata:
            proto = onnx.load(str(target))
            for key, value in metadata.items():
                entry = proto.metadata_props.add()
                entry.key, entry.value = key, str(value)
            onnx.save(proto, str(target))
        return err

    # Renamed to ``path`` only once the check passed: a failed export never replaces a good model.
    err = write_atomically(path, write)
    log.info("exported %s (opset %d, max |onnx - torch| = %.1e)", path, opset, err)
    return path


def export_model(model, path: str | Path, spec: Optional[ModelSpec] = None, **options) -> Path:
    """Export a model to be protected (a classifier or a regressor) with its ``ModelSpec``
    in the file's metadata, where engines read it back (``engine.spec``).

    Args:
        model: an ``nn.Module`` taking one (N, C, H, W) float32 input in [0, 1].
        path: the .onnx file to write.
        spec: role "model", the input shape, output kind and count. None: the ``spec`` the
            module carries (edgeguard's victims do).
        options: for ``export_onnx`` (opset, output_name, atol, ...); ``metadata`` entries are
            kept beside the spec's.
    """
    spec = spec if spec is not None else getattr(model, "spec", None)
    if not isinstance(spec, ModelSpec) or spec.role != "model":
        raise InvalidArgumentError("export_model needs a ModelSpec with role 'model' (pass spec=, e.g. "
                                   "ModelSpec(role='model', input_shape=(3, 32, 32), output='classification', "
                                   "outputs=43)); restorers go through export_restorer")
    metadata = {**(options.pop("metadata", None) or {}), **spec.to_metadata()}
    return export_onnx(model, path, spec.input_shape, metadata=metadata, **options)


def export_restorer(mae, path: str | Path, image_shape: Sequence[int], opset: int = MIN_OPSET,
                    atol: float = 1e-4, drop_masked: bool = True) -> Path:
    """Export an MAE restorer: inputs "image" (N, C, H, W) in [0, 1] at data size and
    "mask" (N, L) with 1 = masked; output "restored" (N, C, H, W). Its ``ModelSpec`` (the
    data size, the MAE's token grid and patch size) goes into the model metadata, where the
    purifier reads its token grid (``engine.spec``). ``drop_masked``: the encoder runs on the
    visible tokens only (gathered in the graph with NonZero and TopK; about half the FLOPs of
    a stage-1 restoration); False exports every token through the encoder, for runtimes
    without data-dependent shapes. Both give the same restorations."""
    config = mae.config
    spec = ModelSpec(role="restorer", input_shape=tuple(int(d) for d in image_shape),
                     token_grid=config.img_size // config.patch_size, patch_size=config.patch_size)
    before = mae.__dict__.get("drop_masked")
    mae.drop_masked = drop_masked
    try:
        return export_onnx(mae, path, {"image": spec.input_shape, "mask": (config.num_tokens,)}, opset,
                           output_name="restored", binary_inputs=("mask",), atol=atol, metadata=spec.to_metadata())
    finally:
        if before is None:
            del mae.drop_masked
        else:
            mae.drop_masked = before
