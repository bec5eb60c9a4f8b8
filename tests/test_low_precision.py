"""bfloat16 and float16 on the CPU (kanext/ops.py, "bfloat16 / float16 on the
CPU"): every kanext.ops function and every module accepts 16-bit CPU tensors,
upcasts them to float32 (exactly), runs the float32 kernel and rounds each
result once to the inputs' dtype; gradients come back in each input's dtype.

What is checked, and the tolerances (u is the unit roundoff: 2**-8 for
bfloat16, 2**-11 for float16):

- ops: the 16-bit call equals the float32 call on the same (upcast) values,
  rounded to the dtype, bit for bit, forward and backward (the backward
  cotangents being 16-bit values too), including an empty batch and
  second derivatives; and |y16 - y64| <= u |y64| + 1e-5 max |y64| against
  the float64 kernel on the same values (one rounding of a float32 result).
- modules: a module in 16 bits against the same module (the same rounded
  parameters) in float32, forward and every gradient, each tensor within
  C u max|float32 tensor|: C = 4 for one layer (KANLinear, SplineActivation,
  LANLayer: the output and the folded weights are rounded once each, the
  backward's intermediate gradients once more), C = 32 for two-layer
  networks (KAN with affines and a symbolic edge, LAN), where the rounding
  of each layer's output is amplified by the next layer, as in any network
  run in 16 bits. Measured worst cases over 8 seeds are about half of these.
- float32 / float64 calls never take the 16-bit path.
"""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import kanext
from kanext import checks, ops

from helpers import dname, make_grid, randn, sample_x

HALF = (torch.bfloat16, torch.float16)
U = {torch.bfloat16: 2.0**-8, torch.float16: 2.0**-11}
INT = {torch.bfloat16: torch.int16, torch.float16: torch.int16, torch.float32: torch.int32,
       torch.float64: torch.int64}


def assert_same_bits(got, want, msg):
    assert got.dtype == want.dtype and got.shape == want.shape, \
        f"{msg}: {got.dtype}{tuple(got.shape)} vs {want.dtype}{tuple(want.shape)}"
    ity = INT[got.dtype]
    diff = got.detach().contiguous().view(ity) != want.detach().contiguous().view(ity)
    assert not bool(diff.any()), (f"{msg}: {int(diff.sum())}/{diff.numel()} entries differ, max |diff| "
                                  f"{(got.double() - want.double()).abs().max().item():.3e}")


def assert_within(got, want, c, dt, msg):
    """|got - want| <= c u max|want| (got in dt, want in float32)."""
    assert got.dtype == dt, f"{msg}: dtype {got.dtype}, expected {dt}"
    assert got.shape == want.shape, f"{msg}: shape {tuple(got.shape)} vs {tuple(want.shape)}"
    if want.numel() == 0:
        return
    scale = want.abs().max().item()
    err = (got.double() - want.double()).abs().max().item()
    assert err <= c * U[dt] * scale, f"{msg}: max |diff| {err:.3e} > {c} u max|want| = {c * U[dt] * scale:.3e}"


# ====================================================================== ops
IN, OUT, G, K = 3, 2, 5, 3


def _inputs(dt, n, grid_dtype, seed=0):
    """Every tensor the ops take, with values exact in dt (the grid in
    grid_dtype: dt or float32)."""
    grid = make_grid(IN, G, K, torch.float64, uniform=False, seed=seed)
    grid = grid.to(dt).to(grid_dtype)  # knots representable in dt either way
    s = seed * 100
    t = dict(
        x=sample_x(n, grid.double(), seed=s + 1, widen=0.2),
        Wb=randn(IN, OUT, seed=s + 2), Wc=randn(IN, G + K, OUT, seed=s + 3),
        Vb=randn(IN, OUT, seed=s + 4), Vc=randn(IN, G + K, OUT, seed=s + 5),
        v=randn(n, IN, seed=s + 6), gy=randn(n, OUT, seed=s + 7), gz=randn(n, IN, seed=s + 8),
        coef=randn(IN, G + K, seed=s + 9), sb=randn(IN, seed=s + 10), sp=randn(IN, seed=s + 11),
        coef3=randn(IN, OUT, G + K, seed=s + 12),
        g1=randn(IN, OUT, seed=s + 13), g2=randn(IN, OUT, seed=s + 14), g3=randn(IN, OUT, seed=s + 15),
    )
    t = {name: v.to(dt) for name, v in t.items()}
    t["grid"] = grid
    return t


