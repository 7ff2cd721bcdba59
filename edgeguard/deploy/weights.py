"""Load model weights safely: safetensors only, never pickled code (DESIGN principle 8)."""
from __future__ import annotations

import logging
from pathlib import Path

from edgeguard.errors import DataFormatError, ModelFormatError, require

log = logging.getLogger(__name__)


def load_model_weights(name: str, path: str | Path, **config):
    """Build model ``name`` (``edgeguard.models.create_model``) and load a safetensors state
    dict into it; the output size is read from the head weights."""
    require("torch", "loading model weights", "train")
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from edgeguard.models import create_model

    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"weights file {path} does not exist")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFormatError(f"{path} is not a readable safetensors file: {exc}") from exc
    if "head.weight" not in state:
        raise ModelFormatError(f"{path} has no 'head.weight': not an edgeguard {name} state dict")
    model = create_model(name, num_outputs=state["head.weight"].shape[0], **config)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise ModelFormatError(f"{path} does not match {name} with {config}: {exc}") from exc
    if missing or unexpected:
        raise ModelFormatError(f"{path} does not match {name} (width {config.get('width', 1.0)}): "
                               f"missing {sorted(missing)[:4]}, unexpected {sorted(unexpected)[:4]}")
    return model.eval()


def load_official_mae(path: str | Path, arch: str = "mae_vit_base_patch16"):
    """Build MAE ``arch`` and load an official MAE checkpoint (``mae_visualize_vit_base.pth``
    layout: a dict whose ``model`` entry is the state dict) or a safetensors state dict.

    ``.pth`` files are read with ``torch.load(weights_only=True)``, which refuses pickled
    code. Extra entries (e.g. a classifier head) are ignored; a missing or misshapen MAE
    weight raises ModelFormatError.
    """
    torch = require("torch", "loading MAE weights", "train")
    from edgeguard.models import create_model

    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"MAE checkpoint {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and safetensors errors differ; all mean "unreadable"
        raise ModelFormatError(f"{path} is not a readable checkpoint: {exc}") from exc
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict) or "patch_embed.proj.weight" not in state:
        raise ModelFormatError(f"{path} has no 'patch_embed.proj.weight': not an MAE state dict")
    model = create_model(arch)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise ModelFormatError(f"{path} does not match {arch}: {exc}") from exc
    if missing:
        raise ModelFormatError(f"{path} does not match {arch}: missing {sorted(missing)[:4]}")
    if unexpected:
        log.info("ignored %d checkpoint entries not in %s, e.g. %s", len(unexpected), arch, sorted(unexpected)[:3])
    return model.eval()
