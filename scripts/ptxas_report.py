#!/usr/bin/env python3
"""ptxas resource usage of every CUDA kernel of kanext on sm_90, without a GPU.

Compiles each csrc/cuda/*.cu with the build's nvcc flags (tools/nvcc_flags.py:
-O3 -std=c++17 --use_fast_math -lineinfo and torch's defines) for sm_90, plus `-Xptxas -v`
(ptxas then prints, per kernel: registers, spill stores/loads, stack frame,
static shared memory) and `--keep` (the sm_90 cubin stays on disk; its ELF
sections give the constant bank 0 size, which ptxas 13 no longer prints, and
the code size). The files compile in parallel (MAX_JOBS, default: the CPUs
this process may use), longest first.

For every kernel instantiation it computes the theoretical occupancy on sm_90
(H100/H200) at the block size and dynamic shared memory its launcher uses
(LAUNCH below, read off csrc/cuda/*.cu[h]; dynamic shared memory for the
default G=5, k=3 where it depends on G).

    python3 scripts/ptxas_report.py --write   # writes docs/ptxas_sm90.md
    python3 scripts/ptxas_report.py --check   # exit 1 if a hot kernel spills (beyond KNOWN_SPILLS)

--from-log LOG reads the same report off a build log of setup.py (built with
KANEXT_NVCC_EXTRA="-Xptxas -v"; the flags are the build's, tools/nvcc_flags.py),
compiling only the files the log does not cover: scripts/ci_cuda_build.sh
checks the spills of the CUDA build this way, without a second compile.

--check is step 1 of scripts/check_cuda_compile.sh: a compile error also fails
it (exit 1), so the .cu files are compiled once for both checks. "Hot" kernels
(HOT) are those of the main forward / backward / statistics / activation
paths; a hot kernel that spills fails the check unless it is listed in
KNOWN_SPILLS with at least as many bytes (the spills that existed when the
check was introduced: a ratchet, so that no new spill and no growth gets in;
--strict ignores the list). Spills of other kernels are reported, not failed.

Standard library only; needs nvcc (exit 0 with a message without one, as the
shell script does).
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
from nvcc_flags import KANEXT_NVCC_FLAGS, TORCH_NVCC_FLAGS, arch_of  # noqa: E402

# the build's flags (setup.py), so that what is reported is what ships
NVCC_FLAGS = [*KANEXT_NVCC_FLAGS, *TORCH_NVCC_FLAGS, "-Icsrc/include"]  # after -arch=arch_of(file)
DEFAULT_OUT = os.path.join("docs", "ptxas_sm90.md")

# --------------------------------------------------------------- sm_90 limits
# H100 / H200 (compute capability 9.0), from the CUDA C++ Programming Guide,
# "Technical Specifications per Compute Capability", and the occupancy
# calculator's allocation rules.
SM90 = dict(
    regs_per_sm=65536,
    reg_alloc_unit=256,       # registers are allocated per warp in units of 256
    sub_partitions=4,         # each SM sub-partition holds 1/4 of the register file
    max_regs_per_thread=255,
    max_warps_per_sm=64,      # 2048 threads
    max_threads_per_block=1024,
    max_blocks_per_sm=32,
    smem_per_sm=228 * 1024,   # shared memory carve-out at its maximum
    smem_per_block_max=227 * 1024,
    smem_reserved_per_block=1024,  # the system reserves 1 KB per resident block
    smem_alloc_unit=128,
)


def _round_up(v: int, unit: int) -> int:
    return (v + unit - 1) // unit * unit


def occupancy(regs: int, threads: int, smem_bytes: int = 0, limits: dict = SM90) -> dict:
    """Theoretical occupancy of a kernel on one SM.

    regs: registers per thread (ptxas "Used N registers"); threads: block size;
    smem_bytes: static + dynamic shared memory of one block (without the 1 KB
    the system reserves, which is added here). Returns blocks per SM, warps per
    SM, the occupancy (resident warps / 64) and what limits it: "regs",
    "smem", "warps" or "blocks" (the first of them when several tie), or
    "launch" when the block cannot run at all.
    """
    L = limits
    warps_per_block = -(-threads // 32)
    bad = dict(blocks=0, warps=0, occupancy=0.0, limiter="launch")
    if threads < 1 or threads > L["max_threads_per_block"] or regs > L["max_regs_per_thread"]:
        return bad
    if smem_bytes > L["smem_per_block_max"]:
        return bad
    # registers: per warp, rounded up to the allocation unit; warps are placed
    # on the 4 sub-partitions, each with a quarter of the register file.
    regs_per_warp = _round_up(max(regs, 1) * 32, L["reg_alloc_unit"])
    warps_per_part = (L["regs_per_sm"] // L["sub_partitions"]) // regs_per_warp
    by_regs = (warps_per_part * L["sub_partitions"]) // warps_per_block
    # shared memory: block usage + 1 KB reserved, in 128-byte units
    smem_block = _round_up(smem_bytes + L["smem_reserved_per_block"], L["smem_alloc_unit"])
    by_smem = L["smem_per_sm"] // smem_block
    by_warps = L["max_warps_per_sm"] // warps_per_block
    by_blocks = L["max_blocks_per_sm"]
    by = [("regs", by_regs), ("smem", by_smem), ("warps", by_warps), ("blocks", by_blocks)]
    blocks = min(v for _, v in by)
    limiter = [name for name, v in by if v == blocks][0]
    if blocks <= 0:
        return dict(bad, limiter=limiter)
    warps = blocks * warps_per_block
    return dict(blocks=blocks, warps=warps, occupancy=warps / L["max_warps_per_sm"], limiter=limiter)


# ------------------------------------------------------ launch configurations
# Block size and dynamic shared memory of each kernel, as its launcher sets
# them. Each entry: (namespace, kernel name, threads, dynamic smem), matched
# against the demangled name's namespace and unqualified name (the anonymous
# namespace of fold.cu / spline_basis.cu / deriv.cu is "(anonymous namespace)").
# Dynamic shared memory is a function of the element type name (first
# template argument), or a constant; None when the kernel uses none.


def _elem_size(t: str) -> int:
    return {"float": 4, "double": 8, "__nv_bfloat16": 2, "__half": 2}.get(t, 0)


def _ring_stages(t: str) -> int:
    """kan_linear_tc_v2_ws.cuh tc2::ring_stages: 2 stages for TF32, 4 for 16-bit operands."""
    return 2 if _elem_size(t) == 4 else 4


def _tc_smem(kind: str):
    """kan_linear_tc.cuh: {forward,grad_w,grad_x}_smem_bytes<T>().

    Op = float (TF32) or the 16-bit type; padded_ld(cols) = cols + 16/sizeof(Op).
      forward: Op (128 x ld(64) A tile + 64 x ld(128) W tile) + 8 warps x 256 fp32 stage
      grad_w:  Op (64 x ld(64) A tile + 64 x ld(128) dy tile) + 8 warps x 256 fp32 stage
      grad_x:  Op (128 x ld(32) dy tile + 64 x ld(32) W tile) + fp32 128 x ld_f32(64) gradA tile
    """
    def f(t: str) -> int:
        op = _elem_size(t)
        ld = lambda cols, size=op: cols + 16 // size  # noqa: E731
        if kind == "forward":
            return op * (128 * ld(64) + 64 * ld(128)) + 4 * 8 * 256
        if kind == "grad_w":
            return op * (64 * ld(64) + 64 * ld(128)) + 4 * 8 * 256
        return op * (128 * ld(32) + 64 * ld(32)) + 4 * 128 * ld(64, 4)
    return f


def _basis_rows_smem(G: int = 5, k: int = 3):
    """Per-thread shared accumulators of the basis rows of one edge / channel
    (edge_tiles.cuh plan(), spline_activation.cu plan()): nb = G + k rows,
    at most 64 KiB / (256 threads x sizeof(T)) rows per block, split into
    balanced ranges: gr = ceil(nb / ceil(nb / max_rows)); bytes = gr x 256 x
    sizeof(T). For G=5, k=3: nb = 8 -> 8 KiB (float), 16 KiB (double)."""
    def f(t: str) -> int:
        e = _elem_size(t)
        nb = G + k
        max_rows = (64 * 1024) // (256 * e)
        n_gr = -(-nb // max_rows)
        gr = -(-nb // n_gr)
        return gr * 256 * e
    return f


LAUNCH = [
    # kan_linear_forward.cuh: fwd::kThreads = 256, no dynamic smem
    ("kanext::cuda::fwd", "kan_linear_forward_kernel", 256, None),
    ("kanext::cuda::fwd", "kan_linear_forward_v2_kernel", 256, None),  # backend local_v2
    # kan_linear_backward.cuh: kGxThreads = 32 x 8 warps; grad_W kWThreads = 256 + acc_bytes
    ("kanext::cuda::bwd", "grad_x_kernel", 256, None),
    ("kanext::cuda::bwd", "grad_x_v2_kernel", 256, None),  # backend local_v2
    ("kanext::cuda::bwd", "grad_w_kernel", 256, _basis_rows_smem()),
    # grad_w_reg_kernel (backend local_v2): kWThreads = 256, static smem only (the packed entries)
    ("kanext::cuda::bwd", "grad_w_reg_kernel", 256, None),
    # sorted grad W (backend local_v2, G + k > 16 only): at G = 50 the sort keeps
    # 52 keys x 34 ints per warp, 6 warps per block; the walk has static smem only
    ("kanext::cuda::bwd", "sort_rows_kernel", 192, 6 * 52 * 34 * 4),
    ("kanext::cuda::bwd", "grad_w_sorted_kernel", 256, None),
    ("kanext::cuda::bwd", "sum_slices_kernel", 256, None),
    # kan_linear_tc.cuh: tc::kThreads = 256
    ("kanext::cuda::tc", "tc_forward_kernel", 256, _tc_smem("forward")),
    ("kanext::cuda::tc", "tc_grad_w_kernel", 256, _tc_smem("grad_w")),
    ("kanext::cuda::tc", "tc_grad_x_kernel", 256, _tc_smem("grad_x")),
    ("kanext::cuda::tc", "tc_grad_w_combine_kernel", 256, None),
    # kan_linear_tc_v2.cuh (sm_90a): 2 x 32 KiB operand tiles + 64 row offsets
    ("kanext::cuda::tc2", "tc2_forward_kernel", 256, lambda t: 2 * 32768 + 64 * 8),
    # kan_linear_tc_v2_ws.cuh (backend tensor_core_v2, step 3): 3 warpgroups,
    # S stages x (A + W tile, 32 KiB each for TF32, 16 KiB for 16-bit types,
    # + 2 mbarriers), S = 2 (TF32) or 4 (16-bit: tc2::ring_stages); the W fold: 256 threads
    ("kanext::cuda::tc2", "tc2_ws_forward_kernel", 384, lambda t: _ring_stages(t) * (2 * 8192 * _elem_size(t) + 16)),
    ("kanext::cuda::tc2", "tc2_fold_w_kernel", 256, None),
    # kan_linear_tc_v2_gx.cuh (backend tensor_core_v2's grad x): the 128 x 132
    # float gradA tile over the two 32 KiB operand tiles, + 128 row offsets
    ("kanext::cuda::tc2", "tc2_grad_x_kernel", 256, lambda t: 128 * 132 * 4 + 128 * 8),
    # kan_linear_tc_v2_gx_ws.cuh (its grad x, step 2): 3 warpgroups, 2 stages x
    # (dy + W^T tiles, 32 KiB each for TF32, 16 KiB for 16-bit types), the
    # 128 x 132 float gradA tile, 4 mbarriers; the images' pre-pass: 256 threads
    ("kanext::cuda::tc2", "tc2_ws_grad_x_kernel", 384,
     lambda t: _ring_stages(t) * (2 * 8192 * _elem_size(t) + 16) + 128 * 132 * 4),
    ("kanext::cuda::tc2", "tc2_gx_images_kernel", 256, None),
    # kan_linear_tc_v2_gw.cuh (its grad W): A^T 16 KiB + dy^T 64 KiB operand tiles
    ("kanext::cuda::tc2", "tc2_grad_w_kernel", 256, lambda t: 16384 + 65536),
    # kan_linear_tc_v2_gw_ws.cuh (its grad W, step 2): 3 warpgroups, 2 stages x
    # (A^T 64 x 64 + dy^T 256 x 64 operands: 16 + 64 KiB TF32, 8 + 32 KiB 16-bit)
    # + 4 mbarriers; the dy image pre-pass: 256 threads
    ("kanext::cuda::tc2", "tc2_ws_grad_w_kernel", 384,
     lambda t: _ring_stages(t) * ((64 * 64 + 256 * 64) * _elem_size(t) + 16)),
    ("kanext::cuda::tc2", "tc2_dy_image_kernel", 256, None),
    # edge_stats.cu: estats::kThreads = tiles::kThreads = 256
    ("kanext::cuda::estats", "forward_kernel", 256, None),
    ("kanext::cuda::estats", "grad_w_kernel", 256, _basis_rows_smem()),
    ("kanext::cuda::estats", "grad_x_kernel", 256, None),
    ("kanext::cuda::estats", "sum_slices_kernel", 256, None),
    # spline_activation.cu: act::kThreads = 256
    ("kanext::cuda::act", "elementwise_kernel", 256, None),
    ("kanext::cuda::act", "weights_kernel", 256, _basis_rows_smem()),
    ("kanext::cuda::act", "combine_kernel", 256, None),
    # spline_basis.cu: kBasisThreads = 256
    ("kanext::cuda::(anonymous namespace)", "spline_basis_kernel", 256, None),
    # fold.cu: dim3(kTile = 32, kRowsPerPass = 8)
    ("kanext::cuda::(anonymous namespace)", "fold_kernel", 256, None),
    ("kanext::cuda::(anonymous namespace)", "fold_backward_kernel", 256, None),
    # deriv.cu: kThreads = 128 for every kernel
    ("kanext::cuda::(anonymous namespace)", "kan_linear_eval_kernel", 128, None),
    ("kanext::cuda::(anonymous namespace)", "kan_linear_transpose_kernel", 128, None),
    ("kanext::cuda::(anonymous namespace)", "kan_linear_wgrad_kernel", 128, None),
    ("kanext::cuda::(anonymous namespace)", "spline_activation_eval_kernel", 128, None),
    ("kanext::cuda::(anonymous namespace)", "spline_activation_wgrad_kernel", 128, None),
    ("kanext::cuda::(anonymous namespace)", "spline_basis_order_kernel", 128, None),
    ("kanext::cuda::(anonymous namespace)", "edge_product_kernel", 128, None),
    ("kanext::cuda::(anonymous namespace)", "edge_product_wgrad_kernel", 128, None),
]

# Kernels of the main paths: kan_linear forward / backward (local support and
# tensor cores), edge_stats, spline_activation, spline_basis, fold. The
# derivative-of-any-order kernels of deriv.cu are not hot.
HOT = [
    ("kanext::cuda::fwd", "*"),
    ("kanext::cuda::bwd", "*"),
    ("kanext::cuda::bwd", "grad_w_reg_kernel"),  # covered by "*"; named so that it stays hot if "*" narrows
    ("kanext::cuda::tc", "*"),
    ("kanext::cuda::tc2", "tc2_ws_forward_kernel"),  # backend tensor_core_v2 (its fold too)
    ("kanext::cuda::tc2", "tc2_fold_w_kernel"),
    ("kanext::cuda::tc2", "tc2_grad_x_kernel"),  # backend tensor_core_v2's grad x (first step, kept for the tests)
    ("kanext::cuda::tc2", "tc2_ws_grad_x_kernel"),  # its grad x (step 2, what the backend runs)
    ("kanext::cuda::tc2", "tc2_gx_images_kernel"),
    ("kanext::cuda::tc2", "tc2_grad_w_kernel"),  # and its grad W (first step, kept for the tests)
    ("kanext::cuda::tc2", "tc2_ws_grad_w_kernel"),  # its grad W (step 2, what the backend runs)
    ("kanext::cuda::tc2", "tc2_dy_image_kernel"),
    ("kanext::cuda::estats", "*"),
    ("kanext::cuda::act", "*"),
    ("kanext::cuda::(anonymous namespace)", "spline_basis_kernel"),
    ("kanext::cuda::(anonymous namespace)", "fold_kernel"),
    ("kanext::cuda::(anonymous namespace)", "fold_backward_kernel"),
]

# Hot kernels that spilled when this check was introduced (nvcc 13.0.88,
# sm_90, -O3; `--print-known-spills` prints the current list in this form):
# short_name -> (spill store bytes, spill load bytes). All are a few dozen bytes at most;
# most of them are stored and reloaded outside the innermost loops, often at
# register counts far below the limit (a value kept across the call of a slow
# path such as the IEEE division subroutine); the tensor-core kernels at 254-255
# registers spill under real register pressure (docs/roofline.md, "Spills").
# --check tolerates these up to the bytes listed and fails on any other hot
# spill or any growth. Remove an entry once its kernel no longer spills (the
# check says so); never add one without a reason in the commit. Re-based on
# 2026-12-04 when the report moved to the build's flags (--use_fast_math and
# torch's defines, tools/nvcc_flags.py): 43 hot kernels spill under them (51
# under -O3 alone); the 6 that spill only under the build's flags are kept as
# measured, being the code that ships.
KNOWN_SPILLS = {
    "kanext::cuda::estats::forward_kernel<double, 0>": (4, 4),
    "kanext::cuda::estats::forward_kernel<float, 3>": (8, 16),
    "kanext::cuda::estats::grad_w_kernel<double, 1>": (28, 28),
    "kanext::cuda::estats::grad_w_kernel<double, 2>": (52, 52),
    "kanext::cuda::estats::grad_w_kernel<double, 4>": (12, 12),
    "kanext::cuda::estats::grad_w_kernel<double, 5>": (32, 32),
    "kanext::cuda::bwd::grad_w_kernel<float, 1>": (4, 4),
    "kanext::cuda::bwd::grad_x_kernel<float, 2, true>": (4, 4),
    "kanext::cuda::bwd::grad_x_kernel<float, 3, false>": (24, 28),
    "kanext::cuda::bwd::grad_x_kernel<float, 4, false>": (20, 24),
    "kanext::cuda::bwd::grad_x_kernel<float, 5, false>": (4, 8),
    "kanext::cuda::bwd::grad_x_kernel<float, 5, true>": (48, 48),
    "kanext::cuda::bwd::grad_w_kernel<double, 5>": (20, 20),
    "kanext::cuda::bwd::grad_x_kernel<double, 0, false>": (8, 12),
    "kanext::cuda::bwd::grad_x_kernel<double, 0, true>": (28, 44),
    "kanext::cuda::bwd::grad_x_kernel<double, 1, true>": (40, 40),
    "kanext::cuda::fwd::kan_linear_forward_kernel<float, 4, false>": (4, 4),
    "kanext::cuda::fwd::kan_linear_forward_kernel<double, 3, false>": (8, 8),
    "kanext::cuda::fwd::kan_linear_forward_kernel<double, 3, true>": (8, 8),
    "kanext::cuda::tc::tc_grad_w_kernel<__nv_bfloat16, 0>": (12, 12),
    "kanext::cuda::tc::tc_grad_w_kernel<__nv_bfloat16, 1>": (12, 12),
    "kanext::cuda::tc::tc_grad_w_kernel<__nv_bfloat16, 2>": (40, 48),
    "kanext::cuda::tc::tc_grad_w_kernel<__nv_bfloat16, 3>": (24, 24),
    "kanext::cuda::tc::tc_grad_w_kernel<__nv_bfloat16, 4>": (24, 24),
    "kanext::cuda::tc::tc_grad_w_kernel<__nv_bfloat16, 5>": (24, 24),
    "kanext::cuda::tc::tc_forward_kernel<float, 0>": (8, 8),
    "kanext::cuda::tc::tc_forward_kernel<float, 1>": (4, 4),
    "kanext::cuda::tc::tc_forward_kernel<float, 2>": (8, 8),
    "kanext::cuda::tc::tc_forward_kernel<float, 4>": (4, 4),
    "kanext::cuda::tc::tc_grad_w_kernel<float, 3>": (12, 12),
    "kanext::cuda::tc::tc_grad_w_kernel<float, 4>": (12, 12),
    "kanext::cuda::tc::tc_grad_w_kernel<float, 5>": (12, 12),
    "kanext::cuda::act::weights_kernel<double, 0>": (12, 12),
    "kanext::cuda::act::weights_kernel<double, 2>": (28, 36),
    "kanext::cuda::act::weights_kernel<double, 3>": (28, 36),
    "kanext::cuda::act::weights_kernel<float, 0>": (16, 20),
    "kanext::cuda::(anonymous namespace)::spline_basis_kernel<double, 0, false>": (8, 8),
    "kanext::cuda::(anonymous namespace)::spline_basis_kernel<double, 2, false>": (16, 16),
    "kanext::cuda::(anonymous namespace)::spline_basis_kernel<double, 2, true>": (16, 16),
    "kanext::cuda::(anonymous namespace)::spline_basis_kernel<double, 4, true>": (12, 24),
    "kanext::cuda::(anonymous namespace)::spline_basis_kernel<double, 5, false>": (16, 16),
    "kanext::cuda::(anonymous namespace)::spline_basis_kernel<double, 5, true>": (8, 8),
    "kanext::cuda::(anonymous namespace)::spline_basis_kernel<float, 4, true>": (4, 4),
    # local_v2's grad x (design L.2, opt-in, unmeasured), under the build's flags: as its v1 twins
    # (grad_x<double, 0, true> 28/44 B, grad_x<float, 5, true> 48 B), and, read with sass_counts.py,
    # outside the per-input inner loop
    "kanext::cuda::bwd::grad_x_v2_kernel<float, 4>": (4, 8),
    "kanext::cuda::bwd::grad_x_v2_kernel<float, 5>": (4, 8),
    "kanext::cuda::bwd::grad_x_v2_kernel<double, 0>": (32, 52),
    # local_v2's sorted grad W (design L.1, G + k > 16; opt-in, unmeasured) at 2 blocks/SM (128
    # registers): read with sass_counts.py, the spill code sits in the tile prologue (4 LDL per
    # tile) and the chunk staging (1 LDL per 256-row chunk), not in the per-row loops; a minimum of
    # 1 block/SM would lift the register cap at 12.5% occupancy
    "kanext::cuda::bwd::grad_w_sorted_kernel<double, 5>": (24, 24),
}


_ANON = "(anonymous namespace)"


def short_name(demangled: str) -> str:
    """The kernel's qualified name with template arguments, without 'void' and
    the parameter list: 'kanext::cuda::tc::tc_forward_kernel<float, 3>'."""
    s = re.sub(r"^void\s+", "", demangled)
    depth, i = 0, 0
    while i < len(s):
        if s.startswith(_ANON, i):
            i += len(_ANON)
            continue
        ch = s[i]
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif ch == "(" and depth == 0:
            break
        i += 1
    return s[:i].strip()


def _split_template(name: str) -> tuple[str, list[str]]:
    """('kanext::cuda::tc::tc_forward_kernel', ['float', '3']) of a short_name."""
    depth, start, args, cur = 0, None, [], ""
    i = 0
    while i < len(name):
        if depth == 0 and name.startswith(_ANON, i):
            i += len(_ANON)
            continue
        ch = name[i]
        if ch == "<":
            depth += 1
            if depth == 1:
                start = i if start is None else start
                i += 1
                continue
        elif ch == ">":
            depth -= 1
            if depth == 0:
                args.append(cur.strip())
                cur = ""
                i += 1
                continue
        elif ch == "," and depth == 1:
            args.append(cur.strip())
            cur = ""
            i += 1
            continue
        if depth >= 1:
            cur += ch
        i += 1
    return (name if start is None else name[:start]), [a for a in args if a]


def _ns_name(demangled: str) -> tuple[str, str]:
    """('kanext::cuda::tc', 'tc_forward_kernel') of 'void kanext::cuda::tc::tc_forward_kernel<float, 3>(...)'."""
    qual, _ = _split_template(short_name(demangled))
    ns, _, name = qual.rpartition("::")
    return ns, name


def _matches(demangled: str, ns: str, name: str) -> bool:
    kns, kname = _ns_name(demangled)
    return kns == ns and (name == "*" or kname == name)


def is_hot(demangled: str) -> bool:
    return any(_matches(demangled, ns, name) for ns, name in HOT)


def template_args(demangled: str) -> list[str]:
    """Top-level template arguments of the kernel ('float', '3', ...)."""
    return _split_template(short_name(demangled))[1]


def launch_config(demangled: str):
    """(threads, dynamic smem bytes or 0, True) from LAUNCH, or (None, None, False) when unknown."""
    for ns, name, threads, dyn in LAUNCH:
        if _matches(demangled, ns, name):
            args = template_args(demangled)
            t = args[0] if args else ""
            return threads, (dyn(t) if callable(dyn) else (dyn or 0)), True
    return None, None, False


# ------------------------------------------------------------ ptxas -v parser
@dataclass
class Kernel:
    mangled: str
    entry: bool = True
    registers: int | None = None
    barriers: int | None = None
    stack_frame: int = 0
    spill_stores: int = 0
    spill_loads: int = 0
    cumulative_stack: int = 0
    smem: int = 0
    cmem: dict = field(default_factory=dict)   # bank -> bytes (ptxas before 13; else from the cubin)
    sass_instructions: int | None = None
    source: str = ""
    demangled: str = ""


_RE_ENTRY = re.compile(r"Compiling entry function '([^']+)'")
_RE_PROPS = re.compile(r"Function properties for (\S+)")
_RE_FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_RE_USED = re.compile(r"ptxas info\s*:\s*Used (\d+) registers(.*)")
_RE_FIELDS = {
    "barriers": re.compile(r"used (\d+) barriers"),
    "cumulative_stack": re.compile(r"(\d+) bytes cumulative stack size"),
    "smem": re.compile(r"(\d+) bytes smem"),
}
_RE_CMEM = re.compile(r"(\d+) bytes cmem\[(\d+)\]")


def parse_ptxas(text: str, source: str = "") -> list[Kernel]:
    """Kernels of `ptxas -v` output, in order. Non-entry functions (device
    functions ptxas did not inline) are returned with entry=False."""
    kernels: dict[str, Kernel] = {}
    order: list[str] = []
    entries: set[str] = set()
    current: Kernel | None = None

    def get(name: str) -> Kernel:
        if name not in kernels:
            kernels[name] = Kernel(mangled=name, source=source)
            order.append(name)
        return kernels[name]

    for line in text.splitlines():
        m = _RE_ENTRY.search(line)
        if m:
            entries.add(m.group(1))
            current = get(m.group(1))
            continue
        m = _RE_PROPS.search(line)
        if m:
            current = get(m.group(1))
            continue
        m = _RE_FRAME.search(line)
        if m and current is not None:
            current.stack_frame, current.spill_stores, current.spill_loads = map(int, m.groups())
            continue
        m = _RE_USED.search(line)
        if m and current is not None:
            current.registers = int(m.group(1))
            rest = m.group(2)
            for attr, rx in _RE_FIELDS.items():
                f = rx.search(rest)
                if f:
                    setattr(current, attr, int(f.group(1)))
            for size, bank in _RE_CMEM.findall(rest):
                current.cmem[int(bank)] = int(size)
    for name in order:
        kernels[name].entry = name in entries
    return [kernels[n] for n in order]


# ------------------------------------------------------------- cubin (ELF64)
def cubin_sections(path: str) -> dict[str, int]:
    """Section name -> size of an ELF64 file (a cubin)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        raise ValueError(f"{path}: not an ELF64 file")
    e_shoff = struct.unpack_from("<Q", data, 0x28)[0]
    e_shentsize, e_shnum, e_shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    heads = [struct.unpack_from("<IIQQQQIIQQ", data, e_shoff + i * e_shentsize) for i in range(e_shnum)]
    str_off = heads[e_shstrndx][4]
    out = {}
    for h in heads:
        end = data.index(b"\0", str_off + h[0])
        out[data[str_off + h[0]:end].decode("ascii", "replace")] = h[5]
    return out


