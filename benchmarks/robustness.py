"""Fuzzing campaign: generated frames and malformed files against the entry points.

    python -m benchmarks.robustness --quick --json benchmarks/results/robustness_quick.json

The property, for every case: the call either returns a correct result or raises a typed
``EdgeGuardError`` (exit status 2 for the CLI); never another exception, never a partial
output file, never a changed input. Areas:

- ``frames``: generated frames (shapes, dtypes, NaN/inf, out of range, empty, batches)
  through ``Purifier`` and ``FrameStream``, with small numpy stand-in engines (what is
  exercised is the input handling, not the defense; a valid frame's result is checked for
  shape, dtype and range);
- ``files``: valid files truncated, garbled and emptied (PNG, JPEG, 16-bit PNG, ONNX,
  safetensors, sidecar JSON, npz, GTSRB annotations) through ``read_image``,
  ``load_dataset``, ``load_engine``, ``load_model_weights``; ``cli_purify``: folders holding
  a malformed image through ``edgeguard purify``;
- ``cli_tools``: malformed weights and data through ``edgeguard scan``, a frame folder with a
  bad image through ``edgeguard train-mae``, malformed ONNX through ``export/build_engine.py``
  and malformed video through the camera sample (``samples/camera_purifier.py``);
- ``probes``: the faults issue #18 names, replayed one by one (``benchmarks/probes.py``);
- ``interruptions``: SIGINT/SIGKILL at random moments of victim training, MAE training and
  ``edgeguard purify`` over a folder, then a rerun that must end as an uninterrupted run.

Rows keyed area, cases, typed_errors, correct, other_exceptions, partial_outputs,
inputs_changed, wrong_results (a call that returned, but not what it promises), resumed
(interruptions only, else null), plus up to five examples of each failure kind.
"""
from __future__ import annotations

import contextlib
import hashlib
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks import common

CASES = {"quick": {"frames": 10000, "files": 600, "tools": 50, "interruptions": 9},
         "full": {"frames": 50000, "files": 3000, "tools": 250, "interruptions": 42}}


def _stand_ins():
    """A 3-class stand-in classifier (the answer: the brightest channel) and a restorer on
    8x8 tokens of 4 px that turns masked tokens mid-grey, as engines."""
    from edgeguard.runtime import Engine, ModelSpec

    class Model(Engine):
        backend, input_names = "stand-in", ("image",)

        def _run(self, arrays):
            return [arrays[0].mean(axis=(2, 3))]

    class Restorer(Engine):
        backend, input_names = "stand-in", ("image", "mask")
        metadata = ModelSpec(role="restorer", input_shape=(3, 32, 32), token_grid=8, patch_size=4).to_metadata()

        def _run(self, arrays):
            x, mask = arrays
            pixels = np.repeat(np.repeat(mask.reshape(-1, 1, 8, 8), 4, 2), 4, 3)
            return [(x * (1 - pixels) + 0.5 * pixels).astype(np.float32)]

    return Model(), Restorer()


def _tally(area: str) -> dict:
    return {"area": area, "cases": 0, "typed_errors": 0, "correct": 0, "other_exceptions": 0, "partial_outputs": 0,
            "inputs_changed": 0, "wrong_results": 0, "resumed": None, "examples": []}


def _record(row: dict, outcome: str, detail: str = "") -> None:
    row["cases"] += 1
    row[outcome] += 1
    if outcome not in ("typed_errors", "correct") and len(row["examples"]) < 5:
        row["examples"].append(f"{outcome}: {detail}"[:300])


def _random_frame(rng: np.random.Generator):
    """A frame that is valid about a third of the time and malformed in many ways otherwise."""
    kind = rng.integers(0, 12)
    if kind <= 3:
        return rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    if kind == 4:
        return rng.random((1, 3, 32, 32), dtype=np.float32)
    if kind == 5:
        return rng.integers(0, 256, tuple(rng.integers(0, 40, rng.integers(0, 6))), dtype=np.uint8)
    if kind == 6:
        x = rng.random((3, 32, 32)).astype((np.float16, np.float32, np.float64)[int(rng.integers(0, 3))])
        x.flat[rng.integers(0, x.size)] = (np.nan, np.inf, -np.inf, 2.0, -1.0)[int(rng.integers(0, 5))]
        return x
    if kind == 7:
        return rng.integers(-5, 300, (32, 32, 3)).astype((np.int16, np.int64, np.uint16)[int(rng.integers(0, 3))])
    if kind == 8:
        return rng.integers(0, 256, (32, 32, int(rng.choice([1, 2, 4]))), dtype=np.uint8)
    if kind == 9:
        return np.zeros((0, 32, 32, 3), np.uint8)
    if kind == 10:
        return rng.integers(0, 256, (int(rng.integers(1, 64)), int(rng.integers(1, 64)), 3), dtype=np.uint8)
    return (None, "frame.png", 3.0, [[1, 2], [3]])[int(rng.integers(0, 4))]


