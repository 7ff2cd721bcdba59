"""On-disk cache of trained artefacts, keyed by a hash of the config that made them.

The root is ``$EDGEGUARD_CACHE`` or ``~/.cache/edgeguard``. Weights are stored as
safetensors, so loading a cached model never runs code.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np


def cache_root() -> Path:
    """The cache folder (created on demand)."""
    root = Path(os.environ.get("EDGEGUARD_CACHE", Path.home() / ".cache" / "edgeguard"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def _jsonable(obj: Any) -> Any:
    """JSON-ready form of a config. Dataclass fields declared with
    ``field(metadata={"key": "if_set"})`` join the key only when not None, so adding such
    an option keeps every existing cache entry valid; ``field(metadata={"key_name": OLD})``
    keys a renamed field by its old name, for the same reason."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        items = {f.metadata.get("key_name", f.name): getattr(obj, f.name) for f in dataclasses.fields(obj)
                 if not (f.metadata.get("key") == "if_set" and getattr(obj, f.name) is None)}
        return {"__type__": type(obj).__name__,
                **{k: _jsonable(dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v) for k, v in items.items()}}
    if isinstance(obj, np.ndarray):  # by content: str() of a large array elides the middle
        return {"__ndarray__": hashlib.sha256(np.ascontiguousarray(obj).tobytes()).hexdigest(),
                "shape": list(obj.shape), "dtype": str(obj.dtype)}
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def config_key(*configs: Any, version: str = "1") -> str:
    """A short stable hash of dataclass configs (and plain values); ``version`` is bumped
    when the code that turns a config into an artefact changes meaningfully."""
    text = json.dumps([version, *[_jsonable(c) for c in configs]], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def entry_dir(kind: str, key: str) -> Path:
    """Folder for one cached artefact, e.g. ``entry_dir("victims", key)``."""
    path = cache_root() / kind / key
    path.mkdir(parents=True, exist_ok=True)
    return path
