"""kanext.compiler.expr2kan: a sympy expression becomes a KAN of fixed
symbolic edges that computes it. Every check compares against the expression
itself (sympy's lambdify on the same points), against the model's own
symbolic_formula, or against pykan's compiler on the same expression."""
from __future__ import annotations

import contextlib
import io
import random

import numpy as np
import pytest
import sympy
import torch

import kanext
import kanext.datasets.feynman
from helpers import assert_close
from kanext.compiler import expr2kan, kanpiler, sf2kan

F64 = torch.float64
x, y, z = XS = sympy.symbols("x y z")

# (expression, lower bound of the sampling box): a box in [lo, lo + 1.5]^3 inside the domain
CASES = {
    "product": (x * y, -1.0),
    "sum": (sympy.sin(x) + y**2, -1.0),
    "exp_of_sum": (sympy.exp(x + y**2), -1.0),
    "nested": (sympy.sin(sympy.exp(x)), -1.0),
    "division": (x / y, 0.3),
    "three_factors": (x * y * z, -1.0),
    "sqrt_log": (sympy.sqrt(x) + sympy.log(y), 0.2),
    "affine_args": (sympy.tanh(3 * x - 1) * sympy.cos(y), -1.0),
    "abs_tan": (sympy.Abs(x - sympy.Rational(1, 2)) + sympy.tan(y / 2), -1.0),
    "constants": (sympy.pi * sympy.exp(x * y) - sympy.E, -1.0),
    "factors_with_constants": ((x + 1) * (y - 2), -1.0),
    "same_input_twice": (x**2 + sympy.sin(x), -1.0),
    "depth_alignment": (x * y + sympy.sin(sympy.exp(sympy.sin(z))), -1.0),
    "big_power": (x**7 - 2 * y**6, -1.0),
    "rational_power": (x ** sympy.Rational(1, 3) + y ** sympy.Rational(-3, 2), 0.2),
    "symbolic_power": (x**y + 2**z, 0.2),
    "hyperbolic": (sympy.sinh(x) * sympy.cosh(y) + 1, -1.0),
    "scaled_product": (-2 * x * y / z + 1, 0.3),
    "negative_big_power": (x**-7 + y**6, 0.3),
    "unexpanded_constants": (sympy.sin(sympy.pi * (x + 1)) + sympy.sqrt(2) * (y - 1) * x**2 + sympy.E * (z + 3)
                             + sympy.exp(sympy.pi * (y - 2) * (z + 1)), -1.0),
    "constant": (sympy.Float(2.5), -1.0),
    "input": (-3 * y + 1, -1.0),
}


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # pykan may write files to its cwd


def points(lo, n=257, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, generator=g, dtype=F64) * 1.5 + lo


def reference(expr, X):
    f = sympy.lambdify(XS, expr, "numpy")
    return torch.as_tensor(np.broadcast_to(np.asarray(f(*X.numpy().T), dtype=np.float64), (X.shape[0],)).copy())


@pytest.mark.parametrize("name", list(CASES))
def test_forward_equals_expression(name):
    expr, lo = CASES[name]
    model = expr2kan(XS, expr, dtype=F64)
    X = points(lo)
    ref = reference(expr, X)
    assert torch.isfinite(ref).all()
    assert_close(model(X)[:, 0], ref, rtol=1e-10, msg=name)
    # only library functions, and no spline contributes
    assert all(layer.mask.eq(0).all() for layer in model.act_fun)
    names = {n for s in model.symbolic_fun for row in s.funs_name for n in row}
    assert names <= set(kanext.symbolic.SYMBOLIC_LIB)


