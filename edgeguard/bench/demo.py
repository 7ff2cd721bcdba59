"""The README demo: purify a stream of backdoored SynthSigns frames on the embedded default.

The deployed model is a SynthSigns classifier with a BadNets backdoor; the restorer is the
tiny MAE, pre-trained on photo crops and fine-tuned on clean SynthSigns frames. Both run as
ONNX Runtime engines on the CPU, the default where there is no GPU. Both ship with the
package (``edgeguard.bench.shipped``), so the demo starts at once; ``retrain=True``
(``edgeguard demo --retrain``) trains them instead (about 55 minutes on 2 AVX2 cores, most
of it the restorer) and caches the result.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from edgeguard.metrics import attack_success_rate, backdoor_accuracy, clean_accuracy


def demo_models(attack: str = "badnets", progress: bool = True, allow_training: bool = True,
                use_shipped: bool = True):
    """The demo's (victim, restorer): a backdoored SynthSigns classifier and the tiny MAE
    fine-tuned on clean SynthSigns frames. They come from the cache, else from the weights
    shipped with the package (BadNets only), else are trained and cached (about 55 minutes on
    2 cores). ``allow_training=False`` only loads them (a ``CacheMissError`` when neither
    has them); ``use_shipped=False`` ignores the shipped weights."""
    from edgeguard.bench.restorer import FINETUNE, get_restorer
    from edgeguard.bench.victims import VictimConfig, get_victim, restorer_images

    config = VictimConfig(dataset="signs", attack=attack)
    victim = get_victim(config, progress=progress, allow_training=allow_training, use_shipped=use_shipped)
    return victim, get_restorer(finetune=FINETUNE, images=restorer_images(victim.config), progress=progress,
                                allow_training=allow_training, use_shipped=use_shipped)


def run_demo(out: str | Path = "demo.png", attack: str = "badnets", frames: int = 64, batch: int = 16,
             progress: bool = True, retrain: bool = False) -> dict:
    """Purify ``frames`` clean and ``frames`` triggered test frames in batches of ``batch``;
    print CA/BA/ASR and frames per second with no defense, faithful BDMAE, BDMAE with the
    score gate calibrated on 100 other clean test frames, and the fast preset;
    write a PNG strip (faithful BDMAE).
    ``retrain``: train the models (or load an earlier training from the cache) instead of
    using the shipped weights. Returns the printed figures."""
    from edgeguard.data.dataset import to_float_nchw
    from edgeguard.deploy import export_model, export_restorer
    from edgeguard.purify import Purifier, PurifierConfig
    from edgeguard.runtime import load_engine

    victim, mae = demo_models(attack, progress, use_shipped=not retrain)
    workdir = Path(tempfile.mkdtemp(prefix="edgeguard-demo-"))
    model = load_engine(export_model(victim.model, workdir / "model.onnx"))
    restorer = load_engine(export_restorer(mae, workdir / "mae.onnx", (3, 32, 32)))

    bd = victim.backdoor
    pick = np.linspace(0, len(bd.index) - 1, frames).astype(int)
    clean = victim.test.images[bd.index[pick]]
    triggered = bd.images[pick]
    labels, targets = bd.labels[pick], bd.targets[pick]
    stream = np.concatenate([clean, triggered])  # (2 * frames, 32, 32, 3) uint8, camera layout

    t0 = time.perf_counter()
    plain = np.concatenate([model(to_float_nchw(stream[i:i + batch])).argmax(1) for i in range(0, len(stream), batch)])
    plain_fps = len(stream) / (time.perf_counter() - t0)
    def figures(p: np.ndarray) -> dict:
        return {"ca": clean_accuracy(p[:frames], labels), "ba": backdoor_accuracy(p[frames:], labels, targets),
                "asr": attack_success_rate(p[frames:], labels, targets)}

    def purify_stream(purifier) -> tuple[list, dict]:
        """The stream through ``purifier`` in batches: the results and their row of the report."""
        results = [purifier(stream[i:i + batch]) for i in range(0, len(stream), batch)]
        return results, {**figures(np.concatenate([r.prediction for r in results])),
                         "fps": len(stream) / sum(r.seconds for r in results),
                         "rows_per_frame": float(np.mean([r.model_calls + r.restorer_calls for r in results]))}

    purifier = Purifier(model, restorer)
    results, faithful = purify_stream(purifier)
    others = np.setdiff1d(np.arange(len(victim.test)), bd.index[pick])  # never the frames shown
    gated = purifier.calibrate(victim.test.images[others[np.linspace(0, len(others) - 1, 100).astype(int)]])
    report = {"none": {**figures(plain), "fps": plain_fps}, "bdmae": faithful,
              "bdmae_calibrated": {**purify_stream(gated)[1], "score_gate": gated.config.score_gate},
              "bdmae_fast": purify_stream(Purifier(model, restorer, PurifierConfig.fast()))[1]}
    print(f"SynthSigns stream, {attack} backdoor (target class {victim.attack.target_}), "
          f"{frames} clean + {frames} triggered frames, ONNX Runtime on the CPU:")
    print(f"  {'defense':<19}{'CA':>7}{'BA':>7}{'ASR':>7}{'fps':>9}")
    for name, r in (("no defense", report["none"]), ("BDMAE", report["bdmae"]),
                    ("BDMAE + clean gate", report["bdmae_calibrated"]),
                    ("BDMAE fast", report["bdmae_fast"])):
        print(f"  {name:<19}{r['ca']:7.3f}{r['ba']:7.3f}{r['asr']:7.3f}{r['fps']:9.1f}")
    print(f"  BDMAE: {results[0].model_calls} model + {results[0].restorer_calls} restorer calls per frame; the gate "
          f"(not in the paper, Purifier.calibrate on 100 other clean frames) keeps the answer of frames scoring "
          f"<= {gated.config.score_gate:.3f}")
    print(f"  BDMAE fast (PurifierConfig.fast(), not in the paper): "
          f"{report['bdmae_fast']['rows_per_frame']:.1f} engine calls per frame (faithful: 97)")
    _write_strip(Path(out), stream, results, batch, plain, frames)
    print(f"wrote {out}")
    return report


def _write_strip(path: Path, stream: np.ndarray, results: list, batch: int, plain: np.ndarray,
                 frames: int, columns: int = 8) -> None:
    """Rows: frame (with the undefended answer), token scores, restored pixels, purified
    frame (with BDMAE's answer). Half the columns clean frames, half triggered."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    half = columns // 2
    idx = np.concatenate([np.linspace(0, frames - 1, half), frames + np.linspace(0, frames - 1, half)]).astype(int)
    fig, axes = plt.subplots(4, columns, figsize=(1.7 * columns, 7.4))
    for c, i in enumerate(idx):
        r, j = results[i // batch], i % batch
        cells = [(stream[i], f"{'triggered' if i >= frames else 'clean'}\nanswer {plain[i]}", None),
                 (r.token_scores[j], "token scores", "magma"),
                 (r.pixel_mask[j], f"restored {r.pixel_mask[j].mean() * 100:.0f}%", "gray"),
                 (r.purified[j], f"purified\nanswer {r.prediction[j]}", None)]
        for row, (img, title, cmap) in enumerate(cells):
            ax = axes[row, c]
            kw = {"vmin": 0, "vmax": 1} if cmap else {}
            ax.imshow(img, interpolation="nearest", cmap=cmap, **kw)
            ax.set_title(title, fontsize=7)
            ax.axis("off")
    fig.suptitle("BDMAE on a backdoored SynthSigns model: frame, trigger scores, restored region, purified frame",
                 fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
