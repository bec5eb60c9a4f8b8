"""Multiplication nodes (pykan's MultKAN): parity with pykan 0.2.8 in float64
(forward, gradients, an L-BFGS fit, attribution, pruning, symbolic formulas),
conversions both ways, checkpoints, torch.compile, the pykan_methods that
edit the network, pykan's seeding, and the errors for bad widths / arities.

Every comparison is against pykan computing on the same state, or against
kanext itself computed another way; nothing is a stored number."""
from __future__ import annotations

import copy
import json

import pytest
import sympy
import torch

import kanext
from helpers import assert_close, quiet

kan = pytest.importorskip("kan", reason="pykan is a test dependency (requirements/test.txt)")

F64 = torch.float64
RTOL = 1e-10

# (width, mult_arity): homogeneous, pykan's pair form, mixed arities in two layers
CASES = [
    ([2, [1, 1], 1], 2),
    ([[2, 0], [1, 1], [1, 0]], 2),
    ([3, [2, 2], [1, 1]], 3),
    ([3, [1, 2], [1, 1]], [[], [2, 3], [2]]),
]


pytestmark = pytest.mark.usefixtures("pykan_float64_in_tmp")


def _pykan(width, mult_arity, seed=0, **kw):
    width = [list(w) if isinstance(w, list) else w for w in width]  # pykan rewrites its argument
    return quiet(kan.MultKAN, width=width, mult_arity=mult_arity, grid=5, k=3, seed=seed, auto_save=False, **kw)


def _perturb(pk, seed, affines=True):
    """Random splines, scales and (optionally) node / subnode affines: a trained-looking state."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in pk.act_fun:
            layer.coef.add_(0.3 * torch.randn(layer.coef.shape, generator=g))
            layer.scale_base.add_(0.3 * torch.randn(layer.scale_base.shape, generator=g))
            layer.scale_sp.add_(0.3 * torch.randn(layer.scale_sp.shape, generator=g))
        if affines:
            for name in ("node_scale", "subnode_scale", "node_bias", "subnode_bias"):
                for p in getattr(pk, name):
                    p.add_(0.3 * torch.randn(p.shape, generator=g))
    return g


def _params(model):
    out = []
    for l, layer in enumerate(model.act_fun):
        out += [layer.coef, layer.scale_base, layer.scale_sp]
        for name in ("node_scale", "node_bias", "subnode_scale", "subnode_bias"):
            p = getattr(model, name)[l]
            if p.requires_grad:
                out.append(p)
    return out


def _x(n, d, seed):
    return torch.rand(n, d, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# ---------------------------------------------------------------- forward, gradients, structure
@pytest.mark.parametrize("width,arity", CASES)
@pytest.mark.parametrize("affine", [False, True])
def test_forward_and_gradients_match_pykan(width, arity, affine):
    pk = _pykan(width, arity, affine_trainable=affine)
    _perturb(pk, 3)
    ours = kanext.from_pykan(pk)
    assert ours.width == pk.width_in and ours.width_out == pk.width_out
    assert ours.n_sum == pk.n_sum and ours.n_mult == pk.n_mult and ours.mult_arity == pk.mult_arity
    assert [m.out_features for m in ours.act_fun] == pk.width_out[1:]
    x = _x(40, ours.width[0], 1)
    y_pk, y = pk(x), ours(x)
    assert_close(y, y_pk, RTOL, msg="output vs pykan")
    gy = torch.randn(y.shape, generator=torch.Generator().manual_seed(5))
    for i, (a, b) in enumerate(zip(torch.autograd.grad(y, _params(ours), gy),
                                   torch.autograd.grad(y_pk, _params(pk), gy))):
        assert_close(a, b, RTOL, msg=f"gradient of parameter {i} vs pykan")


def test_products_are_of_consecutive_subnodes():
    """Layer 0 of [2, [1, 2], 1] with arities [3, 2]: node 1 = s1*s2*s3, node 2 = s4*s5 (after the
    subnode affine), then the node affine; computed here by hand from the subnode values."""
    m = kanext.KAN([2, [1, 2], 1], mult_arity=[[], [3, 2], []], grid=4, seed=2)
    with torch.no_grad():
        for p in (m.subnode_scale[0], m.subnode_bias[0], m.node_scale[0], m.node_bias[0]):
            p.add_(torch.rand(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    x = _x(30, 2, 0)
    s = m.act_fun[0](x) * m.subnode_scale[0] + m.subnode_bias[0]
    want = torch.stack([s[:, 0], s[:, 1] * s[:, 2] * s[:, 3], s[:, 4] * s[:, 5]], 1) * m.node_scale[0] + m.node_bias[0]
    assert_close(m.layer_forward(0, x), want, 1e-14)
    assert m.subnode_groups(1) == [[0], [1, 2, 3], [4, 5]] and m.node_of_subnode(1) == [0, 1, 1, 1, 2, 2]


def test_no_mult_fast_path_is_unchanged():
    """Without multiplication nodes and with identity affines, a layer is the spline layer's output itself."""
    m = kanext.KAN([2, 3, 1], seed=0)
    x = _x(10, 2, 0)
    assert not m.has_mult and m.width_out == m.width
    assert torch.equal(m.layer_forward(0, x), m.act_fun[0](x))


