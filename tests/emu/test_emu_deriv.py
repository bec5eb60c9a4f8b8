"""Runs the CUDA kernels of the derivative ops (csrc/cuda/deriv.cu) in host
emulation and checks them against kanext.reference, on a machine without a
GPU: kan_linear_eval / _transpose / _wgrad, spline_activation_eval / _wgrad,
spline_basis_deriv of orders 2 and up and edge_product / _wgrad (edge_stats'
higher derivatives), with NaN and out-of-grid inputs,
several grid kinds, odd sizes and capped grids (EMU_MAX_GRID: the kernels'
grid-stride loops). Outputs start poisoned (NaN) where the launcher writes
every element.

    python -m pytest tests/emu/test_emu_deriv.py -m emu -q
"""
from __future__ import annotations

import pytest
import torch

from emulator import (BASES, emu_deriv_act_eval, emu_deriv_act_wgrad, emu_deriv_basis, emu_deriv_eval,
                      emu_deriv_transpose, emu_deriv_wgrad, emu_edge_product, emu_edge_product_wgrad)
from helpers import assert_close, magnitude, grid_of_kind, randn, sample_x, seed_of

from kanext import reference as ref

pytestmark = pytest.mark.emu

CASES = [(3, 5, "uniform", 9, 3, 4), (2, 7, "skewed", 40, 35, 130), (5, 3, "nonuniform", 1, 1, 1),
         (1, 2, "uniform", 0, 2, 3)]


