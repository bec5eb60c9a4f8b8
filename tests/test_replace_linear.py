"""Drop-in use inside existing models: KANLinear's optional bias and
kanext.replace_linear."""
from __future__ import annotations

import json
import warnings

import pytest
import torch
from torch import nn

import kanext
from kanext.checkpoint import CheckpointError, load, save
from helpers import gen

F64 = torch.float64


def _layer(bias=True, **kw):
    layer = kanext.KANLinear(3, 4, bias=bias, generator=gen(0), dtype=F64, **kw)
    if bias:
        with torch.no_grad():
            layer.bias.copy_(torch.randn(4, generator=gen(1), dtype=F64))
    return layer


# ------------------------------------------------------------------ bias


def test_bias_is_added_after_the_edges_and_trains():
    with_b, without = _layer(True), _layer(False)
    x = torch.randn(2, 5, 3, generator=gen(2), dtype=F64)  # (..., in)
    assert torch.allclose(with_b(x), without(x) + with_b.bias, rtol=0, atol=1e-14)
    with_b(x).sum().backward()
    assert torch.equal(with_b.bias.grad, torch.full((4,), 10.0, dtype=F64))
    assert without.bias is None and "bias" not in dict(without.named_parameters())
    assert "bias=True" in repr(with_b) and "bias=False" in repr(without)
    with pytest.raises(TypeError, match="bias must be a bool"):
        kanext.KANLinear(3, 4, bias=1)


def test_bias_follows_subset_refine_and_refit():
    layer = _layer()
    sub = layer.subset([2, 0], [3, 1])
    assert torch.equal(sub.bias, layer.bias[[3, 1]])
    x = torch.rand(7, 3, generator=gen(3), dtype=F64) * 2 - 1
    assert torch.allclose(sub(x[:, [2, 0]]), layer.subset([2, 0], [0, 1, 2, 3])(x[:, [2, 0]])[:, [3, 1]])
    fine = layer.refine(10)
    assert torch.equal(fine.bias, layer.bias) and fine.bias is not layer.bias
    assert torch.allclose(fine(x), layer(x), atol=1e-10)
    layer.bias.requires_grad_(False)
    assert not layer.subset([0], [0]).bias.requires_grad and not layer.refine(10).bias.requires_grad
    with pytest.raises(ValueError, match="one layer has a bias"):
        _layer(False).refit_from(layer)


def test_bias_checkpoint_round_trip_and_old_configs(tmp_path):
    layer = _layer()
    save(layer, tmp_path / "b")
    back = load(tmp_path / "b")
    assert torch.equal(back.bias, layer.bias)
    x = torch.rand(4, 3, generator=gen(4), dtype=F64)
    assert torch.equal(back(x), layer(x))
    # a layer without a bias writes no "bias" key: older checkpoints stay valid
    save(_layer(False), tmp_path / "n")
    cfg_path = next(tmp_path.glob("n*.json"))
    assert "bias" not in json.dumps(json.loads(cfg_path.read_text())["config"])
    assert load(tmp_path / "n").bias is None
    # a config that says bias but is not true is refused with a clear error
    bad = json.loads(next(tmp_path.glob("b*.json")).read_text())
    bad["config"]["bias"] = False
    next(tmp_path.glob("b*.json")).write_text(json.dumps(bad))
    with pytest.raises(CheckpointError, match="'bias'"):
        load(tmp_path / "b")


def test_a_kan_refuses_to_save_a_layer_with_a_bias(tmp_path):
    model = kanext.KAN([2, 3, 1], seed=0)
    model.act_fun[0] = kanext.KANLinear(2, 3, bias=True)
    with pytest.raises(CheckpointError, match="has a bias"):
        save(model, tmp_path / "k")


def test_bias_under_compile_equals_eager():
    layer = _layer()
    x = torch.randn(9, 3, generator=gen(5), dtype=F64)
    compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")
    assert torch.allclose(compiled(x), layer(x), atol=1e-14)


# ------------------------------------------------------------------ replace_linear


def _mlp(bias_last=True):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 8), nn.SiLU(),
                         nn.Linear(8, 2, bias=bias_last)).to(F64)


