"""kanext.hypothesis on functions of known structure, on a trained KAN, and on bad input."""
from __future__ import annotations

import pytest
import torch

import kanext
from kanext import hypothesis as H  # by module: its test_* functions must not be collected here
from kanext.recorded import NoSamplesError
from helpers import gen

F64 = torch.float64


def _x(n=400, d=3, lo=-1.0, hi=1.0, seed=0):
    return torch.rand(n, d, generator=gen(seed), dtype=F64) * (hi - lo) + lo


def xy_plus_z(x):
    return x[:, [0]] * x[:, [1]] + x[:, [2]]


def exp_xy_sin_z(x):  # log f = x*y + log sin(z + 2): multiplicative, groups {x, y} | {z}
    return torch.exp(x[:, [0]] * x[:, [1]]) * torch.sin(x[:, [2]] + 2)


def exp_x_plus_y_sin_z(x):
    return torch.exp(x[:, [0]] + x[:, [1]]) * torch.sin(x[:, [2]] + 2)


def sin_xyz(x):
    return torch.sin(x[:, 0] * x[:, 1] * x[:, 2])  # (N,) outputs are accepted too


def radial_times_z(x):  # f(x^2 + y^2, z): symmetric in (x, y)
    return torch.cos(x[:, [0]] ** 2 + x[:, [1]] ** 2) * x[:, [2]]


# ---------------------------------------------------------------- separability
def test_additive_separability_of_xy_plus_z():
    x = _x()
    res = H.detect_separability(xy_plus_z, x, mode="add")
    assert res["groups"] == [[0, 1], [2]] and res["n_groups"] == 2 and res["labels"] == [0, 0, 1]
    assert res["residual_ratio"] == 0.0
    std = x.std(dim=0)
    expected = torch.zeros(3, 3, dtype=F64)  # H = [[0, 1, 0], [1, 0, 0], [0, 0, 0]], scaled by std_i std_j
    expected[0, 1] = expected[1, 0] = std[0] * std[1]
    torch.testing.assert_close(res["hessian"], expected)
    assert H.test_separability(xy_plus_z, x, [[0, 1], [2]]) is True
    assert H.test_separability(xy_plus_z, x, [[2]]) is True  # the rest, {0, 1}, is the other group
    assert H.test_separability(xy_plus_z, x, [[0], [1, 2]]) is False
    assert H.test_separability(xy_plus_z, x, [[0, 2], [1]]) is False
    assert H.test_separability(xy_plus_z, x, [[0], [1], [2]]) is False


def test_multiplicative_separability():
    x = _x()
    res = H.detect_separability(exp_xy_sin_z, x, mode="mul")
    assert res["groups"] == [[0, 1], [2]]
    assert H.detect_separability(exp_xy_sin_z, x, mode="add")["groups"] == [[0, 1, 2]]
    assert H.test_separability(exp_x_plus_y_sin_z, x, [[0, 1], [2]], mode="mul") is True
    # exp(x + y) = exp(x) exp(y): the finest multiplicative partition is every variable alone
    assert H.detect_separability(exp_x_plus_y_sin_z, x, mode="mul")["groups"] == [[0], [1], [2]]
    assert H.test_separability(exp_x_plus_y_sin_z, x, [[0, 1], [2]], mode="add") is False
    # bias shifts f before the log: f - 3 = exp(..) sin(..) with f = that + 3
    shifted = lambda x: exp_x_plus_y_sin_z(x) + 3.0  # noqa: E731
    assert H.test_separability(shifted, x, [[0, 1], [2]], mode="mul") is False
    assert H.test_separability(shifted, x, [[0, 1], [2]], mode="mul", bias=-3.0) is True


def test_counter_examples_are_not_separable():
    x = _x(lo=-2.0, hi=2.0)
    for mode in ("add", "mul"):
        res = H.detect_separability(sin_xyz, x, mode=mode)
        assert res["n_groups"] == 1 and res["groups"] == [[0, 1, 2]], mode
        for groups in ([[0], [1, 2]], [[0, 1], [2]], [[1], [0, 2]]):
            assert H.test_separability(sin_xyz, x, groups, mode=mode) is False
    x_plus_yz = lambda x: x[:, [0]] + x[:, [1]] * x[:, [2]]  # noqa: E731
    assert H.test_separability(x_plus_yz, x, [[0], [1, 2]], mode="add") is True
    assert H.test_separability(x_plus_yz, x, [[0], [1, 2]], mode="mul") is False


