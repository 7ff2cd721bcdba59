"""Builds the compiled extension ``edgeguard._kernels``; metadata lives in pyproject.toml.

OpenMP (-fopenmp) is used when the compiler accepts it and skipped otherwise. The Cython
wrapper uses typed memoryviews (buffer protocol), so no numpy headers are needed.
"""
import os
import tempfile

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CompileError, LinkError

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


extensions = [
    Extension(
        "edgeguard._kernels",
        sources=["csrc/_kernels.pyx", "csrc/ssim.c"],
        include_dirs=["csrc"],
    )
]

setup(
    ext_modules=cythonize(extensions, compiler_directives={"language_level": 3}),
    cmdclass={"build_ext": BuildExt},
)
