import numpy as np
import pytest

from conftest import toy_classification, toy_regression
from edgeguard.attacks import get_attack, list_attacks
from edgeguard.attacks.triggers import BDMAE_COLOR_PATCH
from edgeguard.errors import InvalidArgumentError, InvalidInputError


def test_registry_lists_all_attacks_and_rejects_unknown():
    assert {"badnets", "blended", "blended_patch", "sig", "lc", "wanet", "iab", "spread"} <= set(list_attacks())
    with pytest.raises(InvalidArgumentError, match="unknown attack"):
        get_attack("nope")
    with pytest.raises(InvalidArgumentError, match="no option"):
        get_attack("wanet", kk=3)
    with pytest.raises(InvalidArgumentError):
        get_attack("badnets", poison_rate=1.5)


def test_badnets_white_patch_replaces_bottom_right(toy_train):
    a = get_attack("badnets", pattern="white").fit(toy_train)
    x = toy_train.images[:4]
    out = a.apply(x)
    assert (out[:, 29:, 29:] == 255).all()
    np.testing.assert_array_equal(out[:, :29], x[:, :29])
    np.testing.assert_array_equal(out[:, :, :29], x[:, :, :29])


def test_badnets_color_patch_is_bdmae_pattern(toy_train):
    out = get_attack("badnets", pattern="color").fit(toy_train).apply(toy_train.images[:2])
    np.testing.assert_array_equal(out[0, 16:19, 27:30], BDMAE_COLOR_PATCH)


def test_badnets_scales_to_224_px():
    big = toy_classification(4, size=224)
    out = get_attack("badnets", pattern="white").fit(big).apply(big.images)
    assert (out[:, -15:, -15:] == 255).all() and not (out[:, -16, -16] == 255).all()


def test_dirty_label_poisoning(toy_train):
    a = get_attack("badnets", pattern="white", poison_rate=0.1).fit(toy_train)
    p = a.poison(toy_train)
    assert len(p.poison_index) == round(0.1 * len(toy_train))
    assert (p.data.labels[p.poison_index] == 0).all()
    rest = np.setdiff1d(np.arange(len(toy_train)), p.poison_index)
    np.testing.assert_array_equal(p.data.labels[rest], toy_train.labels[rest])
    np.testing.assert_array_equal(p.data.images[rest], toy_train.images[rest])
    assert (p.data.images[p.poison_index, 29:, 29:] == 255).all()
    # deterministic by seed, different with another seed
    np.testing.assert_array_equal(a.poison(toy_train).poison_index, p.poison_index)
    other = get_attack("badnets", pattern="white", seed=1).fit(toy_train).poison(toy_train).poison_index
    assert not np.array_equal(other, p.poison_index)


def test_clean_label_poisons_only_target_class(toy_train):
    a = get_attack("sig").fit(toy_train)
    p = a.poison(toy_train)
    assert len(p.poison_index) == min(round(0.1 * len(toy_train)), int((toy_train.labels == 0).sum()))
    assert (toy_train.labels[p.poison_index] == 0).all()
    np.testing.assert_array_equal(p.data.labels, toy_train.labels)


def test_all_to_all_targets_and_backdoor_test_set(toy_test):
    one = get_attack("badnets").fit(toy_test).backdoor_test(toy_test)
    assert (one.labels != 0).all() and (one.targets == 0).all()
    assert len(one.index) == int((toy_test.labels != 0).sum())
    a2a = get_attack("badnets", all_to_all=True).fit(toy_test).backdoor_test(toy_test)
    assert len(a2a.index) == len(toy_test)
    np.testing.assert_array_equal(a2a.targets, (a2a.labels + 1) % toy_test.num_classes)


def test_blended_is_alpha_blend(toy_train):
    a = get_attack("blended", alpha=0.2).fit(toy_train)
    x = toy_train.images[:3]
    expected = 0.8 * x.astype(float) + 0.2 * a.trigger_.astype(float)
    assert np.abs(a.apply(x).astype(float) - expected).max() <= 0.5 + 1e-6


def test_blended_patch_is_local(toy_train):
    a = get_attack("blended_patch").fit(toy_train)
    x = toy_train.images[:3]
    diff = np.abs(a.apply(x).astype(int) - x.astype(int)).sum(axis=(0, 3))
    rows, cols = np.nonzero(diff)
    lo, hi = 32 - 6 - 6, 32 - 6  # 6 px wide, 6 px from the border
    assert rows.min() >= lo and cols.min() >= lo and rows.max() < hi and cols.max() < hi


def test_sig_adds_sinusoid(toy_train):
    a = get_attack("sig").fit(toy_train)
    x = np.full((1, 32, 32, 3), 128, np.uint8)
    d = a.apply(x).astype(float)[0, 0, :, 0] - 128
    expected = 40 * np.sin(2 * np.pi * np.arange(32) * 6 / 32)
    assert np.abs(d - expected).max() <= 0.5 + 1e-6


