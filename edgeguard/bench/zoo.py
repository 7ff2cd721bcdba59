"""Model zoos as data: the JSON files in benchmarks/zoos/ and the victims a scan trains from them.

A zoo file (every key but ``models`` is optional; an unknown key is an error)::

    {
      "dataset": "gaze",         # "gaze" (SynthGaze regression) or "signs" (SynthSigns classes);
                                 # "task" is accepted as its older name
      "n_train": 4000,           # training samples per model (its test set: n_test)
      "n_test": 600,
      "epochs": 10,              # training epochs per model
      "width": 0.25,             # model width multiplier (VictimConfig.width; 0.125: 2.5x cheaper)
      "scan_images": 300,        # held-out clean frames each scan (and repair) gets
      "min_learned": 0.8,        # a backdoored model counts only at this ASR on held-out
                                 # triggered frames (gaze: ASR@5deg, default 0.8; signs: ASR, 0.9)
      "retry_epochs": 20,        # not learned: retrain once at this many epochs, then once more
                                 # with another seed (default 2 x epochs); still not: "dropped"
      "models": [
        {"attack": "none", "seed": 1000},
        {"attack": "badnets", "seed": 2000, "target": [-0.12, 0.31], "poison_rate": 0.2,
         "options": {"size": 6}},
        ...
      ]
    }

Per model: ``attack`` ("none" or a registered attack), ``seed`` (data, initialisation and
trigger), and for an attack ``target`` ([pitch, yaw] in radians for gaze, a class id for
signs), optionally ``poison_rate`` (the attack's default otherwise), ``options`` (the attack's
own settings, e.g. a WaNet ``s``), ``epochs`` (this model's training) and ``name`` (default:
attack-k, the k-th model of that attack). Seeds must be distinct.

    zoo = load_zoo("benchmarks/zoos/gaze_quick.json")
    members, dropped = train_zoo(zoo)         # learned backdoors and benign models; the rest
"""
from __future__ import annotations

import dataclasses
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from edgeguard.errors import InvalidArgumentError

DATASET_DEFAULTS = {"gaze": {"min_learned": 0.8, "learned_metric": "asr_at_5deg"},
                 "signs": {"min_learned": 0.9, "learned_metric": "asr"}}
_TOP_KEYS = {"dataset", "task", "n_train", "n_test", "epochs", "width", "scan_images", "min_learned", "retry_epochs",
             "models", "description"}
_MODEL_KEYS = {"name", "attack", "seed", "target", "poison_rate", "options", "epochs"}
RESEED = 500_000  # the retry's other seed: seed + RESEED (no committed zoo's seed is that large)


class ZooError(InvalidArgumentError):
    """A zoo file that does not follow the schema; the message names the entry and field."""


@dataclass(frozen=True)
class ZooModel:
    """One model of a zoo (see the module docstring for the fields)."""

    name: str
    attack: str
    seed: int
    index: int  # k-th model of its attack, from 0
    target: Any = None
    poison_rate: Optional[float] = None
    options: dict = field(default_factory=dict)
    epochs: Optional[int] = None

    @property
    def benign(self) -> bool:
        return self.attack == "none"


@dataclass(frozen=True)
class Zoo:
    """A parsed, validated zoo file."""

    dataset: str
    models: tuple[ZooModel, ...]
    n_train: int = 4000
    n_test: int = 600
    epochs: int = 10
    width: float = 0.25
    scan_images: int = 300
    min_learned: float = 0.8
    retry_epochs: int = 20
    source: str = ""

    @property
    def attacks(self) -> list[str]:
        return list(dict.fromkeys(m.attack for m in self.models if not m.benign))

    def subset(self, names: "list[str]") -> "Zoo":
        """The zoo with only the models called ``names`` (in the zoo's order)."""
        unknown = sorted(set(names) - {m.name for m in self.models})
        if unknown:
            raise ZooError(f"{self.source}: no model(s) {unknown}; the zoo has {[m.name for m in self.models]}")
        return dataclasses.replace(self, models=tuple(m for m in self.models if m.name in names))

    def victim_config(self, model: ZooModel, epochs: Optional[int] = None, seed: Optional[int] = None):
        """The VictimConfig of ``model`` (at ``epochs`` and ``seed`` if given: a retry)."""
        from edgeguard.bench.victims import DATASETS, VictimConfig

        seed = model.seed if seed is None else seed
        epochs = epochs or model.epochs or self.epochs
        options = dict(model.options)
        if not model.benign:
            options["target"] = tuple(model.target) if isinstance(model.target, list) else model.target
            if model.poison_rate is not None:
                options["poison_rate"] = model.poison_rate
        return VictimConfig(dataset=self.dataset, attack=model.attack, attack_options=options, n_train=self.n_train,
                            n_test=self.n_test, width=self.width, seed=seed,
                            train=dataclasses.replace(DATASETS[self.dataset].train, epochs=epochs, seed=seed))

    def to_dict(self) -> dict:
        """The zoo as a file would hold it (``load_zoo(save(to_dict()))`` gives an equal Zoo)."""
        models = []
        for m in self.models:
            entry = {"name": m.name, "attack": m.attack, "seed": m.seed}
            for key in ("target", "poison_rate", "epochs"):
                if getattr(m, key) is not None:
                    entry[key] = getattr(m, key)
            if m.options:
                entry["options"] = dict(m.options)
            models.append(entry)
        return {"dataset": self.dataset, "n_train": self.n_train, "n_test": self.n_test, "epochs": self.epochs,
                "width": self.width, "scan_images": self.scan_images, "min_learned": self.min_learned,
                "retry_epochs": self.retry_epochs, "models": models}