def fuzz_frames(n: int, seed: int = 0) -> dict:
    from edgeguard.errors import EdgeGuardError
    from edgeguard.purify import Purifier, PurifierConfig
    from edgeguard.purify.stream import FrameStream

    row = _tally("frames")
    rng = np.random.default_rng(seed)
    purifier = Purifier(*_stand_ins(), PurifierConfig(early_exit=0.5), output="classification")
    stream = FrameStream(purifier)
    for i in range(n):
        frame = _random_frame(rng)
        before = hashlib.sha256(frame.tobytes()).hexdigest() if isinstance(frame, np.ndarray) else None
        call = stream if i % 2 else purifier
        try:
            result = call(frame)
            ok = (result.purified.shape[-3:] in ((32, 32, 3), (3, 32, 32)) and np.isfinite(result.outputs).all()
                  and len(result.prediction) >= 1)
            _record(row, "correct" if ok else "wrong_results", f"bad result for {_describe(frame)}")
        except EdgeGuardError:
            _record(row, "typed_errors")
        except Exception as exc:  # the property under test
            _record(row, "other_exceptions", f"{type(exc).__name__} on {_describe(frame)}: {exc}")
        if isinstance(frame, np.ndarray) and hashlib.sha256(frame.tobytes()).hexdigest() != before:
            _record(row, "inputs_changed", f"frame {_describe(frame)} was modified")
            row["cases"] -= 1
    return row


def _describe(frame) -> str:
    return f"{frame.dtype}{list(frame.shape)}" if isinstance(frame, np.ndarray) else type(frame).__name__


def _valid_files(folder: Path) -> dict[str, Path]:
    """One valid file of every kind the loaders read."""
    import torch
    from PIL import Image
    from safetensors.torch import save_file

    from edgeguard.data.loaders import save_npz
    from edgeguard.data.signs import make_signs
    from edgeguard.deploy import BuildConfig, build_engine, export_model
    from edgeguard.models import create_model
    from edgeguard.runtime import ModelSpec

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    files["png"] = folder / "frame.png"
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(files["png"])
    files["jpg"] = folder / "frame.jpg"
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(files["jpg"])
    files["png16"] = folder / "deep.png"
    Image.fromarray(rng.integers(0, 65536, (32, 32), dtype=np.uint16)).save(files["png16"])
    files["npz"] = save_npz(make_signs(20, 0, num_classes=16), folder / "signs.npz")
    torch.manual_seed(0)
    model = create_model("preact_resnet18", num_outputs=4, width=0.125)
    files["safetensors"] = folder / "model.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(files["safetensors"]))
    spec = ModelSpec(role="model", input_shape=(3, 32, 32), output="classification", outputs=4)
    files["onnx"] = export_model(model.eval(), folder / "model.onnx", spec)
    built = build_engine(files["onnx"], folder / "model.ort.onnx", BuildConfig(backend="onnxruntime"))
    files["sidecar"] = built.sidecar
    gtsrb = folder / "gtsrb" / "00000"
    gtsrb.mkdir(parents=True)
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(gtsrb / "a.ppm")
    files["csv"] = gtsrb / "GT-00000.csv"
    files["csv"].write_text("Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\na.ppm;40;40;2;2;37;37;0\n")
    return files


