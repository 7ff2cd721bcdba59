"""BDMAE purifier on a scripted black box: a model that answers the target class whenever a
bright 4x4 patch sits at a fixed place, and an oracle restorer that knows the clean frames.
Torch-free."""
import numpy as np
import pytest

from edgeguard.errors import InvalidArgumentError, InvalidInputError
from edgeguard.purify import Blur, PatchCleanser, Purifier, PurifierConfig, ShrinkPad, get_defense
from edgeguard.purify.frames import pixel_token_map
from edgeguard.runtime import Engine

TOP, LEFT = 12, 20  # trigger rows 12-15, cols 20-23: tokens (3, 5) of an 8x8 grid of 4-px patches


class ScriptedModel(Engine):
    """Class 0 when the trigger patch is bright, else 1 (dark frame) or 2 (light frame)."""

    backend = "test"
    input_names = ("image",)

    def _run(self, arrays):
        x = arrays[0]
        patch = x[:, :, TOP:TOP + 4, LEFT:LEFT + 4].mean(axis=(1, 2, 3))
        label = np.where(patch > 0.95, 0, np.where(x.mean(axis=(1, 2, 3)) < 0.5, 1, 2))
        return [np.eye(3, dtype=np.float32)[label] * 5]


class ScriptedRegressor(Engine):
    """Gaze (pitch, yaw) from brightness, pushed to (0.5, 0.5) rad by the trigger."""

    backend = "test"
    input_names = ("image",)

    def _run(self, arrays):
        x = arrays[0]
        patch = x[:, :, TOP:TOP + 4, LEFT:LEFT + 4].mean(axis=(1, 2, 3))
        base = np.stack([x.mean(axis=(1, 2, 3)) - 0.5, np.zeros(len(x))], axis=1) * 0.2
        return [np.where(patch[:, None] > 0.95, 0.5, base).astype(np.float32)]


class OracleRestorer(Engine):
    """Replaces masked pixels with the clean frame's pixels (looked up by content)."""

    backend = "test"
    input_names = ("image", "mask")
    metadata = {"mae_img_size": "32", "mae_patch_size": "4"}

    def __init__(self, clean_of):
        super().__init__()
        self.clean_of = clean_of
        self.pix2tok = pixel_token_map(32, 32, 32, 4)

    def _run(self, arrays):
        images, masks = arrays
        clean = np.stack([self.clean_of[img.tobytes()] for img in images])
        m = masks[:, self.pix2tok][:, None]
        return [images * (1 - m) + clean * m]


def _frames(n, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:32, :32] / 31.0
    base = rng.uniform(0.2, 0.8, (n, 3, 1, 1)) + 0.15 * np.sin(6 * xx + rng.uniform(0, 6, (n, 1, 1, 1))) * yy
    clean = np.clip(base + rng.normal(0, 0.02, (n, 3, 32, 32)), 0, 0.9).astype(np.float32)
    triggered = clean.copy()
    triggered[:, :, TOP:TOP + 4, LEFT:LEFT + 4] = 1.0
    return clean, triggered


@pytest.fixture(scope="module")
def setup():
    clean, triggered = _frames(6)
    lookup = {img.tobytes(): c for img, c in zip(np.concatenate([clean, triggered]), np.concatenate([clean, clean]))}
    return clean, triggered, OracleRestorer(lookup)


def test_backdoored_frames_get_their_true_answer(setup):
    clean, triggered, restorer = setup
    truth = ScriptedModel()(clean).argmax(1)
    result = Purifier(ScriptedModel(), restorer)(triggered)
    assert (result.original_prediction == 0).all()
    np.testing.assert_array_equal(result.prediction, truth)
    # The mask covers the trigger and stays far below the 25% cap.
    assert result.pixel_mask[:, TOP:TOP + 4, LEFT:LEFT + 4].all()
    assert result.pixel_mask.mean(axis=(1, 2)).max() <= 0.25
    assert (result.token_scores[:, 3, 5] > 0.6).all()
    assert result.model_calls == 47 and result.restorer_calls == 50
    assert result.changed.all()


