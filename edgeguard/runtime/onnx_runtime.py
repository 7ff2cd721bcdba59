"""ONNX Runtime backend: any CPU, or a GPU with onnxruntime-gpu."""
from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from edgeguard.errors import EngineRuntimeError, InvalidArgumentError, InvalidInputError, ModelFormatError, require
from edgeguard.runtime.base import Engine
from edgeguard.runtime.sidecar import BUILT_KEY, EngineSidecar, sidecar_path

log = logging.getLogger(__name__)


class OnnxRuntimeEngine(Engine):
    """An ONNX model run by ONNX Runtime; the session is created lazily.

    A sidecar next to the file (written by ``export/build_engine.py --backend onnxruntime``)
    is read and checked when present; plain exported .onnx files need none. A file that
    build_engine wrote but whose sidecar is gone is refused unless ``allow_unverified``;
    ``verified`` says whether a sidecar vouched for the file.
    """

    backend = "onnxruntime"

    def __init__(self, path: str | Path, providers: Optional[Sequence[str]] = None, threads: Optional[int] = None,
                 allow_unverified: bool = False):
        super().__init__()
        self.path = Path(path)
        if not self.path.is_file():
            raise InvalidArgumentError(f"model file {self.path} does not exist")
        self.providers = list(providers) if providers else ["CPUExecutionProvider"]
        self.threads = threads
        self.sidecar = EngineSidecar.read(self.path) if sidecar_path(self.path).is_file() else None
        self.allow_unverified = allow_unverified
        self._session = None

    @property
    def verified(self) -> bool:
        """True when a sidecar's checksum and shapes vouched for the file."""
        return self.sidecar is not None

    @property
    def session(self):
        if self._session is None:
            ort = require("onnxruntime", "the ONNX Runtime backend", "onnx")
            options = ort.SessionOptions()
            if self.threads:
                options.intra_op_num_threads = self.threads
            # The purifier alternates between two sessions; threads of the idle one spinning
            # for work would take the cores the busy one needs.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            try:
                self._session = ort.InferenceSession(str(self.path), options, providers=self.providers)
            except Exception as exc:  # onnxruntime raises its own exception types
                raise ModelFormatError(f"ONNX Runtime cannot load {self.path}: {exc}") from exc
            built = BUILT_KEY in self._session.get_modelmeta().custom_metadata_map
            if built and self.sidecar is None and not self.allow_unverified:
                self._session = None
                raise ModelFormatError(f"{self.path} was written by build_engine but its sidecar "
                                       f"{sidecar_path(self.path).name} is missing, so nothing about it can be "
                                       "checked; put the sidecar back, rebuild, or load it with allow_unverified=True")
            log.info("ONNX Runtime session for %s on %s", self.path.name, self._session.get_providers()[0])
        return self._session

    @functools.cached_property
    def input_names(self) -> tuple[str, ...]:  # read on every call: looked up once
        if self.sidecar is not None:
            return tuple(self.sidecar.inputs)
        return tuple(i.name for i in self.session.get_inputs())

    @functools.cached_property
    def output_names(self) -> tuple[str, ...]:
        if self.sidecar is not None:
            return tuple(self.sidecar.outputs)
        return tuple(o.name for o in self.session.get_outputs())

    @property
    def input_shapes(self) -> dict[str, tuple[Optional[int], ...]]:
        if self.sidecar is not None:
            return {k: tuple(v) for k, v in self.sidecar.inputs.items()}
        return {i.name: tuple(d if isinstance(d, int) else None for d in i.shape[1:])
                for i in self.session.get_inputs()}

    @functools.cached_property
    def metadata(self) -> dict[str, Any]:
        if self.sidecar is not None:
            return dict(self.sidecar.model)
        return dict(self.session.get_modelmeta().custom_metadata_map)

    def _run(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        try:
            return self.session.run(None, dict(zip(self.input_names, arrays)))
        except Exception as exc:  # onnxruntime's own types; InvalidArgument is the inputs' fault
            inputs = [f"{a.dtype}{list(a.shape)}" for a in arrays]
            if type(exc).__name__ == "InvalidArgument":
                raise InvalidInputError(f"{self.path.name} rejected inputs {inputs}: {exc}") from exc
            raise EngineRuntimeError(f"ONNX Runtime failed running {self.path.name} on inputs {inputs} "
                                     f"({type(exc).__name__}): {exc}") from exc

    def close(self) -> None:
        self._session = None

    def __repr__(self) -> str:
        return f"OnnxRuntimeEngine({self.path.name}, {self.providers[0]})"
