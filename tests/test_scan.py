"""DRMGuard scanner: loss terms against their formulas, verdicts on hand-built models."""
import numpy as np
import pytest
import torch
from torch import nn

from edgeguard.errors import InvalidArgumentError, InvalidInputError
from edgeguard.scan import DRMGuardConfig, angle_variance, calibrate, scan
from edgeguard.scan.generator import TriggerGenerator

TARGET = (0.2, -0.4)


class ToyGaze(nn.Module):
    """f = head(F(x)), F = the means of a 3 x 5 grid of image regions. The backdoored variant
    gates F with a detector of a bright 6x6 patch at the bottom right and passes the gate to
    the head, so a patched image outputs TARGET: a backdoor of the form DRMGuard assumes."""

    def __init__(self, backdoor: bool, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.backdoor = backdoor
        self.head = nn.Linear(16, 2)
        self.head.weight.data = torch.randn(2, 16, generator=g)
        self.head.bias.data.zero_()
        self.head.weight.data[:, 15] = torch.tensor(TARGET)

    def forward(self, x):
        phi = nn.functional.adaptive_avg_pool2d(x, (3, 5)).flatten(1)
        gate = torch.zeros(len(x), 1)
        if self.backdoor:
            gate = torch.sigmoid(12 * (x[:, :, -8:-2, -8:-2].mean(dim=(1, 2, 3)) - 0.85))[:, None]
        return self.head(torch.cat([phi * (1 - gate), gate], dim=1))


def blocky_images(n, seed=0):
    """(n, 1, 36, 60) float images whose 3 x 5 region means vary widely (0.1 .. 0.7)."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0.1, 0.7, (n, 1, 3, 5)).repeat(12, axis=2).repeat(12, axis=3)
    return np.clip(coarse + rng.normal(0, 0.02, coarse.shape), 0, 1).astype(np.float32)


def test_angle_variance_matches_its_formula():
    rng = np.random.default_rng(0)
    f, w = rng.normal(size=(7, 5)), rng.normal(size=(3, 5))
    angles = np.arccos((f / np.linalg.norm(f, axis=1, keepdims=True)) @ (w / np.linalg.norm(w, axis=1, keepdims=True)).T)
    expected = angles.var(axis=0, ddof=1).sum()
    assert float(angle_variance(torch.tensor(f), torch.tensor(w))) == pytest.approx(expected, rel=1e-6)
    same = torch.tensor(f[:1]).repeat(4, 1)
    assert float(angle_variance(same, torch.tensor(w))) == pytest.approx(0.0, abs=1e-10)


def test_generator_starts_as_identity_and_keeps_any_size():
    gen = TriggerGenerator(3, width=4)
    x = torch.rand(2, 3, 35, 61)
    torch.testing.assert_close(gen(x), x)


def test_scan_optimises_the_generator_towards_collapsed_outputs():
    # The verdict's quality is measured on trained model zoos by benchmarks/scan.py; here the
    # optimisation itself: the loss falls and the outputs on generated images collapse.
    result = scan(ToyGaze(backdoor=True), blocky_images(64), DRMGuardConfig(steps=60, batch_size=16, lr=3e-3,
                                                                          generator_width=8), progress=False)
    assert np.mean(result.losses[-10:]) < 0.7 * np.mean(result.losses[:10])
    assert result.residual_variance < 0.8 and 0 < result.statistic < 0.5
    assert result.target.shape == (2,) and result.backdoored == (result.statistic < 0.03 and result.residual_variance < 0.1)


def test_scan_leaves_the_model_as_it_was():
    model = ToyGaze(backdoor=True)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    scan(model, blocky_images(16), DRMGuardConfig(steps=2, batch_size=8), progress=False)
    assert model.training and all(p.requires_grad for p in model.parameters())
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k])


def test_bad_input_and_settings_are_rejected():
    model = ToyGaze(backdoor=False)
    with pytest.raises(InvalidInputError):
        scan(model, np.zeros((4, 36, 60), np.uint8), progress=False)
    with pytest.raises(InvalidInputError):
        scan(model, np.full((4, 1, 36, 60), 2.0, np.float32), progress=False)
    with pytest.raises(InvalidArgumentError, match="no module"):
        scan(model, blocky_images(4), DRMGuardConfig(head="phi", steps=1, batch_size=2), progress=False)
    with pytest.raises(InvalidInputError, match="do not vary"):
        scan(model, np.zeros((4, 1, 36, 60), np.float32), DRMGuardConfig(steps=1, batch_size=2), progress=False)
    with pytest.raises(InvalidArgumentError):
        DRMGuardConfig(batch_size=1)
    assert calibrate([0.2, 0.1, 0.3]) == pytest.approx(0.08)
    with pytest.raises(InvalidArgumentError):
        calibrate([])