def test_n_clusters_and_res_th():
    x = _x()
    f = lambda x: x[:, [0]] * x[:, [1]] + 0.5 * x[:, [2]] ** 2 + x[:, [3]] ** 3  # noqa: E731
    x4 = _x(d=4)
    assert H.detect_separability(f, x4)["groups"] == [[0, 1], [2], [3]]
    coarse = H.detect_separability(f, x4, n_clusters=2)
    assert coarse["groups"] == [[0, 1, 2], [3]] and coarse["labels"] == [0, 0, 0, 1]  # no cross score: first pair
    assert H.detect_separability(f, x4, n_clusters=[1, 2])["n_groups"] == 2
    with pytest.raises(ValueError, match=r"no partition into 3\.\.3 groups.*finest one found has 2"):
        H.detect_separability(xy_plus_z, x, n_clusters=3)
    # a weak interaction: below score_th, yet a large share of the total score -> merged by res_th
    weak = lambda x: x[:, [0]] + 0.05 * x[:, [0]] * x[:, [1]]  # noqa: E731
    assert H.detect_separability(weak, x[:, :2], score_th=0.1, res_th=2.0)["groups"] == [[0], [1]]
    assert H.detect_separability(weak, x[:, :2], score_th=0.1)["groups"] == [[0, 1]]


def test_general_separability():
    x = _x()
    gs = lambda x: torch.tanh(x[:, [0]] + x[:, [1]] ** 2 + torch.sin(x[:, [2]]))  # noqa: E731
    assert H.test_general_separability(gs, x, [[0], [1], [2]]) is True
    assert H.test_separability(gs, x, [[0], [1], [2]]) is False  # not additively separable itself
    not_gs = lambda x: torch.sin(x[:, [0]] * x[:, [1]] + x[:, [2]])  # noqa: E731  = F(x*y + z)
    assert H.test_general_separability(not_gs, x, [[0, 1], [2]]) is True
    assert H.test_general_separability(not_gs, x, [[0], [1], [2]]) is False
    assert H.test_general_separability(not_gs, x, [[0, 1, 2]]) is True  # one group: nothing to separate
    assert H.test_general_separability(not_gs, x, [[0], [1]]) is True  # x*y = sign * exp(log|x| + log|y|)
    not_gs2 = lambda x: x[:, [0]] + x[:, [1]] ** 2 + x[:, [0]] * x[:, [1]] + x[:, [2]]  # noqa: E731
    assert H.test_general_separability(not_gs2, x, [[0], [1]]) is False
    assert H.test_general_separability(not_gs2, x, [[0, 1], [2]]) is True
    assert H.test_general_separability(gs, x, [[0], [2]]) is True  # the rest, y, enters the same sum


# ---------------------------------------------------------------- symmetry
def test_symmetry_and_dependence():
    x = _x()
    assert H.test_symmetry(radial_times_z, x, [0, 1]) is True
    assert H.test_symmetry(radial_times_z, x, [0, 2]) is False
    assert H.test_symmetry(radial_times_z, x, [1, 2]) is False
    assert H.test_symmetry(radial_times_z, x, [0, 1, 2]) is True  # every variable: trivially
    dep = H.get_dependence(radial_times_z, x, [0, 1])
    assert dep.shape == (2, 1) and float(dep.max()) < 1e-5
    x_z_plus_y = lambda x: x[:, [0]] * x[:, [2]] + x[:, [1]]  # noqa: E731
    assert H.test_symmetry(x_z_plus_y, x, [0, 1]) is False
    assert H.test_symmetry(sin_xyz, x, [0, 1]) is True  # sin(xyz) = F(x*y, z)


