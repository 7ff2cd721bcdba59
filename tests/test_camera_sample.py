"""samples/camera_purifier.py runs headless on a generated clip and writes what it says."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

cv2 = pytest.importorskip("cv2")
torch = pytest.importorskip("torch")

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "camera_purifier.py"


def _run(*args):
    return subprocess.run([sys.executable, str(SAMPLE), *map(str, args)], capture_output=True, text=True, timeout=600)


def test_camera_sample_headless_on_a_generated_clip(tmp_path):
    from edgeguard.deploy import export_onnx, export_restorer
    from edgeguard.models import create_model

    res = _run("--make-video", tmp_path / "clip.mp4")
    assert res.returncode == 0, res.stderr
    capture = cv2.VideoCapture(str(tmp_path / "clip.mp4"))
    ok, first = capture.read()
    assert ok and first.shape == (256, 256, 3)
    capture.release()

    torch.manual_seed(0)
    model = export_onnx(create_model("preact_resnet18", num_outputs=4, width=0.125).eval(), tmp_path / "m.onnx",
                        (3, 32, 32), metadata={"task": "classification"})
    mae = export_restorer(create_model("mae_tiny_patch4").eval(), tmp_path / "mae.onnx", (3, 32, 32))
    out = tmp_path / "out"
    res = _run("--source", tmp_path / "clip.mp4", "--model", model, "--restorer", mae, "--headless", "--out", out,
               "--max-frames", 12, "--png-every", 5, "--fast", "--early-exit", 0.3)
    assert res.returncode == 0, res.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 12 and summary["skipped"] == 0 and summary["fps"] > 0
    assert 0 < summary["warm"] < 12  # the clip's shots are stills: most frames build on the last
    assert sorted(p.name for p in out.glob("*.png")) == ["frame_00001.png", "frame_00006.png", "frame_00011.png"]
    annotated = cv2.VideoCapture(str(out / "annotated.mp4"))
    assert int(annotated.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    ok, frame = annotated.read()
    assert ok and frame.shape == (256, 256, 3) and frame.std() > 0
    annotated.release()
    assert summary["score_gate"] is None and summary["preset"] == "fast"  # no gate unless calibrated

    # --calibrate-on: trigger-free footage sets the score gate; too little of it is refused first.
    import numpy as np

    rng = np.random.default_rng(0)
    for folder, count in (("clean", 100), ("few", 5)):
        (tmp_path / folder).mkdir()
        for i in range(count):
            cv2.imwrite(str(tmp_path / folder / f"c{i:03d}.png"), rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    common = ["--source", tmp_path / "clip.mp4", "--model", model, "--restorer", mae, "--headless", "--max-frames", 4]
    res = _run(*common, "--calibrate-on", tmp_path / "clean", "--out", tmp_path / "gated")
    assert res.returncode == 0, res.stderr
    gated = json.loads((tmp_path / "gated" / "summary.json").read_text())
    assert gated["frames"] == 4 and gated["score_gate"] > 0
    res = _run(*common, "--calibrate-on", tmp_path / "few", "--out", tmp_path / "refused")
    assert res.returncode == 2 and "at least 100 clean frames" in res.stderr and not (tmp_path / "refused").exists()


def test_camera_sample_errors_are_clear(tmp_path):
    res = _run("--source", tmp_path / "missing.mp4", "--model", "m.onnx", "--restorer", "r.onnx", "--headless")
    assert res.returncode == 2 and "does not exist" in res.stderr
    res = _run("--model", "m.onnx")
    assert res.returncode == 2 and "go together" in res.stderr
    for args, message in ((("--png-every", 0), "--png-every and --max-frames must be >= 1"),
                          (("--max-frames", -1), "--png-every and --max-frames must be >= 1"),
                          (("--early-exit", 1.5), "--early-exit must be in")):
        res = _run("--source", tmp_path / "missing.mp4", "--headless", "--out", tmp_path / "out", *args)
        assert res.returncode == 2 and message in res.stderr and not (tmp_path / "out").exists()
