"""kanext.MLP: construction and init, forward, fit through kanext.training.fit
(and KAN's grid updates unchanged), pykan-parity attribution, the plot,
checkpoints, torch.compile."""
from __future__ import annotations

import json
import math

import pytest
import torch

import kanext
from kanext import KAN, MLP, CheckpointError
from kanext.datasets import create_dataset, feynman_dataset


def _ds(n=128, seed=0, dtype=torch.float32):
    return create_dataset(lambda x: torch.sin(2 * x[:, [0]]) + x[:, [1]] ** 2, n_var=2, train_num=n, test_num=64,
                          seed=seed, dtype=dtype)


def test_init_shapes_n_params_and_seed():
    m = MLP([3, 5, 2], act="tanh", seed=1)
    assert [tuple(w.shape) for w in m.w] == [(5, 3), (2, 5)]
    assert m.n_params == 3 * 5 + 5 + 5 * 2 + 2 == sum(p.numel() for p in m.parameters())
    state = torch.random.get_rng_state()
    a, b = MLP([3, 5, 2], seed=7), MLP([3, 5, 2], seed=7)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is untouched
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.w[0], MLP([3, 5, 2], seed=8).w[0])
    big = MLP([400, 300, 1], seed=0)
    bound = 1 / math.sqrt(400)
    w = big.w[0].detach()
    assert w.abs().max() <= bound and w.abs().max() > 0.95 * bound and abs(float(w.mean())) < 0.01 * bound
    m64 = MLP([2, 3, 1], seed=0, dtype=torch.float64)
    assert all(p.dtype == torch.float64 for p in m64.parameters())
    assert MLP([2, 1]).width == [2, 1]  # no hidden layer: a linear model


