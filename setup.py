"""Build of kanext._C (the source of truth for the build; CMakeLists.txt mirrors it).

CPU kernels are always built. CUDA sources are built only when torch itself has
CUDA and nvcc is found (never just because a GPU is visible):
  KANEXT_NO_CUDA=1     never build CUDA sources
  KANEXT_FORCE_CUDA=1  build them (fails if torch or nvcc cannot)
  KANEXT_CPU_ARCH      -march for the CPU kernels (default: native; e.g. x86-64-v3 for a portable build)
  TORCH_CUDA_ARCH_LIST GPU architectures (default here: 9.0, i.e. sm_90 only)
  MAX_JOBS             parallel compile jobs (default: all cores)
"""
import glob
import os

from setuptools import setup

import torch
from torch.utils import cpp_extension

HERE = os.path.dirname(os.path.abspath(__file__))


def _flag(name):
    return os.environ.get(name, "0") not in ("", "0", "false", "False")


def _want_cuda():
    if _flag("KANEXT_NO_CUDA"):
        return False
    have = torch.version.cuda is not None and cpp_extension.CUDA_HOME is not None
    if _flag("KANEXT_FORCE_CUDA"):
        if not have:
            raise RuntimeError(
                "KANEXT_FORCE_CUDA=1 but torch %s has CUDA=%s and CUDA_HOME=%s"
                % (torch.__version__, torch.version.cuda, cpp_extension.CUDA_HOME)
            )
        return True
    return have


def _extension():
    os.environ.setdefault("MAX_JOBS", str(os.cpu_count() or 1))
    sources = ["csrc/ops.cpp", "csrc/autograd.cpp"] + sorted(glob.glob("csrc/cpu/*.cpp"))
    arch = os.environ.get("KANEXT_CPU_ARCH", "native")
    cxx = ["-O3", "-std=c++17", "-fopenmp", "-fno-math-errno", "-ffp-contract=fast"]
    if arch:
        cxx.append("-march=" + arch)
    include_dirs = [os.path.join(HERE, "csrc", "include")]
    if _want_cuda():
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "9.0")
        sources += sorted(glob.glob("csrc/cuda/*.cu")) + sorted(glob.glob("csrc/cuda/*.cpp"))
        return cpp_extension.CUDAExtension(
            "kanext._C",
            sources,
            include_dirs=include_dirs,
            define_macros=[("KANEXT_WITH_CUDA", "1")],
            extra_compile_args={"cxx": cxx, "nvcc": ["-O3", "-std=c++17", "--use_fast_math", "-lineinfo"]},
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