def test_dependence_matches_a_hand_computation():
    # f = x + y z, group {x, y}: u = (1, z) / sqrt(1 + z^2), du/dz = (-z, 1) / (1 + z^2)^1.5
    x = _x()
    f = lambda x: x[:, [0]] + x[:, [1]] * x[:, [2]]  # noqa: E731
    z, std = x[:, 2], x.std(dim=0)
    du = torch.stack([-z, torch.ones_like(z)], dim=1) / (1 + z**2)[:, None] ** 1.5
    expected = (du.abs() * std[:2] * std[2]).median(dim=0).values[:, None]
    torch.testing.assert_close(H.get_dependence(f, x, [0, 1]), expected, rtol=1e-5, atol=1e-9)
    # columns follow the other variables in increasing order
    assert H.get_dependence(f, x, [2]).shape == (1, 2)


# ---------------------------------------------------------------- tree
def test_molecules_and_tree_nodes_of_known_functions():
    x = _x()
    mol = H.get_molecule(xy_plus_z, x)
    assert mol == [[[0], [1], [2]], [[0, 1], [2]], [[0, 1, 2]]]
    arities, props = H.get_tree_node(xy_plus_z, x, mol, sep_th=1e-1, skip_test=False)
    assert arities == [[2, 1], [2]] and props == [["GS", "Id"], ["Add"]]
    assert H.get_tree_node(xy_plus_z, x, mol)[1] == [["", "Id"], [""]]  # skip_test: untested
    mol = H.get_molecule(radial_times_z, x)
    assert mol[1] == [[0, 1], [2]]
    assert H.get_tree_node(radial_times_z, x, mol, sep_th=1e-1, skip_test=False)[1][-1] == ["Mul"]
    # pairs (0, 2) and (1, 3): every level lists the variables in the root's order
    pairs = lambda x: (x[:, [0]] ** 2 + x[:, [2]] ** 2) ** 2 + (x[:, [1]] ** 2 + x[:, [3]] ** 2) ** 2  # noqa: E731
    x4 = _x(300, 4)
    mol = H.get_molecule(pairs, x4)
    assert mol == [[[0], [2], [1], [3]], [[0, 2], [1, 3]], [[0, 2, 1, 3]]]
    assert H.get_tree_node(pairs, x4, mol, sep_th=1e-1, skip_test=False) == ([[2, 2], [2]], [["GS", "GS"], ["Add"]])
    # no symmetric pair: the root joins all variables at once
    x_plus_yz = lambda x: x[:, [0]] * x[:, [1]] + x[:, [1]] * x[:, [2]] + x[:, [0]] * x[:, [2]]  # noqa: E731
    assert H.get_molecule(x_plus_yz, x) == [[[0], [1], [2]], [[0, 1, 2]]]


def test_plot_tree_returns_a_figure_with_the_structure():
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    x = _x()
    before = plt.get_fignums()
    fig = H.plot_tree(xy_plus_z, x)
    assert isinstance(fig, Figure) and plt.get_fignums() == before  # not through pyplot, not shown
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert texts[:3] == ["$x_{1}$", "$x_{2}$", "$x_{3}$"] and "+" in texts and "GS" in texts
    assert ax.kanext_tree["molecules"] == [[[0], [1], [2]], [[0, 1], [2]], [[0, 1, 2]]]
    assert ax.kanext_tree["properties"] == [["GS", "Id"], ["Add"]]
    import sympy

    fig = H.plot_tree(radial_times_z, x, in_var=[sympy.Symbol("alpha"), "b", "c"], style="box")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts[:3] == [r"$\alpha$", "b", "c"] and "Mul" in texts and "GS" in texts
    assert len(fig.axes[0].patches) == 2  # one box per node with several children
    fig = H.plot_tree(xy_plus_z, x, skip_sep_test=True)
    assert fig.axes[0].kanext_tree["properties"] == [["", "Id"], [""]] and len(fig.axes[0].patches) == 2


# ---------------------------------------------------------------- a trained KAN
@pytest.fixture(scope="module")
def trained():
    ds = kanext.create_dataset(xy_plus_z, n_var=3, train_num=1000, test_num=300, seed=0)
    model = kanext.KAN([3, 5, 1], grid=5, k=3, seed=0)
    model.fit(ds, opt="LBFGS", steps=20, progress=False, seed=0)
    return model, ds["test_input"]


