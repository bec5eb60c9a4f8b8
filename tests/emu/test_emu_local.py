"""The local-support CUDA kernels (spline_basis, kan_linear forward/backward,
fold) in host emulation against kanext.reference and the CPU ops; see
tests/emu/emulator.py. Marked ``emu``: run with ``bash scripts/emu_check.sh``
or ``python -m pytest tests/emu -m emu``."""
from __future__ import annotations

import math

import pytest
import torch
from emulator import (
    BASES,
    DTYPES,
    case,
    dn,
    emu_backward,
    emu_basis,
    emu_fold,
    emu_fold_backward,
    emu_forward,
    lib,
    ref,
    ref_grads,
)
from helpers import TOL, assert_bitwise_equal, assert_close, randn

from kanext import ops

@pytest.mark.parametrize("kind", ("uniform", "nonuniform", "skewed"))
@pytest.mark.parametrize("G", (1, 5, 20, 100))
@pytest.mark.parametrize("k", range(6))
@pytest.mark.parametrize("dtype", DTYPES, ids=dn)
def test_spline_basis(dtype, k, G, kind):
    x, grid, *_ = case(dtype, k, G, kind, 61, 5, 1, seed=7 * G + k)
    for deriv in (False, True):
        got = emu_basis(x, grid, k, deriv)
        fn = ref.spline_basis_deriv if deriv else ref.spline_basis
        assert_close(got, fn(x.double(), grid.double(), k), TOL[dtype], msg=f"basis deriv={deriv}")
        cpu = (ops.spline_basis_deriv if deriv else ops.spline_basis)(x, grid, k)
        assert_close(got, cpu, TOL[dtype], msg="vs CPU op")


@pytest.mark.parametrize("shape", [(1, 1, 1), (70, 7, 5), (130, 9, 64), (65, 17, 37), (3, 40, 130)])
@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("k", range(6))
@pytest.mark.parametrize("dtype", DTYPES, ids=dn)
def test_forward(dtype, k, base, shape):
    N, inf, out = shape
    for G, kind in ((1, "uniform"), (5, "nonuniform"), (100, "skewed")):
        x, grid, Wb, Wc, _ = case(dtype, k, G, kind, N, inf, out, seed=N + 3 * inf + out + 11 * k + G)
        y = emu_forward(x, grid, k, BASES[base], Wb, Wc)
        exp = ref.kan_linear(x.double(), grid.double(), k, base, Wb.double(), Wc.double())
        assert_close(y, exp, TOL[dtype], msg=f"forward G={G} {kind} {shape}")
        assert_close(y, ops.kan_linear(x, grid, k, base, Wb, Wc), TOL[dtype], msg="vs CPU op")


@pytest.mark.parametrize("shape", [(1, 1, 1), (70, 7, 5), (130, 9, 64), (65, 33, 37), (3, 40, 300), (1100, 3, 2)])
@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("k", (0, 1, 3, 5))
@pytest.mark.parametrize("dtype", DTYPES, ids=dn)
def test_backward(dtype, k, base, shape):
    N, inf, out = shape
    for G, kind in ((1, "uniform"), (5, "nonuniform"), (100, "skewed")):
        x, grid, Wb, Wc, gy = case(dtype, k, G, kind, N, inf, out, seed=N + 5 * inf + out + 13 * k + G)
        gx, gWb, gWc, wsb = emu_backward(gy, x, grid, k, BASES[base], Wb, Wc)
        exp = ref_grads(gy, x, grid, k, base, Wb, Wc)
        cpu = ops.kan_linear_backward(gy, x, grid, k, BASES[base], Wb, Wc)
        for name, a, e, c in zip(("gx", "gWb", "gWc"), (gx, gWb, gWc), exp, cpu):
            fin = torch.isfinite(x).all(1) if name == "gx" else slice(None)
            # rows with +-inf x have inf/NaN base derivatives: compare those to the CPU op only
            assert_close(a[fin], e[fin], TOL[dtype], msg=f"{name} G={G} {kind} {shape} ws={wsb}")
            assert_close(a, c, TOL[dtype], msg=f"{name} vs CPU op G={G} {kind} {shape}")
        for need_x, need_w in ((True, False), (False, True)):
            got = emu_backward(gy, x, grid, k, BASES[base], Wb, Wc, need_x, need_w)[:3]
            for name, a, full, needed in zip(("gx", "gWb", "gWc"), got, (gx, gWb, gWc), (need_x, need_w, need_w)):
                assert_bitwise_equal(a, full if needed else torch.zeros_like(full), f"{name} need={need_x},{need_w}")