def test_structure_products_and_sums():
    m = expr2kan(XS, x * y * z, dtype=F64)
    assert m.width == [3, 1] and m.mult_arities == [[], [3]]
    m = expr2kan(XS, sympy.sin(x) + y**2, dtype=F64)
    assert m.width == [3, 1] and not m.has_mult
    assert sorted(m.symbolic_fun[0].funs_name[0]) == ["0", "sin", "x^2"]
    m = expr2kan(XS, sympy.exp(x + y**2), dtype=F64)
    assert m.width == [3, 1, 1]
    assert m.symbolic_fun[1].funs_name == [["exp"]]
    # depth alignment: x*y (a node of depth 1) and exp(sin(z)) (depth 2) meet in a sum at depth 3;
    # x*y reaches it through an identity node at depth 2 (edges 'x' with a=1, b=0, c=1, d=0)
    m = expr2kan(XS, CASES["depth_alignment"][0], dtype=F64)
    assert m.depth == 3 and m.mult_arities[1] == [2] and m.width == [3, 2, 2, 1]
    ident = [(l, i, j) for l in (1, 2) for j, row in enumerate(m.symbolic_fun[l].funs_name)
             for i, n in enumerate(row) if n == "x"]
    assert len(ident) == 2
    for l, i, j in ident:
        assert m.symbolic_fun[l].affine[j, i].tolist() == [1.0, 0.0, 1.0, 0.0]
    # an input used next to a deeper node passes through an identity node
    m = expr2kan(XS, x + sympy.exp(sympy.sin(z)), dtype=F64)
    assert m.width == [3, 2, 1] and sorted(m.symbolic_fun[0].funs_name[0] + m.symbolic_fun[0].funs_name[1]) \
        == ["0", "0", "0", "0", "sin", "x"]
    # division is multiplication by 1/x
    m = expr2kan(XS, x / y, dtype=F64)
    assert sorted(m.symbolic_fun[0].funs_name[1] + m.symbolic_fun[0].funs_name[0]) == ["0", "0", "0", "0", "1/x", "x"]


def test_aliases_and_pykan_argument_order():
    assert kanpiler is expr2kan and sf2kan is expr2kan and kanext.expr2kan is expr2kan
    m = expr2kan([x, y], x * y, 7, 2)
    assert m.grid == [7] and m.k == [2]


EXACT = ["product", "sum", "exp_of_sum", "nested", "division", "three_factors", "sqrt_log", "affine_args",
         "factors_with_constants", "same_input_twice", "depth_alignment", "big_power", "input", "scaled_product",
         "negative_big_power"]


@pytest.mark.parametrize("name", list(CASES))
def test_round_trip_formula(name):
    expr, lo = CASES[name]
    model = expr2kan(XS, expr, dtype=F64)
    (formula,), _ = model.symbolic_formula(var=XS, floating_digits=None)
    X = points(lo, seed=1)
    assert_close(reference(formula, X), reference(expr, X), rtol=1e-10, msg=f"{name}: {formula}")
    if name in EXACT:  # integer constants stay exact, so sympy proves the equality
        assert sympy.simplify(formula - expr) == 0, (formula, expr)


@pytest.mark.parametrize("splines", [False, True])
def test_train_further(splines):
    expr = sympy.sin(x) * y + x**2
    target = 1.3 * sympy.sin(x) * y + x**2 + 0.2 * x
    model = expr2kan(XS, expr, dtype=F64, splines=splines)
    X, Xt = points(-1.0, 200, seed=2), points(-1.0, 100, seed=3)
    data = {"train_input": X, "train_label": reference(target, X)[:, None],
            "test_input": Xt, "test_label": reference(target, Xt)[:, None]}
    assert_close(model(X)[:, 0], reference(expr, X), rtol=1e-10)  # still the expression with splines on
    before = torch.mean((model(X) - data["train_label"]) ** 2).item()
    res = model.fit(data, opt="LBFGS", steps=3, update_grid=False, progress=False)
    after = torch.mean((model(X) - data["train_label"]) ** 2).item()
    assert np.isfinite(res["train_loss"]).all()
    assert after < 0.1 * before, (before, after)
    if splines:  # the splines learnt something
        assert any(layer.coef.abs().max() > 0 for layer in model.act_fun)


def test_splines_option_keeps_splines_on():
    m = expr2kan(XS, sympy.sin(x) + y, dtype=F64, splines=True)
    assert all(layer.mask.eq(1).all() for layer in m.act_fun)
    with pytest.raises(ValueError, match="still splines"):
        m.symbolic_formula()


def test_save_load(tmp_path):
    expr = CASES["depth_alignment"][0]
    model = expr2kan(XS, expr, dtype=F64)
    model.save(tmp_path / "m")
    back = kanext.KAN.load(tmp_path / "m")
    X = points(-1.0)
    assert torch.equal(back(X), model(X))
    assert [s.funs_name for s in back.symbolic_fun] == [s.funs_name for s in model.symbolic_fun]
    assert back.mult_arities == model.mult_arities


