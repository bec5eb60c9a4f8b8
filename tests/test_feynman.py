"""kanext.datasets.feynman: every equation finite on its ranges, the sympy
and torch forms agree, names unique and resolvable, clear errors, the
dataset helper's shapes, and spot checks against pykan's kan.feynman."""
from __future__ import annotations

import math

import numpy as np
import pytest
import sympy
import torch

import kanext
from kanext.datasets import feynman, feynman_dataset, get_feynman_dataset
from kanext.datasets.feynman import (ALIASES, DIMENSIONLESS_NAMES, FEYNMAN_NAMES, KAN_PAPER_EQUATIONS,
                                     PYKAN_DIFFERENCES)


def _points(ranges, n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = torch.tensor(ranges, dtype=torch.float64)
    return r[:, 0] + (r[:, 1] - r[:, 0]) * torch.rand(n, len(ranges), generator=g, dtype=torch.float64)


def test_names_unique_and_complete():
    assert len(FEYNMAN_NAMES) == len(set(FEYNMAN_NAMES)) == 121
    assert not set(ALIASES) & set(FEYNMAN_NAMES)
    assert set(ALIASES.values()) <= set(FEYNMAN_NAMES)
    assert set(KAN_PAPER_EQUATIONS) <= set(FEYNMAN_NAMES) and len(KAN_PAPER_EQUATIONS) == 27
    assert set(PYKAN_DIFFERENCES) <= set(FEYNMAN_NAMES)
    # pykan's numbers 1..120 each name one equation, all different
    assert len({get_feynman_dataset(k)[1] for k in (1, 2, 21, 22)}) == 4


@pytest.mark.parametrize("name", FEYNMAN_NAMES)
def test_equation_finite_and_sympy_equals_torch(name):
    symbols, expr, f, ranges = get_feynman_dataset(name)
    assert isinstance(symbols, tuple) and all(isinstance(s, sympy.Symbol) for s in symbols)
    assert len({str(s) for s in symbols}) == len(symbols)
    assert expr.free_symbols <= set(symbols)
    assert len(ranges) == len(symbols) and all(lo < hi for lo, hi in ranges)
    x = _points(ranges)
    y = f(x)
    assert y.shape == (x.shape[0], 1) and y.dtype == torch.float64
    assert torch.isfinite(y).all(), name
    ref = sympy.lambdify(symbols, expr, "numpy")(*[x[:, i].numpy() for i in range(x.shape[1])])
    ref = np.broadcast_to(np.asarray(ref, dtype=np.float64), (x.shape[0],))
    np.testing.assert_allclose(y[:, 0].numpy(), ref, rtol=1e-9, atol=1e-12, err_msg=name)
    # float32 too: finite on the box
    assert torch.isfinite(f(x.float())).all(), name


def test_aliases_and_numbers_resolve():
    assert get_feynman_dataset("I.6.2")[1] == get_feynman_dataset("I.6.20")[1]
    assert get_feynman_dataset("II.11.7")[1] == get_feynman_dataset("II.11.17")[1]
    assert get_feynman_dataset("I.10.9")[1] == get_feynman_dataset("II.10.9")[1]
    assert get_feynman_dataset(12)[1] == get_feynman_dataset("I.12.11")[1]
    th = sympy.Symbol("theta")
    assert get_feynman_dataset("I.18.12")[1] == sympy.Symbol("r") * sympy.Symbol("F") * sympy.sin(th)


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown equation 'I\.99\.9'.*I\.6\.20a.*III\.17\.37"):
        get_feynman_dataset("I.99.9")
    with pytest.raises(ValueError, match="1..120"):
        get_feynman_dataset(121)
    with pytest.raises(TypeError, match="str or an int"):
        get_feynman_dataset(1.5)
    with pytest.raises(TypeError):
        get_feynman_dataset(True)


def test_function_checks_its_input():
    _, _, f, _ = get_feynman_dataset("I.12.11")
    with pytest.raises(ValueError, match=r"shape \(N, 5\), got \(4, 3\)"):
        f(torch.zeros(4, 3))
    with pytest.raises(TypeError, match="torch.Tensor"):
        f(np.zeros((4, 5)))


def test_dataset_helper_shapes_ranges_and_labels():
    ds = feynman_dataset("I.9.18", train_num=64, test_num=32, seed=3)
    assert kanext.datasets.feynman_dataset is feynman_dataset
    assert ds["train_input"].shape == (64, 9) and ds["test_input"].shape == (32, 9)
    assert ds["train_label"].shape == (64, 1) and ds["test_label"].shape == (32, 1)
    _, _, f, ranges = get_feynman_dataset("I.9.18")
    r = torch.tensor(ranges, dtype=ds["train_input"].dtype)
    assert (ds["train_input"] >= r[:, 0]).all() and (ds["train_input"] <= r[:, 1]).all()
    torch.testing.assert_close(ds["train_label"], f(ds["train_input"]), rtol=0, atol=0)
    again = feynman_dataset("I.9.18", train_num=64, test_num=32, seed=3)
    assert torch.equal(again["train_input"], ds["train_input"])
    d64 = feynman_dataset("I.6.20a", train_num=8, test_num=0, dtype=torch.float64)
    assert d64["train_input"].dtype == torch.float64 and d64["test_input"].shape == (0, 1)


def test_dataset_helper_refuses_non_finite_labels(monkeypatch):
    # a box that contains the 0/0 point of III.4.33 (hbar = omega = 0) exactly
    orig = feynman.get_feynman_dataset

    def degenerate(name, **kw):
        s, e, f, _ = orig(name, **kw)
        return s, e, f, [[0.0, 1e-30], [0.0, 1e-30], [0.5, 2.0], [0.5, 2.0]]

    monkeypatch.setattr(feynman, "get_feynman_dataset", degenerate)
    with pytest.raises(ValueError, match="non-finite train_label"):
        feynman.feynman_dataset("III.4.33", train_num=4, test_num=0, dtype=torch.float32)


def test_old_import_paths_still_work():
    from kanext.datasets import create_dataset

    assert kanext.create_dataset is create_dataset
    assert kanext.datasets.create_dataset is create_dataset


# ------------------------------------------------------- dimensionless forms
# the paper's Table-3 dimensionless formulas once more, in plain floats (math), to check the module's sympy and
# torch forms against: {name: (variable names, formula)}
_M = math
DIMLESS_REF = {
    "I.6.20": ("theta sigma", lambda t, s: _M.exp(-t * t / (2 * s * s)) / _M.sqrt(2 * _M.pi * s * s)),
    "I.6.20b": ("theta theta1 sigma", lambda t, t1, s: _M.exp(-(t - t1) ** 2 / (2 * s * s)) / (s * _M.sqrt(2 * _M.pi))),
    "I.9.18": ("a b c d e f", lambda a, b, c, d, e, f: a / ((1 - b) ** 2 + (d - c) ** 2 + (f - e) ** 2)),
    "I.12.11": ("a theta", lambda a, t: 1 + a * _M.sin(t)),
    "I.13.12": ("a b", lambda a, b: a / b - a),
    "I.15.3x": ("a b", lambda a, b: (1 - a) * (1 - b * b) ** -0.5),
    "I.16.6": ("a b", lambda a, b: (a + b) / (1 + a * b)),
    "I.18.4": ("a b", lambda a, b: (1 + a * b) / (1 + a)),
    "I.26.2": ("n theta2", lambda n, t: _M.asin(n * _M.sin(t))),
    "I.27.6": ("a b", lambda a, b: 1 / (1 + a * b)),
    # |1 - a e^{i(theta1 - theta2)}|: the law of cosines as the length of a complex difference
    "I.29.16": ("a theta1 theta2", lambda a, t1, t2: abs(1 - a * complex(_M.cos(t1 - t2), _M.sin(t1 - t2)))),
    "I.30.3": ("n theta", lambda n, t: (_M.sin(n * t / 2) / _M.sin(t / 2)) ** 2),
    "I.30.5": ("a n", lambda a, n: _M.asin(a / n)),
    "I.37.4": ("a delta", lambda a, d: 1 + a + 2 * _M.sqrt(a) * _M.cos(d)),
    "I.40.1": ("n_0 a", lambda n0, a: n0 / _M.exp(a)),
    "I.44.4": ("n a", lambda n, a: n * _M.log(a)),
    "I.50.26": ("a alpha", lambda a, al: _M.cos(a) * (1 + al * _M.cos(a))),
    "II.2.42": ("a b", lambda a, b: a * b - b),
    "II.6.15a": ("a b c", lambda a, b, c: c * _M.hypot(a, b) / (4 * _M.pi)),
    "II.11.17": ("n_0 a theta", lambda n0, a, t: n0 + n0 * a * _M.cos(t)),
    "II.11.27": ("n alpha", lambda n, al: 3 * n * al / (3 - n * al)),
    "II.35.18": ("n_0 a", lambda n0, a: n0 / (2 * _M.cosh(a))),
    "II.36.38": ("a alpha b", lambda a, al, b: a + al * b),
    "II.38.3": ("a b", lambda a, b: a / b),
    "III.9.52": ("a b c", lambda a, b, c: a * (2 * _M.sin((b - c) / 2) / (b - c)) ** 2),
    "III.10.19": ("a b", lambda a, b: _M.sqrt(1 + a * a + b * b)),
    "III.17.37": ("alpha beta theta", lambda al, be, t: be * (1 + al * _M.cos(t))),
}


def test_dimensionless_names_are_the_paper_table():
    assert DIMENSIONLESS_NAMES == KAN_PAPER_EQUATIONS
    assert set(DIMLESS_REF) == set(DIMENSIONLESS_NAMES)


@pytest.mark.parametrize("name", DIMENSIONLESS_NAMES)
def test_dimensionless_form_values_ranges_and_shapes(name):
    symbols, expr, f, ranges = get_feynman_dataset(name, dimensionless=True)
    names, ref = DIMLESS_REF[name]
    assert [str(s) for s in symbols] == names.split()
    # fewer (or as many) variables than the dimensional form, each with a real interval
    assert len(symbols) <= len(get_feynman_dataset(name)[0])
    assert len(ranges) == len(symbols) and all(lo < hi for lo, hi in ranges)
    # the three forms agree at the box's corners-inward points, its centre and random points
    x = torch.cat([_points(ranges, n=64, seed=5),
                   torch.tensor([[lo + (hi - lo) * t for lo, hi in ranges] for t in (0.05, 0.5, 0.95)],
                                dtype=torch.float64)])
    y = f(x)
    assert y.shape == (x.shape[0], 1) and y.dtype == torch.float64 and torch.isfinite(y).all()
    want = torch.tensor([ref(*row) for row in x.tolist()], dtype=torch.float64)
    torch.testing.assert_close(y[:, 0], want, rtol=1e-12, atol=1e-14)
    sym = sympy.lambdify(symbols, expr, "math")
    torch.testing.assert_close(torch.tensor([float(sym(*row)) for row in x[:8].tolist()], dtype=torch.float64),
                               want[:8], rtol=1e-12, atol=1e-14)
    # and the data set helper draws inside the ranges, labels from f
    ds = feynman_dataset(name, train_num=32, test_num=16, seed=1, dtype=torch.float64, dimensionless=True)
    n = len(symbols)
    assert ds["train_input"].shape == (32, n) and ds["test_input"].shape == (16, n)
    assert ds["train_label"].shape == (32, 1) and ds["test_label"].shape == (16, 1)
    r = torch.tensor(ranges, dtype=torch.float64)
    for split in ("train_input", "test_input"):
        assert (ds[split] >= r[:, 0]).all() and (ds[split] <= r[:, 1]).all()
    torch.testing.assert_close(ds["train_label"], f(ds["train_input"]), rtol=0, atol=0)


def test_dimensionless_values_at_hand_computed_points():
    # a few values worked out by hand
    f = get_feynman_dataset("I.27.6", dimensionless=True)[2]
    torch.testing.assert_close(f(torch.tensor([[1.0, 1.0], [2.0, 0.5]], dtype=torch.float64))[:, 0],
                               torch.tensor([0.5, 0.5], dtype=torch.float64))
    f = get_feynman_dataset("I.16.6", dimensionless=True)[2]
    torch.testing.assert_close(f(torch.tensor([[0.5, 0.5]], dtype=torch.float64))[:, 0],
                               torch.tensor([0.8], dtype=torch.float64))  # 1 / 1.25
    f = get_feynman_dataset("I.30.5", dimensionless=True)[2]
    torch.testing.assert_close(f(torch.tensor([[0.5, 1.0]], dtype=torch.float64))[:, 0],
                               torch.tensor([math.pi / 6], dtype=torch.float64))
    f = get_feynman_dataset("III.10.19", dimensionless=True)[2]
    torch.testing.assert_close(f(torch.tensor([[1.0, 1.0]], dtype=torch.float64))[:, 0],
                               torch.tensor([math.sqrt(3)], dtype=torch.float64))


def test_dimensionless_aliases_default_and_errors():
    # aliases resolve; the default stays pykan's dimensional form
    alias, canonical = (get_feynman_dataset(n, dimensionless=True)[1] for n in ("II.11.7", "II.11.17"))
    assert alias == canonical
    assert len(get_feynman_dataset("I.12.11")[0]) == 5
    assert len(get_feynman_dataset("I.12.11", dimensionless=True)[0]) == 2
    with pytest.raises(ValueError, match=r"no dimensionless form of 'I\.6\.20a'.*I\.27\.6"):
        get_feynman_dataset("I.6.20a", dimensionless=True)
    with pytest.raises(ValueError, match="no dimensionless form"):
        feynman_dataset("I.8.4", dimensionless=True)


# ------------------------------------------------------------------ pykan
kan_feynman = pytest.importorskip("kan.feynman")


@pytest.mark.parametrize("name", ["I.6.20b", "I.9.18", "I.12.11", "I.26.2", "I.30.3", "II.6.15a", "II.36.38",
                                  "III.9.52", "III.17.37", "Schwarz 13.132 (Klein-Nishina)"])
def test_matches_pykan(name):
    symbols, expr, f, ranges = get_feynman_dataset(name)
    p_sym, p_expr, p_f, p_ranges = kan_feynman.get_feynman_dataset(name)
    p_ranges = np.array(p_ranges, dtype=float)
    np.testing.assert_allclose(np.broadcast_to(p_ranges, (len(ranges), 2)), ranges, rtol=1e-6)
    assert [str(s) for s in symbols] == [str(s) for s in p_sym]
    x = _points(ranges, seed=1)
    # pykan's pi is a float32 tensor: agreement to about float32 precision
    torch.testing.assert_close(f(x), p_f(x), rtol=2e-6, atol=1e-9)
    assert sympy.simplify(expr - p_expr) == 0


def test_documented_pykan_differences_are_real():
    # I.16.6: pykan's torch function disagrees with its own formula; ours follows the formula
    _, _, f, ranges = get_feynman_dataset("I.16.6")
    _, p_expr, p_f, _ = kan_feynman.get_feynman_dataset("I.16.6")
    x = _points(ranges, seed=2)
    assert not torch.allclose(f(x), p_f(x))
    u, v, c = x[:, 0], x[:, 1], x[:, 2]
    torch.testing.assert_close(f(x)[:, 0], (u + v) / (1 + u * v / c ** 2))
    # pykan's "I.18.4" is the torque, ours the centre of mass
    assert str(kan_feynman.get_feynman_dataset("I.18.4")[1]) == "F*r*sin(theta)"
    assert str(get_feynman_dataset("I.18.4")[1]) == "(m1*r1 + m2*r2)/(m1 + m2)"