# name -> (function of the tensors, the differentiable tensors)
OPS = {
    "spline_basis": (lambda t: ops.spline_basis(t["x"], t["grid"], K), ("x",)),
    "spline_basis_deriv": (lambda t: ops.spline_basis_deriv(t["x"], t["grid"], K, 2), ("x",)),
    "kan_linear": (lambda t: ops.kan_linear(t["x"], t["grid"], K, "silu", t["Wb"], t["Wc"]), ("x", "Wb", "Wc")),
    "kan_linear_forward": (lambda t: ops.kan_linear_forward(t["x"], t["grid"], K, 1, t["Wb"], t["Wc"]),
                           ("x", "Wb", "Wc")),
    "kan_linear_backward": (lambda t: ops.kan_linear_backward(t["gy"], t["x"], t["grid"], K, 2, t["Wb"], t["Wc"]),
                            ("gy", "x", "Wb", "Wc")),
    "fold_spline_weights": (lambda t: ops.fold_spline_weights(t["coef3"], t["g1"]), ("coef3", "g1")),
    "edge_stats": (lambda t: ops.edge_stats(t["x"], t["grid"], K, "silu", t["Wb"], t["Wc"]), ("x", "Wb", "Wc")),
    "edge_stats_backward": (lambda t: ops.edge_stats_backward(t["g1"], t["g2"], t["g3"], t["x"], t["grid"], K, 2,
                                                              t["Wb"], t["Wc"]), ("g1", "g2", "g3", "x", "Wb", "Wc")),
    "spline_activation": (lambda t: ops.spline_activation(t["x"], t["grid"], K, "silu", t["coef"], t["sb"], t["sp"]),
                          ("x", "coef", "sb", "sp")),
    "spline_activation_backward": (lambda t: ops.spline_activation_backward(
        t["gz"], t["x"], t["grid"], K, "silu", t["coef"], t["sb"], t["sp"]), ("gz", "x", "coef", "sb", "sp")),
    "kan_linear_eval": (lambda t: ops.kan_linear_eval(t["x"], t["v"], t["grid"], K, 2, t["Wb"], t["Wc"], 1),
                        ("x", "v", "Wb", "Wc")),
    "kan_linear_transpose": (lambda t: ops.kan_linear_transpose(t["gy"], t["x"], t["grid"], K, 2, t["Wb"], t["Wc"],
                                                                1), ("gy", "x", "Wb", "Wc")),
    "kan_linear_wgrad": (lambda t: ops.kan_linear_wgrad(t["gy"], t["x"], t["v"], t["grid"], K, 2, 0),
                         ("gy", "x", "v")),
    "spline_activation_eval": (lambda t: ops.spline_activation_eval(t["x"], t["grid"], K, 2, t["coef"], t["sb"],
                                                                    t["sp"], 1), ("x", "coef", "sb", "sp")),
    "spline_activation_wgrad": (lambda t: ops.spline_activation_wgrad(t["gz"], t["x"], t["grid"], K, 2, 0),
                                ("gz", "x")),
    "edge_product": (lambda t: ops.edge_product(t["x"], t["grid"], K, 2, t["Wb"], t["Wc"], t["Vb"], t["Vc"], 1, 0, 1),
                     ("x", "Wb", "Wc", "Vb", "Vc")),
    "edge_product_wgrad": (lambda t: ops.edge_product_wgrad(t["x"], t["v"], t["grid"], K, 2, t["Wb"], t["Wc"], 1, 0,
                                                            0), ("x", "v", "Wb", "Wc")),
}


def _outs(y):
    return [y] if isinstance(y, torch.Tensor) else list(y)


def _run(name, t, cots):
    """The op's outputs and the gradients of sum(out * cot) in its differentiable tensors."""
    fn, diff = OPS[name]
    t = dict(t)
    for d in diff:
        t[d] = t[d].detach().clone().requires_grad_()
    outs = _outs(fn(t))
    grads = torch.autograd.grad(outs, [t[d] for d in diff], [c.to(o.dtype) for o, c in zip(outs, cots)],
                                allow_unused=True, materialize_grads=True)
    return outs, grads


