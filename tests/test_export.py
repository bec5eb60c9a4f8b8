"""torch.export of trained models, and whole-model torch.compile without a
graph break.

torch.export (strict and non-strict) traces KAN and LAN as they are: the
eager-only shortcuts (KANLinear._mask_is_ones, KAN._affines_are_identity)
see torch.compiler.is_compiling() == True under both modes and take the
general path, so the exported graph multiplies by the mask and applies the
affines and is not specialised on their values; the kanext ops stay single
nodes (torch.ops.kanext.*). The batch dimension can be dynamic
(torch.export.Dim).

Whole-model torch.compile(fullgraph=True) of a KAN with trainable affines and
a symbolic edge, of a LAN and of an nn.Sequential mixing nn.Linear and
KANLinear: forward and backward equal eager. (tests/test_compile_states.py
covers KAN and LAN with fixed affines under aot_eager, forward and backward,
and inductor forward; not repeated here.)

Exported programs equal eager bit for bit (the same kernels on the same
values; multiplying by a mask of ones or applying identity affines is exact).
Compiled models: aot_eager bit for bit, inductor within 1e-5 of max |eager|
(inductor fuses the PyTorch ops around the kernels).
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

import kanext

BATCH = torch.export.Dim("batch")


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, generator=g) * 2 - 1
    y = torch.stack([torch.sin(2 * x[:, 0]) * x[:, 1], x[:, 2] ** 2 - x[:, 0]], dim=1)
    return x, y


def _train(model, x, y, steps=15):
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=2e-2)
    for step in range(steps):
        opt.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        opt.step()
        if step == steps // 2:
            model.update_grid(x)  # knots moved to the data: a non-uniform grid


def trained_kan(dtype=torch.float32):
    """A trained KAN [3, 4, 2] with trainable (non-identity) affines, a
    fitted symbolic edge and a pruned edge."""
    x, y = _data()
    model = kanext.KAN([3, 4, 2], grid=5, seed=0, affine_trainable=True)
    _train(model, x, y)
    model.save_act = True
    model(x)
    model.save_act = False
    model.fix_symbolic(0, 1, 2, "sin", verbose=False)
    model.remove_edge(1, 3, 0)
    assert not all(model._affines_are_identity(l) for l in range(model.depth))
    return model.to(dtype)


def trained_lan(dtype=torch.float32):
    x, y = _data()
    model = kanext.LAN([3, 4, 2], grid=5, seed=0)
    _train(model, x, y)
    model.fix_symbolic(0, 1, "sin", x=x, verbose=False)
    return model.to(dtype)


MODELS = {"KAN": trained_kan, "LAN": trained_lan}


def _check_exported(ep, model, dtype=torch.float32):
    run = ep.module()
    for n in (1, 5, 64, 200):  # other batch sizes than the traced one
        x = (torch.rand(n, 3, generator=torch.Generator().manual_seed(n)) * 2.4 - 1.2).to(dtype)
        with torch.no_grad():
            got, want = run(x), model(x)
        assert got.dtype == want.dtype == dtype
        assert torch.equal(got, want), f"batch {n}: exported != eager, max |diff| {(got - want).abs().max():.3g}"


@pytest.mark.parametrize("strict", [False, True], ids=["non_strict", "strict"])
@pytest.mark.parametrize("kind", list(MODELS))
def test_export_trained_model_with_dynamic_batch(kind, strict):
    model = MODELS[kind]()
    x, _ = _data(40, seed=1)
    ep = torch.export.export(model, (x,), dynamic_shapes={"x": {0: BATCH}}, strict=strict)
    targets = {n.target for n in ep.graph.nodes if n.op == "call_function"}
    # KANLinear on the CPU: the layer on its own parameters, the fold inside (kan_linear_fused)
    kernel = torch.ops.kanext.kan_linear_fused.default if kind == "KAN" else \
        torch.ops.kanext.spline_activation.default
    assert kernel in targets, "the kanext op should stay one node of the exported graph"
    _check_exported(ep, model)


@pytest.mark.parametrize("kind", list(MODELS))
def test_exported_program_saves_and_loads(kind, tmp_path):
    model = MODELS[kind]()
    x, _ = _data(40, seed=1)
    ep = torch.export.export(model, (x,), dynamic_shapes={"x": {0: BATCH}})
    torch.export.save(ep, tmp_path / "model.pt2")
    _check_exported(torch.export.load(tmp_path / "model.pt2"), model)


@pytest.mark.parametrize("kind", list(MODELS))
def test_export_in_bfloat16(kind):
    """A bfloat16 model on the CPU exports with its float32 upcasts (kanext.ops)."""
    model = MODELS[kind](torch.bfloat16)
    x, _ = _data(40, seed=1)
    ep = torch.export.export(model, (x.bfloat16(),), dynamic_shapes={"x": {0: BATCH}})
    _check_exported(ep, model, torch.bfloat16)


def test_exported_graph_is_not_specialised_on_masks_or_affines():
    """The mask and the affines are graph inputs that the graph uses, not
    values baked in by the eager shortcuts: editing them in the exported
    module changes its output as it changes the eager model's."""
    model = kanext.KAN([3, 4, 2], grid=5, seed=0)  # all-ones masks, identity affines
    assert model.act_fun[0]._mask_is_ones() and model._affines_are_identity(0)
    x, _ = _data(40, seed=1)
    for strict in (False, True):
        ep = torch.export.export(model, (x,), dynamic_shapes={"x": {0: BATCH}}, strict=strict)
        run = ep.module()
        with torch.no_grad():
            before = run(x)
            for m in (model, run):
                m.get_buffer("act_fun.0.mask")[1, 2] = 0.0
                m.get_parameter("node_scale.0").mul_(2.0)
                m.get_parameter("subnode_bias.1").add_(0.5)
            assert torch.equal(run(x), model(x)) and not torch.equal(run(x), before)
        model = kanext.KAN([3, 4, 2], grid=5, seed=0)


