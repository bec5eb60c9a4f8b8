"""The backward of backend tensor_core_v2 on Hopper's warpgroup MMA in host
emulation: grad x (design T item 6 of docs/roofline.md: step 2,
tc2_ws_grad_x_kernel in csrc/cuda/kan_linear_tc_v2_gx_ws.cuh, what the
backend runs, and step 1, tc2_grad_x_kernel in kan_linear_tc_v2_gx.cuh) and
grad W (item 5: step 2, tc2_ws_grad_w_kernel in kan_linear_tc_v2_gw_ws.cuh,
and step 1, tc2_grad_w_kernel in kan_linear_tc_v2_gw.cuh). Each against the
float64 reference within the TF32 tolerance of test_emu_tc.py, and against
the WMMA kernels (tc_grad_x_kernel, tc_grad_w_kernel) and each other: bit for
bit where they build the same basis values (the same epilogue code, builder
and batch slices, and in emulation the same TF32 products added in the same
order); grad W's step 2 builds uniform grids' bases with the forward's
uniform-grid builder, so there it is compared within that builder's bound
(same_w_as_general). Both steps 2' producer / consumer protocols are also
run deliberately broken, to show that a race or a deadlock is caught.

    python -m pytest tests/emu/test_emu_tc_v2_backward.py -m emu -q

What this cannot show: that the GPU agrees with the emulator's reading of
the wgmma ISA (test_emu_tc_v2.py checks that reading by hand). No GPU has
run any of it.
"""
from __future__ import annotations

import ctypes
import math
import sys

import pytest
import torch

import emulator as emu
from emulator import BASES, knot_x, p, poisoned
from helpers import assert_tc_close as check
from helpers import dense_in_dtype as dense_torch
from test_emu_tc import TC_DTYPES, exact, rounded_case, tc_backward
from test_emu_tc_v2_ws import OP_ULP, OUT_ULP, moved_knot, run_snippet, uniform_inputs

from kanext import ops
from kanext import reference as ref

pytestmark = pytest.mark.emu

FAULT_SKIP_FULL_WAIT, FAULT_NO_EMPTY_ARRIVE = 1, 2  # tc2::kFault* in kan_linear_tc_v2_ws.cuh


def lib():
    L = emu.lib()
    if not getattr(L, "_gx_ready", False):
        i64, i32, vp, sz = ctypes.c_int64, ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t
        L.emu_tc_v2_grad_x.argtypes = [i32, vp, vp, vp, i64, i64, i64, i32, i32, vp, vp, i64, vp, i32, i32]
        L.emu_tc_v2_grad_w.argtypes = [i32, vp, vp, vp, i64, i64, i64, i32, i32, i64, vp, vp, vp, sz]
        L.emu_tc_v2_grad_w_fault.argtypes = [i32, vp, vp, vp, i64, i64, i64, i32, i32, i64, vp, vp, vp]
        L.emu_tc_v2_grad_w_step1.argtypes = [vp, vp, vp, i64, i64, i64, i32, i32, i64, vp, vp, vp]
        L.emu_tc_v2_grad_w_workspace_bytes.argtypes = [i32, i64, i64, i64, i32, i32, i64]
        L.emu_tc_v2_grad_w_workspace_bytes.restype = sz
        L.emu_tc_workspace_bytes.argtypes = [i64, i64, i64, i32, i32, i64, i32]
        L.emu_tc_workspace_bytes.restype = sz
        L._gx_ready = True
    return L


def v2_grad_x(gy, x, grid, k, base, Wb, Wc, fault=0, step1=False, check_step1=True):
    """Step 2 (tc2_ws_grad_x_kernel, what tensor_core_v2 runs; its operand
    images in a NaN-poisoned workspace), checked bit for bit against step 1
    (tc2_grad_x_kernel) unless asked not to; or step 1 itself (step1)."""
    gy, x, Wb, Wc = (t.contiguous() for t in (gy, x, Wb, Wc))
    grid = grid.float().contiguous()
    N, inf = x.shape
    out, M = Wb.shape[1], grid.shape[1]
    gx = poisoned(x.shape, x.dtype)  # an item the kernel does not write stays NaN
    rc = lib().emu_tc_v2_grad_x(TC_DTYPES[x.dtype], p(gy), p(x), p(grid), N, inf, M, k, base, p(Wb), p(Wc), out,
                                p(gx), fault, int(step1))
    assert rc == 0
    if not step1 and not fault and check_step1 and x.dtype == torch.float32:  # step 1 is float32 only
        same_bits(gx, v2_grad_x(gy, x, grid, k, base, Wb, Wc, step1=True))
    return gx


