"""Pruning: KANLinear.subset, prune_node / prune_edge / prune_input / prune,
remove_edge / remove_node, and the paper's pruning checks.

The surgery tests compare the pruned model with the *masked original* built
independently (a deep copy whose masks are zeroed by hand on the removed
nodes' edges): same function to ~1e-12 in float64 on random inputs.
"""
from __future__ import annotations

import copy

import pytest
import torch

import kanext
from helpers import assert_close, gen

F64 = torch.float64


def _random_kan(width, seed, G=5, k=3, affines=True):
    """A KAN with random coefficients, non-uniform grids (from skewed data),
    a few masked edges and random node/subnode affines."""
    m = kanext.KAN(width, grid=G, k=k, seed=seed, dtype=F64)
    r = gen(seed + 1)
    x = torch.randn(400, width[0], generator=r, dtype=F64) ** 3  # skewed: non-uniform knots after update_grid
    m.update_grid(x)
    with torch.no_grad():
        for layer in m.act_fun:
            layer.coef.add_(0.3 * torch.randn(layer.coef.shape, generator=r, dtype=F64))
            layer.mask.mul_((torch.rand(layer.mask.shape, generator=r, dtype=F64) > 0.15).to(F64))
        if affines:
            for name in ("node_scale", "subnode_scale"):
                for p in getattr(m, name):
                    p.copy_(0.5 + torch.rand(p.shape, generator=r, dtype=F64))
            for name in ("node_bias", "subnode_bias"):
                for p in getattr(m, name):
                    p.copy_(torch.randn(p.shape, generator=r, dtype=F64))
    return m, x


def _masked_original(model, keep):
    """Deep copy of model with every edge into / out of a node not in keep[l] masked (by hand)."""
    m = copy.deepcopy(model)
    with torch.no_grad():
        for l in range(1, m.depth):
            dead = [i for i in range(m.width[l]) if i not in keep[l]]
            for i in dead:
                m.act_fun[l - 1].mask[:, i] = 0
                m.act_fun[l].mask[i, :] = 0
        dead_in = [i for i in range(m.width[0]) if i not in keep[0]]
        for i in dead_in:
            m.act_fun[0].mask[i, :] = 0
    return m


# ----------------------------------------------------------------- KANLinear.subset


def test_subset_equals_the_masked_layer_on_nonuniform_grids():
    layer = kanext.KANLinear(5, 4, grid=6, k=3, generator=gen(3), dtype=F64)
    r = gen(4)
    layer.update_grid(torch.randn(300, 5, generator=r, dtype=F64) ** 3)
    with torch.no_grad():
        layer.mask[1, 2] = 0
    assert not bool((layer.grid[:, 1:] - layer.grid[:, :-1]).std(dim=1).lt(1e-12).all()), "grid should be non-uniform"
    in_idx, out_idx = [4, 0, 2], [3, 1]
    sub = layer.subset(in_idx, out_idx)
    x = torch.randn(64, 5, generator=r, dtype=F64)
    masked = copy.deepcopy(layer)
    with torch.no_grad():
        masked.mask[[1, 3], :] = 0
    assert_close(sub(x[:, in_idx]), masked(x)[:, out_idx], 1e-12, msg="subset vs masked original")
    assert (sub.in_features, sub.out_features) == (3, 2)
    assert torch.equal(sub.grid, layer.grid[in_idx])
    assert torch.equal(sub.coef, layer.coef[in_idx][:, out_idx])
    assert torch.equal(sub.mask, layer.mask[in_idx][:, out_idx])
    assert sub.coef.is_contiguous()  # optimisers flatten parameters with .view(-1)
    assert sub.coef.data_ptr() != layer.coef.data_ptr()
    with torch.no_grad():
        sub.coef.zero_()
    assert float(layer.coef.detach().abs().sum()) > 0, "subset must not share storage with the original"


def test_subset_keeps_flags_and_rejects_bad_indices():
    layer = kanext.KANLinear(3, 2, sb_trainable=False, generator=gen(0))
    sub = layer.subset(torch.tensor([2, 1]), [0])
    assert not sub.scale_base.requires_grad and sub.coef.requires_grad and sub.grid_eps == layer.grid_eps
    for bad, what in (([], "at least one"), ([0, 0], "distinct"), ([3], r"\[0, 3\)"), ([-1], r"\[0, 3\)"),
                      ([0.5], "ints"), (torch.tensor([0.0]), "integer tensor")):
        with pytest.raises(ValueError, match=what):
            layer.subset(bad, [0])