def apply_cubin(kernels: list[Kernel], cubin: str) -> None:
    """Constant bank 0 (kernel parameters and driver constants) and the SASS
    instruction count (16 bytes each on sm_90) from the cubin's sections."""
    try:
        secs = cubin_sections(cubin)
    except (OSError, ValueError):
        return
    for k in kernels:
        c0 = secs.get(".nv.constant0." + k.mangled)
        if c0 is not None and 0 not in k.cmem:
            k.cmem[0] = c0
        text = secs.get(".text." + k.mangled)
        if text is not None:
            k.sass_instructions = text // 16


# ------------------------------------------------------------------ tooling
def find_nvcc() -> str | None:
    cand = os.environ.get("NVCC") or shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc"
    return cand if cand and os.path.isfile(cand) and os.access(cand, os.X_OK) else None


def toolkit_bin(nvcc: str) -> str:
    """bin/ of the real toolkit behind nvcc (wrapper scripts followed, as in tools/cuda_toolkit.py)."""
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    try:
        from cuda_toolkit import real_nvcc  # noqa: E402
        return os.path.dirname(real_nvcc(nvcc))
    except Exception:  # pragma: no cover - the tools module is part of the repository
        return os.path.dirname(os.path.realpath(nvcc))
    finally:
        sys.path.pop(0)


