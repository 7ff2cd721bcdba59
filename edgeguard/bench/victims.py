"""Backdoored (victim) models: a dataset + attack + training, cached by config hash.

Every defense is measured on these. ``get_victim(VictimConfig(dataset="signs", attack="wanet"))``
generates the data, poisons it, trains the model (or loads it from the cache) and
evaluates CA/ASR/BA (classification) or angular errors (regression).
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable, Optional

import numpy as np

from edgeguard import cache
from edgeguard.attacks import Attack, BackdoorTestSet, PoisonedSet, get_attack
from edgeguard.data.dataset import ImageDataset, to_float_nchw
from edgeguard.errors import CacheMissError, InvalidArgumentError
from edgeguard.fileio import write_atomically
from edgeguard.runtime.spec import ModelSpec
from edgeguard.train import TrainConfig, fit, predict, spec_of  # noqa: F401  (spec_of: re-exported)

if TYPE_CHECKING:  # torch-side; imported where a victim is protected
    from edgeguard.eigenguard import EigenGuardConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DatasetSpec:
    """How to make a dataset's images and the model trained on them."""

    make_data: Callable[..., ImageDataset]
    model: str
    train: TrainConfig


def _signs(n: int, seed: int, num_classes: int) -> ImageDataset:
    from edgeguard.data import make_signs

    return make_signs(n, seed=seed, num_classes=num_classes)


def _gaze(n: int, seed: int, num_classes: int) -> ImageDataset:
    from edgeguard.data import make_gaze

    return make_gaze(n, seed=seed)


DATASETS: dict[str, DatasetSpec] = {
    # lr 5x BackdoorBench's 0.01 (the CPU victims train a tenth of its schedule) and no
    # random-crop shifts for signs: both so the small models learn a local trigger within
    # about 10 epochs (figures: docs/decisions.md).
    "signs": DatasetSpec(_signs, "preact_resnet18", TrainConfig(crop_padding=0, lr=0.05, precision="auto")),
    "gaze": DatasetSpec(_gaze, "gaze_resnet18", TrainConfig(lr=0.05, precision="auto")),
}


def model_spec(config: "VictimConfig") -> ModelSpec:
    """The ModelSpec of ``config``'s model, from one sample of its dataset (no training)."""
    return spec_of(DATASETS[config.dataset].make_data(1, config.seed, config.num_classes))


@dataclass(frozen=True)
class VictimConfig:
    """One victim model.

    Attributes:
        dataset: "signs" (SynthSigns classification) or "gaze" (SynthGaze regression).
        attack: a registered attack name, or "none" for a clean model.
        attack_options: overrides of the attack's defaults (e.g. {"pattern": "color"}).
        all_to_all: classification: y -> (y + 1) mod K instead of target 0.
        n_train, n_test: generated samples; the test set uses a different seed.
        num_classes: SynthSigns classes (ignored for gaze).
        width: model width multiplier (0.25: the small CPU variant, 16..128 channels; at
            0.125 the 8-channel stem learns a 3x3 patch trigger only sometimes).
        train: training hyper-parameters; None uses the dataset's defaults.
        seed: data seed; the model and attack use it too.
        eigenguard: train with EigenGuard inserted after block ``eigenguard_at`` (None: no
            defense). Both join the cache key only when set.
    """

    # "task" in the cache key: the field's name before 0.2, so cached victims stay valid.
    dataset: str = field(default="signs", metadata={"key_name": "task"})
    attack: str = "none"
    attack_options: dict[str, Any] = field(default_factory=dict)
    all_to_all: bool = False
    n_train: int = 10000
    n_test: int = 2000
    num_classes: int = 43
    width: float = 0.25
    train: Optional[TrainConfig] = None
    seed: int = 0
    eigenguard: Optional[EigenGuardConfig] = field(default=None, metadata={"key": "if_set"})
    eigenguard_at: Optional[str] = field(default=None, metadata={"key": "if_set"})

    def __post_init__(self) -> None:
        if not isinstance(self.attack, str):
            raise InvalidArgumentError(
                f"VictimConfig.attack is a registered name, got {type(self.attack).__name__}: pass attack=NAME and "
                "attack_options={...} (a trigger of your own: attack='trigger', attack_options={'image': ...}), or "
                "poison your data with the Attack object and train with edgeguard.train.train_model")
        if self.dataset not in DATASETS:
            raise InvalidArgumentError(f"unknown dataset {self.dataset!r}; choose one of {sorted(DATASETS)}")
        if self.n_train < 1 or self.n_test < 1:
            raise InvalidArgumentError(f"n_train and n_test must be >= 1, got {self.n_train}, {self.n_test}")
        if not self.width > 0:
            raise InvalidArgumentError(f"width must be > 0 (a multiplier of the model's channels), got {self.width}")
        if self.num_classes < 2:
            raise InvalidArgumentError(f"num_classes must be >= 2, got {self.num_classes}")
        if self.train is None:
            object.__setattr__(self, "train", replace(DATASETS[self.dataset].train, seed=self.seed))
        if self.eigenguard is not None and self.eigenguard_at is None:
            from edgeguard.eigenguard import DEFAULT_AT

            object.__setattr__(self, "eigenguard_at", DEFAULT_AT)

    def clean(self) -> "VictimConfig":
        """The same setting without an attack (e.g. LC's surrogate)."""
        return replace(self, attack="none", attack_options={}, all_to_all=False)

    def make_attack(self) -> Optional[Attack]:
        if self.attack == "none":
            return None
        return get_attack(self.attack, all_to_all=self.all_to_all, seed=self.seed, **self.attack_options)


