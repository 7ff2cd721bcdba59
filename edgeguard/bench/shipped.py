"""Trained weights that ship inside the package, so the demo runs without training first.

``edgeguard/weights/`` holds the demo's victim (SynthSigns, BadNets) and its restorer (the
tiny MAE fine-tuned on clean SynthSigns frames), and the photo-pre-trained MAE that
fine-tuning on your own frames starts from, as safetensors, and ``weights.json`` with,
for each file: the cache key of the config that made it, its SHA-256 (checked at every
load) and what it was measured at when written. They are a read-only layer under the cache:
``get_victim`` and ``get_restorer`` look in the cache, then here (by the same key, so a
changed default never loads stale weights), then train.

``make demo-weights`` retrains both from nothing (in an empty, temporary cache) and
rewrites the files and the manifest: ``python -m edgeguard.bench.shipped --write``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
from importlib import resources
from pathlib import Path
from typing import Any, Optional

import numpy as np

from edgeguard.errors import ModelFormatError

log = logging.getLogger(__name__)

MANIFEST = "weights.json"


def _root():
    return resources.files("edgeguard") / "weights"


def manifest(root=None) -> dict[str, Any]:
    """The manifest: {"entries": [{"kind", "key", "files": {role: {"name", "sha256"}}, ...}]}
    (empty when no weights ship, e.g. a trimmed install)."""
    path = (root or _root()) / MANIFEST
    if not path.is_file():
        return {"entries": []}
    return json.loads(path.read_text())


def find(kind: str, key: str, root=None) -> Optional[dict[str, Any]]:
    """The manifest record of the shipped ``kind`` ("victims" or "restorers") made by the
    config with cache key ``key``, or None."""
    return next((e for e in manifest(root)["entries"] if e["kind"] == kind and e["key"] == key), None)


def read(record: dict[str, Any], role: str, root=None) -> dict[str, np.ndarray]:
    """The tensors of one shipped file (``role``: "model", "attack", "mae"), after checking
    its SHA-256 against the manifest; a mismatch is a ``ModelFormatError``."""
    from safetensors.numpy import load

    entry = record["files"][role]
    data = ((root or _root()) / entry["name"]).read_bytes()
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise ModelFormatError(f"the shipped weights {entry['name']} do not match their recorded checksum "
                               "(a damaged install): reinstall edgeguard, or retrain with `edgeguard demo --retrain`")
    return load(data)


def problems(root=None) -> list[str]:
    """Every shipped file that is missing or differs from its recorded checksum."""
    root = root or _root()
    found = []
    for record in manifest(root)["entries"]:
        for entry in record["files"].values():
            path = root / entry["name"]
            if not path.is_file():
                found.append(f"{entry['name']}: missing")
            elif hashlib.sha256(path.read_bytes()).hexdigest() != entry["sha256"]:
                found.append(f"{entry['name']}: checksum differs from {MANIFEST}")
    return found


def write(folder: Path, progress: bool = True) -> dict[str, Any]:
    """Train the demo's victim and restorer without using shipped weights (from the cache
    when they are there: point ``EDGEGUARD_CACHE`` at an empty folder to start from nothing)
    and write them with their manifest into ``folder``. Returns the manifest."""
    from safetensors.numpy import save_file

    from edgeguard.bench.demo import demo_models
    import platform

    import torch

    from edgeguard.bench.restorer import FINETUNE, RestorerConfig, get_restorer, restoration_psnr, restorer_key
    from edgeguard.data.photos import random_crops
    from edgeguard.data.signs import make_signs
    from edgeguard.bench.victims import restorer_images, victim_key
    from edgeguard.fileio import write_atomically

    victim, mae = demo_models(progress=progress, use_shipped=False)
    folder.mkdir(parents=True, exist_ok=True)
    entries = []

    def save(name: str, tensors: dict[str, np.ndarray]) -> dict[str, str]:
        write_atomically(folder / name, lambda tmp: save_file(tensors, str(tmp)))
        return {"name": name, "sha256": hashlib.sha256((folder / name).read_bytes()).hexdigest()}

    files = {"model": save(f"victim-{victim.config.dataset}-{victim.config.attack}.safetensors",
                           {k: v.detach().cpu().numpy() for k, v in victim.model.state_dict().items()})}
    if victim.attack is not None and victim.attack.state_dict():
        files["attack"] = save(f"victim-{victim.config.dataset}-{victim.config.attack}-attack.safetensors",
                               victim.attack.state_dict())
    entries.append({"kind": "victims", "key": victim_key(victim.config), "files": files,
                    "holds": f"{victim.config.dataset} {victim.config.attack} victim",
                    "metrics": victim.metrics, "train_seconds": victim.train_seconds})
    # The photo-pre-trained stage too: fine-tuning on a user's own frames starts from it.
    base = get_restorer(RestorerConfig(), progress=progress, use_shipped=False)
    crops = random_crops(1000, base.config.img_size, 5, scale=RestorerConfig().crop_scale, split="test")
    entries.append({"kind": "restorers", "key": restorer_key(RestorerConfig()),
                    "files": {"mae": save("restorer-photos.safetensors",
                                          {k: v.detach().cpu().numpy() for k, v in base.state_dict().items()})},
                    "holds": f"MAE restorer ({RestorerConfig().arch}) pre-trained on photo crops",
                    "psnr_db": {"photos": round(restoration_psnr(base, crops), 3)}})
    images = restorer_images(victim.config)
    entries.append({"kind": "restorers", "key": restorer_key(RestorerConfig(), FINETUNE, images),
                    "files": {"mae": save(f"restorer-{victim.config.dataset}.safetensors",
                                          {k: v.detach().cpu().numpy() for k, v in mae.state_dict().items()})},
                    "holds": f"MAE restorer ({RestorerConfig().arch}) fine-tuned on clean {victim.config.dataset} frames",
                    # 75% random token masks on 1000 SynthSigns frames no training set uses (seed 12345)
                    "psnr_db": {"SynthSigns": round(restoration_psnr(mae, make_signs(1000, 12345).images), 3)}})
    record = {"note": "written by `make demo-weights` (python -m edgeguard.bench.shipped --write)",
              "trained_with": {"torch": torch.__version__.split("+")[0], "machine": platform.machine()},
              "entries": entries}
    write_atomically(folder / MANIFEST, lambda tmp: tmp.write_text(json.dumps(record, indent=2) + "\n"))
    return record


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="retrain and rewrite the shipped weights")
    parser.add_argument("--to", type=Path, default=Path(__file__).resolve().parents[1] / "weights",
                        help="folder to write them to (default: the package's weights folder)")
    args = parser.parse_args(argv)
    if not args.write:
        found = problems()
        print("\n".join(found) if found else f"{len(manifest()['entries'])} shipped entries, all intact")
        return 1 if found else 0
    logging.basicConfig(level=logging.INFO)
    print(json.dumps(write(args.to), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
