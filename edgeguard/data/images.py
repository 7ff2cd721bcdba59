"""One image file to uint8 pixels, without silently losing what the file holds.

16-bit images are scaled to 8 bits (not saturated at 255), floating-point images and
images above PIL's decompression-bomb limit are refused, and every failure is a
``DataFormatError`` naming the file.

    >>> import numpy as np, tempfile, pathlib
    >>> from PIL import Image
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "deep.png"
    >>> Image.fromarray(np.full((2, 2), 65535, np.uint16)).save(path)   # 16-bit grey PNG
    >>> read_image(path)[0, 0].tolist(), read_image(path, channels=1).shape
    ([255, 255, 255], (2, 2, 1))
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import numpy as np

from edgeguard.errors import DataFormatError, InvalidArgumentError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".ppm", ".pgm", ".bmp", ".gif", ".tif", ".tiff", ".webp")
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")


def read_image(path: "str | Path", channels: int = 3, box: Optional[tuple[int, int, int, int]] = None,
               size: Optional[int] = None) -> np.ndarray:
    """(H, W, channels) uint8 pixels of ``path``: RGB for channels=3, grey for 1.

    Args:
        box: (left, upper, right, lower) crop in pixels, applied before resizing.
        size: resize (bilinear) to size x size; None keeps the file's size.
    """
    from PIL import Image

    if channels not in (1, 3):
        raise InvalidArgumentError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im = _eight_bit(im, path).convert("RGB" if channels == 3 else "L")
                if box is not None:
                    im = im.crop(box)
                if size is not None:
                    im = im.resize((size, size), Image.BILINEAR)
                pixels = np.asarray(im, dtype=np.uint8)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise DataFormatError(f"{path}: refused as a possible decompression bomb ({exc})") from exc
    except (OSError, ValueError, SyntaxError) as exc:  # PIL's errors for unreadable/corrupt files
        raise DataFormatError(f"{path}: cannot read image ({exc})") from exc
    return pixels if channels == 3 else pixels[..., None]


def _eight_bit(im, path):
    """``im`` with 8 bits per channel: 16-bit grey scaled by 255/65535, 32-bit integer grey
    the same when its values exceed 255 (PIL reads some 16-bit files so)."""
    from PIL import Image

    if im.mode == "F":
        raise DataFormatError(f"{path}: floating-point pixels; save frames with 8 or 16 bits per channel")
    if im.mode not in _SIXTEEN_BIT and im.mode != "I":
        return im
    values = np.asarray(im).astype(np.int64)
    if values.size and (values.min() < 0 or values.max() > 65535):
        raise DataFormatError(f"{path}: integer pixels outside 0..65535 (mode {im.mode})")
    if im.mode in _SIXTEEN_BIT or (values.size and values.max() > 255):
        values = (values * 255 + 32767) // 65535
    return Image.fromarray(values.astype(np.uint8))  # 2-D uint8: mode L