def _tol(dtype):
    return 2e-5 if dtype == torch.float32 else 1e-11


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("order", [0, 1, 2, 4])
@pytest.mark.parametrize("base", list(BASES))
@pytest.mark.parametrize("k,G,kind,N,inf,out", CASES)
def test_kan_linear_deriv_kernels(dtype, order, base, k, G, kind, N, inf, out):
    s = seed_of("emud", order, base, k, G, kind, N)
    grid = grid_of_kind(kind, inf, G, k, torch.float64, seed=s)
    x = sample_x(N, grid, seed=s + 1)
    if N > 3:
        x[1, 0] = float("nan")
    v, dy = randn(N, inf, seed=s + 2), randn(N, out, seed=s + 3)
    Wb, Wc = randn(inf, out, seed=s + 4), randn(inf, G + k, out, seed=s + 5)
    c = lambda *ts: [t.to(dtype) for t in ts]  # noqa: E731
    xd, gd, vd, dyd, Wbd, Wcd = c(x, grid, v, dy, Wb, Wc)
    bid = BASES[base]
    for vv, vr in ((None, None), (vd, v)):
        exp = ref.kan_linear_eval(x, vr, grid, k, base, Wb, Wc, order)
        got = emu_deriv_eval(xd, vv, gd, k, bid, Wbd, Wcd, order)
        assert_close(got, exp, _tol(dtype), scale=magnitude(exp))
        eb, ec = ref.kan_linear_wgrad(dy, x, vr, grid, k, base, order)
        gb, gc = emu_deriv_wgrad(dyd, xd, vv, gd, k, bid, order)
        sc = max(magnitude(eb), magnitude(ec))
        assert_close(gb, eb, _tol(dtype), scale=sc * max(1, N) ** 0.5)
        assert_close(gc, ec, _tol(dtype), scale=sc * max(1, N) ** 0.5)
    exp = ref.kan_linear_transpose(dy, x, grid, k, base, Wb, Wc, order)
    got = emu_deriv_transpose(dyd, xd, gd, k, bid, Wbd, Wcd, order)
    assert_close(got, exp, _tol(dtype), scale=magnitude(exp) * out ** 0.5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("base", list(BASES))
def test_spline_activation_deriv_kernels(dtype, order, base):
    k, G, C, N = 3, 6, 130, 21
    s = seed_of("emua", order, base)
    grid = grid_of_kind("nonuniform", C, G, k, torch.float64, seed=s)
    z = sample_x(N, grid, seed=s + 1)
    z[2, 5] = float("nan")
    coef, sb, sp, gy = randn(C, G + k, seed=s + 2), randn(C, seed=s + 3), randn(C, seed=s + 4), randn(N, C, seed=s + 5)
    c = lambda *ts: [t.to(dtype) for t in ts]  # noqa: E731
    exp = ref.spline_activation_eval(z, grid, k, base, coef, sb, sp, order)
    got = emu_deriv_act_eval(*c(z, grid), k, BASES[base], *c(coef, sb, sp), order)
    assert_close(got, exp, _tol(dtype), scale=magnitude(exp))
    eB, eb = ref.spline_activation_wgrad(gy, z, grid, k, base, order)
    gB, gb = emu_deriv_act_wgrad(*c(gy, z, grid), k, BASES[base], order)
    sc = max(magnitude(eB), magnitude(eb)) * N ** 0.5
    assert_close(gB, eB, _tol(dtype), scale=sc)
    assert_close(gb, eb, _tol(dtype), scale=sc)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("order", [2, 3, 5, 7])
@pytest.mark.parametrize("k", [2, 3, 5])
def test_spline_basis_order_kernel(dtype, order, k):
    grid = grid_of_kind("skewed", 3, 5, k, torch.float64, seed=k)
    x = sample_x(300, grid, seed=order)
    x[7, 2] = float("nan")
    exp = ref.spline_basis_deriv(x, grid, k, order)
    exp[7, 2] = 0.0
    got = emu_deriv_basis(x.to(dtype), grid.to(dtype), k, order)
    assert_close(got, exp, _tol(dtype) * 10, scale=float(exp.abs().max()) + 1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("mode,c,a", [(0, 0, 0), (0, 0, 2), (1, 0, 1), (1, 2, 1)])
@pytest.mark.parametrize("base", list(BASES))
@pytest.mark.parametrize("k,G,kind,N,inf,out", CASES)
def test_edge_product_kernels(dtype, mode, c, a, base, k, G, kind, N, inf, out):
    s = seed_of("emue", mode, c, a, base, k, G, kind, N)
    grid = grid_of_kind(kind, inf, G, k, torch.float64, seed=s)
    x = sample_x(N, grid, seed=s + 1)
    if N > 3:
        x[1, 0] = float("nan")
    u = randn(N, inf, seed=s + 2)
    Wb, Wc, Vb, Vc = (randn(*sh, seed=s + 3 + i) for i, sh in enumerate([(inf, out), (inf, G + k, out)] * 2))
    # the reference from the inputs rounded to dtype, so that sign(phi) is that of the same numbers
    x, grid, u, Wb, Wc, Vb, Vc = (t.to(dtype).double() for t in (x, grid, u, Wb, Wc, Vb, Vc))
    cv = lambda *ts: [t.to(dtype) for t in ts]  # noqa: E731
    bid = BASES[base]
    exp = ref.edge_product(x, grid, k, base, Wb, Wc, Vb, Vc, mode, c, a)
    got = emu_edge_product(*cv(x, grid), k, bid, *cv(Wb, Wc, Vb, Vc), mode, c, a)
    assert_close(got, exp, _tol(dtype), scale=magnitude(exp) * out ** 0.5)
    for uu in (None, u):
        eb, ec = ref.edge_product_wgrad(x, uu, grid, k, base, Wb, Wc, mode, c, a)
        gb, gc = emu_edge_product_wgrad(x.to(dtype), None if uu is None else uu.to(dtype), grid.to(dtype), k, bid,
                                        *cv(Wb, Wc), mode, c, a)
        sc = max(magnitude(eb), magnitude(ec)) * max(1, N) ** 0.5
        assert_close(gb, eb, _tol(dtype), scale=sc)
        assert_close(gc, ec, _tol(dtype), scale=sc)


def test_capped_grid_strides(monkeypatch):
    """EMU_MAX_GRID=2 forces every kernel's grid-stride loop to run."""
    monkeypatch.setenv("EMU_MAX_GRID", "2")
    test_kan_linear_deriv_kernels(torch.float64, 2, "silu", 2, 7, "skewed", 40, 35, 130)
    test_spline_activation_deriv_kernels(torch.float64, 2, "silu")
    test_edge_product_kernels(torch.float64, 1, 2, 1, "silu", 2, 7, "skewed", 40, 35, 130)