def wmma_grad_x(gy, x, grid, k, base, Wb, Wc):
    return tc_backward(gy, x, grid, k, base, Wb, Wc, need_x=True, need_w=False)[0]


def same_bits(a, b):
    assert a.dtype == b.dtype
    assert torch.equal(torch.isnan(a), torch.isnan(b))
    fin = ~torch.isnan(a)
    bits = torch.int32 if a.element_size() == 4 else torch.int16
    assert torch.equal(a[fin].view(bits), b[fin].view(bits)), (a - b).abs().max()


# (N, in, out): one element; partial row tiles and more than one; an odd
# number of chunks (the last tile holds one); outputs not a multiple of 64,
# and more than one 64-output step.
SHAPES = [(1, 1, 1), (70, 7, 5), (130, 9, 40), (33, 17, 130), (257, 3, 65)]
# nb1 <= 64 (several inputs per chunk), = 64 for k = 3 with a base, > 64:
# an input over 2 chunks (one tile) or 3 (two tiles, the second half full)
GRIDS = [(1, "uniform"), (5, "nonuniform"), (60, "skewed"), (130, "uniform")]


def cases(k, shape, grids, dtype=torch.float32):
    """One case per grid of `grids`, the basis function rotating with k:
    (tag, x, grid, base name, Wb, Wc, gy)."""
    N, inf, out = shape
    for gi, (G, kind) in enumerate(grids):
        base = list(BASES)[(gi + k) % 3]
        x, grid, Wb, Wc, gy = rounded_case(dtype, k, G, kind, N, inf, out, seed=N + inf + out + 7 * k + G)
        yield f"k={k} G={G} {kind} base={base}", x, grid, base, Wb, Wc, gy


@pytest.mark.parametrize("k", (1, 3, 5))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_grad_x(k, shape):
    for tag, x, grid, base, Wb, Wc, gy in cases(k, shape, GRIDS):
        e_gx = exact(x, grid, k, base, Wb, Wc, gy)[3]
        d_gx = dense_torch(x, grid, k, base, Wb, Wc, gy)[3]
        gx = v2_grad_x(gy, x, grid, k, BASES[base], Wb, Wc)
        check(f"gx {tag}", gx, e_gx, d_gx, torch.float32)
        same_bits(gx, wmma_grad_x(gy, x, grid, k, BASES[base], Wb, Wc))


def test_grad_x_k0_and_outside_grid():
    """k = 0 (the bases are steps: only the base term has a derivative) and
    x well outside the grid."""
    for k in (0, 3):
        x, grid, Wb, Wc, gy = rounded_case(torch.float32, k, 5, "nonuniform", 50, 6, 20, seed=31 + k)
        x[::3] = x[::3] * 40.0 + 7.0
        e_gx = exact(x, grid, k, "silu", Wb, Wc, gy)[3]
        d_gx = dense_torch(x, grid, k, "silu", Wb, Wc, gy)[3]
        gx = v2_grad_x(gy, x, grid, k, BASES["silu"], Wb, Wc)
        check(f"gx k={k}", gx, e_gx, d_gx, torch.float32)
        same_bits(gx, wmma_grad_x(gy, x, grid, k, BASES["silu"], Wb, Wc))


def test_grad_x_nan_inf_policy():
    """NaN where the CPU op has NaN: at a NaN x, and at +-inf x, where the
    derivative of the silu base is inf * 0; the finite rows as the
    reference."""
    for G in (5, 70):  # one chunk holds several inputs, or one input spans two
        x, grid, Wb, Wc, gy = rounded_case(torch.float32, 3, G, "uniform", 40, 6, 9, seed=3)
        x[4, 2] = math.nan
        x[9, 0] = math.nan
        x[7, 1] = math.inf
        x[8, 3] = -math.inf
        gx = v2_grad_x(gy, x, grid, 3, 2, Wb, Wc)
        cgx = ops.kan_linear_backward(gy, x, grid, 3, 2, Wb, Wc)[0]
        assert torch.equal(torch.isnan(gx), torch.isnan(cgx)) and torch.isnan(gx[[4, 9], [2, 0]]).all()
        same_bits(gx, wmma_grad_x(gy, x, grid, 3, 2, Wb, Wc))
        fin = torch.isfinite(x).all(1)
        clean = exact(x[fin], grid, 3, "silu", Wb, Wc, gy[fin])[3]
        dense = dense_torch(x[fin], grid, 3, "silu", Wb, Wc, gy[fin])[3]
        check(f"gx finite rows G={G}", gx[fin], clean, dense, torch.float32)


