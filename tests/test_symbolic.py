"""Tests of kanext.symbolic: the library, the batched fitting, the symbolic
branch of a KAN, the formula, checkpoints, refine, and two Feynman-style
end-to-end recoveries (x*y and x/y)."""
from __future__ import annotations

import math
import warnings

import pytest
import sympy
import safetensors.torch
import torch

import kanext
from kanext import symbolic
from kanext.symbolic import formula
from kanext.checkpoint import CheckpointError
from kanext.symbolic import SYMBOLIC_LIB, SymbolicLayer, fit_params, to_latex, to_torch

from helpers import gen

F64 = torch.float64


def _kan(width=(2, 3, 2), seed=0, **kw):
    return kanext.KAN(list(width), grid=5, seed=seed, dtype=F64, **kw)


def _record(model, n=300, seed=0, lo=-1.0, hi=1.0):
    x = torch.rand(n, model.width[0], generator=gen(seed), dtype=F64) * (hi - lo) + lo
    model.save_act = True
    model(x)
    model.save_act = False
    return x


# ------------------------------------------------------------------ library


def test_library_matches_pykan_names_and_complexities():
    from kan.utils import SYMBOLIC_LIB as PYKAN_LIB

    required = ["0", "x", "x^2", "x^3", "x^4", "x^5", "1/x", "1/x^2", "1/x^3", "1/x^4", "1/x^5", "sqrt", "x^0.5",
                "x^1.5", "1/sqrt(x)", "exp", "log", "sin", "cos", "tan", "tanh", "sgn", "abs", "arcsin", "arccos",
                "arctan", "arctanh", "gaussian"]
    for name in required:
        assert name in SYMBOLIC_LIB, name
        assert SYMBOLIC_LIB[name].complexity == PYKAN_LIB[name][2], name


