"""Build of kanext._C (the source of truth for the build; CMakeLists.txt mirrors it).

CPU kernels are always built. CUDA sources are built only when torch itself has
CUDA and a CUDA toolkit is found (never just because a GPU is visible). The
toolkit comes from tools/cuda_toolkit.py: CUDA_HOME / CUDA_PATH when set, else
the real path of the nvcc on PATH (following links and wrapper scripts), else
the standard install folders; the build prints which one it uses.
  KANEXT_NO_CUDA=1     never build CUDA sources
  KANEXT_FORCE_CUDA=1  build them (fails if torch or nvcc cannot)
  KANEXT_CPU_ARCH      -march for the CPU kernels (default: native; e.g. x86-64-v3 for a portable build)
  KANEXT_DEBUG_INFO=1  keep the C++ sources' debug info (Python's build flags carry -g; by default -g0
                       drops it: the same machine code, a third less compile time, a ninth of the size)
  TORCH_CUDA_ARCH_LIST GPU architectures (default here: 9.0a, i.e. sm_90a only: the code runs on compute
                       capability 9.0, H100 / H200, as sm_90 code would, and the wgmma kernel of backend
                       tensor_core_v2 is built; with a list without 9.0a that backend falls back to tensor_core)
  MAX_JOBS             parallel compile jobs (default: all cores)
  KANEXT_NVCC_EXTRA    more nvcc flags (e.g. "-Xptxas -v"); the others are in tools/nvcc_flags.py
"""
import glob
import os
import sys

from setuptools import setup

import torch
from torch.utils import cpp_extension

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "tools"))
from cuda_toolkit import find_cuda_toolkit  # noqa: E402
from nvcc_flags import KANEXT_NVCC_FLAGS, extra_from_env  # noqa: E402


def _flag(name):
    return os.environ.get(name, "0") not in ("", "0", "false", "False")


def _want_cuda():
    if _flag("KANEXT_NO_CUDA"):
        return False
    force = _flag("KANEXT_FORCE_CUDA")
    if torch.version.cuda is None:
        if force:
            raise RuntimeError(
                "KANEXT_FORCE_CUDA=1, but torch %s is a CPU build (torch.version.cuda is None): install a CUDA "
                "build of torch first" % torch.__version__)
        return False
    home, how = find_cuda_toolkit()
    if home is None:
        if force:
            raise RuntimeError("KANEXT_FORCE_CUDA=1, but " + how)
        print("kanext: building without CUDA kernels: " + how, file=sys.stderr)
        return False
    # torch.utils.cpp_extension reads its module-level CUDA_HOME when it builds
    os.environ["CUDA_HOME"] = home
    cpp_extension.CUDA_HOME = home
    print("kanext: building CUDA kernels with the toolkit at %s (%s), torch %s (CUDA %s)"
          % (home, how, torch.__version__, torch.version.cuda), file=sys.stderr)
    return True


def _extension():
    os.environ.setdefault("MAX_JOBS", str(os.cpu_count() or 1))
    sources = ["csrc/module.cpp", "csrc/ops.cpp", "csrc/autograd.cpp"] + sorted(glob.glob("csrc/cpu/*.cpp"))
    arch = os.environ.get("KANEXT_CPU_ARCH", "native")
    cxx = ["-O3", "-std=c++17", "-fopenmp", "-fno-math-errno", "-ffp-contract=fast"]
    if arch:
        cxx.append("-march=" + arch)
    if not _flag("KANEXT_DEBUG_INFO"):
        cxx.append("-g0")  # after the -g of Python's build flags, which it overrides
    include_dirs = [os.path.join(HERE, "csrc", "include")]
    if _want_cuda():
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "9.0a")
        sources += sorted(glob.glob("csrc/cuda/*.cu")) + sorted(glob.glob("csrc/cuda/*.cpp"))
        macros = [("KANEXT_WITH_CUDA", "1")]
        archs = os.environ["TORCH_CUDA_ARCH_LIST"].replace(",", ";").replace(" ", ";").split(";")
        if any(a.startswith("9.0a") for a in archs):  # kan_linear_tc_v2.cu's wgmma kernel can run
            macros.append(("KANEXT_HAVE_SM90A", "1"))
        return cpp_extension.CUDAExtension(
            "kanext._C",
            sources,
            include_dirs=include_dirs,
            define_macros=macros,
            extra_compile_args={"cxx": cxx, "nvcc": KANEXT_NVCC_FLAGS + extra_from_env()},
            extra_link_args=["-fopenmp"],
        )
    return cpp_extension.CppExtension(
        "kanext._C",
        sources,
        include_dirs=include_dirs,
        extra_compile_args={"cxx": cxx},
        extra_link_args=["-fopenmp"],
    )


setup(
    ext_modules=[_extension()],
    cmdclass={"build_ext": cpp_extension.BuildExtension.with_options(use_ninja=True)},
)
