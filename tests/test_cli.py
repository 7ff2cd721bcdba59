import json

import pytest

from edgeguard.cli import format_table, main, parse_options


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in ("attack", "demo"):
        assert command in out


def test_unknown_attack_is_a_clear_error(capsys):
    assert main(["attack", "--attack", "nonsense"]) == 2
    assert "unknown attack 'nonsense'" in capsys.readouterr().err


def test_bad_option_syntax(capsys):
    assert main(["attack", "--attack", "badnets", "--option", "novalue"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


def test_parse_options_and_table():
    assert parse_options(["k=4", "pattern=color", "s=0.5"]) == {"k": 4, "pattern": "color", "s": 0.5}
    table = format_table([{"a": 1, "b": 0.5}, {"a": 2}], ["a", "b"])
    assert "0.5000" in table and table.splitlines()[-1].split() == ["2", "-"]


def test_attack_command_trains_caches_and_prints(tmp_path, capsys):
    pytest.importorskip("torch")
    args = ["attack", "--task", "signs", "--attack", "badnets", "--classes", "16", "--n-train", "512", "--n-test", "128",
            "--epochs", "1", "--quiet", "--json", str(tmp_path / "rows.json")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "asr" in out and "badnets" in out
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert rows[0]["cached"] is False and 0.0 <= rows[0]["asr"] <= 1.0
    assert main(args) == 0
    assert json.loads((tmp_path / "rows.json").read_text())[0]["cached"] is True
