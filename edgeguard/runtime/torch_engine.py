"""PyTorch backend: an ``nn.Module`` on the CPU or a CUDA device (GPU speed without TensorRT)."""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from edgeguard.errors import InvalidArgumentError
from edgeguard.runtime.base import Engine
from edgeguard.runtime.spec import ModelSpec


def module_spec(module: Any) -> Optional[ModelSpec]:
    """The ModelSpec a torch module carries (``module.spec``), or for an MAE restorer the one
    its config implies (its own input size); None if neither."""
    spec = getattr(module, "spec", None)
    if isinstance(spec, ModelSpec):
        return spec
    config = getattr(module, "config", None)
    if all(hasattr(config, k) for k in ("img_size", "patch_size", "in_chans")):
        return ModelSpec(role="restorer", input_shape=(config.in_chans, config.img_size, config.img_size),
                         token_grid=config.img_size // config.patch_size, patch_size=config.patch_size)
    return None


class TorchEngine(Engine):
    """An ``nn.Module`` run under ``torch.inference_mode`` in eval mode.

    Args:
        module: the model; moved to ``device`` when one is given.
        input_names: names of ``forward``'s inputs, in order.
        output_name: the name of ``forward``'s (single tensor) output.
        device: e.g. "cuda" or "cuda:1"; None keeps the module where it is.
        half: run in float16 (CUDA only); inputs are cast on the device, outputs come back float32.
    """

    backend = "torch"

    def __init__(self, module: Any, input_names: Sequence[str] = ("image",), device: Optional[str] = None,
                 half: bool = False, output_name: str = "output"):
        super().__init__()
        import torch

        if device is not None:
            device = torch.device(device)
            if device.type == "cuda" and not torch.cuda.is_available():
                raise InvalidArgumentError(f"device {device} asked for, but this PyTorch has no CUDA device")
            module = module.to(device)
        self.device = next(module.parameters()).device
        if half and self.device.type != "cuda":
            raise InvalidArgumentError("half precision needs a CUDA device")
        self.half = half
        self.dtype = torch.float16 if half else torch.float32
        self.module = module.to(self.dtype).eval()
        self._names = tuple(input_names)
        self._output_names = (output_name,)

    @property
    def input_names(self) -> tuple[str, ...]:
        return self._names

    @property
    def output_names(self) -> tuple[str, ...]:
        return self._output_names

    @property
    def metadata(self) -> dict[str, Any]:
        """The module's spec (``module_spec``) as metadata."""
        spec = module_spec(self.module)
        return spec.to_metadata() if spec is not None else {}

    def _run(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        import torch

        with torch.inference_mode():
            out = self.module(*(torch.from_numpy(a).to(self.device, self.dtype, non_blocking=True) for a in arrays))
        return [out.float().cpu().numpy()]

    def __repr__(self) -> str:
        precision = ", fp16" if self.half else ""
        return f"TorchEngine({type(self.module).__name__}, {self.device}{precision})"
