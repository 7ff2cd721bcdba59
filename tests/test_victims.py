import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgeguard import cache
from edgeguard.errors import InvalidArgumentError
from edgeguard.train import TrainConfig, predict
from edgeguard.bench.victims import VictimConfig, get_victim

TINY = dict(n_train=512, n_test=128, num_classes=16, train=TrainConfig(epochs=1, batch_size=64))


def test_victim_is_cached_by_config():
    cfg = VictimConfig(dataset="signs", attack="none", **TINY)
    first = get_victim(cfg, progress=False)
    assert not first.from_cache and set(first.metrics) == {"ca"}
    second = get_victim(cfg, progress=False)
    assert second.from_cache and second.metrics == first.metrics
    x = first.test.images[:8]
    np.testing.assert_allclose(predict(second.model, x), predict(first.model, x), atol=1e-6)
    assert cache.config_key(cfg) != cache.config_key(VictimConfig(dataset="signs", attack="none", **{**TINY, "n_train": 640}))


def test_patch_backdoor_is_learned():
    # A large patch so a 1/8-width model learns it in seconds; the default 3x3 patch needs
    # far longer training at this width (see benchmarks/attacks.py).
    cfg = VictimConfig(dataset="signs", attack="badnets", attack_options={"size": 12}, n_train=4000, n_test=256,
                       num_classes=16, train=TrainConfig(epochs=5, crop_padding=0))
    victim = get_victim(cfg, progress=False)
    assert victim.metrics["asr"] > 0.8
    assert victim.metrics["asr"] + victim.metrics["ba"] <= 1.0 + 1e-9


def test_lc_uses_the_clean_model_as_surrogate():
    cfg = VictimConfig(dataset="signs", attack="lc", attack_options={"steps": 2}, **TINY)
    victim = get_victim(cfg, progress=False)
    assert set(victim.metrics) == {"ca", "asr", "ba"}
    assert get_victim(cfg.clean(), progress=False).from_cache  # trained once as LC's surrogate


def test_iab_generators_are_restored_from_cache():
    cfg = VictimConfig(dataset="signs", attack="iab", attack_options={"mask_epochs": 1}, **TINY)
    trained = get_victim(cfg, progress=False)
    loaded = get_victim(cfg, progress=False)
    assert loaded.from_cache
    np.testing.assert_array_equal(loaded.backdoor.images, trained.backdoor.images)


def test_gaze_victim_reports_angular_metrics():
    cfg = VictimConfig(dataset="gaze", attack="badnets", **TINY)
    victim = get_victim(cfg, progress=False)
    assert set(victim.metrics) == {"clean_err_deg", "attack_err_deg", "asr_at_5deg"}
    assert victim.backdoor.targets.shape == (128, 2)


def test_bad_config():
    with pytest.raises(InvalidArgumentError):
        VictimConfig(dataset="faces")
    with pytest.raises(InvalidArgumentError):
        get_victim(VictimConfig(dataset="gaze", attack="lc", **TINY), progress=False)


def test_eigenguard_victims_train_protected_and_cache_apart():
    from edgeguard.eigenguard import EigenGuardConfig, guards

    plain = VictimConfig(dataset="gaze", attack="badnets", **TINY)
    cfg = VictimConfig(dataset="gaze", attack="badnets", eigenguard=EigenGuardConfig(k=2), **TINY)
    assert cfg.eigenguard_at == "layer2"
    assert cache.config_key(cfg) != cache.config_key(plain)
    assert cache.config_key(plain) == cache.config_key(VictimConfig(dataset="gaze", attack="badnets", eigenguard=None, **TINY))
    victim = get_victim(cfg, progress=False)
    (guard,) = guards(victim.model)
    assert guard.batches_seen > 0 and not victim.model.training
    assert np.isfinite(victim.metrics["clean_err_deg"])
    again = get_victim(cfg, progress=False)  # the guard's running statistics come back from the cache
    assert again.from_cache
    x = victim.test.images[:4]
    np.testing.assert_allclose(predict(again.model, x), predict(victim.model, x), atol=1e-5)


def test_renamed_dataset_field_keeps_the_cache_keys_of_0_1():
    # 0.1 called the field "task"; keyed by that name, every victim cached before the rename stays valid.
    keyed = cache._jsonable(VictimConfig(dataset="gaze"))
    assert keyed["task"] == "gaze" and "dataset" not in keyed


def test_a_victim_of_a_user_trigger_trains_and_caches_by_the_trigger_pixels():
    sticker = np.random.default_rng(0).integers(0, 256, (5, 5, 3), dtype=np.uint8)
    cfg = VictimConfig(dataset="signs", attack="trigger", attack_options={"image": sticker, "position": "center"},
                       **TINY)
    other = VictimConfig(dataset="signs", attack="trigger", attack_options={"image": 255 - sticker, "position": "center"},
                         **TINY)
    assert cache.config_key(cfg) != cache.config_key(other)
    victim = get_victim(cfg, progress=False)
    assert set(victim.metrics) == {"ca", "asr", "ba"}
    centre = victim.backdoor.images[:, 13:18, 13:18]
    assert np.array_equal(centre, np.broadcast_to(sticker, centre.shape))