def _mutate(data: bytes, rng: np.random.Generator) -> bytes:
    kind = rng.integers(0, 5)
    if kind == 0 or len(data) < 2:
        return b""
    if kind == 1:
        return data[: int(rng.integers(1, len(data)))]  # truncated
    buf = bytearray(data)
    if kind == 2:
        for _ in range(int(rng.integers(1, 16))):  # garbled bytes
            buf[int(rng.integers(0, len(buf)))] = int(rng.integers(0, 256))
        return bytes(buf)
    if kind == 3:
        start = int(rng.integers(0, len(buf)))  # a garbled run
        end = min(len(buf), start + int(rng.integers(1, 512)))
        buf[start:end] = rng.integers(0, 256, end - start, dtype=np.uint8).tobytes()
        return bytes(buf)
    return data + rng.integers(0, 256, int(rng.integers(1, 256)), dtype=np.uint8).tobytes()  # trailing junk


def _loaders(files: dict[str, Path]):
    """kind -> call(path) that loads a file of that kind the way a user's code would."""
    from edgeguard.data.images import read_image
    from edgeguard.data.loaders import load_dataset, load_image_folder
    from edgeguard.deploy.weights import load_model_weights
    from edgeguard.runtime import load_engine

    x = np.random.default_rng(1).random((2, 3, 32, 32), dtype=np.float32)

    def engine(path):
        return load_engine(path)(x)

    def built(path):  # the mutated sidecar sits next to an intact engine copy
        return load_engine(path.parent / path.name.removesuffix(".json"))(x)

    return {"png": read_image, "jpg": read_image, "png16": read_image, "npz": load_dataset,
            "safetensors": lambda p: load_model_weights("preact_resnet18", p, width=0.125),
            "onnx": engine, "sidecar": built, "csv": lambda p: load_image_folder(p.parent.parent, size=8)}


def fuzz_files(n: int, seed: int = 0) -> dict:
    import shutil

    from edgeguard.errors import EdgeGuardError

    row = _tally("files")
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory(prefix="edgeguard-fuzz-") as tmp:
        root = Path(tmp)
        files = _valid_files(root / "valid")
        loaders = _loaders(files)
        kinds = sorted(files)
        for i in range(n):
            kind = kinds[i % len(kinds)]
            case = root / f"case{i}"
            case.mkdir()
            if kind == "sidecar":
                shutil.copy(files["onnx"].parent / "model.ort.onnx", case / "model.ort.onnx")
            if kind == "csv":
                (case / "gtsrb" / "00000").mkdir(parents=True)
                shutil.copy(files["csv"].parent / "a.ppm", case / "gtsrb" / "00000" / "a.ppm")
                target = case / "gtsrb" / "00000" / files["csv"].name
            else:
                target = case / files[kind].name
            target.write_bytes(_mutate(files[kind].read_bytes(), rng))
            before = {p: p.read_bytes() for p in case.rglob("*") if p.is_file()}
            try:
                loaders[kind](target)
                _record(row, "correct")  # a mutation the format tolerates (e.g. trailing junk after a PNG)
            except EdgeGuardError:
                _record(row, "typed_errors")
            except Exception as exc:
                _record(row, "other_exceptions", f"{kind}: {type(exc).__name__}: {exc}")
            after = {p: p.read_bytes() for p in case.rglob("*") if p.is_file()}
            if after != before:
                changed = sorted(str(p.relative_to(case)) for p in set(after) | set(before)
                                 if after.get(p) != before.get(p))
                outcome = "inputs_changed" if any(p in before for p in after) else "partial_outputs"
                _record(row, outcome, f"{kind}: {changed}")
                row["cases"] -= 1
            shutil.rmtree(case)
    return row


def fuzz_cli_purify(n: int, seed: int = 0) -> dict:
    """``edgeguard purify`` over folders that hold malformed images among good ones: exit 0 or 2,
    nothing of the inputs changed, no output folder left behind by a refused run."""
    import shutil

    from edgeguard.cli import main as cli
    from edgeguard.deploy import export_restorer
    from edgeguard.models import create_model

    row = _tally("cli_purify")
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory(prefix="edgeguard-fuzz-cli-") as tmp:
        root = Path(tmp)
        files = _valid_files(root / "valid")
        restorer = export_restorer(create_model("mae_tiny_patch4"), root / "valid" / "mae.onnx", (3, 32, 32))
        for i in range(n):
            case = root / f"case{i}"
            frames = case / "frames"
            frames.mkdir(parents=True)
            for j in range(int(rng.integers(1, 4))):
                shutil.copy(files["png"], frames / f"ok{j}.png")
            bad = frames / f"bad.{rng.choice(['png', 'jpg'])}"
            bad.write_bytes(_mutate(files[str(bad.suffix[1:])].read_bytes(), rng))
            before = {p: p.read_bytes() for p in frames.iterdir()}
            out = case / "out"
            try:
                status = cli(["purify", str(frames), "--model", str(files["onnx"]), "--restorer", str(restorer),
                              "--out", str(out), "--seed", "1"])
                _record(row, "correct" if status == 0 else "typed_errors")
                if status != 0 and out.exists() and any(out.iterdir()):
                    _record(row, "partial_outputs", f"exit {status} left {sorted(p.name for p in out.iterdir())}")
                    row["cases"] -= 1
            except BaseException as exc:  # main() must turn every error into an exit status
                _record(row, "other_exceptions", f"{type(exc).__name__}: {exc}")
            if {p: p.read_bytes() for p in frames.iterdir()} != before:
                _record(row, "inputs_changed", f"case {i}")
                row["cases"] -= 1
            shutil.rmtree(case)
    return row


