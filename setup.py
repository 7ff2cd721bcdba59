"""Builds the compiled extensions; metadata lives in pyproject.toml.

``edgeguard._kernels`` (always): the CPU kernels of csrc/ssim.c and csrc/masks.c. OpenMP
(-fopenmp) is used when the compiler accepts it and skipped otherwise.

``edgeguard._cuda`` (optional): the Cython wrapper of libedgeguard_cuda, built only when
that library exists (``make cuda`` builds it into build-cuda/; EDGEGUARD_CUDA_LIB_DIR points
elsewhere) and the CUDA runtime headers are found (CUDA_HOME, CUDA_PATH or /usr/local/cuda).
The library is copied into the package next to the wrapper, whose rpath is ``$ORIGIN``: an
installed wheel needs neither the building checkout nor LD_LIBRARY_PATH.

The Cython wrappers use typed memoryviews (buffer protocol), so no numpy headers are needed.
Generated C files go to build/.
"""
import os
import shutil
import tempfile

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CompileError, LinkError

ROOT = os.path.dirname(os.path.abspath(__file__))
# Shared libraries an extension links to, copied next to it (cythonize rebuilds the Extension
# objects, so this lives outside them).
BUNDLED: dict[str, list[str]] = {}
_OMP_PROBE = "#include <omp.h>\nint main(void) { return omp_get_max_threads() > 0 ? 0 : 1; }\n"


def _openmp_flags(compiler):
    """Flags enabling OpenMP if the compiler can build and link an OpenMP program, else []."""
    msvc = compiler.compiler_type == "msvc"
    flags = ["/openmp"] if msvc else ["-fopenmp"]
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "omp_probe.c")
        with open(src, "w") as f:
            f.write(_OMP_PROBE)
        try:
            objs = compiler.compile([src], output_dir=tmp, extra_postargs=flags)
            link_flags = [] if msvc else flags
            compiler.link_executable(objs, "omp_probe", output_dir=tmp, extra_postargs=link_flags)
        except (CompileError, LinkError):
            return []
    return flags


class BuildExt(build_ext):
    def build_extensions(self):
        msvc = self.compiler.compiler_type == "msvc"
        omp = _openmp_flags(self.compiler)
        print(f"edgeguard: OpenMP {'enabled' if omp else 'not available, building serial kernels'}")
        for ext in self.extensions:
            ext.extra_compile_args = ["/O2" if msvc else "-O3", *omp]
            ext.extra_link_args = [] if msvc else list(omp)
        super().build_extensions()
        self._bundle()

    def run(self):
        super().run()
        if self.inplace:  # setuptools built into build/ and copied the extensions back: the libraries too
            self._bundle()

    def _bundle(self):
        """Copy each extension's shared libraries next to it, where its $ORIGIN rpath looks."""
        for ext in self.extensions:
            target = os.path.dirname(self.get_ext_fullpath(ext.name))
            for lib in BUNDLED.get(ext.name, ()):
                shutil.copy2(lib, os.path.join(target, os.path.basename(lib)))


def _cuda_extension():
    """The ``edgeguard._cuda`` extension, or None when the CUDA library or headers are missing."""
    lib_dir = os.path.abspath(os.environ.get("EDGEGUARD_CUDA_LIB_DIR", os.path.join(ROOT, "build-cuda")))
    if not os.path.exists(os.path.join(lib_dir, "libedgeguard_cuda.so")):
        print("edgeguard: libedgeguard_cuda not built, skipping edgeguard._cuda (see `make cuda`)")
        return None
    homes = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"]
    include = next((os.path.join(h, "include") for h in homes
                    if h and os.path.exists(os.path.join(h, "include", "cuda_runtime_api.h"))), None)
    if include is None:
        print("edgeguard: CUDA headers not found (set CUDA_HOME), skipping edgeguard._cuda")
        return None
    print(f"edgeguard: building edgeguard._cuda against {lib_dir}")
    BUNDLED["edgeguard._cuda"] = [os.path.join(lib_dir, "libedgeguard_cuda.so")]
    return Extension("edgeguard._cuda", sources=["csrc/_cuda.pyx"], include_dirs=["csrc", include],
                     libraries=["edgeguard_cuda"], library_dirs=[lib_dir], runtime_library_dirs=["$ORIGIN"])


extensions = [
    Extension(
        "edgeguard._kernels",
        sources=["csrc/_kernels.pyx", "csrc/ssim.c", "csrc/masks.c"],
        include_dirs=["csrc"],
    )
]
cuda = _cuda_extension()
if cuda is not None:
    extensions.append(cuda)

setup(
    ext_modules=cythonize(extensions, compiler_directives={"language_level": 3}, build_dir="build"),
    cmdclass={"build_ext": BuildExt},
)
