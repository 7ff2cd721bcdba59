"""Shared fixtures: a private model cache per test session, two CPU threads, toy data."""
from __future__ import annotations

import numpy as np
import pytest

from edgeguard.data.dataset import ImageDataset

_COLOURS = np.array([[230, 30, 30], [30, 200, 30], [40, 40, 230], [230, 230, 40],
                     [40, 220, 220], [220, 40, 220], [128, 128, 128], [250, 140, 20]], dtype=np.float32)


def _cuda_device() -> bool:
    try:
        import torch
    except ImportError:  # the torch-free install: no device to reach
        return False
    return torch.cuda.is_available()


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` skip, in one place, where no CUDA device is visible."""
    gpu = [item for item in items if item.get_closest_marker("gpu") is not None]
    if gpu and not _cuda_device():
        for item in gpu:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA device"))


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("EDGEGUARD_CACHE", str(tmp_path_factory.mktemp("cache")))
    try:
        import torch

        torch.set_num_threads(2)
    except ImportError:
        pass
    yield
    mp.undo()


def toy_classification(n: int, seed: int = 0, size: int = 32, classes: int = 8) -> ImageDataset:
    """Easy data: a coloured square on noise; the colour is the class."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    img = rng.integers(0, 90, (n, size, size, 3)).astype(np.float32)
    lo, hi = size // 4, 3 * size // 4
    img[:, lo:hi, lo:hi] = 0.15 * img[:, lo:hi, lo:hi] + 0.85 * _COLOURS[y % len(_COLOURS)][:, None, None, :]
    return ImageDataset(np.clip(img, 0, 255).astype(np.uint8), y, "classification", [f"c{i}" for i in range(classes)], "toy")


def toy_regression(n: int, seed: int = 0) -> ImageDataset:
    """Grey 36x60 patches whose bright dot position encodes (pitch, yaw)."""
    rng = np.random.default_rng(seed)
    labels = rng.uniform([-0.4, -0.5], [0.3, 0.5], (n, 2)).astype(np.float32)
    yy, xx = np.mgrid[:36, :60]
    cy = 18 - labels[:, 0] * 25
    cx = 30 + labels[:, 1] * 40
    d2 = (yy[None] - cy[:, None, None]) ** 2 + (xx[None] - cx[:, None, None]) ** 2
    img = 60 + 150 * np.exp(-d2 / 18.0) + rng.normal(0, 5, d2.shape)
    return ImageDataset(np.clip(img, 0, 255).astype(np.uint8)[..., None], labels, "regression", ("pitch", "yaw"), "toy-gaze")


@pytest.fixture(scope="session")
def toy_train() -> ImageDataset:
    return toy_classification(1024, seed=0)


@pytest.fixture(scope="session")
def toy_test() -> ImageDataset:
    return toy_classification(256, seed=1)
