"""The nvcc flags of kanext's CUDA build, in one place (standard library only).

setup.py compiles csrc/cuda/*.cu with KANEXT_NVCC_FLAGS, plus what
torch.utils.cpp_extension adds to every nvcc call (TORCH_NVCC_FLAGS, its
COMMON_NVCC_FLAGS: the same in torch 2.11 and 2.13; tests/test_build_tools.py
compares them with the installed torch's). scripts/ptxas_report.py and
scripts/sass_counts.py compile with both lists too, so that the registers,
spills and SASS they report are those of the code that ships.

KANEXT_NVCC_EXTRA (environment): more flags for the build, split on spaces,
e.g. "-Xptxas -v", with which scripts/ci_cuda_build.sh reads ptxas' resource
report off the build log instead of compiling the kernels a second time.
"""
from __future__ import annotations

import os

KANEXT_NVCC_FLAGS = ["-O3", "-std=c++17", "--use_fast_math", "-lineinfo"]
TORCH_NVCC_FLAGS = ["-D__CUDA_NO_HALF_OPERATORS__", "-D__CUDA_NO_HALF_CONVERSIONS__",
                    "-D__CUDA_NO_BFLOAT16_CONVERSIONS__", "-D__CUDA_NO_HALF2_OPERATORS__",
                    "--expt-relaxed-constexpr"]


# Files whose kernels need an arch-specific target: the compile checks and SASS
# counts (scripts/ptxas_report.py, scripts/sass_counts.py) build them for it
# instead of sm_90. kan_linear_tc_v2.cu and kan_linear_tc_v2_f16.cu hold
# wgmma (sm_90a only); for sm_90 their kernel bodies compile to a trap (the
# launcher never runs them there).
FILE_ARCH = {"kan_linear_tc_v2.cu": "sm_90a", "kan_linear_tc_v2_f16.cu": "sm_90a"}


def arch_of(path: str) -> str:
    """The -arch of a .cu file in the compile checks: sm_90 unless FILE_ARCH says."""
    return FILE_ARCH.get(os.path.basename(path), "sm_90")


def extra_from_env(env=None) -> list[str]:
    return (env if env is not None else os.environ).get("KANEXT_NVCC_EXTRA", "").split()
