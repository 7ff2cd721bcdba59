"""The one in-memory dataset type every generator and loader returns."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

import numpy as np

from edgeguard.errors import InvalidArgumentError, InvalidInputError
from edgeguard.outputs import OutputKind


@dataclass
class ImageDataset:
    """Images with labels, kept as uint8 so a trigger is applied to raw pixels.

    Attributes:
        images: (N, H, W, C) uint8, C in {1, 3}.
        labels: (N,) int64 class ids for classification, (N, D) float32 for regression
            (SynthGaze: D = 2, (pitch, yaw) in radians).
        output: the labels' kind, an ``OutputKind`` ("classification" or "regression" are
            accepted and converted).
        class_names: names of the classes (classification) or of the outputs (regression).
        name: a short identifier, used in cache keys and reports.
    """

    images: np.ndarray
    labels: np.ndarray
    output: Union[OutputKind, str]
    class_names: Sequence[str] = field(default_factory=tuple)
    name: str = "dataset"

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.shape[-1] not in (1, 3):
            raise InvalidInputError(f"images must be (N, H, W, C) with C in {{1, 3}}, got shape {self.images.shape}")
        if self.images.dtype != np.uint8:
            raise InvalidInputError(f"images must be uint8, got {self.images.dtype}")
        if len(self.labels) != len(self.images):
            raise InvalidInputError(f"{len(self.images)} images but {len(self.labels)} labels")
        try:
            self.output = OutputKind.of(self.output)
        except InvalidArgumentError as err:  # a dataset that names no kind is bad input
            raise InvalidInputError(str(err)) from None
        self.labels = self.output.check_labels(self.labels)
        self.class_names = tuple(self.class_names)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_classes(self) -> int:
        """Number of classes (classification) or outputs (regression)."""
        return self.output.num_outputs(self.labels, self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(H, W, C)."""
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def subset(self, index: np.ndarray | slice) -> "ImageDataset":
        """A new dataset holding ``images[index]``, ``labels[index]``."""
        return ImageDataset(self.images[index], self.labels[index], self.output, self.class_names, self.name)

    def replace(self, images: Optional[np.ndarray] = None, labels: Optional[np.ndarray] = None) -> "ImageDataset":
        """A copy with images and/or labels swapped for new arrays of the same length."""
        return ImageDataset(
            self.images if images is None else images,
            self.labels if labels is None else labels,
            self.output,
            self.class_names,
            self.name,
        )


def to_float_nchw(images: np.ndarray) -> np.ndarray:
    """(N, H, W, C) uint8 -> (N, C, H, W) float32 in [0, 1]."""
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0


def to_uint8_nhwc(images: np.ndarray) -> np.ndarray:
    """(N, C, H, W) float in [0, 1] -> (N, H, W, C) uint8 (rounded, clipped)."""
    return np.clip(np.rint(images.transpose(0, 2, 3, 1) * 255.0), 0, 255).astype(np.uint8)


def resize_frames(images: np.ndarray, size: "int | tuple[int, int]") -> np.ndarray:
    """(N, H, W, C) uint8 frames -> (N, h, w, C) uint8 at ``size`` ((h, w), or one side for a
    square), by area averaging when shrinking and bilinear interpolation when growing (PIL),
    e.g. camera frames brought to the size a model was trained at.

    >>> resize_frames(np.zeros((2, 64, 48, 3), np.uint8), 32).shape
    (2, 32, 32, 3)
    """
    from PIL import Image

    h, w = (size, size) if isinstance(size, int) else tuple(size)
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise InvalidInputError(f"frames must be (N, H, W, C) uint8 with C 1 or 3, got {images.shape} {images.dtype}")
    if h < 1 or w < 1:
        raise InvalidInputError(f"size must be positive, got {size}")
    out = np.empty((len(images), h, w, images.shape[-1]), np.uint8)
    for i, frame in enumerate(images):
        shrink = h <= frame.shape[0] and w <= frame.shape[1]
        picture = Image.fromarray(frame[..., 0] if frame.shape[-1] == 1 else frame)
        resized = np.asarray(picture.resize((w, h), Image.BOX if shrink else Image.BILINEAR))
        out[i] = resized.reshape(h, w, -1)
    return out