def find_demangler(nvcc: str | None) -> list[str] | None:
    if nvcc:
        cu = os.path.join(toolkit_bin(nvcc), "cu++filt")
        if os.access(cu, os.X_OK):
            return [cu]
    for name in ("cu++filt", "c++filt"):
        p = shutil.which(name)
        if p:
            return [p]
    return None


def demangle(names: list[str], tool: list[str] | None) -> list[str]:
    if not names or not tool:
        return list(names)
    r = subprocess.run(tool, input="\n".join(names) + "\n", capture_output=True, text=True)
    out = r.stdout.splitlines()
    return out if r.returncode == 0 and len(out) == len(names) else list(names)


def nvcc_version(nvcc: str) -> str:
    r = subprocess.run([nvcc, "--version"], capture_output=True, text=True)
    m = re.search(r"release [\d.]+, V[\d.]+", r.stdout)
    return m.group(0) if m else r.stdout.strip().splitlines()[-1] if r.stdout.strip() else "unknown"


# Seconds each file took to compile alone (nvcc 13.0, one core of the CI-class
# machine, 2026-12): only the order of the parallel compiles uses them
# (longest first, so that the long deriv.cu does not start last). Files not
# listed start first.
COMPILE_SECONDS = {
    "deriv.cu": 33.5, "kan_linear_tc_f32.cu": 13.2, "kan_linear_tc_bf16.cu": 13.1, "kan_linear_tc_f16.cu": 11.7,
    "edge_stats.cu": 8.6, "spline_activation.cu": 6.9, "kan_linear_backward_f32.cu": 6.5,
    "kan_linear_backward_f64.cu": 6.5, "spline_basis.cu": 5.2, "kan_linear_forward_f32.cu": 4.6,
    "kan_linear_forward_f64.cu": 3.2, "kan_linear_tc.cu": 1.6, "fold.cu": 1.6,
}