@pytest.mark.parametrize("grid16", [True, False], ids=["grid16", "grid32"])
@pytest.mark.parametrize("n", [7, 0], ids=["N7", "N0"])
@pytest.mark.parametrize("dt", HALF, ids=dname)
@pytest.mark.parametrize("name", list(OPS))
def test_op_is_the_float32_op_rounded(name, dt, n, grid16):
    t16 = _inputs(dt, n, dt if grid16 else torch.float32)
    t32 = {k: v.float() for k, v in t16.items()}
    probe = _outs(OPS[name][0](t32))
    cots = [randn(*o.shape, seed=50 + i).to(dt) for i, o in enumerate(probe)]  # 16-bit cotangents
    outs16, grads16 = _run(name, t16, cots)
    outs32, grads32 = _run(name, t32, cots)
    for i, (a, b) in enumerate(zip(outs16, outs32)):
        assert_same_bits(a, b.to(dt), f"{name} output {i}")
    for d, a, b in zip(OPS[name][1], grads16, grads32):
        assert a.dtype == dt, f"{name}: gradient of {d} is {a.dtype}"
        assert_same_bits(a, b.to(dt), f"{name}: gradient of {d}")


@pytest.mark.parametrize("dt", HALF, ids=dname)
@pytest.mark.parametrize("name", ["kan_linear", "spline_activation", "edge_stats", "spline_basis"])
def test_op_accuracy_against_float64(name, dt):
    """One rounding of a float32 result: |y16 - y64| <= u |y64| + 1e-5 max |y64|."""
    t16 = _inputs(dt, 64, dt, seed=3)
    ys16 = _outs(OPS[name][0](t16))
    ys64 = _outs(OPS[name][0]({k: v.double() for k, v in t16.items()}))
    for a, b in zip(ys16, ys64):
        assert a.dtype == dt
        bound = U[dt] * b.abs() + 1e-5 * b.abs().max()
        excess = ((a.double() - b).abs() - bound).max().item()
        assert excess <= 0, f"{name}: error exceeds the bound by {excess:.3e}"


@pytest.mark.parametrize("dt", HALF, ids=dname)
@pytest.mark.parametrize("name", ["kan_linear", "spline_activation", "edge_stats"])
def test_second_derivatives_are_the_float32_ones_rounded(name, dt):
    fn, diff = OPS[name]
    cot2 = randn(7, IN, seed=77).to(dt)
    res = {}
    for key, conv in (("16", lambda v: v), ("32", lambda v: v.float())):
        t = {k: conv(v) for k, v in _inputs(dt, 7, dt, seed=5).items()}
        for d in diff:
            t[d] = t[d].detach().clone().requires_grad_()
        outs = _outs(fn(t))
        cots = [randn(*o.shape, seed=60 + i).to(dt).to(o.dtype) for i, o in enumerate(outs)]
        gx, = torch.autograd.grad(outs, [t["x"]], cots, create_graph=True)
        second = torch.autograd.grad(gx, [t[d] for d in diff], cot2.to(gx.dtype), allow_unused=True,
                                     materialize_grads=True)
        res[key] = (gx, second)
    assert_same_bits(res["16"][0], res["32"][0].to(dt), f"{name}: first derivative in x")
    for d, a, b in zip(diff, res["16"][1], res["32"][1]):
        assert a.dtype == dt, f"{name}: second derivative wrt {d} is {a.dtype}"
        assert_same_bits(a, b.to(dt), f"{name}: second derivative wrt x and {d}")


@pytest.mark.parametrize("dt", HALF, ids=dname)
def test_torch_func_in_16_bits(dt):
    """hessian (jacfwd of jacrev), jvp and vmap through the 16-bit path."""
    t = _inputs(dt, 4, dt, seed=9)

    def f(x, Wb):
        return ops.kan_linear(x, t["grid"].to(x.dtype), K, "silu", Wb, t["Wc"].to(x.dtype)).sum()

    H16 = torch.func.hessian(f)(t["x"], t["Wb"])
    H32 = torch.func.hessian(f)(t["x"].float(), t["Wb"].float())
    assert_same_bits(H16, H32.to(dt), "hessian in x")

    def act(z):
        return ops.spline_activation(z, t["grid"].to(z.dtype), K, "silu", t["coef"].to(z.dtype), t["sb"].to(z.dtype),
                                     t["sp"].to(z.dtype))

    tan = torch.ones_like(t["x"])
    _, j16 = torch.func.jvp(act, (t["x"],), (tan,))
    _, j32 = torch.func.jvp(act, (t["x"].float(),), (tan.float(),))
    assert_same_bits(j16, j32.to(dt), "jvp")
    xb = t["x"].expand(3, -1, -1)
    assert_same_bits(torch.func.vmap(act)(xb), torch.func.vmap(act)(xb.float()).to(dt), "vmap")


