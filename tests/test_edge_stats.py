"""Tests of kanext.ops.edge_stats (per-edge batch statistics of the edge
activations phi) and its backward, against kanext.reference.edge_stats, which
materialises phi (N, in, out), on fresh random inputs (fixed-seed generators).

float64 results are compared with the float64 reference at ~1e-12; float32
results with the float64 reference on the exactly upcast inputs at ~1e-5,
relative to the magnitude of the terms summed (sum_n |phi| for the sums).
"""
from __future__ import annotations

import contextlib
import io
import math

import pytest
import torch

import kanext
from kanext import ops
from kanext import reference as ref

from helpers import (
    assert_deterministic,
    dname,
    seed_of,
    DTYPES,
    TOL,
    assert_bitwise_equal,
    assert_close,
    grid_of_kind,
    knot_x,
    make_grid,
    off_knot_x,
    randn,
    sample_x,
)

BASES = ("zero", "identity", "silu")
KS = tuple(range(6))
K_OPS = torch.ops.kanext
NAMES = ("sum", "sum_sq", "sum_abs")
GNAMES = ("gx", "gWb", "gWc")






def weights(in_f, G, k, out, dtype, seed):
    return randn(in_f, out, seed=seed, dtype=dtype), randn(in_f, G + k, out, seed=seed + 1, dtype=dtype)


def ref_stats(x, grid, k, base, Wb, Wc):
    return ref.edge_stats(x.double(), grid.double(), k, base, Wb.double(), Wc.double())


def check_stats(got, exp, dtype, msg, rtol=None):
    """The three statistics; the sum is compared relative to sum_n |phi|, the
    largest value it could have, as its rounding error scales with that."""
    rtol = TOL[dtype] if rtol is None else rtol
    scale = max(1.0, float(exp[2].abs().max())) if exp[2].numel() else 1.0
    for name, g, e in zip(NAMES, got, exp):
        assert g.dtype == dtype and g.shape == e.shape and g.is_contiguous(), f"{msg} {name}: {g.dtype} {g.shape}"
        assert_close(g, e, rtol, scale=scale if name != "sum_sq" else None, msg=f"{msg} {name}")


def ref_grads(gs, x, grid, k, base, Wb, Wc):
    """(gx, gWb, gWc) by autograd through the float64 reference (right off the
    knots, and where no phi is at the kink of |phi| but exact zeros)."""
    x64, Wb64, Wc64 = (t.detach().double().requires_grad_() for t in (x, Wb, Wc))
    out = ref.edge_stats(x64, grid.double(), k, base, Wb64, Wc64)
    return torch.autograd.grad(out, (x64, Wb64, Wc64), [g.double() for g in gs], allow_unused=True,
                               materialize_grads=True)


def away_from_zero_phi(x, grid, k, base, Wb, Wc, seed, rel=1e-3):
    """x with every entry whose phi[n, i, j] is within rel times the size of
    its terms (|b(x) Wb| + sum_g B_g(x) |Wc|) of 0, for some j, redrawn off the
    knots (exact, structural zeros, as base 'zero' outside the grid gives, are
    kept): then sign(phi) is the same in any precision and a finite difference
    does not cross the kink of |phi|."""
    x = x.clone()
    g64, Wb64, Wc64 = grid.double(), Wb.double(), Wc.double()
    for attempt in range(20):
        x64 = x.double()
        phi = ref.edge_activations(x64, g64, k, base, Wb64, Wc64)
        terms = ref.base_function(base, x64).abs().unsqueeze(-1) * Wb64.abs() + torch.einsum(
            "nig,igj->nij", ref.spline_basis(x64, g64, k), Wc64.abs())
        bad = ((phi.abs() < rel * terms) & (phi != 0)).any(-1)
        if not bool(bad.any()):
            return x
        x = torch.where(bad, off_knot_x(x.shape[0], grid, seed=seed + 1000 + attempt), x)
    raise AssertionError("could not keep phi away from 0")


def grad_case(dtype, k, G, base, kind, in_f=7, out=5, N=90, seed_tag="bwd"):
    s = seed_of(seed_tag, dtype, k, G, base, kind, in_f, out, N)
    grid = grid_of_kind(kind, in_f, G, k, dtype, seed=s)
    Wb, Wc = weights(in_f, G, k, out, dtype, s + 2)
    x = away_from_zero_phi(off_knot_x(N, grid, seed=s + 1), grid, k, base, Wb, Wc, seed=s)
    gs = [randn(in_f, out, seed=s + 3 + t, dtype=dtype) for t in range(3)]
    return x, grid, Wb, Wc, gs


