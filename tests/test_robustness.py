"""A short fuzzing run in the suite (the campaign is benchmarks/robustness.py): every generated
frame and malformed file ends in a correct result or a typed error, nothing else."""
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
