"""Derivatives of any order and torch.func on every fused op and module
(kanext/autodiff.py): the derivative ops against their reference twins,
gradgradcheck and third-order checks in float64, torch.func against plain
autograd, the modules' Hessians and Laplacians against finite differences,
and the combinations that must raise. One body for CPU and CUDA (the
`device` fixture; the CUDA cases run on a GPU machine)."""
from __future__ import annotations

import copy

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck
from torch.func import functional_call, grad, hessian, jacfwd, jacrev, jvp, vjp, vmap

import kanext
from helpers import assert_close, magnitude, grid_of_kind, off_knot_x, randn, sample_x, seed_of
from kanext import ops
from kanext import reference as ref

BASES = ["zero", "identity", "silu"]
F64 = torch.float64


def _case(k, G, kind, N=7, inf=3, out=4, seed=0, device="cpu", dtype=F64, off_knot=True):
    grid = grid_of_kind(kind, inf, G, k, F64, seed=seed)
    x = off_knot_x(N, grid, seed=seed + 1) if off_knot else sample_x(N, grid, seed=seed + 1)
    Wb = randn(inf, out, seed=seed + 2)
    Wc = randn(inf, G + k, out, seed=seed + 3)
    return [t.to(device=device, dtype=dtype) for t in (x, grid, Wb, Wc)]


# ------------------------------------------------- the derivative ops themselves
@pytest.mark.parametrize("order", [0, 1, 2, 3, 4, 6])
@pytest.mark.parametrize("k", [1, 2, 3, 5])
@pytest.mark.parametrize("kind", ["uniform", "skewed"])
def test_spline_basis_deriv_orders(order, k, kind, device):
    grid = grid_of_kind(kind, 3, 6, k, F64, seed=seed_of("sbd", k, kind))
    x = sample_x(40, grid, seed=seed_of("sbdx", k, kind))  # a good share outside the grid
    x[3, 1] = float("nan")
    exp = ref.spline_basis_deriv(x, grid, k, order) if order > 0 else ref.spline_basis(x, grid, k)
    exp[3, 1] = 0.0  # NaN: all-zero bases
    got = (ops.spline_basis_deriv(x.to(device), grid.to(device), k, order) if order > 0
           else ops.spline_basis(x.to(device), grid.to(device), k))
    assert_close(got.cpu(), exp, 1e-10, scale=float(exp.abs().max()) + 1)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_spline_basis_deriv_matches_autograd_of_reference(k):
    """The reference's derivative recursion against nested autograd of the
    reference's Cox-de Boor values: two independent routes."""
    grid = grid_of_kind("nonuniform", 2, 5, k, F64, seed=k)
    x = off_knot_x(9, grid, seed=k + 1).requires_grad_()
    B = ref.spline_basis(x, grid, k)
    for order in range(1, k + 1):
        cols = []
        for g in range(B.shape[-1]):
            f = B[..., g]
            for _ in range(order):
                (f,) = torch.autograd.grad(f.sum(), x, create_graph=True)
            cols.append(f)
        assert_close(ref.spline_basis_deriv(x.detach(), grid, k, order), torch.stack(cols, -1).detach(), 1e-9,
                     scale=10.0 ** order)


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("order", range(0, 11))
def test_base_derivatives_of_the_kernel(base, order, device):
    """b^(m) from the kernel's closed form (bspline.h) against nested autograd
    of torch's silu, through the eval op with a one-input identity layer."""
    x = torch.linspace(-9, 9, 61, dtype=F64).unsqueeze(1)
    grid = grid_of_kind("uniform", 1, 3, 3, F64)
    Wb, Wc = torch.ones(1, 1, dtype=F64), torch.zeros(1, 6, 1, dtype=F64)
    got = ops.kan_linear_eval(x.to(device), None, grid.to(device), 3, base, Wb.to(device), Wc.to(device), order)
    exp = ref.base_derivative(base, x, order)
    assert_close(got.cpu(), exp, 1e-9, scale=1.0)


def test_silu_order_limit():
    x, grid, Wb, Wc = _case(3, 5, "uniform")
    with pytest.raises(RuntimeError, match="silu base are computed up to order 10, got order 11"):
        ops.kan_linear_eval(x, None, grid, 3, "silu", Wb, Wc, 11)
    with pytest.raises(RuntimeError, match="order must be >= 0"):
        ops.kan_linear_eval(x, None, grid, 3, "zero", Wb, Wc, -1)
    # B-splines alone: any order (zero beyond k)
    y = ops.kan_linear_eval(x, None, grid, 3, "zero", Wb, Wc, 25)
    assert torch.equal(y, torch.zeros_like(y))