def test_grad_x_grid_stride(monkeypatch):
    """At most 2 blocks per grid dimension: the kernel's row-tile and group
    loops run (3 row tiles; 3 chunk pairs, or 3 inputs of 2 tiles each)."""
    monkeypatch.setenv("EMU_MAX_GRID", "2")
    for G in (6, 200):
        x, grid, Wb, Wc, gy = rounded_case(torch.float32, 2, G, "nonuniform", 300, 3 if G > 64 else 40, 70, seed=5)
        e = exact(x, grid, 2, "identity", Wb, Wc, gy)[3]
        d = dense_torch(x, grid, 2, "identity", Wb, Wc, gy)[3]
        gx = v2_grad_x(gy, x, grid, 2, BASES["identity"], Wb, Wc)
        check(f"gx G={G}", gx, e, d, torch.float32)
        same_bits(gx, wmma_grad_x(gy, x, grid, 2, BASES["identity"], Wb, Wc))


def test_grad_x_unaligned_rows_same_bits():
    """out % 4 == 0 and 16-byte aligned rows: 16-byte loads; the same case
    with gy one float off that alignment: 4-byte loads (as for out % 4 != 0
    in the cases above). The same bits, and the reference's values."""
    x, grid, Wb, Wc, gy = rounded_case(torch.float32, 3, 5, "nonuniform", 130, 9, 68, seed=41)
    assert gy.data_ptr() % 16 == 0
    a = v2_grad_x(gy, x, grid, 3, 2, Wb, Wc)
    off = torch.empty(gy.numel() + 1)[1:].view_as(gy).copy_(gy)
    assert off.data_ptr() % 16 == 4
    same_bits(v2_grad_x(off, x, grid, 3, 2, Wb, Wc), a)
    check("gx", a, exact(x, grid, 3, "silu", Wb, Wc, gy)[3], dense_torch(x, grid, 3, "silu", Wb, Wc, gy)[3],
          torch.float32)


def test_grad_x_wide_inputs_ring_and_stride(monkeypatch):
    """Step 2's ring over many output steps (out = 300: 5 steps per tile, the
    ring's 2 stages wrap; the count carries over tiles and groups), inputs
    over two and three chunks (the epilogue's running sum across tiles), two
    blocks per grid dimension: step 1's bits and the reference."""
    monkeypatch.setenv("EMU_MAX_GRID", "2")
    for G, inf in ((5, 20), (60, 3), (130, 2)):
        x, grid, Wb, Wc, gy = rounded_case(torch.float32, 3, G, "nonuniform", 300, inf, 300, seed=G)
        gx = v2_grad_x(gy, x, grid, 3, BASES["silu"], Wb, Wc)
        check(f"gx G={G}", gx, exact(x, grid, 3, "silu", Wb, Wc, gy)[3], dense_torch(x, grid, 3, "silu", Wb, Wc, gy)[3],
              torch.float32)


# ------------------------------------------------------ 16-bit storage (k16)
# bfloat16 / float16: the same kernel on 16-bit operand images (16 KB, the
# values copied as they are), four k16 wgmmas per 64-output step, and the
# epilogue in the dtype (tc::grad_x_epilogue<T>). In emulation the WMMA grad
# x adds the same exact products in the same order (outputs in order), and
# the epilogue is the same code: its bits, on every grid.
HALF = (torch.bfloat16, torch.float16)


def check_16bit_grad_x(tag, dtype, gy, x, grid, k, base, Wb, Wc):
    gx = v2_grad_x(gy, x, grid, k, BASES[base], Wb, Wc)
    assert gx.dtype == dtype
    check(tag, gx, exact(x, grid, k, base, Wb, Wc, gy)[3], dense_torch(x, grid, k, base, Wb, Wc, gy)[3], dtype)
    same_bits(gx, wmma_grad_x(gy, x, grid, k, BASES[base], Wb, Wc))
    return gx


@pytest.mark.parametrize("dtype", HALF, ids=("bf16", "f16"))
def test_grad_x_16bit_unaligned_rows_same_bits(dtype):
    """out % 8 == 0 and 16-byte aligned rows: one 16-byte load per image
    group; gy one element off that alignment: eight 2-byte loads. The same
    bits."""
    x, grid, Wb, Wc, gy = rounded_case(dtype, 3, 5, "nonuniform", 130, 9, 72, seed=41)
    assert gy.data_ptr() % 16 == 0
    a = check_16bit_grad_x(f"gx {dtype}", dtype, gy, x, grid, 3, "silu", Wb, Wc)
    off = torch.empty(gy.numel() + 1, dtype=dtype)[1:].view_as(gy).copy_(gy)
    assert off.data_ptr() % 16 == 2
    same_bits(v2_grad_x(off, x, grid, 3, 2, Wb, Wc), a)


