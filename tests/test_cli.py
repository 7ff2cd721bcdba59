import json

import pytest

from edgeguard.cli import format_table, main, parse_options


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in ("attack", "train", "train-mae", "purify", "demo", "cache"):
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
    args = ["attack", "--dataset", "signs", "--attack", "badnets", "--classes", "16", "--n-train", "512", "--n-test", "128",
            "--epochs", "1", "--quiet", "--json", str(tmp_path / "rows.json")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "asr" in out and "badnets" in out
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert rows[0]["cached"] is False and 0.0 <= rows[0]["asr"] <= 1.0
    assert main(args) == 0
    assert json.loads((tmp_path / "rows.json").read_text())[0]["cached"] is True


def test_purify_command_writes_images_and_json(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    import numpy as np
    from PIL import Image

    from edgeguard.deploy import export_onnx, export_restorer
    from edgeguard.models import create_model

    torch.manual_seed(0)
    export_onnx(create_model("preact_resnet18", num_outputs=4, width=0.125), tmp_path / "m.onnx", (3, 32, 32))
    export_restorer(create_model("mae_tiny_patch4"), tmp_path / "mae.onnx", (3, 32, 32))
    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(frames / f"f{i}.png")
    out = tmp_path / "out"
    assert main(["purify", "--model", str(tmp_path / "m.onnx"), "--restorer", str(tmp_path / "mae.onnx"),
                 str(frames), "--out", str(out)]) == 0
    records = json.loads((out / "results.json").read_text())
    assert [r["file"].rsplit("/", 1)[-1] for r in records] == ["f0.png", "f1.png", "f2.png"]
    assert all((out / f"f{i}.png").exists() for i in range(3))
    assert records[0]["restorer_calls"] == 50 and 0 <= records[0]["restored_fraction"] <= 0.25 + 1e-9
    assert main(["purify", "--model", str(tmp_path / "m.onnx"), "--restorer", str(tmp_path / "mae.onnx"),
                 str(frames), "--out", str(tmp_path / "fast"), "--threads", "1", "--early-exit", "0.99"]) == 0
    fast = json.loads((tmp_path / "fast" / "results.json").read_text())
    # an exit share this high stops every frame after stage 1: nothing restored, 25 restorer calls
    assert all(r["restorer_calls"] == 25 and r["restored_fraction"] == 0 and not r["changed"] for r in fast)
    assert all(r["flip_share"] in {k / 25 for k in range(26)} for r in records)
    # The fast preset, frame by frame: 5 restorations when they barely moved the answer, else
    # 5 + 2 refinement + 5 purification.
    assert main([*["purify", "--model", str(tmp_path / "m.onnx"), "--restorer", str(tmp_path / "mae.onnx")],
                 str(frames), "--out", str(tmp_path / "preset"), "--fast", "--batch", "1"]) == 0
    for r in json.loads((tmp_path / "preset" / "results.json").read_text()):
        assert r["restorer_calls"] in (5, 12)
        moved = {0.0, 0.2} if r["restorer_calls"] == 5 else {0.4, 0.6, 0.8, 1.0}  # of the 5
        assert r["flip_share"] in moved
    # Calibrated on clean frames (at least 100 at the 99th percentile): the gate is printed and used.
    many = tmp_path / "clean"
    many.mkdir()
    for i in range(100):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(many / f"c{i:03d}.png")
    purify = ["purify", "--model", str(tmp_path / "m.onnx"), "--restorer", str(tmp_path / "mae.onnx"), str(frames)]
    assert main([*purify, "--out", str(tmp_path / "few"), "--calibrate-on", str(frames)]) == 2
    assert "at least 100 clean frames" in capsys.readouterr().err and not (tmp_path / "few").exists()
    assert main([*purify, "--out", str(tmp_path / "gated"), "--calibrate-on", str(many), "--threads", "1"]) == 0
    assert "calibrated on 100 clean frames: score gate" in capsys.readouterr().out
    gated = json.loads((tmp_path / "gated" / "results.json").read_text())
    assert main([*purify, "--out", str(tmp_path / "fastgate"), "--fast", "--calibrate-on", str(many)]) == 2
    assert "needs the full stage 1" in capsys.readouterr().err and not (tmp_path / "fastgate").exists()
    assert [r["original_prediction"] for r in gated] == [r["original_prediction"] for r in records]
    # Bad input: a missing folder and a frame of another size.
    assert main(["purify", "--model", str(tmp_path / "m.onnx"), "--restorer", str(tmp_path / "mae.onnx"),
                 str(tmp_path / "nowhere")]) == 2
    assert main(["purify", "--model", str(tmp_path / "m.onnx"), "--restorer", str(tmp_path / "mae.onnx"),
                 str(frames), "--out", str(frames)]) == 2  # never into the originals' folder
    assert "holds the input" in capsys.readouterr().err
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(frames / "small.png")
    assert main(["purify", "--model", str(tmp_path / "m.onnx"), "--restorer", str(tmp_path / "mae.onnx"),
                 str(frames), "--out", str(out)]) == 2
    assert "one size" in capsys.readouterr().err


def test_purify_command_keeps_grey_frames_grey_for_a_grey_gaze_model(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    import numpy as np
    from PIL import Image

    from edgeguard.deploy import export_model, export_restorer
    from edgeguard.models import create_model
    from edgeguard.runtime import ModelSpec

    torch.manual_seed(0)
    gaze = create_model("gaze_resnet18", num_outputs=2, width=0.125).eval()
    gaze.spec = ModelSpec(role="model", input_shape=(1, 36, 60), output="regression", outputs=2)
    export_model(gaze, tmp_path / "gaze.onnx")
    export_restorer(create_model("mae_tiny_patch4").eval(), tmp_path / "mae.onnx", (1, 36, 60))  # colour MAE
    frames = tmp_path / "eyes"
    frames.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (36, 60), dtype=np.uint8)).save(frames / "grey.png")
    Image.fromarray(rng.integers(0, 255, (36, 60, 3), dtype=np.uint8)).save(frames / "colour.png")  # read as grey
    assert main(["purify", "--model", str(tmp_path / "gaze.onnx"), "--restorer", str(tmp_path / "mae.onnx"),
                 str(frames), "--out", str(tmp_path / "out")]) == 0
    records = json.loads((tmp_path / "out" / "results.json").read_text())
    assert len(records) == 2 and all(len(r["prediction"]) == 2 for r in records)  # (pitch, yaw)
    for r in records:
        with Image.open(r["purified"]) as im:
            assert im.mode == "L" and im.size == (60, 36)


def test_train_command_with_eigenguard(tmp_path, capsys):
    pytest.importorskip("torch")
    args = ["train", "--dataset", "gaze", "--attack", "badnets", "--n-train", "512", "--n-test", "128", "--epochs", "1",
            "--quiet", "--eigenguard", "k=2,at=layer2", "--json", str(tmp_path / "rows.json")]
    assert main(args) == 0
    row = json.loads((tmp_path / "rows.json").read_text())[0]
    assert row["defense"] == "eigenguard" and row["clean_err_deg"] > 0
    assert main(args[:-4] + ["--eigenguard", "k=2,size=3"]) == 2
    assert "EigenGuardConfig" in capsys.readouterr().err
    assert main(args[:-4] + ["--eigenguard", "k=0"]) == 2


def _gaze_model_and_data(tmp_path):
    import torch
    from safetensors.torch import save_file

    from edgeguard.data import make_gaze
    from edgeguard.data.loaders import save_npz
    from edgeguard.models import create_model

    torch.manual_seed(0)
    model = create_model("gaze_resnet18", num_outputs=2, width=0.125)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp_path / "gaze.safetensors")
    save_npz(make_gaze(120, seed=3), tmp_path / "clean.npz")
    return tmp_path / "gaze.safetensors", tmp_path / "clean.npz"


