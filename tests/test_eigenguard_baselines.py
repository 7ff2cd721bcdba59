"""The baselines of the EigenGuard table: Spectral Signatures filtering and fine-tuning."""
import numpy as np
import pytest
import torch

from conftest import toy_classification, toy_regression
from edgeguard.eigenguard.baselines import (FineTuneConfig, SpectralSignaturesConfig, fine_tune,
                                            spectral_signature_keep, spectral_signature_scores)
from edgeguard.errors import InvalidArgumentError
from edgeguard.models.preact_resnet import PreActResNet, ResNetConfig
from edgeguard.train import TrainConfig


def test_scores_single_out_a_shifted_minority_within_its_group():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(400, 20))
    groups = np.repeat([0, 1], 200)
    poisoned = np.arange(0, 200, 10)  # 10% of group 0 share one extra direction
    features[poisoned] += 6.0 * np.eye(20)[3]
    scores = spectral_signature_scores(features, groups)
    top = np.argsort(scores[:200])[-30:]
    assert set(poisoned) <= set(top)
    assert scores[200:].max() < scores[poisoned].min()  # group 1 is scored against itself


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_keep_drops_one_and_a_half_epsilon_per_group(task):
    data = toy_classification(200, classes=4) if task == "classification" else toy_regression(200)
    outputs = 4 if task == "classification" else 2
    model = PreActResNet(ResNetConfig(width=0.125, num_outputs=outputs, blocks=(1, 1, 1, 1),
                                      in_channels=data.image_shape[2]))
    keep = spectral_signature_keep(data, model, SpectralSignaturesConfig(poison_rate=0.1))
    groups = data.labels if task == "classification" else np.zeros(len(data), dtype=int)
    for g in np.unique(groups):
        n = int((groups == g).sum())
        assert int((~keep[groups == g]).sum()) == -(-15 * n // 100)
    with pytest.raises(InvalidArgumentError):
        SpectralSignaturesConfig(poison_rate=0.5, removal_factor=2.0)


def test_fine_tune_trains_the_model_in_place():
    data = toy_classification(128, classes=4)
    torch.manual_seed(0)
    model = PreActResNet(ResNetConfig(width=0.125, num_outputs=4, blocks=(1, 1, 1, 1)))
    before = model.head.weight.detach().clone()
    history = fine_tune(model, data, FineTuneConfig(train=TrainConfig(epochs=3, batch_size=32, lr=0.05, crop_padding=0)))
    assert history.loss[-1] < history.loss[0]
    assert not torch.equal(before, model.head.weight) and not model.training
