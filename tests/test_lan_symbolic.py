"""LAN node-activation symbolic regression (kanext.lan_symbolic) and LAN.plot."""
import math

import pytest
import sympy
import torch

import kanext
from kanext.lan import SplineActivation
from kanext.lan_symbolic import NODE_GID

F64 = torch.float64


def _sin_lan(scale=0.7, w=1.3, b=0.2):
    """LAN [1, 1, 1] whose first node activation is exactly scale * sin(z), z = w x + b
    (a SplineActivation with a zero spline and base sin)."""
    lan = kanext.LAN([1, 1, 1], grid=5, k=3, seed=0, dtype=F64)
    lan.layers[0].act = SplineActivation(1, 5, 3, base_fun=torch.sin, noise_scale=0.0, scale_base=scale, dtype=F64)
    with torch.no_grad():
        lan.layers[0].linear.weight.fill_(w)
        lan.layers[0].linear.bias.fill_(b)
    return lan


def _x(n=300, d=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, d, generator=g, dtype=F64) * 2 - 1


def test_nothing_fixed_adds_nothing():
    lan = kanext.LAN([2, 3, 1], seed=0, dtype=F64)
    keys = set(lan.state_dict())
    assert all("symbolic" not in name for name, _ in lan.named_modules())
    x = _x(d=2)
    lan.fix_symbolic(0, 1, "sin", fit_params=False)
    assert "layers.0.act.symbolic.affine" in lan.state_dict()
    lan.unfix_symbolic(0, 1)
    assert set(lan.state_dict()) == keys
    ref = kanext.LAN([2, 3, 1], seed=0, dtype=F64)
    assert torch.equal(lan(x), ref(x))


def test_fix_symbolic_recovers_exact_sin():
    lan = _sin_lan()
    x = _x()
    r2 = lan.fix_symbolic(0, 0, "sin", x=x, verbose=False)
    assert r2 > 0.999
    a, b, c, d = lan.layers[0].act.symbolic.affine[0].tolist()
    # c sin(a z + b) + d = 0.7 sin(z): up to sin's symmetries, |a| = 1, |c| = 0.7, d = 0
    assert abs(abs(a) - 1) < 1e-4 and abs(abs(c) - 0.7) < 1e-4 and abs(d) < 1e-4
    z = torch.linspace(-3, 3, 50, dtype=F64)
    assert torch.allclose(c * torch.sin(a * z + b) + d, 0.7 * torch.sin(z), atol=1e-4)
    # the model now uses the symbolic value on that channel
    z0 = lan.layers[0].linear(x)
    assert torch.allclose(lan.layers[0].act(z0), c * torch.sin(a * z0 + b) + d, atol=0, rtol=0)


def test_suggest_symbolic_ranks_sin_first():
    lan = _sin_lan()
    rows = lan.suggest_symbolic(0, 0, lib=["x", "x^2", "sin", "exp"], x=_x(), verbose=False)
    assert rows[0][0] == "sin" and rows[0][1] > 0.999
    assert [r[3] for r in rows] == sorted(r[3] for r in rows)


def test_formula_equals_model_float64():
    lan = kanext.LAN([2, 3, 2], seed=1, dtype=F64)
    x = _x(d=2)
    with pytest.raises(ValueError, match=r"still splines.*\(0, 0\)"):
        lan.symbolic_formula()
    done = lan.auto_symbolic(lib=["x", "x^2", "sin", "tanh", "exp"], x=x, verbose=0)
    assert set(done) == {(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)}
    exprs, _ = lan.symbolic_formula(floating_digits=None)
    assert len(exprs) == 2
    xt = _x(40, 2, seed=5)
    y = lan(xt).detach()
    x1, x2 = sympy.symbols("x_1 x_2")
    for o, e in enumerate(exprs):
        f = sympy.lambdify((x1, x2), e, "math")  # independent evaluation
        got = torch.tensor([f(float(p), float(q)) for p, q in xt.tolist()], dtype=F64)
        assert torch.allclose(got, y[:, o], atol=1e-10, rtol=0)


def test_auto_symbolic_then_fit_recovers_square():
    x = torch.linspace(-1, 1, 200, dtype=F64)[:, None]
    ds = dict(train_input=x, train_label=x**2, test_input=x, test_label=x**2)
    lan = kanext.LAN([1, 1, 1], grid=5, k=3, seed=0, dtype=F64)
    lan.fit(ds, opt="LBFGS", steps=20, update_grid=False, progress=False)
    lan.auto_symbolic(lib=["x", "x^2"], verbose=0)
    lan.fit(ds, opt="LBFGS", steps=50, update_grid=False, progress=False)
    rmse = float(((lan(x).detach() - x**2) ** 2).mean().sqrt())
    assert rmse < 1e-6
    e = lan.symbolic_formula(floating_digits=None)[0][0]
    xs = sympy.Symbol("x_1")
    assert abs(float(e.subs(xs, 0.37)) - 0.37**2) < 1e-6


def test_fit_trains_affine():
    lan = _sin_lan()
    lan.fix_symbolic(0, 0, "sin", fit_params=False)
    aff = lan.layers[0].act.symbolic.affine
    lan(_x()).sum().backward()
    assert aff.grad is not None and aff.grad[0].abs().sum() > 0
    assert lan.layers[0].act.coef.grad.abs().sum() == 0  # the spline path is off for the fixed channel