def test_torch_compile_fullgraph():
    expr = sympy.exp(sympy.sin(x) * y) + sympy.sqrt(z + 2)
    model = expr2kan(XS, expr, dtype=F64)
    X = points(-1.0)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    assert_close(compiled(X), model(X), rtol=1e-12)
    assert_close(model(X)[:, 0], reference(expr, X), rtol=1e-10)


PYKAN_OK = ["product", "sum", "exp_of_sum", "nested", "division", "three_factors", "sqrt_log", "affine_args",
            "constants", "factors_with_constants"]


@contextlib.contextmanager
def _pykan_state():
    old = torch.get_default_dtype()
    states = torch.random.get_rng_state(), np.random.get_state(), random.getstate()  # pykan reseeds all three
    torch.set_default_dtype(F64)
    try:
        yield
    finally:
        torch.set_default_dtype(old)
        torch.random.set_rng_state(states[0])
        np.random.set_state(states[1])
        random.setstate(states[2])


@pytest.mark.parametrize("name", PYKAN_OK)
def test_same_values_as_pykan(name):
    compiler = pytest.importorskip("kan.compiler", reason="pykan is a test dependency (requirements/test.txt)")
    expr, lo = CASES[name]
    X = points(lo)
    with _pykan_state():
        theirs = compiler.expr2kan(list(XS), expr)(X)
    ours = expr2kan(XS, expr, dtype=F64)(X)
    assert_close(ours, theirs, rtol=1e-10, msg=name)


@pytest.mark.parametrize("expr", [x**2 + sympy.sin(x), sympy.sin(sympy.pi * (x + 1))])
def test_pykan_differs_where_it_loses_a_term(expr):
    # pykan's compiler keeps one of the two edges from x into one node in x**2 + sin(x), and drops
    # the +1 of pi*(x + 1) (a number times a sum); ours computes both exactly
    compiler = pytest.importorskip("kan.compiler", reason="pykan is a test dependency (requirements/test.txt)")
    X = points(-1.0)
    with _pykan_state():
        theirs = compiler.expr2kan(list(XS), expr)(X)[:, 0]
    ref = reference(expr, X)
    assert (theirs - ref).abs().max() > 0.1
    assert_close(expr2kan(XS, expr, dtype=F64)(X)[:, 0], ref, rtol=1e-10)


def _random_expr(rng, depth):
    """A random expression over x, y, z: sums, products, numbers times sums, powers, functions."""
    consts = [sympy.pi, sympy.Rational(1, 3), sympy.Integer(2), sympy.Float(0.7), sympy.sqrt(2), sympy.Integer(-3)]
    unary = [sympy.sin, sympy.cos, sympy.tanh, sympy.exp, sympy.atan, sympy.Abs, sympy.sinh,
             lambda u: sympy.sqrt(1 + u**2), lambda u: sympy.log(2 + u**2), lambda u: 1 / (2 + u**2)]
    if depth == 0 or rng.random() < 0.2:
        return rng.choice(XS)
    r = rng.random()
    if r < 0.3:
        return _random_expr(rng, depth - 1) + _random_expr(rng, depth - 1)
    if r < 0.55:
        return _random_expr(rng, depth - 1) * _random_expr(rng, depth - 1)
    if r < 0.65:
        return rng.choice(consts) * (_random_expr(rng, depth - 1) + rng.choice(consts))
    if r < 0.75:
        return _random_expr(rng, depth - 1) ** rng.choice([2, 3, -1, 6, sympy.Rational(1, 2)])
    return rng.choice(unary)(_random_expr(rng, depth - 1))


def test_random_expressions():
    """60 random expressions of depth <= 4, on (0.5, 2)^3 (inside every domain): model and formula
    equal the expression; the draws whose intermediate values exceed 1e5 (ill-conditioned) are skipped."""
    rng = random.Random(0)
    X = points(0.5, n=64)
    done = 0
    while done < 60:
        expr = _random_expr(rng, 4)
        subs = [e for e in sympy.preorder_traversal(expr) if e.free_symbols]
        with np.errstate(all="ignore"):
            if any(not torch.isfinite(v).all() or v.abs().max() > 1e5 for v in (reference(e, X) for e in subs)):
                continue
        model = expr2kan(XS, expr, dtype=F64)
        ref = reference(expr, X)
        assert_close(model(X)[:, 0], ref, rtol=1e-10, msg=str(expr))
        (formula,), _ = model.symbolic_formula(var=XS, floating_digits=None)
        assert_close(reference(formula, X), ref, rtol=1e-10, msg=f"{formula} vs {expr}")
        done += 1