# ------------------------------------------------ whole-model torch.compile
def _kan_affine_symbolic():
    x, _ = _data()
    model = kanext.KAN([3, 4, 2], grid=5, seed=0, affine_trainable=True)
    with torch.no_grad():
        model.node_scale[0].uniform_(0.5, 1.5)
        model.subnode_bias[1].uniform_(-0.3, 0.3)
    model.save_act = True
    model(x)
    model.save_act = False
    model.fix_symbolic(0, 1, 2, "sin", verbose=False)
    return model


def _sequential():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 16), nn.ReLU(), kanext.KANLinear(16, 2))


COMPILED = [
    ("KAN-affine-symbolic", _kan_affine_symbolic, "aot_eager"),
    ("KAN-affine-symbolic", _kan_affine_symbolic, "inductor"),
    ("Sequential-Linear-KANLinear", _sequential, "aot_eager"),
    ("Sequential-Linear-KANLinear", _sequential, "inductor"),
    ("LAN", lambda: kanext.LAN([3, 4, 2], grid=5, seed=0), "inductor"),  # aot_eager: test_compile_states
]


@pytest.mark.parametrize("name,make,backend", COMPILED, ids=[f"{c[0]}-{c[2]}" for c in COMPILED])
def test_whole_model_compiles_without_graph_break(name, make, backend):
    model = make()
    compiled = torch.compile(model, backend=backend, fullgraph=True)  # a graph break raises
    x, y = _data(50, seed=2)
    res = []
    for f in (compiled, model):
        model.zero_grad()
        xs = x.clone().requires_grad_()
        out = f(xs)
        ((out - y) ** 2).mean().backward()
        res.append([("output", out)] + [("grad x", xs.grad)] +
                   [(f"grad {n}", p.grad) for n, p in model.named_parameters() if p.grad is not None])
    assert len(res[0]) == len(res[1]) > 2
    for (what, got), (_, want) in zip(*res):
        if backend == "aot_eager":
            assert torch.equal(got, want), f"{name} {what}: max |diff| {(got - want).abs().max():.3g}"
        else:
            torch.testing.assert_close(got, want, rtol=0, atol=1e-5 * max(1.0, want.abs().max().item()),
                                       msg=f"{name} {what}")
    x2 = torch.rand(7, 3) * 2 - 1  # another batch size: recompiles (dynamic) without a break
    with torch.no_grad():
        torch.testing.assert_close(compiled(x2), model(x2), rtol=0, atol=1e-5)
