"""pykan 0.2.x idioms, typed as a pykan user types them (issue 16): the symbolic
library's tuple form, add_symbolic's pykan signature, suggest_symbolic /
auto_symbolic positional arguments in pykan's order."""
from __future__ import annotations

import numpy as np
import pytest
import sympy
import torch

import kanext
from kanext.symbolic import SYMBOLIC_LIB, add_symbolic, to_torch

F64 = torch.float64


def _model_on_data():
    model = kanext.KAN([2, 2, 1], grid=5, seed=0, dtype=F64)
    x = torch.rand(200, 2, generator=torch.Generator().manual_seed(0), dtype=F64) * 2 - 1
    model(x)
    return model, x


def test_symbolic_lib_entries_index_like_pykan_tuples():
    f, sf, c, fs = SYMBOLIC_LIB["sin"]
    t = torch.linspace(-2, 2, 9, dtype=F64)
    assert torch.equal(f(t), torch.sin(t))
    assert sf(sympy.Symbol("x")) == sympy.sin(sympy.Symbol("x"))
    assert c == SYMBOLIC_LIB["sin"][2] == SYMBOLIC_LIB["sin"].complexity == 2
    x_th, y = fs(t, 10.0)
    assert x_th == () and torch.equal(y, torch.sin(t))
    assert len(SYMBOLIC_LIB["x^2"]) == 4


def test_symbolic_lib_complexities_match_pykan():
    kan = pytest.importorskip("kan", reason="pykan is a test dependency (requirements/test.txt)")
    from kan.utils import SYMBOLIC_LIB as PK

    common = [n for n in PK if n in SYMBOLIC_LIB]
    assert len(common) >= 15, common
    for n in common:
        assert SYMBOLIC_LIB[n][2] == PK[n][2], n


def test_add_symbolic_in_pykan_form_and_its_formula():
    add_symbolic("J0", torch.special.bessel_j0, 3)  # pykan: add_symbolic(name, fun, c)
    try:
        assert SYMBOLIC_LIB["J0"][2] == 3 and SYMBOLIC_LIB["J0"].sympy_fn is None
        model = kanext.KAN([1, 1], seed=0, dtype=F64)
        x = torch.linspace(-1, 1, 50, dtype=F64)[:, None]
        model(x)
        model.fix_symbolic(0, 0, 0, "J0", verbose=False)
        (expr,), _ = model.symbolic_formula(floating_digits=None)
        assert expr.has(sympy.Function("J0"))  # an undefined function of that name, as in pykan
        got = to_torch(expr, sympy.Symbol("x_1"))(x)
        assert torch.allclose(got, model(x)[:, 0], atol=1e-12)
        # the fourth pykan argument, a singularity function returning (x_th, y)
        add_symbolic("inv_safe", lambda t: 1 / t, 2, lambda t, y_th: ((), torch.clamp(1 / t, -y_th, y_th)))
        assert SYMBOLIC_LIB["inv_safe"].safe_fn(torch.tensor([1e-6]), 10.0).item() == 10.0
    finally:
        SYMBOLIC_LIB.pop("J0", None)
        SYMBOLIC_LIB.pop("inv_safe", None)
    with pytest.raises(TypeError, match="safe_fn must be callable"):
        add_symbolic("bad", torch.sin, None, 2, 5)


def test_suggest_symbolic_takes_pykans_positional_order():
    model, _ = _model_on_data()
    rows = model.suggest_symbolic(0, 0, 0, (-5, 5), (-5, 5), ["x", "sin", "x^2"], 2, False)
    assert len(rows) == 2 and {r[0] for r in rows} <= {"x", "sin", "x^2"}
    same = model.suggest_symbolic(0, 0, 0, a_range=(-5, 5), b_range=(-5, 5), lib=["x", "sin", "x^2"], topk=2,
                                  verbose=False)
    assert rows == same


def test_suggest_symbolic_custom_losses_like_pykan():
    model, _ = _model_on_data()
    lib = ["x", "sin", "x^2", "exp"]
    # complexity only: the simplest function wins whatever its r2
    rows = model.suggest_symbolic(0, 0, 0, lib=lib, verbose=False, r2_loss_fun=lambda r2: 0 * r2,
                                  c_loss_fun=lambda c: c, weight_simple=0.5)
    assert rows[0][0] == "x" and rows[0][3] == pytest.approx(0.5 * SYMBOLIC_LIB["x"].complexity)
    # the default losses, written out as pykan writes them, give the default ranking
    default = model.suggest_symbolic(0, 0, 0, lib=lib, verbose=False)
    explicit = model.suggest_symbolic(0, 0, 0, lib=lib, verbose=False, r2_loss_fun=lambda x: np.log2(1 + 1e-5 - x),
                                      c_loss_fun=lambda x: x)
    assert [r[0] for r in default] == [r[0] for r in explicit]
    for a, b in zip(default, explicit):
        assert a[3] == pytest.approx(b[3], rel=1e-12)
    with pytest.raises(ValueError, match="elementwise"):
        model.suggest_symbolic(0, 0, 0, lib=lib, verbose=False, r2_loss_fun=lambda r2: r2.sum())