def autograd_grads(x, grid, k, base, Wb, Wc, gs):
    leaves = [t.detach().clone().requires_grad_() for t in (x, Wb, Wc)]
    out = ops.edge_stats(leaves[0], grid, k, base, leaves[1], leaves[2])
    torch.autograd.backward(out, gs)
    return [t.grad for t in leaves]


# ===================================================================== forward
@pytest.mark.parametrize("kind", ("uniform", "nonuniform"))
@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("G", (1, 3, 5, 20, 100))
@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_forward_matches_reference(dtype, k, G, base, kind):
    in_f, out = 7, 5
    s = seed_of("fwd", dtype, k, G, base, kind)
    grid = grid_of_kind(kind, in_f, G, k, dtype, seed=s)
    # random x over a range wider than the grid (a good share outside it), plus every knot
    x = torch.cat([sample_x(70, grid, seed=s + 1), knot_x(grid)])
    Wb, Wc = weights(in_f, G, k, out, dtype, s + 2)
    got = ops.edge_stats(x, grid, k, base, Wb, Wc)
    check_stats(got, ref_stats(x, grid, k, base, Wb, Wc), dtype, f"k={k} G={G} {base} {kind}")
    for name, a, b in zip(NAMES, K_OPS.edge_stats(x, grid, k, ops.BASE_IDS[base], Wb, Wc), got):
        assert_bitwise_equal(a, b, f"{name}: base id vs name")


@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_forward_skewed_grid_and_sum_consistency(dtype):
    """A grid with spacing ratios up to 1000, and the identity sum_j of
    sum_n phi[:, i, j] = sum_n (kan_linear's per-input contribution)."""
    in_f, G, k, out = 5, 12, 3, 9
    s = seed_of("skew", dtype)
    grid = grid_of_kind("skewed", in_f, G, k, dtype, seed=s)
    x = torch.cat([sample_x(200, grid, seed=s + 1), knot_x(grid)])
    Wb, Wc = weights(in_f, G, k, out, dtype, s + 2)
    S, Q, A = ops.edge_stats(x, grid, k, "silu", Wb, Wc)
    check_stats((S, Q, A), ref_stats(x, grid, k, "silu", Wb, Wc), dtype, "skewed grid")
    # kan_linear summed over the batch equals the sum statistic summed over i
    y = ops.kan_linear(x, grid, k, "silu", Wb, Wc)
    assert_close(S.sum(0), y.double().sum(0), 10 * TOL[dtype], scale=float(A.sum(0).max()), msg="sum vs kan_linear")
    assert bool((Q >= 0).all() & (A >= 0).all())
    assert bool((S.abs() <= A * (1 + 1e-5)).all())


@pytest.mark.parametrize("N", [0, 1, 31, 33, 100])
@pytest.mark.parametrize("in_out", [(1, 1), (7, 5), (3, 37), (2, 64), (4, 33), (3, 48), (2, 24)])
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_sizes(dtype, in_out, N):
    """Odd and vector-crossing widths (2-vector tiles, 1 vector, scalar tail);
    N around the 32-row block; N = 0 and 1; forward and backward."""
    in_f, out = in_out
    for k, base in ((0, "silu"), (2, "identity"), (5, "zero")):
        s = seed_of("sz", dtype, in_f, out, N, k)
        grid = make_grid(in_f, 4, k, dtype, uniform=(k != 2), seed=s)
        Wb, Wc = weights(in_f, 4, k, out, dtype, s + 2)
        x = away_from_zero_phi(off_knot_x(N, grid, seed=s + 1), grid, k, base, Wb, Wc, seed=s)
        got = ops.edge_stats(x, grid, k, base, Wb, Wc)
        assert all(t.shape == (in_f, out) for t in got)
        check_stats(got, ref_stats(x, grid, k, base, Wb, Wc), dtype, f"in={in_f} out={out} N={N} k={k}")
        if N == 0:
            assert all(bool((t == 0).all()) for t in got)
        gs = [randn(in_f, out, seed=s + 3 + t, dtype=dtype) for t in range(3)]
        exp = ref_grads(gs, x, grid, k, base, Wb, Wc)
        for name, g, e in zip(GNAMES, autograd_grads(x, grid, k, base, Wb, Wc, gs), exp):
            assert g.shape == e.shape and g.dtype == dtype
            assert_close(g, e, TOL[dtype], msg=f"{name} in={in_f} out={out} N={N} k={k}")


