"""Purify a camera feed: every frame through BDMAE, the trigger heat map and the answer drawn on it.

    python samples/camera_purifier.py --source 0                         # camera index 0, a window
    python samples/camera_purifier.py --source clip.mp4 --headless --out runs/clip
    python samples/camera_purifier.py --source "nvarguscamerasrc ! video/x-raw(memory:NVMM),width=1280,height=720 ! nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! appsink"
    python samples/camera_purifier.py --make-video clip.mp4              # a test clip with a sticker trigger
    python samples/camera_purifier.py --source 0 --calibrate-on clean_footage.mp4   # not in BDMAE: see below

The model and restorer are engines (.onnx or TensorRT .engine, see export/build_engine.py);
without --model/--restorer the demo's BadNets sign classifier and tiny MAE are used (the weights
shipped with edgeguard). Each camera frame is resized to the model's input size and goes
through ``FrameStream`` (warm start on, early exit optional); a frame that cannot be read or
purified is counted and skipped, the loop goes on. The window (or, --headless, the annotated
video out/annotated.mp4 plus a PNG every --png-every frames and out/summary.json) shows the
frame, the token-score heat map, the purified answer and the frames per second.
--calibrate-on (a video or a folder of images from the same camera, known to hold no trigger,
at least 100 frames) sets the purifier's score gate (``Purifier.calibrate``, not in the
paper): a cold frame whose token scores stay within what 99% of that footage reaches keeps its
answer, which removes most of BDMAE's cost on clean frames.
Needs OpenCV: pip install opencv-python (or opencv-python-headless for --headless).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edgeguard.errors import EdgeGuardError, InvalidInputError, require
from edgeguard.fileio import check_writable
from edgeguard.purify import FrameStream, Purifier, PurifierConfig, StreamConfig
from edgeguard.runtime import load_engine

log = logging.getLogger("camera_purifier")


def open_source(cv2, source: str):
    """A VideoCapture for a camera index, a file, or a GStreamer pipeline ("... ! appsink")."""
    if source.isdigit():
        capture = cv2.VideoCapture(int(source))
    elif "!" in source:
        capture = cv2.VideoCapture(source, cv2.CAP_GSTREAMER)
    else:
        if not Path(source).is_file():
            raise FileNotFoundError(f"no video file {source}")
        capture = cv2.VideoCapture(source)
    if not capture.isOpened():
        raise RuntimeError(f"OpenCV cannot open {source!r} (for GStreamer pipelines OpenCV must be built with it)")
    return capture


def demo_engines(workdir: Path):
    """The demo's model and restorer (shipped with edgeguard) as ONNX engines."""
    from edgeguard.bench.demo import demo_models
    from edgeguard.deploy import export_model, export_restorer

    victim, mae = demo_models()
    return (export_model(victim.model, workdir / "model.onnx"),
            export_restorer(mae, workdir / "mae.onnx", (3, 32, 32)))


