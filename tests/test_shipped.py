"""The demo's weights that ship with the package: checksums, the configs that made them,
and that they are what an empty cache loads (so `make demo` needs no training)."""
import hashlib
import json
import shutil
from importlib import resources

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from edgeguard.bench import shipped  # noqa: E402
from edgeguard.errors import CacheMissError, ModelFormatError  # noqa: E402

ROOT = resources.files("edgeguard") / "weights"


def test_every_shipped_file_matches_its_recorded_checksum():
    record = json.loads((ROOT / shipped.MANIFEST).read_text())
    names = [f["name"] for e in record["entries"] for f in e["files"].values()]
    assert {"victims", "restorers"} <= {e["kind"] for e in record["entries"]}
    for entry in record["entries"]:
        for f in entry["files"].values():
            assert hashlib.sha256((ROOT / f["name"]).read_bytes()).hexdigest() == f["sha256"], f["name"]
    # nothing ships that the manifest does not describe
    assert sorted(p.name for p in ROOT.iterdir() if p.name != shipped.MANIFEST) == sorted(names)
    assert shipped.problems() == []


def test_shipped_weights_were_made_by_todays_demo_configs():
    """A changed default changes the key, so this fails until `make demo-weights` reruns."""
    from edgeguard.bench.restorer import FINETUNE, RestorerConfig, restorer_key
    from edgeguard.bench.victims import VictimConfig, restorer_images, victim_key

    config = VictimConfig(dataset="signs", attack="badnets")
    assert shipped.find("victims", victim_key(config)) is not None
    assert shipped.find("restorers", restorer_key(RestorerConfig(), FINETUNE, restorer_images(config))) is not None
    assert shipped.find("restorers", restorer_key(RestorerConfig())) is not None  # what fine-tuning starts from


def test_an_empty_cache_loads_the_shipped_models_and_they_work(tmp_path, monkeypatch):
    from edgeguard.bench.demo import demo_models
    from edgeguard.bench.restorer import RestorerConfig, get_restorer, restoration_psnr, restorer_key
    from edgeguard.data.photos import random_crops
    from edgeguard.data.signs import make_signs
    from edgeguard.train import predict

    monkeypatch.setenv("EDGEGUARD_CACHE", str(tmp_path / "cache"))
    with pytest.raises(CacheMissError):  # without the shipped layer an empty cache has nothing
        demo_models(progress=False, allow_training=False, use_shipped=False)
    victim, mae = demo_models(progress=False, allow_training=False)
    assert not list((tmp_path / "cache").rglob("*"))  # lookups leave no empty entry folders behind
    # measured here, not read from the manifest: the backdoored classifier and its trigger
    n = 300
    clean = predict(victim.model, victim.test.images[:n]).argmax(1)
    assert (clean == victim.test.labels[:n]).mean() >= 0.95
    bd = victim.backdoor
    assert (predict(victim.model, bd.images[:n]).argmax(1) == bd.targets[:n]).mean() >= 0.9
    tuned, base = (shipped.find("restorers", key)["psnr_db"] for key in
                   (restorer_key(RestorerConfig(), *_finetune_args(victim)), restorer_key(RestorerConfig())))
    assert restoration_psnr(mae, make_signs(1000, 12345).images) == pytest.approx(tuned["SynthSigns"], abs=0.05)
    photo_mae = get_restorer(RestorerConfig(), progress=False, allow_training=False)
    crops = random_crops(1000, 32, 5, scale=RestorerConfig().crop_scale, split="test")
    assert restoration_psnr(photo_mae, crops) == pytest.approx(base["photos"], abs=0.05)
    assert tuned["SynthSigns"] > 17 and base["photos"] > 20  # restorers that restore, not noise


def _finetune_args(victim):
    from edgeguard.bench.restorer import FINETUNE
    from edgeguard.bench.victims import restorer_images

    return FINETUNE, restorer_images(victim.config)


def test_a_damaged_shipped_file_is_refused_by_name(tmp_path):
    root = tmp_path / "weights"
    shutil.copytree(ROOT, root)
    record, = [e for e in shipped.manifest(root)["entries"] if e["kind"] == "victims"]
    path = root / record["files"]["model"]["name"]
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFormatError, match="reinstall"):
        shipped.read(record, "model", root)
    assert [p.split(":")[0] for p in shipped.problems(root)] == [record["files"]["model"]["name"]]
    for mae in [e for e in shipped.manifest(root)["entries"] if e["kind"] == "restorers"]:
        assert shipped.read(mae, "mae", root)  # the intact ones still load


def test_a_missing_manifest_means_nothing_ships(tmp_path):
    assert shipped.manifest(tmp_path) == {"entries": []}
    assert shipped.find("victims", "0" * 16, tmp_path) is None


def test_the_demo_runs_on_the_shipped_models_and_prints_each_defense(tmp_path, monkeypatch, capsys):
    """`make demo` at a few frames: every row printed, figures in range, the PNG written, and the
    gate calibrated on frames other than the ones shown."""
    from edgeguard.bench.demo import run_demo

    monkeypatch.setenv("EDGEGUARD_CACHE", str(tmp_path / "cache"))
    report = run_demo(tmp_path / "demo.png", frames=8, batch=8, progress=False)
    out = capsys.readouterr().out
    for row in ("no defense", "BDMAE ", "BDMAE + clean gate", "BDMAE fast"):
        assert f"\n  {row}" in out, out
    assert report["none"]["asr"] >= 0.75 and report["bdmae"]["asr"] <= 0.25  # the backdoor works; BDMAE removes it
    assert report["bdmae_calibrated"]["ca"] >= report["bdmae"]["ca"] and report["bdmae_calibrated"]["score_gate"] > 0
    assert report["bdmae_fast"]["asr"] <= 0.25 and report["bdmae_fast"]["rows_per_frame"] < 97
    assert (tmp_path / "demo.png").stat().st_size > 10_000
