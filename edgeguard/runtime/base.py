"""The Engine interface every backend implements: numpy arrays in, numpy arrays out."""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from edgeguard.errors import InvalidInputError, ModelFormatError


class Engine:
    """A callable model: ``engine(*arrays) -> first output`` with arrays in input order.

    Subclasses implement ``input_names``, ``_run(arrays) -> list of outputs`` and, where
    the backend knows them, ``input_shapes`` and ``metadata``. ``calls`` counts
    invocations and ``samples`` the batch rows seen, for reporting.
    """

    backend = "base"

    def __init__(self) -> None:
        self.calls = 0
        self.samples = 0

    @property
    def input_names(self) -> tuple[str, ...]:
        raise NotImplementedError

    @property
    def input_shapes(self) -> dict[str, tuple[Optional[int], ...]]:
        """Per-sample shape of each input (batch axis left out; None where dynamic);
        empty when the backend cannot tell (a torch module)."""
        return {}

    @property
    def metadata(self) -> dict[str, Any]:
        """Facts the model carries about itself, e.g. an MAE's ``mae_img_size``/``mae_patch_size``
        or a model's ``task``."""
        return {}

    def check_input_shape(self, shape: Sequence[int]) -> None:
        """Raise ModelFormatError unless the first input takes per-sample ``shape``."""
        name = self.input_names[0]
        have = self.input_shapes.get(name)
        if have is None:
            return
        want = tuple(int(d) for d in shape)
        if len(have) != len(want) or any(h is not None and h != w for h, w in zip(have, want)):
            raise ModelFormatError(
                f"{self!r} takes {name!r} of per-sample shape {tuple(have)}, but this pipeline feeds {want}: "
                "rebuild the engine for this input size (export/build_engine.py)")

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