MIXED = [
    ("Wb float32", lambda t: ops.kan_linear(t["x"], t["grid"], K, "silu", t["Wb"].float(), t["Wc"]),
     r"kanext.kan_linear: Wb has dtype torch.float32 but x has dtype torch.bfloat16"),
    ("Wc float64", lambda t: ops.kan_linear(t["x"], t["grid"], K, "silu", t["Wb"], t["Wc"].double()),
     r"kanext.kan_linear: Wc has dtype torch.float64 but x has dtype torch.bfloat16"),
    ("Wc float16", lambda t: ops.kan_linear(t["x"], t["grid"], K, "silu", t["Wb"], t["Wc"].half()),
     r"kanext.kan_linear: Wc has dtype torch.float16 but x has dtype torch.bfloat16"),
    ("grid float64", lambda t: ops.spline_basis(t["x"], t["grid"].double(), K),
     r"kanext.spline_basis: with x of dtype torch.bfloat16 the grid must be float32 or torch.bfloat16, "
     r"got torch.float64"),
    ("grid float16", lambda t: ops.spline_activation(t["x"], t["grid"].half(), K, "silu", t["coef"], t["sb"],
                                                     t["sp"]),
     r"kanext.spline_activation: with z of dtype torch.bfloat16 the grid must be float32 or torch.bfloat16, "
     r"got torch.float16"),
    ("coef float32", lambda t: ops.spline_activation(t["x"], t["grid"], K, "silu", t["coef"].float(), t["sb"],
                                                     t["sp"]),
     r"kanext.spline_activation: coef has dtype torch.float32 but z has dtype torch.bfloat16"),
    ("grad_y float32", lambda t: ops.kan_linear_backward(t["gy"].float(), t["x"], t["grid"], K, 2, t["Wb"], t["Wc"]),
     r"kanext.kan_linear_backward: grad_y has dtype torch.float32 but x has dtype torch.bfloat16"),
    ("fold scale", lambda t: ops.fold_spline_weights(t["coef3"], t["g1"].double()),
     r"kanext.fold_spline_weights: scale has dtype torch.float64 but coef has dtype torch.bfloat16"),
    # 16-bit weights with a float32 x: the kernel's own check (x sets the dtype)
    ("x float32", lambda t: ops.kan_linear(t["x"].float(), t["grid"].float(), K, "silu", t["Wb"], t["Wc"]),
     r"weight dtype BFloat16 differs from x dtype Float"),
]


@pytest.mark.parametrize("case", MIXED, ids=[c[0] for c in MIXED])
def test_unsupported_mixes_raise_naming_the_dtypes(case):
    _, call, match = case
    with pytest.raises(RuntimeError, match=match):
        call(_inputs(torch.bfloat16, 5, torch.bfloat16))


def test_module_and_input_dtypes_must_agree():
    layer = kanext.KANLinear(3, 2).bfloat16()
    with pytest.raises(RuntimeError, match="grid dtype BFloat16 differs from x dtype Float"):
        layer(torch.rand(4, 3))
    layer = kanext.KANLinear(3, 2)
    with pytest.raises(RuntimeError, match="has dtype torch.float32 but x has dtype torch.float16"):
        layer(torch.rand(4, 3).half())


def test_cpu_autocast_accepts_16_bit_activations_into_float32_layers():
    """Under torch.autocast('cpu') an nn.Linear hands bfloat16 to the next
    layer; a float32 kanext layer then runs in float32 and returns float32
    (the widest dtype), forward and backward, compiled too."""
    torch.manual_seed(0)
    x = torch.randn(6, 8)
    for model in (nn.Sequential(nn.Linear(8, 16), nn.ReLU(), kanext.KANLinear(16, 4)),
                  kanext.LAN([8, 5, 2], seed=0)):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = model(x)
            yc = torch.compile(model, backend="aot_eager", fullgraph=True)(x)
        assert y.dtype == yc.dtype == torch.float32
        assert torch.equal(y, yc)
        y.sum().backward()
        assert all(p.grad.dtype == torch.float32 for p in model.parameters())
    layer = kanext.KANLinear(3, 2)
    x16 = torch.rand(5, 3).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(x16)
    assert y.dtype == torch.float32
    assert torch.equal(y, layer(x16.float()))


