"""edge_stats' derivatives of every order (kanext/autodiff.py: EdgeStats,
edge_stats_grads) and the two ops they are built from, edge_product and
edge_product_wgrad: the ops against their reference twins, gradcheck /
gradgradcheck / third order in float64, torch.func (jvp, jacfwd, hessian,
vmap) against plain autograd and against autograd through the materialised
reference, the regulariser's parameter Hessian, opcheck, torch.compile and
bad input. One body for CPU and CUDA (the `device` fixture)."""
from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck
from torch.func import hessian, jacfwd, jacrev, jvp, vmap

import kanext
from helpers import assert_close, grid_of_kind, magnitude, off_knot_x, randn, sample_x, seed_of
from kanext import ops
from kanext import reference as ref
from kanext import regularization

BASES = ["zero", "identity", "silu"]
F64 = torch.float64
# (mode, c, a): the sign family (c = 0) and the product family
MODES = [(0, 0, 0), (0, 0, 1), (0, 0, 3), (1, 0, 0), (1, 0, 1), (1, 1, 1), (1, 2, 0), (1, 1, 4)]


def _weights(inf, G, k, out, seed, device="cpu", dtype=F64):
    return [randn(*sh, seed=seed + i).to(device=device, dtype=dtype)
            for i, sh in enumerate([(inf, out), (inf, G + k, out)])]


# ------------------------------------------------------ the ops vs reference
@pytest.mark.parametrize("mode,c,a", MODES)
@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("k,G,kind,N,inf,out", [(3, 5, "uniform", 9, 3, 4), (2, 7, "skewed", 13, 5, 67),
                                                 (1, 4, "nonuniform", 5, 1, 1), (5, 3, "uniform", 0, 2, 3),
                                                 (4, 9, "nonuniform", 33, 2, 70)])
def test_edge_product_ops_vs_reference(mode, c, a, base, k, G, kind, N, inf, out, device):
    s = seed_of("epr", mode, c, a, base, k, G, kind, N)
    grid = grid_of_kind(kind, inf, G, k, F64, seed=s)
    x = sample_x(N, grid, seed=s + 1)  # a good share outside the grid
    if N > 3:
        x[2, 0] = float("nan")
    Wb, Wc = _weights(inf, G, k, out, s + 2)
    Vb, Vc = _weights(inf, G, k, out, s + 4)
    u = randn(N, inf, seed=s + 6)
    d = lambda *ts: [t.to(device) for t in ts]  # noqa: E731
    xd, gd, Wbd, Wcd, Vbd, Vcd, ud = d(x, grid, Wb, Wc, Vb, Vc, u)
    exp = ref.edge_product(x, grid, k, base, Wb, Wc, Vb, Vc, mode, c, a)
    got = ops.edge_product(xd, gd, k, base, Wbd, Wcd, Vbd, Vcd, mode, c, a)
    assert_close(got.cpu(), exp, 1e-10, scale=magnitude(exp) * out ** 0.5)
    if N > 3:
        assert float(got[2, 0]) == 0.0  # NaN x adds nothing
    for uu, ur in ((None, None), (ud, u)):
        eb, ec = ref.edge_product_wgrad(x, ur, grid, k, base, Wb, Wc, mode, c, a)
        gb, gc = ops.edge_product_wgrad(xd, uu, gd, k, base, Wbd, Wcd, mode, c, a)
        sc = max(magnitude(eb), magnitude(ec)) * max(1, N) ** 0.5
        assert_close(gb.cpu(), eb, 1e-10, scale=sc)
        assert_close(gc.cpu(), ec, 1e-10, scale=sc)


