"""The Engine interface every backend implements: numpy arrays in, numpy arrays out."""
from __future__ import annotations

import functools
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from edgeguard.errors import InvalidInputError, ModelFormatError
from edgeguard.runtime.spec import ModelSpec


class Engine:
    """A model behind named inputs and outputs: ``engine.infer({name: array}) -> {name: array}``,
    and ``engine(*arrays) -> first output`` as sugar, arrays in input order.

    Subclasses implement ``input_names``, ``output_names``, ``_run(arrays) -> list of
    outputs`` and, where the backend knows them, ``input_shapes``, ``metadata`` and
    ``close``. ``calls`` counts invocations and ``samples`` the batch rows seen, for
    reporting. An engine is a context manager: leaving the block frees its session or
    device buffers (``close``); a later call creates them again.
    """

    backend = "base"

    def __init__(self) -> None:
        self.calls = 0
        self.samples = 0

    @property
    def input_names(self) -> tuple[str, ...]:
        raise NotImplementedError

    @property
    def output_names(self) -> tuple[str, ...]:
        """Names of the outputs, in the order ``_run`` returns them."""
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

    @functools.cached_property
    def spec(self) -> Optional[ModelSpec]:
        """What the model or restorer says about itself (``edgeguard.runtime.spec.ModelSpec``),
        read from its metadata once (the purifier asks every frame); None for a file exported
        without one."""
        return ModelSpec.from_metadata(self.metadata)

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

    def _checked_run(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        arrays = [np.ascontiguousarray(a, dtype=np.float32) for a in arrays]
        self.calls += 1
        self.samples += len(arrays[0])
        return self._run(arrays)

    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every output by name, for inputs given by name (float32, batch axis first)."""
        names = self.input_names
        missing, unknown = [n for n in names if n not in feeds], sorted(set(feeds) - set(names))
        if missing or unknown:
            raise InvalidInputError(f"{self} takes inputs {list(names)}; missing {missing}, unknown {unknown}")
        return dict(zip(self.output_names, self._checked_run([feeds[n] for n in names])))

    def __call__(self, *arrays: np.ndarray) -> np.ndarray:
        names = self.input_names
        if len(arrays) != len(names):
            raise InvalidInputError(f"{self} takes {len(names)} input(s) {list(names)}, got {len(arrays)}")
        return self._checked_run(arrays)[0]

    def close(self) -> None:
        """Free what the backend holds (session, execution contexts, device buffers); the
        next call creates them again. Nothing to free by default."""

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.backend})"