@dataclass
class Victim:
    """A trained model with what it was evaluated on.

    ``metrics``: {"ca", "asr", "ba"} or {"clean_err_deg", "attack_err_deg", "asr_at_5deg"};
    a clean model is measured against every attack-free test image only.
    """

    config: VictimConfig
    model: Any  # torch.nn.Module, eval mode
    attack: Optional[Attack]
    test: ImageDataset
    backdoor: Optional[BackdoorTestSet]
    metrics: dict[str, float]
    train_seconds: float
    from_cache: bool

    def __str__(self) -> str:
        vals = "  ".join(f"{k}={v:.4f}" for k, v in self.metrics.items())
        return f"{self.config.dataset}/{self.config.attack}{' all-to-all' if self.config.all_to_all else ''}: {vals}"


def make_datasets(config: VictimConfig) -> tuple[ImageDataset, ImageDataset]:
    """(train, test) for a config; deterministic."""
    spec = DATASETS[config.dataset]
    train = spec.make_data(config.n_train, config.seed, config.num_classes)
    test = spec.make_data(config.n_test, config.seed + 100_003, config.num_classes)
    return train, test


def restorer_images(config: VictimConfig, n: int = 20000) -> np.ndarray:
    """Clean frames of the victim's domain, as a user would hold for fine-tuning the MAE
    restorer: the dataset's generator with a seed that no training or test set uses."""
    return DATASETS[config.dataset].make_data(n, config.seed + 4242, config.num_classes).images


def evaluate(model, test: ImageDataset, backdoor: Optional[BackdoorTestSet]) -> dict[str, float]:
    """Standard metrics of ``model`` on the clean and triggered test sets (the test set's
    output kind says which)."""
    clean = predict(model, test.images)
    if backdoor is None:
        return test.output.metrics(clean, test.labels)
    return test.output.metrics(clean, test.labels, predict(model, backdoor.images), backdoor.labels,
                               backdoor.targets)


def poisoned_training_set(config: VictimConfig, attack: Optional[Attack], train: ImageDataset,
                          progress: bool = True, use_cache: bool = True) -> tuple[PoisonedSet, Any]:
    """The training set as ``attack`` (fitted on ``train``) leaves it, and its batch hook
    (None unless the attack controls training). LC's surrogate is the clean victim."""
    if attack is None:
        return PoisonedSet(train, np.zeros(0, dtype=np.int64)), None
    surrogate = get_victim(config.clean(), progress, use_cache).model if attack.name == "lc" else None
    poisoned = attack.poison(train, surrogate=surrogate)
    return poisoned, attack.training_hook(poisoned.data, progress=progress)


_VICTIM_FILES = ("model.safetensors", "victim.json")


def victim_key(config: VictimConfig) -> str:
    """The cache key of the victim ``config`` describes. The attack's full parameters join
    it, so a changed attack default retrains."""
    return cache.config_key(config, config.make_attack())


