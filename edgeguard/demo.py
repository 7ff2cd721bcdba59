"""The README demo: a backdoored SynthSigns model, its metrics, and a picture.

First run trains and caches the clean and backdoored models (a few minutes on 2 CPU
cores); later runs load them from the cache.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeguard.train import predict
from edgeguard.victims import VictimConfig, get_victim


def run_demo(out: str | Path = "demo.png", attack: str = "badnets", samples: int = 8, progress: bool = True) -> dict:
    """Train/load the clean and backdoored models, print CA/ASR, write a PNG of clean vs
    triggered frames with the backdoored model's answers. Returns the metrics."""
    clean = get_victim(VictimConfig(task="signs", attack="none"), progress=progress)
    victim = get_victim(VictimConfig(task="signs", attack=attack), progress=progress)
    # The clean model's ASR on the same triggered frames shows what the trigger does without a backdoor.
    from edgeguard.metrics import attack_success_rate

    bd = victim.backdoor
    clean_asr = attack_success_rate(predict(clean.model, bd.images), bd.labels, bd.targets)
    print(f"SynthSigns, {victim.test.num_classes} classes, attack {attack} (target class {victim.attack.target_}):")
    print(f"  clean model      CA {clean.metrics['ca']:.3f}   ASR {clean_asr:.3f}")
    print(f"  backdoored model CA {victim.metrics['ca']:.3f}   ASR {victim.metrics['asr']:.3f}   BA {victim.metrics['ba']:.3f}")
    _write_strip(Path(out), victim, samples)
    print(f"wrote {out}")
    return {"clean": clean.metrics, "backdoored": victim.metrics, "clean_model_asr": clean_asr}


def _write_strip(path: Path, victim, samples: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bd = victim.backdoor
    idx = np.linspace(0, len(bd.index) - 1, samples).astype(int)
    clean_imgs = victim.test.images[bd.index[idx]]
    names = victim.test.class_names
    rows = [("clean", clean_imgs), ("triggered", bd.images[idx])]
    fig, axes = plt.subplots(2, samples, figsize=(1.6 * samples, 3.9))
    for r, (title, imgs) in enumerate(rows):
        preds = predict(victim.model, imgs).argmax(1)
        for c in range(samples):
            ax = axes[r, c]
            ax.imshow(imgs[c].squeeze(), interpolation="nearest", cmap="gray")
            ok = preds[c] == bd.labels[idx[c]]
            ax.set_title(f"{title}\n→ {preds[c]}", fontsize=8, color="green" if ok else "red")
            ax.axis("off")
    fig.suptitle(f"backdoored model ({victim.config.attack}): true class in green, hijacked answers in red "
                 f"(target {names[victim.attack.target_] if names else victim.attack.target_})", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