def test_scan_writes_a_report_and_exits_by_verdict(tmp_path, monkeypatch):
    weights, data = _gaze_model_and_data(tmp_path)
    common = [str(weights), "--dataset", "gaze", "--data", str(data), "--images", "100", "--steps", "2", "--width", "0.125",
              "--report", str(tmp_path / "report"), "--quiet"]
    assert main(["scan", *common, "--threshold", "1e-9"]) == 0  # nothing changes the image by less than that
    record = json.loads((tmp_path / "report" / "scan.json").read_text())
    assert record["backdoored"] is False and record["method"] == "drmguard" and record["images"] == 100
    assert len(record["estimated_target"]) == 2 and (tmp_path / "report" / "scan.png").stat().st_size > 5000

    import edgeguard.scan.workflow as scan_module

    real_scan = scan_module.scan

    def flagged(*args, **kwargs):
        result = real_scan(*args, **kwargs)
        result.backdoored = True
        return result

    monkeypatch.setattr(scan_module, "scan", flagged)
    assert main(["scan", *common, "--repair", str(tmp_path / "repaired.safetensors")]) == 3
    record = json.loads((tmp_path / "report" / "scan.json").read_text())
    assert set(record["repair"]["before"]) == {"clean_err_deg", "generated_clean_err_deg"}
    assert 1 <= record["repair"]["rounds"] <= 2 and len(record["repair"]["rescan_statistics"]) == 1
    assert (tmp_path / "repaired.safetensors").stat().st_size > 0