def compile_one(nvcc: str, src: str, workdir: str) -> tuple[str, int, str, str]:
    """nvcc -c with -Xptxas -v; returns (src, rc, stderr+stdout, cubin path)."""
    base = os.path.basename(src)
    keep = os.path.join(workdir, base + ".keep")
    os.makedirs(keep, exist_ok=True)
    arch = arch_of(src)
    cmd = [nvcc, "-arch=" + arch, *NVCC_FLAGS, "-c", src, "-o", os.path.join(workdir, base + ".o"),
           "-Xptxas", "-v", "--keep", "--keep-dir", keep]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    stem = os.path.splitext(base)[0]
    # nvcc --keep names it <stem>.sm_90.cubin, or <stem>.compute_90a.sm_90a.cubin for an arch-specific target
    found = sorted(f for f in os.listdir(keep) if f.startswith(stem + ".") and f.endswith(f".{arch}.cubin"))
    return src, r.returncode, r.stdout + r.stderr, os.path.join(keep, found[0] if found else f"{stem}.{arch}.cubin")


def _is_ptxas_info(line: str) -> bool:
    return (line.startswith("ptxas info") or _RE_FRAME.search(line) is not None or not line.strip())


def compile_all(nvcc: str, files: list[str], jobs: int, workdir: str, keep_cubins: str | None,
                echo=print) -> tuple[list[Kernel], list[tuple[str, str]]]:
    """Compiles `files` (paths relative to ROOT), longest first; returns the
    kernels and the (file, output) of failed compiles."""
    order = sorted(files, key=lambda f: -COMPILE_SECONDS.get(os.path.basename(f), float("inf")))
    kernels: list[Kernel] = []
    failed = []
    with cf.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futs = []
        for f in order:
            echo(f"nvcc -arch={arch_of(f)} -c {f}")
            futs.append(pool.submit(compile_one, nvcc, f, workdir))
        for fut in futs:
            src, rc, out, cubin = fut.result()
            noise = [ln for ln in out.splitlines() if not _is_ptxas_info(ln)]
            if rc != 0:
                failed.append((src, "\n".join(noise) or out))
                continue
            if noise:  # compiler warnings, shown as the plain compile showed them
                echo("\n".join(noise))
            ks = parse_ptxas(out, source=os.path.basename(src))
            apply_cubin(ks, cubin)
            if keep_cubins and os.path.isfile(cubin):
                os.makedirs(keep_cubins, exist_ok=True)
                shutil.copy(cubin, os.path.join(keep_cubins, os.path.basename(cubin)))
            kernels.extend(ks)
    return kernels, failed


