"""edgeguard: backdoor defenses for image models on edge devices.

``import edgeguard`` never imports torch: the torch-side APIs (training, attacks with
learned triggers, export) load lazily when first used.
"""
from __future__ import annotations

from edgeguard import errors
from edgeguard.errors import EdgeGuardError
from edgeguard.purify import Purifier, PurifierConfig, PurifyResult
from edgeguard.runtime import load_engine
from edgeguard.version import __version__

__all__ = ["EdgeGuardError", "Purifier", "PurifierConfig", "PurifyResult", "errors", "load_engine", "__version__"]