@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_noncontiguous(dtype):
    in_f, G, k, out, N = 7, 5, 3, 5, 45
    s = seed_of("nc", dtype)
    grid = make_grid(in_f, G, k, dtype, uniform=False, seed=s)
    Wb, Wc = weights(in_f, G, k, out, dtype, s + 2)
    x = away_from_zero_phi(off_knot_x(N, grid, seed=s + 1), grid, k, "silu", Wb, Wc, seed=s)
    gs = [randn(in_f, out, seed=s + 3 + t, dtype=dtype) for t in range(3)]
    variants = {
        "x_T": (x.t().contiguous().t(), grid, Wb, Wc),
        "x_strided": (torch.zeros(2 * N, 2 * in_f, dtype=dtype)[::2, 1::2].copy_(x), grid, Wb, Wc),
        "Wb_T": (x, grid, Wb.t().contiguous().t(), Wc),
        "Wc_perm": (x, grid, Wb, Wc.permute(2, 0, 1).contiguous().permute(1, 2, 0)),
        "grid_T": (x, grid.t().contiguous().t(), Wb, Wc),
    }
    base_out = ops.edge_stats(x, grid, k, "silu", Wb, Wc)
    check_stats(base_out, ref_stats(x, grid, k, "silu", Wb, Wc), dtype, "contiguous")
    base_g = K_OPS.edge_stats_backward(*gs, x, grid, k, 2, Wb, Wc, True, True)
    for t, e in zip(base_g, ref_grads(gs, x, grid, k, "silu", Wb, Wc)):
        assert_close(t, e, TOL[dtype], msg="contiguous backward")
    for name, (xv, gv, wbv, wcv) in variants.items():
        assert any(not t.is_contiguous() for t in (xv, gv, wbv, wcv)), name
        for a, b in zip(ops.edge_stats(xv, gv, k, "silu", wbv, wcv), base_out):
            assert_bitwise_equal(a, b, f"forward {name}")
        for a, b in zip(K_OPS.edge_stats_backward(*gs, xv, gv, k, 2, wbv, wcv, True, True), base_g):
            assert_bitwise_equal(a, b, f"backward {name}")
        # through autograd, with non-contiguous incoming gradients as well
        gs_nc = [g.t().contiguous().t() for g in gs]
        for a, b in zip(autograd_grads(xv, gv, k, "silu", wbv, wcv, gs_nc), base_g):
            assert_bitwise_equal(a, b, f"autograd {name}")


# =================================================================== gradients
@pytest.mark.parametrize("kind", ("uniform", "nonuniform"))
@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("G", (1, 5, 100))
@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_backward_matches_reference(dtype, k, G, base, kind):
    x, grid, Wb, Wc, gs = grad_case(dtype, k, G, base, kind)
    exp = ref_grads(gs, x, grid, k, base, Wb, Wc)
    got = autograd_grads(x, grid, k, base, Wb, Wc, gs)
    for name, g, e in zip(GNAMES, got, exp):
        assert g.dtype == dtype
        assert_close(g, e, TOL[dtype], msg=f"{name} k={k} G={G} {base} {kind}")
    # each statistic's gradient on its own (the other two incoming gradients 0)
    for t in range(3):
        only = [g if u == t else torch.zeros_like(g) for u, g in enumerate(gs)]
        e1 = ref_grads(only, x, grid, k, base, Wb, Wc)
        for name, g, e in zip(GNAMES, autograd_grads(x, grid, k, base, Wb, Wc, only), e1):
            assert_close(g, e, TOL[dtype], msg=f"{name} of {NAMES[t]} alone, k={k} G={G} {base} {kind}")
    # the raw op, every need_x / need_w combination: skipped outputs are zeros,
    # computed ones equal the full call bit for bit
    bid = ops.BASE_IDS[base]
    full = K_OPS.edge_stats_backward(*gs, x, grid, k, bid, Wb, Wc, True, True)
    for name, a, b in zip(GNAMES, full, got):
        assert_bitwise_equal(a, b, f"raw {name} vs autograd")
    for need_x in (True, False):
        for need_w in (True, False):
            part = K_OPS.edge_stats_backward(*gs, x, grid, k, bid, Wb, Wc, need_x, need_w)
            for name, p, f, needed in zip(GNAMES, part, full, (need_x, need_w, need_w)):
                assert_bitwise_equal(p, f if needed else torch.zeros_like(f), f"{name} need_x={need_x} need_w={need_w}")