@pytest.mark.parametrize("dtype", HALF, ids=("bf16", "f16"))
def test_grad_x_16bit_ring_stride_and_policy(dtype, monkeypatch):
    """The ring over 5 output steps per tile, inputs over one and three
    chunks, two blocks per grid dimension; then the NaN / inf policy."""
    monkeypatch.setenv("EMU_MAX_GRID", "2")
    for G, inf in ((5, 20), (130, 2)):
        x, grid, Wb, Wc, gy = rounded_case(dtype, 3, G, "nonuniform", 300, inf, 300, seed=G)
        check_16bit_grad_x(f"gx {dtype} G={G}", dtype, gy, x, grid, 3, "silu", Wb, Wc)
    x, grid, Wb, Wc, gy = rounded_case(dtype, 3, 5, "uniform", 40, 6, 9, seed=3)
    x[4, 2], x[9, 0], x[7, 1], x[8, 3] = math.nan, math.nan, math.inf, -math.inf
    gx = v2_grad_x(gy, x, grid, 3, 2, Wb, Wc)
    cgx = ops.kan_linear_backward(gy.float(), x.float(), grid, 3, 2, Wb.float(), Wc.float())[0]
    assert torch.equal(torch.isnan(gx), torch.isnan(cgx)) and torch.isnan(gx[[4, 9], [2, 0]]).all()
    same_bits(gx, wmma_grad_x(gy, x, grid, 3, 2, Wb, Wc))


def test_grad_x_empty_sizes():
    """Empty batch or inputs: nothing to write, and nothing written outside."""
    for N, inf in ((0, 3), (5, 0)):
        x, grid, Wb, Wc, gy = rounded_case(torch.float32, 3, 5, "uniform", max(N, 1), max(inf, 1), 4, seed=1)
        x, gy, Wb, Wc, grid = x[:N, :inf], gy[:N], Wb[:inf], Wc[:inf], grid[:max(inf, 1)]
        assert v2_grad_x(gy, x, grid, 3, 2, Wb, Wc).shape == (N, inf)