def test_trained_kan_agrees_with_the_true_function(trained):
    model, x = trained
    assert float(((model(x) - xy_plus_z(x)) ** 2).mean().sqrt().detach()) < 2e-2  # it learned the function
    # a learned model is only approximately separable: looser thresholds than pykan's defaults
    kw = dict(score_th=5e-2, res_th=5e-2)
    assert H.detect_separability(model, x, **kw)["groups"] == H.detect_separability(xy_plus_z, x, **kw)["groups"] \
        == [[0, 1], [2]]
    for groups in ([[0, 1], [2]], [[0], [1, 2]], [[0, 2], [1]]):
        assert H.test_separability(model, x, groups, threshold=5e-2) == H.test_separability(xy_plus_z, x, groups)
    for group in ([0, 1], [0, 2], [1, 2]):
        assert H.test_symmetry(model, x, group, 2e-2) == H.test_symmetry(xy_plus_z, x, group, 2e-2)
    mol = H.get_molecule(model, x, sym_th=2e-2)
    assert mol == H.get_molecule(xy_plus_z, x, sym_th=2e-2) == [[[0], [1], [2]], [[0, 1], [2]], [[0, 1, 2]]]
    assert H.get_tree_node(model, x, mol, sep_th=1e-1, skip_test=False)[1][-1] == ["Add"]


def test_kan_derivatives_match_pykan_float64():
    # the scores through kanext's fused ops equal those through pykan's plain torch forward
    model = kanext.KAN([3, 4, 1], grid=5, k=3, seed=3, dtype=F64)
    x = _x(200)
    theirs = kanext.to_pykan(model)
    ours = H.detect_separability(model, x)["hessian"]
    assert float(ours.abs().max()) > 1e-3
    torch.testing.assert_close(ours, H.detect_separability(theirs, x)["hessian"], rtol=1e-8, atol=1e-12)
    torch.testing.assert_close(H.get_dependence(model, x, [0, 1]), H.get_dependence(theirs, x, [0, 1]),
                               rtol=1e-8, atol=1e-12)


def test_kan_tree_method(trained):
    from matplotlib.figure import Figure

    model, x = trained
    fig = model.tree(x, sym_th=2e-2)
    assert isinstance(fig, Figure)
    assert fig.axes[0].kanext_tree["molecules"][1] == [[0, 1], [2]]
    assert fig.axes[0].kanext_tree["properties"][-1] == ["Add"]
    fresh = kanext.KAN([3, 2, 1], seed=0)
    with pytest.raises(NoSamplesError, match="tree"):
        fresh.tree()
    fresh(x)  # the inputs of the last forward are the samples, as in pykan
    assert isinstance(fresh.tree(skip_sep_test=True), Figure)


def test_feature_interaction():
    model = kanext.KAN([3, 2, 1], grid=5, seed=1, dtype=F64)
    model.remove_edge(0, 2, 0)  # hidden node 0 reads inputs 0 and 1 ...
    model.remove_edge(0, 0, 1)  # ... hidden node 1 only input 2
    model.remove_edge(0, 1, 1)
    model(_x(300))
    assert model.feature_interaction(1) == {(0, 1): 1, (2,): 1}
    assert model.feature_interaction(2) == {(0, 1, 2): 1}
    scores = model.attribute(1)
    assert model.feature_interaction(1, neuron_th=float(scores.max()) * 2) == {}
    # feature_th relative to each node's largest score: only the stronger input of node 0 remains
    s0 = scores[0, :2]
    assert float(scores[0, 2]) == 0.0 and float(s0.min()) > 0
    th = float(s0.min() / s0.max()) * 1.01
    assert model.feature_interaction(1, feature_th=th)[(int(s0.argmax()),)] == 1
    with pytest.raises(ValueError, match=r"l must be a layer index in \[0, 2\], got 3"):
        model.feature_interaction(3)