@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_abs_gradient_at_exact_zero(dtype):
    """sign(0) = 0, as torch.abs: edges with phi == 0 for every sample (zero
    weights, or base 'zero' and x outside the grid) get no gradient from
    sum_abs, and exactly the sum/sum_sq terms from the others."""
    in_f, G, k, out, N = 3, 4, 2, 4, 20
    s = seed_of("zero", dtype)
    grid = make_grid(in_f, G, k, dtype)
    Wb, Wc = weights(in_f, G, k, out, dtype, s)
    Wb[:, 1] = 0
    Wc[:, :, 1] = 0  # edge column 1 is identically zero
    x = away_from_zero_phi(off_knot_x(N, grid, seed=s + 1), grid, k, "silu", Wb, Wc, seed=s)
    gA = torch.zeros(in_f, out, dtype=dtype)
    gA[:, 1] = 1.0
    z = torch.zeros(in_f, out, dtype=dtype)
    gx, gWb, gWc = autograd_grads(x, grid, k, "silu", Wb, Wc, [z, z, gA])
    assert bool((gx == 0).all() & (gWb == 0).all() & (gWc == 0).all()), "sign(0) must be 0"
    # base 'zero' with every x outside the grid: phi == 0, all statistics and gradients 0
    x_out = grid[:, -1].unsqueeze(0) + 1 + torch.rand(N, in_f, dtype=torch.float64).to(dtype)
    S, Q, A = ops.edge_stats(x_out, grid, k, "zero", Wb, Wc)
    assert bool((S == 0).all() & (Q == 0).all() & (A == 0).all())
    gs = [randn(in_f, out, seed=s + t, dtype=dtype) for t in range(3)]
    for name, g in zip(GNAMES, autograd_grads(x_out, grid, k, "zero", Wb, Wc, gs)):
        assert bool((g == 0).all()), f"{name} must be 0"


GRADCHECK_CASES = [
    # (k, G, base, kind)
    (0, 3, "silu", "uniform"),
    (1, 1, "identity", "uniform"),
    (1, 5, "zero", "nonuniform"),
    (2, 3, "silu", "nonuniform"),
    (3, 5, "silu", "uniform"),
    (3, 20, "identity", "skewed"),
    (4, 3, "zero", "skewed"),
    (5, 1, "silu", "nonuniform"),
    (5, 20, "identity", "uniform"),
]


@pytest.mark.parametrize("k,G,base,kind", GRADCHECK_CASES)
def test_gradcheck(k, G, base, kind, device):
    x, grid, Wb, Wc, _ = grad_case(torch.float64, k, G, base, kind, in_f=3, out=2, N=6, seed_tag="gc")
    grid = grid.to(device)
    args = tuple(t.to(device).requires_grad_() for t in (x, Wb, Wc))
    assert torch.autograd.gradcheck(lambda a, b, c: ops.edge_stats(a, grid, k, base, b, c), args)


def test_partial_requires_grad():
    dtype = torch.float64
    x, grid, Wb, Wc, gs = grad_case(dtype, 3, 5, "silu", "uniform", in_f=4, out=3, N=20, seed_tag="prg")
    exp = ref_grads(gs, x, grid, 3, "silu", Wb, Wc)
    for mask in ((True, False, False), (False, True, False), (False, False, True), (False, True, True)):
        ts = [t.clone().requires_grad_(m) for t, m in zip((x, Wb, Wc), mask)]
        torch.autograd.backward(ops.edge_stats(ts[0], grid, 3, "silu", ts[1], ts[2]), gs)
        for t, m, e, name in zip(ts, mask, exp, GNAMES):
            if m:
                assert_close(t.grad, e, TOL[dtype], msg=f"{name} with requires_grad mask {mask}")
            else:
                assert t.grad is None
    # only some statistics used: the unused ones get zero gradient
    ts = [t.clone().requires_grad_() for t in (x, Wb, Wc)]
    S, Q, A = ops.edge_stats(ts[0], grid, 3, "silu", ts[1], ts[2])
    (A * gs[2]).sum().backward()
    z = torch.zeros_like(gs[0])
    for t, e, name in zip(ts, ref_grads([z, z, gs[2]], x, grid, 3, "silu", Wb, Wc), GNAMES):
        assert_close(t.grad, e, TOL[dtype], msg=f"{name} from sum_abs only")


def test_grad_wrt_grid_is_refused():
    grid = make_grid(2, 3, 2).requires_grad_()
    x = torch.rand(4, 2, dtype=torch.float64, requires_grad=True)
    Wb, Wc = weights(2, 3, 2, 2, torch.float64, 5)
    with pytest.raises(RuntimeError, match="gradients with respect to grid are not supported"):
        ops.edge_stats(x, grid, 2, "silu", Wb, Wc)[2].sum().backward()