def test_seed_reproduces_pykan_initial_weights_and_leaves_the_global_rng_alone():
    # the same uniform draws; coef is then fitted by each library's own least squares
    for dtype, tol in ((F64, 1e-13), (torch.float32, 1e-6)):
        torch.set_default_dtype(dtype)
        for seed in (0, 7):
            pk = _pykan([2, [2, 1], 1], 2, seed=seed)
            state = torch.get_rng_state()
            ours = kanext.KAN([2, [2, 1], 1], grid=5, k=3, seed=seed)
            assert torch.equal(torch.get_rng_state(), state), "KAN(seed=...) must not touch the global RNG"
            for a, b in zip(ours.act_fun, pk.act_fun):
                for name in ("coef", "scale_base", "scale_sp"):
                    assert_close(getattr(a, name), getattr(b, name), tol, msg=f"{name} ({dtype}, seed {seed})")
    torch.set_default_dtype(F64)
    a, b = kanext.KAN(), kanext.KAN()  # default seed 1, as pykan
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    pk1 = quiet(kan.MultKAN, width=[2, 5, 1], auto_save=False)  # pykan's defaults: seed 1, G 3, k 3
    assert_close(a.act_fun[0].coef, pk1.act_fun[0].coef, 1e-13)
    torch.manual_seed(123)
    c, d = kanext.KAN(seed=None), kanext.KAN(seed=None)  # seed=None: the global RNG, draws differ
    assert not torch.equal(c.act_fun[0].coef, d.act_fun[0].coef)


# ---------------------------------------------------------------- training
def test_lbfgs_fit_follows_pykans_trajectory_and_caches_the_test_inputs():
    pk = _pykan([2, [1, 1], 1], 2)
    _perturb(pk, 4, affines=False)
    ours = kanext.from_pykan(pk)
    x, xt = _x(60, 2, 5), _x(30, 2, 6)
    f = lambda t: t[:, :1] * t[:, 1:] + 0.5 * torch.sin(2 * t[:, :1])  # noqa: E731
    ds = {"train_input": x, "train_label": f(x), "test_input": xt, "test_label": f(xt)}
    # Without grid updates the two runs agree to rounding. Grid updates refit the coefficients by least
    # squares, where the two libraries round differently (~1e-10 in coef, the function equal to ~1e-11),
    # and L-BFGS's line searches amplify that over the steps: compared more loosely.
    for update_grid, tol in ((False, 1e-9), (True, 1e-3)):
        pk_run, ours_run = copy.deepcopy(pk), copy.deepcopy(ours)
        kw = dict(opt="LBFGS", steps=3, update_grid=update_grid, grid_update_num=2, stop_grid_update_step=2)
        r_pk = quiet(pk_run.fit, ds, **kw)
        r = ours_run.fit(ds, progress=False, **kw)
        for key in ("train_loss", "test_loss"):
            got = torch.tensor(r[key])
            want = torch.tensor([float(v) for v in r_pk[key]])
            assert_close(got, want, tol, msg=f"{key} per step vs pykan (update_grid={update_grid})")
        assert r["train_loss"][-1] < 0.5 * r["train_loss"][0]
        assert_close(ours_run(xt), pk_run(xt), tol, msg="trained model vs pykan")
        assert torch.equal(ours_run.cache_data, pk_run.cache_data) and torch.equal(ours_run.cache_data, xt)