def test_save_load_bit_exact(tmp_path):
    lan = kanext.LAN([2, 3, 1], seed=0)  # float32
    x = _x(d=2).float()
    lan.fix_symbolic(0, 2, "sin", x=x, verbose=False)
    lan.fix_symbolic(1, 0, "x^2", x=x, verbose=False)
    lan.layers[0].act.symbolic.affine.requires_grad_(False)
    lan.save(tmp_path / "m")
    back = kanext.LAN.load(tmp_path / "m")
    sd, sd2 = lan.state_dict(), back.state_dict()
    assert set(sd) == set(sd2)
    for k in sd:
        assert sd[k].dtype == sd2[k].dtype and torch.equal(sd[k], sd2[k]), k
    assert back.layers[0].act.symbolic.funs_name == ["0", "0", "sin"]
    assert back.layers[1].act.symbolic.funs_name == ["x^2"]
    assert not back.layers[0].act.symbolic.affine.requires_grad
    assert torch.equal(back(x), lan(x))


def test_load_rejects_unknown_function(tmp_path):
    import json

    lan = kanext.LAN([1, 2, 1], seed=0)
    lan.fix_symbolic(0, 1, "sin", fit_params=False)
    js, _ = lan.save(tmp_path / "m")
    doc = json.loads(js.read_text())
    doc["extra"]["kanext.lan_symbolic"]["layers.0.act"]["funs_name"][1] = "nope"
    js.write_text(json.dumps(doc))
    with pytest.raises(kanext.CheckpointError, match="nope"):
        kanext.LAN.load(tmp_path / "m")


def test_refine_carries_symbolic():
    lan = kanext.LAN([2, 3, 1], seed=0, dtype=F64)
    x = _x(d=2)
    lan.update_grid(x)  # grids span the data: a G -> 2G refine is then exact on it
    lan.fix_symbolic(0, 1, "tanh", x=x, verbose=False)
    new = lan.refine(10, x)
    sym, sym2 = lan.layers[0].act.symbolic, new.layers[0].act.symbolic
    assert sym2.funs_name == sym.funs_name and torch.equal(sym2.affine, sym.affine) and sym2 is not sym
    assert new.grid == [10, 10]
    assert torch.allclose(new(x), lan(x), atol=1e-10)


def test_errors():
    lan = kanext.LAN([2, 3, 1], seed=0)
    with pytest.raises(ValueError, match="out of range"):
        lan.fix_symbolic(0, 3, "sin", fit_params=False)
    with pytest.raises(ValueError, match="out of range"):
        lan.fix_symbolic(2, 0, "sin", fit_params=False)
    with pytest.raises(ValueError, match="unknown symbolic function"):
        lan.fix_symbolic(0, 0, "nope", fit_params=False)
    with pytest.raises(RuntimeError, match="no samples"):
        lan.fix_symbolic(0, 0, "sin")
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):
        lan.suggest_symbolic(0, 0, x=torch.zeros(5, 3))


def test_plot_insets_and_labels(tmp_path):
    lan = kanext.LAN([2, 3, 1], seed=0, dtype=F64)
    x = _x(d=2)
    lan.fix_symbolic(0, 1, "sin", x=x, verbose=False)
    fig = lan.plot(x=x, in_vars=["a", "b"], out_vars=["y"], title="t", folder=tmp_path)
    assert (tmp_path / "lan.png").is_file()
    insets = {ax.get_gid(): ax for ax in fig.axes if ax.get_gid()}
    assert set(insets) == {NODE_GID.format(l=l, j=j) for l in range(2) for j in range(lan.width[l + 1])}
    z = lan.preactivations(x)
    for l in range(2):
        for j in range(lan.width[l + 1]):
            ax = insets[NODE_GID.format(l=l, j=j)]
            assert ax.get_title() == ("sin" if (l, j) == (0, 1) else "")
            (line,) = ax.get_lines()
            zs = torch.tensor(line.get_xdata(), dtype=F64)
            assert math.isclose(zs.min(), float(z[l][:, j].min())) and math.isclose(zs.max(), float(z[l][:, j].max()))
            # the curve is the node activation: brute force, channel by channel
            full = torch.zeros(zs.shape[0], lan.width[l + 1], dtype=F64)
            full[:, j] = zs
            want = lan.layers[l].act(full)[:, j].detach()
            assert torch.allclose(torch.tensor(line.get_ydata(), dtype=F64), want, atol=1e-12)
            if (l, j) == (0, 1):
                a, b, c, d = lan.layers[0].act.symbolic.affine[1].tolist()
                assert torch.allclose(want, c * torch.sin(a * zs + b) + d, atol=1e-12)
    with pytest.raises(ValueError, match="in_vars"):
        lan.plot(x=x, in_vars=["a"])


def test_auto_symbolic_threshold_keeps_splines_and_skips_fixed():
    lan = kanext.LAN([2, 3, 1], seed=0, dtype=F64)
    x = _x(d=2)
    assert lan.auto_symbolic(r2_threshold=1.1, x=x, verbose=0) == {}
    assert all("symbolic" not in name for name, _ in lan.named_modules())
    lan.fix_symbolic(0, 0, "x^3", fit_params=False)
    done = lan.auto_symbolic(lib=["x", "sin"], x=x, verbose=0)
    assert (0, 0) not in done and lan.layers[0].act.symbolic.funs_name[0] == "x^3"
    assert set(done) == {(0, 1), (0, 2), (1, 0)}