# ------------------------------------------------------------------- report
_RE_STEP = re.compile(r"^\[\d+/\d+\] ")
_RE_CU = re.compile(r"\s-c\s+(\S+\.cu)\b")


def kernels_from_log(text: str) -> tuple[list[Kernel], list[str]]:
    """The kernels of a build log of setup.py built with KANEXT_NVCC_EXTRA="-Xptxas -v"
    (ninja prints each command as "[i/n] command" and then its output), and
    the .cu files whose nvcc commands it found. No cubin is read, so the
    constant bank and code size stay unknown (--check needs neither)."""
    kernels: list[Kernel] = []
    sources: list[str] = []
    src, chunk = None, []

    def flush():
        if src is not None:
            kernels.extend(parse_ptxas("\n".join(chunk), source=os.path.basename(src)))

    for line in text.splitlines():
        if _RE_STEP.match(line):
            flush()
            m = _RE_CU.search(line) if "nvcc" in line else None
            src, chunk = (m.group(1), []) if m else (None, [])
            if m:
                sources.append(m.group(1))
        elif src is not None:
            chunk.append(line)
    flush()
    return kernels, sources


def annotate(kernels: list[Kernel], demangler: list[str] | None) -> list[dict]:
    names = demangle([k.mangled for k in kernels], demangler)
    rows = []
    for k, d in zip(kernels, names):
        k.demangled = d
        threads, dyn, known = launch_config(d)
        row = dict(kernel=k, hot=is_hot(d), threads=threads, dyn_smem=dyn, known=known, occ=None)
        if known and k.registers is not None:
            row["occ"] = occupancy(k.registers, threads, k.smem + dyn)
        rows.append(row)
    rows.sort(key=lambda r: (r["kernel"].source, r["kernel"].demangled))
    return rows


