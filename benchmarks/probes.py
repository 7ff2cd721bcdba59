"""Named probes: the misbehaviours issue #18 reported, each replayed as a case.

Each probe sets up what a user (or an attacker) would, runs the entry point, and checks the
outcome the SDK promises: a typed error (exit 2 from a CLI) with a message naming the fault,
or a correct result, and never a changed input or a half-written output. A probe returns the
outcome it saw ("typed_errors" or "correct") or raises ``Misbehaved``. The issue's full list
of 105 probes was not filed with it; these are the ones its text names, by the class of fault.

    from benchmarks.probes import run_probes
    row = run_probes()          # {"area": "probes", "cases": ..., "examples": [...]}
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import tempfile
import threading
from pathlib import Path
from typing import Callable

import numpy as np

from benchmarks.common import private_cache

ROOT = Path(__file__).resolve().parents[1]


class Misbehaved(Exception):
    """A probe saw the fault it replays: ``outcome`` is the tally column it counts in."""

    def __init__(self, outcome: str, detail: str):
        super().__init__(detail)
        self.outcome = outcome


def script_main(path: str):
    """The ``main`` of a script in the repository (e.g. ``export/build_engine.py``), loaded by path."""
    spec = importlib.util.spec_from_file_location(Path(path).stem, ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def _call(main: Callable, argv: list) -> tuple[int, str]:
    """Exit status and stderr of a CLI ``main``; argparse's SystemExit is an exit status too."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            status = main([str(a) for a in argv])
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else 2
    return status, err.getvalue()


def _snapshot(folder: Path) -> dict:
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _refused(main: Callable, argv: list, message: str, watch: Path, must_not_exist: tuple = ()) -> str:
    """The command must exit 2 naming ``message``, leave ``watch`` byte-identical, and create none
    of ``must_not_exist``."""
    before = _snapshot(watch)
    status, err = _call(main, argv)
    after = _snapshot(watch)
    if after != before:
        changed = sorted(str(p.relative_to(watch)) for p in set(after) | set(before) if after.get(p) != before.get(p))
        kind = "inputs_changed" if any(p in before and after.get(p) != before[p] for p in before) else "partial_outputs"
        raise Misbehaved(kind, f"exit {status} changed {changed}")
    left = [str(p) for p in must_not_exist if Path(p).exists()]
    if left:
        raise Misbehaved("partial_outputs", f"exit {status} left {left}")
    if status != 2 or message not in err:
        raise Misbehaved("wrong_results", f"expected exit 2 naming {message!r}, got {status}: {err.strip()[-200:]}")
    return "typed_errors"


def _raises(call: Callable, error: str, message: str) -> str:
    from edgeguard import errors

    try:
        call()
    except getattr(errors, error) as exc:
        if message not in str(exc):
            raise Misbehaved("wrong_results", f"{error} without {message!r}: {exc}")
        return "typed_errors"
    except errors.EdgeGuardError as exc:
        raise Misbehaved("wrong_results", f"expected {error}, got {type(exc).__name__}: {exc}")
    raise Misbehaved("wrong_results", f"expected {error} naming {message!r}, the call succeeded")


class Setup:
    """What the probes share, made once in ``root``: a 4-class colour model and a restorer as
    ONNX, three frames, a grey gaze model (weights and ONNX) with 120 clean frames."""

    def __init__(self, root: Path):
        import torch
        from PIL import Image
        from safetensors.torch import save_file

        from edgeguard.data import make_gaze, make_signs
        from edgeguard.data.loaders import save_npz
        from edgeguard.deploy import export_model, export_restorer
        from edgeguard.models import create_model
        from edgeguard.runtime import ModelSpec

        self.root = root
        root.mkdir(parents=True)
        torch.manual_seed(0)
        model = create_model("preact_resnet18", num_outputs=4, width=0.125).eval()
        self.model = export_model(model, root / "m.onnx", ModelSpec(role="model", input_shape=(3, 32, 32),
                                                                     output="classification", outputs=4))
        self.restorer = export_restorer(create_model("mae_tiny_patch4").eval(), root / "mae.onnx", (3, 32, 32))
        self.frames = root / "frames"
        self.frames.mkdir()
        rng = np.random.default_rng(0)
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(self.frames / f"f{i}.png")
        gaze = create_model("gaze_resnet18", num_outputs=2, width=0.125).eval()
        self.gaze_weights = root / "gaze.safetensors"
        save_file({k: v.contiguous() for k, v in gaze.state_dict().items()}, str(self.gaze_weights))
        gaze.spec = ModelSpec(role="model", input_shape=(1, 36, 60), output="regression", outputs=2)
        self.gaze_onnx = export_model(gaze, root / "gaze.onnx")
        self.grey_restorer = export_restorer(create_model("mae_tiny_patch4").eval(), root / "grey-mae.onnx", (1, 36, 60))
        self.gaze_data = save_npz(make_gaze(120, seed=3), root / "gaze.npz")
        self.signs_data = save_npz(make_signs(120, seed=4, num_classes=16), root / "signs.npz")

    def purify(self, *argv) -> list:
        return ["purify", "--model", self.model, "--restorer", self.restorer, "--threads", "1", *argv]

    def scan(self, *argv, data=None) -> list:
        return ["scan", self.gaze_weights, "--dataset", "gaze", "--width", "0.125", "--quiet",
                "--data", data or self.gaze_data, "--images", "100", "--steps", "2", *argv]


