"""Label-consistent (LC) attack (Turner et al. 2019)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from edgeguard.attacks import triggers
from edgeguard.attacks.base import Attack
from edgeguard.data.dataset import to_float_nchw, to_uint8_nhwc
from edgeguard.errors import InvalidArgumentError


@dataclass
class LabelConsistent(Attack):
    """Clean-label: target-class training images are first made hard to learn with a PGD
    L-inf perturbation (away from their true class, on a surrogate model), then get a 3x3
    black/white checkerboard in all four corners (amplitude 1: saturated pixels). Test
    images get the corner pattern only.

    ``poison(train, surrogate=model)`` needs a trained surrogate (``nn.Module`` on [0, 1]
    images); BackdoorBench uses an adversarially trained ResNet-18, the harness uses the
    task's clean model.

    Attributes:
        eps: L-inf budget in [0, 1] units (BackdoorBench's loader reads the 16/255 set).
        step: PGD step size.
        steps: PGD iterations.
        corner: checkerboard side in pixels.
        margin: pixels between each checkerboard and the image border (0: in the corners,
            as published).
    """

    eps: float = 16 / 255
    step: float = 1.5 / 255
    steps: int = 100
    corner: int = 3
    margin: int = 0

    name: ClassVar[str] = "lc"
    kind: ClassVar[str] = "clean_label"

    def _build(self, train) -> None:
        if train.output != "classification":
            raise InvalidArgumentError("the label-consistent attack is defined for classification only")
        if self.margin < 0 or 2 * (self.corner + self.margin) > min(self.image_shape_[:2]):
            raise InvalidArgumentError(f"four {self.corner}-px corners with margin {self.margin} do not fit "
                                       f"a {self.image_shape_[0]}x{self.image_shape_[1]} image")
        self.pattern_ = triggers.checkerboard(self.corner)

    def _apply(self, images: np.ndarray) -> np.ndarray:
        h, w, _ = self.image_shape_
        c, m = self.corner, self.margin
        for top, left in ((m, m), (m, w - c - m), (h - c - m, m), (h - c - m, w - c - m)):
            images = triggers.stamp(images, self.pattern_, top, left)
        return images

    def _poison_images(self, images: np.ndarray, labels: np.ndarray, surrogate: Any = None, **_: Any) -> np.ndarray:
        if surrogate is None:
            raise InvalidArgumentError("LabelConsistent.poison needs surrogate=<trained model> for its PGD step")
        return self._apply(pgd_away(surrogate, images, labels, self.eps, self.step, self.steps, self.seed))


def pgd_away(model, images: np.ndarray, labels: np.ndarray, eps: float, step: float, steps: int, seed: int = 0,
             batch_size: int = 256) -> np.ndarray:
    """Untargeted L-inf PGD that raises the loss of the true label, from a random start.

    images (N, H, W, C) uint8 -> perturbed uint8 with |x' - x| <= eps (plus rounding).
    """
    import torch
    import torch.nn.functional as F

    model.eval()
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(0, len(images), batch_size):
        x0 = torch.from_numpy(to_float_nchw(images[i : i + batch_size]))
        y = torch.from_numpy(labels[i : i + batch_size]).long()
        x = (x0 + (torch.rand(x0.shape, generator=gen) * 2 - 1) * eps).clamp(0, 1)
        for _ in range(steps):
            x.requires_grad_(True)
            loss = F.cross_entropy(model(x), y)
            (grad,) = torch.autograd.grad(loss, x)
            x = torch.min(torch.max(x.detach() + step * grad.sign(), x0 - eps), x0 + eps).clamp(0, 1)
        out.append(to_uint8_nhwc(x.detach().numpy()))
    return np.concatenate(out) if out else images.copy()
