"""docs/results.md: every generated table matches the committed JSON it names."""
from pathlib import Path

from benchmarks.report import _BLOCK, update_page

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "results.md"


def test_the_results_page_is_generated_from_the_committed_results():
    text = PAGE.read_text()
    blocks = list(_BLOCK.finditer(text))
    assert len(blocks) >= 10  # every benchmark's results file
    assert update_page(text) == text, "run: python -m benchmarks.report --update docs/results.md"


def test_the_readme_tables_are_generated_from_the_committed_results():
    text = (ROOT / "README.md").read_text()
    assert list(_BLOCK.finditer(text))
    assert update_page(text) == text, "run: python -m benchmarks.report --update README.md"


def test_an_edited_figure_is_caught(tmp_path):
    (tmp_path / "r.json").write_text('{"machine": {"cpu": "x", "cores": 2}, "config": {}, "seconds": 60, '
                                     '"results": [{"attack": "badnets", "ca": 0.5}]}')
    page = "intro\n<!-- report r.json -->\nstale\n<!-- /report -->\noutro\n"
    fresh = update_page(page, root=tmp_path)
    assert "| badnets | 0.500 |" in fresh and "stale" not in fresh
    assert fresh.startswith("intro\n") and fresh.endswith("outro\n") and update_page(fresh, root=tmp_path) == fresh