# --- 1. never destroy inputs -------------------------------------------------------------

def purify_into_its_input_folder(s: Setup, tmp: Path) -> str:
    from edgeguard.cli import main

    return _refused(main, s.purify(s.frames, "--out", s.frames), "holds the input", s.root)


def purify_into_a_folder_holding_its_input(s: Setup, tmp: Path) -> str:
    from edgeguard.cli import main

    return _refused(main, s.purify(s.frames, "--out", s.root), "holds the input", s.root)


def _purify_names(s: Setup, tmp: Path, layout: dict[str, str]) -> str:
    from PIL import Image

    from edgeguard.cli import main

    rng = np.random.default_rng(1)
    for name, fmt in layout.items():
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(tmp / name, fmt)
    folders = sorted({str((tmp / n).parent) for n in layout})
    status, err = _call(main, s.purify(*folders, "--out", tmp / "out"))
    records = json.loads((tmp / "out" / "results.json").read_text()) if status == 0 else []
    outputs = {r["purified"] for r in records}
    sources = {Path(r["file"]).resolve() for r in records}
    if status != 0 or len(records) != len(layout) or len(outputs) != len(layout) or \
            sources != {(tmp / n).resolve() for n in layout} or not all(Path(o).exists() for o in outputs):
        raise Misbehaved("wrong_results", f"exit {status}, {len(records)} records, {len(outputs)} distinct outputs "
                                          f"for {len(layout)} inputs: {err.strip()[-200:]}")
    return "correct"


def purify_same_stem_two_formats(s: Setup, tmp: Path) -> str:
    return _purify_names(s, tmp, {"in/x.png": "PNG", "in/x.bmp": "BMP"})


def purify_same_name_in_two_folders(s: Setup, tmp: Path) -> str:
    return _purify_names(s, tmp, {"a/x.png": "PNG", "b/x.png": "PNG"})


def build_engine_onto_its_source(s: Setup, tmp: Path) -> str:
    main = script_main("export/build_engine.py")
    source = tmp / "m.onnx"
    source.write_bytes(s.model.read_bytes())
    return _refused(main, [source, "--backend", "onnxruntime", "-o", source], "would replace its source", tmp)


def build_int8_engine_onto_its_source(s: Setup, tmp: Path) -> str:
    main = script_main("export/build_engine.py")
    source = tmp / "m.onnx"
    source.write_bytes(s.model.read_bytes())
    (tmp / "cal.npz").write_bytes(s.signs_data.read_bytes())
    return _refused(main, [source, "--backend", "onnxruntime", "--precision", "int8", "--calibration",
                           tmp / "cal.npz", "-o", tmp / "sub" / ".." / "m.onnx"], "would replace its source", tmp)