def test_update_grid_refine_and_initialize_from_another_model_keep_the_structure():
    pk = _pykan([2, [1, 2], 1], [[], [2, 3], []])
    _perturb(pk, 8)
    ours = kanext.from_pykan(pk)
    x = _x(80, 2, 9)
    quiet(pk.update_grid_from_samples, x)
    ours.update_grid(x)
    assert_close(ours(x), pk(x), 1e-9, msg="after update_grid vs pykan")
    finer = ours.refine(10, x)
    assert finer.mult_arities == ours.mult_arities and finer.width_out == ours.width_out and finer.grid == [10, 10]
    assert_close(finer(x), ours(x), 1e-3, msg="refine keeps the function")
    fresh = kanext.KAN([2, [1, 2], 1], mult_arity=[[], [2, 3], []], grid=10, seed=3)
    fresh.initialize_from_another_model(ours, x)
    assert_close(fresh(x), finer(x), 1e-12, msg="initialize_from_another_model == refine")
    with pytest.raises(ValueError, match="widths differ"):
        kanext.KAN([2, [1, 2], 1], grid=10).initialize_from_another_model(ours, x)  # arities 2, 2


# ---------------------------------------------------------------- attribution and pruning
def test_attribution_matches_pykan():
    pk = _pykan([3, [2, 2], [1, 1]], 2)
    _perturb(pk, 10)
    ours = kanext.from_pykan(pk)
    x = _x(64, 3, 11)
    pk(x)
    quiet(pk.attribute)
    ours.attribute(x=x)
    for name in ("node_scores", "edge_scores", "subnode_scores"):
        for l, (a, b) in enumerate(zip(getattr(ours, name), getattr(pk, name))):
            assert_close(a, b, 1e-9, msg=f"{name}[{l}] vs pykan")
    assert [s.shape[0] for s in ours.subnode_scores] == pk.width_out[1:]
    q = ours.attribute(1, 2, x=x)  # scores of the inputs for multiplication node 2 of layer 1
    q_pk = quiet(pk.attribute, 1, 2, plot=False)
    assert_close(q, q_pk, 1e-9, msg="attribute(l, i) vs pykan")
    ours.attribute(x=x, metric="forward")  # the forward rule: incoming = best edge into any subnode
    inc = ours.edge_scores[0].amax(dim=1)
    assert_close(ours.node_scores[1][2], torch.minimum(inc[3:5].max(), ours.edge_scores[1][:, 2].max()), 0)


@pytest.mark.parametrize("metric", ["edge_forward_spline_n", "edge_forward_spline_u", "edge_forward_sum",
                                    "edge_backward", "node_backward"])
def test_reg_metrics_match_pykan(metric):
    pk = _pykan([3, [2, 2], [1, 1]], 2)
    _perturb(pk, 26)
    ours = kanext.from_pykan(pk)
    x = _x(60, 3, 27)
    pk.get_act(x)
    quiet(pk.attribute)
    if metric == "node_backward":
        quiet(pk.node_attribute)
    want = pk.reg(metric, 1.0, 2.0, 0.0, 0.0)
    got = ours.reg(x, 1.0, 2.0, 0.0, 0.0, metric)
    assert float(got) == pytest.approx(float(want), rel=1e-9)


def _weaken(pk, l, out_cols):
    with torch.no_grad():
        pk.act_fun[l].scale_base[:, out_cols] = 1e-6
        pk.act_fun[l].scale_sp[:, out_cols] = 1e-6


@pytest.mark.parametrize("weak_cols,arity", [([1, 4], 2), ([2], 2), ([0, 6], 3)])
def test_prune_node_matches_pykan(weak_cols, arity):
    """Weak sum nodes and weak subnodes of multiplication nodes: pykan's rule keeps and drops the same nodes,
    and the pruned models compute the same function."""
    width = [3, [2, 2], [1, 1]]
    pk = _pykan(width, arity)
    _perturb(pk, 12, affines=False)
    _weaken(pk, 0, weak_cols)
    ours = kanext.from_pykan(pk)
    x = _x(64, 3, 13)
    pk(x)
    pk_pruned = quiet(pk.prune_node, 1e-2, log_history=False)
    pruned = ours.prune_node(1e-2, x=x)
    assert pruned.width == pk_pruned.width_in and pruned.width_out == pk_pruned.width_out
    assert pruned.n_mult == pk_pruned.n_mult
    assert pruned.width != ours.width, "the weak nodes must have been pruned"
    assert_close(pruned(x), pk_pruned(x), 1e-10, msg="pruned model vs pykan's")
    masked = kanext.from_pykan(pk)  # pykan also masks the removed nodes in the original
    assert_close(pruned(x), masked(x), 1e-12, msg="pruned == masked original")
    back = kanext.from_pykan(pk_pruned)
    assert back.mult_arities == pruned.mult_arities
    assert_close(back(x), pruned(x), 1e-12, msg="from_pykan of pykan's pruned model")


