"""Typed errors. Every failure edgeguard reports on purpose is one of these.

Each message names what was wrong and how to fix it; catching ``EdgeGuardError``
catches them all.
"""
from __future__ import annotations


class EdgeGuardError(Exception):
    """Base class of every error edgeguard raises on purpose."""


class InvalidArgumentError(EdgeGuardError, ValueError):
    """A parameter is out of range, of the wrong kind, or unknown (e.g. an attack name)."""


class InvalidInputError(EdgeGuardError, ValueError):
    """An image or batch has the wrong shape, dtype or value range, or holds NaN/inf."""


class DataFormatError(EdgeGuardError, ValueError):
    """A dataset file or folder on disk is missing, corrupt or not in the expected layout."""


class ModelFormatError(EdgeGuardError, ValueError):
    """A checkpoint, ONNX model or engine is corrupt or does not match what was asked for."""


class EngineRuntimeError(EdgeGuardError, RuntimeError):
    """An engine failed on inputs it accepted (a provider or device failure, out of memory):
    not the caller's inputs; the message carries the runtime's own."""


class CacheMissError(EdgeGuardError, LookupError):
    """A model asked for with training switched off is not in the cache; the message says
    which command or call trains it."""


class MissingDependencyError(EdgeGuardError, ImportError):
    """An optional package is needed for this feature; the message says what to install."""


def require(module: str, feature: str, extra: str | None = None):
    """Import an optional module or raise ``MissingDependencyError`` naming the fix.

    >>> np = require("numpy", "arrays")
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        hint = f"pip install 'edgeguard[{extra}]'" if extra else f"pip install {module.split('.')[0]}"
        raise MissingDependencyError(f"{feature} needs the '{module}' package: {hint}") from exc