def test_clean_frames_pass_unchanged(setup):
    clean, _, restorer = setup
    result = Purifier(ScriptedModel(), restorer)(clean)
    np.testing.assert_array_equal(result.prediction, result.original_prediction)
    assert not result.pixel_mask.any()
    np.testing.assert_array_equal(result.purified, clean)


def test_a_frame_result_does_not_depend_on_its_batch(setup):
    clean, triggered, restorer = setup
    mixed = np.concatenate([triggered[:3], clean[3:]])
    purifier = Purifier(ScriptedModel(), restorer)
    batch = purifier(mixed)
    for i in (0, 4):
        alone = purifier(mixed[i:i + 1])
        np.testing.assert_array_equal(alone.token_scores[0], batch.token_scores[i])
        np.testing.assert_array_equal(alone.purified[0], batch.purified[i])


def test_early_exit_skips_frames_stage1_finds_clean(setup):
    clean, triggered, restorer = setup
    mixed = np.concatenate([clean[:3], triggered[3:]])
    purifier = Purifier(ScriptedModel(), restorer, PurifierConfig(early_exit=0.0))
    result = purifier(mixed)
    faithful = Purifier(ScriptedModel(), restorer)(mixed)
    np.testing.assert_array_equal(result.purified[:3], clean[:3])  # no restoration moved their answer
    assert not result.pixel_mask[:3].any()
    np.testing.assert_array_equal(result.prediction, faithful.prediction)
    np.testing.assert_array_equal(result.purified[3:], faithful.purified[3:])
    # Exited frames cost 1 + 25 model and 25 restorer calls; the others 47 and 50.
    assert result.model_calls == (3 * 26 + 3 * 47) / 6 and result.restorer_calls == (3 * 25 + 3 * 50) / 6
    with pytest.raises(InvalidArgumentError):
        PurifierConfig(early_exit=1.0)


def test_first_round_exit_lets_frames_leave_after_five_masks_when_few_moved_their_answer(setup):
    from edgeguard import kernels

    clean, triggered, restorer = setup
    mixed = np.concatenate([clean[:3], triggered[3:]])
    faithful = Purifier(ScriptedModel(), restorer)(mixed)
    # Independent count: the oracle restorer removes the trigger (token (3, 5)) exactly in the
    # first-round masks that mask that token, and the scripted model then answers otherwise.
    first_round = kernels.stage1_masks(64, 5, 5, 0.75, 33333).reshape(5, 5, 64)[0]
    moved = float(first_round[:, 3 * 8 + 5].sum()) / 5
    assert moved >= 0.4  # every token is masked by 2 to 4 of a round's 5 masks
    result = Purifier(ScriptedModel(), restorer, PurifierConfig(first_round_exit=moved - 0.01))(mixed)
    np.testing.assert_array_equal(result.purified[:3], clean[:3])
    np.testing.assert_array_equal(result.flip_share[:3], 0.0)
    for field in ("purified", "prediction", "token_scores", "flip_share"):  # the others: faithful
        np.testing.assert_array_equal(getattr(result, field)[3:], getattr(faithful, field)[3:])
    # Left after one round: 1 + 5 model and 5 restorer calls; the others 47 and 50.
    assert result.model_calls == (3 * 6 + 3 * 47) / 6 and result.restorer_calls == (3 * 5 + 3 * 50) / 6
    # At a share the trigger's frames reach too, they leave with the trigger's answer.
    let_through = Purifier(ScriptedModel(), restorer, PurifierConfig(first_round_exit=moved))(mixed)
    np.testing.assert_array_equal(let_through.flip_share[3:], moved)
    np.testing.assert_array_equal(let_through.prediction, let_through.original_prediction)
    with pytest.raises(InvalidArgumentError, match="first_round_exit"):
        PurifierConfig(first_round_exit=1.0)


