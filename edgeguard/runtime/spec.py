"""ModelSpec: what a deployed model or restorer says about itself, from export to runtime.

``edgeguard.deploy.export_model`` and ``export_restorer`` write it into the ONNX file's
metadata (one key, ``edgeguard.spec``, JSON); built engines carry it on in their sidecar with
the rest of the metadata; every backend reads it back as ``engine.spec``. A torch module
reports the spec it carries as ``module.spec`` (edgeguard's victims do; an MAE restorer's is
derived from its config), as timm's models carry their ``pretrained_cfg``.

    >>> spec = ModelSpec(role="model", input_shape=(3, 32, 32), output="classification", outputs=43)
    >>> ModelSpec.from_metadata(spec.to_metadata()) == spec
    True
    >>> ModelSpec.from_metadata({"producer": "someone else"}) is None
    True
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Optional

from edgeguard.errors import InvalidArgumentError, ModelFormatError
from edgeguard.outputs import OutputKind

METADATA_KEY = "edgeguard.spec"
ROLES = ("model", "restorer")


@dataclass(frozen=True)
class ModelSpec:
    """A deployed network's contract.

    Attributes:
        role: "model" (the network being protected) or "restorer" (BDMAE's masked autoencoder).
        input_shape: per-sample shape of the (first) input, (C, H, W); frames are float32,
            NCHW, values in [0, 1].
        output: models: their ``OutputKind``, "classification" (one score per class) or
            "regression" (e.g. gaze pitch and yaw in radians).
        outputs: models: the number of classes or of regression outputs.
        token_grid, patch_size: restorers: the MAE's G x G tokens of P x P pixels (its own input
            is G * P square; frames of another size are resized to it).
    """

    role: str
    input_shape: tuple[int, ...]
    output: Optional[OutputKind] = None
    outputs: Optional[int] = None
    token_grid: Optional[int] = None
    patch_size: Optional[int] = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_shape", tuple(self.input_shape))
        if self.role not in ROLES:
            raise InvalidArgumentError(f"role must be one of {ROLES}, got {self.role!r}")
        if len(self.input_shape) != 3 or not all(isinstance(d, int) and d > 0 for d in self.input_shape):
            raise InvalidArgumentError(f"input_shape must be three positive ints (C, H, W), got {self.input_shape}")
        if self.role == "model":
            object.__setattr__(self, "output", OutputKind.of(self.output))
            if self.outputs is not None and not (isinstance(self.outputs, int) and self.outputs > 0):
                raise InvalidArgumentError(f"outputs must be a positive int, got {self.outputs!r}")
        else:
            for name in ("token_grid", "patch_size"):
                value = getattr(self, name)
                if not (isinstance(value, int) and value > 0):
                    raise InvalidArgumentError(f"a restorer's {name} must be a positive int, got {value!r}")

    @property
    def mae_img_size(self) -> Optional[int]:
        """A restorer's own input size G * P (None for models)."""
        return self.token_grid * self.patch_size if self.role == "restorer" else None

    def to_metadata(self) -> dict[str, str]:
        """ONNX metadata_props entries: the spec as JSON, plus the single keys older readers
        look for (``role``; ``task`` for models; ``mae_img_size``/``mae_patch_size`` for restorers)."""
        meta = {METADATA_KEY: json.dumps(asdict(self)), "role": self.role}
        if self.role == "model":
            meta["task"] = self.output.value
        else:
            meta.update(mae_img_size=str(self.mae_img_size), mae_patch_size=str(self.patch_size))
        return meta

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> Optional["ModelSpec"]:
        """The spec stored in ``metadata`` (an engine's ``metadata``); None if it holds none."""
        raw = metadata.get(METADATA_KEY)
        if raw is None:
            return None
        try:
            fields = json.loads(raw)
            return cls(**fields)
        except (TypeError, ValueError, InvalidArgumentError) as err:
            raise ModelFormatError(f"the model's {METADATA_KEY!r} metadata is not a valid ModelSpec ({err}): "
                                   "re-export it with edgeguard.deploy.export_model / export_restorer") from err
