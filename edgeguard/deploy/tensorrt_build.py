"""TensorRT engine building, one code path for TensorRT 8.6 through 11.

Precision follows each generation's rules (shared/spec/edge.md section 1.3): up to 10,
fp16 is a builder flag; 11 removed the flags and builds every network strongly typed, so
fp16 comes from the ONNX itself (converted here with onnxconverter-common, keeping inputs,
outputs, LayerNorm, Softmax and reductions in fp32). int8 arrives as a Q/DQ ONNX
(edgeguard.deploy.quantize), which 8.6-10 build with the INT8 flag and 11 as typed.

Not exercised by this repository's CI (no TensorRT there); see docs/results.md, "What is verified where".
"""
from __future__ import annotations

import logging
from pathlib import Path

from edgeguard.deploy.onnx_info import OnnxInfo
from edgeguard.errors import ModelFormatError, require
from edgeguard.runtime.sidecar import EngineSidecar, file_sha256

log = logging.getLogger(__name__)

# Kept in fp32 by the fp16 conversion: normalisation and softmax overflow in fp16.
FP32_OPS = ["LayerNormalization", "Softmax", "ReduceMean", "ReduceSum", "Pow", "Sqrt", "Div"]


def _fp16_onnx(source: Path, tmp: Path) -> Path:
    """A typed fp16 copy of ``source`` with fp32 inputs and outputs (for TensorRT 11)."""
    onnx = require("onnx", "fp16 conversion", "onnx")
    float16 = require("onnxconverter_common.float16", "fp16 engines on TensorRT 11", "tensorrt")
    model = float16.convert_float_to_float16(onnx.load(str(source)), keep_io_types=True, op_block_list=FP32_OPS)
    out = tmp / "fp16.onnx"
    onnx.save(model, str(out))
    return out


def build_tensorrt(source: Path, out_path: Path, info: OnnxInfo, config, tmp: Path) -> EngineSidecar:
    """Parse ``source``, build with ``config`` (a BuildConfig), write the plan to ``out_path``."""
    trt = require("tensorrt", "building TensorRT engines (or use --backend onnxruntime)", "tensorrt")
    cuda = require("pycuda.driver", "building TensorRT engines", "tensorrt")
    require("pycuda.autoprimaryctx", "building TensorRT engines", "tensorrt")
    major = int(trt.__version__.split(".")[0])
    has_flag = hasattr(trt.BuilderFlag, "FP16")  # gone in TensorRT 11
    if config.precision == "fp16" and not has_flag:
        source = _fp16_onnx(source, tmp)

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH) if major < 10 else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(source)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelFormatError(f"TensorRT cannot parse {source.name}: {errors}")

    builder_config = builder.create_builder_config()
    builder_config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(config.workspace_gib * (1 << 30)))
    if hasattr(builder_config, "builder_optimization_level"):  # from TensorRT 8.6
        builder_config.builder_optimization_level = config.optimization_level
    if config.precision == "fp16" and has_flag:
        builder_config.set_flag(trt.BuilderFlag.FP16)
    if config.precision == "int8" and hasattr(trt.BuilderFlag, "INT8"):
        builder_config.set_flag(trt.BuilderFlag.INT8)  # lets 8.6-10 honour the Q/DQ nodes
    for low, opt, high in config.profiles:
        profile = builder.create_optimization_profile()
        for name, shape in info.inputs.items():
            profile.set_shape(name, (low, *shape), (opt, *shape), (high, *shape))
        builder_config.add_optimization_profile(profile)

    cache_path = Path(config.timing_cache) if config.timing_cache else None
    cache = builder_config.create_timing_cache(cache_path.read_bytes() if cache_path and cache_path.is_file() else b"")
    builder_config.set_timing_cache(cache, ignore_mismatch=False)

    log.info("building %s (%s, profiles %s) with TensorRT %s", out_path.name, config.precision,
             config.profiles, trt.__version__)
    plan = builder.build_serialized_network(network, builder_config)
    if plan is None:
        raise ModelFormatError(f"TensorRT failed to build {out_path.name} (see the log above)")
    out_path.write_bytes(bytes(plan))
    if cache_path:
        cache_path.write_bytes(bytes(cache.serialize()))

    device = cuda.Context.get_device()
    capability = "{}.{}".format(*device.compute_capability())
    return EngineSidecar(backend="tensorrt", engine_sha256=file_sha256(out_path), inputs=info.inputs,
                         outputs=info.outputs, model=info.metadata, precision=config.precision,
                         profiles=[list(p) for p in config.profiles], onnx_sha256=info.sha256,
                         tensorrt_version=trt.__version__, gpu=device.name(), compute_capability=capability)
