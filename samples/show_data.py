"""Write a PNG contact sheet of the self-made data, for a human to look at.

    python samples/show_data.py out.png [--seed 0] [--zoom 3]

Top: one row per SynthSigns class (canonical sign, then samples). Bottom: SynthGaze patches
(grey and RGB) with the gaze label drawn as an arrow from the patch centre.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from edgeguard.data import make_gaze, make_signs
from edgeguard.data.signs import MAX_CLASSES, sign_templates


def signs_sheet(seed: int, per_class: int = 10, size: int = 32) -> Image.Image:
    """Columns of classes: template then ``per_class`` samples, 2 blocks side by side."""
    ds = make_signs(MAX_CLASSES * per_class * 3, seed=seed, size=size)
    templates = sign_templates(size)
    alpha = templates[..., 3:].astype(np.float32) / 255
    templates = (templates[..., :3] * alpha + 128 * (1 - alpha)).astype(np.uint8)
    rows = []
    for k in range(MAX_CLASSES):
        samples = ds.images[ds.labels == k][:per_class]
        rows.append(np.concatenate([templates[k], np.zeros((size, 2, 3), np.uint8), *samples], axis=1))
    half = (MAX_CLASSES + 1) // 2
    left = np.concatenate(rows[:half], axis=0)
    right = np.concatenate(rows[half:] + [np.zeros_like(rows[0])] * (2 * half - MAX_CLASSES), axis=0)
    gap = np.zeros((left.shape[0], size // 2, 3), np.uint8)
    return Image.fromarray(np.concatenate([left, gap, right], axis=1))


def gaze_sheet(seed: int, zoom: int, cols: int = 8, rows: int = 3) -> Image.Image:
    """Grey rows, then RGB rows; a green arrow shows (pitch, yaw)."""
    h, w = 36, 60
    sheet = Image.new("RGB", (cols * w * zoom, 2 * rows * h * zoom))
    draw = ImageDraw.Draw(sheet)
    for block, channels in enumerate((1, 3)):
        ds = make_gaze(rows * cols, seed=seed, channels=channels)
        for i in range(rows * cols):
            image = ds.images[i]
            if channels == 1:
                image = np.repeat(image, 3, axis=-1)
            r, c = divmod(i, cols)
            x0, y0 = c * w * zoom, (block * rows + r) * h * zoom
            sheet.paste(Image.fromarray(image).resize((w * zoom, h * zoom), Image.NEAREST), (x0, y0))
            pitch, yaw = (float(v) for v in ds.labels[i])
            cx, cy = x0 + w * zoom / 2, y0 + h * zoom / 2
            length = 0.5 * h * zoom
            tip = (cx + length * np.cos(pitch) * np.sin(yaw), cy - length * np.sin(pitch))
            draw.line([(cx, cy), tip], fill=(0, 255, 0), width=max(1, zoom // 2))
            draw.ellipse([tip[0] - zoom, tip[1] - zoom, tip[0] + zoom, tip[1] + zoom], fill=(0, 255, 0))
    return sheet


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="PNG path to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--zoom", type=int, default=3, help="pixel zoom of the sheet")
    args = parser.parse_args(argv)
    signs = signs_sheet(args.seed)
    signs = signs.resize((signs.width * args.zoom, signs.height * args.zoom), Image.NEAREST)
    gaze = gaze_sheet(args.seed, args.zoom)
    sheet = Image.new("RGB", (max(signs.width, gaze.width), signs.height + gaze.height + 8 * args.zoom))
    sheet.paste(signs, (0, 0))
    sheet.paste(gaze, (0, signs.height + 8 * args.zoom))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(f"wrote {args.out} ({sheet.width}x{sheet.height})")
    return args.out


if __name__ == "__main__":
    main()