def test_the_fast_preset_removes_the_trigger_with_fewer_engine_rows(setup):
    clean, triggered, restorer = setup
    mixed = np.concatenate([clean, triggered])
    fast = Purifier(ScriptedModel(), restorer, PurifierConfig.fast())
    result = fast(mixed)
    truth = ScriptedModel()(np.concatenate([clean, clean])).argmax(1)
    np.testing.assert_array_equal(result.prediction, truth)
    faithful = Purifier(ScriptedModel(), restorer)(mixed)
    # Clean frames: 1 + 5 model and 5 restorer rows; triggered: 1 + 5 + 2 + 1 and 5 + 2 + 5.
    assert (result.model_calls, result.restorer_calls) == ((6 * 6 + 6 * 9) / 12, (6 * 5 + 6 * 12) / 12)
    assert faithful.model_calls + faithful.restorer_calls == 97
    assert PurifierConfig.fast(refine_steps=5).refine_steps == 5 and PurifierConfig.fast().seed == 33333
    # The score gate is refused for the preset's single round, before any work; with all 5
    # rounds (the first-round exit), calibration runs the full method on every clean frame.
    more, _ = _frames(10, seed=5)
    restorer = OracleRestorer({**restorer.clean_of, **{c.tobytes(): c for c in more}})
    counting = ScriptedModel()
    with pytest.raises(InvalidArgumentError, match="full stage 1"):
        Purifier(counting, restorer, PurifierConfig.fast()).calibrate(more, quantile=0.9)
    assert counting.calls == 0
    with pytest.raises(InvalidArgumentError, match="rounds=1"):
        PurifierConfig.fast(score_gate=0.5)
    gentle = PurifierConfig(first_round_exit=0.2, early_exit=0.3, refine_steps=3)
    gate = Purifier(ScriptedModel(), restorer, gentle).calibrate(more, quantile=0.9).config.score_gate
    every = Purifier(ScriptedModel(), restorer, PurifierConfig(refine_steps=3))(more)
    assert gate == pytest.approx(np.quantile(every.token_scores.reshape(10, -1).max(axis=1), 0.9), abs=1e-12)


def test_a_score_gate_keeps_frames_whose_scores_stay_under_it_and_leaves_the_rest_faithful(setup):
    clean, triggered, restorer = setup
    mixed = np.concatenate([clean, triggered])
    faithful = Purifier(ScriptedModel(), restorer)(mixed)
    highest = faithful.token_scores.reshape(len(mixed), -1).max(axis=1)
    gate = float(np.median(highest[len(clean):]))  # half the triggered frames fall under it
    gated = Purifier(ScriptedModel(), restorer, PurifierConfig(score_gate=gate))(mixed)
    under = highest <= gate
    assert 0 < under[len(clean):].sum() < len(triggered)
    np.testing.assert_array_equal(gated.purified[under], mixed[under])
    assert not gated.pixel_mask[under].any()
    np.testing.assert_array_equal(gated.prediction[under], gated.original_prediction[under])
    np.testing.assert_array_equal(gated.purified[~under], faithful.purified[~under])
    np.testing.assert_array_equal(gated.prediction[~under], faithful.prediction[~under])
    assert gated.model_calls == 47 - under.mean()  # no final query for a kept frame
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(InvalidArgumentError, match="score_gate"):
            PurifierConfig(score_gate=bad)


def test_calibration_sets_the_gate_at_a_quantile_of_the_clean_frames_highest_scores(setup):
    clean, triggered, restorer = setup
    more, _ = _frames(10, seed=5)
    restorer = OracleRestorer({**restorer.clean_of, **{c.tobytes(): c for c in more}})
    purifier = Purifier(ScriptedModel(), restorer, PurifierConfig(early_exit=0.2))
    calibrated = purifier.calibrate(more, quantile=0.9)
    faithful = Purifier(ScriptedModel(), restorer)(more)
    expected = np.quantile(faithful.token_scores.reshape(10, -1).max(axis=1), 0.9)
    assert calibrated.config.score_gate == pytest.approx(expected, abs=1e-12)
    assert calibrated.config.early_exit == 0.2 and purifier.config.score_gate is None  # a new purifier
    result = calibrated(np.concatenate([clean, triggered]))
    np.testing.assert_array_equal(result.prediction, ScriptedModel()(np.concatenate([clean, clean])).argmax(1))
    with pytest.raises(InvalidInputError, match="at least 10 clean frames"):
        purifier.calibrate(more[:9], quantile=0.9)
    with pytest.raises(InvalidArgumentError, match="quantile"):
        purifier.calibrate(more, quantile=1.0)


