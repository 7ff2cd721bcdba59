"""What every scanner does to a model under test: read images, freeze it, run it in chunks,
measure how its outputs spread, find its linear head."""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from edgeguard.data.dataset import to_float_nchw
from edgeguard.errors import InvalidArgumentError, InvalidInputError


def as_float_images(images) -> torch.Tensor:
    """(N, H, W, C) uint8 or (N, C, H, W) float in [0, 1] -> float32 (N, C, H, W) tensor."""
    arr = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if arr.ndim != 4:
        raise InvalidInputError(f"images must be a batch (N, H, W, C) uint8 or (N, C, H, W) float, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        arr = to_float_nchw(arr)
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all() or arr.min() < 0.0 or arr.max() > 1.0:
            raise InvalidInputError("float images must be finite and in [0, 1]")
        arr = arr.astype(np.float32)
    else:
        raise InvalidInputError(f"images must be uint8 or float, got {arr.dtype}")
    return torch.from_numpy(np.ascontiguousarray(arr))


def linear_head(model: nn.Module, name: str) -> nn.Linear:
    """The module called ``name``, checked to be the final linear layer."""
    try:
        head = model.get_submodule(name)
    except AttributeError:
        raise InvalidArgumentError(f"model has no module {name!r}; pass the name of its final linear layer") from None
    if not isinstance(head, nn.Linear):
        raise InvalidArgumentError(f"{name!r} is a {type(head).__name__}; DRMGuard needs a linear head (f = W^T F(x) + b)")
    return head


@contextmanager
def frozen_eval(model: nn.Module):
    """Within the block ``model`` is in eval mode with no gradients to its parameters;
    both are restored after."""
    was_training = model.training
    frozen = [p for p in model.parameters() if p.requires_grad]
    model.eval()
    for p in frozen:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p in frozen:
            p.requires_grad_(True)
        model.train(was_training)


@torch.no_grad()
def batched(fn, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """``fn`` applied to ``x`` in chunks of ``batch_size`` rows, concatenated, without gradients."""
    return torch.cat([fn(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def output_variance(model: nn.Module, x: torch.Tensor, softmax: bool = False) -> torch.Tensor:
    """sum_j Var_i f_j(x_i) over the clean images x (N, C, H, W) (of the softmax of f when
    ``softmax``); raises, blaming the model or the images, when it is not positive."""
    out = batched(lambda b: model(b).float(), x)
    if not torch.isfinite(out).all():
        raise InvalidInputError("the model's outputs on the clean images are not finite (NaN/inf): its weights are "
                                "broken; no scan can judge it")
    variance = (out.softmax(dim=1) if softmax else out).var(dim=0).sum()
    if variance <= 0:
        if x.flatten(1).var(dim=0).sum() <= 0:
            raise InvalidInputError(f"the {len(x)} clean images are all the same frame; give the scan varied frames")
        raise InvalidInputError(f"the model answers the same for {len(x)} different clean images: it ignores its "
                                "input (a degenerate model, or frames it was not made for); no scan can judge it")
    return variance