# ---------------------------------------------------------------- bad input
def test_bad_input_gives_clear_errors():
    x = _x()
    cases = [
        (lambda: H.test_symmetry(xy_plus_z, x.numpy(), [0, 1]), TypeError, "x must be a torch.Tensor.*got ndarray"),
        (lambda: H.test_symmetry(xy_plus_z, x[:, 0], [0]), ValueError, r"shape \(N, n_var\).*got shape \(400,\)"),
        (lambda: H.test_symmetry(xy_plus_z, x[:1], [0]), ValueError, r"N >= 2 samples, got shape \(1, 3\)"),
        (lambda: H.test_symmetry(xy_plus_z, x.long(), [0]), TypeError, "floating point.*torch.int64"),
        (lambda: H.get_dependence(xy_plus_z, torch.cat([x[:, :2], torch.ones(400, 1, dtype=F64)], 1), [0]),
         ValueError, r"column\(s\) \[2\] are constant"),
        (lambda: H.test_symmetry(lambda x: x[:, :2], x, [0, 1]), ValueError,
         r"one value per row.*got shape \(400, 2\).*model\(x\)\[:, \[k\]\]"),
        (lambda: H.test_symmetry(lambda x: torch.ones(400, 1), x, [0, 1]), ValueError, "not differentiable"),
        (lambda: H.test_symmetry(xy_plus_z, x, [0, 3]), ValueError, r"index 3, outside \[0, 3\)"),
        (lambda: H.test_symmetry(xy_plus_z, x, [0, 0]), ValueError, r"repeats a variable: \[0, 0\]"),
        (lambda: H.test_symmetry(xy_plus_z, x, []), ValueError, "group is empty"),
        (lambda: H.test_symmetry(xy_plus_z, x, 0), ValueError, "list of variable indices.*got 0"),
        (lambda: H.test_symmetry(xy_plus_z, x, [True]), ValueError, "variable indices.*got True"),
        (lambda: H.test_separability(xy_plus_z, x, [[0, 1], [1]]), ValueError,
         r"variable 1 is in groups\[0\] and groups\[1\]"),
        (lambda: H.test_separability(xy_plus_z, x, [0, 1]), ValueError, r"groups\[0\] must be a list"),
        (lambda: H.test_separability(xy_plus_z, x, [[0]], mode="sum"), ValueError, "'add' or 'mul', got 'sum'"),
        (lambda: H.test_symmetry(xy_plus_z, x, [0], dependence_th=-1), ValueError, "dependence_th.*>= 0, got -1"),
        (lambda: H.detect_separability(xy_plus_z, x, n_clusters=4), ValueError, r"\[1, 3\].*got 4"),
        (lambda: H.detect_separability(xy_plus_z, x, n_clusters="2"), ValueError, "n_clusters must be.*got '2'"),
        (lambda: H.plot_tree(xy_plus_z, x, in_var=["a"]), ValueError, r"list of 3 names.*got \['a'\]"),
        (lambda: H.plot_tree(xy_plus_z, x, style="graph"), ValueError, "'tree' or 'box', got 'graph'"),
        (lambda: H.get_tree_node(xy_plus_z, x, [[[0, 1], [2]], [[1, 0, 2]]], skip_test=True), ValueError,
         r"not a concatenation"),
    ]
    for call, exc, pattern in cases:
        with pytest.raises(exc, match=pattern):
            call()


def test_non_finite_derivatives_are_an_error_not_an_answer():
    x = _x()
    # f = 0 on most samples: log|f| is -inf there, so mode 'mul' cannot be judged
    mostly_zero = lambda x: torch.relu(x[:, [0]] - 0.5) * torch.exp(x[:, [1]] + x[:, [2]])  # noqa: E731
    with pytest.raises(ValueError, match=r"log\|f \+ bias\|.*NaN or infinite at \d+ of 400 samples"):
        H.test_separability(mostly_zero, x, [[0], [1, 2]], mode="mul")
    # a variable f does not depend on: df/dx_a = 0 everywhere, the gradient ratio is undefined
    no_z = lambda x: x[:, [0]] * x[:, [1]] + 0 * x[:, [2]]  # noqa: E731
    with pytest.raises(ValueError, match=r"log\|\(df/dx_2\) / \(df/dx_0\)\|.*it needs both nonzero"):
        H.test_general_separability(no_z, x, [[0, 1], [2]])
    # a few bad samples are left out of the median and change nothing
    few = x.clone()
    few[:5, 0] = 0.0  # log|x0 * ...| = -inf at 5 samples
    prod = lambda x: x[:, [0]] * torch.exp(x[:, [1]]) * (2 + x[:, [2]])  # noqa: E731
    assert H.test_separability(prod, few, [[0], [1], [2]], mode="mul") is True


def test_pytest_does_not_collect_the_library_tests():
    assert H.test_symmetry.__test__ is False and H.test_separability.__test__ is False
    assert H.test_general_separability.__test__ is False