def test_float32_and_float64_never_take_the_16_bit_path(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("the 16-bit path was taken")

    monkeypatch.setattr(ops, "_f32", refuse)
    for dt in (torch.float32, torch.float64):
        for model in (kanext.KAN([3, 4, 2], seed=0, dtype=dt), kanext.LAN([3, 4, 2], seed=0, dtype=dt)):
            x = torch.rand(9, 3, dtype=dt, requires_grad=True)
            model(x).sum().backward()
            model.save_act = True
            model(x)
        t = _inputs(torch.bfloat16, 5, torch.bfloat16)
        for name, (fn, _) in OPS.items():
            fn({k: v.to(dt) for k, v in t.items()})


# ================================================================== modules
def _kan(seed, symbolic=False):
    m = kanext.KAN([3, 4, 2], grid=5, seed=seed, affine_trainable=True)
    with torch.no_grad():  # non-identity affines
        for ps in (m.node_scale, m.subnode_scale):
            for p in ps:
                p.uniform_(0.5, 1.5)
        for ps in (m.node_bias, m.subnode_bias):
            for p in ps:
                p.uniform_(-0.3, 0.3)
    if symbolic:
        m.fix_symbolic(0, 1, 2, "sin", fit_params=False, verbose=False)
    return m


def _lan(seed, symbolic=False):
    m = kanext.LAN([3, 4, 2], grid=5, seed=seed)
    if symbolic:
        m.fix_symbolic(0, 1, "sin", fit_params=False, verbose=False, x=torch.rand(20, 3))
    return m


MODULES = {  # name -> (builder, C of the module docstring)
    "KANLinear": (lambda s: kanext.KANLinear(3, 4, generator=torch.Generator().manual_seed(s)), 4),
    "KANLinear-identity-k1": (lambda s: kanext.KANLinear(3, 4, grid=7, k=1, base_fun="identity",
                                                         generator=torch.Generator().manual_seed(s)), 4),
    "SplineActivation": (lambda s: kanext.SplineActivation(3, noise_scale=0.5,
                                                           generator=torch.Generator().manual_seed(s)), 4),
    "LANLayer": (lambda s: kanext.LANLayer(3, 4, generator=torch.Generator().manual_seed(s)), 4),
    "KAN": (lambda s: _kan(s), 32),
    "KAN-symbolic": (lambda s: _kan(s, True), 32),
    "LAN": (lambda s: _lan(s), 32),
    "LAN-symbolic": (lambda s: _lan(s, True), 32),
}


def _module_pair(name, dt, seed=0):
    torch.manual_seed(seed)
    m16 = MODULES[name][0](seed).to(dt)
    return m16, copy.deepcopy(m16).float()  # the same rounded parameters, in float32


@pytest.mark.parametrize("dt", HALF, ids=dname)
@pytest.mark.parametrize("name", list(MODULES))
def test_module_matches_its_float32_twin(name, dt):
    m16, m32 = _module_pair(name, dt)
    c = MODULES[name][1]
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(64, 3, generator=g) * 2.4 - 1.2).to(dt)
    x16, x32 = x.clone().requires_grad_(), x.float().requires_grad_()
    y16, y32 = m16(x16), m32(x32)
    assert_within(y16, y32.detach(), c, dt, f"{name} forward")
    gy = torch.randn(y32.shape, generator=g).to(dt)
    y16.backward(gy)
    y32.backward(gy.float())
    assert_within(x16.grad, x32.grad, c, dt, f"{name} grad x")
    for (pn, p), q in zip(m16.named_parameters(), m32.parameters()):
        assert (p.grad is None) == (q.grad is None), pn
        if p.grad is not None:
            assert_within(p.grad, q.grad, c, dt, f"{name} grad {pn}")
    coef = [p for pn, p in m16.named_parameters() if pn.endswith("coef")]
    assert all(p.grad.is_contiguous() for p in coef)  # dense, as LBFGS needs


@pytest.mark.parametrize("dt", HALF, ids=dname)
@pytest.mark.parametrize("name", list(MODULES))
def test_module_empty_batch(name, dt):
    m16, _ = _module_pair(name, dt)
    x = torch.zeros(0, 3, dtype=dt, requires_grad=True)
    y = m16(x)
    assert y.dtype == dt and y.shape[0] == 0
    y.sum().backward()
    assert x.grad.dtype == dt and x.grad.shape == (0, 3)
    for pn, p in m16.named_parameters():
        if p.grad is not None:
            assert p.grad.dtype == dt and not bool(p.grad.any()), pn


