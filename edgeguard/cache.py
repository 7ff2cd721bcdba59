"""On-disk cache of trained artefacts, keyed by a hash of the config that made them.

The root is ``$EDGEGUARD_CACHE`` or ``~/.cache/edgeguard``: one folder per kind (victims,
restorers, ...) and one per entry. Weights are stored as safetensors, so loading a cached
model never runs code. An entry is complete when its manifest (``entry.json``: the
checksum of every file, written last) is there and every checksum matches; a damaged entry
(a truncated, missing or swapped file) is reported with its path and removed, so the next
use rebuilds it. ``edgeguard cache list|verify|clear`` shows, checks and empties the cache.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from edgeguard.errors import InvalidArgumentError
from edgeguard.fileio import file_sha256, write_atomically

log = logging.getLogger(__name__)

MANIFEST = "entry.json"


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


def entry_dir(kind: str, key: str, create: bool = False) -> Path:
    """Folder for one cached artefact, e.g. ``entry_dir("victims", key)``; made with
    ``create`` (when something is about to be written), so a lookup leaves no empty folder."""
    path = cache_root() / kind / key
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def seal(folder: Path, names: "list[str] | tuple[str, ...]") -> None:
    """Record the checksums of ``names`` (files in ``folder``, all written) as the entry's
    manifest; from then on the entry counts as complete."""
    files = {name: file_sha256(folder / name) for name in names}
    write_atomically(folder / MANIFEST, lambda tmp: tmp.write_text(json.dumps({"files": files}, indent=2)))


def problems(folder: Path) -> list[str]:
    """What is wrong with the sealed entry in ``folder`` (empty: intact)."""
    try:
        files = json.loads((folder / MANIFEST).read_text())["files"]
        if not isinstance(files, dict):
            raise TypeError("files is not a mapping")
    except FileNotFoundError:
        return [f"{folder / MANIFEST}: missing (the entry was never completed)"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return [f"{folder / MANIFEST}: unreadable ({exc})"]
    found = []
    for name, digest in files.items():
        path = folder / name
        if not path.is_file():
            found.append(f"{path}: missing")
        elif file_sha256(path) != digest:
            found.append(f"{path}: checksum differs from the manifest (truncated or replaced)")
    return found


def intact(folder: Path, required: "tuple[str, ...]", optional: "tuple[str, ...]" = ()) -> bool:
    """Whether ``folder`` holds a complete, undamaged entry. A damaged sealed entry is logged
    (naming the files) and removed, so it is rebuilt; an unsealed one holding all of
    ``required`` (written before entries had manifests) is sealed as it is, its files
    being checked when they load (``discard`` them if they do not)."""
    if (folder / MANIFEST).exists():
        found = problems(folder)
        if not found:
            return True
        discard(folder, "; ".join(found))
        return False
    if all((folder / name).is_file() for name in required):
        seal(folder, [n for n in (*required, *optional) if (folder / n).is_file()])
        return True
    return False


def discard(folder: Path, reason: str) -> None:
    """Remove a damaged entry (logged with ``reason``); a training checkpoint in it stays."""
    log.warning("cache entry %s is damaged (%s); removing it, it will be rebuilt", folder, reason)
    for path in folder.iterdir():
        if path.is_file() and not path.name.startswith("checkpoint"):
            path.unlink()


def entries() -> list[dict[str, Any]]:
    """One record per cache entry: kind, key, path, bytes, status (intact, damaged: ...,
    interrupted, unsealed, empty) and what it holds (from its description file, when it has one)."""
    rows = []
    root = cache_root()
    for kind_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for folder in sorted(p for p in kind_dir.iterdir() if p.is_dir()):
            size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
            if (folder / MANIFEST).exists():
                found = problems(folder)
                status = "intact" if not found else "damaged: " + "; ".join(found)
            elif any(folder.glob("checkpoint*")):
                status = "interrupted (training resumes from its checkpoint)"
            elif any(f.is_file() for f in folder.iterdir()):
                status = "unsealed (written before checksums; checked and sealed when next loaded)"
            else:
                status = "empty"
            rows.append({"kind": kind_dir.name, "key": folder.name, "path": str(folder), "bytes": size,
                         "status": status, "holds": _describe(folder)})
    return rows


def _describe(folder: Path) -> str:
    try:
        config = json.loads((folder / "victim.json").read_text())["config"]
        return f"{config.get('dataset', config.get('task'))} {config.get('attack')}"
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return ""


def clear(kind: "str | None" = None) -> int:
    """Delete every entry (of ``kind`` only, when given); returns the bytes freed."""
    root = cache_root()
    kinds = [p for p in root.iterdir() if p.is_dir()]
    if kind is not None and kind not in [p.name for p in kinds]:  # never a path: "../x" deletes nothing
        raise InvalidArgumentError(f"no kind {kind!r} in the cache {root}; it holds {sorted(p.name for p in kinds)}")
    targets = [root / kind] if kind is not None else kinds
    freed = 0
    for target in targets:
        if target.is_dir():
            freed += sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
            shutil.rmtree(target)
    return freed