def test_lc_corners_and_bounded_pgd(toy_train):
    pytest.importorskip("torch")
    from edgeguard.models import create_model

    a = get_attack("lc", steps=3).fit(toy_train)
    out = a.apply(toy_train.images[:2])
    for r, c in ((0, 0), (0, 29), (29, 0), (29, 29)):
        np.testing.assert_array_equal(out[0, r : r + 3, c : c + 3, 0], [[255, 0, 255], [0, 255, 0], [255, 0, 255]])
    with pytest.raises(InvalidArgumentError, match="surrogate"):
        a.poison(toy_train)
    model = create_model("preact_resnet18", num_outputs=8, width=0.125).eval()
    p = a.poison(toy_train, surrogate=model)
    idx = p.poison_index
    inner = (slice(None), slice(4, 28), slice(4, 28))
    delta = np.abs(p.data.images[idx][inner].astype(int) - toy_train.images[idx][inner].astype(int))
    assert 0 < delta.max() <= round(16 / 255 * 255) + 1


def test_wanet_warp_is_small_deterministic_and_seeded(toy_train):
    pytest.importorskip("torch")
    x = toy_train.images[:8]
    a = get_attack("wanet").fit(toy_train)
    out = a.apply(x)
    diff = np.abs(out.astype(float) - x.astype(float)).mean()
    assert 0.5 < diff < 30
    np.testing.assert_array_equal(out, get_attack("wanet").fit(toy_train).apply(x))
    assert not np.array_equal(out, get_attack("wanet", seed=3).fit(toy_train).apply(x))


def test_wanet_hook_poisons_first_samples_and_keeps_cross_labels(toy_train):
    torch = pytest.importorskip("torch")
    from edgeguard.data.dataset import to_float_nchw

    a = get_attack("wanet").fit(toy_train)
    hook = a.training_hook(toy_train)
    x = torch.from_numpy(to_float_nchw(toy_train.images[:128]))
    y = torch.from_numpy(toy_train.labels[:128])
    xo, yo, extra = hook(x, y)
    n_bd = round(0.1 * 128)
    assert extra is None
    assert (yo[:n_bd] == 0).all()
    assert torch.equal(yo[n_bd:], y[n_bd:])
    changed = (xo - x).abs().flatten(1).max(1).values > 1e-6
    assert changed[: 3 * n_bd].all() and not changed[3 * n_bd :].any()


def test_input_aware_state_round_trip_and_sparse_mask(toy_train):
    torch = pytest.importorskip("torch")
    small = toy_train.subset(slice(0, 256))
    a = get_attack("iab", mask_epochs=2).fit(small)
    hook = a.training_hook(small, progress=False)
    from edgeguard.data.dataset import to_float_nchw

    x = torch.from_numpy(to_float_nchw(toy_train.images[:64]))
    with torch.no_grad():
        density = float(a.mask_net_(x).mean())
    assert density < 0.3
    y = torch.from_numpy(toy_train.labels[:64])
    xo, yo, div = hook(x, y)
    n_bd = round(0.1 * 64)
    assert torch.isfinite(div) and xo.shape == x.shape
    assert (yo[:n_bd] == 0).all() and torch.equal(yo[n_bd:], y[n_bd:])
    assert torch.equal(xo[2 * n_bd :], x[2 * n_bd :])
    b = get_attack("iab", mask_epochs=2).fit(small)
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a.apply(toy_train.images[:4]), b.apply(toy_train.images[:4]))


def test_regression_targets_and_test_set():
    data = toy_regression(64)
    a = get_attack("badnets").fit(data)
    bd = a.backdoor_test(data)
    assert len(bd.index) == len(data)
    np.testing.assert_allclose(bd.targets, np.tile([0.2, -0.4], (64, 1)), atol=1e-6)
    p = get_attack("blended", target=(0.1, 0.1)).fit(data).poison(data)
    np.testing.assert_allclose(p.data.labels[p.poison_index], 0.1, atol=1e-6)
    with pytest.raises(InvalidArgumentError):
        get_attack("badnets", all_to_all=True).fit(data)
    with pytest.raises(InvalidArgumentError):
        get_attack("badnets", target=(0.1, 0.2, 0.3)).fit(data)


def test_bad_input_is_rejected(toy_train):
    a = get_attack("badnets")
    with pytest.raises(InvalidArgumentError, match="fit"):
        a.apply(toy_train.images[:1])
    a.fit(toy_train)
    with pytest.raises(InvalidInputError):
        a.apply(toy_train.images[:1].astype(np.float32))
    with pytest.raises(InvalidInputError):
        a.apply(toy_train.images[:1, :16])
    with pytest.raises(InvalidArgumentError):
        get_attack("badnets", target=99).fit(toy_train)


def test_lc_margin_moves_the_corner_patterns_inward(toy_train):
    x = np.zeros((1, 32, 32, 3), np.uint8)
    out = get_attack("lc", margin=3).fit(toy_train).apply(x)
    assert out[0, 3, 3, 0] == 255 and out[0, 28, 28, 0] == 255  # white checkerboard corners
    assert out[0, :3].max() == 0 and out[0, :, :3].max() == 0
    with pytest.raises(InvalidArgumentError):
        get_attack("lc", margin=14).fit(toy_train)


