"""TensorRT backend (NVIDIA GPUs and Jetson): pycuda buffers, one private stream, ``execute_async_v3``.

Written against the name-based I/O API that TensorRT 8.6 through 11 share
(``num_io_tensors``, ``get_tensor_name``, ``set_input_shape``, ``set_tensor_address``,
``execute_async_v3``); no binding indices, no ``execute_async_v2``. One execution context
per optimisation profile; the call picks the tightest profile that holds the batch.
Device buffers are allocated once at each tensor's largest shape, pinned host buffers stage
the copies. With ``cuda_graph=True`` the enqueue of a static profile (min = opt = max, the
camera path) is captured once into a CUDA graph and replayed (needs cuda-python).

Not exercised by this repository's CI (no TensorRT there); see docs/results.md, "What is verified where".
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from edgeguard.errors import InvalidArgumentError, InvalidInputError, MissingDependencyError, ModelFormatError, require
from edgeguard.runtime.base import Engine
from edgeguard.runtime.sidecar import EngineSidecar

log = logging.getLogger(__name__)


def _cudart():
    """CUDA runtime bindings of cuda-python (module path differs across its versions)."""
    try:
        from cuda.bindings import runtime
    except ImportError:
        try:
            from cuda import cudart as runtime
        except ImportError as exc:
            raise MissingDependencyError("CUDA graph replay needs the 'cuda-python' package: "
                                         "pip install cuda-python") from exc
    return runtime


def _checked(cudart, result):
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != cudart.cudaError_t.cudaSuccess:
        raise RuntimeError(f"CUDA runtime call failed: {err}")
    return values[0] if len(values) == 1 else values


class TensorRTEngine(Engine):
    """A serialized TensorRT engine (``.engine``/``.plan``) with its sidecar ``.engine.json``.

    The sidecar is read and checked at construction (no GPU needed); the engine is
    deserialized on first use, after checking that this machine's TensorRT and GPU are the
    ones it was built with.
    """

    backend = "tensorrt"

    def __init__(self, path: str | Path, cuda_graph: bool = False):
        super().__init__()
        self.path = Path(path)
        if not self.path.is_file():
            raise InvalidArgumentError(f"engine file {self.path} does not exist")
        self.sidecar = EngineSidecar.read(self.path)
        if self.sidecar.backend != "tensorrt":
            raise ModelFormatError(f"{self.path} is a {self.sidecar.backend} model, not a TensorRT engine")
        self.cuda_graph = cuda_graph
        self._rt: Optional[dict[str, Any]] = None

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(self.sidecar.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(self.sidecar.outputs)

    @property
    def input_shapes(self) -> dict[str, tuple[Optional[int], ...]]:
        return {k: tuple(v) for k, v in self.sidecar.inputs.items()}

    @property
    def metadata(self) -> dict[str, Any]:
        return dict(self.sidecar.model)

    # -- loading ---------------------------------------------------------------------------
    def _load(self) -> dict[str, Any]:
        trt = require("tensorrt", "the TensorRT backend", "tensorrt")
        cuda = require("pycuda.driver", "the TensorRT backend", "tensorrt")
        # The primary context, shared with PyTorch and edgeguard's CUDA kernels.
        require("pycuda.autoprimaryctx", "the TensorRT backend", "tensorrt")
        self.sidecar.check_runtime(trt.__version__, cuda.Context.get_device().name())
        logger = trt.Logger(trt.Logger.WARNING)
        engine = trt.Runtime(logger).deserialize_cuda_engine(self.path.read_bytes())
        if engine is None:
            raise ModelFormatError(f"TensorRT could not deserialize {self.path} (see the log above)")
        stream = cuda.Stream()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        if inputs != list(self.sidecar.inputs):
            raise ModelFormatError(f"{self.path} has inputs {inputs}, its sidecar says {list(self.sidecar.inputs)}")
        contexts, ranges = [], []
        for p in range(engine.num_optimization_profiles):
            context = engine.create_execution_context()
            context.set_optimization_profile_async(p, stream.handle)
            low, _, high = engine.get_tensor_profile_shape(inputs[0], p)
            contexts.append(context)
            ranges.append((int(low[0]), int(high[0])))
        # Largest shape of every tensor over all profiles -> one device buffer each.
        largest: dict[str, int] = {}
        for context, (_, high) in zip(contexts, ranges):
            for name in inputs:
                context.set_input_shape(name, (high, *self.sidecar.inputs[name]))
            for name in names:
                size = int(np.prod(context.get_tensor_shape(name)))
                largest[name] = max(largest.get(name, 0), size)
        dtypes = {n: np.dtype(trt.nptype(engine.get_tensor_dtype(n))) for n in names}
        host = {n: cuda.pagelocked_empty(largest[n], dtypes[n]) for n in names}
        device = {n: cuda.mem_alloc(host[n].nbytes) for n in names}
        for context in contexts:
            for name in names:
                context.set_tensor_address(name, int(device[name]))
        log.info("TensorRT engine %s: profiles %s, inputs %s", self.path.name, ranges, inputs)
        return {"cuda": cuda, "engine": engine, "stream": stream, "contexts": contexts, "ranges": ranges,
                "inputs": inputs, "outputs": [n for n in names if n not in inputs], "dtypes": dtypes,
                "host": host, "device": device, "graphs": {}}

    # -- running ---------------------------------------------------------------------------
    def _profile_for(self, batch: int) -> int:
        fits = [(high - low, p) for p, (low, high) in enumerate(self._rt["ranges"]) if low <= batch <= high]
        if not fits:
            raise InvalidInputError(f"batch {batch} is outside every optimisation profile of {self.path.name} "
                                    f"{self._rt['ranges']}")
        return min(fits)[1]

    def _enqueue(self, profile: int, batch: int) -> None:
        rt = self._rt
        context, stream = rt["contexts"][profile], rt["stream"]
        low, high = rt["ranges"][profile]
        if not (self.cuda_graph and low == high):
            if not context.execute_async_v3(stream.handle):
                raise RuntimeError(f"TensorRT enqueue failed for {self.path.name}")
            return
        graph = rt["graphs"].get(profile)
        cudart = _cudart()
        if graph is None:
            context.execute_async_v3(stream.handle)  # flushes deferred set-up before capture
            _checked(cudart, cudart.cudaStreamBeginCapture(
                stream.handle, cudart.cudaStreamCaptureMode.cudaStreamCaptureModeRelaxed))
            context.execute_async_v3(stream.handle)
            captured = _checked(cudart, cudart.cudaStreamEndCapture(stream.handle))
            graph = rt["graphs"][profile] = _checked(cudart, cudart.cudaGraphInstantiateWithFlags(captured, 0))
        _checked(cudart, cudart.cudaGraphLaunch(graph, stream.handle))

    def _run(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        if self._rt is None:
            self._rt = self._load()
        rt = self._rt
        cuda, stream = rt["cuda"], rt["stream"]
        step = max(high for _, high in rt["ranges"])
        parts: list[list[np.ndarray]] = []
        for start in range(0, len(arrays[0]), step):
            chunk = [a[start:start + step] for a in arrays]
            batch = len(chunk[0])
            profile = self._profile_for(batch)
            context = rt["contexts"][profile]
            for name, a in zip(rt["inputs"], chunk):
                if not context.set_input_shape(name, a.shape):
                    raise InvalidInputError(f"{self.path.name} rejects {name!r} of shape {a.shape}")
                staged = rt["host"][name][:a.size]
                staged[:] = a.ravel()
                cuda.memcpy_htod_async(rt["device"][name], staged, stream)
            self._enqueue(profile, batch)
            results = []
            for name in rt["outputs"]:
                shape = tuple(context.get_tensor_shape(name))
                staged = rt["host"][name][:int(np.prod(shape))]
                cuda.memcpy_dtoh_async(staged, rt["device"][name], stream)
                results.append((staged, shape))
            stream.synchronize()
            parts.append([s.reshape(shape).astype(np.float32) for s, shape in results])
        return [np.concatenate(outs) for outs in zip(*parts)]

    def close(self) -> None:
        """Free the device buffers, CUDA graphs, execution contexts and the engine."""
        rt, self._rt = self._rt, None
        if rt is None:
            return
        rt["stream"].synchronize()
        if rt["graphs"]:
            cudart = _cudart()
            for graph in rt["graphs"].values():
                _checked(cudart, cudart.cudaGraphExecDestroy(graph))
        for buffer in rt["device"].values():
            buffer.free()
        rt["contexts"].clear()
        rt.clear()

    def __repr__(self) -> str:
        return f"TensorRTEngine({self.path.name}, {self.sidecar.precision})"