# ============================================================= opcheck, compile
def _opcheck_samples():
    out = []
    for dtype, k, G, kind, N in ((torch.float64, 3, 5, "uniform", 9), (torch.float32, 1, 4, "nonuniform", 5),
                                 (torch.float64, 0, 2, "nonuniform", 3), (torch.float64, 5, 1, "uniform", 0)):
        in_f, outf = 3, 2
        s = seed_of("opc", dtype, k, G, kind, N)
        grid = grid_of_kind(kind, in_f, G, k, dtype, seed=s)
        x = sample_x(N, grid, seed=s + 1)
        Wb, Wc = weights(in_f, G, k, outf, dtype, s + 2)
        gs = [randn(in_f, outf, seed=s + 3 + t, dtype=dtype) for t in range(3)]
        out.append((f"{dname(dtype)}-k{k}-G{G}-{kind}-N{N}", x, grid, k, Wb, Wc, gs))
    return out


OPCHECK_SAMPLES = _opcheck_samples()


@pytest.mark.parametrize("sample", OPCHECK_SAMPLES, ids=[s[0] for s in OPCHECK_SAMPLES])
def test_opcheck(sample, device):
    _, x, grid, k, Wb, Wc, gs = sample
    x, grid, Wb, Wc = (t.to(device) for t in (x, grid, Wb, Wc))
    gs = [g.to(device) for g in gs]
    rg = lambda t: t.clone().requires_grad_()  # noqa: E731
    for base in (0, 1, 2):
        torch.library.opcheck(K_OPS.edge_stats.default, (rg(x), grid, k, base, rg(Wb), rg(Wc)))
    for need_x, need_w in ((True, True), (True, False), (False, True), (False, False)):
        torch.library.opcheck(K_OPS.edge_stats_backward.default, (*gs, x, grid, k, 2, Wb, Wc, need_x, need_w))


def test_opcheck_noncontiguous():
    _, x, grid, k, Wb, Wc, gs = OPCHECK_SAMPLES[0]
    xt = x.t().contiguous().t()
    torch.library.opcheck(K_OPS.edge_stats.default,
                          (xt.clone().requires_grad_(), grid, k, 2, Wb.clone().requires_grad_(), Wc))
    gs_t = [g.t().contiguous().t() for g in gs]
    torch.library.opcheck(K_OPS.edge_stats_backward.default, (*gs_t, xt, grid, k, 2, Wb, Wc, True, True))


def _pykan_style_reg(s, q, a, x, n):
    var = (q - s * s / n) / (n - 1)
    pos = var > 0
    std = torch.where(pos, torch.where(pos, var, 1.0).sqrt(), 0.0)
    return (std / (torch.std(x, dim=0)[:, None] + 0.1)).sum() + 0.5 * (a / n).sum()


@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_torch_compile_fullgraph_matches_eager(dtype):
    torch._dynamo.reset()
    in_f, mid, N = 5, 4, 37
    s = seed_of("compile", dtype)
    g1 = make_grid(in_f, 5, 3, dtype)
    g2 = make_grid(mid, 7, 1, dtype, uniform=False, seed=s)
    x = sample_x(N, g1, seed=s + 1, widen=0.1)
    Wb1, Wc1 = weights(in_f, 5, 3, mid, dtype, s + 2)
    Wb2, Wc2 = weights(mid, 7, 1, 3, dtype, s + 4)

    def f(x, Wb1, Wc1, Wb2, Wc2):
        h = ops.kan_linear(x, g1, 3, "silu", Wb1, Wc1)
        h2 = torch.tanh(h)
        y = ops.kan_linear(h2, g2, 1, "identity", Wb2, Wc2)
        reg = _pykan_style_reg(*ops.edge_stats(x, g1, 3, "silu", Wb1, Wc1), x, x.shape[0])
        reg = reg + _pykan_style_reg(*ops.edge_stats(h2, g2, 1, "identity", Wb2, Wc2), h2, x.shape[0])
        return (y * y).mean() + 0.01 * reg

    args = (x, Wb1, Wc1, Wb2, Wc2)

    def run(fn):
        leaves = [a.detach().clone().requires_grad_() for a in args]
        out = fn(*leaves)
        out.backward()
        return out.detach(), [t.grad for t in leaves]

    v_e, g_e = run(f)
    v_c, g_c = run(torch.compile(f, fullgraph=True))
    assert_close(v_c, v_e, 10 * TOL[dtype], msg="compiled value")
    for i, (a, b) in enumerate(zip(g_c, g_e)):
        assert_close(a, b, 10 * TOL[dtype], msg=f"compiled grad of arg {i}")