def two_writers_of_one_file(s: Setup, tmp: Path) -> str:
    from edgeguard.fileio import write_atomically

    target, errors = tmp / "mae.safetensors", []

    def writer(payload: bytes):
        try:
            for _ in range(50):
                write_atomically(target, lambda t: t.write_bytes(payload))
        except Exception as exc:  # noqa: BLE001 - any crash of one writer is the fault replayed
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(bytes([i]) * 100_000,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors or target.read_bytes() not in (bytes([0]) * 100_000, bytes([1]) * 100_000):
        raise Misbehaved("partial_outputs", f"concurrent writers: {errors[:1]}, file of {target.stat().st_size} B")
    if [p.name for p in tmp.iterdir()] != ["mae.safetensors"]:
        raise Misbehaved("partial_outputs", f"left {sorted(p.name for p in tmp.iterdir())}")
    return "correct"


# --- 2. no verdict on unusable data --------------------------------------------------------

def scan_on_two_frames(s: Setup, tmp: Path) -> str:
    from edgeguard.cli import main
    from edgeguard.data import make_gaze
    from edgeguard.data.loaders import save_npz

    data = save_npz(make_gaze(2, seed=5), tmp / "two.npz")
    return _refused(main, s.scan("--report", tmp / "report", data=data), "at least 100", tmp, (tmp / "report",))


def scan_colour_frames_with_a_grey_model(s: Setup, tmp: Path) -> str:
    from edgeguard.cli import main

    return _refused(main, s.scan("--report", tmp / "report", data=s.signs_data), "(3, 32, 32)", s.root,
                    (tmp / "report",))


def scan_gaze_frames_with_a_signs_model(s: Setup, tmp: Path) -> str:
    import torch
    from safetensors.torch import save_file

    from edgeguard.cli import main
    from edgeguard.models import create_model

    torch.manual_seed(0)
    model = create_model("preact_resnet18", num_outputs=4, width=0.125)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp / "signs.safetensors"))
    return _refused(main, ["scan", tmp / "signs.safetensors", "--dataset", "signs", "--width", "0.125", "--quiet",
                           "--data", s.gaze_data, "--report", tmp / "report"], "(1, 36, 60)", s.root, (tmp / "report",))


def scan_repair_with_nan_labels(s: Setup, tmp: Path) -> str:
    from edgeguard.cli import main

    with np.load(s.gaze_data) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["labels"] = arrays["labels"].astype(np.float32)
    arrays["labels"][5, 0] = np.nan
    np.savez(tmp / "nan.npz", **arrays)
    return _refused(main, s.scan("--report", tmp / "report", "--repair", tmp / "repaired.safetensors",
                                 data=tmp / "nan.npz"), "NaN", s.root, (tmp / "report", tmp / "repaired.safetensors"))


def scan_a_model_that_ignores_its_input(s: Setup, tmp: Path) -> str:
    import torch
    from safetensors.torch import save_file

    from edgeguard.cli import main
    from edgeguard.models import create_model

    model = create_model("gaze_resnet18", num_outputs=2, width=0.125)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()  # every answer is the same: the model's fault, not the data's
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp / "dead.safetensors"))
    argv = s.scan("--report", tmp / "report")
    argv[1] = tmp / "dead.safetensors"
    return _refused(main, argv, "the model answers the same", s.root, (tmp / "report",))


# --- 3. decoding that does not lie ---------------------------------------------------------

def sixteen_bit_png_is_scaled(s: Setup, tmp: Path) -> str:
    from PIL import Image

    from edgeguard.data.images import read_image

    Image.fromarray(np.array([[0, 32896, 65535]], np.uint16)).save(tmp / "deep.png")
    pixels = read_image(tmp / "deep.png", channels=1)[0, :, 0].tolist()
    if pixels != [0, 128, 255]:
        raise Misbehaved("wrong_results", f"16-bit 0/32896/65535 read as {pixels}")
    return "correct"


def decompression_bomb(s: Setup, tmp: Path) -> str:
    from PIL import Image

    from edgeguard.data.images import read_image

    Image.new("1", (20000, 10000)).save(tmp / "bomb.png")  # 200 Mpx of zeros in a few kB
    return _raises(lambda: read_image(tmp / "bomb.png"), "DataFormatError", "decompression bomb")


def grey_frames_stay_grey_for_a_grey_model(s: Setup, tmp: Path) -> str:
    from PIL import Image

    from edgeguard.cli import main

    (tmp / "eyes").mkdir()
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (36, 60), dtype=np.uint8)).save(tmp / "eyes" / "e.png")
    status, err = _call(main, ["purify", "--model", s.gaze_onnx, "--restorer", s.grey_restorer, tmp / "eyes",
                               "--out", tmp / "out", "--threads", "1"])
    if status != 0:
        raise Misbehaved("wrong_results", f"grey gaze purify exited {status}: {err.strip()[-200:]}")
    with Image.open(tmp / "out" / "e.png") as im:
        if im.mode != "L" or im.size != (60, 36):
            raise Misbehaved("wrong_results", f"purified grey frame came back {im.mode} {im.size}")
    return "correct"