def spill_problems(rows: list[dict], strict: bool = False) -> tuple[list[str], list[str], list[str]]:
    """(failures, tolerated known spills, stale KNOWN_SPILLS entries)."""
    fail, known, seen = [], [], set()
    for r in rows:
        k = r["kernel"]
        if not (r["hot"] and (k.spill_stores or k.spill_loads)):
            continue
        name = short_name(k.demangled)
        base = KNOWN_SPILLS.get(name)
        msg = f"{name} [{k.source}]: {k.spill_stores} B spill stores, {k.spill_loads} B spill loads"
        if base is not None:
            seen.add(name)
        if base is None or strict or k.spill_stores > base[0] or k.spill_loads > base[1]:
            extra = "" if base is None else f" (KNOWN_SPILLS allows {base[0]} / {base[1]} B)"
            fail.append(msg + extra)
        else:
            known.append(msg)
    present = {short_name(r["kernel"].demangled) for r in rows}
    stale = [n for n in KNOWN_SPILLS if n in present and n not in seen]
    return fail, known, stale


def _fmt_occ(r: dict) -> tuple[str, str, str]:
    if not r["known"]:
        return "unknown", "unknown", "unknown"
    o = r["occ"]
    if o is None:
        return "?", "?", "?"
    return str(o["blocks"]), f"{100 * o['occupancy']:.1f}%", o["limiter"]