def make_video(path: Path, frames: int = 90, size: int = 256, fps: float = 15.0) -> Path:
    """A test clip: SynthSigns scenes, half the shots with the demo's BadNets sticker drifting in."""
    cv2 = require("cv2", "writing videos", None)
    from edgeguard.attacks import get_attack
    from edgeguard.data import make_signs, make_trigger_video

    signs = make_signs(40, seed=123)
    attack = get_attack("badnets").fit(signs)
    video = make_trigger_video(signs.images, attack.apply(signs.images), signs.labels, shots=max(frames // 15, 1),
                               frames_per_shot=15, seed=3)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (size, size))
    for frame in video.frames[:frames]:
        big = cv2.resize(frame, (size, size), interpolation=cv2.INTER_NEAREST)
        writer.write(cv2.cvtColor(big, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def annotate(cv2, frame_bgr: np.ndarray, result, fps: float, output: str) -> np.ndarray:
    """The frame with the token-score heat map blended in, the answer and the fps written on."""
    h, w = frame_bgr.shape[:2]
    scores = np.clip(result.token_scores[0], 0, 1)
    heat = cv2.applyColorMap((cv2.resize(scores, (w, h), interpolation=cv2.INTER_NEAREST) * 255).astype(np.uint8),
                             cv2.COLORMAP_INFERNO)
    out = cv2.addWeighted(frame_bgr, 0.65, heat, 0.35, 0)
    if output == "classification":
        answer = f"class {int(result.prediction[0])}"
        if result.changed[0]:
            answer += f" (model said {int(result.original_prediction[0])}: trigger removed)"
    else:
        answer = "output " + ", ".join(f"{v:+.3f}" for v in result.prediction[0])
    for i, text in enumerate([answer, f"{fps:.1f} fps  {'warm' if result.warm_started[0] else 'cold'}"]):
        cv2.putText(out, text, (8, 22 + 22 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 2, cv2.LINE_AA)
    return out


def to_model_frame(cv2, frame_bgr: np.ndarray, channels: int, height: int, width: int) -> np.ndarray:
    """A BGR camera frame as the model takes it: (height, width, channels) uint8, RGB or grey."""
    small = cv2.resize(frame_bgr, (width, height), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)[..., None] if channels == 1 else small[..., ::-1])


def read_footage(cv2, source: str, limit: int = 300) -> list:
    """Up to ``limit`` BGR frames of a video file or of the images in a folder (name order)."""
    from edgeguard.data.images import IMAGE_SUFFIXES

    path = Path(source)
    if path.is_dir():
        images = (cv2.imread(str(p)) for p in sorted(path.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES)
        return [f for f in images if f is not None][:limit]
    capture, frames = open_source(cv2, source), []
    while len(frames) < limit:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


def run(args) -> dict:
    cv2 = require("cv2", "the camera sample", None)
    workdir = Path(tempfile.mkdtemp(prefix="edgeguard-camera-"))
    model_path, restorer_path = (args.model, args.restorer) if args.model else demo_engines(workdir)
    model, restorer = load_engine(model_path), load_engine(restorer_path)
    c, side_h, side_w = model.input_shapes.get(model.input_names[0]) or (3, 32, 32)
    exit_share = {} if args.early_exit is None else {"early_exit": args.early_exit}  # else the preset's
    purifier = Purifier(model, restorer, (PurifierConfig.fast if args.fast else PurifierConfig)(**exit_share))
    if args.calibrate_on:
        clean = [to_model_frame(cv2, f, c, side_h, side_w) for f in read_footage(cv2, args.calibrate_on)]
        if not clean:
            raise InvalidInputError(f"no frame could be read from --calibrate-on {args.calibrate_on}")
        purifier = purifier.calibrate(np.stack(clean))
        log.info("score gate %.3f from %d clean frames", purifier.config.score_gate, len(clean))
    stream = FrameStream(purifier, StreamConfig(warm_start=not args.cold))
    capture = open_source(cv2, args.source)
    ok, pending = capture.read()
    if not ok:  # an unreadable file opens on some OpenCV builds and yields nothing
        capture.release()
        raise InvalidInputError(f"no frame could be read from {args.source}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    writer, fps, stats = None, 0.0, {"frames": 0, "skipped": 0, "answers_changed": 0, "warm": 0}
    try:
        while args.max_frames is None or stats["frames"] < args.max_frames:
            frame, pending = pending, None
            if frame is None:
                ok, frame = capture.read()
                if not ok:
                    break
            t0 = time.perf_counter()
            try:
                result = stream(to_model_frame(cv2, frame, c, side_h, side_w))
            except EdgeGuardError as exc:  # a bad frame: say so and go on
                stats["skipped"] += 1
                log.warning("frame %d skipped: %s", stats["frames"] + stats["skipped"], exc)
                continue
            fps = 0.9 * fps + 0.1 / (time.perf_counter() - t0) if fps else 1 / (time.perf_counter() - t0)
            shown = annotate(cv2, frame, result, fps, purifier.output)
            stats["frames"] += 1
            stats["answers_changed"] += int(result.changed[0])
            stats["warm"] += int(result.warm_started[0])
            if args.headless:
                if writer is None:
                    writer = cv2.VideoWriter(str(out / "annotated.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 15.0,
                                             (shown.shape[1], shown.shape[0]))
                writer.write(shown)
                if stats["frames"] % args.png_every == 1 or args.png_every == 1:
                    cv2.imwrite(str(out / f"frame_{stats['frames']:05d}.png"), shown)
            else:
                cv2.imshow("edgeguard purifier (q quits)", shown)
                if cv2.waitKey(1) & 0xFF == ord("q"):
                    break
    finally:
        capture.release()
        if writer is not None:
            writer.release()
        if not args.headless:
            cv2.destroyAllWindows()
    stats["fps"] = round(fps, 2)
    stats["score_gate"] = purifier.config.score_gate
    stats["preset"] = "fast" if args.fast else "faithful"
    (out / "summary.json").write_text(json.dumps(stats, indent=2))
    return stats


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--source", default="0", help="camera index, video file, or GStreamer pipeline ending in appsink")
    p.add_argument("--model", help="model engine (.onnx/.engine); default: the demo's BadNets sign classifier")
    p.add_argument("--restorer", help="restorer engine (.onnx/.engine); required with --model")
    p.add_argument("--cold", action="store_true", help="no warm start: the full method on every frame")
    p.add_argument("--early-exit", type=float, default=None, help="skip stages 2-3 when at most this share of "
                                                                  "stage-1 restorations moved the answer (e.g. 0.3)")
    p.add_argument("--fast", action="store_true", help="the fast preset (PurifierConfig.fast: about 5x faithful's "
                                                       "speed; no --calibrate-on); --early-exit overrides its exit")
    p.add_argument("--headless", action="store_true", help="no window: write out/annotated.mp4 and PNGs")
    p.add_argument("--out", default="camera_out")
    p.add_argument("--png-every", type=int, default=30, help="write every Nth annotated frame as a PNG (N >= 1)")
    p.add_argument("--max-frames", type=int, help="stop after this many frames (>= 1)")
    p.add_argument("--make-video", metavar="PATH", help="write a test clip with a sticker trigger and exit")
    p.add_argument("--calibrate-on", metavar="CLEAN", help="a video or image folder of trigger-free footage from the "
                                                           "same camera (>= 100 frames): sets the score gate")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.make_video:
            print(f"wrote {make_video(Path(args.make_video))}")
            return 0
        if bool(args.model) != bool(args.restorer):
            p.error("--model and --restorer go together")
        if args.png_every < 1 or (args.max_frames is not None and args.max_frames < 1):
            p.error(f"--png-every and --max-frames must be >= 1, got {args.png_every}, {args.max_frames}")
        if args.early_exit is not None and not 0.0 <= args.early_exit < 1.0:
            p.error(f"--early-exit must be in [0, 1), got {args.early_exit}")
        check_writable(args.out, "--out", folder=True)
        stats = run(args)
    except (EdgeGuardError, FileNotFoundError, RuntimeError) as exc:
        print(f"camera_purifier: error: {exc}", file=sys.stderr)
        return 2
    print(f"{stats['frames']} frames ({stats['skipped']} skipped), {stats['answers_changed']} answers changed by "
          f"purification, {stats['warm']} warm-started, {stats['fps']} fps; wrote {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
