"""The tensor-core path of kan_linear (csrc/cuda/kan_linear_tc.cuh) in host
emulation (see tests/emu/emulator.py and csrc/cuda/emu/emu_mma.h), against kanext.reference.

    python -m pytest tests/emu/test_emu_tc.py -m emu -q

Tolerances (issue 3; tests/helpers.py assert_tc_close): TF32 (float32
storage) within 5e-3 of the float64 reference, relative to the largest
expected magnitude; bfloat16 and float16 within twice the error of
PyTorch's own dense formulation in that dtype (helpers.dense_in_dtype:
bases computed in float32, rounded to the dtype, one matmul in the dtype),
with one unit of the dtype's rounding at the largest magnitude as the floor.
The reference is evaluated on the same rounded x and weights, so the
comparison measures the kernel, not the rounding of its inputs. What
emulation cannot show: speed, and the hardware's summation order inside an
mma (float32 sums in k order here).
"""
from __future__ import annotations

import ctypes
import math
import sys

import pytest
import torch

import emulator as emu
from emulator import BASES, case, p, poisoned
from helpers import assert_tc_close as check
from helpers import dense_in_dtype as dense_torch

from kanext import ops
from kanext import reference as ref

TC_DTYPES = {torch.float32: 0, torch.bfloat16: 1, torch.float16: 2}


def lib():
    L = emu.lib()
    if not getattr(L, "_tc_ready", False):
        i64, i32, vp, sz = ctypes.c_int64, ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t
        L.emu_tc_forward.argtypes = [i32, vp, vp, i64, i64, i64, i32, i32, vp, vp, i64, vp]
        L.emu_tc_workspace_bytes.argtypes = [i64, i64, i64, i32, i32, i64, i32]
        L.emu_tc_workspace_bytes.restype = sz
        L.emu_tc_backward.argtypes = [i32, vp, vp, vp, i64, i64, i64, i32, i32, vp, vp, i64, i32, i32, vp, vp, vp,
                                      vp, sz]
        L._tc_ready = True
    return L


def tc_forward(x, grid, k, base, Wb, Wc):
    x, Wb, Wc = (t.contiguous() for t in (x, Wb, Wc))
    grid = grid.float().contiguous()
    N, inf = x.shape
    out = Wb.shape[1]
    y = poisoned((N, out), x.dtype)
    rc = lib().emu_tc_forward(TC_DTYPES[x.dtype], p(x), p(grid), N, inf, grid.shape[1], k, base, p(Wb), p(Wc), out,
                              p(y))
    assert rc == 0
    return y