def render_markdown(rows: list[dict], version: str, when: str) -> str:
    hot_spill = [r for r in rows if r["hot"] and (r["kernel"].spill_stores or r["kernel"].spill_loads)]
    cold_spill = [r for r in rows if not r["hot"] and (r["kernel"].spill_stores or r["kernel"].spill_loads)]
    lines = [
        "# ptxas resource usage, sm_90",
        "",
        "Generated by `python3 scripts/ptxas_report.py --write` (do not edit by hand): every",
        "`csrc/cuda/*.cu` compiled with `nvcc -arch=sm_90 -std=c++17 -O3 -Icsrc/include -c -Xptxas -v --keep`,",
        f"{version}, on {when}.",
        "",
        "Columns: registers per thread; spill stores / loads in bytes; stack frame in bytes; static shared",
        "memory (ptxas `smem`) in bytes; constant bank 0 (kernel parameters + driver constants, from the",
        "cubin's `.nv.constant0` section) in bytes; SASS instructions (code size / 16 B); the block size and",
        "dynamic shared memory the launcher uses (`LAUNCH` in the script; shared accumulators for the default",
        "G=5, k=3); and the theoretical occupancy on sm_90 at that launch: resident blocks per SM, resident",
        "warps / 64, and the limiting resource. Limits assumed: 65536 registers per SM, allocated per warp",
        "in units of 256 and split over 4 sub-partitions; at most 64 warps, 32 blocks and 2048 threads per",
        "SM; 228 KB shared memory per SM (maximum carve-out) with 1 KB reserved per block, at most 227 KB",
        "per block. This is an upper bound from resources only; it says nothing about latency hiding.",
        "",
        "`hot` marks the kernels of the main paths (`HOT` in the script): kan_linear forward / backward",
        "(local support and tensor cores), edge_stats, spline_activation, spline_basis, fold.",
        "`scripts/check_cuda_compile.sh` runs `ptxas_report.py --check`, which fails when a hot kernel",
        "spills, except the spills listed in `KNOWN_SPILLS` (present when the check was introduced; they",
        "may not grow).",
        "",
        "## Summary",
        "",
        f"- {len(rows)} kernel instantiations in {len({r['kernel'].source for r in rows})} files, "
        f"{sum(r['hot'] for r in rows)} of them hot.",
        f"- Hot kernels that spill: {len(hot_spill)}"
        + (": " + ", ".join(f"`{short_name(r['kernel'].demangled)}` ({r['kernel'].spill_stores}/"
                             f"{r['kernel'].spill_loads} B)" for r in hot_spill) + "." if hot_spill else "."),
        f"- Other kernels that spill: {len(cold_spill)}"
        + (" (" + ", ".join(sorted({_ns_name(r['kernel'].demangled)[1] for r in cold_spill})) + ")."
           if cold_spill else "."),
    ]
    low = [r for r in rows if r["hot"] and r["occ"] and r["occ"]["occupancy"] <= 0.125]
    if low:
        lines.append("- Hot kernels at 12.5% occupancy or less (one 8-warp block per SM): "
                     + ", ".join(sorted({f"`{_ns_name(r['kernel'].demangled)[1]}`" for r in low})) + ".")
    unknown = [r for r in rows if not r["known"]]
    lines.append(f"- Kernels without a launch configuration in the script: {len(unknown)}"
                 + (": " + ", ".join(f"`{short_name(r['kernel'].demangled)}`" for r in unknown) + "."
                    if unknown else "."))
    src = None
    for r in rows:
        k = r["kernel"]
        if k.source != src:
            src = k.source
            lines += ["", f"## {src}", "",
                      "| kernel | hot | regs | spill st/ld B | stack B | smem B | cmem0 B | SASS | threads "
                      "| dyn smem B | blocks/SM | occupancy | limiter | mangled |",
                      "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|"]
        blocks, occ, lim = _fmt_occ(r)
        spill = f"{k.spill_stores}/{k.spill_loads}"
        if k.spill_stores or k.spill_loads:
            spill = f"**{spill}**"
        name = short_name(k.demangled)
        lines.append(
            f"| `{name}` | {'yes' if r['hot'] else ''} | {k.registers} | {spill} | {k.stack_frame} | {k.smem} | "
            f"{k.cmem.get(0, '?')} | {k.sass_instructions if k.sass_instructions is not None else '?'} | "
            f"{r['threads'] if r['known'] else 'unknown'} | {r['dyn_smem'] if r['known'] else 'unknown'} | "
            f"{blocks} | {occ} | {lim} | `{k.mangled}` |")
    return "\n".join(lines) + "\n"