def test_init_linear_keeps_the_models_function_on_any_input():
    for bias_last in (True, False):
        mlp = _mlp(bias_last)
        x = torch.randn(4, 6, 3, generator=gen(6), dtype=F64) * 5  # far outside the grid too
        want = mlp(x)
        out = kanext.replace_linear(mlp)
        assert out is mlp
        assert [type(m) for m in mlp] == [kanext.KANLinear, nn.Tanh, kanext.KANLinear, nn.SiLU, kanext.KANLinear]
        assert (mlp[4].bias is None) == (not bias_last)
        assert torch.allclose(mlp(x), want, rtol=0, atol=1e-12)
        assert all(m.base_fun == "identity" and torch.all(m.coef == 0) for m in mlp if isinstance(m, kanext.KANLinear))
        assert all(m.coef.dtype == F64 for m in mlp if isinstance(m, kanext.KANLinear))


def test_replaced_model_trains_its_splines():
    mlp = _mlp()
    kanext.replace_linear(mlp, grid=8)
    x = torch.rand(64, 3, generator=gen(7), dtype=F64) * 2 - 1
    y = torch.sin(3 * x[:, :2])
    opt = torch.optim.Adam(mlp.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        opt.zero_grad()
        loss = (mlp(x) - y).pow(2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert mlp[0].coef.abs().max() > 0  # the splines moved off zero


def test_samples_set_each_layers_grid_to_its_inputs_range_and_keep_the_function():
    mlp = _mlp()
    mlp.train()
    x = torch.randn(50, 3, generator=gen(8), dtype=F64) * 3
    hidden = mlp[1](mlp[0](x)).detach()
    want = mlp(x)
    kanext.replace_linear(mlp, init="kan", samples=x, grid=6)
    assert mlp.training and all(m.training for m in mlp)  # modes restored after calibrating
    k = mlp[0].k
    assert torch.allclose(mlp[0].grid[:, k], x.amin(0)) and torch.allclose(mlp[0].grid[:, -k - 1], x.amax(0))
    assert torch.allclose(mlp[2].grid[:, k], hidden.amin(0)) and torch.allclose(mlp[2].grid[:, -k - 1], hidden.amax(0))
    assert not torch.allclose(mlp(x), want)  # init='kan': a fresh KAN function, keeping only the bias
    mlp2 = _mlp()
    kanext.replace_linear(mlp2, samples=(x,))
    assert torch.allclose(mlp2(x), want, atol=1e-12)
    with pytest.raises(TypeError, match="samples must be"):
        kanext.replace_linear(_mlp(), samples=[x])


def test_predicate_chooses_layers_by_name():
    mlp = _mlp()
    kanext.replace_linear(mlp, lambda name, lin: name == "2")
    assert [type(m).__name__ for m in mlp] == ["Linear", "Tanh", "KANLinear", "SiLU", "Linear"]


def test_modules_that_cannot_host_a_kan_layer_are_skipped_or_refused():
    torch.manual_seed(0)
    enc = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, batch_first=True)
    model = nn.Sequential(enc, nn.Linear(8, 3))
    with pytest.warns(UserWarning, match="linear1.*linear2.*out_proj"):
        kanext.replace_linear(model)
    assert isinstance(model[1], kanext.KANLinear)
    assert type(enc.linear1) is nn.Linear and type(enc.self_attn.out_proj) is not kanext.KANLinear
    model.eval()
    model(torch.randn(2, 5, 8))  # the encoder's fast path still finds its Linear weights
    with pytest.raises(ValueError, match="out_proj.weight"):
        kanext.replace_linear(model, lambda name, lin: "out_proj" in name)
    with pytest.raises(ValueError, match="set_fastpath_enabled"):
        kanext.replace_linear(model, lambda name, lin: name.endswith("linear1"))
    # with the fast path off, the feed-forward Linears can be replaced and eval works
    before = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        x = torch.randn(2, 5, 8)
        want = model(x)
        kanext.replace_linear(model, lambda name, lin: name.endswith(("linear1", "linear2")))
        assert isinstance(enc.linear1, kanext.KANLinear) and isinstance(enc.linear2, kanext.KANLinear)
        assert torch.allclose(model(x), want, atol=1e-5)
    finally:
        torch.backends.mha.set_fastpath_enabled(before)


def test_tied_weights_are_not_replaced():
    emb = nn.Embedding(10, 4)
    head = nn.Linear(4, 10, bias=False)
    head.weight = emb.weight
    model = nn.ModuleDict({"emb": emb, "head": head, "mid": nn.Linear(4, 4)})
    with pytest.warns(UserWarning, match="head: its weight is shared"):
        kanext.replace_linear(model)
    assert type(model["head"]) is nn.Linear and isinstance(model["mid"], kanext.KANLinear)
    with pytest.raises(ValueError, match="shared"):
        kanext.replace_linear(model, lambda name, lin: name == "head")


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="init must be"):
        kanext.replace_linear(_mlp(), init="zeros")
    with pytest.raises(ValueError, match="base_fun='identity'"):
        kanext.replace_linear(_mlp(), base_fun="silu")
    with pytest.raises(TypeError, match="'bias' comes from each Linear"):
        kanext.replace_linear(_mlp(), bias=False)
    with pytest.raises(TypeError, match="nn.Module"):
        kanext.replace_linear("model")
    with pytest.raises(TypeError, match="predicate must be callable"):
        kanext.replace_linear(_mlp(), predicate=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kanext.replace_linear(_mlp(), init="kan", base_fun="silu")  # allowed, and no warning


def test_replaced_model_compiles_without_graph_break():
    mlp = _mlp()
    kanext.replace_linear(mlp, init="kan")
    x = torch.randn(6, 3, generator=gen(9), dtype=F64)
    compiled = torch.compile(mlp, fullgraph=True, backend="aot_eager")
    assert torch.allclose(compiled(x), mlp(x), atol=1e-12)
    g_eager = torch.autograd.grad(mlp(x).sum(), list(mlp.parameters()))
    g_comp = torch.autograd.grad(compiled(x).sum(), list(mlp.parameters()))
    for a, b in zip(g_eager, g_comp):
        assert torch.allclose(a, b, atol=1e-12)


def test_replaced_model_survives_what_users_do_with_linear_models(tmp_path):
    """What code written for nn.Linear models does to them: copy.deepcopy,
    torch.save / torch.load of the whole module (pickle, the user's choice),
    torch.jit.trace; each gives the same outputs (bit for bit) and an
    independent copy."""
    import copy

    model = nn.Sequential(nn.Linear(3, 6), nn.GELU(), nn.Linear(6, 2)).to(F64)
    kanext.replace_linear(model, init="kan", grid=4)
    x = torch.rand(9, 3, generator=gen(4), dtype=F64) * 2 - 1
    y = model(x).detach()
    twin = copy.deepcopy(model)
    assert torch.equal(twin(x), y)
    with torch.no_grad():
        twin[0].coef.mul_(2)
    assert torch.equal(model(x), y) and not torch.equal(twin(x), y)
    torch.save(model, tmp_path / "m.pt")
    loaded = torch.load(tmp_path / "m.pt", weights_only=False)
    assert isinstance(loaded[0], kanext.KANLinear) and torch.equal(loaded(x), y)
    traced = torch.jit.trace(model, x)
    assert torch.equal(traced(x), y)
    x2 = torch.rand(5, 3, generator=gen(5), dtype=F64)
    assert torch.equal(traced(x2), model(x2))
    with torch.no_grad():  # the trace keeps the mask as an input (no all-ones shortcut baked in)
        model[0].mask[1, 2] = 0.0
    assert torch.equal(traced(x), model(x)) and not torch.equal(traced(x), y)


def test_traced_kan_follows_mask_and_affine_edits():
    """torch.jit.trace of a KAN records the general path (masks multiplied,
    affines applied), so edits to them after tracing show in the trace as
    in eager, as for torch.export."""
    model = kanext.KAN([3, 4, 2], grid=5, seed=0, dtype=F64)  # all-ones masks, identity affines
    x = torch.rand(20, 3, generator=gen(6), dtype=F64) * 2 - 1
    traced = torch.jit.trace(model, x)
    before = traced(x)
    with torch.no_grad():
        model.act_fun[0].mask[1, 2] = 0.0
        model.node_scale[0].mul_(2.0)
        model.subnode_bias[1].add_(0.5)
    assert torch.equal(traced(x), model(x)) and not torch.equal(traced(x), before)