def get_victim(config: VictimConfig, progress: bool = True, use_cache: bool = True,
               allow_training: bool = True, use_shipped: bool = True) -> Victim:
    """Train (or load from the cache, or from the weights shipped with the package,
    ``edgeguard.bench.shipped``) the victim model described by ``config``; with
    ``allow_training=False`` a model found in neither is a ``CacheMissError`` instead."""
    import torch
    from safetensors.numpy import load_file, save_file

    from edgeguard.bench import shipped as shipped_weights
    from edgeguard.models import create_model

    spec = DATASETS[config.dataset]
    attack = config.make_attack()
    key = victim_key(config)
    folder = cache.entry_dir("victims", key)
    train, test = make_datasets(config)

    def make_model():
        torch.manual_seed(config.seed)
        model = create_model(spec.model, num_outputs=train.num_classes, width=config.width)
        # The contract travels with the module (as timm's pretrained_cfg): export_model and
        # TorchEngine read it.
        model.spec = spec_of(train)
        if config.eigenguard is not None:
            from edgeguard.eigenguard import protect

            protect(model, config.eigenguard_at, config.eigenguard, input_shape=to_float_nchw(train.images[:1]).shape[1:])
        return model

    model = make_model()
    if attack is not None:
        attack.fit(train)
    if use_cache and cache.intact(folder, _VICTIM_FILES, ("attack.safetensors",)):
        try:
            model.load_state_dict({k: torch.from_numpy(v) for k, v in load_file(folder / "model.safetensors").items()})
            if attack is not None and (folder / "attack.safetensors").exists():
                attack.load_state_dict(load_file(folder / "attack.safetensors"))
            info = json.loads((folder / "victim.json").read_text())
            metrics, seconds = info["metrics"], info["train_seconds"]
        except Exception as exc:  # safetensors, torch and json each raise their own types
            cache.discard(folder, f"cannot load it: {exc}")
            model, attack = make_model(), config.make_attack()  # nothing half-loaded trains on
            if attack is not None:
                attack.fit(train)
        else:
            model.eval()
            backdoor = attack.backdoor_test(test) if attack is not None else None
            return Victim(config, model, attack, test, backdoor, metrics, seconds, True)

    record = shipped_weights.find("victims", key) if use_shipped else None
    if record is not None:
        model.load_state_dict({k: torch.from_numpy(v) for k, v in shipped_weights.read(record, "model").items()})
        if attack is not None and "attack" in record["files"]:
            attack.load_state_dict(shipped_weights.read(record, "attack"))
        model.eval()
        log.info("using the %s shipped with edgeguard", record["holds"])
        backdoor = attack.backdoor_test(test) if attack is not None else None
        return Victim(config, model, attack, test, backdoor, record["metrics"], record["train_seconds"], True)
    if not allow_training:
        raise CacheMissError(f"no cached victim for {config.dataset}/{config.attack} (key {key}) in {folder.parent}: "
                             "train it with get_victim(config) or `edgeguard attack`")
    log.info("training victim %s (cache key %s)", config, key)
    if use_cache:
        cache.entry_dir("victims", key, create=True)
    poisoned, hook = poisoned_training_set(config, attack, train, progress, use_cache)
    data = poisoned.data
    # --no-cache trains from scratch: it neither resumes nor leaves a checkpoint behind.
    resumable = use_cache and (hook is None or hasattr(hook, "state_dict"))
    history = fit(model, data, config.train, hook=hook, checkpoint=folder / "checkpoint.pt" if resumable else None,
                  progress=progress)
    backdoor = attack.backdoor_test(test) if attack is not None else None
    metrics = evaluate(model, test, backdoor)
    if use_cache:
        weights = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
        write_atomically(folder / "model.safetensors", lambda tmp: save_file(weights, str(tmp)))
        names = list(_VICTIM_FILES)
        if attack is not None and attack.state_dict():
            write_atomically(folder / "attack.safetensors", lambda tmp: save_file(attack.state_dict(), str(tmp)))
            names.append("attack.safetensors")
        info = {"config": json.loads(json.dumps(asdict(config), default=str)), "metrics": metrics,
                "train_seconds": history.seconds, "loss": history.loss}
        write_atomically(folder / "victim.json", lambda tmp: tmp.write_text(json.dumps(info, indent=2)))
        cache.seal(folder, names)
        (folder / "checkpoint.pt").unlink(missing_ok=True)
    return Victim(config, model, attack, test, backdoor, metrics, history.seconds, False)
