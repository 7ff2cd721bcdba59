"""The sdist carries every tracked source a wheel is built from, and the version is read
from edgeguard/version.py only (checked against git, as scikit-learn checks its sdist)."""
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILD_FILES = ("pyproject.toml", "CMakeLists.txt", "README.md")


def _tracked() -> list[str]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs the git checkout (an installed package has no sdist to check)")
    listing = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [name for name in listing.decode().split("\0") if name and (ROOT / name).is_file()]


def test_sdist_carries_every_tracked_build_source(tmp_path):
    pytest.importorskip("scikit_build_core", reason="the build backend (pyproject.toml) makes the sdist")
    tracked = _tracked()
    source = tmp_path / "checkout"  # a copy of the tracked files only: no build products ride along
    for name in tracked:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    subprocess.run([sys.executable, "-c", "from scikit_build_core import build; build.build_sdist('dist')"],
                   cwd=source, check=True, capture_output=True)
    sdist, = (source / "dist").glob("edgeguard-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
        pkg_info = archive.extractfile(f"{sdist.name[:-len('.tar.gz')]}/PKG-INFO").read().decode()
    needed = [name for name in tracked if name.startswith(("csrc/", "edgeguard/")) or name in BUILD_FILES]
    assert not sorted(set(needed) - names), "missing from the sdist (pyproject.toml: sdist.exclude)"
    assert not [name for name in names if name.endswith((".so", ".pyc"))]
    from edgeguard.version import __version__

    assert f"\nVersion: {__version__}\n" in pkg_info and sdist.name == f"edgeguard-{__version__}.tar.gz"


@pytest.mark.slow
def test_a_wheel_built_from_the_sdist_passes_the_torch_free_tests_in_a_clean_venv():
    """.ci/wheel_check (CI's step beside `make test`): needs PyPI for the build requirements."""
    _tracked()
    done = subprocess.run([str(ROOT / ".ci" / "wheel_check")], cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "imported the checkout" not in done.stdout and " passed" in done.stdout


def test_the_cuda_wrapper_finds_its_library_inside_the_package():
    # The wrapper must not depend on the building checkout: its library sits next to it and
    # its only search path is $ORIGIN (read from the ELF dynamic section).
    if shutil.which("readelf") is None:
        pytest.skip("needs readelf (binutils)")
    try:
        from edgeguard import _cuda
    except ImportError:
        pytest.skip("edgeguard._cuda is not built here (no nvcc when installed)")
    wrapper = Path(_cuda.__file__)
    dynamic = subprocess.run(["readelf", "-d", str(wrapper)], capture_output=True, text=True, check=True).stdout
    paths = [line.split("[", 1)[1].rstrip("]").split(":") for line in dynamic.splitlines() if "RPATH" in line
             or "RUNPATH" in line]
    assert paths and "$ORIGIN" in paths[0], dynamic
    assert not [p for p in paths[0] if str(ROOT) in p], f"the wrapper points into the checkout: {paths[0]}"
    assert (wrapper.parent / "libedgeguard_cuda.so").is_file()
