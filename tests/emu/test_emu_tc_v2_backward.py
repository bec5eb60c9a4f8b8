"""The backward of backend tensor_core_v2 on Hopper's warpgroup MMA in host
emulation: grad x (tc2_grad_x_kernel, csrc/cuda/kan_linear_tc_v2_gx.cuh;
design T item 6 of docs/roofline.md) and grad W (tc2_grad_w_kernel,
kan_linear_tc_v2_gw.cuh; item 5). Both against the float64 reference within
the TF32 tolerance of test_emu_tc.py, and bit for bit against the WMMA
kernels (tc_grad_x_kernel, tc_grad_w_kernel): the same epilogue code, basis
builder and batch slices, and in emulation the same TF32 products added in
the same order.

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
from emulator import BASES, p, poisoned
from helpers import assert_tc_close as check
from helpers import dense_in_dtype as dense_torch
from test_emu_tc import exact, rounded_case, tc_backward

from kanext import ops

pytestmark = pytest.mark.emu


def lib():
    L = emu.lib()
    if not getattr(L, "_gx_ready", False):
        i64, i32, vp, sz = ctypes.c_int64, ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t
        L.emu_tc_v2_grad_x.argtypes = [vp, vp, vp, i64, i64, i64, i32, i32, vp, vp, i64, vp]
        L.emu_tc_v2_grad_w.argtypes = [vp, vp, vp, i64, i64, i64, i32, i32, i64, vp, vp, vp, sz]
        L.emu_tc_workspace_bytes.argtypes = [i64, i64, i64, i32, i32, i64, i32]
        L.emu_tc_workspace_bytes.restype = sz
        L._gx_ready = True
    return L


def v2_grad_x(gy, x, grid, k, base, Wb, Wc):
    gy, x, Wb, Wc = (t.contiguous() for t in (gy, x, Wb, Wc))
    grid = grid.float().contiguous()
    N, inf = x.shape
    out, M = Wb.shape[1], grid.shape[1]
    gx = poisoned(x.shape, x.dtype)  # an item the kernel does not write stays NaN
    rc = lib().emu_tc_v2_grad_x(p(gy), p(x), p(grid), N, inf, M, k, base, p(Wb), p(Wc), out, p(gx))
    assert rc == 0
    return gx


def wmma_grad_x(gy, x, grid, k, base, Wb, Wc):
    return tc_backward(gy, x, grid, k, base, Wb, Wc, need_x=True, need_w=False)[0]


def same_bits(a, b):
    assert torch.equal(torch.isnan(a), torch.isnan(b))
    fin = ~torch.isnan(a)
    assert torch.equal(a[fin].view(torch.int32), b[fin].view(torch.int32)), (a - b).abs().max()


# (N, in, out): one element; partial row tiles and more than one; an odd
# number of chunks (the last tile holds one); outputs not a multiple of 64,
# and more than one 64-output step.
SHAPES = [(1, 1, 1), (70, 7, 5), (130, 9, 40), (33, 17, 130), (257, 3, 65)]
# nb1 <= 64 (several inputs per chunk), = 64 for k = 3 with a base, > 64:
# an input over 2 chunks (one tile) or 3 (two tiles, the second half full)
GRIDS = [(1, "uniform"), (5, "nonuniform"), (60, "skewed"), (130, "uniform")]


def cases(k, shape, grids):
    """One case per grid of `grids`, the basis function rotating with k:
    (tag, x, grid, base name, Wb, Wc, gy)."""
    N, inf, out = shape
    for gi, (G, kind) in enumerate(grids):
        base = list(BASES)[(gi + k) % 3]
        x, grid, Wb, Wc, gy = rounded_case(torch.float32, k, G, kind, N, inf, out, seed=N + inf + out + 7 * k + G)
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


def test_grad_x_empty_sizes():
    """Empty batch or inputs: nothing to write, and nothing written outside."""
    for N, inf in ((0, 3), (5, 0)):
        x, grid, Wb, Wc, gy = rounded_case(torch.float32, 3, 5, "uniform", max(N, 1), max(inf, 1), 4, seed=1)
        x, gy, Wb, Wc, grid = x[:N, :inf], gy[:N], Wb[:inf], Wc[:inf], grid[:max(inf, 1)]
        assert v2_grad_x(gy, x, grid, 3, 2, Wb, Wc).shape == (N, inf)



# ---------------------------------------------------------------- grad W
def v2_grad_w(gy, x, grid, k, base, Wb, Wc):
    """(gWb, gWc, workspace bytes); outputs and workspace start as NaN."""
    gy, x = gy.contiguous(), x.contiguous()
    grid = grid.float().contiguous()
    N, inf = x.shape
    out, M = Wb.shape[1], grid.shape[1]
    gWb, gWc = poisoned(Wb.shape, x.dtype), poisoned(Wc.shape, x.dtype)
    wsb = lib().emu_tc_workspace_bytes(N, inf, M, k, base, out, 1)
    ws = torch.full((max(wsb, 4) // 4,), math.nan)
    rc = lib().emu_tc_v2_grad_w(p(gy), p(x), p(grid), N, inf, M, k, base, out, p(gWb), p(gWc), p(ws), wsb)
    assert rc == 0
    return gWb, gWc, wsb


def wmma_grad_w(gy, x, grid, k, base, Wb, Wc):
    return tc_backward(gy, x, grid, k, base, Wb, Wc, need_x=False, need_w=True)[1:3]


def check_case(tag, gy, x, grid, k, base, Wb, Wc):
    gWb, gWc, wsb = v2_grad_w(gy, x, grid, k, BASES[base], Wb, Wc)
    e = exact(x, grid, k, base, Wb, Wc, gy)
    d = dense_torch(x, grid, k, base, Wb, Wc, gy)
    check(f"gWc {tag} ws={wsb}", gWc, e[2], d[2], torch.float32)
    if base != "zero":
        check(f"gWb {tag}", gWb, e[1], d[1], torch.float32)
    else:
        assert torch.equal(gWb, torch.zeros_like(gWb)), "base zero: grad Wb must be 0"
    w = wmma_grad_w(gy, x, grid, k, BASES[base], Wb, Wc)
    same_bits(gWb, w[0])
    same_bits(gWc, w[1])
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
    w = wmma_grad_w(gy, x, grid, 3, 2, Wb, Wc)
    same_bits(gWb, w[0])
    same_bits(gWc, w[1])
    assert torch.isfinite(gWc[[0, 2]]).all(), "a NaN x adds nothing (not NaN) to its input's spline weights"


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


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider", *sys.argv[1:]]))