def _tools(root: Path, files: dict[str, Path]) -> dict:
    """tool -> (the valid input it fuzzes, argv with {input} and {case} to fill in, the outputs a
    refused run must not leave, exit statuses that are results). Scan, train-mae and
    build_engine.py run in this process; the camera sample in its own (a video decoder that
    crashes on a malformed file must not take the campaign with it, and counts as a failure)."""
    import sys as _sys

    import torch
    from PIL import Image
    from safetensors.torch import save_file

    from edgeguard.data import make_gaze
    from edgeguard.data.loaders import save_npz
    from edgeguard.deploy import export_restorer
    from edgeguard.models import create_model

    torch.manual_seed(0)
    gaze = root / "gaze.safetensors"
    save_file({k: v.contiguous() for k, v in create_model("gaze_resnet18", num_outputs=2, width=0.125)
               .state_dict().items()}, str(gaze))
    gaze_npz = save_npz(make_gaze(120, seed=3), root / "gaze.npz")
    restorer = export_restorer(create_model("mae_tiny_patch4").eval(), root / "mae.onnx", (3, 32, 32))
    video = root / "clip.mp4"
    import cv2

    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 15.0, (64, 64))
    rng = np.random.default_rng(0)
    for _ in range(8):
        writer.write(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    writer.release()
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / f"frame{i}.png")
    scan = ["scan", "--dataset", "gaze", "--width", "0.125", "--images", "100", "--steps", "2", "--quiet",
            "--report", "{case}/report"]
    camera = [_sys.executable, str(Path(__file__).resolve().parents[1] / "samples" / "camera_purifier.py"),
              "--source", "{input}", "--model", str(files["onnx"]), "--restorer", str(restorer), "--headless",
              "--max-frames", "3", "--early-exit", "0.5", "--out", "{case}/out"]
    return {
        "scan_weights": (gaze, [scan[0], "{input}", *scan[1:], "--data", str(gaze_npz)], ["report"], (0, 2, 3)),
        "scan_data": (gaze_npz, [scan[0], str(gaze), *scan[1:], "--data", "{input}"], ["report"], (0, 2, 3)),
        "train_mae": (files["png"], ["train-mae", "--steps", "2", "--finetune-on", "{case}/frames", "--finetune-steps",
                                     "2", "--out", "{case}/mae.safetensors", "--quiet"], ["mae.safetensors"], (0, 2)),
        "build_engine": (files["onnx"], ["{input}", "--backend", "onnxruntime", "-o", "{case}/out.ort.onnx"],
                         ["out.ort.onnx", "out.ort.onnx.json"], (0, 2)),
        "camera": (video, camera, ["out"], (0, 2)),
    }