def test_load_only_asks_refuse_to_train_and_say_how():
    from edgeguard.bench.restorer import RestorerConfig, get_restorer
    from edgeguard.errors import CacheMissError

    cfg = VictimConfig(dataset="gaze", attack="none", seed=7, **TINY)
    with pytest.raises(CacheMissError, match="edgeguard attack"):
        get_victim(cfg, progress=False, allow_training=False)
    trained = get_victim(cfg, progress=False)
    assert get_victim(cfg, progress=False, allow_training=False).from_cache and not trained.from_cache
    small = RestorerConfig(steps=2, batch_size=8, warmup_steps=1, seed=7)
    with pytest.raises(CacheMissError, match="train-mae"):
        get_restorer(small, progress=False, allow_training=False)
    first = get_restorer(small, progress=False)
    again = get_restorer(small, progress=False, allow_training=False)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))


def test_a_damaged_cache_entry_is_reported_and_rebuilt_to_the_same_model(caplog):
    cfg = VictimConfig(dataset="signs", attack="none", seed=11, **TINY)
    first = get_victim(cfg, progress=False)
    folder = cache.cache_root() / "victims" / cache.config_key(cfg, cfg.make_attack())
    assert cache.problems(folder) == [] and sorted(p.name for p in folder.iterdir()) == [
        "entry.json", "model.safetensors", "victim.json"]  # sealed, no checkpoint left
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # truncated
    with caplog.at_level("WARNING"):
        again = get_victim(cfg, progress=False)
    assert "model.safetensors: checksum differs" in caplog.text and str(folder) in caplog.text
    assert not again.from_cache and cache.problems(folder) == []
    x = first.test.images[:8]
    np.testing.assert_allclose(predict(again.model, x), predict(first.model, x), atol=1e-6)


def test_an_entry_from_before_manifests_is_adopted_and_one_that_cannot_load_is_rebuilt(caplog):
    cfg = VictimConfig(dataset="signs", attack="none", seed=12, **TINY)
    get_victim(cfg, progress=False)
    folder = cache.cache_root() / "victims" / cache.config_key(cfg, cfg.make_attack())
    (folder / cache.MANIFEST).unlink()  # as written by 0.1
    assert get_victim(cfg, progress=False).from_cache and cache.problems(folder) == []  # sealed as it was
    (folder / cache.MANIFEST).unlink()
    (folder / "victim.json").write_text("{")  # unsealed and broken: found when it loads
    with caplog.at_level("WARNING"):
        assert not get_victim(cfg, progress=False).from_cache
    assert "cannot load it" in caplog.text and cache.problems(folder) == []


def test_no_cache_neither_resumes_nor_leaves_a_checkpoint():
    cfg = VictimConfig(dataset="signs", attack="none", seed=13, **TINY)
    folder = cache.cache_root() / "victims" / cache.config_key(cfg, cfg.make_attack())
    folder.mkdir(parents=True)
    (folder / "checkpoint.pt").write_bytes(b"a stale checkpoint that must not be read")
    victim = get_victim(cfg, progress=False, use_cache=False)
    assert not victim.from_cache and [p.name for p in folder.iterdir()] == ["checkpoint.pt"]


def test_an_attack_object_in_a_victim_config_is_refused_with_the_way_to_pass_it():
    from edgeguard.attacks import get_attack
    from edgeguard.bench.victims import VictimConfig
    from edgeguard.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="attack_options"):
        VictimConfig(attack=get_attack("badnets"))


def test_train_model_trains_on_your_data_and_carries_its_spec():
    from edgeguard.data import ImageDataset, make_gaze
    from edgeguard.errors import InvalidArgumentError
    from edgeguard.train import TrainConfig, predict, train_model

    data = make_gaze(96, seed=5)
    model = train_model(data, TrainConfig(epochs=1, batch_size=32), width=0.125, progress=False)
    assert model.spec.input_shape == (1, 36, 60) and model.spec.output == "regression" and model.spec.outputs == 2
    assert model.config.in_channels == 1 and not model.training
    grey_classes = ImageDataset(data.images, np.arange(96) % 3, "classification")  # grey frames, colour default arch
    classifier = train_model(grey_classes, TrainConfig(epochs=1, batch_size=32), width=0.125, progress=False)
    assert classifier.config.in_channels == 1 and classifier.spec.input_shape == (1, 36, 60)
    assert predict(classifier, data.images[:4]).shape == (4, 3)
    with pytest.raises(InvalidArgumentError, match="fewer than one batch"):
        train_model(data, TrainConfig(epochs=1, batch_size=128), progress=False)