# ================================================================ determinism
def _det_outputs(dtype, base):
    # in = 64 with this work per input is several parallel tasks on 2 threads
    in_f, G, k, out, N = 64, 20, 3, 19, 301
    s = seed_of("det", dtype, base)
    grid = make_grid(in_f, G, k, dtype, uniform=False, seed=s)
    x = torch.cat([sample_x(N, grid, seed=s + 1), knot_x(grid)])
    Wb, Wc = weights(in_f, G, k, out, dtype, s + 2)
    gs = [randn(in_f, out, seed=s + 3 + t, dtype=dtype) for t in range(3)]
    leaves = [t.clone().requires_grad_() for t in (x, Wb, Wc)]
    stats = ops.edge_stats(leaves[0], grid, k, base, leaves[1], leaves[2])
    torch.autograd.backward(stats, gs)
    res = dict(zip(NAMES, (t.detach() for t in stats)))
    res.update(zip(GNAMES, (t.grad for t in leaves)))
    return res


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_deterministic_and_thread_count_independent(dtype, base, restore_threads):
    assert_deterministic(lambda: _det_outputs(dtype, base))


# ================================================================== bad input
def _err_inputs(dtype=torch.float64, in_f=4, G=3, k=2, out=2, N=5):
    grid = make_grid(in_f, G, k, dtype)
    x = sample_x(N, grid, seed=11)
    Wb, Wc = weights(in_f, G, k, out, dtype, 12)
    gs = [randn(in_f, out, seed=13 + t, dtype=dtype) for t in range(3)]
    return dict(x=x, grid=grid, k=k, base=2, Wb=Wb, Wc=Wc, gs=gs)


def _call(op, a):
    if op == "edge_stats":
        return ops.edge_stats(a["x"], a["grid"], a["k"], a["base"], a["Wb"], a["Wc"])
    return ops.edge_stats_backward(*a["gs"], a["x"], a["grid"], a["k"], a["base"], a["Wb"], a["Wc"])


def _bad_grid(fill):
    def mod(a):
        g = a["grid"].clone()
        fill(g)
        a["grid"] = g
    return mod


def _set_g(t, fn):
    def mod(a):
        gs = list(a["gs"])
        gs[t] = fn(gs[t])
        a["gs"] = gs
    return mod


def _to_float(a):
    a.update(x=a["x"].float(), grid=a["grid"].float(), gs=[g.float() for g in a["gs"]])


BOTH = ("edge_stats", "edge_stats_backward")
BWD = ("edge_stats_backward",)
ERROR_CASES = [
    ("x_1d", BOTH, lambda a: a.update(x=a["x"][0]), r"expected x of shape \(N, in\), got a 1-D tensor"),
    ("x_3d", BOTH, lambda a: a.update(x=a["x"][None]), r"expected x of shape \(N, in\), got a 3-D tensor"),
    ("grid_rows", BOTH, lambda a: a.update(grid=a["grid"][:3]), r"grid has 3 rows but x has 4 input features"),
    ("k_neg", BOTH, lambda a: a.update(k=-1), r"spline order k must be in \[0, 5\], got k=-1"),
    ("k_6", BOTH, lambda a: a.update(k=6), r"spline order k must be in \[0, 5\], got k=6"),
    ("G_0", BOTH, lambda a: a.update(grid=a["grid"][:, :5]),
     r"grid has 5 knots per input, but order k=2 needs at least 2k\+2=6 \(G >= 1 intervals\)"),
    ("grid_dtype", BOTH, lambda a: a.update(x=a["x"].float()), r"grid dtype Double differs from x dtype Float"),
    ("x_int", BOTH, lambda a: a.update(x=a["x"].long()), r"expected x of dtype float32 or float64, got Long"),
    ("x_half", BOTH, lambda a: a.update(x=a["x"].half()),
     r"with x of dtype torch.float16 the grid must be float32 or torch.float16, got torch.float64"),
    ("Wb_dtype", BOTH, lambda a: (_to_float(a), a.update(Wc=a["Wc"].float())),
     r"weight dtype Double differs from x dtype Float"),
    ("Wc_dtype", BOTH, lambda a: (_to_float(a), a.update(Wb=a["Wb"].float())),
     r"weight dtype Double differs from x dtype Float"),
    ("knots_equal", BOTH, _bad_grid(lambda g: g[2, 4].copy_(g[2, 3])),
     r"knots must be strictly increasing, but grid row 2 has t\[3\]="),
    ("knot_nan", BOTH, _bad_grid(lambda g: g[3, 2].fill_(math.nan)), r"grid row 3 has a non-finite knot nan"),
    ("knot_inf", BOTH, _bad_grid(lambda g: g[0, -1].fill_(math.inf)), r"grid row 0 has a non-finite knot inf"),
    ("Wb_rows", BOTH, lambda a: a.update(Wb=a["Wb"][:3]), r"expected Wb of shape \(in=4, out\), got \[3, 2\]"),
    ("Wc_bases", BOTH, lambda a: a.update(Wc=a["Wc"][:, :4]),
     r"expected Wc of shape \(in, G\+k, out\) = \(4, 5, 2\), got \[4, 4, 2\]"),
    ("Wc_out", BOTH, lambda a: a.update(Wc=a["Wc"][..., :1]), r"expected Wc of shape \(in, G\+k, out\)"),
    ("base_3", BOTH, lambda a: a.update(base=3), r"base must be 0 \(zero\), 1 \(identity\) or 2 \(silu\), got 3"),
    ("g_sum_shape", BWD, _set_g(0, lambda g: g[:, :1]),
     r"expected g_sum of shape \(in, out\) = \(4, 2\), got \[4, 1\]"),
    ("g_sq_shape", BWD, _set_g(1, lambda g: g.t()), r"expected g_sq of shape \(in, out\) = \(4, 2\), got \[2, 4\]"),
    ("g_abs_1d", BWD, _set_g(2, lambda g: g[0]), r"expected g_abs of shape \(in, out\)"),
    ("g_abs_dtype", BWD, _set_g(2, lambda g: g.float()), r"g_abs must match x in dtype and device"),
]
ERROR_PARAMS = [pytest.param(case, op, id=f"{case[0]}-{op}") for case in ERROR_CASES for op in case[1]]