def test_scan_rejects_bad_input(tmp_path, capsys):
    weights, data = _gaze_model_and_data(tmp_path)
    assert main(["scan", str(tmp_path / "missing.safetensors"), "--data", str(data)]) == 2
    assert main(["scan", str(weights), "--data", str(tmp_path / "missing.npz"), "--width", "0.125"]) == 2
    assert main(["scan", str(weights), "--data", str(data), "--width", "0.25"]) == 2  # weights of another width
    assert main(["scan", str(weights), "--data", str(data), "--images", "1"]) == 2
    assert main(["scan", str(weights), "--data", str(data), "--width", "0.125", "--images", "99"]) == 2
    kept = weights.read_bytes()
    assert main(["scan", str(weights), "--data", str(data), "--width", "0.125", "--repair", str(weights)]) == 2
    assert weights.read_bytes() == kept  # --repair never overwrites the model it reads
    (tmp_path / "folder" / "a").mkdir(parents=True)  # an image folder has class labels, not gaze angles
    assert main(["scan", str(weights), "--data", str(tmp_path / "folder"), "--width", "0.125"]) == 2
    assert "image folders carry class labels" in capsys.readouterr().err


def test_scan_refuses_data_no_verdict_can_rest_on_and_says_whose_fault(tmp_path, capsys):
    import torch
    from safetensors.torch import save_file

    from edgeguard.data import make_gaze, make_signs
    from edgeguard.data.loaders import save_npz
    from edgeguard.models import create_model

    weights, _ = _gaze_model_and_data(tmp_path)
    gaze = ["--dataset", "gaze", "--width", "0.125", "--report", str(tmp_path / "report"), "--quiet"]
    save_npz(make_gaze(60, seed=4), tmp_path / "few.npz")  # 2 frames once gave a benign model a BACKDOORED verdict
    assert main(["scan", str(weights), "--data", str(tmp_path / "few.npz"), *gaze]) == 2
    assert "at least 100" in capsys.readouterr().err
    save_npz(make_signs(120, seed=4, num_classes=16), tmp_path / "signs.npz")
    assert main(["scan", str(weights), "--data", str(tmp_path / "signs.npz"), *gaze]) == 2
    assert "(3, 32, 32)" in capsys.readouterr().err  # colour frames are not broadcast into the grey model

    torch.manual_seed(0)
    signs_model = create_model("preact_resnet18", num_outputs=16, width=0.125)
    save_file({k: v.contiguous() for k, v in signs_model.state_dict().items()}, tmp_path / "signs.safetensors")
    signs = ["--dataset", "signs", "--width", "0.125", "--report", str(tmp_path / "report"), "--quiet"]
    save_npz(make_signs(120, seed=4, num_classes=20), tmp_path / "twenty.npz")
    assert main(["scan", str(tmp_path / "signs.safetensors"), "--data", str(tmp_path / "twenty.npz"), *signs]) == 2
    assert "20 class ids" in capsys.readouterr().err
    assert not (tmp_path / "report").exists()  # refused before any work


@pytest.mark.parametrize("collapsed", [True, False])
def test_scan_calibrates_its_threshold_on_trusted_models(tmp_path, capsys, monkeypatch, collapsed):
    import edgeguard.scan.workflow as scan_module

    weights, data = _gaze_model_and_data(tmp_path)
    common = [str(weights), "--dataset", "gaze", "--data", str(data), "--images", "100", "--steps", "2", "--width", "0.125",
              "--report", str(tmp_path / "report"), "--quiet"]
    real_scan = scan_module.scan

    def outcome(*args, **kwargs):  # 2 steps collapse nothing; say whether the search did
        result = real_scan(*args, **kwargs)
        result.residual_variance = 0.0 if collapsed else 1.0
        result.collapsed = collapsed
        return result

    monkeypatch.setattr(scan_module, "scan", outcome)
    # Trusting the scanned model itself: the same frames and seed give it the same statistic,
    # and the calibrated threshold sits 15% below that, so it must pass as clean.
    assert main(["scan", *common, "--calibrate", str(weights)]) == 0
    record = json.loads((tmp_path / "report" / "scan.json").read_text())
    out = capsys.readouterr().out
    if collapsed:
        assert record["threshold"] == pytest.approx(0.85 * record["statistic"], rel=1e-6)
        assert "calibrated threshold" in out
    else:  # a search that never collapsed measured no trigger: it sets no threshold
        assert record["threshold"] is None and "never collapsed" in out and "any collapse is flagged" in out
    assert main(["scan", *common, "--calibrate", str(weights), "--threshold", "0.1"]) == 2
    assert main(["scan", *common, "--calibrate", str(tmp_path / "missing.safetensors")]) == 2