def test_the_purifier_gate_refuses_engines_that_change_the_purified_answers(setup):
    from edgeguard.deploy.purifier_gate import purifier_gate
    from edgeguard.errors import ModelFormatError

    clean, triggered, restorer = setup
    frames = np.concatenate([clean, triggered[:2]])  # 2 of 8 triggered

    class Unchanged(Engine):  # a "cheaper" restorer broken into returning its input
        backend, input_names, metadata = "test", ("image", "mask"), OracleRestorer.metadata

        def _run(self, arrays):
            return [arrays[0]]

    same = purifier_gate((ScriptedModel(), restorer), (ScriptedModel(), restorer), frames)
    assert same.disagreement == 0.0 and same.frames == 8 and same.changed_reference == 2 / 8
    # Without restorations the triggered frames keep the backdoor's answer: 2 of 8 differ.
    with pytest.raises(ModelFormatError, match="differ on 25.0% of 8 frames"):
        purifier_gate((ScriptedModel(), restorer), (ScriptedModel(), Unchanged()), frames)
    loose = purifier_gate((ScriptedModel(), restorer), (ScriptedModel(), Unchanged()), frames, max_disagreement=0.3)
    assert loose.disagreement == 2 / 8 and loose.changed_candidate == 0.0
    with pytest.raises(InvalidArgumentError):
        purifier_gate((ScriptedModel(), restorer), (ScriptedModel(), restorer), frames, max_disagreement=1.0)


def test_uint8_frames_round_trip(setup):
    clean, triggered, _ = setup
    frames = np.clip(triggered.transpose(0, 2, 3, 1) * 255 + 0.5, 0, 255).astype(np.uint8)
    as_float = frames.transpose(0, 3, 1, 2).astype(np.float32) / 255
    restorer = OracleRestorer({a.tobytes(): c for a, c in zip(as_float, clean)})
    result = Purifier(ScriptedModel(), restorer)(frames)
    assert result.purified.dtype == np.uint8 and result.purified.shape == frames.shape
    assert (result.prediction != 0).all()


def test_point_sampled_ssim_runs_too(setup):
    clean, triggered, restorer = setup
    result = Purifier(ScriptedModel(), restorer, PurifierConfig(ssim_mode="point"))(triggered)
    assert (result.prediction != 0).all()


def test_regression_uses_an_angular_tolerance(setup):
    clean, triggered, restorer = setup
    result = Purifier(ScriptedRegressor(), restorer, output="regression")(triggered)
    np.testing.assert_allclose(result.original_prediction, 0.5)
    np.testing.assert_allclose(result.prediction, ScriptedRegressor()(clean), atol=1e-6)


def test_the_output_kind_comes_from_the_model_spec_and_contradictions_are_refused(setup):
    from edgeguard.runtime import ModelSpec

    clean, triggered, restorer = setup

    class SpecRegressor(ScriptedRegressor):
        metadata = ModelSpec(role="model", input_shape=(3, 32, 32), output="regression", outputs=2).to_metadata()

    purifier = Purifier(SpecRegressor(), restorer)  # no kind given: the file says regression
    assert purifier.output == "regression"
    np.testing.assert_allclose(purifier(triggered).prediction, ScriptedRegressor()(clean), atol=1e-6)
    assert Purifier(ScriptedModel(), restorer).output == "classification"  # says nothing: the default
    with pytest.raises(InvalidArgumentError, match="spec says 'regression'"):
        Purifier(SpecRegressor(), restorer, output="classification")

    class SpecRestorer(OracleRestorer):
        metadata = ModelSpec(role="restorer", input_shape=(3, 32, 32), token_grid=8, patch_size=4).to_metadata()

    with pytest.raises(InvalidArgumentError, match="swapped"):
        Purifier(SpecRestorer({}), SpecRegressor())