def test_edge_product_ops_noncontiguous(device):
    k, G, inf, out, N = 3, 5, 3, 6, 11
    grid = grid_of_kind("nonuniform", inf, G, k, F64, seed=1).to(device)
    x = sample_x(N, grid.cpu(), seed=2).to(device)
    xt = x.T.contiguous().T  # same values, column-major
    Wb, Wc = _weights(inf, G, k, out, 3, device)
    Wct = Wc.transpose(1, 2).contiguous().transpose(1, 2)
    u = randn(N, inf, seed=5).to(device)
    assert not xt.is_contiguous() and not Wct.is_contiguous()
    for mode, c, a in ((0, 0, 1), (1, 1, 2)):
        assert torch.equal(ops.edge_product(xt, grid, k, "silu", Wb, Wct, Wb, Wct, mode, c, a),
                           ops.edge_product(x, grid, k, "silu", Wb, Wc, Wb, Wc, mode, c, a))
        for p, q in zip(ops.edge_product_wgrad(xt, u.T.contiguous().T, grid, k, "silu", Wb, Wct, mode, c, a),
                        ops.edge_product_wgrad(x, u, grid, k, "silu", Wb, Wc, mode, c, a)):
            assert torch.equal(p, q)


def test_edge_product_bad_input():
    k, G = 3, 5
    grid = grid_of_kind("uniform", 3, G, k, F64)
    x = sample_x(7, grid, seed=1)
    Wb, Wc = _weights(3, G, k, 4, 2)
    with pytest.raises(RuntimeError, match="mode must be 0 \\(sign\\) or 1 \\(product\\), got 2"):
        ops.edge_product(x, grid, k, "silu", Wb, Wc, Wb, Wc, 2, 0, 0)
    with pytest.raises(RuntimeError, match="mode 0 \\(sign of phi\\) takes c = 0, got c = 1"):
        ops.edge_product_wgrad(x, None, grid, k, "silu", Wb, Wc, 0, 1, 0)
    with pytest.raises(RuntimeError, match="expected Vb, Vc of the shapes of Wb"):
        ops.edge_product(x, grid, k, "silu", Wb, Wc, Wb[:, :3], Wc[:, :, :3], 1, 0, 0)
    with pytest.raises(RuntimeError, match="expected v of x's shape"):
        ops.edge_product_wgrad(x, x[:, :2], grid, k, "silu", Wb, Wc, 1, 0, 0)
    with pytest.raises(RuntimeError, match="silu base are computed up to order 10, got order 11"):
        ops.edge_product(x, grid, k, "silu", Wb, Wc, Wb, Wc, 1, 0, 11)
    with pytest.raises(RuntimeError, match="expected Wc of shape"):
        ops.edge_product(x, grid, k, "silu", Wb, Wc[:, 1:], Wb, Wc[:, 1:], 1, 0, 0)
    with pytest.raises(RuntimeError, match="weight dtype Float differs from x dtype Double"):
        ops.edge_product(x, grid, k, "silu", Wb, Wc, Wb.float(), Wc.float(), 1, 0, 0)


# ------------------------------------------- gradcheck / gradgradcheck (float64)
@pytest.mark.parametrize("mode,c,a", [(0, 0, 1), (1, 0, 1), (1, 2, 0)])
def test_edge_product_gradgradcheck(mode, c, a, device):
    k, G, inf, out = 3, 4, 2, 3
    s = seed_of("epg", mode, c, a)
    grid = grid_of_kind("nonuniform", inf, G, k, F64, seed=s).to(device)
    x = off_knot_x(5, grid.cpu(), seed=s + 1).to(device).requires_grad_()
    Wb, Wc = (t.requires_grad_() for t in _weights(inf, G, k, out, s + 2, device))
    Vb, Vc = (t.requires_grad_() for t in _weights(inf, G, k, out, s + 4, device))
    u = randn(5, inf, seed=s + 6).to(device).requires_grad_()
    fP = lambda *t: ops.edge_product(t[0], grid, k, "silu", *t[1:], mode, c, a)  # noqa: E731
    fS = lambda x_, u_, b, c_: ops.edge_product_wgrad(x_, u_, grid, k, "silu", b, c_, mode, c, a)  # noqa: E731
    for f, args in ((fP, (x, Wb, Wc, Vb, Vc)), (fS, (x, u, Wb, Wc))):
        assert gradcheck(f, args, check_forward_ad=True)
        assert gradgradcheck(f, args, check_fwd_over_rev=True)


