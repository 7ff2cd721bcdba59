"""DRMGuard scanner: loss terms against their formulas, verdicts on hand-built models."""
from pathlib import Path

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


def blocky_images(n, seed=0, cell=12):
    """(n, 1, 3 * cell, 5 * cell) float images (36 x 60 by default) whose 3 x 5 region means
    vary widely (0.1 .. 0.7)."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0.1, 0.7, (n, 1, 3, 5)).repeat(cell, axis=2).repeat(cell, axis=3)
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


@pytest.mark.parametrize("settings", [dict(trigger="residual", lambda_sim=20, lambda_feat=800, mtr_gamma=5),
                                      dict(trigger="mask_pattern")])
def test_scan_optimises_the_generator_towards_collapsed_outputs(settings):
    # The verdict's quality is measured on trained model zoos by benchmarks/scan.py; here the
    # optimisation itself: the loss falls and the outputs on generated images collapse.
    config = DRMGuardConfig(steps=60, batch_size=16, lr=3e-3, generator_width=8, **settings)
    result = scan(ToyGaze(backdoor=True), blocky_images(64), config, progress=False)
    assert np.mean(result.losses[-10:]) < 0.7 * np.mean(result.losses[:10])
    assert result.residual_variance < 0.8 and 0 < result.statistic < 0.5
    assert result.target.shape == (2,)
    assert result.backdoored == (result.statistic < config.threshold and result.residual_variance < 0.1)


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
        scan(model, blocky_images(4), DRMGuardConfig(head="phi", lambda_feat=800, steps=1, batch_size=2), progress=False)
    with pytest.raises(InvalidInputError, match="all the same frame"):  # the data's fault
        scan(model, np.zeros((4, 1, 36, 60), np.float32), DRMGuardConfig(steps=1, batch_size=2), progress=False)

    class Constant(nn.Module):  # ignores its input: the model's fault, whatever the frames
        def __init__(self, value=1.0):
            super().__init__()
            self.head = nn.Linear(1, 2)
            self.value = value

        def forward(self, x):
            return self.head(torch.full((len(x), 1), self.value))

    with pytest.raises(InvalidInputError, match="ignores its input"):
        scan(Constant(), blocky_images(4), DRMGuardConfig(steps=1, batch_size=2), progress=False)
    with pytest.raises(InvalidInputError, match="not finite"):
        scan(Constant(float("nan")), blocky_images(4), DRMGuardConfig(steps=1, batch_size=2), progress=False)
    with pytest.raises(InvalidArgumentError):
        DRMGuardConfig(batch_size=1)
    assert calibrate([0.2, 0.1, 0.3]) == pytest.approx(0.85 * 0.2)  # the median, less 15%
    # One odd trusted model does not move the median (it moved the old rule's minimum 4x).
    assert calibrate([0.2, 0.21, 0.19, 0.05]) == pytest.approx(0.85 * 0.195)
    assert calibrate([0.2, 0.21, 0.19, 0.05], quantile=0.0, margin=0.8) == pytest.approx(0.04)
    with pytest.raises(InvalidArgumentError):
        calibrate([0.2], quantile=1.5)
    with pytest.raises(InvalidArgumentError):
        calibrate([])


def test_mask_pattern_generator_blends_a_pattern_through_a_mask():
    from edgeguard.scan.generator import MaskPatternGenerator

    x = torch.rand(3, 1, 36, 60)
    universal = MaskPatternGenerator(1, width=0, image_size=(36, 60), mask_init=-2.0)
    universal.pattern_logit.data.normal_()
    mask, pattern = universal.mask_and_pattern(x)
    assert mask.shape == (3, 1, 36, 60) and pattern.shape == (3, 1, 36, 60)
    torch.testing.assert_close(mask[0], mask[2])  # one trigger for every image
    expected = (1 - torch.sigmoid(torch.tensor(-2.0))) * x + torch.sigmoid(torch.tensor(-2.0)) * torch.sigmoid(
        universal.pattern_logit)
    torch.testing.assert_close(universal(x), expected)
    generated = MaskPatternGenerator(1, width=4, image_size=(36, 60), mask_init=-2.0)
    generated.pattern_logit.data.copy_(universal.pattern_logit.data)
    torch.testing.assert_close(generated(x), expected)  # the U-Net starts at zero: same trigger
    generated.net.out.weight.data.normal_()
    m1, _ = generated.mask_and_pattern(x)
    assert (m1[0] - m1[1]).abs().max() > 1e-3  # then the mask depends on the image


def test_default_scan_needs_a_smaller_change_for_the_backdoored_model():
    # A relative check, as for Neural Cleanse below: the same settings on a toy model with a
    # planted patch gate and on its clean twin. The verdict's quality is measured on zoos.
    images = blocky_images(64, seed=1)
    config = DRMGuardConfig(steps=150, batch_size=16, generator_width=4)
    model = ToyGaze(backdoor=True)
    bad = scan(model, images, config, progress=False)
    good = scan(ToyGaze(backdoor=False), images, config, progress=False)
    assert bad.statistic < 0.5 * good.statistic and bad.residual_variance < 0.1
    patched = images.copy()
    patched[..., -8:-2, -8:-2] = 1.0
    with torch.no_grad():
        true_target = model(torch.from_numpy(patched)).mean(dim=0).numpy()
    assert np.degrees(np.linalg.norm(bad.target - true_target)) < 5.0
    with torch.no_grad():
        mask = bad.generator.mask_and_pattern(torch.from_numpy(images))[0].mean(dim=0)[0].numpy()
    assert mask[-8:-2, -8:-2].mean() > 5 * mask.mean()


def test_neural_cleanse_needs_a_smaller_mask_for_the_backdoored_model():
    from edgeguard.scan import NeuralCleanseConfig, neural_cleanse

    images = blocky_images(64, seed=1)
    config = NeuralCleanseConfig(steps=150, batch_size=16, lambda_mask=0.5, lr=0.3)
    model = ToyGaze(backdoor=True)
    bad = neural_cleanse(model, images, config, progress=False)
    good = neural_cleanse(ToyGaze(backdoor=False), images, config, progress=False)
    # The gate needs the 6x6 corner (36 of 2160 pixels) bright; a clean model needs all 15 regions changed.
    assert bad.statistic < 0.2 * good.statistic and bad.statistic < 0.05
    assert bad.residual_variance < 0.1
    patched = images.copy()
    patched[..., -8:-2, -8:-2] = 1.0
    with torch.no_grad():
        true_target = model(torch.from_numpy(patched)).mean(dim=0).numpy()
    assert np.degrees(np.linalg.norm(bad.target - true_target)) < 3.0
    mask = bad.generator.mask[0, 0].detach().numpy()
    assert mask[-8:-2, -8:-2].mean() > 5 * mask.mean()


def test_softmax_mode_collapses_a_classifier_without_a_linear_head_check():
    class ToyClassifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.gaze = ToyGaze(backdoor=True)

        def forward(self, x):
            return self.gaze(x) * 5.0  # two logits

    result = scan(ToyClassifier(), blocky_images(48), DRMGuardConfig(steps=40, batch_size=16, lr=3e-3,
                                                                     generator_width=8, outputs="softmax",
                                                                     head="missing"), progress=False)
    assert result.target.shape == (2,) and result.target.sum() == pytest.approx(1.0, abs=1e-5)
    assert np.mean(result.losses[-5:]) < np.mean(result.losses[:5])
    with pytest.raises(InvalidArgumentError, match="outputs"):
        DRMGuardConfig(outputs="logits")


@pytest.mark.parametrize("mode", ["given", "model"])
def test_repair_makes_the_trigger_harmless_and_keeps_clean_outputs(mode):
    from edgeguard.data.dataset import ImageDataset
    from edgeguard.scan import RepairConfig, repair
    from edgeguard.scan.neural_cleanse import MaskPatternTrigger
    from edgeguard.train import TrainConfig

    torch.manual_seed(0)

    class Learnable(nn.Module):
        """A conv net trained to follow ToyGaze(backdoor=True): it has learnt the backdoor."""

        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d((3, 5)), nn.Flatten())
            self.head = nn.Linear(120, 2)

        def forward(self, x):
            return self.head(self.features(x))

    teacher = ToyGaze(backdoor=True)
    images = (blocky_images(256, seed=3, cell=6) * 255).round().astype(np.uint8).transpose(0, 2, 3, 1)  # 18 x 30
    triggered = images.copy()
    triggered[:, -8:-2, -8:-2] = 255
    x = torch.from_numpy(images.transpose(0, 3, 1, 2) / 255.0).float()
    xt = torch.from_numpy(triggered.transpose(0, 3, 1, 2) / 255.0).float()
    with torch.no_grad():
        labels, poisoned_labels = teacher(x).numpy(), teacher(xt).numpy()
    student = Learnable()
    opt = torch.optim.Adam(student.parameters(), lr=1e-2)
    for _ in range(400):
        loss = (student(torch.cat([x, xt])) - torch.from_numpy(np.concatenate([labels, poisoned_labels]))).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    student.eval()
    err = lambda m, inp: float((m(inp) - torch.from_numpy(labels)).abs().mean())  # noqa: E731
    with torch.no_grad():
        backdoor_before, clean_before = err(student, xt), err(student, x)
    assert backdoor_before > 4 * clean_before  # the student did learn the trigger
    trigger = MaskPatternTrigger(1, 18, 30)  # the trigger as a scan would hand it over
    trigger.mask_logit.data[:] = -20.0
    trigger.mask_logit.data[..., -8:-2, -8:-2] = 20.0
    trigger.pattern_logit.data[:] = 20.0
    # labels="model" must not read the frames' labels: hand it zeros.
    given = labels.astype(np.float32) if mode == "given" else np.zeros_like(labels, np.float32)
    repair(student, trigger, ImageDataset(images, given, "regression"),
           RepairConfig(TrainConfig(epochs=20, lr=0.01, optimizer="adam", crop_padding=0, batch_size=64), labels=mode,
                        rounds=1),
           progress=False)
    student.eval()
    with torch.no_grad():
        assert err(student, xt) < 0.5 * backdoor_before
        assert err(student, x) < 2 * clean_before + 0.02
    with pytest.raises(InvalidArgumentError, match="labels"):
        RepairConfig(labels="teacher")


def test_scan_sample_runs_end_to_end(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "samples" / "scan_gaze_model.py"
    done = subprocess.run([sys.executable, str(script), "--n-train", "256", "--epochs", "1", "--steps", "3",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert done.returncode in (0, 3), done.stderr[-2000:]
    assert ("BACKDOORED" in done.stdout) == (done.returncode == 3)
    assert "handed-over model: clean error" in done.stdout and "estimated" in done.stdout
    assert (tmp_path / "scan.png").exists() and (tmp_path / "scan.json").exists()


def test_zoo_summary_calibrates_leave_one_out_on_benign_models_only():
    from benchmarks.scan import summary_rows

    def rec(attack, index, statistic):
        return {"attack": attack, "index": index, "method": "drmguard", "statistic": statistic, "seconds": 2.0}

    benign = [rec("none", i, s) for i, s in enumerate([0.03, 0.065, 0.07, 0.08])]
    records = benign + [rec("badnets", 0, 0.01), rec("badnets", 1, 0.062), rec("blended", 0, 0.2)]
    rows = {r["attack"]: r for r in summary_rows(records)}
    # Backdoored models meet 0.85 * median(all benign) = 0.0574: 0.01 is flagged, 0.062 and 0.2 are not.
    # Benign model 0 meets 0.85 * median(the other three) = 0.0595 and is flagged (0.03); benign
    # model 1 meets 0.85 * 0.07 = 0.0595 and passes (0.065).
    assert rows["badnets"]["tp"] == 1 and rows["badnets"]["fn"] == 1 and rows["badnets"]["fp"] == 1
    assert rows["all"]["tp"] == 1 and rows["all"]["fn"] == 2 and rows["all"]["tn"] == 3
    # AUC pairs (lower ranks as more suspicious): badnets 0.01 beats all four, 0.062 three of four -> 7/8.
    assert rows["badnets"]["roc_auc"] == pytest.approx(7 / 8) and rows["blended"]["roc_auc"] == 0.0
    assert rows["all"]["roc_auc"] == pytest.approx(7 / 12) and rows["all"]["seconds_per_model"] == 2.0


def test_zoo_summary_counts_a_search_that_never_collapsed_as_clean():
    from benchmarks.scan import summary_rows

    def rec(attack, index, statistic, collapsed=True):
        return {"attack": attack, "index": index, "method": "drmguard", "statistic": statistic, "seconds": 1.0,
                "collapsed": collapsed}

    # A search that stayed at the identity has a tiny change and no collapse: no trigger found.
    records = [rec("none", 0, 0.05), rec("none", 1, 0.0001, collapsed=False), rec("none", 2, 0.055),
               rec("badnets", 0, 0.01), rec("badnets", 1, 0.0002, collapsed=False)]
    rows = {r["attack"]: r for r in summary_rows(records)}
    # Threshold 0.85 * 0.0525 = 0.045 from the collapsed benign models; benign 1 and badnets 1 are never flagged.
    assert (rows["all"]["tp"], rows["all"]["fn"], rows["all"]["fp"], rows["all"]["tn"]) == (1, 1, 0, 3)
    # badnets 0 ranks below all three benign; badnets 1 (inf) ties benign 1 and beats none -> (3 + 0.5) / 6.
    assert rows["all"]["roc_auc"] == pytest.approx(3.5 / 6)
    only_uncollapsed_benign = [rec("none", 0, 0.001, False), rec("none", 1, 0.002, False), rec("badnets", 0, 0.05)]
    assert summary_rows(only_uncollapsed_benign)[0]["tp"] == 1  # any collapse is suspicious then


def test_defaults_follow_the_output_kind_and_trigger():
    from edgeguard.scan import DRMGuardConfig

    regression = DRMGuardConfig()
    assert (regression.trigger, regression.lambda_sim, regression.lambda_feat) == ("mask_pattern", 2.0, 0.0)
    assert DRMGuardConfig(trigger="residual").lambda_sim == 80.0
    softmax = DRMGuardConfig(outputs="softmax")
    assert (softmax.trigger, softmax.lambda_sim, softmax.threshold) == ("mask_pattern", 2.0, 0.03)
    assert DRMGuardConfig(outputs="softmax", trigger="residual").lambda_sim == 0.5
    assert DRMGuardConfig(outputs="softmax", lambda_sim=3.0).lambda_sim == 3.0
    with pytest.raises(InvalidArgumentError, match="trigger"):
        DRMGuardConfig(trigger="warp")


def test_restarts_keep_the_cheapest_collapse():
    from edgeguard.scan.drmguard import cheapest_collapse

    # (statistic, residual): run 1 is cheaper but did not collapse; run 2 is the cheapest collapse.
    assert cheapest_collapse([(0.02, 0.05), (0.001, 0.5), (0.01, 0.08)], collapse=0.1) == 2
    assert cheapest_collapse([(0.02, 0.5), (0.001, 0.7), (0.01, 0.3)], collapse=0.1) == 2  # none: nearest
    assert cheapest_collapse([(0.02, 0.05)], collapse=0.1) == 0


def test_scan_with_restarts_reports_every_run_and_keeps_the_best():
    model = ToyGaze(backdoor=True)
    x = blocky_images(64)
    config = DRMGuardConfig(steps=15, batch_size=16, generator_width=4, restarts=3)
    result = scan(model, x, config, progress=False)
    assert len(result.restarts) == 3 and len(set(result.restarts)) == 3  # different initialisations
    assert result.statistic in result.restarts
    single = scan(model, x, DRMGuardConfig(steps=15, batch_size=16, generator_width=4, seed=1), progress=False)
    assert single.statistic == pytest.approx(result.restarts[1], rel=1e-5)  # restart k is seed + k


def test_rescore_recomputes_summary_rows_from_saved_records(tmp_path):
    import json

    from benchmarks.scan import main

    def rec(attack, index, statistic, residual):
        return {"attack": attack, "index": index, "method": "drmguard", "statistic": statistic, "seconds": 1.0,
                "residual_variance": residual}

    # Saved before records said "collapsed": badnets 1's search never collapsed (residual 0.9 > 0.1).
    saved = {"config": {"scanners": {"drmguard": {"collapse": 0.1}}}, "results": [],
             "models": [rec("none", 0, 0.05, 0.01), rec("none", 1, 0.06, 0.02), rec("badnets", 0, 0.01, 0.01),
                        rec("badnets", 1, 0.001, 0.9)]}
    source = tmp_path / "old.json"
    source.write_text(json.dumps(saved))
    assert main(["--rescore", str(source), "--json", str(tmp_path / "new.json")]) == 0
    new = json.loads((tmp_path / "new.json").read_text())
    row = new["results"][-1]
    assert (row["attack"], row["tp"], row["fn"], row["roc_auc"]) == ("all", 1, 1, 0.5)
    assert [m["collapsed"] for m in new["models"]] == [True, True, True, False]


def test_rescore_refuses_bad_sources_before_writing(tmp_path, capsys):
    import json

    from benchmarks.scan import main

    other = tmp_path / "speed.json"
    other.write_text(json.dumps({"results": [{"fps": 30.0}]}))  # another benchmark's results
    out = tmp_path / "new.json"
    for source, message in [(other, "not a scan benchmark's results"), (tmp_path / "missing.json", "cannot read"),
                            (other, "different --json")]:
        target = other if message == "different --json" else out
        with pytest.raises(SystemExit) as stop:
            main(["--rescore", str(source), "--json", str(target)])
        assert stop.value.code == 2 and message in capsys.readouterr().err
    assert not out.exists() and json.loads(other.read_text()) == {"results": [{"fps": 30.0}]}


def test_repair_rounds_rescan_and_unlearn_every_generator_found(monkeypatch):
    """Round 2 re-scans the repaired model and unlearns the first and the new generator
    together, clean copies matching; a re-scan without a collapse ends the repair."""
    import importlib

    import edgeguard.scan.drmguard as drmguard
    from edgeguard.data.dataset import ImageDataset
    from edgeguard.scan import RepairConfig, ScanResult, repair
    from edgeguard.train import TrainHistory

    class Shift(nn.Module):  # a stand-in generator: x + offset
        def __init__(self, offset):
            super().__init__()
            self.offset = offset

        def forward(self, x):
            return x + self.offset

    images = np.full((6, 4, 5, 1), 100, np.uint8)
    labels = np.arange(12, dtype=np.float32).reshape(6, 2)
    g0, g1 = Shift(0.1), Shift(0.2)
    rescans = iter([(True, g1), (False, Shift(0.3))])
    fitted = []
    repair_module = importlib.import_module("edgeguard.scan.repair")  # the package exports a function of that name

    def fake_scan(model, imgs, config, progress=True):
        assert config.outputs == "regression" and np.array_equal(imgs, images)
        collapsed, generator = next(rescans)
        return ScanResult(0.01, 0.02, collapsed, 0.05 if collapsed else 0.5, collapsed, np.zeros(2), [], 0.0, generator)

    def fake_fit(model, data, train, progress=True, freeze_norm=False):
        fitted.append(data)
        return TrainHistory()

    monkeypatch.setattr(drmguard, "scan", fake_scan)
    monkeypatch.setattr(repair_module, "fit", fake_fit)
    model = nn.Linear(20, 2)
    done = repair(model, g0, ImageDataset(images, labels, "regression"), RepairConfig(rounds=3), progress=False)
    assert (done.rounds, len(done.rescans), done.generators) == (2, 2, [g0, g1])
    first, second = fitted
    assert len(first) == 12 and len(second) == 24
    # round 2: clean, clean, g0(clean), g1(clean), every copy with the frames' labels
    assert [int(v) for v in second.images[:, 0, 0, 0][::6]] == [100, 100, 126, 151]
    np.testing.assert_array_equal(second.labels, np.concatenate([labels] * 4))

    monkeypatch.setattr(drmguard, "scan", lambda *a, **k: pytest.fail("one round re-scans nothing"))
    assert repair(model, g0, ImageDataset(images, labels, "regression"), RepairConfig(rounds=1),
                  progress=False).rounds == 1
    with pytest.raises(InvalidArgumentError, match="rounds"):
        RepairConfig(rounds=0)


def test_benchmark_runs_a_zoo_file_end_to_end_with_training_and_scanning_stubbed(tmp_path, monkeypatch, capsys):
    """--zoo FILE: every model is trained, the dropped ones are listed and not scanned, the
    kept ones are scanned and scored; job counts are validated before any work."""
    import json

    import benchmarks.scan as bench

    zoo = {"dataset": "gaze", "models": [{"attack": "none", "seed": 1}, {"attack": "none", "seed": 2},
                                      {"attack": "badnets", "seed": 3, "target": [0.1, 0.1]},
                                      {"attack": "blended", "seed": 4, "target": [0.0, 0.2]}]}
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(zoo))
    calls = {"train": [], "scan": []}

    def train(zoo, name, threads):
        calls["train"].append(name)
        return [{"name": name, "tries": []}] if name == "blended-0" else []

    def scan(zoo, name, methods, repair, threads):
        calls["scan"].append((name, threads, repair))
        attack = "none" if name.startswith("benign") else "badnets"
        statistic = {"benign-0": 0.02, "benign-1": 0.022, "badnets-0": 0.001}[name]  # LOO: no FP
        return [{"attack": attack, "index": int(name[-1]), "method": "drmguard", "statistic": statistic,
                 "residual_variance": 0.0, "collapsed": True, "seconds": 1.0}], []

    monkeypatch.setattr(bench, "_train_job", train)
    monkeypatch.setattr(bench, "_scan_job", scan)
    out = tmp_path / "out.json"
    for flag in ("--jobs", "--scan-jobs"):
        with pytest.raises(SystemExit) as stop:
            bench.main(["--zoo", str(path), "--quick", flag, "0", "--json", str(out)])
        assert stop.value.code == 2 and f"{flag} must be >= 1" in capsys.readouterr().err
    for chosen in ("benign-0,benign-1", "benign-0,badnets-0"):  # cannot be scored: refused before training
        with pytest.raises(SystemExit) as stop:
            bench.main(["--zoo", str(path), "--quick", "--models", chosen, "--json", str(out)])
        assert stop.value.code == 2 and ">= 2 benign models and >= 1 backdoored" in capsys.readouterr().err
    assert calls == {"train": [], "scan": []} and not out.exists()

    assert bench.main(["--zoo", str(path), "--quick", "--methods", "drmguard", "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert calls["train"] == ["benign-0", "benign-1", "badnets-0", "blended-0"]
    assert [name for name, _, _ in calls["scan"]] == ["benign-0", "benign-1", "badnets-0"]
    assert record["dropped"] == [{"name": "blended-0", "tries": []}]
    assert record["config"]["zoo"] == str(path) and record["config"]["scan_jobs"] == 1  # outside the repo: as given
    assert bench.zoo_shown(str(Path(bench.__file__).parent / "zoos" / "gaze_quick.json")) == str(
        Path("benchmarks") / "zoos" / "gaze_quick.json")
    pooled = record["results"][-1]
    assert (pooled["attack"], pooled["tp"], pooled["fp"], pooled["roc_auc"]) == ("all", 1, 0, 1.0)


def test_scan_model_checks_the_frames_against_the_model_spec_before_any_work(tmp_path):
    from edgeguard.data.dataset import ImageDataset
    from edgeguard.runtime.spec import ModelSpec
    from edgeguard.scan.workflow import MIN_SCAN_IMAGES, check_scan_inputs, scan_model

    rng = np.random.default_rng(0)
    gaze = ImageDataset(rng.integers(0, 255, (MIN_SCAN_IMAGES, 36, 60, 1), dtype=np.uint8),
                        rng.uniform(-0.5, 0.5, (MIN_SCAN_IMAGES, 2)).astype(np.float32), "regression")
    model = ToyGaze(backdoor=False)
    model.spec = ModelSpec(role="model", input_shape=(1, 36, 60), output="regression", outputs=2)
    check_scan_inputs(model, gaze, MIN_SCAN_IMAGES)  # fits: no error
    with pytest.raises(InvalidArgumentError, match=f">= {MIN_SCAN_IMAGES}"):
        check_scan_inputs(model, gaze, MIN_SCAN_IMAGES - 1)
    with pytest.raises(InvalidInputError, match="at least"):
        check_scan_inputs(model, gaze.subset(np.arange(MIN_SCAN_IMAGES - 1)), MIN_SCAN_IMAGES)
    model.spec = ModelSpec(role="model", input_shape=(3, 36, 60), output="regression", outputs=2)
    with pytest.raises(InvalidInputError, match="never broadcasts"):  # grey frames, colour model
        check_scan_inputs(model, gaze, MIN_SCAN_IMAGES)
    model.spec = ModelSpec(role="model", input_shape=(1, 36, 60), output="classification", outputs=2)
    with pytest.raises(InvalidInputError, match="another task"):
        check_scan_inputs(model, gaze, MIN_SCAN_IMAGES)
    model.spec = ModelSpec(role="model", input_shape=(1, 36, 60), output="regression", outputs=3)
    with pytest.raises(InvalidInputError, match="2 label dimensions"):
        check_scan_inputs(model, gaze, MIN_SCAN_IMAGES)
    with pytest.raises(InvalidInputError):
        scan_model(model, gaze, tmp_path / "report", progress=False)
    assert not (tmp_path / "report").exists()