def test_prune_edge_prune_input_and_manual_prune_node():
    pk = _pykan([3, [1, 1], 1], 2)
    _perturb(pk, 14, affines=False)
    with torch.no_grad():
        pk.act_fun[0].scale_base[1] = 1e-7  # input 1 is unused
        pk.act_fun[0].scale_sp[1] = 1e-7
    ours = kanext.from_pykan(pk)
    x = _x(64, 3, 15)
    pk(x)
    pk_in = quiet(pk.prune_input, 1e-2, log_history=False)
    ours_in = ours.prune_input(1e-2, x=x)
    assert ours_in.input_id.tolist() == pk_in.input_id.tolist() == [0, 2]
    assert_close(ours_in(x[:, [0, 2]]), pk_in(x), 1e-10, msg="prune_input vs pykan")
    conv = kanext.from_pykan(pk_in)  # pykan's pruned input: the kanext model reads the kept columns
    assert conv.input_id.tolist() == [0, 2] and conv.width[0] == 2
    assert_close(conv(x[:, [0, 2]]), pk_in(x), 1e-12, msg="from_pykan of an input-pruned MultKAN")
    manual = ours.prune_node(active_neurons_id=[[1]], x=x)  # only the multiplication node
    assert manual.width == [3, 1, 1] and manual.mult_arities == [[], [2], []] and manual.n_sum == [0]
    with pytest.raises(ValueError, match="sum nodes first"):
        ours.prune_node(active_neurons_id=[[1, 0]], x=x)
    pruned = ours.prune_edge(0.5, x=x)
    for l, layer in enumerate(pruned.act_fun):
        dead = (pruned.edge_scores[l] <= 0.5).T
        assert torch.all(layer.mask[dead] == 0) and torch.all(layer.mask[~dead] == 1)
    fresh = kanext.from_pykan(pk)
    fresh.remove_node(1, 1, mode="down")  # the edges into both subnodes of the multiplication node
    assert torch.all(fresh.act_fun[0].mask[:, 1:3] == 0) and torch.all(fresh.act_fun[0].mask[:, 0] == 1)


# ---------------------------------------------------------------- symbolic
def _fix_all(model, names, pykan_model=False):
    for l, layer in enumerate(model.act_fun):
        for i in range(layer.in_dim if pykan_model else layer.in_features):
            for j in range(layer.out_dim if pykan_model else layer.out_features):
                fn = names[(l + i + j) % len(names)]
                if pykan_model:
                    quiet(model.fix_symbolic, l, i, j, fn, fit_params_bool=False, log_history=False)
                else:
                    model.fix_symbolic(l, i, j, fn, fit_params=False, verbose=False)


def test_symbolic_formula_has_the_products_and_matches_pykan():
    pk = _pykan([2, [1, 1], 1], 2)
    _perturb(pk, 16)
    x = _x(50, 2, 17)
    pk(x)
    _fix_all(pk, ["x", "x^2", "sin"], pykan_model=True)
    g = torch.Generator().manual_seed(18)
    with torch.no_grad():
        for sym in pk.symbolic_fun:
            sym.affine.copy_(torch.rand(sym.affine.shape, generator=g) + 0.5)
    ours = kanext.from_pykan(pk)  # fixed symbolic edges on subnodes carry over
    assert_close(ours(x), pk(x), 1e-12, msg="all-symbolic model vs pykan")
    (e_pk,), v_pk = quiet(pk.symbolic_formula)
    (e,), v = ours.symbolic_formula(floating_digits=None)
    f_pk = sympy.lambdify(v_pk, e_pk, "math")
    f = sympy.lambdify(v, e, "math")
    for p in x[:10].tolist():
        assert f(*p) == pytest.approx(f_pk(*p), rel=1e-9)
    assert f(*x[0].tolist()) == pytest.approx(float(ours(x[:1])), rel=1e-9)
    # the multiplication node's output is a product of two sums of edge terms
    mults = [t for t in sympy.preorder_traversal(e) if isinstance(t, sympy.Mul)
             and sum(1 for a in t.args if isinstance(a, sympy.Add) and a.free_symbols) >= 2]
    assert mults, f"no product of subnodes in {e}"