def _stats_case(k, G, kind, base, seed, device, N=6, inf=2, out=3):
    grid = grid_of_kind(kind, inf, G, k, F64, seed=seed).to(device)
    x = off_knot_x(N, grid.cpu(), seed=seed + 1).to(device).requires_grad_()
    Wb, Wc = (t.requires_grad_() for t in _weights(inf, G, k, out, seed + 2, device))
    return x, grid, Wb, Wc


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("kind", ["uniform", "nonuniform"])
def test_edge_stats_gradgradcheck(k, base, kind, device):
    x, grid, Wb, Wc = _stats_case(k, 4, kind, base, seed_of("esg", k, base, kind), device)
    f = lambda a, b, c: ops.edge_stats(a, grid, k, base, b, c)  # noqa: E731
    assert gradcheck(f, (x, Wb, Wc), check_forward_ad=True)
    assert gradgradcheck(f, (x, Wb, Wc), check_fwd_over_rev=True)


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("k", [2, 3, 5])
def test_edge_stats_third_order(base, k, device):
    """gradgradcheck of a gradient of the three statistics: third-order terms
    in x and the weights, mixed."""
    x, grid, Wb, Wc = _stats_case(k, 5, "nonuniform", base, seed_of("es3", base, k), device, N=4)

    def first(a, b, c):
        s, q, m = ops.edge_stats(a, grid, k, base, b, c)
        loss = (s * q).sum() + (m * m).sum() + q.sum()
        return torch.autograd.grad(loss, (a, b, c), create_graph=True)

    assert gradgradcheck(first, (x, Wb, Wc))


# ---------------------------------------- against the materialised reference
def _loss(stats):
    s, q, m = stats
    return (torch.sin(s) * q).sum() + (m * q).sum() / 7 + (m ** 2).sum()


@pytest.mark.parametrize("base", BASES)
def test_edge_stats_hessians_equal_the_reference(base, device):
    """Hessians in x and in Wc (torch.func.hessian: forward over reverse),
    against nested autograd through reference.edge_stats, which materialises
    phi (pure PyTorch, so its derivatives are torch's own)."""
    k = 3
    x, grid, Wb, Wc = _stats_case(k, 5, "nonuniform", base, seed_of("esh", base), device, N=8, out=4)
    x, Wb, Wc = x.detach(), Wb.detach(), Wc.detach()
    gr = grid.cpu()
    Hx = hessian(lambda t: _loss(ops.edge_stats(t, grid, k, base, Wb, Wc)))(x)
    Hx_ref = hessian(lambda t: _loss(ref.edge_stats(t, gr, k, base, Wb.cpu(), Wc.cpu())))(x.cpu())
    assert_close(Hx.cpu(), Hx_ref, 1e-10, scale=magnitude(Hx_ref))
    Hw = hessian(lambda t: _loss(ops.edge_stats(x, grid, k, base, Wb, t)))(Wc)
    Hw_ref = hessian(lambda t: _loss(ref.edge_stats(x.cpu(), gr, k, base, Wb.cpu(), t)))(Wc.cpu())
    assert_close(Hw.cpu(), Hw_ref, 1e-10, scale=magnitude(Hw_ref))
    # reverse over reverse (plain autograd), mixed x / Wb
    xr, Wbr = x.clone().requires_grad_(), Wb.clone().requires_grad_()
    (gx,) = torch.autograd.grad(_loss(ops.edge_stats(xr, grid, k, base, Wbr, Wc)), xr, create_graph=True)
    (mixed,) = torch.autograd.grad((gx * gx).sum(), Wbr)
    xq, Wbq = x.cpu().clone().requires_grad_(), Wb.cpu().clone().requires_grad_()
    (gq,) = torch.autograd.grad(_loss(ref.edge_stats(xq, gr, k, base, Wbq, Wc.cpu())), xq, create_graph=True)
    (mixed_ref,) = torch.autograd.grad((gq * gq).sum(), Wbq)
    assert_close(mixed.cpu(), mixed_ref, 1e-10, scale=magnitude(mixed_ref))


