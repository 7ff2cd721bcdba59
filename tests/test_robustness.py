"""A short fuzzing run in the suite (the campaign is benchmarks/robustness.py): every generated
frame and malformed file ends in a correct result or a typed error, nothing else."""
import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from benchmarks.robustness import fuzz_cli_purify, fuzz_cli_tools, fuzz_files, fuzz_frames  # noqa: E402

CLEAN = {"other_exceptions": 0, "partial_outputs": 0, "inputs_changed": 0, "wrong_results": 0}


@pytest.mark.parametrize("fuzz, n", [(fuzz_frames, 400), (fuzz_files, 40), (fuzz_cli_purify, 2), (fuzz_cli_tools, 5)])
def test_fuzzed_inputs_end_in_a_result_or_a_typed_error(fuzz, n):
    row = fuzz(n, seed=7)
    assert {k: row[k] for k in CLEAN} == CLEAN, row["examples"]
    assert row["cases"] == n and row["typed_errors"] + row["correct"] == n
    assert row["typed_errors"] > 0 or fuzz is fuzz_cli_purify  # malformed inputs were made and refused


def test_the_faults_issue_18_names_stay_fixed():
    from benchmarks.probes import PROBES, run_probes

    row = run_probes()
    assert row["cases"] == len(PROBES) and row["typed_errors"] + row["correct"] == len(PROBES), row["examples"]


@pytest.mark.slow
def test_interrupted_work_resumes_to_the_uninterrupted_artefact():
    from benchmarks.robustness import interruptions

    row = interruptions(3, seed=3)  # one victim, one MAE run, one purify run, each killed part-way and rerun
    assert row["resumed"] == 3 and row["other_exceptions"] == row["partial_outputs"] == 0, row["examples"]


# Property-based cases (hypothesis): shapes, dtypes and values no hand-written list thought of,
# shrunk to the smallest failing frame or byte string when one misbehaves.
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import example, given, settings, strategies as st  # noqa: E402
from hypothesis.extra.numpy import arrays  # noqa: E402

SIDES = st.sampled_from([0, 1, 2, 3, 4, 8, 31, 32, 33])
DTYPES = st.sampled_from(["uint8", "uint16", "int16", "int64", "float16", "float32", "float64", "bool"])


@st.composite
def frames(draw):
    shape = tuple(draw(st.lists(SIDES, min_size=0, max_size=4)))
    if draw(st.booleans()):  # often the right layout, so the checks past the shape are reached too
        shape = draw(st.sampled_from([(32, 32, 3), (1, 32, 32, 3), (2, 3, 32, 32), (32, 32, 1), (3, 32, 32)]))
    return draw(arrays(DTYPES, shape))


@settings(max_examples=300, deadline=None)
@given(frame=frames())
@example(frame=np.zeros((1, 0, 0), np.float16))  # found by this test: an empty float frame raised ValueError
def test_any_array_is_purified_or_refused_with_a_typed_error(frame):
    from benchmarks.robustness import _stand_ins
    from edgeguard.errors import EdgeGuardError
    from edgeguard.purify import Purifier, PurifierConfig

    before = frame.copy()
    try:
        result = Purifier(*_stand_ins(), PurifierConfig(early_exit=0.5), output="classification")(frame)
    except EdgeGuardError:
        pass
    else:
        assert result.purified.shape[-3:] in ((32, 32, 3), (3, 32, 32)) and np.isfinite(result.outputs).all()
        assert len(result.prediction) == (1 if frame.ndim == 3 else frame.shape[0]) >= 1
    np.testing.assert_array_equal(frame, before)  # the caller's array is never written to


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_any_damage_to_an_image_file_is_read_faithfully_or_refused(tmp_path_factory, data):
    import io

    from PIL import Image

    from edgeguard.data.images import read_image
    from edgeguard.errors import DataFormatError

    good = io.BytesIO()
    Image.fromarray(np.arange(48 * 3, dtype=np.uint8).reshape(4, 12, 3)).save(good, "PNG")
    raw = bytearray(good.getvalue())
    cut = data.draw(st.integers(0, len(raw)))
    edits = data.draw(st.lists(st.tuples(st.integers(0, len(raw) - 1), st.integers(0, 255)), max_size=4))
    for at, value in edits:
        raw[at] = value
    path = tmp_path_factory.mktemp("png") / "x.png"
    path.write_bytes(bytes(raw[:cut]) + data.draw(st.binary(max_size=16)))
    try:
        image = read_image(path)
    except DataFormatError:
        return
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[-1] == 3
