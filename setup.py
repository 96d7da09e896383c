"""Builds quantllm._quantllm with the project's CMake for `pip install .` (see pyproject.toml).

The module is the CMake target _quantllm (python/CMakeLists.txt), configured for the Python running pip.
QUANTLLM_BUILD_DIR=<dir> reuses a build directory (e.g. build-py) instead of a fresh one under build/;
QUANTLLM_JOBS sets the build's parallelism (default: all cores)."""

import glob
import os
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build = os.environ.get("QUANTLLM_BUILD_DIR") or os.path.join(HERE, "build", "pip")
        build = os.path.abspath(build)
        subprocess.check_call(["cmake", "-S", HERE, "-B", build, "-DCMAKE_BUILD_TYPE=Release", "-DQUANTLLM_PYTHON=ON",
                               "-DPython_EXECUTABLE=" + sys.executable]
                              + ([] if os.environ.get("QUANTLLM_BUILD_DIR") else
                                 ["-DQUANTLLM_TESTS=OFF", "-DQUANTLLM_BENCH=OFF"]))
        jobs = os.environ.get("QUANTLLM_JOBS") or str(os.cpu_count() or 1)
        subprocess.check_call(["cmake", "--build", build, "--target", "quantllm_python", "-j", jobs])
        built = glob.glob(os.path.join(build, "python", "quantllm", "_quantllm*.so"))
        if len(built) != 1:
            raise RuntimeError("quantllm: expected one _quantllm*.so under %s, found %r" % (build, built))
        dest = self.get_ext_fullpath(ext.name)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copyfile(built[0], dest)


setup(ext_modules=[CMakeExtension("quantllm._quantllm")], cmdclass={"build_ext": CMakeBuild})