def test_edge_stats_forward_mode_and_vmap(device):
    k, base = 3, "silu"
    x, grid, Wb, Wc = _stats_case(k, 5, "uniform", base, 11, device, N=9, out=4)
    x, Wb, Wc = x.detach(), Wb.detach(), Wc.detach()
    tx, tb, tc = randn(*x.shape, seed=1).to(device), randn(*Wb.shape, seed=2).to(device), \
        randn(*Wc.shape, seed=3).to(device)
    f = lambda a, b, c: ops.edge_stats(a, grid, k, base, b, c)  # noqa: E731
    _, tangents = jvp(f, (x, Wb, Wc), (tx, tb, tc))
    _, tangents_ref = jvp(lambda a, b, c: ref.edge_stats(a, grid.cpu(), k, base, b, c),
                          (x.cpu(), Wb.cpu(), Wc.cpu()), (tx.cpu(), tb.cpu(), tc.cpu()))
    for t, r in zip(tangents, tangents_ref):
        assert_close(t.cpu(), r, 1e-10, scale=magnitude(r))
    J1 = jacfwd(lambda a: f(a, Wb, Wc))(x)
    J2 = jacrev(lambda a: f(a, Wb, Wc))(x)
    for p, q in zip(J1, J2):
        assert_close(p, q, 1e-12, scale=magnitude(q))
    xs = torch.stack([x, 0.5 * x, x + 0.1])
    batched = vmap(lambda a: f(a, Wb, Wc))(xs)
    for b in range(3):
        for p, q in zip(batched, f(xs[b], Wb, Wc)):
            assert_close(p[b], q, 1e-12, scale=magnitude(q))


def test_edge_stats_nan_inputs_in_higher_derivatives(device):
    """A NaN x[n, i] adds nothing at every order: the Hessian entries that
    involve it are 0 and the others equal those of the batch without it."""
    k, base = 3, "silu"
    x, grid, Wb, Wc = _stats_case(k, 5, "uniform", base, 21, device, N=6)
    x, Wb, Wc = x.detach(), Wb.detach(), Wc.detach()
    xn = x.clone()
    xn[2, 1] = float("nan")
    f = lambda t: _loss(ops.edge_stats(t, grid, k, base, Wb, Wc))  # noqa: E731
    H = hessian(f)(xn)
    assert not torch.isnan(H).any()
    assert torch.equal(H[2, 1], torch.zeros_like(H[2, 1])) and torch.equal(H[:, :, 2, 1], torch.zeros_like(x))
    # the other entries: as for the batch whose entry (2, 1) lies where it adds
    # nothing (a point far outside the grid with base 'zero' would; here the
    # reference with the NaN row's other input kept, via its NaN skipping)
    H_ref = hessian(lambda t: _loss(ref.edge_stats(t, grid.cpu(), k, base, Wb.cpu(), Wc.cpu())))(xn.cpu())
    assert_close(H.cpu(), H_ref, 1e-10, scale=magnitude(H_ref))


# --------------------------------------------- the regulariser's Hessian
def test_reg_parameter_hessian_vector_product_equals_reference(monkeypatch, device):
    """Second derivatives of KAN.reg in the parameters (a Hessian-vector
    product, as Newton-type optimisers take): kanext's composed rules against
    the same regulariser with reference.edge_stats swapped in."""
    model = kanext.KAN([2, 3, 2], grid=5, seed=3, dtype=F64).to(device)
    x = (torch.rand(16, 2, dtype=F64, generator=torch.Generator().manual_seed(4)) * 1.8 - 0.9).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    vec = [randn(*p.shape, seed=10 + i).to(device) for i, p in enumerate(params)]

    def hvp():
        loss = model.reg(x, lamb_l1=1.0, lamb_entropy=2.0) + model(x).pow(2).mean()
        g = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
        gv = sum((gi * vi).sum() for gi, vi in zip(g, vec) if gi is not None)
        h = torch.autograd.grad(gv, params, allow_unused=True)
        return [torch.zeros_like(p) if hi is None else hi for p, hi in zip(params, h)]

    got = hvp()

    monkeypatch.setattr(regularization.ops, "edge_stats", ref.edge_stats)
    exp = hvp()
    for gt, ex in zip(got, exp):
        assert_close(gt, ex, 1e-9, scale=magnitude(ex))
    assert any(float(e.abs().max()) > 0 for e in exp)


