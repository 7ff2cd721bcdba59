"""A scan's report: a JSON record and a PNG (clean inputs, generated inputs, where the
generator changed them, and the model's outputs on both)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import numpy as np
from torch import nn

from edgeguard.scan.drmguard import ScanResult
from edgeguard.scan.plumbing import as_float_images, batched, frozen_eval


def scan_record(result: ScanResult, method: str, **extra: Any) -> dict[str, Any]:
    """The JSON-ready summary of a scan, with ``extra`` entries added (threshold null: no
    threshold, any collapse is flagged; see ``threshold_from_trusted``)."""
    threshold = result.threshold if np.isfinite(result.threshold) else None
    return {"method": method, "backdoored": bool(result.backdoored), "statistic": result.statistic,
            "threshold": threshold, "residual_variance": result.residual_variance,
            "collapsed": bool(result.collapsed),
            "estimated_target": np.asarray(result.target).tolist(), "seconds": round(result.seconds, 2),
            "final_loss": result.losses[-1] if result.losses else None, **extra}


def write_report(result: ScanResult, model: nn.Module, images, png: "str | Path",
                 json_path: "Optional[str | Path]" = None, method: str = "drmguard", show: int = 6,
                 regression: bool = True, details: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """Write the PNG (and the JSON record when ``json_path`` is given); returns the record.

    images: the clean inputs the scan used, (N, H, W, C) uint8 or (N, C, H, W) float.
    regression: plot (pitch, yaw) outputs in degrees; else the predicted classes' counts.
    details: extra entries for the record (the model's file, the repair's figures...)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = as_float_images(images)
    generated = batched(result.generator, x)
    with frozen_eval(model):
        clean_out = batched(lambda b: model(b).float(), x).numpy()
        gen_out = batched(lambda b: model(b).float(), generated).numpy()
    heat = (generated - x).abs().mean(dim=(0, 1)).numpy()
    n = min(show, len(x))
    fig = plt.figure(figsize=(2.0 * n, 5.2))
    grid = fig.add_gridspec(3, n)
    to_img = lambda t: t.permute(1, 2, 0).squeeze(-1).numpy()  # noqa: E731
    for i in range(n):
        for row, batch, title in ((0, x, "clean"), (1, generated, "generated")):
            ax = fig.add_subplot(grid[row, i])
            ax.imshow(to_img(batch[i]), cmap="gray", vmin=0, vmax=1)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    ax = fig.add_subplot(grid[2, : n // 2])
    im = ax.imshow(heat, cmap="magma")
    ax.set_title("mean |G(x) - x| per pixel", fontsize=9)
    ax.axis("off")
    fig.colorbar(im, ax=ax, fraction=0.03)
    ax = fig.add_subplot(grid[2, n // 2:])
    if regression and clean_out.shape[1] == 2:
        ax.scatter(np.degrees(clean_out[:, 1]), np.degrees(clean_out[:, 0]), s=4, label="clean", alpha=0.5)
        ax.scatter(np.degrees(gen_out[:, 1]), np.degrees(gen_out[:, 0]), s=4, label="generated", alpha=0.5)
        ax.set_xlabel("yaw (deg)")
        ax.set_ylabel("pitch (deg)")
    elif regression:
        ax.hist([clean_out[:, 0], gen_out[:, 0]], bins=30, label=["clean", "generated"])
        ax.set_xlabel("output 0")
    else:
        classes = np.arange(clean_out.shape[1] + 1) - 0.5
        ax.hist([clean_out.argmax(1), gen_out.argmax(1)], bins=classes, label=["clean", "generated"])
        ax.set_xlabel("predicted class")
    ax.legend(fontsize=8)
    verdict = "BACKDOORED" if result.backdoored else "clean"
    fig.suptitle(f"{method}: {verdict} (statistic {result.statistic:.4f}, threshold {result.threshold:.4f}, "
                 f"residual output variance {result.residual_variance:.3f})", fontsize=10)
    fig.tight_layout()
    Path(png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)
    record = scan_record(result, method, png=str(png), **(details or {}))
    if json_path is not None:
        Path(json_path).write_text(json.dumps(record, indent=2))
    return record