def test_stage1_masks_follow_the_official_construction():
    masks = Purifier(ScriptedModel(), OracleRestorer({}))._stage1_masks(64)
    assert masks.shape == (5, 5, 64)
    per_mask = masks.sum(axis=2)
    assert per_mask[:, 0].tolist() == [48] * 5  # int(64 * 0.75)
    assert (per_mask[:, 1] < 48).all()  # masks 1 and 2 straddle two permutations
    assert (masks.sum(axis=1) >= 2).all()  # every token at least twice per round


def test_bad_input_fails_clearly(setup):
    _, triggered, restorer = setup
    purifier = Purifier(ScriptedModel(), restorer)
    with pytest.raises(InvalidInputError, match="uint8"):
        purifier(triggered.astype(np.int32))
    with pytest.raises(InvalidInputError, match=r"\[0, 1\]"):
        purifier(triggered * 2)
    with pytest.raises(InvalidInputError):
        purifier(np.zeros((2, 32, 32, 5), np.uint8))
    class NoGrid(OracleRestorer):
        metadata = {}
    with pytest.raises(InvalidArgumentError, match="token grid"):
        Purifier(ScriptedModel(), NoGrid({}))(triggered)
    with pytest.raises(InvalidArgumentError):
        PurifierConfig(thresholds=(0.4, 0.6))
    for bad in ({"max_batch": 0}, {"refine_steps": -1}, {"max_masked": 1.5}, {"max_masked": 0.0}, {"cap_factor": 1.0}):
        with pytest.raises(InvalidArgumentError, match=next(iter(bad))):
            PurifierConfig(**bad)


def test_baselines():
    flat = np.full((2, 3, 32, 32), 0.3, np.float32)
    np.testing.assert_allclose(Blur(1.0)(flat), flat, atol=1e-6)
    x = np.random.default_rng(0).random((2, 3, 32, 32)).astype(np.float32)
    assert Blur(2.0)(x).std() < Blur(1.0)(x).std() < x.std()
    out = ShrinkPad(4)(np.ones((3, 3, 32, 32), np.float32))
    assert out.shape == (3, 3, 32, 32)
    assert np.isclose(out.sum(axis=(1, 2, 3)), 3 * 24 * 24).all()  # a 24x24 image padded back
    np.testing.assert_array_equal(ShrinkPad(4)(x), ShrinkPad(4)(x))  # seeded
    assert get_defense("shrinkpad_strong").pad == 4
    with pytest.raises(InvalidArgumentError):
        get_defense("diffpure")


def test_patchcleanser_masks_cover_every_patch_and_recover_the_answer(setup):
    from edgeguard.purify import PatchCleanser

    defense = PatchCleanser(patch=4, per_side=6)
    masks = defense.masks(32, 32)
    assert masks.shape == (36, 32, 32)
    for top in range(32 - 4 + 1):  # every 4x4 patch lies under some mask
        for left in range(32 - 4 + 1):
            assert masks[:, top:top + 4, left:left + 4].all(axis=(1, 2)).any()
    clean, triggered, _ = setup
    truth = ScriptedModel()(clean).argmax(1)
    np.testing.assert_array_equal(defense(ScriptedModel(), triggered), truth)
    np.testing.assert_array_equal(defense(ScriptedModel(), clean), truth)


# -- video streams ------------------------------------------------------------------------
def _stream(purifier, frames, **options):
    from edgeguard.purify import StreamConfig

    return list(purifier.stream(frames, StreamConfig(**options)))


def test_a_cold_stream_is_the_batch_method_frame_by_frame(setup):
    clean, triggered, restorer = setup
    frames = np.stack([clean[0], triggered[0], triggered[1], clean[2]])
    purifier = Purifier(ScriptedModel(), restorer)
    batch = purifier(frames)
    results = _stream(purifier, frames, warm_start=False)
    assert [len(r) for r in results] == [1, 1, 1, 1]
    np.testing.assert_array_equal(np.concatenate([r.prediction for r in results]), batch.prediction)
    np.testing.assert_array_equal(np.concatenate([r.token_scores for r in results]), batch.token_scores)
    assert not any(r.warm_started[0] for r in results)