# ----------------------------------------------------------------- prune_node / prune_input


@pytest.mark.parametrize("width,keep_hidden", [([3, 5, 2], [[4, 1]]), ([2, 4, 3, 2], [[0, 3], [2]])])
def test_prune_node_equals_the_masked_original(width, keep_hidden):
    model, x = _random_kan(width, seed=len(width))
    pruned = model.prune_node(active_neurons_id=keep_hidden)
    keep = [list(range(width[0]))] + keep_hidden + [list(range(width[-1]))]
    assert pruned.width == [len(k) for k in keep]
    assert [l.in_features for l in pruned.act_fun] == pruned.width[:-1]
    xt = torch.randn(128, width[0], generator=gen(9), dtype=F64)
    assert_close(pruned(xt), _masked_original(model, keep)(xt), 1e-12, msg="pruned vs masked original")
    # grids carried row for row; the original is untouched
    for l, layer in enumerate(pruned.act_fun):
        assert torch.equal(layer.grid, model.act_fun[l].grid[keep[l]])
    assert model.width == width and model.act_fun[0].out_features == width[1]


def test_prune_node_by_score_keeps_exactly_the_nodes_above_threshold():
    model, x = _random_kan([3, 6, 1], seed=5, affines=False)
    with torch.no_grad():  # make nodes 1 and 4 dead: nothing flows out of them
        model.act_fun[1].mask[[1, 4], :] = 0
    model.attribute(x=x)
    scores = model.node_scores[1].clone()
    th = 1e-2
    pruned = model.prune_node(th, x=x)
    expect = [i for i in range(6) if scores[i] > th]
    assert 1 not in expect and 4 not in expect and len(expect) >= 1
    assert pruned.width == [3, len(expect), 1]
    assert_close(pruned(x), _masked_original(model, [[0, 1, 2], expect, [0]])(x), 1e-12, msg="by score")
    assert torch.equal(pruned.cache_data, x)


def test_a_dead_hidden_layer_keeps_its_best_node_and_stays_finite():
    model, x = _random_kan([3, 4, 4, 2], seed=7)
    model.attribute(x=x)
    best = [int(torch.argmax(model.node_scores[l])) for l in (1, 2)]
    pruned = model.prune_node(threshold=1e9, x=x)  # every hidden node is "dead"
    assert pruned.width == [3, 1, 1, 2]
    keep = [[0, 1, 2], [best[0]], [best[1]], [0, 1]]
    out = pruned(x)
    assert bool(torch.isfinite(out).all())
    assert_close(out, _masked_original(model, keep)(x), 1e-12, msg="dead layers")


def test_pruning_the_only_path_to_an_output_makes_it_constant_not_nan():
    model, x = _random_kan([2, 2, 2], seed=11, affines=True)
    with torch.no_grad():  # output 1 is reached only through hidden node 1
        model.act_fun[1].mask.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=F64))
    pruned = model.prune_node(active_neurons_id=[[0]])
    out = pruned(x)
    assert bool(torch.isfinite(out).all())
    assert bool((out[:, 1] == out[0, 1]).all()), "output 1 lost its only path: it must be a constant"
    assert_close(out, _masked_original(model, [[0, 1], [0], [0, 1]])(x), 1e-12, msg="only path")
    pruned.attribute(x=x)  # scoring the pruned model stays finite too
    assert all(bool(torch.isfinite(s).all()) for s in pruned.node_scores + pruned.edge_scores)


def test_prune_input_manual_and_by_score():
    model, x = _random_kan([4, 3, 1], seed=13, affines=False)
    pruned = model.prune_input(active_inputs=[3, 0])
    assert pruned.width == [2, 3, 1] and pruned.input_id.tolist() == [3, 0]
    assert_close(pruned(x[:, [3, 0]]), _masked_original(model, [[0, 3], [0, 1, 2], [0]])(x), 1e-12, msg="inputs")
    with pytest.raises(ValueError, match=r"\(\.\.\., 2\)"):
        pruned(x)  # the full input is refused, not silently misread
    with torch.no_grad():
        model.act_fun[0].mask[[1, 2], :] = 0  # inputs 1 and 2 do nothing
    auto = model.prune_input(x=x)
    assert auto.input_id.tolist() == [0, 3]
    assert torch.equal(auto.cache_data, x[:, [0, 3]])