def test_older_option_names_still_parse():
    from edgeguard.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["attack", "--task", "gaze"]).dataset == "gaze"
    assert parser.parse_args(["scan", "m.safetensors", "--task", "signs", "--data", "d.npz"]).dataset == "signs"
    args = parser.parse_args(["purify", "f.png", "--model", "m.onnx", "--restorer", "r.onnx", "--task", "regression"])
    assert args.output_kind == "regression"


def test_train_mae_fine_tunes_on_unlabelled_frames_and_reports_their_psnr(tmp_path, capsys):
    pytest.importorskip("torch")
    import numpy as np

    frames = np.random.default_rng(0).integers(0, 255, (200, 32, 32, 3), dtype=np.uint8)
    np.savez(tmp_path / "mine.npz", images=frames)  # no labels, no output kind: a restorer needs neither
    assert main(["train-mae", "--steps", "2", "--finetune-on", str(tmp_path / "mine.npz"), "--finetune-steps", "2",
                 "--out", str(tmp_path / "mae.safetensors"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "your frames (20 held out)" in out and (tmp_path / "mae.safetensors").stat().st_size > 0


def test_train_mae_refuses_one_file_for_both_outputs_before_training(tmp_path, capsys):
    assert main(["train-mae", "--out", str(tmp_path / "m"), "--onnx", str(tmp_path / "." / "m"), "--quiet"]) == 2
    assert "name the same file" in capsys.readouterr().err and not list(tmp_path.iterdir())


def test_cache_list_verify_and_clear(tmp_path, monkeypatch, capsys):
    from edgeguard import cache

    monkeypatch.setenv("EDGEGUARD_CACHE", str(tmp_path / "cache"))
    good, bad = cache.entry_dir("victims", "a" * 16, create=True), cache.entry_dir("restorers", "b" * 16, create=True)
    for folder in (good, bad):
        (folder / "w.bin").write_bytes(b"x" * 2048)
        cache.seal(folder, ["w.bin"])
    (bad / "w.bin").write_bytes(b"y" * 2048)  # swapped
    assert main(["cache", "list"]) == 0
    out = capsys.readouterr().out
    assert "victims" in out and "intact" in out and "damaged" in out and "2 entries" in out
    assert main(["cache", "verify"]) == 1
    out = capsys.readouterr().out
    assert f"{bad / 'w.bin'}: checksum differs" in out and "1 intact, 1 damaged" in out
    assert main(["cache", "verify", "--kind", "victims"]) == 0
    assert main(["cache", "clear", "--kind", "gazers"]) == 2
    (tmp_path / "mine").mkdir()
    assert main(["cache", "clear", "--kind", "../mine"]) == 2 and (tmp_path / "mine").is_dir()  # never a path
    assert main(["cache", "clear", "--kind", "restorers"]) == 0 and not bad.exists() and good.exists()
    assert main(["cache", "clear"]) == 0 and not list((tmp_path / "cache").iterdir())


def test_bad_arguments_exit_2_before_any_work_and_version_verbose_and_interrupts(tmp_path, capsys, monkeypatch):
    import edgeguard.cli as cli

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("edgeguard ")
    for argv, message in ((["attack", "--width", "0"], "width must be > 0"),
                          (["attack", "--n-test", "0"], "n_train and n_test must be >= 1"),
                          (["purify", "x.png", "--model", "m.onnx", "--restorer", "r.onnx", "--batch", "0"],
                           "--batch and --threads must be >= 1")):
        assert main(argv) == 2 and message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
    assert cli.build_parser().parse_args(["cache", "list", "-v"]).verbose
    assert not cli.build_parser().parse_args(["cache", "list"]).verbose

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_cache", interrupted)
    assert main(["cache", "list"]) == 130 and "interrupted" in capsys.readouterr().err