def scan_gaze_from_an_image_folder(s: Setup, tmp: Path) -> str:
    from edgeguard.cli import main

    (tmp / "folder" / "a").mkdir(parents=True)
    return _refused(main, s.scan("--report", tmp / "report", data=tmp / "folder"), "image folders carry class labels",
                    tmp, (tmp / "report",))


# --- 4. bad arguments refused before work, exit 2 ------------------------------------------

def _bad_purify_argument(*argv, message):
    def probe(s: Setup, tmp: Path) -> str:
        from edgeguard.cli import main

        return _refused(main, s.purify(s.frames, "--out", tmp / "out", *argv), message, s.root, (tmp / "out",))
    return probe


def _bad_attack_argument(*argv, message):
    def probe(s: Setup, tmp: Path) -> str:
        from edgeguard.cli import main

        return _refused(main, ["attack", *argv, "--json", tmp / "rows.json", "--quiet"], message, tmp,
                        (tmp / "rows.json",))
    return probe


def purify_out_under_a_file(s: Setup, tmp: Path) -> str:
    from edgeguard.cli import main

    (tmp / "file").write_text("not a folder")
    return _refused(main, s.purify(s.frames, "--out", tmp / "file" / "out"), "is a file", tmp)


def attack_json_under_a_file(s: Setup, tmp: Path) -> str:
    from edgeguard.cli import main

    (tmp / "file").write_text("x")
    return _refused(main, ["attack", "--json", tmp / "file" / "rows.json", "--quiet"], "is a file", tmp)


def scan_report_is_a_file(s: Setup, tmp: Path) -> str:
    from edgeguard.cli import main

    (tmp / "report").write_text("not a folder")
    return _refused(main, s.scan("--report", tmp / "report"), "is a file", tmp)


def scan_repair_into_a_folder(s: Setup, tmp: Path) -> str:
    from edgeguard.cli import main

    (tmp / "repaired").mkdir()
    return _refused(main, s.scan("--report", tmp / "report", "--repair", tmp / "repaired"), "is a folder", tmp,
                    (tmp / "report",))


def train_mae_out_under_a_file(s: Setup, tmp: Path) -> str:
    from edgeguard.cli import main

    (tmp / "file").write_text("x")
    return _refused(main, ["train-mae", "--steps", "2", "--out", tmp / "file" / "mae.safetensors", "--quiet"],
                    "is a file", tmp)


def camera_png_every_zero(s: Setup, tmp: Path) -> str:
    return _refused(script_main("samples/camera_purifier.py"), ["--source", tmp / "clip.mp4", "--headless", "--out",
                                                            tmp / "out", "--png-every", "0"], "must be >= 1", tmp)


def _config_probe(field: str, value, message: str):
    def probe(s: Setup, tmp: Path) -> str:
        from edgeguard.purify import PurifierConfig

        return _raises(lambda: PurifierConfig(**{field: value}), "InvalidArgumentError", message)
    return probe


def purifier_unknown_output_kind(s: Setup, tmp: Path) -> str:
    from edgeguard.purify import Purifier

    return _raises(lambda: Purifier(s.model, s.restorer, output="segmentation"), "InvalidArgumentError",
                   "segmentation")


def purifier_empty_batch(s: Setup, tmp: Path) -> str:
    from edgeguard.purify import Purifier

    purifier = Purifier(s.model, s.restorer)
    return _raises(lambda: purifier(np.zeros((0, 32, 32, 3), np.uint8)), "InvalidInputError", "empty")


def _sidecar_probe(text: str):
    def probe(s: Setup, tmp: Path) -> str:
        from edgeguard.runtime import load_engine

        (tmp / "m.engine").write_bytes(b"plan")
        (tmp / "m.engine.json").write_text(text)
        return _raises(lambda: load_engine(tmp / "m.engine"), "ModelFormatError", "m.engine.json")
    return probe