def test_fix_suggest_auto_symbolic_index_subnodes_and_recover_a_product():
    m = kanext.KAN([2, [0, 1], 1], grid=5, seed=0)
    x = _x(200, 2, 19)
    y = x[:, :1] * x[:, 1:]
    m.fit({"train_input": x, "train_label": y, "test_input": x, "test_label": y}, steps=25, progress=False,
          update_grid=False)
    assert m.act_fun[0].out_features == 2  # edge (0, i, j): j is subnode 0 or 1
    assert m.suggest_symbolic(0, 1, 1, lib=["x", "x^2"], verbose=False)[0][0] == "x"
    m.auto_symbolic(lib=["x", "x^2", "0"], verbose=0)
    assert m.symbolic_fun[0].funs_name[0][1] == "0" and m.symbolic_fun[0].funs_name[1][0] == "0"
    m.fit({"train_input": x, "train_label": y, "test_input": x, "test_label": y}, steps=10, progress=False,
          update_grid=False)
    (e,), v = m.symbolic_formula(floating_digits=None)
    f = sympy.lambdify(v, e, "math")
    for p in x[:5].tolist():
        assert f(*p) == pytest.approx(float(m(torch.tensor([p]))), rel=1e-9, abs=1e-12)
        assert f(*p) == pytest.approx(p[0] * p[1], abs=1e-6)


# ---------------------------------------------------------------- conversions, checkpoints, compile
@pytest.mark.parametrize("width,arity", CASES[2:])
def test_to_pykan_and_back(width, arity):
    ours = kanext.KAN(width, mult_arity=arity, grid=4, seed=5, affine_trainable=True)
    g = torch.Generator().manual_seed(20)
    with torch.no_grad():
        for p in ours.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g))
    ours.fix_symbolic(0, 1, ours.width_out[1] - 1, "sin", fit_params=False, verbose=False)
    x = _x(30, ours.width[0], 21)
    pk = kanext.to_pykan(ours)
    assert pk.width == [[ours.n_sum_nodes(l), len(a)] for l, a in enumerate(ours.mult_arities)]
    assert_close(pk(x), ours(x), 1e-12, msg="to_pykan computes the same function")
    back = kanext.from_pykan(pk)
    assert back.mult_arities == ours.mult_arities
    assert_close(back(x), ours(x), 1e-12, msg="from_pykan(to_pykan(m))")


def test_checkpoint_round_trip_records_the_structure(tmp_path):
    m = kanext.KAN([3, [1, 2], [1, 1]], mult_arity=[[], [2, 3], [2]], grid=4, seed=6)
    x = _x(20, 3, 22)
    m.fix_symbolic(0, 2, 4, "x^2", fit_params=False, verbose=False)
    json_path, _ = kanext.checkpoint.save(m, tmp_path / "mult")
    cfg = json.loads(json_path.read_text())["config"]
    assert cfg["mult_arity"] == [[], [2, 3], [2]] and cfg["width"] == [3, 3, 2]
    back = kanext.checkpoint.load(tmp_path / "mult")
    assert back.mult_arities == m.mult_arities and back.width_out == m.width_out
    assert_close(back(x), m(x), 0, msg="checkpoint round trip")
    plain = kanext.KAN([2, 3, 1], seed=0)
    json_plain, _ = kanext.checkpoint.save(plain, tmp_path / "plain")
    assert "mult_arity" not in json.loads(json_plain.read_text())["config"]  # old-format configs unchanged
    doc = json.loads(json_path.read_text())
    doc["config"]["mult_arity"] = [[], [2, 1], [2]]
    json_path.write_text(json.dumps(doc))
    with pytest.raises(kanext.checkpoint.CheckpointError, match="mult_arity"):
        kanext.checkpoint.load(tmp_path / "mult")


def test_compile_fullgraph_equals_eager():
    torch._dynamo.reset()
    m = kanext.KAN([2, [1, 2], [1, 1]], mult_arity=[[], [2, 3], [2]], grid=4, seed=7, affine_trainable=True)
    x = _x(25, 2, 23)
    c = torch.compile(m, fullgraph=True, backend="aot_eager")
    y, yc = m(x), c(x)
    assert_close(yc, y, 1e-12, msg="compiled forward")
    params = [p for p in m.parameters() if p.requires_grad]
    gs = torch.autograd.grad(y.sum(), params)
    gc = torch.autograd.grad(yc.sum(), params)
    for a, b in zip(gc, gs):
        assert_close(a, b, 1e-12, msg="compiled gradients")
    torch._dynamo.reset()