def test_prune_edge_masks_in_place_exactly_the_weak_edges():
    model, x = _random_kan([3, 4, 2], seed=17, affines=False)
    model.attribute(x=x)
    scores = [s.clone() for s in model.edge_scores]
    th = float(scores[0].median())
    before = [layer.mask.clone() for layer in model.act_fun]
    out = model.prune_edge(th, x=x)
    assert out is model
    for l, layer in enumerate(model.act_fun):
        assert torch.equal(layer.mask, before[l] * (scores[l] > th).T.to(F64))


def test_prune_is_prune_node_then_prune_edge_and_leaves_the_original():
    model, x = _random_kan([3, 5, 1], seed=19, affines=False)
    masks = [layer.mask.clone() for layer in model.act_fun]
    pruned = model.prune(node_th=0.05, edge_th=0.05, x=x)
    step = model.prune_node(0.05, x=x).prune_edge(0.05, x=x)
    assert pruned.width == step.width
    for a, b in zip(pruned.act_fun, step.act_fun):
        assert torch.equal(a.mask, b.mask)
    assert all(torch.equal(m, layer.mask) for m, layer in zip(masks, model.act_fun))


def test_remove_edge_and_remove_node():
    model, _ = _random_kan([3, 4, 2], seed=23, affines=False)
    with torch.no_grad():
        for layer in model.act_fun:
            layer.mask.fill_(1)
    model.remove_edge(0, 2, 1)
    assert float(model.act_fun[0].mask[2, 1]) == 0 and float(model.act_fun[0].mask.sum()) == 11
    model.remove_node(1, 3)
    assert float(model.act_fun[0].mask[:, 3].abs().sum()) == 0 and float(model.act_fun[1].mask[3].abs().sum()) == 0
    model.remove_node(0, 0)  # an input: outgoing only
    assert float(model.act_fun[0].mask[0].abs().sum()) == 0
    model.remove_node(2, 1)  # an output: incoming only
    assert float(model.act_fun[1].mask[:, 1].abs().sum()) == 0
    for args, what in (((3, 0, 0), "l must"), ((0, 3, 0), "i must"), ((0, 0, 4), "j must")):
        with pytest.raises(ValueError, match=what):
            model.remove_edge(*args)
    with pytest.raises(ValueError, match="mode"):
        model.remove_node(1, 0, mode="sideways")
    with pytest.raises(ValueError, match="active_neurons_id"):
        model.prune_node(active_neurons_id=[[0], [1]])


def test_pruning_without_data_says_what_to_do():
    model = kanext.KAN([2, 3, 1], seed=0)
    with pytest.raises(ValueError, match="save_act"):
        model.prune_node()


def test_pruned_model_checkpoint_round_trip(tmp_path):
    model, x = _random_kan([3, 5, 2], seed=29)
    pruned = model.prune(node_th=0.05, x=x).prune_input(active_inputs=[0, 2])
    pruned.attribute(x=x[:, [0, 2]])  # scores and caches are not model state
    pruned.save(tmp_path / "p")
    back = kanext.KAN.load(tmp_path / "p")
    assert back.width == pruned.width
    xt = x[:, [0, 2]]
    assert torch.equal(back(xt), pruned(xt))
    for a, b in zip(back.act_fun, pruned.act_fun):
        assert torch.equal(a.grid, b.grid) and torch.equal(a.mask, b.mask)