def _report_spills(rows, args) -> int:
    """Prints the spill summary; with --check, 1 if a hot kernel spills beyond KNOWN_SPILLS."""
    fail, known, stale = spill_problems(rows, strict=args.strict)
    cold = [r["kernel"] for r in rows if not r["hot"] and (r["kernel"].spill_stores or r["kernel"].spill_loads)]
    if cold:
        print(f"ptxas_report: {len(cold)} kernel(s) off the hot paths spill (reported, not checked)")
    if known:
        print(f"ptxas_report: {len(known)} hot kernel(s) spill within KNOWN_SPILLS"
              + (":" if args.verbose else " (listed with --verbose, and in docs/ptxas_sm90.md)"))
        if args.verbose:
            for msg in known:
                print(f"  {msg}")
    for name in stale:
        print(f"ptxas_report: {name} no longer spills: remove it from KNOWN_SPILLS")
    if args.check:
        if fail:
            print("ptxas_report: FAILED: hot kernel(s) spill registers to local memory:", file=sys.stderr)
            for msg in fail:
                print(f"  {msg}", file=sys.stderr)
            print("Reduce the register pressure (or, for an accepted spill, add it to KNOWN_SPILLS in "
                  "scripts/ptxas_report.py with the reason).", file=sys.stderr)
            return 1
        print(f"ptxas_report: check OK: no hot kernel spills beyond KNOWN_SPILLS ({len(known)} known)")
    return 0


def _check_log(args) -> int:
    """--from-log: the spill check on the kernels a build log reports; the .cu
    files the log has no report for (an incremental build that skipped them)
    are compiled here, with the same flags."""
    with open(args.from_log, errors="replace") as f:
        kernels, sources = kernels_from_log(f.read())
    os.chdir(ROOT)
    seen = {os.path.basename(s) for s in sources}
    rest = sorted(os.path.join("csrc", "cuda", f) for f in os.listdir(os.path.join("csrc", "cuda"))
                  if f.endswith(".cu") and f not in seen)
    print(f"ptxas_report: {len(seen)} .cu file(s) reported in {args.from_log}"
          + (f"; compiling the {len(rest)} it skipped" if rest else ""))
    nvcc = find_nvcc()
    if rest:
        if nvcc is None:
            print("ptxas_report: nvcc not found for the files the log skipped", file=sys.stderr)
            return 1
        jobs = int(os.environ.get("MAX_JOBS") or 0) or len(os.sched_getaffinity(0))
        with tempfile.TemporaryDirectory(prefix="ptxas_report.") as tmp:
            more, failed = compile_all(nvcc, rest, jobs, tmp, None)
        if failed:
            for src, out in failed:
                print(f"ptxas_report: nvcc failed on {src}:\n{out}", file=sys.stderr)
            return 1
        kernels += more
    if not any(k.entry for k in kernels):
        print(f"ptxas_report: no kernel found in {args.from_log}", file=sys.stderr)
        return 1
    print(f"ptxas_report: {len(kernels)} kernels")
    return _report_spills(annotate([k for k in kernels if k.entry], find_demangler(nvcc)), args)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", action="store_true", help=f"write the Markdown report ({DEFAULT_OUT})")
    ap.add_argument("--out", default=DEFAULT_OUT, help="report path (relative to the repository root)")
    ap.add_argument("--check", action="store_true", help="exit 1 if a hot kernel spills beyond KNOWN_SPILLS")
    ap.add_argument("--strict", action="store_true", help="with --check: no KNOWN_SPILLS tolerance")
    ap.add_argument("-v", "--verbose", action="store_true", help="list the tolerated known spills")
    ap.add_argument("--print-known-spills", action="store_true",
                    help="print the hot spills of this build as a KNOWN_SPILLS dict (to review, then paste)")
    ap.add_argument("--keep-cubins", metavar="DIR", help="copy the sm_90 cubins here (for scripts/sass_counts.py)")
    ap.add_argument("--from-log", metavar="LOG",
                    help="read ptxas' report off a build log (setup.py with KANEXT_NVCC_EXTRA='-Xptxas -v') "
                         "instead of compiling; with --check, as scripts/ci_cuda_build.sh does")
    ap.add_argument("files", nargs="*", help="the .cu files (default: csrc/cuda/*.cu)")
    args = ap.parse_args(argv)
    if args.from_log:
        return _check_log(args)

    nvcc = find_nvcc()
    if nvcc is None:
        print("ptxas_report: nvcc not found, skipped")
        return 0
    os.chdir(ROOT)
    files = args.files or sorted(os.path.join("csrc", "cuda", f) for f in os.listdir(os.path.join("csrc", "cuda"))
                                 if f.endswith(".cu"))
    jobs = int(os.environ.get("MAX_JOBS") or 0) or len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory(prefix="ptxas_report.") as tmp:
        kernels, failed = compile_all(nvcc, files, jobs, tmp, args.keep_cubins)
    if failed:
        for src, out in failed:
            print(f"ptxas_report: nvcc failed on {src}:\n{out}", file=sys.stderr)
        print(f"ptxas_report: {len(failed)} of {len(files)} .cu file(s) failed to compile", file=sys.stderr)
        return 1
    print(f"ptxas_report: {len(files)} .cu file(s) compiled, {len(kernels)} kernels")
    rows = annotate([k for k in kernels if k.entry], find_demangler(nvcc))

    if args.write:
        when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        text = render_markdown(rows, f"nvcc {nvcc_version(nvcc)}", when)
        path = os.path.join(ROOT, args.out)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        print(f"ptxas_report: wrote {args.out}")

    if args.print_known_spills:
        print("KNOWN_SPILLS = {")
        for r in rows:
            k = r["kernel"]
            if r["hot"] and (k.spill_stores or k.spill_loads):
                print(f'    "{short_name(k.demangled)}": ({k.spill_stores}, {k.spill_loads}),')
        print("}")

    return _report_spills(rows, args)


if __name__ == "__main__":
    sys.exit(main())
