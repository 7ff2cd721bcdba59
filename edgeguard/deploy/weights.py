"""Load model weights safely: safetensors only, never pickled code (DESIGN principle 8)."""
from __future__ import annotations

from pathlib import Path

from edgeguard.errors import DataFormatError, ModelFormatError, require


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