def tc_backward(gy, x, grid, k, base, Wb, Wc, need_x=True, need_w=True):
    gy, x, Wb, Wc = (t.contiguous() for t in (gy, x, Wb, Wc))
    grid = grid.float().contiguous()
    N, inf = x.shape
    out, M = Wb.shape[1], grid.shape[1]
    gx = poisoned(x.shape, x.dtype) if need_x else torch.zeros_like(x)
    gWb = poisoned(Wb.shape, x.dtype) if need_w else torch.zeros_like(Wb)
    gWc = poisoned(Wc.shape, x.dtype) if need_w else torch.zeros_like(Wc)
    wsb = lib().emu_tc_workspace_bytes(N, inf, M, k, base, out, int(need_w))
    ws = torch.full((max(wsb, 4) // 4,), math.nan, dtype=torch.float32)  # poisoned
    rc = lib().emu_tc_backward(TC_DTYPES[x.dtype], p(gy), p(x), p(grid), N, inf, M, k, base, p(Wb), p(Wc), out,
                               int(need_x), int(need_w), p(gx), p(gWb), p(gWc), p(ws), wsb)
    assert rc == 0
    return gx, gWb, gWc, wsb


def rounded_case(dtype, k, G, kind, N, inf, out, seed, special=False):
    """A case from emulator.case in float32, rounded to `dtype`; the grid
    stays float32 (the tensor-core path always reads a float32 grid)."""
    x, grid, Wb, Wc, gy = case(torch.float32, k, G, kind, N, inf, out, seed, special=special)
    return x.to(dtype), grid, Wb.to(dtype), Wc.to(dtype), gy.to(dtype)


def exact(x, grid, k, base, Wb, Wc, gy):
    """float64 reference on the same (rounded) values: y, gWb, gWc, gx."""
    x64, g64, Wb64, Wc64, gy64 = (t.double() for t in (x, grid, Wb, Wc, gy))
    y = ref.kan_linear(x64, g64, k, base, Wb64, Wc64)
    gx, gWb, gWc = emu.ref_grads(gy64, x64, g64, k, base, Wb64, Wc64)
    return y, gWb, gWc, gx


SHAPES = [(1, 1, 1), (70, 7, 5), (130, 9, 40), (33, 17, 130)]
GRIDS = [(1, "uniform"), (5, "nonuniform"), (60, "skewed"), (100, "nonuniform")]  # nb1 <= 64, = 64, > 64


@pytest.mark.parametrize("dtype", list(TC_DTYPES), ids=emu.dn)
@pytest.mark.parametrize("k", (0, 1, 3, 5))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_forward_and_backward(dtype, k, shape):
    N, inf, out = shape
    for gi, (G, kind) in enumerate(GRIDS):
        base = list(BASES)[(gi + k) % 3]
        x, grid, Wb, Wc, gy = rounded_case(dtype, k, G, kind, N, inf, out, seed=N + inf + out + 7 * k + G)
        e_y, e_gWb, e_gWc, e_gx = exact(x, grid, k, base, Wb, Wc, gy)
        d_y, d_gWb, d_gWc, d_gx = dense_torch(x, grid, k, base, Wb, Wc, gy)
        tag = f"G={G} {kind} base={base}"
        check(f"y {tag}", tc_forward(x, grid, k, BASES[base], Wb, Wc), e_y, d_y, dtype)
        gx, gWb, gWc, wsb = tc_backward(gy, x, grid, k, BASES[base], Wb, Wc)
        check(f"gx {tag}", gx, e_gx, d_gx, dtype)
        check(f"gWc {tag} ws={wsb}", gWc, e_gWc, d_gWc, dtype)
        if base != "zero":
            check(f"gWb {tag}", gWb, e_gWb, d_gWb, dtype)
        else:
            assert torch.equal(gWb, torch.zeros_like(gWb)), "base zero: grad Wb must be 0"


def test_need_flags_and_slices():
    """need_x / need_w write only what is asked; a small-width, large-batch
    shape splits the batch into slices (workspace > 0) and still matches the
    one-slice result; two runs agree bit for bit."""
    x, grid, Wb, Wc, gy = rounded_case(torch.bfloat16, 3, 5, "nonuniform", 2000, 3, 4, seed=11)
    L = lib()
    assert L.emu_tc_workspace_bytes(2000, 3, grid.shape[1], 3, 2, 4, 1) > 0, "expected a multi-slice plan"
    a = tc_backward(gy, x, grid, 3, 2, Wb, Wc)
    b = tc_backward(gy, x, grid, 3, 2, Wb, Wc)
    for u, v in zip(a[:3], b[:3]):
        assert torch.equal(u, v)
    e = exact(x, grid, 3, "silu", Wb, Wc, gy)
    d = dense_torch(x, grid, 3, "silu", Wb, Wc, gy)
    check("gWb sliced", a[1], e[1], d[1], torch.bfloat16)
    check("gWc sliced", a[2], e[2], d[2], torch.bfloat16)
    only_x = tc_backward(gy, x, grid, 3, 2, Wb, Wc, True, False)
    only_w = tc_backward(gy, x, grid, 3, 2, Wb, Wc, False, True)
    assert torch.equal(only_x[0], a[0]) and not only_x[1].any() and not only_x[2].any()
    assert torch.equal(only_w[1], a[1]) and torch.equal(only_w[2], a[2]) and not only_w[0].any()


def test_nan_inf_policy():
    """NaN x: the whole output row NaN, grad x NaN there, no contribution to
    the weight gradients; +-inf x: only the base term, as the CPU op."""
    for dtype in TC_DTYPES:
        x, grid, Wb, Wc, gy = rounded_case(dtype, 3, 5, "uniform", 40, 6, 9, seed=3)
        x[4, 2] = math.nan
        x[9, 0] = math.nan
        x[7, 1] = math.inf
        x[8, 3] = -math.inf
        y = tc_forward(x, grid, 3, 2, Wb, Wc)
        cpu = ops.kan_linear(x.float(), grid, 3, "silu", Wb.float(), Wc.float())
        assert torch.equal(torch.isnan(y), torch.isnan(cpu)), dtype
        assert torch.equal(torch.isinf(y), torch.isinf(cpu)), dtype
        gx, gWb, gWc, _ = tc_backward(gy, x, grid, 3, 2, Wb, Wc)
        cgx, cgWb, cgWc = ops.kan_linear_backward(gy.float(), x.float(), grid, 3, 2, Wb.float(), Wc.float())
        for a, c in ((gx, cgx), (gWb, cgWb), (gWc, cgWc)):
            assert torch.equal(torch.isnan(a), torch.isnan(c)), dtype
        fin = torch.isfinite(x).all(1)
        clean = exact(x[fin], grid, 3, "silu", Wb, Wc, gy[fin])
        dense = dense_torch(x[fin], grid, 3, "silu", Wb, Wc, gy[fin])
        check("y finite rows", y[fin], clean[0], dense[0], dtype)
        check("gx finite rows", gx[fin], clean[3], dense[3], dtype)


def test_grid_stride_loops(monkeypatch):
    """With at most 2 blocks per grid dimension every kernel must loop."""
    monkeypatch.setenv("EMU_MAX_GRID", "2")
    x, grid, Wb, Wc, gy = rounded_case(torch.float16, 2, 6, "nonuniform", 300, 20, 300, seed=5)
    e = exact(x, grid, 2, "silu", Wb, Wc, gy)
    d = dense_torch(x, grid, 2, "silu", Wb, Wc, gy)
    check("y", tc_forward(x, grid, 2, 2, Wb, Wc), e[0], d[0], torch.float16)
    gx, gWb, gWc, _ = tc_backward(gy, x, grid, 2, 2, Wb, Wc)
    for name, a, ee, dd in (("gx", gx, e[3], d[3]), ("gWb", gWb, e[1], d[1]), ("gWc", gWc, e[2], d[2])):
        check(name, a, ee, dd, torch.float16)


def test_empty_sizes():
    for N, inf, out in ((0, 3, 4), (5, 3, 0)):
        x, grid, Wb, Wc, gy = rounded_case(torch.bfloat16, 3, 5, "uniform", max(N, 1), inf, max(out, 1), seed=1)
        x, gy, Wb, Wc = x[:N], gy[:N, :out], Wb[:, :out], Wc[..., :out]
        y = tc_forward(x, grid, 3, 2, Wb, Wc)
        assert y.shape == (N, out)
        tc_backward(gy, x, grid, 3, 2, Wb, Wc)  # must not fail nor write out of bounds


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider", *sys.argv[1:]]))
