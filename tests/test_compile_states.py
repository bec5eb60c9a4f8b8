"""torch.compile equals eager in every state a user reaches: a model is
compiled once, then edited in place (symbolic units fixed and unfixed, masks
edited, trained, grids updated), and the same compiled object must keep
computing what eager code computes; pruned, refined and loaded models compiled
afresh must too. KAN and LAN share the bodies where the workflow is the same."""
from __future__ import annotations

import pytest
import torch

import kanext

F64 = torch.float64
# aot_eager traces like inductor (dynamo + AOT autograd, same guards) without
# compiling C++ for every graph, which 2 cores cannot afford per test; one
# test per model runs inductor itself.
BACKEND = "aot_eager"


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _x(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 2, generator=g, dtype=F64) * 2 - 1


def _model(kind):
    if kind == "KAN":
        return kanext.KAN([2, 3, 1], grid=5, seed=0, dtype=F64)
    return kanext.LAN([2, 3, 1], grid=5, seed=0, dtype=F64)


def _same(compiled, model, x, what):
    with torch.no_grad():
        got, want = compiled(x), model(x)
    diff = (got - want).abs().max().item()
    assert torch.allclose(got, want, rtol=0, atol=1e-12), f"{what}: compiled != eager, max |diff| {diff:.3g}"


def _fix(model, kind, unit, fun, x):
    if kind == "KAN":
        l, i, j = unit
        model.fix_symbolic(l, i, j, fun, verbose=False)
    else:
        l, j = unit
        model.fix_symbolic(l, j, fun, x=x, verbose=False)


def _unfix(model, kind, unit):
    if kind == "KAN":
        model.unfix_symbolic(*unit)
    else:
        model.unfix_symbolic(*unit)


UNITS = {"KAN": [(0, 1, 2), (0, 0, 1), (1, 2, 0)], "LAN": [(0, 1), (0, 2), (1, 0)]}


@pytest.mark.parametrize("kind", ["KAN", "LAN"])
def test_symbolic_units_fixed_and_unfixed_after_compiling(kind):
    x = _x()
    model = _model(kind)
    if kind == "KAN":  # KAN fits on recorded inputs
        model.save_act = True
        model(x)
        model.save_act = False
    compiled = torch.compile(model, backend=BACKEND, fullgraph=True)
    _same(compiled, model, x, "fresh")
    a, b, c = UNITS[kind]
    _fix(model, kind, a, "sin", x)
    _same(compiled, model, x, "one unit fixed")
    _fix(model, kind, b, "x^2", x)
    _same(compiled, model, x, "a second function")
    _fix(model, kind, c, "sin", x)
    _same(compiled, model, x, "another unit, same function")
    _unfix(model, kind, a)
    _same(compiled, model, x, "one unfixed")
    if kind == "KAN":
        model.unfix_symbolic_all()
    else:
        _unfix(model, kind, b)
        _unfix(model, kind, c)
    _same(compiled, model, x, "all unfixed")


@pytest.mark.parametrize("kind", ["KAN", "LAN"])
def test_masks_edited_in_place_after_compiling(kind):
    x = _x()
    model = _model(kind)
    if kind == "KAN":
        model.save_act = True
        model(x)
        model.save_act = False
    _fix(model, kind, UNITS[kind][0], "sin", x)
    compiled = torch.compile(model, backend=BACKEND)
    _same(compiled, model, x, "fixed")
    with torch.no_grad():
        if kind == "KAN":
            model.symbolic_fun[0].mask[2, 1] = 0.0  # the symbolic edge switched off by hand
            model.act_fun[0].mask[0, 1] = 0.0  # a spline edge pruned by hand
            _same(compiled, model, x, "masks edited")
            model.remove_edge(1, 0, 0)
            model.remove_node(1, 1)
        else:
            model.layers[0].act.symbolic.mask[1] = 0.0  # back to the spline by hand
    _same(compiled, model, x, "masks edited")


@pytest.mark.parametrize("kind", ["KAN", "LAN"])
def test_training_and_grid_updates_after_compiling(kind):
    x = _x()
    y = torch.sin(x[:, :1]) * x[:, 1:]
    model = _model(kind)
    compiled = torch.compile(model, backend=BACKEND)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        ((compiled(x) - y) ** 2).mean().backward()
        opt.step()
    _same(compiled, model, x, "after Adam steps")
    model.update_grid(x * 0.5)
    _same(compiled, model, x, "after update_grid")


