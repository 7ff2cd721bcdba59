"""Writing files so that a crash or a second writer never leaves a half-written one."""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Callable, TypeVar

from edgeguard.errors import InvalidArgumentError

T = TypeVar("T")


def check_writable(path: "str | Path", option: str, folder: bool = False) -> Path:
    """Refuse, before any work, an output that cannot be written: ``path`` (a file, or with
    ``folder`` a folder) must be one where it is, or be creatable under its nearest existing
    folder, which must be writable. ``option`` names it in the message (e.g. ``--out``).
    Creates nothing; returns the resolved path."""
    path = Path(path).resolve()
    if path.exists() and path.is_dir() != folder:
        raise InvalidArgumentError(f"{option} {path} is {'a file' if folder else 'a folder'}; "
                                   f"give {'a folder' if folder else 'a file name'}")
    existing = path if folder and path.exists() else path.parent  # the folder written in
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise InvalidArgumentError(f"{option} {path}: {existing} is a file, so nothing can be written under it")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InvalidArgumentError(f"{option} {path}: no permission to write in {existing}")
    return path


def write_atomically(path: "str | Path", write: Callable[[Path], T]) -> T:
    """``write(temporary_path)``, then rename it to ``path`` (same folder, unique temporary name);
    returns what ``write`` returned. If ``write`` raises, ``path`` is untouched."""
    path = Path(path)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        result = write(Path(temporary))
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600; a plain open() would not
        os.replace(temporary, path)
        return result
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_sha256(path: "str | Path") -> str:
    """SHA-256 of a file's bytes (hex), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