@pytest.mark.parametrize("case,op", ERROR_PARAMS)
def test_bad_input_raises(case, op):
    name, _, modify, match = case
    a = _err_inputs()
    _call(op, dict(a))  # the unmodified inputs are valid
    modify(a)
    with pytest.raises(RuntimeError, match=match):
        _call(op, a)


def test_bad_base_name_and_empty_batch_grid_check():
    a = _err_inputs()
    with pytest.raises(ValueError, match="base must be one of"):
        ops.edge_stats(a["x"], a["grid"], a["k"], "relu", a["Wb"], a["Wc"])
    for op in BOTH:
        b = _err_inputs(N=0)
        _bad_grid(lambda g: g[1, 3].copy_(g[1, 2]))(b)
        with pytest.raises(RuntimeError, match="knots must be strictly increasing"):
            _call(op, b)


# ============================================================ NaN and infinity
def _nan_case(dtype, k, base):
    in_f, G, out, N = 6, 5, 4, 40
    s = seed_of("nan", dtype, k, base)
    grid = make_grid(in_f, G, k, dtype, uniform=False, seed=s)
    Wb, Wc = weights(in_f, G, k, out, dtype, s + 2)
    x = away_from_zero_phi(off_knot_x(N, grid, seed=s + 1), grid, k, base, Wb, Wc, seed=s)
    for n, i in ((2, 1), (7, 0), (7, 5), (33, 1), (39, 1)):
        x[n, i] = math.nan
    gs = [randn(in_f, out, seed=s + 3 + t, dtype=dtype) for t in range(3)]
    return x, grid, Wb, Wc, gs


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("k", (0, 1, 3))
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_nan_inputs_are_skipped(dtype, k, base):
    """Documented policy: a NaN x[n, i] adds nothing to row i of any statistic
    (the finite entries of row n count as usual), and its grad_x is 0."""
    x, grid, Wb, Wc, gs = _nan_case(dtype, k, base)
    isnan = torch.isnan(x)
    got = ops.edge_stats(x, grid, k, base, Wb, Wc)
    assert not any(bool(torch.isnan(t).any()) for t in got), "NaN leaked into the statistics"
    check_stats(got, ref_stats(x, grid, k, base, Wb, Wc), dtype, "with NaN x")
    # row i equals the statistics of input i over its non-NaN samples alone
    for i in range(x.shape[1]):
        keep = ~isnan[:, i]
        sub = ops.edge_stats(x[keep][:, i:i + 1], grid[i:i + 1], k, base, Wb[i:i + 1], Wc[i:i + 1])
        for name, a, b in zip(NAMES, got, sub):
            assert_close(a[i:i + 1], b, TOL[dtype], scale=max(1.0, float(got[2][i].max())), msg=f"{name} row {i}")
    gx, gWb, gWc = autograd_grads(x, grid, k, base, Wb, Wc, gs)
    assert bool((gx[isnan] == 0).all()), f"grad_x must be 0 where x is NaN, got {gx[isnan]}"
    assert not any(bool(torch.isnan(t).any()) for t in (gx, gWb, gWc)), "NaN leaked into the gradients"
    for name, g, e in zip(GNAMES, (gx, gWb, gWc), ref_grads(gs, x, grid, k, base, Wb, Wc)):
        assert_close(g, e, TOL[dtype], msg=f"{name} with NaN x")
    # the count of non-NaN samples per input is the documented normaliser
    n = (~isnan).sum(0)
    assert n.tolist() == [39, 37, 40, 40, 40, 39]


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_inf_and_huge_inputs_forward(dtype, base):
    """Outside the grid (including +-inf) only the base term remains, computed
    as torch computes it (silu(+inf) = inf, silu(-inf) = NaN), as in the
    reference."""
    in_f, G, k, out, N = 5, 4, 3, 3, 10
    s = seed_of("inf", dtype, base)
    grid = make_grid(in_f, G, k, dtype, uniform=False, seed=s)
    x = sample_x(N, grid, seed=s + 1)
    for (n, i), v in {(0, 0): math.inf, (1, 1): -math.inf, (2, 2): 1e15, (3, 3): -1e15, (4, 4): 1e15}.items():
        x[n, i] = v
    Wb, Wc = weights(in_f, G, k, out, dtype, s + 2)
    got = ops.edge_stats(x, grid, k, base, Wb, Wc)
    exp = ref_stats(x, grid, k, base, Wb, Wc)
    for i in range(in_f):  # per input: the rows differ in magnitude by up to 1e15
        fin = torch.isfinite(exp[2][i])
        scale = max(1.0, float(exp[2][i][fin].max())) if bool(fin.any()) else 1.0
        for name, g, e in zip(NAMES, got, exp):
            assert_close(g[i], e[i], TOL[dtype], scale=scale if name != "sum_sq" else scale * scale,
                         msg=f"{name} row {i} with inf/huge x")
    if base == "silu":  # +inf, -inf: inf / NaN edges, as torch's silu gives
        assert bool(torch.isinf(got[2][0]).all() & torch.isnan(got[2][1]).all())