def test_auto_symbolic_takes_pykans_positional_order():
    model, _ = _model_on_data()
    done = model.auto_symbolic((-5, 5), (-5, 5), ["x", "x^2"], 0)
    assert done and all(name in ("x", "x^2") for name, _ in done.values())


def _symbolic_model():
    model, x = _model_on_data()
    model.auto_symbolic(lib=["x", "sin", "x^2"], verbose=0)
    return model, x


def test_symbolic_formula_returns_pykans_exprs_and_variables():
    model, x = _symbolic_model()
    formula = model.symbolic_formula(floating_digits=None)
    expr = formula[0][0]  # pykan: symbolic_formula()[0][0]
    exprs, variables = formula
    assert variables == list(sympy.symbols("x_1 x_2")) and exprs == [expr]
    assert torch.allclose(to_torch(expr, variables)(x), model(x)[:, 0], atol=1e-10)
    lan = kanext.LAN([2, 2, 1], seed=0, dtype=F64)
    lan(x)
    lan.auto_symbolic(lib=["x", "sin"], verbose=0)
    lan_exprs, lan_vars = lan.symbolic_formula(floating_digits=None)
    assert torch.allclose(to_torch(lan_exprs[0], lan_vars)(x), lan(x)[:, 0], atol=1e-10)


def test_symbolic_formula_normalizers_as_pykan():
    model, x = _symbolic_model()
    mean, std = [0.5, -1.0], [2.0, 0.25]
    out_mean, out_std = 3.0, 0.5
    (expr,), variables = model.symbolic_formula(normalizer=[mean, std], output_normalizer=[out_mean, out_std],
                                                floating_digits=None)
    raw = x * torch.tensor(std, dtype=F64) + torch.tensor(mean, dtype=F64)  # the data before normalising
    want = model(x)[:, 0] * out_std + out_mean
    assert torch.allclose(to_torch(expr, variables)(raw), want, atol=1e-10)
    # scalars broadcast to every input
    (e2,), _ = model.symbolic_formula(normalizer=[0.0, 1.0], floating_digits=None)
    assert torch.allclose(to_torch(e2, variables)(x), model(x)[:, 0], atol=1e-10)
    for bad in ([[0.0], [0.0]], [0.0, [1.0, 2.0, 3.0]], "mean", [0.0, float("nan")]):
        with pytest.raises(ValueError, match="normalizer must be"):
            model.symbolic_formula(normalizer=bad)


def test_create_dataset_takes_pykans_positional_order():
    f = lambda x: x[:, :1] * x[:, 1:]  # noqa: E731
    a = kanext.create_dataset(f, 2, "col", [-2, 2], 50, 20, False, False, "cpu", 3, dtype=F64)
    b = kanext.create_dataset(f, n_var=2, ranges=[-2, 2], train_num=50, test_num=20, seed=3, dtype=F64)
    assert all(torch.equal(a[k], b[k]) for k in b)
    assert a["train_input"].abs().max() > 1  # the ranges were taken
    kan = pytest.importorskip("kan", reason="pykan is a test dependency (requirements/test.txt)")
    from kan.utils import create_dataset as pk_create

    pk = pk_create(f, 2, "col", [-2, 2], 50, 20, False, False, "cpu", 3)
    ours = kanext.create_dataset(f, 2, "col", [-2, 2], 50, 20, False, False, "cpu", 3, dtype=torch.float32)
    assert torch.equal(ours["train_input"], pk["train_input"].float())


