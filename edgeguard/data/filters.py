"""Small image filters shared by the generators."""
from __future__ import annotations

import numpy as np


def blur3(x: np.ndarray) -> np.ndarray:
    """[1, 2, 1] / 4 separable blur over axes 1 and 2 of (n, H, W, C), edges replicated."""
    p = np.pad(x, ((0, 0), (1, 1), (0, 0), (0, 0)), mode="edge")
    x = (p[:, :-2] + 2 * p[:, 1:-1] + p[:, 2:]) * 0.25
    p = np.pad(x, ((0, 0), (0, 0), (1, 1), (0, 0)), mode="edge")
    return (p[:, :, :-2] + 2 * p[:, :, 1:-1] + p[:, :, 2:]) * 0.25