@pytest.mark.parametrize("kind", ["KAN", "LAN"])
def test_gradients_compiled_equal_eager(kind):
    x = _x()
    model = _model(kind)
    if kind == "KAN":
        model.save_act = True
        model(x)
        model.save_act = False
    compiled = torch.compile(model, backend=BACKEND, fullgraph=True)
    for state in ("fresh", "symbolic"):
        if state == "symbolic":
            _fix(model, kind, UNITS[kind][0], "sin", x)
        xs = x.clone().requires_grad_(True)
        grads = []
        for f in (compiled, model):
            model.zero_grad()
            out = f(xs)
            gx, = torch.autograd.grad(out.pow(2).sum(), xs, retain_graph=True)
            out.pow(2).sum().backward()
            grads.append([gx] + [p.grad.clone() for p in model.parameters() if p.grad is not None])
        for g, e in zip(*grads):
            torch.testing.assert_close(g, e, rtol=0, atol=1e-12, msg=f"{state}: gradient")


@pytest.mark.parametrize("kind", ["KAN", "LAN"])
def test_refined_pruned_and_loaded_models(kind, tmp_path):
    x = _x()
    model = _model(kind)
    if kind == "KAN":
        model.save_act = True
        model(x)
        model.save_act = False
    _fix(model, kind, UNITS[kind][0], "sin", x)
    compiled = torch.compile(model, backend=BACKEND)
    _same(compiled, model, x, "before refine")
    fine = model.refine(10, x)
    _same(compiled, model, x, "the original after refine")
    _same(torch.compile(fine, backend=BACKEND), fine, x, "refined")
    if kind == "KAN":
        small = model.prune(node_th=1e-1, edge_th=1e-1, x=x)
        _same(torch.compile(small, backend=BACKEND), small, x, "pruned")
    model.save(tmp_path / "m")
    loaded = type(model).load(tmp_path / "m")
    _same(torch.compile(loaded, backend=BACKEND), loaded, x, "loaded")
    _same(compiled, model, x, "the original after save")


@pytest.mark.parametrize("kind", ["KAN", "LAN"])
def test_inductor_with_a_symbolic_unit_fixed_after_compiling(kind):
    x = _x(16)
    model = _model(kind)
    if kind == "KAN":
        model.save_act = True
        model(x)
        model.save_act = False
    compiled = torch.compile(model, fullgraph=True)  # inductor
    _same(compiled, model, x, "fresh")
    _fix(model, kind, UNITS[kind][0], "sin", x)
    _same(compiled, model, x, "fixed after compiling")


def test_inductor_with_two_edges_of_one_function_into_a_single_output():
    # index_add into a size-1 output with a repeated index made inductor fail (InductorError, torch 2.13 CPU)
    model = kanext.KAN(width=[2, 3, 1], grid=5, k=3, seed=3, dtype=F64)
    x = torch.rand(17, 2, dtype=F64) * 2 - 1
    compiled = torch.compile(model, fullgraph=True)  # inductor
    _same(compiled, model, x, "fresh")
    for i in range(3):
        model.fix_symbolic(1, i, 0, "sin", fit_params=False, verbose=False)
    sym = model.symbolic_fun[1]
    with torch.no_grad():
        sym.affine.normal_()
    _same(compiled, model, x, "three sin edges into the output")
    # the layer's value is the sum of its three edges, eager and compiled
    h = torch.rand(9, 3, dtype=F64) * 2 - 1
    a, b, c, d = sym.affine[0].detach().unbind(-1)
    want = (c * torch.sin(a * h + b) + d).sum(1, keepdim=True)
    with torch.no_grad():
        got, got_c = sym(h), torch.compile(sym, fullgraph=True)(h)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    torch.testing.assert_close(got_c, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("make", [
    lambda: kanext.KANLinear(3, 4, grid=7, dtype=F64),
    lambda: kanext.SplineActivation(3, grid=7, dtype=F64),
    lambda: kanext.LANLayer(3, 4, grid=7, dtype=F64),
], ids=["KANLinear", "SplineActivation", "LANLayer"])
def test_layers_on_leading_dimensions(make):
    layer = make()
    x = torch.rand(2, 5, 3, dtype=F64) * 2.4 - 1.2  # some points outside the grid
    compiled = torch.compile(layer, backend=BACKEND, fullgraph=True)
    _same(compiled, layer, x, "(..., in) input")
    with torch.no_grad():
        if isinstance(layer, kanext.LANLayer):
            layer.act.update_grid(layer.linear(x))
        else:
            layer.update_grid(x)
    _same(compiled, layer, x, "after update_grid")