def _width(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 4:
        raise ZooError(f"{where} must be a width multiplier in (0, 4], got {value!r}")
    return float(value)


def _int(value, where: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ZooError(f"{where} must be an integer >= {low}, got {value!r}")
    return value


def _fraction(value, where: str, low_open: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not (0 < value <= 1 if low_open else 0 <= value <= 1):
        raise ZooError(f"{where} must be a number in (0, 1], got {value!r}")
    return float(value)


def _target(value, dataset: str, where: str):
    from edgeguard.bench.victims import VictimConfig

    if dataset == "gaze":
        if not (isinstance(value, list) and len(value) == 2 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and abs(v) <= 1.6
                for v in value)):
            raise ZooError(f"{where}.target must be [pitch, yaw] in radians (|value| <= 1.6), got {value!r}")
        return [float(v) for v in value]
    classes = VictimConfig(dataset="signs").num_classes
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < classes:
        raise ZooError(f"{where}.target must be a class id in [0, {classes}), got {value!r}")
    return value


def parse_zoo(data: Any, source: str = "<zoo>") -> Zoo:
    """Validate a zoo's JSON value and return it as a Zoo; ZooError names what is wrong."""
    from edgeguard.attacks import get_attack

    if not isinstance(data, dict):
        raise ZooError(f"{source}: a zoo is a JSON object with a 'models' list, got {type(data).__name__}")
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise ZooError(f"{source}: unknown key(s) {unknown}; allowed: {sorted(_TOP_KEYS)}")
    if "dataset" in data and "task" in data:
        raise ZooError(f"{source}: give 'dataset' only ('task' is its older name), not both")
    dataset = data.get("dataset", data.get("task", "gaze"))
    if dataset not in DATASET_DEFAULTS:
        raise ZooError(f"{source}: dataset must be one of {sorted(DATASET_DEFAULTS)}, got {dataset!r}")
    epochs = _int(data.get("epochs", 10), f"{source}: epochs")
    top = {"n_train": _int(data.get("n_train", 4000), f"{source}: n_train", 10),
           "n_test": _int(data.get("n_test", 600), f"{source}: n_test", 10),
           "epochs": epochs,
           "width": _width(data.get("width", 0.25), f"{source}: width"),
           "scan_images": _int(data.get("scan_images", 300), f"{source}: scan_images", 2),
           "min_learned": _fraction(data.get("min_learned", DATASET_DEFAULTS[dataset]["min_learned"]),
                                    f"{source}: min_learned"),
           "retry_epochs": _int(data.get("retry_epochs", 2 * epochs), f"{source}: retry_epochs")}
    entries = data.get("models")
    if not isinstance(entries, list) or not entries:
        raise ZooError(f"{source}: 'models' must be a non-empty list")
    models, counts, names, seeds = [], {}, set(), {}
    for i, entry in enumerate(entries):
        where = f"{source}: models[{i}]"
        if not isinstance(entry, dict):
            raise ZooError(f"{where} must be an object, got {entry!r}")
        unknown = sorted(set(entry) - _MODEL_KEYS)
        if unknown:
            raise ZooError(f"{where}: unknown field(s) {unknown}; allowed: {sorted(_MODEL_KEYS)}")
        for key in ("attack", "seed"):
            if key not in entry:
                raise ZooError(f"{where}: missing field {key!r}")
        attack = entry["attack"]
        if not isinstance(attack, str):
            raise ZooError(f"{where}.attack must be a string, got {attack!r}")
        seed = _int(entry["seed"], f"{where}.seed", 0)
        if seed in seeds:
            raise ZooError(f"{where}.seed {seed} is also models[{seeds[seed]}]'s; every model needs its own")
        seeds[seed] = i
        options = entry.get("options", {})
        if not isinstance(options, dict):
            raise ZooError(f"{where}.options must be an object of the attack's settings, got {options!r}")
        target, poison_rate = None, None
        if attack == "none":
            stray = sorted({"target", "poison_rate", "options"} & set(entry))
            if stray:
                raise ZooError(f"{where}: a benign model (attack 'none') takes no {stray}")
        else:
            if "target" not in entry:
                raise ZooError(f"{where}: missing field 'target' (an attacked model needs its own target)")
            target = _target(entry["target"], dataset, where)
            if "poison_rate" in entry:
                poison_rate = _fraction(entry["poison_rate"], f"{where}.poison_rate")
            reserved = sorted({"target", "poison_rate", "seed", "all_to_all"} & set(options))
            if reserved:
                raise ZooError(f"{where}.options: {reserved} are model fields, not attack options")
            try:
                get_attack(attack, **options)
            except (TypeError, ValueError, InvalidArgumentError) as err:
                raise ZooError(f"{where}: attack {attack!r} with options {options}: {err}") from None
        index = counts.get(attack, 0)
        counts[attack] = index + 1
        name = entry.get("name", f"{attack if attack != 'none' else 'benign'}-{index}")
        if not isinstance(name, str) or not name or name in names:
            raise ZooError(f"{where}.name must be a unique non-empty string, got {name!r}")
        names.add(name)
        model_epochs = _int(entry["epochs"], f"{where}.epochs") if "epochs" in entry else None
        models.append(ZooModel(name=name, attack=attack, seed=seed, index=index, target=target,
                               poison_rate=poison_rate, options=dict(options), epochs=model_epochs))
    if not any(m.benign for m in models):
        raise ZooError(f"{source}: a zoo needs benign models (attack 'none'): thresholds are calibrated on them")
    return Zoo(dataset=dataset, models=tuple(models), source=source, **top)


def load_zoo(path) -> Zoo:
    """Read and validate a zoo file (schema in the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise ZooError(f"zoo file {path} does not exist")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ZooError(f"{path} is not valid JSON: {err}") from None
    return parse_zoo(data, str(path))


def learned_score(zoo: Zoo, metrics: dict) -> float:
    """The attack's success on held-out triggered frames (gaze ASR@5deg, signs ASR)."""
    return float(metrics[DATASET_DEFAULTS[zoo.dataset]["learned_metric"]])


def train_zoo(zoo: Zoo, progress: bool = False, get_victim=None) -> tuple[list, list[dict]]:
    """Train (or load from the cache) every model of ``zoo`` under the learned-only rule.

    A benign model is kept as trained. A backdoored one is kept once its ASR on held-out
    triggered frames reaches ``zoo.min_learned``: first as given, else retrained at
    ``zoo.retry_epochs``, else at ``retry_epochs`` with seed + RESEED; after that it is
    dropped. Returns ([(ZooModel, Victim)], dropped), ``dropped`` one record per model that
    never learned, with the ASR of each try."""
    if get_victim is None:
        from edgeguard.bench.victims import get_victim

    members, dropped = [], []
    for model in zoo.models:
        if model.benign:
            members.append((model, get_victim(zoo.victim_config(model), progress=progress)))
            continue
        first = model.epochs or zoo.epochs
        tries = [(first, model.seed), (max(zoo.retry_epochs, first), model.seed),
                 (max(zoo.retry_epochs, first), model.seed + RESEED)]
        seen = []
        for epochs, seed in dict.fromkeys(tries):
            victim = get_victim(zoo.victim_config(model, epochs, seed), progress=progress)
            score = learned_score(zoo, victim.metrics)
            seen.append({"epochs": epochs, "seed": seed, "learned": round(score, 4)})
            print(f"zoo {model.name}: {epochs} epochs, seed {seed}: learned {score:.3f}", file=sys.stderr, flush=True)
            if score >= zoo.min_learned:
                members.append((model, victim))
                break
        else:
            dropped.append({"name": model.name, "attack": model.attack, "seed": model.seed, "tries": seen})
    return members, dropped
