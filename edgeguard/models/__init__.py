"""Model zoo: classifiers, the gaze regressor and the MAE restorer.

``create_model(name, **overrides)`` builds a variant from its config, timm-style. Importing
this package imports torch.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

import torch.nn as nn

from edgeguard.errors import InvalidArgumentError
from edgeguard.models.mae import MAEConfig, MaskedAutoencoder
from edgeguard.models.preact_resnet import PreActResNet, ResNetConfig

# Grey eye patches: MPIIGaze-like intensity statistics.
_GAZE = ResNetConfig(num_outputs=2, in_channels=1, mean=(0.45,), std=(0.22,))

_VARIANTS: dict[str, tuple[Callable[..., nn.Module], Any]] = {
    "preact_resnet18": (PreActResNet, ResNetConfig()),
    # DRMGuard's regressor: ResNet-18 features + one linear head (pitch, yaw).
    "gaze_resnet18": (PreActResNet, _GAZE),
    # The CPU restorer: native 32x32, 4-px tokens (8x8 grid), about half a million weights.
    "mae_tiny_patch4": (MaskedAutoencoder, MAEConfig(img_size=32, patch_size=4, embed_dim=96, depth=4,
                                                     num_heads=4, decoder_embed_dim=64, decoder_depth=2,
                                                     decoder_num_heads=4)),
    # Finer tokens at 32 px: 2-px patches (16x16 grid), close to the official 2.3 px per
    # token that BDMAE's 224-px MAE gives a 32-px frame.
    "mae_tiny_patch2": (MaskedAutoencoder, MAEConfig(img_size=32, patch_size=2, embed_dim=96, depth=4,
                                                     num_heads=4, decoder_embed_dim=64, decoder_depth=2,
                                                     decoder_num_heads=4)),
    # The official MAE "visualize" layouts BDMAE uses (ImageNet, 224 px, 16-px tokens).
    "mae_vit_base_patch16": (MaskedAutoencoder, MAEConfig()),
    "mae_vit_large_patch16": (MaskedAutoencoder, MAEConfig(embed_dim=1024, depth=24, num_heads=16)),
}


def list_models() -> list[str]:
    """Names accepted by ``create_model``."""
    return sorted(_VARIANTS)


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build model ``name`` with config fields overridden, e.g.
    ``create_model("preact_resnet18", num_outputs=43, width=0.125)``."""
    if name not in _VARIANTS:
        raise InvalidArgumentError(f"unknown model {name!r}; choose one of {list_models()}")
    cls, config = _VARIANTS[name]
    try:
        config = replace(config, **overrides)
    except TypeError as exc:
        raise InvalidArgumentError(f"bad option for model {name!r}: {exc}") from exc
    return cls(config)


__all__ = ["MAEConfig", "MaskedAutoencoder", "PreActResNet", "ResNetConfig", "create_model", "list_models"]
