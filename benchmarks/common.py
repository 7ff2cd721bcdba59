"""Shared helpers for benchmark scripts: the machine record and the JSON envelope
of shared/DESIGN.md: {"benchmark", "machine", "config", "results", "seconds"}."""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional


# x86 "flags" and aarch64 "Features" (Jetson Orin: asimd, asimddp; bf16/i8mm/sve on newer cores)
_ISA_FLAGS = {"avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile",
              "asimd", "asimddp", "bf16", "i8mm", "sve", "sve2"}


@contextlib.contextmanager
def private_cache(folder: Path) -> Iterator[Path]:
    """EDGEGUARD_CACHE pointed at ``folder`` for the duration, so a benchmark's training
    touches nothing of the user's cache; the previous value is restored after."""
    previous = os.environ.get("EDGEGUARD_CACHE")
    os.environ["EDGEGUARD_CACHE"] = str(folder)
    try:
        yield folder
    finally:
        if previous is None:
            os.environ.pop("EDGEGUARD_CACHE", None)
        else:
            os.environ["EDGEGUARD_CACHE"] = previous


def cpu_and_isa(cpuinfo: str, default: str) -> tuple[str, list[str]]:
    """(CPU model, the vector extensions of _ISA_FLAGS it lists) from /proc/cpuinfo's text."""
    cpu, flags = default, set()
    for line in cpuinfo.splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
        elif line.startswith(("flags", "Features")) and not flags:
            flags = set(line.split(":", 1)[1].split())
    return cpu, sorted(flags & _ISA_FLAGS)


def machine_info(backend: str = "torch-cpu") -> dict[str, Any]:
    """CPU model, its vector extensions and core count, GPU (None without CUDA), torch version, backend."""
    try:
        cpu, isa = cpu_and_isa(Path("/proc/cpuinfo").read_text(), platform.processor() or platform.machine())
    except OSError:
        cpu, isa = platform.processor() or platform.machine(), []
    info: dict[str, Any] = {"cpu": cpu, "cores": os.cpu_count(),
                            # "AMD EPYC" alone hides a 2-4x spread: bf16 training needs AVX512-BF16/AMX
                            "isa": isa, "gpu": None, "torch": None,
                            "backend": backend, "python": platform.python_version()}
    try:
        import torch

        info["torch"] = torch.__version__
        info["threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def parser(name: str, doc: Optional[str]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m benchmarks.{name}", description=doc)
    p.add_argument("--quick", action="store_true", help="smaller data: a few minutes per model on 2 CPU cores")
    p.add_argument("--json", required=True, help="where to write the results JSON")
    return p


def run(name: str, config: dict[str, Any], body: Callable[[], list[dict[str, Any]]], out: str,
        backend: str = "torch-cpu", extra: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """Time ``body()``, wrap its results in the standard envelope and write it to ``out``.
    ``extra`` (filled in by ``body`` if it likes) adds top-level keys after the results."""
    t0 = time.perf_counter()
    results = body()
    record = {"benchmark": name, "machine": machine_info(backend), "config": config, "results": results,
              **(extra or {}), "seconds": round(time.perf_counter() - t0, 1)}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(record, indent=2))
    return record