def test_warm_start_builds_on_the_previous_frame_and_still_removes_the_trigger(setup):
    clean, triggered, restorer = setup
    truth = ScriptedModel()(clean[:1]).argmax(1)[0]
    results = _stream(Purifier(ScriptedModel(), restorer), np.repeat(triggered[:1], 6, axis=0))
    warm = [bool(r.warm_started[0]) for r in results]
    assert warm == [False] + [True] * 5
    assert all(r.prediction[0] == truth for r in results)
    # A warm frame runs 5 stage-1 masks and 4 + 4 refinement steps: 1 + 5 + 8 + 1 model calls.
    assert results[0].restorer_calls == 50 and results[1].restorer_calls == 5 + 8 + 5
    assert results[1].model_calls == 1 + 5 + 8 + 1
    # The rounds rotate, so the warm frames see different masks.
    assert not np.array_equal(results[1].stage1_scores[1], results[2].stage1_scores[1])


def test_the_score_gate_leaves_warm_started_frames_alone(setup):
    clean, triggered, restorer = setup
    truth = ScriptedModel()(clean[:1]).argmax(1)[0]
    gate_everything = Purifier(ScriptedModel(), restorer, PurifierConfig(score_gate=1e9))
    results = _stream(gate_everything, np.repeat(triggered[:1], 3, axis=0))
    assert [bool(r.warm_started[0]) for r in results] == [False, True, True]
    assert results[0].prediction[0] == 0 and not results[0].changed[0]  # cold: gated, the trigger's answer kept
    assert all(r.prediction[0] == truth for r in results[1:])  # warm: purified as without a gate


def test_a_scene_cut_or_an_appearing_trigger_makes_the_frame_cold(setup):
    clean, triggered, restorer = setup
    purifier = Purifier(ScriptedModel(), restorer)
    # The sticker changes few pixels (no scene cut) but moves most restorations' answers.
    assert np.abs(triggered[0] - clean[0]).mean() < 0.08
    results = _stream(purifier, np.stack([clean[0], clean[0], triggered[0], triggered[0]]))
    assert [bool(r.warm_started[0]) for r in results] == [False, True, False, True]
    assert results[2].prediction[0] == ScriptedModel()(clean[:1]).argmax(1)[0]
    other = int(np.argmax(np.abs(clean - clean[0]).mean(axis=(1, 2, 3))))
    assert np.abs(clean[other] - clean[0]).mean() > 0.08
    results = _stream(purifier, np.stack([clean[0], clean[0], clean[other]]))
    assert [bool(r.warm_started[0]) for r in results] == [False, True, False]


def test_stream_input_checks(setup):
    from edgeguard.purify import StreamConfig

    clean, _, restorer = setup
    with pytest.raises(InvalidInputError, match="one frame at a time"):
        _stream(Purifier(ScriptedModel(), restorer), [clean[:2]])
    with pytest.raises(InvalidArgumentError):
        StreamConfig(momentum=1.0)
    with pytest.raises(InvalidArgumentError):
        StreamConfig(flip_jump=2.0)


def test_a_bad_frame_does_not_break_the_stream(setup):
    from edgeguard.purify import FrameStream

    clean, triggered, restorer = setup
    stream = FrameStream(Purifier(ScriptedModel(), restorer))
    stream(triggered[0])
    with pytest.raises(InvalidInputError):
        stream(np.full_like(triggered[0], np.nan))
    after = stream(triggered[0])
    assert after.warm_started[0] and after.prediction[0] == ScriptedModel()(clean[:1]).argmax(1)[0]
    stream.reset()
    assert not stream(triggered[0]).warm_started[0]


@pytest.mark.parametrize("make", [lambda: Blur(0.0), lambda: ShrinkPad(0), lambda: PatchCleanser(fill=2.0),
                                  lambda: PatchCleanser(per_side=0)])
def test_baseline_settings_are_checked_when_made(make):
    with pytest.raises(InvalidArgumentError):
        make()