FEYNMAN = [e[1] for e in kanext.datasets.feynman.EQUATIONS]


def _feynman(name, n=64):
    syms, expr, _, ranges = kanext.datasets.feynman.get_feynman_dataset(name)
    g = torch.Generator().manual_seed(0)
    lo, hi = torch.tensor(ranges, dtype=F64).T
    X = lo + (hi - lo) * torch.rand(n, len(syms), generator=g, dtype=F64)
    f = sympy.lambdify(syms, expr, "numpy")
    ref = torch.as_tensor(np.broadcast_to(np.asarray(f(*X.numpy().T), dtype=np.float64), (n,)).copy())
    return list(syms), expr, X, ref


def test_feynman_equations():
    """Every equation of kanext.datasets.feynman (121: sums, products, quotients,
    powers, sqrt, exp, sin, cos, arcsin, tanh, nested) compiles; the model and its
    formula equal the equation on its sampling ranges."""
    assert len(FEYNMAN) > 100
    for name in FEYNMAN:
        syms, expr, X, ref = _feynman(name)
        model = expr2kan(syms, expr, dtype=F64)
        assert torch.isfinite(ref).all(), name
        assert_close(model(X)[:, 0], ref, rtol=1e-10, msg=f"{name}: {expr}")
        (formula,), _ = model.symbolic_formula(var=syms, floating_digits=None)
        back = sympy.lambdify(syms, formula, "numpy")(*X.numpy().T)
        assert_close(torch.as_tensor(np.broadcast_to(np.asarray(back, dtype=np.float64), ref.shape).copy()), ref,
                     rtol=1e-10, msg=f"{name}: {formula} vs {expr}")


def test_feynman_same_values_as_pykan():
    compiler = pytest.importorskip("kan.compiler", reason="pykan is a test dependency (requirements/test.txt)")
    for name in FEYNMAN:
        syms, expr, X, ref = _feynman(name)
        with _pykan_state(), contextlib.redirect_stdout(io.StringIO()):
            theirs = compiler.expr2kan(syms, expr)(X)[:, 0]
        assert_close(expr2kan(syms, expr, dtype=F64)(X)[:, 0], theirs, rtol=1e-10, msg=f"{name}: {expr}")


def test_several_outputs():
    exprs = [x * y, sympy.sin(x) + z, sympy.exp(y * z)]
    model = expr2kan(XS, exprs, dtype=F64)
    X = points(-1.0)
    assert model.width[-1] == 3
    out = model(X)
    for t, e in enumerate(exprs):
        assert_close(out[:, t], reference(e, X), rtol=1e-10, msg=str(e))


@pytest.mark.parametrize("bad, match", [
    (sympy.floor(x), "unsupported function floor"),
    (sympy.Function("f")(x) + y, "unsupported function f"),
    (sympy.sin(x) + sympy.Piecewise((x, x > 0), (0, True)), "unsupported"),
    (sympy.sin(x) * sympy.sec(y), "unsupported function sec"),
    ((-2) ** x, "base <= 0"),
    (sympy.I * x, "not a finite real number"),
    (x + sympy.Symbol("w"), r"uses \['w'\], which are not in input_variables"),
    (sympy.Symbol("x", positive=True) * y, "other assumptions"),
])
def test_errors_value(bad, match):
    with pytest.raises(ValueError, match=match):
        expr2kan(XS, bad)


def test_errors_type_and_arguments():
    with pytest.raises(TypeError, match="expr must be a sympy expression.*got str"):
        expr2kan(XS, "sin(x)")
    with pytest.raises(TypeError, match="expr must be a sympy expression.*got float"):
        expr2kan(XS, 2.5)
    with pytest.raises(TypeError, match="input_variables must be a non-empty list of sympy Symbols"):
        expr2kan(["x", "y"], x * y)
    with pytest.raises(ValueError, match="distinct"):
        expr2kan([x, x], x)
    with pytest.raises(ValueError, match="auto_save"):
        expr2kan(XS, x, auto_save=True)
    with pytest.raises(TypeError, match="sympy expression"):
        expr2kan(XS, sympy.Eq(x, y))
