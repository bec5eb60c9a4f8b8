"""Attribution scores: against pykan 0.2.8 on the same tensors, and against a
brute-force computation from materialised (N, in, out) activations."""
from __future__ import annotations

import pytest
import torch

import kanext
from kanext import attribution, reference
from helpers import assert_close, gen

F64 = torch.float64


def _pykan_model(width, seed):
    import kan

    old = torch.get_default_dtype()
    torch.set_default_dtype(F64)
    try:
        m = kan.KAN(width=list(width), grid=5, k=3, seed=seed, auto_save=False, device="cpu")
    finally:
        torch.set_default_dtype(old)
    r = gen(seed + 100)
    with torch.no_grad():
        for layer in m.act_fun:
            layer.coef.add_(0.2 * torch.randn(layer.coef.shape, generator=r, dtype=F64))
        m.act_fun[0].mask[1, 2] = 0
        for p in list(m.node_scale) + list(m.subnode_scale):
            p.copy_(0.5 + 1.5 * torch.rand(p.shape, generator=r, dtype=F64))
        for p in list(m.node_bias) + list(m.subnode_bias):
            p.copy_(torch.randn(p.shape, generator=r, dtype=F64))
    return m


@pytest.mark.parametrize("width", [[3, 4, 2, 2], [2, 5, 1]])
def test_backward_attribution_matches_pykan(width):
    pk = _pykan_model(width, seed=len(width))
    x = torch.rand(300, width[0], generator=gen(1), dtype=F64) * 2 - 1
    pk.save_act = True
    pk(x)
    pk.attribute()
    ours = kanext.from_pykan(pk)
    ours.attribute(x=x)
    for name in ("node_scores", "edge_scores", "subnode_scores", "node_scores_all", "edge_scores_all"):
        for l, (a, b) in enumerate(zip(getattr(ours, name), getattr(pk, name))):
            assert_close(a, b, 1e-10, msg=f"{name}[{l}]")
    assert_close(ours.feature_score, pk.node_scores[0], 1e-10, msg="feature_score")
    # pykan's query form: scores of the inputs for each node of layer 1
    got, exp = ours.attribute(1, 0), pk.attribute(1, 0, plot=False)
    assert_close(got, exp, 1e-10, msg="attribute(1, 0)")
    out_score = torch.arange(1, width[-1] + 1, dtype=F64)
    pk.attribute(out_score=out_score)
    ours.attribute(out_score=out_score)
    assert_close(ours.node_scores[0], pk.node_scores[0], 1e-10, msg="out_score")


def _brute_force_phi(model, x):
    """Per layer: inputs and materialised phi (N, in, out) from the reference op."""
    xs, phis = [x], []
    for l, layer in enumerate(model.act_fun):
        Wb, Wc = layer.folded_weights()
        phis.append(reference.edge_activations(xs[-1], layer.grid, layer.k, layer.base_fun, Wb, Wc).detach())
        xs.append(model.layer_forward(l, xs[-1]).detach())
    return xs, phis


def test_statistics_and_scores_against_brute_force():
    model = kanext.KAN([3, 4, 2], grid=4, seed=3, dtype=F64)
    with torch.no_grad():
        model.node_scale[0].copy_(torch.tensor([2.0, -0.5, 1.0, 3.0], dtype=F64))
        model.subnode_scale[0].copy_(torch.tensor([1.0, 2.0, 0.25, 1.0], dtype=F64))
    x = torch.randn(500, 3, generator=gen(2), dtype=F64)
    model.attribute(x=x)
    xs, phis = _brute_force_phi(model, x)
    E = attribution.edge_actscale(model)
    S = attribution.subnode_actscale(model)
    for l in range(2):
        assert_close(E[l], phis[l].std(dim=0).T, 1e-12, msg=f"edge std {l}")
        assert_close(S[l], phis[l].sum(dim=1).std(dim=0), 1e-12, msg=f"output std {l}")
    # backward recursion by hand, output by output
    node = torch.eye(2, dtype=F64)
    for l in (1, 0):
        edge = node[:, :, None] * phis[l].std(dim=0).T[None] / (phis[l].sum(dim=1).std(dim=0) + 1e-4)[None, :, None]
        assert_close(model.edge_scores[l], edge.mean(0), 1e-12, msg=f"edge scores {l}")
        node = edge.sum(1)
        assert_close(model.node_scores[l], node.mean(0), 1e-12, msg=f"node scores {l}")
    # the paper's forward scores
    model.attribute(x=x, metric="forward")
    l1 = [p.abs().mean(dim=0).T for p in phis]
    for l in range(2):
        assert_close(model.edge_scores[l], l1[l], 1e-12, msg=f"|phi|_1 {l}")
    assert_close(model.node_scores[0], l1[0].amax(0), 1e-12, msg="input nodes: outgoing max")
    assert_close(model.node_scores[1], torch.minimum(l1[0].amax(1), l1[1].amax(0)), 1e-12, msg="hidden nodes")
    assert_close(model.node_scores[2], l1[1].amax(1), 1e-12, msg="outputs: incoming max")


def test_scores_follow_the_model_as_it_is_now():
    model = kanext.KAN([3, 3, 1], seed=1, dtype=F64)
    x = torch.rand(200, 3, generator=gen(5), dtype=F64) * 2 - 1
    model.attribute(x=x)
    assert float(model.feature_score[2]) > 0
    for j in range(3):
        model.remove_edge(0, 2, j)
    score = model.feature_score  # no x: re-scored on the data of the last recording forward
    assert float(score[2]) == 0.0 and float(score[:2].min()) > 0
    assert all(float(model.edge_scores[0][j, 2]) == 0.0 for j in range(3))


def test_feature_score_ranks_relevant_inputs_after_training():
    ds = kanext.create_dataset(lambda x: torch.sin(torch.pi * x[:, [0]]) + 0.3 * x[:, [1]] ** 2, n_var=3,
                               train_num=300, test_num=10, seed=0, dtype=F64)
    model = kanext.KAN([3, 3, 1], grid=3, seed=0, dtype=F64)
    model.fit(ds, steps=10, lamb=1e-3, progress=False)
    s = model.feature_score  # from the cached fit inputs
    assert float(s[0]) > float(s[1]) > float(s[2]), s
    assert float(s[2]) < 1e-2 < float(s[1]), s


def test_attribution_errors():
    model = kanext.KAN([2, 3, 1], seed=0)
    with pytest.raises(ValueError, match="pass x="):
        model.attribute()
    x = torch.rand(10, 2)
    with pytest.raises(ValueError, match="metric"):
        model.attribute(x=x, metric="sideways")
    with pytest.raises(ValueError, match=r"l must be a layer index in \[0, 2\]"):
        model.attribute(3, x=x)
    with pytest.raises(ValueError, match=r"i must be a node index in \[0, 3\)"):
        model.attribute(1, 5, x=x)
    with pytest.raises(ValueError, match="out_score must have shape"):
        model.attribute(out_score=torch.ones(2), x=x)
    with pytest.raises(ValueError, match="N >= 2"):
        model.attribute(x=x[:1])
    with pytest.raises(ValueError, match="need metric='backward'"):
        model.attribute(1, x=x, metric="forward")
