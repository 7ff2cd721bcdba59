"""purify_files: what `edgeguard purify` does to the user's files (and never does to them)."""
import json

import numpy as np
import pytest
from PIL import Image

from edgeguard.errors import DataFormatError, InvalidArgumentError, InvalidInputError
from edgeguard.purify import PurifyResult
from edgeguard.fileio import check_writable, write_atomically
from edgeguard.purify.files import check_output_folder, purify_files


class Inverter:
    """Stands in for a Purifier: 'purifies' by inverting; the answer is the mean brightness."""

    def __call__(self, frames):
        n, h, w = frames.shape[:3]
        answer = (frames.reshape(n, -1).mean(axis=1) > 127).astype(np.int64)
        return PurifyResult(purified=255 - frames, prediction=1 - answer, original_prediction=answer,
                            outputs=np.zeros((n, 2), np.float32), token_scores=np.zeros((n, 8, 8), np.float32),
                            pixel_mask=np.ones((n, h, w), bool), model_calls=47.0, restorer_calls=50.0, seconds=0.01,
                            flip_share=np.zeros(n), warm_started=np.zeros(n, bool),
                            stage1_scores=(np.zeros((n, 64)), np.zeros((n, 64))))


def _frames(folder, names, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name in names:
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(folder / name)


def test_every_frame_gets_its_own_output_and_record(tmp_path):
    _frames(tmp_path / "a", ["x.png", "x.bmp", "y.png"])
    _frames(tmp_path / "b", ["x.png"], seed=1)
    records = purify_files(Inverter(), [tmp_path / "a", tmp_path / "b"], tmp_path / "out", batch=3,
                           report=lambda line: None)
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["a_x_png.png", "b_x_png.png", "results.json", "x_bmp.png", "y.png"]  # no temporaries
    assert json.loads((tmp_path / "out" / "results.json").read_text()) == records
    for r in records:  # each output is its own input, inverted
        original = np.asarray(Image.open(r["file"]).convert("RGB"))
        assert np.array_equal(np.asarray(Image.open(r["purified"])), 255 - original)
        assert r["changed"] and r["restored_fraction"] == 1.0


def test_an_interrupted_run_leaves_a_record_of_exactly_the_frames_it_wrote(tmp_path):
    _frames(tmp_path / "in", [f"f{i}.png" for i in range(7)])

    class InterruptedOnThirdBatch(Inverter):
        calls = 0

        def __call__(self, frames):
            self.calls += 1
            if self.calls == 3:
                raise KeyboardInterrupt
            return super().__call__(frames)

    with pytest.raises(KeyboardInterrupt):
        purify_files(InterruptedOnThirdBatch(), [tmp_path / "in"], tmp_path / "out", batch=2, report=lambda line: None)
    records = json.loads((tmp_path / "out" / "results.json").read_text())
    pngs = sorted(p.name for p in (tmp_path / "out").iterdir() if p.suffix == ".png")
    assert pngs == ["f0.png", "f1.png", "f2.png", "f3.png"]  # two batches of two
    assert sorted(r["purified"].split("/")[-1] for r in records) == pngs
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == pngs + ["results.json"]  # no temporaries


def test_an_output_folder_holding_an_input_is_refused_before_anything_is_written(tmp_path):
    _frames(tmp_path / "frames", ["f0.png", "f1.png"])
    before = {p.name: p.read_bytes() for p in (tmp_path / "frames").iterdir()}
    for out in (tmp_path / "frames", tmp_path):
        with pytest.raises(InvalidArgumentError, match="holds the input"):
            purify_files(Inverter(), [tmp_path / "frames"], out)
    assert {p.name: p.read_bytes() for p in (tmp_path / "frames").iterdir()} == before
    check_output_folder(tmp_path / "elsewhere", [tmp_path / "frames" / "f0.png"])  # a sibling is fine


def test_unusable_inputs_are_named(tmp_path):
    with pytest.raises(InvalidInputError, match="neither"):
        purify_files(Inverter(), [tmp_path / "nowhere"], tmp_path / "out")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(DataFormatError, match="bad.png"):
        purify_files(Inverter(), [tmp_path / "bad.png"], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_interrupted_write_leaves_neither_a_half_file_nor_a_temporary(tmp_path):
    (tmp_path / "kept.txt").write_text("old")

    def fail(tmp):
        tmp.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomically(tmp_path / "kept.txt", fail)
    assert [p.name for p in tmp_path.iterdir()] == ["kept.txt"] and (tmp_path / "kept.txt").read_text() == "old"


def test_an_atomic_write_returns_what_the_writer_returned_and_honours_the_umask(tmp_path):
    import os

    old = os.umask(0o027)
    try:
        assert write_atomically(tmp_path / "a.txt", lambda tmp: tmp.write_text("abc")) == 3
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").read_text() == "abc" and (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o640


def test_outputs_that_cannot_be_written_are_refused_before_any_work(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "folder").mkdir()
    assert check_writable(tmp_path / "new" / "deeper" / "out", "--out", folder=True) == tmp_path / "new" / "deeper" / "out"
    assert check_writable(tmp_path / "file", "--json") == tmp_path / "file"  # an existing file may be replaced
    for path, folder, message in ((tmp_path / "file" / "out", True, "is a file, so nothing"),
                                  (tmp_path / "file", True, "is a file; give a folder"),
                                  (tmp_path / "folder", False, "is a folder; give a file name")):
        with pytest.raises(InvalidArgumentError, match=message):
            check_writable(path, "--out", folder=folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "folder"]  # nothing created