def test_spread_stamps_one_of_many_patches_per_image_deterministically(toy_train):
    a = get_attack("spread", patterns=4, seed=3).fit(toy_train)
    x = toy_train.images[:40]
    out = a.apply(x)
    np.testing.assert_array_equal(out, a.apply(x))  # same frame, same pattern
    used = set()
    for before, after in zip(x, out):
        changed = np.argwhere((before != after).any(axis=-1))
        (top, left), (bottom, right) = changed.min(axis=0), changed.max(axis=0)
        assert bottom - top < 3 and right - left < 3  # one 3x3 patch, nothing else
        hits = [p for p in range(4) if tuple(a.positions_[p]) <= (top, left)
                and (after[a.positions_[p][0]:a.positions_[p][0] + 3, a.positions_[p][1]:a.positions_[p][1] + 3] == a.patches_[p]).all()]
        used.update(hits)
        assert hits
    assert len(used) > 1  # the poison is spread over several patterns
    p = a.poison(toy_train)
    assert (p.data.labels[p.poison_index] == 0).all()
    with pytest.raises(InvalidArgumentError):
        get_attack("spread", patterns=0).fit(toy_train)


# --- a user's own trigger ---


def _sticker(h=4, w=5, seed=3):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("position, corner", [("bottom_right", (32 - 4 - 2, 32 - 5 - 2)), ("top_left", (2, 2)),
                                              ("center", (14, 13)), ((7, 9), (7, 9))])
def test_a_user_trigger_is_stamped_where_its_rule_says(position, corner):
    data = toy_classification(6)
    sticker = _sticker()
    attack = get_attack("trigger", image=sticker, position=position, margin=2).fit(data)
    out = attack.apply(data.images)
    top, left = corner
    assert np.array_equal(out[:, top:top + 4, left:left + 5], np.broadcast_to(sticker, (6, 4, 5, 3)))
    outside = np.ones((32, 32), bool)
    outside[top:top + 4, left:left + 5] = False
    assert np.array_equal(out[:, outside], data.images[:, outside])  # nothing else moves


def test_a_user_trigger_blends_through_its_alpha_map_and_matches_grey_frames():
    data = toy_regression(3)  # grey 36x60 frames
    sticker = np.full((4, 4), 200, np.uint8)
    shape = np.zeros((4, 4), np.float32)
    shape[1:3, 1:3] = 0.5  # a small blended square inside a transparent frame
    attack = get_attack("trigger", image=sticker, alpha=shape, position=(10, 20)).fit(data)
    out = attack.apply(data.images).astype(np.float32)
    x = data.images.astype(np.float32)
    np.testing.assert_allclose(out[:, 11:13, 21:23], np.rint(0.5 * x[:, 11:13, 21:23] + 0.5 * 200))
    assert np.array_equal(out[:, 10, 20:24], x[:, 10, 20:24])  # alpha 0: untouched


def test_a_moving_trigger_is_placed_anew_per_frame_but_repeatably():
    data = toy_classification(20)
    attack = get_attack("trigger", image=_sticker(3, 3), position="random", seed=5).fit(data)
    places = attack.positions(20)
    assert len({tuple(p) for p in places}) > 5 and places.min() >= 0 and places.max() <= 32 - 3
    assert np.array_equal(attack.apply(data.images), attack.apply(data.images))
    poisoned = attack.poison(data)
    assert len(poisoned.poison_index) == 2 and (poisoned.data.labels[poisoned.poison_index] == 0).all()


@pytest.mark.parametrize("options, words", [
    ({}, "needs image"), ({"image": np.zeros((4, 4, 3), np.float32)}, "uint8"),
    ({"image": np.zeros((40, 4, 3), np.uint8)}, "does not fit"), ({"image": np.zeros((4, 4), np.uint8), "alpha": 1.5}, "alpha"),
    ({"image": np.zeros((4, 4), np.uint8), "position": "middle"}, "position"),
    ({"image": np.zeros((4, 4), np.uint8), "position": (30, 0)}, "outside"),
    ({"image": np.zeros((4, 4), np.uint8), "margin": 30}, "margin"),
])
def test_a_bad_user_trigger_is_refused_at_fit(options, words):
    with pytest.raises(InvalidArgumentError, match=words):
        get_attack("trigger", **options).fit(toy_classification(4))


def test_badnets_points_to_the_user_trigger_for_a_patch_of_ones_own():
    with pytest.raises(InvalidArgumentError, match="'trigger' attack"):
        get_attack("badnets", pattern=_sticker()).fit(toy_classification(4))


def test_cache_keys_tell_trigger_images_apart_by_content():
    from edgeguard import cache

    a = np.zeros((64, 64, 3), np.uint8)
    b = a.copy()
    b[32, 32, 1] = 1  # str() of both arrays is the same elided text
    assert str(a) == str(b)
    key = lambda image: cache.config_key(get_attack("trigger", image=image))  # noqa: E731
    assert key(a) != key(b) and key(a) == key(a.copy())