# ---------------------------------------------------------------- pykan_methods and plotting
def test_pykan_methods_with_multiplication_nodes():
    m = kanext.KAN([2, [2, 1], 1], grid=4, seed=8)
    x = _x(30, 2, 24)
    y = m(x)
    m.expand_width(1, 2, sum_bool=False, mult_arity=[2, 3])  # pykan: appended after the existing nodes
    assert m.width == [2, 5, 1] and m.mult_arities[1] == [2, 2, 3] and m.width_out == [2, 9, 1]
    assert m.n_mult == [3] and m.n_sum == [2]
    assert_close(m(x), y, 0, msg="expand_width(sum_bool=False) keeps the function")
    m.expand_width(1, 1)
    assert m.width == [2, 6, 1] and m.n_sum == [3] and m.mult_arities[1] == [2, 2, 3]
    m.perturb(1.0, "all")
    y = m(x)
    m.swap(1, 3, 4)  # two multiplication nodes of arity 2, with their subnodes
    assert_close(m(x), y, 1e-12, msg="swap of multiplication nodes")
    with pytest.raises(ValueError, match="only sum nodes with sum nodes"):
        m.swap(1, 0, 5)
    with pytest.raises(ValueError, match="only sum nodes with sum nodes"):
        m.swap(1, 4, 5)  # arities 2 and 3
    m.auto_swap()
    assert_close(m(x), y, 1e-12, msg="auto_swap keeps the function")
    m.expand_depth()
    assert m.mult_arities == [[], [2, 2, 3], [], []]
    assert_close(m(x), y, 1e-12, msg="expand_depth keeps the function")
    pk = kanext.to_pykan(m)
    assert pk.width_out == m.width_out and pk.n_mult == m.n_mult
    assert_close(pk(x), m(x), 1e-12, msg="expanded model vs pykan")


def test_plot_draws_multiplication_nodes(tmp_path):
    pytest.importorskip("matplotlib")
    m = kanext.KAN([2, [1, 2], [1, 1]], mult_arity=[[], [2, 3], [2]], grid=4, seed=9)
    x = _x(40, 2, 25)
    fig = m.plot(x=x)
    gids = {a.get_gid() for a in fig.axes if a.get_gid()}
    assert len(gids) == sum(layer.in_features * layer.out_features for layer in m.act_fun)
    assert kanext.plotting.EDGE_GID.format(l=0, i=1, j=5) in gids  # edge into the last subnode
    crosses = [c for c in fig.axes[0].collections if c.get_offsets().shape[0] and
               getattr(c.get_paths()[0], "vertices", None) is not None and c.get_paths()[0].vertices.shape[0] == 4]
    assert crosses, "multiplication nodes are drawn as crosses"
    m.plot_activation(0, 1, 5)


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize("width,arity,frag", [
    ([[2, 1], 3, 1], 2, r"inputs \(width entry 0\) cannot be multiplication nodes"),
    ([2, [1, -1], 1], 2, r"width entry 1 must be .*got \[1, -1\]"),
    ([2, [0, 0], 1], 2, r"at least one node, got \[0, 0\]"),
    ([2, [1, 1, 1], 1], 2, r"width entry 1 must be .*\[1, 1, 1\]"),
    ([2, [1, 1], 1], 1, r"mult_arity must be an int >= 2 .*got 1"),
    ([2, [1, 1], 1], [[], [2]], r"lists of lengths \[0, 1, 0\]; got \[\[\], \[2\]\]"),
    ([2, [1, 2], 1], [[], [2], []], r"lists of lengths \[0, 2, 0\]"),
    ([2, [1, 1], 1], [[], [1], []], r"mult_arity\[1\] must hold ints >= 2 .*got \[1\]"),
    ([2, "a", 1], 2, r"width entry 1 must be a positive int .*got 'a'"),
])
def test_bad_widths_and_arities_say_what_was_expected(width, arity, frag):
    with pytest.raises(ValueError, match=frag):
        kanext.KAN(width, mult_arity=arity)
