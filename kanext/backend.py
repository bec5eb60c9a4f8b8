"""Which CUDA strategy the fused KAN layer uses.

Two formulations of ``kan_linear`` run on CUDA (csrc/cuda/):

``"local"``
    Local support on CUDA cores (kan_linear_forward.cuh / _backward.cuh):
    only the k+1 non-zero bases of each (n, i) are touched, so the cost is
    2 N in out (k+2) flops per pass whatever G is. Strict float32 and float64.
``"tensor_core"``
    Dense on tensor cores (kan_linear_tc.cuh): the basis matrix
    (N, in (G+k+1)) is generated tile by tile in shared memory and fed to
    WMMA, never written to memory; 2 N in out (G+k+1) flops per pass, in TF32
    (float32 inputs), bfloat16 or float16, with float32 accumulation.

``"local_v2"``
    As ``"local"``, with the v2 kernels of docs/roofline.md section 6: the
    weight gradient keeps, when G + k <= 16, the G + k accumulators of each
    (input, output) edge in registers and updates the k+1 of each row's
    interval through a warp-uniform switch (grad_w_reg_kernel, design L.1);
    for G + k > 16 it first sorts each input's batch rows by interval (a
    stable counting sort into a workspace permutation, 4 bytes per (n, i))
    and walks them in that order with only the k+1 accumulators of the
    current interval in registers (grad_w_sorted_kernel; above G = 358 the
    ``"local"`` kernel). The forward and grad x stage 32-bit offsets of the
    gathered Wc rows with the bases (design L.2; 16-byte-aligned operands for
    grad x, else the ``"local"`` kernel). The same bits as ``"local"`` (same
    order of operations, same batch slices), except the sorted weight
    gradient: another summation order, so equal within rounding, and
    deterministic (the same bits run to run on one GPU model). Designed from
    the roofline model, unmeasured on a GPU; ``"auto"`` does not choose it
    until a GPU has measured it.

``"tensor_core_v2"``
    As ``"tensor_core"``, except on a compute capability 9.0 GPU (H100 /
    H200) from a build with sm_90a code (the default ``TORCH_CUDA_ARCH_LIST``
    of setup.py, 9.0a): there the three passes run on Hopper's warpgroup MMA
    (wgmma; design T of docs/roofline.md section 6), for float32 (TF32
    operands, m64n128k8) and bfloat16 / float16 (16-bit operands,
    m64n128k16, half the shared memory per tile; what autocast gives). The
    forward (step 3, kan_linear_tc_v2_ws.cuh): W is first folded into the
    wgmma operand layout (a workspace the size of the chunk-padded W), then
    one producer warpgroup builds the basis tiles and bulk-copies the W
    tiles while two consumer warpgroups run the MMAs, over a 2-stage
    mbarrier ring. (Step 2, kan_linear_tc_v2.cuh, the same MMAs without warp
    specialisation, float32 only, is kept for the emulation tests.) Same
    chunk layout, basis values and NaN policy as ``"tensor_core"``; results
    that differ from it by the order of the sums inside the MMAs. The
    backward is warp-specialised like the forward, with its operands folded
    into the MMA's layout by a pre-pass and bulk-copied (design T items 6
    and 5, step 2): grad x as gradA = dy W^T contracted with the basis
    derivatives by the ``"tensor_core"`` epilogue (kan_linear_tc_v2_gx_ws.cuh;
    dy and W^T folded, one producer thread issuing the copies), grad W as
    A^T dy with ``"tensor_core"``'s batch slices (kan_linear_tc_v2_gw_ws.cuh;
    dy folded, a producer warpgroup building A^T with the forward's
    builders). The backward's workspace is about the size of dy plus W. On
    other GPUs and builds without sm_90a it is exactly ``"tensor_core"``.
    Checked in host emulation only, unmeasured on a GPU; ``"auto"`` does not
    choose it.

``"auto"`` (the default) chooses per call:

============================  ==============================================
x dtype                       strategy
============================  ==============================================
float64                       local (tensor cores would lower its precision)
float32, TF32 not allowed     local (strict float32, as cuBLAS)
float32, TF32 allowed         tensor_core if G + k + 1 <= 32, else local
bfloat16, float16             tensor_core
============================  ==============================================

TF32 is allowed when ``torch.backends.cuda.matmul.allow_tf32`` is True
(``torch.set_float32_matmul_precision("high")``), exactly as for cuBLAS
matmuls. ``set_backend("tensor_core")`` uses tensor cores at any G, but
never changes precision: float64 and strict float32 stay local.
``set_backend("local")`` (or ``"local_v2"``) runs bfloat16 / float16
layers on the local-support kernels through float32 copies.

The threshold 32 is a first estimate from flop counts, not a measurement:
the crossover on an H200 has yet to be measured (bench/RESULTS.md).
On the CPU there is one strategy (local support) and the setting is ignored.

Under ``torch.autocast("cuda", dtype=torch.bfloat16)`` (or float16) the
layer's x and weights are cast to that dtype (float64 stays float64), the
grid to float32, and the result has the autocast dtype.
"""
from __future__ import annotations

import contextlib

__all__ = ["BACKENDS", "set_backend", "get_backend", "use_backend", "backend_code"]

#: Accepted names, in the order of their codes in csrc/include/kanext/backend.h.
BACKENDS = ("auto", "local", "tensor_core", "local_v2", "tensor_core_v2")

# The setting is Python state, passed to the kan_linear ops as their `backend`
# argument at every call: torch.compile reads it while tracing and guards on
# it, so a changed setting recompiles instead of being baked in or ignored.
_code = 0


def set_backend(name: str) -> str:
    """Sets the CUDA strategy of every KAN layer in this process: "auto",
    "local", "tensor_core", "local_v2" or "tensor_core_v2" (see the module docstring). Returns the previous
    one. Read at every call of a layer (and by torch.compile, which recompiles
    a model when it changes); a captured CUDA graph keeps the strategy it was
    captured with until it is recaptured."""
    global _code
    if name not in BACKENDS:
        raise ValueError(f"kanext.set_backend: expected one of {BACKENDS}, got {name!r}")
    old, _code = BACKENDS[_code], BACKENDS.index(name)
    return old


def get_backend() -> str:
    """The current CUDA strategy ("auto" unless set_backend changed it)."""
    return BACKENDS[_code]


def backend_code() -> int:
    """The current strategy as the kan_linear ops' ``backend`` argument (0 auto, 1 local, 2 tensor_core, 3 local_v2, 4 tensor_core_v2)."""
    return _code


@contextlib.contextmanager
def use_backend(name: str):
    """Context manager: ``with kanext.use_backend("local"): ...`` sets the
    strategy for the block and restores the previous one after it."""
    old = set_backend(name)
    try:
        yield
    finally:
        set_backend(old)