def fuzz_cli_tools(n: int, seed: int = 0) -> dict:
    """Malformed files through ``edgeguard scan`` (weights, data), ``edgeguard train-mae``
    (a frame folder holding a bad image), ``export/build_engine.py`` (ONNX) and the camera
    sample (video): exit 0 (3: a scan verdict) or 2, inputs unchanged, and a refused run leaves
    none of its outputs."""
    import os
    import shutil
    import subprocess

    from edgeguard.cli import main as cli

    from benchmarks.probes import script_main

    build_engine = script_main("export/build_engine.py")
    row = _tally("cli_tools")
    rng = np.random.default_rng(seed)
    # train-mae caches its stages in the temporary folder, not in the user's cache
    with tempfile.TemporaryDirectory(prefix="edgeguard-fuzz-tools-") as tmp, common.private_cache(Path(tmp) / "cache"):
        root = Path(tmp)
        tools = _tools(root / "valid", _valid_files(root / "valid"))
        names = sorted(tools)
        for i in range(n):
            tool = names[i % len(names)]
            source, argv, outputs, ok_status = tools[tool]
            case = root / f"case{i}"
            if tool == "train_mae":  # eleven good frames and one bad one
                (case / "frames").mkdir(parents=True)
                for j in range(11):
                    shutil.copy(root / "valid" / f"frame{j}.png", case / "frames" / f"f{j}.png")
                target = case / "frames" / "bad.png"
            else:
                case.mkdir()
                target = case / f"input{source.suffix}"
            target.write_bytes(_mutate(source.read_bytes(), rng))
            argv = [a.replace("{input}", str(target)).replace("{case}", str(case)) for a in argv]
            before = {p: p.read_bytes() for p in case.rglob("*") if p.is_file()}
            try:
                with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet), \
                        contextlib.redirect_stderr(quiet):
                    if tool == "camera":
                        status = subprocess.run(argv, capture_output=True, timeout=300).returncode
                    else:
                        status = (build_engine if tool == "build_engine" else cli)(argv)
                _record(row, "correct" if status in ok_status and status != 2 else
                        "typed_errors" if status == 2 else "other_exceptions", f"{tool}: exit {status}")
                left = [name for name in outputs if (case / name).exists()]
                if status == 2 and left:
                    _record(row, "partial_outputs", f"{tool}: exit 2 left {left}")
                    row["cases"] -= 1
            except BaseException as exc:  # main() must turn every error into an exit status
                _record(row, "other_exceptions", f"{tool}: {type(exc).__name__}: {exc}")
            changed = [str(p.relative_to(case)) for p, data in before.items()
                       if not p.exists() or p.read_bytes() != data]
            if changed:
                _record(row, "inputs_changed", f"{tool}: {changed}")
                row["cases"] -= 1
            shutil.rmtree(case)
    return row


_JOBS = {
    # name -> (code, the files whose bytes an interrupted-then-rerun job must reproduce, the
    # window in seconds the kill falls in: both ends inside the job's run on 2 cores)
    "victim": ("from edgeguard.bench.victims import VictimConfig, get_victim\n"
               "from edgeguard.train import TrainConfig\n"
               "get_victim(VictimConfig(dataset='signs', attack='badnets', n_train=768, n_test=64, num_classes=16,"
               " train=TrainConfig(epochs=4, batch_size=64)), progress=False)\n", "victims/*/model.safetensors",
               (3.0, 16.0)),
    "mae": ("from edgeguard.bench.restorer import RestorerConfig, get_restorer\n"
            "get_restorer(RestorerConfig(steps=700, batch_size=8, warmup_steps=10), progress=False)\n",
            "restorers/*/mae.safetensors", (5.0, 30.0)),
    # edgeguard purify over a folder (set up by _PURIFY_SETUP, uninterrupted): the rerun must
    # write every frame as the uninterrupted run does, results.json listing each one.
    "purify": ("import os\nfrom edgeguard.cli import main\nroot = os.environ['EDGEGUARD_CACHE']\n"
               "main(['purify', '--model', root + '/m.onnx', '--restorer', root + '/mae.onnx', root + '/frames',"
               " '--out', root + '/out', '--batch', '4', '--threads', '1'])\n", "out/*.png", (3.0, 9.0)),
}
_PURIFY_SETUP = ("import os, numpy as np, torch\nfrom PIL import Image\n"
                 "from edgeguard.deploy import export_onnx, export_restorer\nfrom edgeguard.models import create_model\n"
                 "root = os.environ['EDGEGUARD_CACHE']\nos.makedirs(root + '/frames')\ntorch.manual_seed(0)\n"
                 "export_onnx(create_model('preact_resnet18', num_outputs=4, width=0.125).eval(), root + '/m.onnx',"
                 " (3, 32, 32))\nexport_restorer(create_model('mae_tiny_patch4').eval(), root + '/mae.onnx', (3, 32, 32))\n"
                 "rng = np.random.default_rng(0)\nfor i in range(40):\n"
                 "    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(f'{root}/frames/f{i:02d}.png')\n")