# ========================================================= pykan reproduction
def test_reproduces_pykan_acts_scale_spline():
    """pykan's default regulariser input ('edge_forward_spline_n'):
    acts_scale_spline = torch.std(postacts, 0) / (torch.std(preacts, 0) + 0.1),
    (out, in), reproduced from edge_stats on the converted layer's folded
    weights, values and parameter gradients, in float64; a pruned (masked)
    edge has std 0 and gets gradient 0, as from torch.std."""
    kan = pytest.importorskip("kan", reason="pykan is a test dependency (requirements/test.txt)")
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        torch.manual_seed(0)
        with contextlib.redirect_stdout(io.StringIO()):
            layer = kan.KANLayer(in_dim=4, out_dim=3, num=5, k=3)
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():
            layer.coef.add_(0.3 * torch.randn(layer.coef.shape, generator=g))
            layer.scale_base.add_(0.2 * torch.randn(layer.scale_base.shape, generator=g))
            layer.scale_sp.add_(0.2 * torch.randn(layer.scale_sp.shape, generator=g))
            layer.mask[1, 2] = 0.0
        x = torch.rand(200, 4, generator=g) * 2.6 - 1.3  # partly outside the grid
        layer.update_grid_from_samples(x)  # pykan's own non-uniform grid
        ours = kanext.from_pykan(layer)
        R = torch.randn(3, 4, generator=g)  # a weighting of the (out, in) scales

        # pykan, exactly as MultKAN.forward computes it
        xp = x.clone().requires_grad_()
        _, preacts, postacts, _ = layer(xp)
        acts_pk = torch.std(postacts, dim=0) / (torch.std(preacts, dim=0) + 0.1)  # (out, in)
        l1_pk = postacts.abs().mean(0)
        names = ["coef", "scale_base", "scale_sp"]
        grads_pk = torch.autograd.grad((acts_pk * R).sum(), [xp] + [getattr(layer, n) for n in names])

        # kanext: the documented recipe on edge_stats
        xo = x.clone().requires_grad_()
        Wb, Wc = ours.folded_weights()
        s, q, a = ops.edge_stats(xo, ours.grid, ours.k, ours.base_fun, Wb, Wc)
        n = xo.shape[0]
        var = (q - s * s / n) / (n - 1)
        pos = var > 0
        std = torch.where(pos, torch.where(pos, var, 1.0).sqrt(), 0.0)
        acts = std / (torch.std(xo, dim=0)[:, None] + 0.1)  # (in, out)
        grads = torch.autograd.grad((acts.T * R).sum(), [xo] + [getattr(ours, n) for n in names])

        assert acts_pk[2, 1] == 0 and acts[1, 2] == 0, "the pruned edge has std 0"
        assert_close(acts.T, acts_pk, 1e-10, msg="acts_scale_spline")
        assert_close((a / n).T, l1_pk, 1e-12, msg="paper's L1 (mean |phi|)")
        for name, gv, gp in zip(["x"] + names, grads, grads_pk):
            assert_close(gv, gp, 1e-9, msg=f"gradient of sum(R * acts_scale_spline) w.r.t. {name}")
    finally:
        torch.set_default_dtype(old)