@pytest.mark.parametrize("order", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("k,G,kind,N,inf,out", [(3, 5, "uniform", 9, 3, 4), (2, 7, "skewed", 13, 5, 19),
                                                 (1, 4, "nonuniform", 5, 1, 1), (5, 3, "uniform", 0, 2, 3),
                                                 (4, 20, "nonuniform", 33, 2, 70)])
def test_kan_linear_deriv_ops_vs_reference(order, base, k, G, kind, N, inf, out, device):
    s = seed_of("kld", order, base, k, G, kind, N)
    grid = grid_of_kind(kind, inf, G, k, F64, seed=s)
    x = sample_x(N, grid, seed=s + 1)
    if N > 3:
        x[2, 0] = float("nan")
        x[3, -1] = float("inf")
    v, dy = randn(N, inf, seed=s + 2), randn(N, out, seed=s + 3)
    Wb, Wc = randn(inf, out, seed=s + 4), randn(inf, G + k, out, seed=s + 5)
    d = lambda *ts: [t.to(device) for t in ts]  # noqa: E731
    xd, gd, vd, dyd, Wbd, Wcd = d(x, grid, v, dy, Wb, Wc)
    for vv, vr in ((None, None), (vd, v)):
        exp = ref.kan_linear_eval(x, vr, grid, k, base, Wb, Wc, order)
        got = ops.kan_linear_eval(xd, vv, gd, k, base, Wbd, Wcd, order)
        assert_close(got.cpu(), exp, 1e-10, scale=magnitude(exp))
    exp = ref.kan_linear_transpose(dy, x, grid, k, base, Wb, Wc, order)
    got = ops.kan_linear_transpose(dyd, xd, gd, k, base, Wbd, Wcd, order)
    assert_close(got.cpu(), exp, 1e-10, scale=magnitude(exp))
    for vv, vr in ((None, None), (vd, v)):
        eb, ec = ref.kan_linear_wgrad(dy, x, vr, grid, k, base, order)
        gb, gc = ops.kan_linear_wgrad(dyd, xd, vv, gd, k, base, order)
        sc = max(magnitude(eb), magnitude(ec))
        assert_close(gb.cpu(), eb, 1e-10, scale=sc)
        assert_close(gc.cpu(), ec, 1e-10, scale=sc)


def test_kan_linear_deriv_ops_noncontiguous(device):
    x, grid, Wb, Wc = _case(3, 5, "nonuniform", N=8, inf=4, out=6, device=device)
    xt = x.t().contiguous().t()  # same values, transposed strides
    Wct = Wc.transpose(1, 2).contiguous().transpose(1, 2)
    exp = ops.kan_linear_eval(x, None, grid, 3, "silu", Wb, Wc, 2)
    assert torch.equal(ops.kan_linear_eval(xt, None, grid, 3, "silu", Wb, Wct, 2), exp)


@pytest.mark.parametrize("order", [0, 1, 2, 3])
@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("k,G,kind", [(3, 5, "uniform"), (2, 9, "skewed"), (5, 2, "nonuniform")])
def test_spline_activation_deriv_ops_vs_reference(order, base, k, G, kind, device):
    s = seed_of("sad", order, base, k, G, kind)
    C, N = 5, 23
    grid = grid_of_kind(kind, C, G, k, F64, seed=s)
    z = sample_x(N, grid, seed=s + 1)
    z[4, 2] = float("nan")
    coef, sb, sp, gy = randn(C, G + k, seed=s + 2), randn(C, seed=s + 3), randn(C, seed=s + 4), randn(N, C, seed=s + 5)
    d = lambda *ts: [t.to(device) for t in ts]  # noqa: E731
    exp = ref.spline_activation_eval(z, grid, k, base, coef, sb, sp, order)
    got = ops.spline_activation_eval(*d(z, grid), k, base, *d(coef, sb, sp), order)
    assert_close(got.cpu(), exp, 1e-10, scale=magnitude(exp))
    eB, eb = ref.spline_activation_wgrad(gy, z, grid, k, base, order)
    gB, gb = ops.spline_activation_wgrad(*d(gy, z, grid), k, base, order)
    sc = max(magnitude(eB), magnitude(eb))
    assert_close(gB.cpu(), eB, 1e-10, scale=sc)
    assert_close(gb.cpu(), eb, 1e-10, scale=sc)


def test_deriv_ops_bad_input():
    x, grid, Wb, Wc = _case(3, 5, "uniform")
    with pytest.raises(RuntimeError, match=r"expected v of x's shape"):
        ops.kan_linear_eval(x, x[:, :2], grid, 3, "silu", Wb, Wc, 1)
    with pytest.raises(RuntimeError, match=r"expected Wc of shape"):
        ops.kan_linear_transpose(torch.zeros(7, 4, dtype=F64), x, grid, 3, "silu", Wb, Wc[:, :-1], 1)
    with pytest.raises(RuntimeError, match=r"expected grad_y of shape"):
        ops.kan_linear_transpose(torch.zeros(6, 4, dtype=F64), x, grid, 3, "silu", Wb, Wc, 1)
    with pytest.raises(RuntimeError, match=r"expected dy of shape \(N, out\) with N=7"):
        ops.kan_linear_wgrad(torch.zeros(3, 4, dtype=F64), x, None, grid, 3, "silu", 1)


# ---------------------------------------- gradgradcheck and third order (float64)
@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("kind", ["uniform", "nonuniform"])
def test_kan_linear_gradgradcheck(k, base, kind, device):
    s = seed_of("kgg", k, base, kind)
    x, grid, Wb, Wc = _case(k, 4, kind, N=5, inf=2, out=3, seed=s, device=device)
    x, Wb, Wc = (t.requires_grad_() for t in (x, Wb, Wc))
    f = lambda a, b, c: ops.kan_linear(a, grid, k, base, b, c)  # noqa: E731
    assert gradcheck(f, (x, Wb, Wc))
    assert gradgradcheck(f, (x, Wb, Wc))


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("k", [2, 3, 5])
def test_kan_linear_third_order(base, k, device):
    """gradgradcheck of the gradient: third-order terms in x and the weights."""
    x, grid, Wb, Wc = _case(k, 5, "nonuniform", N=4, inf=2, out=2, seed=seed_of("k3", base, k), device=device)
    x, Wb, Wc = (t.requires_grad_() for t in (x, Wb, Wc))

    def first(a, b, c):
        (gx,) = torch.autograd.grad(ops.kan_linear(a, grid, k, base, b, c).pow(2).sum(), a, create_graph=True)
        return gx

    assert gradgradcheck(first, (x, Wb, Wc))


@pytest.mark.parametrize("k", [1, 3, 5])
def test_spline_basis_gradgradcheck(k, device):
    grid = grid_of_kind("nonuniform", 3, 5, k, F64, seed=k).to(device)
    x = off_knot_x(5, grid.cpu(), seed=k + 1).to(device).requires_grad_()
    assert gradgradcheck(lambda a: ops.spline_basis(a, grid, k), (x,))
    assert gradgradcheck(lambda a: ops.spline_basis_deriv(a, grid, k, 2), (x,))


@pytest.mark.parametrize("shape", [(3, 5, 8), (2, 1, 4)])
def test_fold_gradgradcheck(shape, device):
    coef = randn(*shape, seed=1).to(device).requires_grad_()
    scale = randn(*shape[:2], seed=2).to(device).requires_grad_()
    assert gradgradcheck(ops.fold_spline_weights, (coef, scale))


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("k", [1, 3, 5])
def test_spline_activation_gradgradcheck(base, k, device):
    s = seed_of("agg", base, k)
    C, G = 3, 4
    grid = grid_of_kind("nonuniform", C, G, k, F64, seed=s).to(device)
    z = off_knot_x(6, grid.cpu(), seed=s + 1).to(device).requires_grad_()
    coef, sb, sp = (randn(*sh, seed=s + 2 + i).to(device).requires_grad_()
                    for i, sh in enumerate([(C, G + k), (C,), (C,)]))
    f = lambda a, c, b, p: ops.spline_activation(a, grid, k, base, c, b, p)  # noqa: E731
    assert gradgradcheck(f, (z, coef, sb, sp))

    def first(a, c, b, p):
        (gz,) = torch.autograd.grad(f(a, c, b, p).pow(2).sum(), a, create_graph=True)
        return gz

    assert gradgradcheck(first, (z, coef, sb, sp))


@pytest.mark.parametrize("op", ["eval", "transpose", "wgrad"])
def test_deriv_ops_gradgradcheck_with_v(op, device):
    k = 3
    x, grid, Wb, Wc = _case(k, 4, "nonuniform", N=4, inf=2, out=3, seed=seed_of("dv", op), device=device)
    v = randn(4, 2, seed=9).to(device).requires_grad_()
    dy = randn(4, 3, seed=10).to(device).requires_grad_()
    x, Wb, Wc = (t.requires_grad_() for t in (x, Wb, Wc))
    if op == "eval":
        f, args = (lambda a, w, b, c: ops.kan_linear_eval(a, w, grid, k, "silu", b, c, 1)), (x, v, Wb, Wc)
    elif op == "transpose":
        f, args = (lambda d, a, b, c: ops.kan_linear_transpose(d, a, grid, k, "silu", b, c, 2)), (dy, x, Wb, Wc)
    else:
        f, args = (lambda d, a, w: ops.kan_linear_wgrad(d, a, w, grid, k, "silu", 1)), (dy, x, v)
    assert gradcheck(f, args)
    assert gradgradcheck(f, args)


# ------------------------------------------------ modules: Hessian, Laplacian
def _fd_hessian_diag(f, x, eps=1e-4):
    """Central second differences of f (summed output) along each input."""
    out = []
    for i in range(x.shape[1]):
        e = torch.zeros_like(x)
        e[:, i] = eps
        out.append((f(x + e) - 2 * f(x) + f(x - e)) / eps ** 2)
    return torch.stack(out, 1)


def _laplacian(model, x):
    x = x.detach().requires_grad_()
    (g,) = torch.autograd.grad(model(x).sum(), x, create_graph=True)
    lap = 0
    for i in range(x.shape[1]):
        (h,) = torch.autograd.grad(g[:, i].sum(), x, create_graph=True)
        lap = lap + h[:, i]
    return lap


def test_issue_example_second_derivative_is_not_zero():
    model = kanext.KAN([2, 3, 1], grid=5, seed=0, dtype=F64)
    x = torch.rand(6, 2, dtype=F64, generator=torch.Generator().manual_seed(0), requires_grad=True)
    (g,) = torch.autograd.grad(model(x).sum(), x, create_graph=True)
    (h,) = torch.autograd.grad(g[:, 0].sum(), x)

    def g0(xx):
        xx = xx.detach().requires_grad_()
        return torch.autograd.grad(model(xx).sum(), xx)[0][:, 0]

    e = torch.zeros_like(x)
    e[:, 0] = 1e-6
    fd = (g0(x + e) - g0(x - e)) / 2e-6
    assert h[:, 0].abs().min() > 1e-3
    assert_close(h[:, 0], fd, 1e-6, scale=1.0)


def _models(device, dtype=F64):
    kan = kanext.KAN([2, 4, 3, 1], grid=6, k=3, seed=1, dtype=dtype, device=device)
    with torch.no_grad():  # non-trivial affines and a symbolic edge
        kan.act_fun[0].scale_base.mul_(1.3)
    kan.fix_symbolic(1, 0, 0, "sin", fit_params=False, verbose=False)
    lan = kanext.LAN([2, 5, 1], grid=5, seed=2, dtype=dtype, device=device)
    lin = kanext.KANLinear(2, 3, grid=7, k=2, dtype=dtype, device=device)
    return {"kan": kan, "lan": lan, "kanlinear": lin}


@pytest.mark.parametrize("name", ["kan", "lan", "kanlinear"])
def test_module_hessian_against_finite_differences(name, device):
    model = _models(device)[name]
    x = (torch.rand(11, 2, dtype=F64, generator=torch.Generator().manual_seed(3)) * 1.6 - 0.8).to(device)
    lap = _laplacian(lambda t: model(t).sum(-1), x)
    with torch.no_grad():
        fd = _fd_hessian_diag(lambda t: model(t).sum(-1), x).sum(1)
    assert_close(lap.detach(), fd, 1e-4, scale=float(fd.abs().max()) + 1)


@pytest.mark.parametrize("name", ["kan", "lan", "kanlinear"])
def test_module_torch_func_equals_autograd(name, device):
    model = _models(device)[name]
    params = {n: p.detach() for n, p in model.named_parameters()}
    buffers = dict(model.named_buffers())
    x = (torch.rand(5, 2, dtype=F64, generator=torch.Generator().manual_seed(4)) * 1.6 - 0.8).to(device)

    def f(xi):  # one sample -> scalar
        return functional_call(model, (params, buffers), (xi.unsqueeze(0),)).sum()

    # plain autograd references
    xr = x.detach().requires_grad_()
    (gref,) = torch.autograd.grad(model(xr).sum(), xr, create_graph=True)
    href = torch.stack([torch.autograd.grad(gref[:, i].sum(), xr, retain_graph=True)[0] for i in range(2)], 1)

    assert_close(vmap(grad(f))(x), gref.detach(), 1e-12, scale=1.0)
    assert_close(vmap(jacrev(f))(x), gref.detach(), 1e-12, scale=1.0)
    assert_close(vmap(jacfwd(f))(x), gref.detach(), 1e-12, scale=1.0)
    H = vmap(hessian(f))(x)  # (N, 2, 2): forward-over-reverse
    assert_close(H, href.detach(), 1e-10, scale=1.0)
    assert_close(vmap(jacrev(jacrev(f)))(x), href.detach(), 1e-10, scale=1.0)
    # jvp and vjp over the whole batch
    t = torch.ones_like(x)
    _, tangent = jvp(lambda a: model(a).sum(-1), (x,), (t,))
    assert_close(tangent, (gref.detach() * t).sum(1), 1e-12, scale=1.0)
    out, pull = vjp(lambda a: model(a), x)
    assert_close(pull(torch.ones_like(out))[0], gref.detach(), 1e-12, scale=1.0)


_NESTINGS = [c for d in (1, 2, 3) for c in __import__("itertools").product("FR", repeat=d)] + [
    tuple("FRRR"), tuple("RRRF"), tuple("RFRR"), tuple("FFRR"), tuple("FRFR"), tuple("RRFF")]


@pytest.mark.parametrize("name", ["kanlinear", "kan", "lan"])
def test_nested_forward_levels(name, device):
    """Every nesting of jacfwd (F) and jacrev (R) up to three levels, and some
    of four: with at most one forward level it equals reverse mode all the
    way down (jacrev^d); with two or more it raises NotImplementedError
    (the jvp rules lose tangents there: jacfwd(jacfwd(jacfwd(f))) gave 0,
    jacfwd(hessian(f)) was off by the size of the value, a LAN's
    jacfwd(jacfwd(f)) by 1e-2). The input goes through an op first (z * 1.0),
    which is what exposed the wrong values."""
    torch.manual_seed(0)
    if name == "kanlinear":
        model = kanext.KANLinear(2, 2, grid=5, k=5, dtype=F64, device=device)
        with torch.no_grad():
            model.coef.normal_()
    elif name == "kan":
        model = kanext.KAN([2, 3, 1], grid=5, k=5, seed=1, dtype=F64, device=device)
    else:
        model = kanext.LAN([2, 3, 1], grid=5, k=5, seed=1, dtype=F64, device=device)
    z0 = torch.tensor([0.31, -0.47], dtype=F64, device=device)

    def f(z):
        return model((z * 1.0).unsqueeze(0)).sum()

    refs = {}
    for combo in _NESTINGS:
        depth = len(combo)
        if depth not in refs:
            g = f
            for _ in range(depth):
                g = jacrev(g)
            refs[depth] = g(z0)
        g = f
        for c in reversed(combo):  # combo[0] is the outermost level
            g = (jacfwd if c == "F" else jacrev)(g)
        if combo.count("F") >= 2:
            with pytest.raises(NotImplementedError, match="nested forward-mode derivatives"):
                g(z0)
        else:
            got = g(z0)
            assert_close(got, refs[depth], 1e-9, scale=float(refs[depth].abs().max()) + 1)


def test_parameter_gradients_of_a_laplacian_loss(device):
    """Third-order mixed terms: d/dtheta of a loss built from the Laplacian,
    plain autograd against torch.func (different code paths: the C++ autograd
    of kan_linear_forward, and kanext.autodiff under the transform)."""
    model = kanext.KAN([2, 3, 1], grid=5, k=3, seed=5, dtype=F64, device=device)
    x = (torch.rand(9, 2, dtype=F64, generator=torch.Generator().manual_seed(6)) * 1.8 - 0.9).to(device)
    loss = _laplacian(lambda t: model(t).squeeze(-1), x).pow(2).mean()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    names = [n for n, _ in trainable]
    g_autograd = torch.autograd.grad(loss, [p for _, p in trainable], allow_unused=True)
    buffers = dict(model.named_buffers())

    def loss_of(params):
        def u(xi):
            return functional_call(model, (params, buffers), (xi.unsqueeze(0),)).squeeze()
        H = vmap(hessian(u))(x)
        return (H.diagonal(dim1=1, dim2=2).sum(-1)).pow(2).mean()

    params = {n: p.detach() for n, p in trainable}
    g_func = grad(loss_of)(params)
    for n, ga in zip(names, g_autograd):
        if ga is None:
            assert torch.equal(g_func[n], torch.zeros_like(g_func[n])), n
        else:
            assert_close(g_func[n], ga, 1e-9, scale=float(ga.abs().max()) + 1, msg=n)
    # and against finite differences of the loss in one coefficient
    p = model.act_fun[0].coef
    idx = (0, 1, 3) if p.shape[-1] > 3 else (0, 1, 0)
    eps = 1e-6
    with torch.no_grad():
        p[idx] += eps
    lp = _laplacian(lambda t: model(t).squeeze(-1), x).pow(2).mean().detach()
    with torch.no_grad():
        p[idx] -= 2 * eps
    lm = _laplacian(lambda t: model(t).squeeze(-1), x).pow(2).mean().detach()
    with torch.no_grad():
        p[idx] += eps
    fd = (lp - lm) / (2 * eps)
    i = names.index("act_fun.0.coef")
    assert_close(g_autograd[i][idx], fd, 1e-5, scale=float(fd.abs()) + 1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ops_under_vmap_and_batched_weights(dtype, device):
    """vmap over rows (merged into N) and over weights (one call each)."""
    x, grid, Wb, Wc = _case(3, 5, "uniform", N=6, inf=2, out=3, device=device, dtype=dtype)
    xs = torch.stack([x, x * 0.5, x + 0.1])
    y = vmap(lambda a: ops.kan_linear(a, grid, 3, "silu", Wb, Wc))(xs)
    for b in range(3):
        assert_close(y[b], ops.kan_linear(xs[b], grid, 3, "silu", Wb, Wc), 1e-6 if dtype == torch.float32 else 1e-12)
    Wcs = torch.stack([Wc, 2 * Wc])
    y2 = vmap(lambda c: ops.kan_linear(x, grid, 3, "silu", Wb, c))(Wcs)
    assert_close(y2[1], ops.kan_linear(x, grid, 3, "silu", Wb, 2 * Wc), 1e-6 if dtype == torch.float32 else 1e-12)


# ------------------------------------------------------------ what must raise
def test_plain_forward_mode_ad_carries_tangents(device):
    """torch.autograd.forward_ad (dual tensors, no torch.func) through every
    op wrapper, a raw derivative op and the modules: tangents equal
    torch.func.jvp's (they were silently dropped before: a dual tensor does
    not require grad). The raw C++-autograd op raises instead."""
    import torch.autograd.forward_ad as fwAD

    x, grid, Wb, Wc = _case(3, 5, "nonuniform", N=6, inf=2, out=3, device=device)
    coef, sb, sp = Wc[:, :, 0], Wb[:, 0], Wb[:, 1]
    kan = kanext.KAN([2, 3, 1], grid=4, seed=0, dtype=F64).to(device)
    lan = kanext.LAN([2, 3, 1], grid=4, seed=0, dtype=F64).to(device)
    fns = {
        "kan_linear": lambda a: ops.kan_linear(a, grid, 3, "silu", Wb, Wc),
        "kan_linear_eval": lambda a: ops.kan_linear_eval(a, a * a, grid, 3, "silu", Wb, Wc, 2),
        "spline_basis": lambda a: ops.spline_basis(a, grid, 3),
        "spline_activation": lambda a: ops.spline_activation(a, grid, 3, "silu", coef, sb, sp),
        "edge_stats": lambda a: torch.stack(ops.edge_stats(a, grid, 3, "silu", Wb, Wc)),
        "fold": lambda a: ops.fold_spline_weights(Wc.transpose(1, 2) * a.sum(), Wb),
        "KAN": kan, "LAN": lan,
    }
    raw = {"kan_linear_eval": lambda a: torch.ops.kanext.kan_linear_eval(a, a * a, grid, 3, 2, Wb, Wc, 2)}
    t = randn(*x.shape, seed=77).to(device)
    for name, f in list(fns.items()) + [("raw " + n, g) for n, g in raw.items()]:
        with fwAD.dual_level():
            tan = fwAD.unpack_dual(f(fwAD.make_dual(x, t))).tangent
        _, exp = jvp(fns[name.removeprefix("raw ")], (x,), (t,))
        assert tan is not None, name
        assert_close(tan, exp, 1e-12, scale=magnitude(exp), msg=name)
    with fwAD.dual_level(), pytest.raises(RuntimeError, match="jvp is not implemented for the c\\+\\+ API"):
        torch.ops.kanext.kan_linear_forward(fwAD.make_dual(x, t), grid, 3, 2, Wb, Wc)


def test_raw_hot_ops_under_torch_func_raise_clearly():
    x, grid, Wb, Wc = _case(3, 5, "uniform")
    with pytest.raises(RuntimeError, match="kanext.kan_linear_forward: the raw op has a C\\+\\+ autograd"):
        grad(lambda t: torch.ops.kanext.kan_linear_forward(t, grid, 3, 2, Wb, Wc).sum())(x)
    with pytest.raises(RuntimeError, match="kanext.fold_spline_weights: the raw op"):
        grad(lambda c: torch.ops.kanext.fold_spline_weights(c, Wb).sum())(torch.ones(3, 4, 8, dtype=F64))
    # the public wrappers route to kanext.autodiff
    g = grad(lambda t: ops.kan_linear(t, grid, 3, "silu", Wb, Wc).sum())(x)
    xr = x.clone().requires_grad_()
    (gr,) = torch.autograd.grad(ops.kan_linear(xr, grid, 3, "silu", Wb, Wc).sum(), xr)
    assert_close(g, gr, 1e-12, scale=1.0)


def test_grid_gradients_raise(device):
    x, grid, Wb, Wc = _case(3, 5, "uniform", device=device)
    g = grid.clone().requires_grad_()
    with pytest.raises(RuntimeError, match="gradients with respect to grid are not supported"):
        ops.kan_linear_eval(x, None, g, 3, "silu", Wb, Wc, 1).sum().backward()
    with pytest.raises(RuntimeError, match="gradients with respect to grid are not supported"):
        jvp(lambda t: ops.spline_basis(x, t, 3), (grid,), (torch.ones_like(grid),))


def test_first_order_results_unchanged_by_the_routing(device):
    """The C++ fast path and the torch.func path give bit-identical gradients."""
    x, grid, Wb, Wc = _case(3, 5, "nonuniform", N=40, inf=3, out=5, device=device)
    xr, Wbr, Wcr = (t.clone().requires_grad_() for t in (x, Wb, Wc))
    gy = torch.ones(40, 5, dtype=F64, device=device)
    ops.kan_linear(xr, grid, 3, "silu", Wbr, Wcr).backward(gy)
    gf = grad(lambda a, b, c: ops.kan_linear(a, grid, 3, "silu", b, c).sum(), argnums=(0, 1, 2))(x, Wb, Wc)
    for a, b in zip((xr.grad, Wbr.grad, Wcr.grad), gf):
        assert torch.equal(a, b)


# ------------------------------------------------------ opcheck, torch.compile
@pytest.mark.parametrize("order", [1, 2])
def test_opcheck_derivative_ops(order, device):
    K = torch.ops.kanext
    x, grid, Wb, Wc = _case(3, 5, "nonuniform", N=6, inf=3, out=4, device=device)
    rg = lambda t: t.clone().requires_grad_()  # noqa: E731
    v, dy = randn(6, 3, seed=1).to(device), randn(6, 4, seed=2).to(device)
    torch.library.opcheck(K.spline_basis_deriv.default, (rg(x), grid, 3, order + 1))
    torch.library.opcheck(K.kan_linear_eval.default, (rg(x), rg(v), grid, 3, 2, rg(Wb), rg(Wc), order))
    torch.library.opcheck(K.kan_linear_eval.default, (rg(x), None, grid, 3, 1, rg(Wb), rg(Wc), order))
    torch.library.opcheck(K.kan_linear_transpose.default, (rg(dy), rg(x), grid, 3, 2, rg(Wb), rg(Wc), order))
    torch.library.opcheck(K.kan_linear_wgrad.default, (rg(dy), rg(x), rg(v), grid, 3, 2, order))
    C = 3
    coef, sb, sp = randn(C, 8, seed=3).to(device), randn(C, seed=4).to(device), randn(C, seed=5).to(device)
    torch.library.opcheck(K.spline_activation_eval.default, (rg(x), grid, 3, 2, rg(coef), rg(sb), rg(sp), order))
    torch.library.opcheck(K.spline_activation_wgrad.default, (rg(dy[:, :3]), rg(x), grid, 3, 2, order))
    # the first-order backward ops, now differentiable
    torch.library.opcheck(K.kan_linear_backward.default, (rg(dy), rg(x), grid, 3, 2, rg(Wb), rg(Wc), True, True))
    torch.library.opcheck(K.spline_activation_backward.default,
                          (rg(dy[:, :3]), rg(x), grid, 3, 2, rg(coef), rg(sb), rg(sp), True, True))


def test_compiled_model_double_backward_raises_not_silent():
    """torch.compile (AOTAutograd) does not support double backward through a
    compiled region in torch 2.13: a Laplacian of a compiled KAN must raise,
    never return zeros. First derivatives of the compiled model equal eager.
    Dynamo's caches are reset first: after another model of the same class was
    compiled in this process (tests/test_compiler.py's, with aot_eager), torch
    compiles this one's backward with donated buffers, and the first
    create_graph=True grad already raises (also an error, not a silent answer)."""
    torch._dynamo.reset()
    model = kanext.KAN([2, 4, 1], grid=5, seed=7, dtype=F64)
    cmodel = torch.compile(model, fullgraph=True)
    x = (torch.rand(17, 2, dtype=F64, generator=torch.Generator().manual_seed(8)) * 1.8 - 0.9).requires_grad_()
    (g_eager,) = torch.autograd.grad(model(x).sum(), x)
    (g,) = torch.autograd.grad(cmodel(x).sum(), x, create_graph=True)
    assert_close(g.detach(), g_eager, 1e-12, scale=magnitude(g_eager))
    with pytest.raises(RuntimeError, match="double backward"):
        torch.autograd.grad(g[:, 0].sum(), x)


def test_compiled_derivative_ops_fullgraph():
    x, grid, Wb, Wc = _case(3, 5, "uniform", N=9, inf=3, out=4)
    v, dy = randn(9, 3, seed=1), randn(9, 4, seed=2)

    def f(x, v, Wb, Wc, dy):
        y = ops.kan_linear_eval(x, v, grid, 3, "silu", Wb, Wc, 2)
        t = ops.kan_linear_transpose(dy, x, grid, 3, "silu", Wb, Wc, 1)
        gb, gc = ops.kan_linear_wgrad(dy, x, v, grid, 3, "silu", 1)
        return y.sum() + t.sum() + gb.sum() + gc.sum()

    eager = f(x, v, Wb, Wc, dy)
    compiled = torch.compile(f, fullgraph=True)(x, v, Wb, Wc, dy)
    assert_close(compiled, eager, 1e-12, scale=magnitude(eager))


def test_leading_batch_dims_second_derivatives():
    """(..., in) inputs: the Laplacian of KANLinear / KAN on (B, T, in) equals
    that of the flattened (B*T, in) input, with plain autograd and torch.func."""
    lin = kanext.KANLinear(2, 3, grid=5, k=3, dtype=F64)
    kan = kanext.KAN([2, 3, 1], grid=4, seed=3, dtype=F64)
    x = torch.rand(4, 5, 2, dtype=F64, generator=torch.Generator().manual_seed(9)) * 1.8 - 0.9
    for model in (lin, kan):
        xr = x.clone().requires_grad_()
        (g,) = torch.autograd.grad(model(xr).sum(), xr, create_graph=True)
        h = sum(torch.autograd.grad(g[..., i].sum(), xr, retain_graph=True)[0][..., i] for i in range(2))
        flat = _laplacian(lambda t: model(t).sum(-1), x.reshape(-1, 2)).detach()
        assert h.shape == (4, 5)
        assert_close(h.reshape(-1), flat, 1e-12, scale=magnitude(flat))
        H = vmap(vmap(hessian(lambda xi: model(xi).sum())))(x)
        assert_close(H.diagonal(dim1=-2, dim2=-1).sum(-1), h, 1e-10, scale=magnitude(flat))


@pytest.mark.parametrize("name", ["kan", "lan", "kanlinear"])
def test_float32_second_derivatives_match_float64(name, device):
    """The derivative kernels in float32: the Laplacian and its parameter
    gradients of a float32 model agree with the float64 twin to float32 accuracy."""
    m64 = _models(device)[name]
    m32 = copy.deepcopy(m64).to(torch.float32)  # the same model in float32
    x = (torch.rand(13, 2, dtype=F64, generator=torch.Generator().manual_seed(11)) * 1.6 - 0.8).to(device)
    out = {}
    for key, m, xx in (("64", m64, x), ("32", m32, x.float())):
        lap = _laplacian(lambda t: m(t).sum(-1), xx)
        p = next(q for n, q in m.named_parameters() if n.endswith("coef"))
        (gp,) = torch.autograd.grad(lap.pow(2).sum(), p)
        out[key] = (lap.detach().double(), gp.double())
    assert_close(out["32"][0], out["64"][0], 2e-4, scale=magnitude(out["64"][0]))
    assert_close(out["32"][1], out["64"][1], 2e-4, scale=magnitude(out["64"][1]))


def test_every_op_has_an_autograd_kernel():
    """No op falls back to torch's autograd-not-implemented path (which warns
    and gives silent zeros for higher derivatives)."""
    import os
    import re

    src = open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "csrc", "ops.cpp")).read()
    names = re.findall(r'"(\w+)\(Tensor', src)  # every schema in csrc/ops.cpp
    assert len(names) >= 15, names
    for n in names:
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"kanext::{n}", "Autograd"), n


def test_fold_backward_op_is_differentiable():
    coef = randn(3, 4, 6, seed=1).requires_grad_()
    scale = randn(3, 4, seed=2).requires_grad_()
    g = randn(3, 6, 4, seed=3).requires_grad_()
    assert gradcheck(lambda a, b, c: torch.ops.kanext.fold_spline_weights_backward(a, b, c), (g, coef, scale))