def test_symbolic_edges_are_carried_by_pruning_and_masked_by_remove():
    model, _ = _random_kan([3, 4, 2], seed=31)
    r = gen(32)
    fixed = {(0, 0, 3): "sin", (0, 2, 2): "x^2", (0, 1, 0): "exp", (1, 3, 1): "tanh", (1, 2, 0): "x"}
    for (l, i, j), name in fixed.items():
        params = (0.5 + torch.rand(4, generator=r, dtype=F64)).tolist()
        model.symbolic_fun[l].set_edge(i, j, name, params)
        with torch.no_grad():
            model.act_fun[l].mask[i, j] = 0.0
    keep_hidden = [[3, 2]]
    keep = [[0, 1, 2], [3, 2], [0, 1]]
    masked = _masked_original(model, keep)
    with torch.no_grad():  # by hand: the symbolic edges of the removed hidden nodes 0 and 1
        for h in (0, 1):
            masked.symbolic_fun[0].mask[h, :] = 0
            masked.symbolic_fun[1].mask[:, h] = 0
    pruned = model.prune_node(active_neurons_id=keep_hidden)
    xt = torch.randn(64, 3, generator=gen(33), dtype=F64)
    assert_close(pruned(xt), masked(xt), 1e-12, msg="pruned vs masked original, symbolic edges included")
    s0, s1 = pruned.symbolic_fun
    assert s0.funs_name[0][0] == "sin" and s0.funs_name[1][2] == "x^2" and s1.funs_name[1][0] == "tanh"
    assert float(s0.mask.sum()) == 2 and float(s1.mask.sum()) == 2  # exp (into node 0) is gone
    # remove_edge / remove_node also clear the symbolic twin of an edge
    model.remove_edge(1, 3, 1)
    assert float(model.symbolic_fun[1].mask[1, 3]) == 0
    model.remove_node(1, 2)
    assert float(model.symbolic_fun[0].mask[2].sum()) == 0 and float(model.symbolic_fun[1].mask[:, 2].sum()) == 0


# ----------------------------------------------------------------- the paper's checks


def test_acceptance_x0_squared_plus_sin_pi_x1_prunes_to_two_inputs_and_refits():
    """[4,5,1] on x0^2 + sin(pi x1) with x2, x3 irrelevant: prune to inputs {0, 1}
    and <= 2 hidden nodes, then a short re-fit (after a grid extension) reaches
    test RMSE < 1e-3."""
    def f(x):
        return x[:, [0]] ** 2 + torch.sin(torch.pi * x[:, [1]])

    ds = kanext.create_dataset(f, n_var=4, train_num=1000, test_num=1000, seed=0, dtype=F64)
    model = kanext.KAN([4, 5, 1], grid=3, k=3, seed=1, dtype=F64)
    model.fit(ds, steps=30, lamb=1e-3, progress=False)
    pruned = model.prune().prune_input()
    assert pruned.input_id.tolist() == [0, 1], pruned.input_id
    assert pruned.width[0] == 2 and pruned.width[1] <= 2 and pruned.width[2] == 1, pruned.width
    cols = pruned.input_id
    ds2 = {key: (v[:, cols] if key.endswith("input") else v) for key, v in ds.items()}
    refit = pruned.refine(10)
    refit.fit(ds2, steps=30, progress=False)
    with torch.no_grad():
        rmse = float(torch.sqrt(torch.mean((refit(ds2["test_input"]) - ds2["test_label"]) ** 2)))
    assert rmse < 1e-3, rmse


def test_acceptance_x_times_y_prunes_to_2_2_1():
    ds = kanext.create_dataset(lambda x: x[:, [0]] * x[:, [1]], n_var=2, train_num=1000, test_num=1000, seed=0,
                               dtype=F64)
    model = kanext.KAN([2, 5, 1], grid=3, k=3, seed=0, dtype=F64)
    model.fit(ds, steps=30, lamb=1e-3, progress=False)
    pruned = model.prune()
    assert pruned.width == [2, 2, 1], pruned.width


def test_example_sqrt_of_two_squared_differences_prunes_to_at_most_4_2_1_1(tmp_path):
    """examples/pruning.py, sqrt case: [4,3,3,1] -> at most [4,2,1,1], PNGs written."""
    import importlib.util
    import os

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "pruning.py")
    spec = importlib.util.spec_from_file_location("pruning_example", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    row = mod.main(["--cases", "sqrt", "--out", str(tmp_path)])["sqrt"]
    w = row["width"]
    assert len(w) == 4 and w[0] == 4 and w[1] <= 2 and w[2] == 1 and w[3] == 1, w
    assert row["refit_rmse"] < 2e-2, row
    for stage in ("trained", "pruned"):
        assert (tmp_path / f"pruning_sqrt_{stage}.png").stat().st_size > 0
