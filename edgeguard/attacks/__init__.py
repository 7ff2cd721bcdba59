"""Backdoor attacks: one registry for classification and regression.

>>> attack = get_attack("wanet", k=4, s=0.5)   # doctest: +SKIP
>>> attack.fit(train); poisoned = attack.poison(train)   # doctest: +SKIP

Names: badnets, blended, blended_patch, sig, lc, wanet, iab, spread (adaptive against
spectral defenses), and trigger (``TriggerImage``: your own trigger image and where it goes). ``all_to_all=True`` maps
y -> (y + 1) mod K; for regression the target is a vector (default gaze (0.2, -0.4) rad).
"""
from __future__ import annotations

import dataclasses
from typing import Any

from edgeguard.attacks.badnets import BadNets
from edgeguard.attacks.base import DEFAULT_GAZE_TARGET, Attack, BackdoorTestSet, PoisonedSet
from edgeguard.attacks.blended import Blended, BlendedPatch
from edgeguard.attacks.custom import TriggerImage
from edgeguard.attacks.input_aware import InputAware
from edgeguard.attacks.lc import LabelConsistent
from edgeguard.attacks.sig import SIG
from edgeguard.attacks.spread import SpreadPatch
from edgeguard.attacks.wanet import WaNet
from edgeguard.errors import InvalidArgumentError

ATTACKS: dict[str, type[Attack]] = {cls.name: cls for cls in (BadNets, Blended, BlendedPatch, SIG, LabelConsistent, WaNet, InputAware,
                                                               SpreadPatch, TriggerImage)}


def list_attacks() -> list[str]:
    """Registered attack names."""
    return list(ATTACKS)


def get_attack(name: str, **overrides: Any) -> Attack:
    """The attack ``name`` with its published defaults, fields overridden by keyword."""
    if name not in ATTACKS:
        raise InvalidArgumentError(f"unknown attack {name!r}; choose one of {list_attacks()}")
    cls = ATTACKS[name]
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = set(overrides) - fields
    if unknown:
        raise InvalidArgumentError(f"attack {name!r} has no option(s) {sorted(unknown)}; options: {sorted(fields)}")
    return cls(**overrides)


__all__ = ["ATTACKS", "Attack", "BackdoorTestSet", "DEFAULT_GAZE_TARGET", "PoisonedSet", "get_attack", "list_attacks",
           "BadNets", "Blended", "BlendedPatch", "SIG", "LabelConsistent", "WaNet", "InputAware", "SpreadPatch",
           "TriggerImage"]