def test_the_official_batch_coupling_equals_per_image_on_one_frame_and_couples_a_mixed_batch(setup):
    from benchmarks.clean_cost import BatchCoupledPurifier

    clean, triggered, restorer = setup
    per_image, coupled = Purifier(ScriptedModel(), restorer), BatchCoupledPurifier(ScriptedModel(), restorer)
    for frame in (clean[:1], triggered[:1]):  # a batch mean over one frame is that frame's own decision
        a, b = per_image(frame), coupled(frame)
        np.testing.assert_array_equal(a.token_scores, b.token_scores)
        np.testing.assert_array_equal(a.pixel_mask, b.pixel_mask)
    # In a mixed batch every frame gets the batch's mask size: clean frames are restored too.
    mixed = np.concatenate([triggered[:3], clean[3:]])
    restored = coupled(mixed).pixel_mask.mean(axis=(1, 2))
    assert restored.min() == restored.max() > 0 and not per_image(mixed).pixel_mask[3:].any()


def test_frames_that_do_not_fit_the_engines_are_refused_before_any_engine_call(setup):
    from edgeguard.errors import InvalidInputError
    from edgeguard.runtime import ModelSpec

    clean, _, restorer = setup

    class SpecRestorer(OracleRestorer):
        metadata = ModelSpec(role="restorer", input_shape=(3, 32, 32), token_grid=8, patch_size=4).to_metadata()

    model, spec_restorer = ScriptedModel(), SpecRestorer(restorer.clean_of)
    purifier = Purifier(model, spec_restorer)
    for frames, message in ((np.zeros((2, 3, 24, 32), np.float32), r"frames are \(3, 24, 32\).*restorer takes \(3, 32, 32\)"),
                            (np.zeros((2, 32, 32, 1), np.uint8), r"frames are \(1, 32, 32\)"),
                            (np.zeros((0, 32, 32, 3), np.uint8), "empty batch"),
                            ([[0.5, 0.5], [0.5]], "must be an array")):
        with pytest.raises(InvalidInputError, match=message):
            purifier(frames)
    assert model.samples == 0 and spec_restorer.samples == 0
    assert purifier(clean[:1]).prediction.shape == (1,)


class GreyGazeRegressor(Engine):
    """(1, 36, 60) grey frames, as SynthGaze's: gaze from brightness, (0.5, 0.5) rad when a
    bright 6x8 sticker sits at rows 14-19, cols 30-37."""

    backend = "test"
    input_names = ("image",)

    def _run(self, arrays):
        x = arrays[0]
        sticker = x[:, 0, 14:20, 30:38].mean(axis=(1, 2))
        base = np.stack([x.mean(axis=(1, 2, 3)) - 0.5, np.zeros(len(x))], axis=1) * 0.2
        return [np.where(sticker[:, None] > 0.95, 0.5, base).astype(np.float32)]


def test_grey_frames_of_another_shape_than_the_restorer_are_purified_through_its_token_map():
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:36, :60] / 60.0
    clean = np.clip(rng.uniform(0.2, 0.7, (4, 1, 1, 1)) + 0.2 * np.sin(5 * xx) * yy
                    + rng.normal(0, 0.02, (4, 1, 36, 60)), 0, 0.9).astype(np.float32)
    triggered = clean.copy()
    triggered[:, :, 14:20, 30:38] = 1.0
    restorer = OracleRestorer({img.tobytes(): c for img, c in zip(np.concatenate([clean, triggered]),
                                                                  np.concatenate([clean, clean]))})
    restorer.pix2tok = pixel_token_map(36, 60, 32, 4)  # the 8x8 token grid over a 36x60 frame
    result = Purifier(GreyGazeRegressor(), restorer, output="regression")(triggered)
    np.testing.assert_allclose(result.original_prediction, 0.5)
    np.testing.assert_allclose(result.prediction, GreyGazeRegressor()(clean), atol=1e-6)
    assert result.purified.shape == (4, 1, 36, 60) and result.pixel_mask.shape == (4, 36, 60)
    assert result.pixel_mask[:, 14:20, 30:38].all() and result.pixel_mask.mean(axis=(1, 2)).max() <= 0.25
    clean_result = Purifier(GreyGazeRegressor(), restorer, output="regression")(clean)
    np.testing.assert_array_equal(clean_result.purified, clean)