def restorer_with_patch_size_zero(s: Setup, tmp: Path) -> str:
    from edgeguard.runtime import ModelSpec
    from edgeguard.runtime.spec import METADATA_KEY

    metadata = {METADATA_KEY: json.dumps({"role": "restorer", "input_shape": [3, 32, 32], "token_grid": 8,
                                          "patch_size": 0})}  # as read from a file's metadata
    return _raises(lambda: ModelSpec.from_metadata(metadata), "ModelFormatError", "patch_size")


def version_and_verbose_after_the_command(s: Setup, tmp: Path) -> str:
    from edgeguard.cli import build_parser, main

    status, _ = _call(main, ["--version"])
    if status != 0 or not build_parser().parse_args(["cache", "list", "-v"]).verbose:
        raise Misbehaved("wrong_results", f"--version exited {status} or -v after the subcommand was ignored")
    return "correct"


# --- 5. a cache that heals -----------------------------------------------------------------

def _cache_probe(damage: Callable[[Path], None], word: str):
    def probe(s: Setup, tmp: Path) -> str:
        from edgeguard import cache

        folder = tmp / "victims" / "k"
        folder.mkdir(parents=True)
        (folder / "model.safetensors").write_bytes(b"w" * 4096)
        (folder / "other.bin").write_bytes(b"o" * 4096)
        cache.seal(folder, ["model.safetensors", "other.bin"])
        damage(folder)
        found = cache.problems(folder)
        if not found or not any(word in p for p in found):
            raise Misbehaved("wrong_results", f"damage ({word}) not reported: {found}")
        # The next lookup must drop the entry (so it is rebuilt), not load it.
        if cache.intact(folder, ("model.safetensors", "other.bin")) or (folder / "model.safetensors").exists():
            raise Misbehaved("wrong_results", f"a damaged entry ({word}) still counts as intact or keeps its files")
        return "correct"
    return probe


def _truncate(folder: Path) -> None:
    path = folder / "model.safetensors"
    path.write_bytes(path.read_bytes()[:100])


def _swap(folder: Path) -> None:
    a, b = folder / "model.safetensors", folder / "other.bin"
    data = a.read_bytes()
    a.write_bytes(b.read_bytes())
    b.write_bytes(data)


# --- 6. paths ------------------------------------------------------------------------------

def _gtsrb_probe(name: str):
    def probe(s: Setup, tmp: Path) -> str:
        from PIL import Image

        from edgeguard.data.loaders import load_image_folder

        folder = tmp / "gtsrb" / "00000"
        folder.mkdir(parents=True)
        secret = tmp / "secret.ppm"
        Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(secret)
        entry = str(secret) if name == "ABSOLUTE" else name
        (folder / "GT-00000.csv").write_text("Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\n"
                                             f"{entry};40;40;2;2;37;37;0\n")
        return _raises(lambda: load_image_folder(tmp / "gtsrb", size=8), "DataFormatError", "points outside")
    return probe


def engine_whose_sidecar_was_deleted(s: Setup, tmp: Path) -> str:
    from edgeguard.deploy import BuildConfig, build_engine
    from edgeguard.runtime import load_engine

    built = build_engine(s.model, tmp / "m.ort.onnx", BuildConfig(backend="onnxruntime"))
    built.sidecar.unlink()
    outcome = _raises(lambda: load_engine(tmp / "m.ort.onnx")(np.zeros((1, 3, 32, 32), np.float32)),
                      "ModelFormatError", "missing")
    if load_engine(tmp / "m.ort.onnx", allow_unverified=True).verified:
        raise Misbehaved("wrong_results", "an engine without its sidecar loaded as verified")
    return outcome


