"""The user guide's worked example (your own data: scikit-learn's digits) runs as written,
at smaller numbers."""
import re
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")
pytest.importorskip("onnxruntime")

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "user_guide.md"


def _digits_block() -> str:
    text = GUIDE.read_text()
    section = text[text.index("#### Worked example: handwritten digits"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_digits_example_runs_as_written(tmp_path, monkeypatch, capsys):
    code = _digits_block()
    sizes = "EPOCHS, FINETUNE_STEPS, FRAMES = 20, 4000, 200\n"
    assert sizes in code, "the test shrinks the example through this line"
    monkeypatch.chdir(tmp_path)
    exec(compile(code.replace(sizes, "EPOCHS, FINETUNE_STEPS, FRAMES = 2, 20, 6\n"), str(GUIDE), "exec"), {})
    out = capsys.readouterr().out
    rows = re.findall(r"^(no defense|BDMAE)\s+CA ([\d.]+)  BA ([\d.]+)  ASR ([\d.]+)$", out, re.M)
    assert [r[0] for r in rows] == ["no defense", "BDMAE"], out
    assert all(0 <= float(v) <= 1 for r in rows for v in r[1:])
    assert "your frames (140 held out)" in out  # the PSNR on the user's own held-out frames
    assert (tmp_path / "digits.onnx").is_file() and (tmp_path / "digits-mae.onnx").is_file()