def test_fit_params_takes_one_function_as_pykan_does():
    from kanext.symbolic import fit_params

    x = torch.linspace(-2, 2, 101, dtype=F64)
    y = 3.0 * torch.sin(1.5 * x - 0.5) + 0.25
    params, r2 = fit_params(x, y, "sin")  # pykan: fit_params(x, y, fun); used to iterate 's', 'i', 'n'
    assert params.shape == (4,) and r2.shape == () and r2 > 1 - 1e-9
    a, b, c, d = params.tolist()
    assert torch.allclose(c * torch.sin(a * x + b) + d, y, atol=1e-3)  # the grid search's resolution
    p2, r2b = fit_params(x, y, torch.sin)  # a callable, as pykan passes it
    assert torch.allclose(p2, params, atol=1e-9) and float(r2b) == pytest.approx(float(r2))
    batched, r2s = fit_params(torch.stack([x, x]), torch.stack([y, -y]), "sin")
    assert batched.shape == (2, 4) and r2s.shape == (2,) and bool((r2s > 1 - 1e-9).all())


def test_reg_in_pykans_form_uses_the_last_inputs():
    model, x = _model_on_data()
    want = model.reg(x, 1.0, 2.0, 0.5, 0.25, "edge_forward_spline_n")
    got = model.reg("edge_forward_spline_n", 1.0, 2.0, 0.5, 0.25)  # pykan: reg(reg_metric, lamb_l1, ...)
    assert torch.equal(got, want)
    got.backward()  # differentiable, as pykan's
    assert model.act_fun[0].coef.grad is not None
    with pytest.raises(ValueError, match="reg_metric|metric"):
        model.reg("no_such_metric")


def test_fit_takes_pykans_display_metrics_save_fig_and_singularity_avoiding(tmp_path, capsys):
    ds = kanext.create_dataset(lambda x: 1 / (x[:, :1] + 1.5) + x[:, 1:], 2, train_num=64, test_num=16,
                               dtype=F64)
    model = kanext.KAN([2, 2, 1], grid=5, seed=0, dtype=F64)
    model(ds["train_input"])
    model.fix_symbolic(0, 0, 0, "1/x", verbose=False)
    res = model.fit(ds, steps=3, opt="Adam", lr=1e-3, singularity_avoiding=True, y_th=50.0,
                    display_metrics=["test_loss", "train_loss"], save_fig=True, save_fig_freq=2,
                    img_folder=str(tmp_path / "video"), in_vars=["a", "b"], beta=5)
    assert len(res["train_loss"]) == 3
    assert sorted(p.name for p in (tmp_path / "video").iterdir()) == ["0.jpg", "2.jpg"]
    assert all(p.stat().st_size > 0 for p in (tmp_path / "video").iterdir())
    with pytest.raises(ValueError, match="display_metrics entry 'accuracy'"):
        model.fit(ds, steps=1, display_metrics=["accuracy"], progress=False)
    lan = kanext.LAN([2, 2, 1], seed=0, dtype=F64)
    with pytest.raises(ValueError, match="singularity_avoiding applies"):
        lan.fit(ds, steps=1, singularity_avoiding=True, progress=False)


def test_forward_singularity_avoiding_bounds_a_pole():
    model = kanext.KAN([1, 1], grid=5, seed=0, dtype=F64)
    x = torch.linspace(-1, 1, 41, dtype=F64)[:, None]
    model(x)
    model.fix_symbolic(0, 0, 0, "1/x", fit_params=False, verbose=False)
    near = torch.tensor([[1e-9]], dtype=F64)
    assert model(near).abs().item() > 1e8
    safe = model(near, singularity_avoiding=True, y_th=10.0)
    assert safe.abs().item() <= 10.0 + 1e-9
    assert torch.allclose(model(x[x[:, 0].abs() > 0.5]), model(x[x[:, 0].abs() > 0.5], singularity_avoiding=True),
                          atol=1e-12)


def test_fix_symbolic_takes_pykans_fit_params_bool():
    """pykan spells the flag fit_params_bool: model.fix_symbolic(l, i, j,
    'sin', fit_params_bool=False) sets the edge without a fit (no r2, as in
    pykan) as fit_params=False does, and True fits it."""
    model, x = _model_on_data()
    r2 = model.fix_symbolic(0, 0, 0, "sin", fit_params_bool=False, verbose=False)
    twin, _ = _model_on_data()
    r2_twin = twin.fix_symbolic(0, 0, 0, "sin", fit_params=False, verbose=False)
    assert r2 is None and r2_twin is None
    assert torch.equal(model(x), twin(x))
    fitted, _ = _model_on_data()
    r2_fit = fitted.fix_symbolic(0, 0, 0, "sin", fit_params_bool=True, verbose=False)
    assert not torch.equal(fitted(x), model(x)) and float(r2_fit) > 0.0
    with pytest.raises(TypeError, match="not both"):
        model.fix_symbolic(0, 0, 1, "sin", fit_params=False, fit_params_bool=False, verbose=False)