# ---------------------------------------------------------------- grad W
def nan_bytes(nbytes):
    """A 16-byte aligned buffer of 0xFF bytes: NaN as float32, bfloat16 and
    float16 alike."""
    return torch.full((max(nbytes, 16) // 4 + 1,), -1, dtype=torch.int32)


def v2_grad_w(gy, x, grid, k, base, Wb, Wc, fault=0):
    """Step 2 (tc2_ws_grad_w_kernel, what tensor_core_v2 runs) in x's dtype:
    (gWb, gWc, the partials' bytes); outputs and the whole workspace start as
    NaN."""
    gy, x = gy.contiguous(), x.contiguous()
    grid = grid.float().contiguous()
    N, inf = x.shape
    out, M = Wb.shape[1], grid.shape[1]
    gWb, gWc = poisoned(Wb.shape, x.dtype), poisoned(Wc.shape, x.dtype)
    wsb = lib().emu_tc_v2_grad_w_workspace_bytes(TC_DTYPES[x.dtype], N, inf, M, k, base, out)
    ws = nan_bytes(wsb)
    assert ws.data_ptr() % 16 == 0
    if fault:
        rc = lib().emu_tc_v2_grad_w_fault(fault, p(gy), p(x), p(grid), N, inf, M, k, base, out, p(gWb), p(gWc),
                                          p(ws))
    else:
        rc = lib().emu_tc_v2_grad_w(TC_DTYPES[x.dtype], p(gy), p(x), p(grid), N, inf, M, k, base, out, p(gWb), p(gWc),
                                    p(ws), wsb)
    assert rc == 0
    return gWb, gWc, lib().emu_tc_workspace_bytes(N, inf, M, k, base, out, 1)


def step1_grad_w(gy, x, grid, k, base, Wb, Wc):
    """The first step (tc2_grad_w_kernel: all threads stage, no ring)."""
    gy, x = gy.contiguous(), x.contiguous()
    grid = grid.float().contiguous()
    N, inf = x.shape
    out, M = Wb.shape[1], grid.shape[1]
    gWb, gWc = poisoned(Wb.shape, x.dtype), poisoned(Wc.shape, x.dtype)
    wsb = lib().emu_tc_workspace_bytes(N, inf, M, k, base, out, 1)
    ws = torch.full((max(wsb, 4) // 4,), math.nan)
    assert lib().emu_tc_v2_grad_w_step1(p(gy), p(x), p(grid), N, inf, M, k, base, out, p(gWb), p(gWc), p(ws)) == 0
    return gWb, gWc


def wmma_grad_w(gy, x, grid, k, base, Wb, Wc):
    return tc_backward(gy, x, grid, k, base, Wb, Wc, need_x=False, need_w=True)[1:3]


def same_w_as_general(w2, w_gen, gy, x, grid, k):
    """Step 2's (gWb, gWc) against the general builder's (step 1 or WMMA):
    grad Wb bit for bit always (b(x) is the same either way); grad Wc bit for
    bit when no input takes the uniform-grid path or k = 0, otherwise the
    same NaN pattern and per element within 2^-9 sum_n |A| |dy| (an A entry
    of the two builders differs by at most one TF32 rounding unit after
    values that differ by float rounding) plus 2 dev_i sum_n |dy| (what a
    grid at tc2::grid_info's tolerance may move a basis: test_emu_tc_v2_ws's
    same_as_general, transposed). For 16-bit storage the unit is the
    dtype's (test_emu_tc_v2_ws.OP_ULP), plus two units of grad W's own
    rounding and float16's subnormal spacing."""
    same_bits(w2[0], w_gen[0])
    if k == 0 or not bool(uniform_inputs(grid).any()):
        same_bits(w2[1], w_gen[1])
        return
    assert torch.equal(torch.isnan(w2[1]), torch.isnan(w_gen[1]))
    g64 = grid.double()
    A = torch.nan_to_num(ref.spline_basis(x.double(), g64, k).abs(), nan=0.0)
    dy = gy.double().abs()
    h = (g64[:, -1] - g64[:, 0]) / (g64.shape[1] - 1)
    dev = 2 * (2.0**-18 + 2.0**-21 * torch.maximum(g64[:, 0].abs(), g64[:, -1].abs()) / h)
    dt = w2[1].dtype
    bound = 2 * OP_ULP[dt] * torch.einsum("nig,nj->igj", A, dy) + 2 * dev[:, None, None] * dy.sum(0)
    if dt != torch.float32:
        bound = bound + 2 * OUT_ULP[dt] * w_gen[1].double().abs() + 2.0**-24
    fin = torch.isfinite(w_gen[1])
    err = (w2[1].double() - w_gen[1].double()).abs()
    assert bool((err[fin] <= bound[fin]).all()), f"max excess {float((err - bound)[fin].max()):.3g}"


def check_case(tag, gy, x, grid, k, base, Wb, Wc):
    gWb, gWc, wsb = v2_grad_w(gy, x, grid, k, BASES[base], Wb, Wc)
    e = exact(x, grid, k, base, Wb, Wc, gy)
    d = dense_torch(x, grid, k, base, Wb, Wc, gy)
    check(f"gWc {tag} ws={wsb}", gWc, e[2], d[2], torch.float32)
    if base != "zero":
        check(f"gWb {tag}", gWb, e[1], d[1], torch.float32)
    else:
        assert torch.equal(gWb, torch.zeros_like(gWb)), "base zero: grad Wb must be 0"
    s1 = step1_grad_w(gy, x, grid, k, BASES[base], Wb, Wc)
    same_w_as_general((gWb, gWc), s1, gy, x, grid, k)
    w = wmma_grad_w(gy, x, grid, k, BASES[base], Wb, Wc)
    same_bits(s1[0], w[0])
    same_bits(s1[1], w[1])
    return wsb


# (N, in, out): one element; partial batch steps and more than one; outputs
# not a multiple of 4, and more than one 256-output tile
W_SHAPES = [(1, 1, 1), (70, 7, 5), (130, 9, 40), (33, 17, 258)]
W_GRIDS = [(1, "uniform"), (5, "nonuniform"), (60, "skewed"), (100, "uniform")]  # nb1 <= 64, = 64, > 64


@pytest.mark.parametrize("k", (1, 3, 5))
@pytest.mark.parametrize("shape", W_SHAPES, ids=str)
def test_grad_w(k, shape):
    for tag, x, grid, base, Wb, Wc, gy in cases(k, shape, W_GRIDS):
        check_case(tag, gy, x, grid, k, base, Wb, Wc)


def test_grad_w_slices_k0_outside_grid():
    """Many batch rows against few (chunk, column) tiles: the batch is cut
    into slices summed by the combine kernel (workspace > 0); k = 0 and x
    far outside the grid too."""
    for k in (0, 3):
        x, grid, Wb, Wc, gy = rounded_case(torch.float32, k, 5, "nonuniform", 2000, 3, 8, seed=11 + k)
        x[::5] = x[::5] * 40.0 + 7.0
        assert check_case(f"k={k}", gy, x, grid, k, "silu", Wb, Wc) > 0, "expected a multi-slice plan"


def test_grad_w_nan_inf_policy():
    """A NaN x adds nothing to the weights; NaN where the CPU op has NaN."""
    x, grid, Wb, Wc, gy = rounded_case(torch.float32, 3, 5, "uniform", 40, 6, 9, seed=3)
    x[4, 2] = math.nan
    x[9, 0] = math.nan
    x[7, 1] = math.inf
    x[8, 3] = -math.inf
    gWb, gWc, _ = v2_grad_w(gy, x, grid, 3, 2, Wb, Wc)
    c = ops.kan_linear_backward(gy, x, grid, 3, 2, Wb, Wc)
    assert torch.equal(torch.isnan(gWb), torch.isnan(c[1])) and torch.equal(torch.isnan(gWc), torch.isnan(c[2]))
    same_w_as_general((gWb, gWc), wmma_grad_w(gy, x, grid, 3, 2, Wb, Wc), gy, x, grid, 3)
    assert torch.isfinite(gWc[[0, 2]]).all(), "a NaN x adds nothing (not NaN) to its input's spline weights"
    gn = moved_knot(grid, 2, 3, 2.0**-12)  # input 2 off the uniform path: its rows through the general builder
    gWb, gWc, _ = v2_grad_w(gy, x, gn, 3, 2, Wb, Wc)
    same_w_as_general((gWb, gWc), wmma_grad_w(gy, x, gn, 3, 2, Wb, Wc), gy, x, gn, 3)
    assert torch.isfinite(gWc[2]).all()


def test_grad_w_grid_stride_and_unaligned(monkeypatch):
    """At most 2 blocks per grid dimension (3 chunks, 2 column tiles); and
    gy one float off its 16-byte alignment: 4-byte loads, the same bits."""
    monkeypatch.setenv("EMU_MAX_GRID", "2")
    x, grid, Wb, Wc, gy = rounded_case(torch.float32, 2, 6, "nonuniform", 300, 20, 300, seed=5)
    check_case("stride", gy, x, grid, 2, "identity", Wb, Wc)
    a = v2_grad_w(gy, x, grid, 2, 1, Wb, Wc)
    off = torch.empty(gy.numel() + 1)[1:].view_as(gy).copy_(gy)
    assert gy.data_ptr() % 16 == 0 and off.data_ptr() % 16 == 4
    b = v2_grad_w(off, x, grid, 2, 1, Wb, Wc)
    same_bits(a[0], b[0])
    same_bits(a[1], b[1])


def test_grad_w_empty_sizes():
    """Empty batch: grad W = 0 (written, not left as NaN); empty out or in:
    nothing to write."""
    x, grid, Wb, Wc, gy = rounded_case(torch.float32, 3, 5, "uniform", 1, 3, 4, seed=1)
    gWb, gWc, _ = v2_grad_w(gy[:0], x[:0], grid, 3, 2, Wb, Wc)
    w = wmma_grad_w(gy[:0], x[:0], grid, 3, 2, Wb, Wc)
    assert torch.isnan(gWb).all() == torch.isnan(w[0]).all()
    for N, inf, out in ((5, 3, 0), (5, 0, 4)):
        x, grid, Wb, Wc, gy = rounded_case(torch.float32, 3, 5, "uniform", N, max(inf, 1), max(out, 1), seed=1)
        x, gy, Wb, Wc, grid = x[:, :inf], gy[:, :out], Wb[:inf, :out], Wc[:inf, :, :out], grid[:max(inf, 1)]
        gWb, gWc, _ = v2_grad_w(gy, x, grid, 3, 2, Wb, Wc)
        assert gWb.shape == Wb.shape and gWc.shape == Wc.shape


# ------------------------------------------------------ 16-bit storage (k16)
# bfloat16 / float16: 16-bit A^T tiles (8 KB) and dy^T images (32 KB), four
# k16 wgmmas per 64-row step, grad W (or the float32 partials) in the dtype.
# In emulation the WMMA grad W adds the same exact products in the same
# order (batch rows in order, the same slices): its bits on general grids,
# within same_w_as_general's bound where the uniform-grid builder runs.
def check_case_16bit(tag, dtype, gy, x, grid, k, base, Wb, Wc):
    gWb, gWc, wsb = v2_grad_w(gy, x, grid, k, BASES[base], Wb, Wc)
    assert gWb.dtype == gWc.dtype == dtype
    e = exact(x, grid, k, base, Wb, Wc, gy)
    d = dense_torch(x, grid, k, base, Wb, Wc, gy)
    check(f"gWc {dtype} {tag} ws={wsb}", gWc, e[2], d[2], dtype)
    if base != "zero":
        check(f"gWb {dtype} {tag}", gWb, e[1], d[1], dtype)
    else:
        assert torch.equal(gWb, torch.zeros_like(gWb)), "base zero: grad Wb must be 0"
    same_w_as_general((gWb, gWc), wmma_grad_w(gy, x, grid, k, BASES[base], Wb, Wc), gy, x, grid, k)
    return wsb


# grad x on the float32 suite's shapes and grids, grad W on its own
@pytest.mark.parametrize("dtype", HALF, ids=("bf16", "f16"))
@pytest.mark.parametrize("k", (0, 3, 5))
@pytest.mark.parametrize("which,shape", [("x", s) for s in SHAPES] + [("w", s) for s in W_SHAPES], ids=str)
def test_backward_16bit_shapes(dtype, k, which, shape):
    grids, check_one = (GRIDS, check_16bit_grad_x) if which == "x" else (W_GRIDS, check_case_16bit)
    for tag, x, grid, base, Wb, Wc, gy in cases(k, shape, grids, dtype):
        check_one(f"{which} {tag}", dtype, gy, x, grid, k, base, Wb, Wc)


@pytest.mark.parametrize("dtype", HALF, ids=("bf16", "f16"))
def test_grad_w_16bit_slices_stride_and_policy(dtype, monkeypatch):
    """The batch cut into slices (float32 partials, combined in the dtype);
    two blocks per grid dimension; the NaN / inf policy; and the general
    builder's bits (non-uniform knots) against the WMMA grad W."""
    x, grid, Wb, Wc, gy = rounded_case(dtype, 3, 5, "nonuniform", 2000, 3, 8, seed=11)
    x[::5] = (x[::5].float() * 40.0 + 7.0).to(dtype)
    assert check_case_16bit("slices", dtype, gy, x, grid, 3, "silu", Wb, Wc) > 0, "expected a multi-slice plan"
    assert not bool(uniform_inputs(grid).any())  # so same_w_as_general compared bits
    x, grid, Wb, Wc, gy = rounded_case(dtype, 3, 5, "uniform", 40, 6, 9, seed=3)
    x[4, 2], x[9, 0], x[7, 1], x[8, 3] = math.nan, math.nan, math.inf, -math.inf
    gWb, gWc, _ = v2_grad_w(gy, x, grid, 3, 2, Wb, Wc)
    c = ops.kan_linear_backward(gy.float(), x.float(), grid, 3, 2, Wb.float(), Wc.float())
    assert torch.equal(torch.isnan(gWb), torch.isnan(c[1])) and torch.equal(torch.isnan(gWc), torch.isnan(c[2]))
    same_w_as_general((gWb, gWc), wmma_grad_w(gy, x, grid, 3, 2, Wb, Wc), gy, x, grid, 3)
    monkeypatch.setenv("EMU_MAX_GRID", "2")
    x, grid, Wb, Wc, gy = rounded_case(dtype, 2, 6, "nonuniform", 300, 20, 300, seed=5)
    check_case_16bit("stride", dtype, gy, x, grid, 2, "identity", Wb, Wc)


def test_grad_w_uniform_fast_path_runs():
    """The producer does build uniform inputs by uniform_window: on a uniform
    grid at k = 3 grad Wc differs from step 1's somewhere (within the
    bound), while on a grid just past the tolerance it is step 1's bits; and
    uniform and general inputs alternating inside a chunk, and an input over
    two chunks (nb1 > 64) with x on the knots, each within the bound."""
    x, grid, Wb, Wc, gy = rounded_case(torch.float32, 3, 5, "uniform", 130, 7, 20, seed=4)
    assert bool(uniform_inputs(grid).all())
    w2 = v2_grad_w(gy, x, grid, 3, 2, Wb, Wc)
    s1 = step1_grad_w(gy, x, grid, 3, 2, Wb, Wc)
    assert not torch.equal(w2[1], s1[1])
    check_case("uniform", gy, x, grid, 3, "silu", Wb, Wc)
    off = grid.float().clone()
    for i in range(off.shape[0]):
        off = moved_knot(off, i, 3, 2.0**-12)
    assert not bool(uniform_inputs(off).any())
    w2 = v2_grad_w(gy, x, off, 3, 2, Wb, Wc)
    s1 = step1_grad_w(gy, x, off, 3, 2, Wb, Wc)
    same_bits(w2[0], s1[0])
    same_bits(w2[1], s1[1])
    # mixed inputs in one chunk
    gn = rounded_case(torch.float32, 3, 5, "nonuniform", 1, 7, 1, seed=42)[1]
    mixed = grid.float().clone()
    mixed[1::2] = gn.float()[1::2]
    assert uniform_inputs(mixed).tolist() == [True, False] * 3 + [True]
    xm = torch.cat([knot_x(mixed), x])
    gym = torch.cat([gy] * 2)[: xm.shape[0]]
    check_case("mixed", gym, xm, mixed, 3, "zero", Wb, Wc)
    # nb1 > 64: one input over two chunks, x on its knots
    x, grid, Wb, Wc, gy = rounded_case(torch.float32, 3, 60, "uniform", 70, 3, 9, seed=6)
    xk = torch.cat([knot_x(grid.float()), x])
    gyk = torch.cat([gy] * 4)[: xk.shape[0]]
    check_case("G=60 knots", gyk, xk, grid, 3, "identity", Wb, Wc)


# The broken protocols run in a subprocess: the emulator may abort the process.
FAULTY = """
import sys, torch
sys.path[:0] = [{here!r}, {tests!r}, {root!r}]
from test_emu_tc import rounded_case
from test_emu_tc_v2_backward import v2_grad_w, v2_grad_x
x, grid, Wb, Wc, gy = rounded_case(torch.float32, 3, 5, "nonuniform", {N}, {inf}, {out}, seed=2)
if "{which}" == "w":
    gWb, gWc, _ = v2_grad_w(gy, x, grid, 3, 2, Wb, Wc, fault={fault})
    nan = torch.isnan(gWc).any() or torch.isnan(gWb).any()
else:
    nan = torch.isnan(v2_grad_x(gy, x, grid, 3, 2, Wb, Wc, fault={fault})).any()
print("returned nan=%d" % int(nan))
"""


def run_faulty(fault, N, inf, out, which="w"):
    return run_snippet(FAULTY, N=N, inf=inf, out=out, fault=fault, which=which)


@pytest.mark.parametrize("which,cases", (("w", ((70, 3, 30), (200, 20, 10))), ("x", ((70, 3, 130), (200, 20, 10)))))
def test_skipping_the_full_wait_is_caught(which, cases):
    """Consumers (grad W's or grad x's step 2) that skip the wait on full
    either read a stage before its bulk copies land (poisoned shared memory:
    NaN in the gradient) or, by the emulator's schedule, complete an empty
    phase early and deadlock, which the emulator reports. The same cases with
    the wait are clean. (grad W: 2 steps and 1 chunk, 4 steps and 3 chunks;
    grad x: 3 output steps, 1 step and 2 groups.)"""
    for N, inf, out in cases:
        r = run_faulty(FAULT_SKIP_FULL_WAIT, N, inf, out, which)
        aborted = r.returncode != 0 and "emu" in r.stderr and "returned" not in r.stdout
        assert aborted or (r.returncode == 0 and "returned nan=1" in r.stdout), (r.stdout, r.stderr[-2000:])
        ok = run_faulty(0, N, inf, out, which)
        assert ok.returncode == 0 and "returned nan=0" in ok.stdout, ok.stderr[-2000:]


@pytest.mark.parametrize("which,shape", (("w", (320, 3, 10)), ("x", (20, 3, 320))))
def test_consumers_that_never_release_a_stage_deadlock_and_are_caught(which, shape):
    """Consumers that never arrive on empty: with more steps than stages the
    producer waits for a stage that is never released; the emulator's
    deadlock detection aborts the process instead of hanging."""
    r = run_faulty(FAULT_NO_EMPTY_ARRIVE, *shape, which)
    assert r.returncode != 0 and "returned" not in r.stdout
    assert "every runnable thread spins on a wait that nothing can complete" in r.stderr


def test_grad_w_workspace_checks():
    """A workspace one byte short of what the launcher asks for, or not
    16-byte aligned (the bulk copies' rule), is refused
    (cudaErrorInvalidValue) before anything runs."""
    x, grid, Wb, Wc, gy = rounded_case(torch.float32, 3, 5, "nonuniform", 130, 7, 20, seed=4)
    N, inf = x.shape
    out, M = Wb.shape[1], grid.shape[1]
    gWb, gWc = poisoned(Wb.shape, x.dtype), poisoned(Wc.shape, x.dtype)
    wsb = lib().emu_tc_v2_grad_w_workspace_bytes(0, N, inf, M, 3, 2, out)
    assert wsb >= 130 * 20 * 4
    ws = torch.full((wsb // 4 + 4,), math.nan)
    args = (0, p(gy), p(x), p(grid.float().contiguous()), N, inf, M, 3, 2, out, p(gWb), p(gWc))
    assert lib().emu_tc_v2_grad_w(*args, p(ws), wsb - 1) == 1
    assert lib().emu_tc_v2_grad_w(*args, ws.data_ptr() + 4, wsb) == 1
    assert torch.isnan(gWc).all(), "nothing written"
    assert lib().emu_tc_v2_grad_w(*args, p(ws), wsb) == 0
    assert not torch.isnan(gWc).any()


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider", *sys.argv[1:]]))