@pytest.mark.parametrize("kwargs, match", [
    (dict(width=[3]), "at least an input and an output"),
    (dict(width=[3, 0, 1]), "positive ints"),
    (dict(width=[2, 1], act="swish"), r"act must be one of \[.*'silu'"),
    (dict(width=[2, 1], seed=1.5), "seed must be an int"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MLP(**kwargs)


def test_forward_is_the_plain_mlp():
    m = MLP([2, 4, 3, 1], act="silu", seed=0, dtype=torch.float64)
    x = torch.randn(10, 2, dtype=torch.float64)
    h = torch.nn.functional.silu(x @ m.w[0].T + m.linears[0].bias)
    h = torch.nn.functional.silu(h @ m.w[1].T + m.linears[1].bias)
    torch.testing.assert_close(m(x), h @ m.w[2].T + m.linears[2].bias)
    assert m(torch.randn(4, 7, 2, dtype=torch.float64)).shape == (4, 7, 1)
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 2\), got \(10, 3\)"):
        m(torch.randn(10, 3, dtype=torch.float64))
    with pytest.raises(TypeError, match="torch.Tensor"):
        m([[1.0, 2.0]])


def test_fit_trains_with_lbfgs_and_adam():
    ds = _ds()
    m = MLP([2, 8, 1], seed=0)
    with torch.no_grad():
        before = float(torch.sqrt(torch.mean((m(ds["test_input"]) - ds["test_label"]) ** 2)))
    res = m.fit(ds, steps=10, progress=False)
    assert set(res) >= {"train_loss", "test_loss", "reg"} and len(res["train_loss"]) == 10
    assert res["test_loss"][-1] < 0.3 * before
    assert torch.equal(m.cache_data, ds["test_input"])  # as pykan: the last forward of a step is the test one
    m2 = MLP([2, 8, 1], seed=0)
    res2 = m2.train(ds, opt="Adam", lr=1e-2, steps=20, progress=False, batch=32, seed=0)
    assert res2["train_loss"][-1] < res2["train_loss"][0]
    assert m2.train() is m2 and m2.training and not m2.train(False).training
    with pytest.raises(ValueError, match="lamb=0.1 > 0 needs a model with a sparsity regulariser"):
        m.fit(ds, steps=1, lamb=0.1, progress=False)


def test_fit_generalisation_keeps_kan_grid_updates():
    ds = _ds(n=64)
    kan = KAN([2, 3, 1], grid=3, k=3, seed=0)
    before = kan.act_fun[0].grid.clone()
    kan.fit(ds, steps=1, progress=False)  # update_grid=True by default: step 0 moves the grids
    assert not torch.equal(kan.act_fun[0].grid, before)
    kan2 = KAN([2, 3, 1], grid=3, k=3, seed=0)
    kan2.fit(ds, steps=1, progress=False, update_grid=False)
    assert torch.equal(kan2.act_fun[0].grid, before)
    # a plain nn.Module fits too (no grid to update)
    seq = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    res = kanext.training.fit(seq, ds, steps=3, progress=False)
    assert len(res["train_loss"]) == 3


def test_attribute_matches_pykan_mlp():
    kan_mlp = pytest.importorskip("kan.MLP")
    with torch.random.fork_rng():
        ref = kan_mlp.MLP(width=[3, 5, 4, 2], act="silu", save_act=True, seed=0)
    m = MLP([3, 5, 4, 2], act="silu", seed=3)
    with torch.no_grad():
        for a, b in zip(ref.linears, m.linears):
            a.weight.copy_(b.weight)
            a.bias.copy_(b.bias)
    x = torch.randn(200, 3, generator=torch.Generator().manual_seed(0))
    ref(x)
    ref.attribute()
    m.attribute(x)
    assert len(m.node_scores) == 4 and len(m.edge_scores) == 3
    for got, want in zip(m.node_scores, ref.node_scores):
        torch.testing.assert_close(got, want.detach(), rtol=1e-5, atol=1e-7)
    for got, want in zip(m.edge_scores, ref.edge_scores):
        torch.testing.assert_close(got, want.detach(), rtol=1e-5, atol=1e-7)
    for got, want in zip(m.wa_forward, ref.wa_forward):
        torch.testing.assert_close(got, want.detach(), rtol=1e-5, atol=1e-7)


def test_attribute_finds_the_relevant_input_and_needs_samples():
    ds = create_dataset(lambda x: torch.sin(3 * x[:, [0]]), n_var=3, train_num=200, test_num=50, seed=0)
    m = MLP([3, 8, 1], seed=0)
    with pytest.raises(ValueError, match="no samples"):
        m.attribute()
    m.fit(ds, steps=15, progress=False)
    s = m.feature_score
    assert s.shape == (3,) and int(s.argmax()) == 0 and s[0] > 3 * s[1:].max()
    with pytest.raises(ValueError, match="at least 2 samples"):
        m.attribute(torch.zeros(1, 3))


def test_plot_line_widths_follow_magnitudes():
    from matplotlib.figure import Figure

    m = MLP([2, 3, 1], seed=0)
    with torch.no_grad():
        m.w[0].copy_(torch.tensor([[1.0, -0.5], [0.25, 0.0], [-2.0, 0.1]]))
    fig = m.plot(in_vars=["x", "y"], out_vars=["f"], title="mlp")
    assert isinstance(fig, Figure)
    lines = {ln.get_gid(): ln for ln in fig.axes[0].get_lines()}
    assert len(lines) == 2 * 3 + 3 * 1
    lw = {(i, j): lines[f"kanext-mlp-edge-0-{i}-{j}"].get_linewidth() for i in range(2) for j in range(3)}
    assert lw[(0, 2)] > lw[(0, 0)] > lw[(1, 0)] > lw[(0, 1)] > lw[(1, 2)] > lw[(1, 1)]
    assert lines["kanext-mlp-edge-0-0-0"].get_color() == "blue"
    assert lines["kanext-mlp-edge-0-0-2"].get_color() == "red"
    texts = {t.get_text() for t in fig.axes[0].texts}
    assert {"x", "y", "f"} <= texts
    x = torch.randn(50, 2)
    fa = m.plot(metric="fa", x=x)
    assert len(fa.axes[0].get_lines()) == 9 and len(m.edge_scores) == 2
    with pytest.raises(ValueError, match="metric must be one of"):
        m.plot(metric="backward")
    with pytest.raises(ValueError, match="in_vars needs 2 labels, got 1"):
        m.plot(in_vars=["x"])


def test_checkpoint_round_trip_and_errors(tmp_path):
    m = MLP([3, 6, 2], act="gelu", seed=0, dtype=torch.float64)
    m.linears[1].bias.requires_grad_(False)
    m.save(tmp_path / "mlp", metadata={"run": 1})
    doc = json.loads((tmp_path / "mlp.json").read_text())
    assert doc["class"] == "MLP" and doc["config"] == {"width": [3, 6, 2], "act": "gelu"}
    state = torch.random.get_rng_state()
    m2 = MLP.load(tmp_path / "mlp")
    assert torch.equal(torch.random.get_rng_state(), state)
    assert m2.act == "gelu" and m2.width == [3, 6, 2]
    sd, sd2 = m.state_dict(), m2.state_dict()
    assert all(torch.equal(sd[k], sd2[k]) and sd[k].dtype == sd2[k].dtype for k in sd)
    assert not m2.linears[1].bias.requires_grad and m2.linears[0].bias.requires_grad
    assert isinstance(kanext.checkpoint.load(tmp_path / "mlp"), MLP)
    with pytest.raises(CheckpointError, match="expected a checkpoint of KAN, found class 'MLP'"):
        KAN.load(tmp_path / "mlp")
    doc["config"]["act"] = "swish"
    (tmp_path / "mlp.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match=r"'act': expected one of .*found 'swish'"):
        MLP.load(tmp_path / "mlp")


def test_torch_compile_matches_eager():
    m = MLP([2, 6, 1], seed=0)
    x = torch.randn(32, 2)
    c = torch.compile(m, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(c(x), m(x))
    c(x).sum().backward()
    g = [p.grad.clone() for p in m.parameters()]
    m.zero_grad()
    m(x).sum().backward()
    for a, p in zip(g, m.parameters()):
        torch.testing.assert_close(a, p.grad)


def test_side_by_side_on_a_feynman_equation():
    ds = feynman_dataset("I.12.11", train_num=200, test_num=100, seed=0)
    m = MLP([5, 8, 1], seed=0)
    res = m.fit(ds, steps=5, progress=False)
    assert res["test_loss"][-1] < res["test_loss"][0]