def test_backward_uses_slices_and_basis_ranges():
    """The plan splits the batch (small in*out, large N) and the basis rows
    (large G): both paths are exercised, and they are deterministic."""
    L = lib()
    assert L.emu_workspace_bytes(5000, 3, 5 + 7, 3, 2, 8, 1) > 0, "expected a multi-slice plan"
    for dtype, G in ((torch.float64, 100), (torch.float32, 200)):
        x, grid, Wb, Wc, gy = case(dtype, 3, G, "nonuniform", 3000, 4, 3, seed=G)
        a = emu_backward(gy, x, grid, 3, 2, Wb, Wc)
        exp = ref_grads(gy, x, grid, 3, "silu", Wb, Wc)
        for name, got, e in zip(("gWb", "gWc"), a[1:3], exp[1:]):
            assert_close(got, e, TOL[dtype], msg=f"{name} G={G} ws={a[3]}")
        b = emu_backward(gy, x, grid, 3, 2, Wb, Wc)
        for got, again in zip(a[:3], b[:3]):
            assert_bitwise_equal(got, again, "two runs")


def test_grid_stride_loops(monkeypatch):
    """With the grid capped at 2 blocks per dimension, every kernel must loop."""
    monkeypatch.setenv("EMU_MAX_GRID", "2")
    for dtype in DTYPES:
        x, grid, Wb, Wc, gy = case(dtype, 2, 6, "nonuniform", 300, 70, 70, seed=5)
        assert_close(emu_forward(x, grid, 2, 2, Wb, Wc), ref.kan_linear(*(t.double() for t in (x, grid)), 2, "silu",
                                                                           Wb.double(), Wc.double()), TOL[dtype])
        got = emu_backward(gy, x, grid, 2, 2, Wb, Wc)
        for a, e in zip(got[:3], ref_grads(gy, x, grid, 2, "silu", Wb, Wc)):
            fin = torch.isfinite(a) & torch.isfinite(e)
            assert_close(a[fin], e[fin], TOL[dtype], msg="capped grid backward")
        assert_close(emu_basis(x, grid, 2, True), ref.spline_basis_deriv(x.double(), grid.double(), 2), TOL[dtype])
        coef, scale = randn(70, 70, 8, seed=1, dtype=dtype), randn(70, 70, seed=2, dtype=dtype)
        assert_close(emu_fold(coef, scale), ref.fold_spline_weights(coef.double(), scale.double()), TOL[dtype])


@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 5, 8), (7, 33, 40), (2, 70, 1), (4, 3, 103)])
@pytest.mark.parametrize("dtype", DTYPES, ids=dn)
def test_fold(dtype, shape):
    inf, out, nb = shape
    coef, scale = randn(inf, out, nb, seed=sum(shape), dtype=dtype), randn(inf, out, seed=7, dtype=dtype)
    assert_bitwise_equal(emu_fold(coef, scale), ops.fold_spline_weights(coef, scale), "fold vs CPU")
    gW = randn(inf, nb, out, seed=9, dtype=dtype)
    gc, gs = emu_fold_backward(gW, coef, scale)
    cc, cs = torch.ops.kanext.fold_spline_weights_backward(gW, coef, scale)
    assert_bitwise_equal(gc, cc, "grad_coef vs CPU")
    assert_close(gs, cs, TOL[dtype], msg="grad_scale vs CPU")
    c64, s64 = coef.double().requires_grad_(), scale.double().requires_grad_()
    e = torch.autograd.grad(ref.fold_spline_weights(c64, s64), (c64, s64), gW.double())
    assert_close(gc, e[0], TOL[dtype], msg="grad_coef")
    assert_close(gs, e[1], TOL[dtype], msg="grad_scale")


def test_nan_policy():
    for dtype in DTYPES:
        x, grid, Wb, Wc, gy = case(dtype, 3, 5, "nonuniform", 40, 6, 9, seed=3, special=False)
        x[4, 2] = math.nan
        x[9, 0] = math.nan
        x[9, 5] = math.nan
        y = emu_forward(x, grid, 3, 2, Wb, Wc)
        rows = torch.isnan(x).any(1)
        assert bool(torch.isnan(y[rows]).all()) and not bool(torch.isnan(y[~rows]).any())
        gx, gWb, gWc, _ = emu_backward(gy, x, grid, 3, 2, Wb, Wc)
        assert torch.equal(torch.isnan(gx), torch.isnan(x))
        assert not bool(torch.isnan(gWb).any() | torch.isnan(gWc).any())
        assert_close(emu_basis(x, grid, 3, False), ref.spline_basis(x.double(), grid.double(), 3), TOL[dtype])

