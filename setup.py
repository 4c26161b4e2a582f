"""The optional compiled kernels (snn_lab.simulate.backends._kernels); all other metadata is in
pyproject.toml.

As MarkupSafe and PyYAML do: when the extension cannot be built (no compiler, no Python headers,
a compiler error, MSVC), warn and install without it; the engine then runs its numpy
backend. SNN_LAB_REQUIRE_KERNELS=1 makes a failed build an error (CI on machines that must have
the kernels).
"""

import os
import warnings

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, ExecError, PlatformError

# -ffp-contract=off: no fused multiply-add, so every CPU gives the same bits. No errno and no
# trapping math let the loops vectorize; neither changes a result. GCC/clang spellings only.
FLAGS = ["-O3", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math"]
BUILD_ERRORS = (CCompilerError, ExecError, PlatformError, ValueError, OSError)


class BuildWarning(UserWarning):
    """The compiled kernels were skipped."""


def describe(error):
    """One short line: the failed program and its status, not its 20 arguments."""
    if isinstance(error, str):
        return error
    cause = error
    while cause is not None:
        if isinstance(getattr(cause, "cmd", None), (list, tuple)) and hasattr(cause, "returncode"):
            return f"{cause.cmd[0]} exited with status {cause.returncode}"
        cause = cause.__cause__ or cause.__context__
    first = (str(error).strip().splitlines() or [""])[0][:200]
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


class OptionalBuildExt(build_ext):
    """build_ext that warns and goes on without the extension when it cannot be built."""

    def run(self):
        try:
            super().run()
        except BUILD_ERRORS as error:  # no compiler at all (e.g. no MSVC on Windows)
            self.skip(error)

    def build_extension(self, ext):
        if self.compiler.compiler_type == "msvc":
            return self.skip("MSVC has no GCC vector extensions, which _kernels.c uses")
        ext.extra_compile_args = FLAGS + list(ext.extra_compile_args or [])
        try:
            super().build_extension(ext)
        except BUILD_ERRORS as error:
            self.skip(error)

    def skip(self, error):
        reason = describe(error)
        if os.environ.get("SNN_LAB_REQUIRE_KERNELS", "") not in ("", "0"):
            raise SystemExit(f"snn-lab: the compiled kernels could not be built ({reason}) and "
                             "SNN_LAB_REQUIRE_KERNELS is set")
        # A warning, not a print: recent pip (26.3 here) shows a backend's warnings without -v.
        warnings.warn(f"snn-lab: the compiled kernels could not be built ({reason}); installing the "
                      "numpy backend only", BuildWarning, stacklevel=1)


setup(
    ext_modules=[
        Extension(
            "snn_lab.simulate.backends._kernels",
            sources=["snn_lab/simulate/backends/_kernels.c"],
            depends=["snn_lab/simulate/backends/_kernels_impl.h"],
        )
    ],
    cmdclass={"build_ext": OptionalBuildExt},
)