def test_to_bfloat16_round_trip():
    """model.to(torch.bfloat16) and back, as with nn.Linear: every floating
    tensor follows, the pruning mask and the symbolic edge survive, the mask
    cache sees the new tensors, and the float32 model afterwards is the
    original with its parameters rounded to bfloat16."""
    x = torch.rand(50, 3) * 2 - 1
    m = _kan(0)
    m.save_act = True
    m(x)
    m.save_act = False
    m.fix_symbolic(0, 2, 1, "x^2", verbose=False)
    m.remove_edge(0, 0, 3)
    want = m(x)

    b = copy.deepcopy(m).to(torch.bfloat16)
    for k, v in b.state_dict().items():
        if v.is_floating_point():
            assert v.dtype == torch.bfloat16, k
    yb = b(x.bfloat16())
    assert yb.dtype == torch.bfloat16
    assert (yb.float() - want).abs().max() <= 64 * U[torch.bfloat16] * want.abs().max()
    assert float(b.act_fun[0].mask[0, 3]) == 0.0
    b.remove_edge(0, 1, 0)  # edited in bfloat16: the mask cache follows
    m.remove_edge(0, 1, 0)
    assert torch.equal(b(x.bfloat16()), copy.deepcopy(m).bfloat16()(x.bfloat16()))
    rounded = {k: v.to(torch.bfloat16).to(v.dtype) if v.is_floating_point() else v for k, v in m.state_dict().items()}

    back = copy.deepcopy(b).float()
    for k, v in back.state_dict().items():
        assert torch.equal(v, rounded[k]), k
    twin = copy.deepcopy(m)
    twin.load_state_dict(rounded)
    assert torch.equal(back(x), twin(x))


@pytest.mark.parametrize("name", ["KAN-symbolic", "LAN-symbolic"])
def test_compiled_16_bit_model_equals_eager(name):
    """torch.compile(fullgraph=True) traces the 16-bit path (the casts are
    graph ops): forward and gradients equal eager."""
    torch._dynamo.reset()
    m16, _ = _module_pair(name, torch.bfloat16)
    compiled = torch.compile(m16, backend="aot_eager", fullgraph=True)
    x = (torch.rand(20, 3) * 2 - 1).bfloat16()
    res = []
    for f in (compiled, m16):
        m16.zero_grad()
        xs = x.clone().requires_grad_()
        y = f(xs)
        y.float().pow(2).sum().backward()
        res.append([y, xs.grad] + [p.grad for p in m16.parameters() if p.grad is not None])
    for a, b in zip(*res):
        assert_same_bits(a, b, f"{name} compiled vs eager")
    torch._dynamo.reset()


def test_checks_knows_the_kernel_base_names():
    """kanext.checks (which holds the 16-bit dtype rule and is imported by
    kanext.ops) keeps its own list of the kernel base names."""
    assert sorted(checks.BASE_NAMES) == sorted(ops.BASE_IDS)


@pytest.mark.parametrize("dt", HALF, ids=dname)
def test_edge_scales_reg_and_attribution_match_float32(dt):
    """The regulariser's and attribution's edge statistics of a 16-bit model
    are reduced in float32: before, float16 floored every edge's std at 0.088
    (finfo(float16).tiny ** 0.5 added to the variance) and the sum of squares
    was a 16-bit sum."""
    torch.manual_seed(0)
    m = kanext.KAN([2, 3, 1], grid=5, k=3, seed=0)
    with torch.no_grad():
        m.act_fun[0].coef.mul_(torch.linspace(0.01, 1.0, 6).reshape(2, 3, 1))  # weak and strong edges
    h = copy.deepcopy(m).to(dt)
    m.load_state_dict({k: v.to(torch.float32) for k, v in h.state_dict().items()})  # the same rounded weights
    x = torch.rand(400, 2) * 2 - 1
    x16 = x.to(dt)
    u = U[dt]
    for metric in ("edge_forward_spline_n", "edge_forward_l1"):
        s32 = kanext.regularization.edge_scales(m.act_fun[0], x16.float(), metric)
        s16 = kanext.regularization.edge_scales(h.act_fun[0], x16, metric)
        assert s16.dtype == dt
        assert (s16.float() - s32).abs().max() <= 8 * u * s32.abs().max(), metric
    r32, r16 = m.reg(x16.float()).item(), h.reg(x16).item()
    assert abs(r16 - r32) <= 32 * u * abs(r32)
    m.attribute(x=x16.float())
    h.attribute(x=x16)
    assert (h.feature_score.float() - m.feature_score).abs().max() <= 32 * u * m.feature_score.abs().max()