@pytest.mark.parametrize("name", [n for n in SYMBOLIC_LIB if n != "0"])
def test_library_torch_sympy_and_safe_agree_in_domain(name):
    e = SYMBOLIC_LIB[name]
    x = torch.linspace(0.05, 0.95, 19, dtype=F64)  # inside every entry's domain
    s = sympy.Symbol("s")
    via_sympy = sympy.lambdify(s, e.sympy_fn(s), "math")
    want = torch.tensor([float(via_sympy(float(v))) for v in x], dtype=F64)
    torch.testing.assert_close(e.torch_fn(x), want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(to_torch(e.sympy_fn(s), [s])(x[:, None]), want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(e.safe_fn(x, 1e9), want, rtol=1e-12, atol=1e-12)
    wide = torch.linspace(-3, 3, 601, dtype=F64)  # crosses every singularity, including 0 exactly
    assert torch.isfinite(e.safe_fn(wide, 10.0)).all(), name
    # also at fit()'s default y_th = 1000 (pykan's), where exp(-y_th) underflows and tanh(y_th) rounds to 1,
    # in float32 too, and with finite gradients: fit(singularity_avoiding=True) trains through these
    for dt in (F64, torch.float32):
        w = wide.to(dt).clone().requires_grad_()
        v = e.safe_fn(w, 1000.0)
        v.sum().backward()
        assert torch.isfinite(v).all() and torch.isfinite(w.grad).all(), (name, dt)


def test_add_symbolic_validates_and_registers():
    with pytest.raises(ValueError, match="built-in"):
        symbolic.add_symbolic("sin", torch.sin)
    with pytest.raises(TypeError, match="torch_fn must be callable"):
        symbolic.add_symbolic("mine", 3)
    symbolic.add_symbolic("cube_plus", lambda x: x**3 + x, lambda x: x**3 + x, 3)
    try:
        assert SYMBOLIC_LIB["cube_plus"].complexity == 3
    finally:
        del SYMBOLIC_LIB["cube_plus"]


# ------------------------------------------------------------------ fitting


def test_fit_params_recovers_known_parameters():
    x = torch.linspace(-1, 1, 500, dtype=F64)
    y = 5.0 * torch.sin(3.0 * x + 2.0) + 0.7
    p, r2 = fit_params(x, y, ["sin", "x", "x^2"])
    a, b, c, d = p[0].tolist()
    assert r2[0] > 1 - 1e-7 and r2[1] < 0.99 and r2[2] < 0.99
    # sin(a x + b) is the same curve for (a, b) and (-a, pi - b) up to sign of c: compare the curve
    torch.testing.assert_close(c * torch.sin(a * x + b) + d, y, atol=1e-3, rtol=0)


def test_fit_params_batched_equals_one_edge_at_a_time():
    g = gen(3)
    x = torch.rand(4, 200, generator=g, dtype=F64) * 2 - 1
    y = torch.stack([torch.exp(x[0]), x[1] ** 2, torch.tanh(3 * x[2]), torch.rand(200, generator=g, dtype=F64)])
    names = ["exp", "x^2", "tanh", "log"]
    p, r2 = fit_params(x, y, names)
    for e in range(4):
        # (a, b) may differ between near-equal grid points (rounding decides ties); r2 may not
        pe, r2e = fit_params(x[e], y[e], names)
        torch.testing.assert_close(r2e, r2[e], rtol=0, atol=1e-6)
        for c, n in enumerate(names):
            if r2e[c] > 0.999:
                fe = pe[c, 2] * SYMBOLIC_LIB[n].torch_fn(pe[c, 0] * x[e] + pe[c, 1]) + pe[c, 3]
                fb = p[e, c, 2] * SYMBOLIC_LIB[n].torch_fn(p[e, c, 0] * x[e] + p[e, c, 1]) + p[e, c, 3]
                torch.testing.assert_close(fe, fb, rtol=0, atol=1e-4)
    assert r2[0, 0] > 0.999999 and r2[1, 1] > 0.999999 and r2[2, 2] > 0.9999


def test_fit_params_r2_matches_brute_force_least_squares():
    # c f(a x + b) + d for the returned (a, b): r2 must be 1 - SSE/SST of an independent lstsq
    x = torch.linspace(0.1, 2.0, 300, dtype=F64)
    y = torch.log(x) + 0.1 * torch.sin(7 * x)
    names = ["log", "sqrt", "x^2", "exp"]
    p, r2 = fit_params(x, y, names)
    for c, n in enumerate(names):
        a, b = p[c, 0].item(), p[c, 1].item()
        f = SYMBOLIC_LIB[n].torch_fn(a * x + b)
        V = torch.stack([f, torch.ones_like(f)], 1)
        sol = torch.linalg.lstsq(V, y[:, None]).solution[:, 0]
        sse = ((y - V @ sol) ** 2).sum()
        sst = ((y - y.mean()) ** 2).sum()
        assert abs((1 - sse / sst).item() - r2[c].item()) < 1e-9, n
        torch.testing.assert_close(p[c, 2:], sol, rtol=1e-7, atol=1e-9)


def test_fit_params_never_gives_nan_or_inf_for_singular_candidates():
    # data crossing 0 and reaching beyond [-1, 1]; y itself fine
    x = torch.cat([torch.linspace(-2, 2, 201, dtype=F64), torch.zeros(3, dtype=F64)])
    y = torch.tanh(x)
    p, r2 = fit_params(x, y, list(SYMBOLIC_LIB))
    assert torch.isfinite(p).all() and torch.isfinite(r2).all()
    assert ((r2 >= 0) & (r2 <= 1)).all()
    # a candidate that cannot be finite on this data for any (a, b) scores 0
    for name in ("log", "sqrt", "1/x", "arcsin"):
        c = list(SYMBOLIC_LIB).index(name)
        a, b, cc, d = p[c].tolist()
        f = SYMBOLIC_LIB[name].torch_fn(a * x + b)
        assert torch.isfinite(cc * f + d).all() or r2[c] == 0, name
    # constant y: every r2 0, nothing non-finite
    p0, r20 = fit_params(x, torch.ones_like(x), ["x", "log", "1/x"])
    assert (r20 == 0).all() and torch.isfinite(p0).all()


def test_fit_params_validates():
    with pytest.raises(ValueError, match="same shape"):
        fit_params(torch.zeros(5), torch.zeros(4), ["x"])
    with pytest.raises(ValueError, match="unknown symbolic function 'nope'"):
        fit_params(torch.zeros(5), torch.zeros(5), ["nope"])


# ------------------------------------------------------------------ the layer


def _brute_symbolic(layer: SymbolicLayer, x):
    y = torch.zeros(x.shape[0], layer.out_features, dtype=x.dtype)
    for j in range(layer.out_features):
        for i in range(layer.in_features):
            if layer.mask[j, i] != 0:
                a, b, c, d = layer.affine[j, i].tolist()
                y[:, j] += layer.mask[j, i] * (c * SYMBOLIC_LIB[layer.funs_name[j][i]].torch_fn(a * x[:, i] + b) + d)
    return y


def test_symbolic_layer_forward_matches_per_edge_loop_and_subset():
    layer = SymbolicLayer(4, 3, dtype=F64)
    x = torch.rand(50, 4, generator=gen(1), dtype=F64) * 2 - 1
    assert layer.n_fixed == 0 and torch.equal(layer(x), torch.zeros(50, 3, dtype=F64))
    g = gen(2)
    for (i, j, n) in [(0, 0, "sin"), (1, 0, "x^2"), (3, 2, "sin"), (2, 1, "exp"), (0, 2, "tanh")]:
        layer.set_edge(i, j, n, (torch.rand(4, generator=g, dtype=F64) * 2 - 1).tolist())
    assert layer.n_fixed == 5
    torch.testing.assert_close(layer(x), _brute_symbolic(layer, x), rtol=1e-13, atol=1e-13)
    sub = layer.subset([3, 0], [2, 0])
    assert sub.funs_name == [["sin", "tanh"], ["0", "sin"]]
    assert torch.equal(sub.affine, layer.affine[[2, 0]][:, [3, 0]]) and torch.equal(sub.mask, layer.mask[[2, 0]][:, [3, 0]])
    torch.testing.assert_close(sub(x[:, [3, 0]]), _brute_symbolic(sub, x[:, [3, 0]]), rtol=1e-13, atol=1e-13)
    # output 2 reads only inputs 3 and 0, so it is kept exactly
    torch.testing.assert_close(sub(x[:, [3, 0]])[:, 0], layer(x)[:, 2], rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(layer(x.reshape(5, 10, 4)), layer(x).reshape(5, 10, 3), rtol=0, atol=0)
    layer.unset_edge(0, 0)
    torch.testing.assert_close(layer(x), _brute_symbolic(layer, x), rtol=1e-13, atol=1e-13)
    with pytest.raises(ValueError, match="subset"):
        layer.subset([4], [0])


def test_symbolic_layer_gradients_reach_affine():
    layer = SymbolicLayer(2, 1, dtype=F64)
    layer.set_edge(1, 0, "sin", (1.3, 0.2, 0.7, -0.1))
    x = torch.rand(20, 2, generator=gen(5), dtype=F64)
    layer(x).sum().backward()
    a, b, c, _ = (1.3, 0.2, 0.7, -0.1)
    z = a * x[:, 1] + b
    want = torch.stack([(c * torch.cos(z) * x[:, 1]).sum(), (c * torch.cos(z)).sum(), torch.sin(z).sum(),
                        torch.tensor(20.0, dtype=F64)])
    torch.testing.assert_close(layer.affine.grad[0, 1], want)
    assert (layer.affine.grad[0, 0] == 0).all()


# ----------------------------------------------------------- model methods


def test_fix_symbolic_sets_masks_and_fits_edge():
    model = _kan((2, 3, 1))
    with pytest.raises(RuntimeError, match="save_act"):
        model.fix_symbolic(0, 0, 0, "sin", verbose=False)
    x = _record(model)
    before = model(x).detach()
    layer = model.act_fun[0]
    phi = kanext.dense.edge_values(layer, x, torch.tensor([1]), torch.tensor([2]))[:, 0]
    r2 = model.fix_symbolic(0, 1, 2, "x^2", verbose=False)
    assert 0 <= r2 <= 1
    assert model.act_fun[0].mask[1, 2] == 0 and model.symbolic_fun[0].mask[2, 1] == 1
    assert model.symbolic_fun[0].funs_name[2][1] == "x^2"
    # the new model differs from the old one only by the fit error of that edge
    a, b, c, d = model.symbolic_fun[0].affine[2, 1].tolist()
    sse = ((phi - (c * (a * x[:, 1] + b) ** 2 + d)) ** 2).sum()
    assert abs(1 - (sse / ((phi - phi.mean()) ** 2).sum()).item() - r2) < 1e-9
    assert not torch.equal(model(x).detach(), before)
    model.unfix_symbolic(0, 1, 2)
    torch.testing.assert_close(model(x).detach(), before, rtol=0, atol=0)
    assert model.symbolic_fun[0].mask.sum() == 0
    assert model.fix_symbolic(1, 0, 0, "sin", fit_params=False) is None
    assert model.symbolic_fun[1].affine[0, 0].tolist() == [1.0, 0.0, 1.0, 0.0]
    model.unfix_symbolic_all()
    assert model.symbolic_fun[1].mask.sum() == 0 and model.act_fun[1].mask.sum() == 3
    with pytest.raises(ValueError, match="out of range"):
        model.fix_symbolic(0, 2, 0, "sin")
    with pytest.raises(ValueError, match="unknown symbolic function"):
        model.fix_symbolic(0, 0, 0, "sine")


def test_recorded_edge_statistics_include_symbolic_edges():
    model = _kan((2, 3, 1))
    x = _record(model)
    model.fix_symbolic(0, 1, 2, "sin", verbose=False)
    spline_scale = model.acts_scale[0].clone()
    _record(model)
    a, b, c, d = model.symbolic_fun[0].affine[2, 1].tolist()
    phi = c * torch.sin(a * x[:, 1] + b) + d
    torch.testing.assert_close(model.acts_scale[0][2, 1], phi.std() / (x[:, 1].std() + 0.1), rtol=1e-12, atol=0)
    torch.testing.assert_close(model.edge_l1[0][2, 1], phi.abs().mean(), rtol=1e-12, atol=0)
    keep = torch.ones_like(spline_scale, dtype=torch.bool)
    keep[2, 1] = False
    assert torch.equal(model.acts_scale[0][keep], spline_scale[keep])


def test_edge_outputs_match_reference_edge_activations():
    model = _kan((3, 4, 1))
    x = torch.rand(64, 3, generator=gen(7), dtype=F64) * 2 - 1
    layer = model.act_fun[0]
    Wb, Wc = layer.folded_weights()
    phi = kanext.reference.edge_activations(x, layer.grid, layer.k, "silu", Wb.detach(), Wc.detach())
    I = torch.tensor([0, 2, 1, 2])
    J = torch.tensor([3, 0, 1, 3])
    torch.testing.assert_close(kanext.dense.edge_values(layer, x, I, J), phi[:, I, J], rtol=1e-12, atol=1e-12)


def test_fixed_log_edge_on_negative_data_stays_finite():
    model = _kan((1, 1))
    x = _record(model, lo=-1.0, hi=1.0)
    r2 = model.fix_symbolic(0, 0, 0, "log", verbose=False)
    assert math.isfinite(r2)
    assert torch.isfinite(model.symbolic_fun[0].affine).all()
    assert torch.isfinite(model(x)).all()
    out = model.symbolic_fun[0](torch.tensor([[-1e3], [0.0], [1e3]], dtype=F64), singularity_avoiding=True)
    assert torch.isfinite(out).all()


def test_suggest_symbolic_ranks_by_pykans_score():
    model = _kan((1, 1))
    x = _record(model)
    # make the edge an exact sin curve: refit the spline of a 1 -> 1 layer
    layer = model.act_fun[0]
    with torch.no_grad():
        layer.scale_base.zero_()
        xs = torch.linspace(-1, 1, 200, dtype=F64)[:, None]
        from kanext.layers import curve_to_coef

        coef = curve_to_coef(xs, torch.sin(2 * xs + 0.5)[:, :, None] / layer.scale_sp, layer.grid, layer.k)
        layer.coef.copy_(coef)
    lib = ["x", "x^2", "sin", "tanh", "exp"]
    rows = model.suggest_symbolic(0, 0, 0, lib=lib, topk=5, verbose=False)
    assert [r[0] for r in rows][0] == "sin" and len(rows) == 5
    scores = [r[3] for r in rows]
    assert scores == sorted(scores)
    for name, r2, c, score in rows:
        assert c == SYMBOLIC_LIB[name].complexity
        assert abs(score - (0.8 * c + 0.2 * math.log2(1 + 1e-5 - r2))) < 1e-9
    assert len(model.suggest_symbolic(0, 0, 0, lib=lib, topk=2, verbose=False)) == 2
    del x


@pytest.mark.parametrize("kind", ["kan", "lan"])
def test_fitting_on_one_recorded_sample_raises(kind):
    """After a one-sample forward (a quick check, model(x[0])) every fit has
    r2 = 0; suggest_symbolic, auto_symbolic and fix_symbolic must raise, and
    auto_symbolic must leave every unit a spline, never fix them all to a
    constant."""
    model = _kan((2, 3, 1)) if kind == "kan" else kanext.LAN([2, 3, 1], grid=5, seed=0, dtype=F64)
    _record(model)
    x = torch.rand(50, 2, generator=gen(3), dtype=F64) * 2 - 1
    before = model(x).detach()  # (save_act is off again: not recorded)
    model.save_act = True
    model(torch.tensor([[0.3, -0.2]], dtype=F64))  # the last recorded batch: one sample
    model.save_act = False
    unit = (0, 0, 0) if kind == "kan" else (0, 0)
    with pytest.raises(ValueError, match="need at least 2 finite samples of layer 0's inputs, got 1"):
        model.suggest_symbolic(*unit, lib=["x", "sin"], verbose=False)
    with pytest.raises(ValueError, match="auto_symbolic: need at least 2 finite samples"):
        model.auto_symbolic(lib=["x", "sin"], verbose=0)
    with pytest.raises(ValueError, match="fix_symbolic: need at least 2 finite samples"):
        model.fix_symbolic(*unit, "sin", verbose=False)
    assert torch.equal(model(x).detach(), before)
    # two samples are enough to fit
    model.save_act = True
    model(torch.tensor([[0.3, -0.2], [-0.5, 0.7]], dtype=F64))
    assert len(model.suggest_symbolic(*unit, lib=["x", "sin"], verbose=False)) == 2


def test_auto_symbolic_dead_edges_get_zero_and_formula_equals_model():
    model = _kan((2, 3, 1))
    with torch.no_grad():
        model.act_fun[0].mask[1, 2] = 0.0  # a dead (pruned) edge
    _record(model, n=200)  # records the layer inputs auto_symbolic fits on
    done = model.auto_symbolic(lib=["x", "x^2", "sin", "exp", "tanh", "log"], verbose=0)
    assert (0, 1, 2) not in done and model.symbolic_fun[0].funs_name[2][1] == "0"
    assert len(done) == 2 * 3 - 1 + 3
    assert model.act_fun[0].mask.sum() == 0 and model.act_fun[1].mask.sum() == 0
    with pytest.raises(ValueError, match="still splines"):
        _kan((2, 2, 1)).symbolic_formula()
    (expr,), _ = model.symbolic_formula(floating_digits=None)
    xs = sympy.symbols("x_1 x_2")
    fresh = torch.rand(200, 2, generator=gen(11), dtype=F64) * 2 - 1
    want = model(fresh)[:, 0].detach()
    torch.testing.assert_close(to_torch(expr, xs)(fresh), want, rtol=1e-10, atol=1e-10)
    np_fn = sympy.lambdify(xs, expr, "numpy")
    got = torch.as_tensor(np_fn(fresh[:, 0].numpy(), fresh[:, 1].numpy()), dtype=F64)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    rounded = model.symbolic_formula()[0][0]
    for v in map(float, rounded.atoms(sympy.Float)):
        assert v == round(v, 4) or v == float(f"{v:.4g}"), v
    torch.testing.assert_close(to_torch(rounded, xs)(fresh), want, rtol=0.05, atol=0.05)
    assert isinstance(to_latex(expr), str) and "x_{1}" in to_latex(expr)
    (named,), variables = model.symbolic_formula(var=["u", "v"], floating_digits=None)
    assert {str(s) for s in named.free_symbols} <= {"u", "v"}


def test_rounding_survives_sympys_recombination_of_constants():
    x = sympy.Symbol("x")
    e = sympy.Float(0.00607412829237786) * (sympy.Float(-12.8309265760455) * x - sympy.Float(2.5e-16)) ** 2
    assert formula._round_floats(e, 4) == 1.0 * x**2
    s = sympy.sin(sympy.Float(3.14159265358979) * x + sympy.Float(2.4e-18))
    assert formula._round_floats(s, 4) == sympy.sin(sympy.Float(3.1416) * x)


def test_node_affines_enter_the_formula():
    model = _kan((2, 2, 1))
    x = _record(model)
    with torch.no_grad():
        for name, v in (("node_scale", 1.7), ("node_bias", -0.3), ("subnode_scale", 0.6), ("subnode_bias", 0.25)):
            getattr(model, name)[0].fill_(v)
            getattr(model, name)[1].fill_(v / 2)
    model.auto_symbolic(lib=["x", "sin", "x^2"], verbose=0)
    (expr,), _ = model.symbolic_formula(floating_digits=None)
    torch.testing.assert_close(to_torch(expr, sympy.symbols("x_1 x_2"))(x), model(x)[:, 0].detach(),
                               rtol=1e-10, atol=1e-10)


def test_to_torch_validates():
    s, t = sympy.symbols("s t")
    with pytest.raises(ValueError, match="uses"):
        to_torch(s + t, [s])
    with pytest.raises(ValueError, match="cannot translate"):
        to_torch(sympy.gamma(s), [s])
    fn = to_torch(sympy.Integer(3) + 0 * s, [s])
    assert torch.equal(fn(torch.zeros(4, 1, dtype=F64)), torch.full((4,), 3.0, dtype=F64))


# ------------------------------------------------------- training, refine, save


def test_fit_trains_affine_and_refine_carries_the_branch():
    f = lambda x: torch.sin(torch.pi * x[:, :1]) + x[:, 1:] ** 2  # noqa: E731
    ds = kanext.create_dataset(f, n_var=2, train_num=200, test_num=200, seed=0, dtype=F64)
    model = _kan((2, 1))
    _record(model)
    model.fix_symbolic(0, 0, 0, "sin", verbose=False)
    before = model.symbolic_fun[0].affine.detach().clone()
    model.fit(ds, steps=3, progress=False, update_grid=False)
    assert not torch.equal(model.symbolic_fun[0].affine.detach(), before)
    new = model.refine(10)
    assert new.symbolic_fun[0].funs_name == model.symbolic_fun[0].funs_name
    assert torch.equal(new.symbolic_fun[0].affine, model.symbolic_fun[0].affine)
    assert torch.equal(new.act_fun[0].mask, model.act_fun[0].mask)
    x = ds["test_input"]
    torch.testing.assert_close(new(x), model(x), rtol=1e-6, atol=1e-6)
    # the symbolic part alone is carried exactly
    torch.testing.assert_close(new.symbolic_fun[0](x), model.symbolic_fun[0](x), rtol=0, atol=0)


def test_checkpoint_round_trip_and_unknown_user_function(tmp_path):
    model = _kan((2, 3, 1))
    x = _record(model)
    model.fix_symbolic(0, 0, 1, "sin", verbose=False)
    model.fix_symbolic(1, 2, 0, "x^2", verbose=False)
    symbolic.add_symbolic("my_cube", lambda t: t**3, lambda t: t**3, 3)
    try:
        model.fix_symbolic(0, 1, 2, "my_cube", verbose=False)
        model.save(tmp_path / "m")
        loaded = kanext.KAN.load(tmp_path / "m")
        for key, t in model.state_dict().items():
            assert torch.equal(loaded.state_dict()[key], t), key
        assert [s.funs_name for s in loaded.symbolic_fun] == [s.funs_name for s in model.symbolic_fun]
        assert torch.equal(loaded(x), model(x))
    finally:
        del SYMBOLIC_LIB["my_cube"]
    with pytest.raises(CheckpointError, match="my_cube.*add_symbolic"):
        kanext.KAN.load(tmp_path / "m")
    # a plain KAN still writes no extension entry and round-trips
    plain = _kan()
    plain.save(tmp_path / "p")
    assert kanext.checkpoint.read_config(tmp_path / "p")["extra"] == {}
    assert torch.equal(kanext.KAN.load(tmp_path / "p")(x[:, :2]), plain(x[:, :2]))


# ---------------------------------------------------------- Feynman-style


def _recover(f, width, ranges, lib, seed=0):
    ds = kanext.create_dataset(f, n_var=2, ranges=ranges, train_num=500, test_num=500, seed=0, dtype=F64)
    model = kanext.KAN(width, grid=5, seed=seed, dtype=F64)
    model.fit(ds, steps=60, lamb=1e-3, progress=False)
    model.auto_symbolic(lib=lib, verbose=0)
    model.fit(ds, steps=30, progress=False, update_grid=False)
    (expr,), _ = model.symbolic_formula(floating_digits=None)
    fresh = torch.rand(1000, 2, generator=gen(123), dtype=F64) * (ranges[1] - ranges[0]) + ranges[0]
    got = to_torch(expr, sympy.symbols("x_1 x_2"))(fresh)
    return (got - f(fresh)[:, 0]).abs().max().item()


def test_feynman_product_recovered():
    # Whether the hidden edges come out as x (the product's polarisation
    # identity) or x^2 depends on the initial draw and on rounding in the
    # LBFGS trajectory (seeds 0-4 recover it 3 times in 5 today), so as a
    # user would, take the best of three seeds.
    errs = [_recover(lambda x: x[:, :1] * x[:, 1:], [2, 2, 1], (-1.0, 1.0), ["x", "x^2"], seed=s) for s in range(3)]
    assert min(errs) < 1e-4, errs


def test_feynman_ratio_recovered():
    err = _recover(lambda x: x[:, :1] / x[:, 1:], [2, 1, 1], (0.5, 2.0), ["x", "x^2", "log", "exp", "1/x", "sqrt"])
    assert err < 1e-4, err


def test_compile_fullgraph_with_fixed_edges_matches_eager():
    torch._dynamo.reset()
    model = _kan((2, 3, 1))
    x = _record(model, n=40)
    model.fix_symbolic(0, 0, 1, "sin", verbose=False)
    model.fix_symbolic(0, 1, 2, "x^2", verbose=False)
    model.fix_symbolic(1, 2, 0, "sin", verbose=False)
    y_e = model(x)
    y_e.pow(2).sum().backward()
    g_e = model.symbolic_fun[0].affine.grad.clone()
    model.zero_grad()
    y_c = torch.compile(model, fullgraph=True)(x)
    y_c.pow(2).sum().backward()
    torch.testing.assert_close(y_c, y_e, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(model.symbolic_fun[0].affine.grad, g_e, rtol=1e-12, atol=1e-12)


def test_fix_symbolic_with_a_callable():
    def cube_fn(t):
        return t**3

    model = _kan((1, 1))
    _record(model)
    try:
        r2 = model.fix_symbolic(0, 0, 0, cube_fn, verbose=False)
        assert 0 <= r2 <= 1 and SYMBOLIC_LIB["cube_fn"].torch_fn is cube_fn
        (expr,), _ = model.symbolic_formula()  # pykan's undefined function of that name
        assert expr.has(sympy.Function("cube_fn"))
        with pytest.raises(ValueError, match="needs a name"):
            model.fix_symbolic(0, 0, 0, lambda t: t, verbose=False)
    finally:
        SYMBOLIC_LIB.pop("cube_fn", None)


def test_load_state_dict_restores_the_function_names():
    """The names travel in the state_dict as the funs_code buffer: before,
    load_state_dict into a freshly built KAN left its fixed edges computing
    '0', and into a LAN with the channel fixed to another function kept that
    function, with no error. A compiled model follows the load too."""
    dt = torch.float64
    x = torch.rand(64, 2, generator=torch.Generator().manual_seed(0), dtype=dt) * 2 - 1
    m = kanext.KAN([2, 3, 1], grid=5, k=3, seed=0, dtype=dt)
    m(x)
    m.fix_symbolic(0, 0, 0, "sin", verbose=False)
    m.fix_symbolic(0, 1, 1, "x^2", verbose=False)
    m.fix_symbolic(1, 2, 0, "0", verbose=False)  # fixed to '0': mask on, computes 0
    fresh = kanext.KAN([2, 3, 1], grid=5, k=3, seed=1, dtype=dt)
    compiled = torch.compile(fresh, fullgraph=True)
    compiled(x)
    fresh.load_state_dict(m.state_dict())
    assert fresh.symbolic_fun[0].funs_name == m.symbolic_fun[0].funs_name
    assert fresh.symbolic_fun[1].funs_name == m.symbolic_fun[1].funs_name
    assert torch.equal(fresh(x), m(x))
    torch.testing.assert_close(compiled(x), m(x), rtol=1e-12, atol=1e-12)

    lan = kanext.LAN([2, 3, 1], grid=5, k=3, seed=0, dtype=dt)
    lan(x)
    lan.fix_symbolic(0, 1, "sin", verbose=False, x=x)
    other = kanext.LAN([2, 3, 1], grid=5, k=3, seed=0, dtype=dt)
    other.fix_symbolic(0, 1, "exp", fit_params=False, verbose=False, x=x)
    other.load_state_dict(lan.state_dict())
    assert torch.equal(other(x), lan(x))

    # a state_dict is plain tensors: safetensors and dtype conversions keep working
    sd = {k: v.clone() for k, v in m.state_dict().items()}
    blob = safetensors.torch.save(sd)
    again = kanext.KAN([2, 3, 1], grid=5, k=3, seed=2, dtype=dt)
    again.load_state_dict(safetensors.torch.load(blob))
    assert torch.equal(again(x), m(x))

    # a code no registered function has: a clear error
    sd["symbolic_fun.0.funs_code"][0, 0] = 12345
    with pytest.raises(ValueError, match=r"names unit \(0, 0\) by code 12345 .*register it with kanext.symbolic.add_symbolic"):
        kanext.KAN([2, 3, 1], grid=5, k=3, seed=0, dtype=dt).load_state_dict(sd)


def test_formula_warns_when_the_model_skips_its_symbolic_edges():
    m = kanext.KAN([2, 2, 1], grid=5, k=3, seed=0, dtype=torch.float64)
    m(torch.rand(32, 2, dtype=torch.float64))
    m.auto_symbolic(lib=["x", "sin"], verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m.symbolic_formula()  # symbolic edges on: no warning
    with pytest.warns(UserWarning, match="speed"):
        m.speed()
    with pytest.warns(UserWarning, match=r"symbolic_formula: symbolic_enabled is False .* not what model\(x\) computes"):
        m.symbolic_formula()


def test_state_dict_names_with_assign_and_from_older_versions():
    dt = torch.float64
    x = torch.rand(32, 2, generator=torch.Generator().manual_seed(1), dtype=dt) * 2 - 1
    src = kanext.KAN([2, 2, 1], grid=5, k=3, seed=0, dtype=dt)
    src(x)
    src.fix_symbolic(0, 0, 0, "sin", verbose=False)
    # assign=True: the destination gets its own codes, so editing it leaves the source's state_dict alone
    dst = kanext.KAN([2, 2, 1], grid=5, k=3, seed=1, dtype=dt)
    dst.load_state_dict(src.state_dict(), assign=True)
    assert dst.symbolic_fun[0].funs_name[0][0] == "sin"
    dst.symbolic_fun[0].set_edge(0, 0, "exp")
    again = kanext.KAN([2, 2, 1], grid=5, k=3, seed=2, dtype=dt)
    again.load_state_dict(src.state_dict())
    assert again.symbolic_fun[0].funs_name[0][0] == "sin" and torch.equal(again(x), src(x))
    # a state_dict without funs_code (an older kanext): strict loading works, with a warning, and keeps the names
    old = {k: v for k, v in src.state_dict().items() if not k.endswith("funs_code")}
    same = kanext.KAN([2, 2, 1], grid=5, k=3, seed=3, dtype=dt)
    same(x)
    same.fix_symbolic(0, 0, 0, "sin", verbose=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        same.load_state_dict(old)  # names agree with the mask: no warning
    assert torch.equal(same(x), src(x))
    fresh = kanext.KAN([2, 2, 1], grid=5, k=3, seed=3, dtype=dt)
    with pytest.warns(UserWarning, match=r"has no 'symbolic_fun.0.funs_code' \(saved by an older kanext\)"):
        fresh.load_state_dict(old)
    assert fresh.symbolic_fun[0].funs_name[0][0] == "0"