def _run_job(job: str, cache: Path, kill_after: "float | None", sig) -> int:
    """Run ``job`` in a fresh process with its own cache; kill it with ``sig`` after
    ``kill_after`` seconds (None: let it finish). Returns the exit status."""
    import os
    import subprocess
    import time

    env = {**os.environ, "EDGEGUARD_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    if job == "purify" and not (cache / "frames").exists():
        subprocess.run([sys.executable, "-c", _PURIFY_SETUP], env=env, check=True, stdout=subprocess.DEVNULL)
    proc = subprocess.Popen([sys.executable, "-c", "import torch; torch.set_num_threads(1)\n" + _JOBS[job][0]],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if kill_after is not None:
        deadline = time.monotonic() + kill_after
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if proc.poll() is None:
            proc.send_signal(sig)
    proc.wait(timeout=600)
    return proc.returncode


def _artefacts(job: str, cache: Path) -> dict[str, str]:
    return {str(p.relative_to(cache)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(cache.glob(_JOBS[job][1]))}


def _unlisted_frames(out: Path) -> list[str]:
    """Frames in ``out`` that results.json does not list, and listed ones that are missing."""
    import json

    if not out.exists():
        return []
    try:
        listed = {Path(r["purified"]).name for r in json.loads((out / "results.json").read_text())}
    except FileNotFoundError:
        listed = set()
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return [f"{out / 'results.json'}: unreadable ({exc})"]
    return sorted(listed ^ {p.name for p in out.glob("*.png")})


def interruptions(n: int, seed: int = 0) -> dict:
    """SIGINT or SIGKILL at a random moment of victim training, MAE training and `edgeguard
    purify` over a folder, then a rerun: the rerun must end with the artefacts an uninterrupted
    run makes, the cache must hold no entry that looks complete but is not
    (``cache.problems``), and an interrupted purify must leave results.json listing exactly the
    frames it wrote."""
    import signal

    from edgeguard import cache as edgeguard_cache

    row = _tally("interruptions")
    row["resumed"] = 0
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory(prefix="edgeguard-fuzz-int-") as tmp:
        root = Path(tmp)
        reference = {}
        for job in _JOBS:
            _run_job(job, root / f"reference-{job}", None, None)
            reference[job] = _artefacts(job, root / f"reference-{job}")
        for i in range(n):
            job = list(_JOBS)[i % len(_JOBS)]
            sig = (signal.SIGINT, signal.SIGKILL)[int(rng.integers(0, 2))]
            folder = root / f"case{i}"
            status = _run_job(job, folder, float(rng.uniform(*_JOBS[job][2])), sig)
            damaged = [p for kind in folder.glob("*") for p in kind.glob("*")
                       if (p / edgeguard_cache.MANIFEST).exists() and edgeguard_cache.problems(p)]
            if job == "purify":  # results.json must list exactly the frames written before the kill
                damaged += _unlisted_frames(folder / "out")
            rerun = _run_job(job, folder, None, None)
            if damaged:
                _record(row, "partial_outputs", f"{job} after {sig.name}: damaged entries {damaged}")
                row["cases"] -= 1
            if rerun != 0:
                _record(row, "other_exceptions", f"{job}: rerun after {sig.name} exited {rerun}")
            elif _artefacts(job, folder) == reference[job]:
                _record(row, "correct")
                row["resumed"] += 1
            else:
                _record(row, "other_exceptions", f"{job}: rerun after {sig.name} (first exit {status}) made other weights")
    return row


def main(argv=None) -> int:
    args = common.parser("robustness", __doc__).parse_args(argv)
    mode = "quick" if args.quick else "full"
    size = CASES[mode]

    def body() -> list[dict]:
        from benchmarks.probes import run_probes

        rows = [fuzz_frames(size["frames"]), fuzz_files(size["files"]), fuzz_cli_purify(size["files"] // 20),
                fuzz_cli_tools(size["tools"]), run_probes(), interruptions(size["interruptions"])]
        for r in rows:
            print({k: v for k, v in r.items() if k != "examples"}, file=sys.stderr, flush=True)
            for example in r["examples"]:
                print("   ", example, file=sys.stderr)
        return rows

    record = common.run("robustness", {"mode": mode, **size}, body, args.json)
    print(f"wrote {args.json} in {record['seconds']:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