PROBES: dict[str, Callable[[Setup, Path], str]] = {
    "purify_into_its_input_folder": purify_into_its_input_folder,
    "purify_into_a_folder_holding_its_input": purify_into_a_folder_holding_its_input,
    "purify_same_stem_two_formats": purify_same_stem_two_formats,
    "purify_same_name_in_two_folders": purify_same_name_in_two_folders,
    "build_engine_onto_its_source": build_engine_onto_its_source,
    "build_int8_engine_onto_its_source": build_int8_engine_onto_its_source,
    "two_writers_of_one_file": two_writers_of_one_file,
    "scan_on_two_frames": scan_on_two_frames,
    "scan_colour_frames_with_a_grey_model": scan_colour_frames_with_a_grey_model,
    "scan_gaze_frames_with_a_signs_model": scan_gaze_frames_with_a_signs_model,
    "scan_repair_with_nan_labels": scan_repair_with_nan_labels,
    "scan_a_model_that_ignores_its_input": scan_a_model_that_ignores_its_input,
    "sixteen_bit_png_is_scaled": sixteen_bit_png_is_scaled,
    "decompression_bomb": decompression_bomb,
    "grey_frames_stay_grey_for_a_grey_model": grey_frames_stay_grey_for_a_grey_model,
    "scan_gaze_from_an_image_folder": scan_gaze_from_an_image_folder,
    "purify_batch_zero": _bad_purify_argument("--batch", "0", message="--batch and --threads must be >= 1"),
    "purify_batch_negative": _bad_purify_argument("--batch", "-1", message="--batch and --threads must be >= 1"),
    "purify_out_under_a_file": purify_out_under_a_file,
    "attack_width_zero": _bad_attack_argument("--width", "0", message="width must be > 0"),
    "attack_n_test_zero": _bad_attack_argument("--n-test", "0", message="n_train and n_test must be >= 1"),
    "attack_json_under_a_file": attack_json_under_a_file,
    "scan_report_is_a_file": scan_report_is_a_file,
    "scan_repair_into_a_folder": scan_repair_into_a_folder,
    "train_mae_out_under_a_file": train_mae_out_under_a_file,
    "camera_png_every_zero": camera_png_every_zero,
    "config_max_batch_zero": _config_probe("max_batch", 0, "max_batch"),
    "config_refine_steps_negative": _config_probe("refine_steps", -1, "refine_steps"),
    "config_max_masked_above_one": _config_probe("max_masked", 1.5, "max_masked"),
    "purifier_unknown_output_kind": purifier_unknown_output_kind,
    "purifier_empty_batch": purifier_empty_batch,
    "sidecar_empty_list": _sidecar_probe("[]"),
    "sidecar_null": _sidecar_probe("null"),
    "sidecar_inputs_null": _sidecar_probe('{"format": "edgeguard-engine-sidecar", "inputs": null}'),
    "sidecar_truncated": _sidecar_probe('{"format": "edgeguard-eng'),
    "restorer_with_patch_size_zero": restorer_with_patch_size_zero,
    "version_and_verbose_after_the_command": version_and_verbose_after_the_command,
    "cache_truncated_file": _cache_probe(_truncate, "model.safetensors"),
    "cache_missing_file": _cache_probe(lambda f: (f / "other.bin").unlink(), "other.bin"),
    "cache_swapped_files": _cache_probe(_swap, "model.safetensors"),
    "gtsrb_annotation_with_dotdot": _gtsrb_probe("../../secret.ppm"),
    "gtsrb_annotation_with_absolute_path": _gtsrb_probe("ABSOLUTE"),
    "engine_whose_sidecar_was_deleted": engine_whose_sidecar_was_deleted,
}


def run_probes(names=None, progress: Callable[[str], None] = lambda line: None) -> dict:
    """Run the named probes (default: all) in fresh folders under one temporary root; the row
    counts each probe's outcome and lists every misbehaviour with the probe's name."""
    from edgeguard.errors import EdgeGuardError

    row = {"area": "probes", "cases": 0, "typed_errors": 0, "correct": 0, "other_exceptions": 0,
           "partial_outputs": 0, "inputs_changed": 0, "wrong_results": 0, "resumed": None, "examples": []}
    with tempfile.TemporaryDirectory(prefix="edgeguard-probes-") as tmp, private_cache(Path(tmp) / "cache"):
        root = Path(tmp)  # the cache inside: nothing of the user's is touched
        setup = Setup(root / "shared")
        for name in names or PROBES:
            case = root / name
            case.mkdir()
            try:
                outcome, detail = PROBES[name](setup, case), ""
            except Misbehaved as exc:
                outcome, detail = exc.outcome, str(exc)
            except EdgeGuardError as exc:
                outcome, detail = "wrong_results", f"unexpected {type(exc).__name__}: {exc}"
            except Exception as exc:  # noqa: BLE001 - the property under test
                outcome, detail = "other_exceptions", f"{type(exc).__name__}: {exc}"
            row["cases"] += 1
            row[outcome] += 1
            if detail:
                row["examples"].append(f"{name}: {outcome}: {detail}"[:300])
            progress(f"{name}: {outcome}")
    return row