# -------------------------------------------------- opcheck, torch.compile
def test_opcheck_edge_product_ops(device):
    K = torch.ops.kanext
    k, G, inf, out = 3, 5, 3, 4
    grid = grid_of_kind("nonuniform", inf, G, k, F64, seed=1).to(device)
    x = sample_x(6, grid.cpu(), seed=2).to(device)
    Wb, Wc = _weights(inf, G, k, out, 3, device)
    u = randn(6, inf, seed=5).to(device)
    rg = lambda t: t.clone().requires_grad_()  # noqa: E731
    for mode, c, a in ((0, 0, 1), (1, 1, 2)):
        torch.library.opcheck(K.edge_product.default, (rg(x), grid, k, 2, rg(Wb), rg(Wc), rg(Wb), rg(Wc), mode, c, a))
        torch.library.opcheck(K.edge_product_wgrad.default, (rg(x), rg(u), grid, k, 2, rg(Wb), rg(Wc), mode, c, a))
        torch.library.opcheck(K.edge_product_wgrad.default, (rg(x), None, grid, k, 1, rg(Wb), rg(Wc), mode, c, a))
    g = randn(inf, out, seed=7).to(device)
    torch.library.opcheck(K.edge_stats_backward.default,
                          (rg(g), rg(g), rg(g), rg(x), grid, k, 2, rg(Wb), rg(Wc), True, True))


def test_compiled_edge_product_ops_fullgraph():
    k, G, inf, out = 3, 5, 3, 4
    grid = grid_of_kind("uniform", inf, G, k, F64)
    x = sample_x(9, grid, seed=1)
    Wb, Wc = _weights(inf, G, k, out, 2)
    u = randn(9, inf, seed=4)

    def f(x, u, Wb, Wc):
        p = ops.edge_product(x, grid, k, "silu", Wb, Wc, Wc.sum(1), Wc * 0.5, 1, 1, 2)
        sb, sc = ops.edge_product_wgrad(x, u, grid, k, "silu", Wb, Wc, 0, 0, 1)
        return p.sum() + sb.sum() + sc.sum()

    eager = f(x, u, Wb, Wc)
    compiled = torch.compile(f, fullgraph=True)(x, u, Wb, Wc)
    assert_close(compiled, eager, 1e-12, scale=magnitude(eager))


def test_first_order_edge_stats_keeps_the_fused_backward(monkeypatch):
    """Without create_graph the fused edge_stats_backward kernel runs (the
    composed rules only when the backward itself is recorded), and both give
    the same first derivatives."""
    from kanext import autodiff

    k = 3
    x, grid, Wb, Wc = _stats_case(k, 5, "uniform", "silu", 31, "cpu", N=12, out=5)
    calls = []
    orig = autodiff.edge_stats_grads
    monkeypatch.setattr(autodiff, "edge_stats_grads", lambda *a: calls.append(1) or orig(*a))
    g_fused = torch.autograd.grad(_loss(ops.edge_stats(x, grid, k, "silu", Wb, Wc)), (x, Wb, Wc))
    assert not calls
    g_comp = torch.autograd.grad(_loss(ops.edge_stats(x, grid, k, "silu", Wb, Wc)), (x, Wb, Wc), create_graph=True)
    assert calls
    for p, q in zip(g_comp, g_fused):
        assert_close(p.detach(), q, 1e-12, scale=magnitude(q))
