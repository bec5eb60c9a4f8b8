"""Parity with pykan 0.2.8: a KANLayer and whole KANs converted with
kanext.from_pykan compute the same outputs and parameter gradients (float64,
1e-10 relative), including trained-looking states: random coefficients,
pruned masks, non-uniform grids from pykan's own grid update, and
non-identity node/subnode affines."""
from __future__ import annotations


import pytest
import torch

import kanext
from helpers import assert_close, quiet

kan = pytest.importorskip("kan", reason="pykan is a test dependency (requirements/test.txt)")

F64 = torch.float64
RTOL = 1e-10


pytestmark = pytest.mark.usefixtures("pykan_float64_in_tmp")


def _perturb_layer(layer, g):
    with torch.no_grad():
        layer.coef.add_(0.3 * torch.randn(layer.coef.shape, generator=g))
        layer.scale_base.add_(0.2 * torch.randn(layer.scale_base.shape, generator=g))
        layer.scale_sp.add_(0.2 * torch.randn(layer.scale_sp.shape, generator=g))


def _compare(pk_forward, ours, pk_params, our_params, x):
    y_pk = pk_forward(x)
    y = ours(x)
    assert_close(y, y_pk, RTOL, msg="output vs pykan")
    gy = torch.randn(y.shape, generator=torch.Generator().manual_seed(5))
    g_pk = torch.autograd.grad(y_pk, pk_params, gy)
    g = torch.autograd.grad(y, our_params, gy)
    for i, (a, b) in enumerate(zip(g, g_pk)):
        assert_close(a, b, RTOL, msg=f"gradient of parameter {i} vs pykan")


@pytest.mark.parametrize("k,num", [(1, 4), (3, 5), (2, 11)])
def test_kan_layer_parity(k, num):
    torch.manual_seed(0)
    layer = kan.KANLayer(in_dim=4, out_dim=3, num=num, k=k)
    g = torch.Generator().manual_seed(1)
    _perturb_layer(layer, g)
    with torch.no_grad():
        layer.mask[1, 2] = 0.0
    x = torch.rand(50, 4, generator=g) * 2.6 - 1.3  # partly outside the grid
    layer.update_grid_from_samples(x)  # pykan's own non-uniform grid
    ours = kanext.from_pykan(layer)
    assert isinstance(ours, kanext.KANLinear)
    names = ["coef", "scale_base", "scale_sp"]
    _compare(lambda x: layer(x)[0], ours, [getattr(layer, n) for n in names], [getattr(ours, n) for n in names], x)


def _pykan_model(width, grid, k, seed=0, **kw):
    return quiet(kan.KAN, width=width, grid=grid, k=k, seed=seed, auto_save=False, **kw)


def _perturbed_pykan(width, seed):
    """A pykan KAN (G=5, k=3) with perturbed splines and scales, and the generator that perturbed it."""
    pk = _pykan_model(width, grid=5, k=3)
    g = torch.Generator().manual_seed(seed)
    for layer in pk.act_fun:
        _perturb_layer(layer, g)
    return pk, g


def _params(model, pykan: bool):
    out = []
    for l in range(len(model.act_fun)):
        layer = model.act_fun[l]
        out += [layer.coef, layer.scale_base, layer.scale_sp]
        for name in ("node_scale", "node_bias", "subnode_scale", "subnode_bias"):
            p = getattr(model, name)[l]
            if p.requires_grad:
                out.append(p)
    return out


@pytest.mark.parametrize("affine", [False, True])
def test_kan_3_4_2_parity(affine):
    model = _pykan_model([3, 4, 2], grid=5, k=3, affine_trainable=affine)
    g = torch.Generator().manual_seed(2)
    for layer in model.act_fun:
        _perturb_layer(layer, g)
    if affine:
        with torch.no_grad():
            for name in ("node_scale", "node_bias", "subnode_scale", "subnode_bias"):
                for p in getattr(model, name):
                    p.add_(0.3 * torch.randn(p.shape, generator=g))
    x = torch.rand(64, 3, generator=g) * 2.2 - 1.1
    quiet(model.update_grid, x)  # non-uniform grids in every layer
    with torch.no_grad():
        model.act_fun[0].mask[2, 1] = 0.0
    ours = kanext.from_pykan(model)
    assert isinstance(ours, kanext.KAN) and ours.width == [3, 4, 2]
    _compare(model, ours, _params(model, True), _params(ours, False), x)


def test_kan_parity_identity_base_and_grid_k():
    model = _pykan_model([2, 3, 1], grid=7, k=2, base_fun="identity")
    g = torch.Generator().manual_seed(3)
    for layer in model.act_fun:
        _perturb_layer(layer, g)
    ours = kanext.from_pykan(model)
    assert ours.act_fun[0].base_fun == "identity"
    x = torch.rand(20, 2, generator=g) * 2 - 1
    _compare(model, ours, _params(model, True), _params(ours, False), x)


def test_from_pykan_refuses_what_it_cannot_convert():
    with pytest.raises(TypeError, match="expected a pykan"):
        kanext.from_pykan(torch.nn.Linear(2, 2))
    sym = _pykan_model([2, 2, 1], grid=3, k=3)
    kan.utils.add_symbolic("pk_only_cube", lambda t: t**3, c=3)
    try:
        quiet(sym.fix_symbolic, 0, 1, 0, "pk_only_cube", fit_params_bool=False)
        with pytest.raises(ValueError, match="'pk_only_cube'.*add_symbolic"):
            kanext.from_pykan(sym)
    finally:
        kan.utils.SYMBOLIC_LIB.pop("pk_only_cube", None)


def test_from_pykan_imports_fixed_symbolic_edges():
    model = _pykan_model([2, 3, 1], grid=5, k=3)
    g = torch.Generator().manual_seed(4)
    for layer in model.act_fun:
        _perturb_layer(layer, g)
    quiet(model.fix_symbolic, 0, 1, 2, "sin", fit_params_bool=False)
    quiet(model.fix_symbolic, 1, 0, 0, "x^2", fit_params_bool=False)
    with torch.no_grad():
        model.symbolic_fun[0].affine[2, 1] = torch.tensor([1.3, -0.2, 0.7, 0.1])
        model.symbolic_fun[1].affine[0, 0] = torch.tensor([0.5, 0.3, -1.1, 0.2])
    ours = kanext.from_pykan(model)
    assert ours.symbolic_fun[0].funs_name[2][1] == "sin" and ours.symbolic_fun[1].funs_name[0][0] == "x^2"
    x = torch.rand(30, 2, generator=g) * 2 - 1
    assert_close(ours(x), model(x), RTOL, msg="symbolic edges vs pykan")


def test_to_pykan_is_the_inverse_of_from_pykan():
    ours = kanext.KAN([2, 3, 2], grid=6, k=2, seed=0, affine_trainable=True)
    g = torch.Generator().manual_seed(6)
    x = torch.rand(40, 2, generator=g) * 2 - 1
    with torch.no_grad():
        for layer in ours.act_fun:
            _perturb_layer(layer, g)
        for p in list(ours.node_scale) + list(ours.node_bias) + list(ours.subnode_scale) + list(ours.subnode_bias):
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    ours.update_grid(x)  # non-uniform grids
    ours(x)
    ours.fix_symbolic(0, 1, 2, "sin", verbose=False)
    ours.remove_edge(1, 0, 1)
    pk = kanext.to_pykan(ours)
    assert type(pk).__name__ == "MultKAN" and pk.width == [[2, 0], [3, 0], [2, 0]]
    _compare(pk, ours, _params(pk, True), _params(ours, False), x)
    back = kanext.from_pykan(pk)
    for key, t in ours.state_dict().items():
        assert torch.equal(back.state_dict()[key], t), key
    assert back.symbolic_fun[0].funs_name == ours.symbolic_fun[0].funs_name


def test_to_pykan_refuses_what_pykan_cannot_hold():
    with pytest.raises(NotImplementedError, match="one G and one k"):
        kanext.to_pykan(kanext.KAN([2, 3, 1], grid=[3, 5], seed=0))
    with pytest.raises(NotImplementedError, match="named base function"):
        kanext.to_pykan(kanext.KAN([2, 3, 1], base_fun=torch.tanh, seed=0))
    with pytest.raises(TypeError, match="expected a kanext.KAN"):
        kanext.to_pykan(torch.nn.Linear(2, 2))


def test_pykan_small_methods_match_pykan():
    pk, g = _perturbed_pykan([2, 3, 2], seed=8)
    ours = kanext.from_pykan(pk)
    x = torch.rand(64, 2, generator=g) * 2 - 1
    pk(x)
    ours(x)
    assert ours.width_in == pk.width_in and ours.width_out == pk.width_out
    assert ours.n_sum == pk.n_sum and ours.n_mult == pk.n_mult
    assert ours.n_edge == pk.n_edge == 12
    for l, i, j in ((0, 1, 2), (1, 2, 0)):
        got = ours.get_range(l, i, j, verbose=False)
        want = [float(v) for v in quiet(pk.get_range, l, i, j)]
        assert got == pytest.approx(want, rel=1e-10, abs=1e-12)
        xs, ys = ours.get_fun(l, i, j, plot=False)
        import matplotlib

        matplotlib.use("Agg")
        pxs, pys = quiet(pk.get_fun, l, i, j)
        assert xs == pytest.approx(pxs, abs=1e-12) and ys == pytest.approx(pys, abs=1e-12)
    quiet(pk.attribute)
    ours.attribute()
    assert float(ours.connection_cost) == pytest.approx(float(pk.connection_cost), rel=1e-9)
    ds = kanext.create_dataset(lambda t: t[:, :2] ** 2, 2, train_num=20, test_num=30, seed=1, dtype=F64)
    got, want = ours.evaluate(ds), pk.evaluate(ds)
    assert got["test_loss"] == pytest.approx(want["test_loss"], rel=1e-10) and got["n_edge"] == want["n_edge"]
    reg_ours = ours.get_reg("edge_forward_spline_n", 1.0, 2.0, 0.1, 0.1)
    reg_pk = pk.get_reg("edge_forward_spline_n", 1.0, 2.0, 0.1, 0.1)
    assert float(reg_ours) == pytest.approx(float(reg_pk), rel=1e-8)


def test_set_mode_module_and_grid_from_another_model():
    pk = _pykan_model([2, 3, 2], grid=5, k=3)
    ours = kanext.from_pykan(pk)
    x = torch.rand(32, 2, generator=torch.Generator().manual_seed(9)) * 2 - 1
    ours(x)
    quiet(pk.fix_symbolic, 0, 1, 2, "sin", fit_params_bool=False)
    ours.fix_symbolic(0, 1, 2, "sin", fit_params=False, verbose=False)
    for mode in ("n", "sn", "s", "0"):
        quiet(pk.set_mode, 0, 1, 2, mode, mask_n=0.5 if mode == "sn" else None)
        ours.set_mode(0, 1, 2, mode, mask_n=0.5 if mode == "sn" else None)
        assert torch.equal(ours.act_fun[0].mask, pk.act_fun[0].mask.data)
        assert torch.equal(ours.symbolic_fun[0].mask, pk.symbolic_fun[0].mask.data)
        assert_close(ours(x), pk(x), RTOL, msg=f"set_mode {mode}")
    with pytest.raises(ValueError, match="no symbolic function"):
        ours.set_mode(0, 0, 0, "s")
    with pytest.raises(ValueError, match="mode must be"):
        ours.set_mode(0, 1, 2, "x")
    quiet(pk.module, 0, "[0,1]->[1]->[1,2]->[0]")
    ours.module(0, "[0,1]->[1]->[1,2]->[0]")
    for l in range(2):
        assert torch.equal(ours.act_fun[l].mask, pk.act_fun[l].mask.data)
    assert not torch.equal(ours.act_fun[0].mask, torch.ones_like(ours.act_fun[0].mask))
    with pytest.raises(ValueError, match="chain"):
        ours.module(0, "[a]->[0]")
    with pytest.raises(ValueError, match="two groups"):
        ours.module(0, "[0]->[1]->[0]")
    fine = kanext.KAN([2, 3, 2], grid=10, k=3, seed=0)
    pk_fine = _pykan_model([2, 3, 2], grid=10, k=3)
    fine.initialize_grid_from_another_model(ours, x)
    quiet(pk_fine.initialize_grid_from_another_model, pk, x)
    for a, b in zip(fine.act_fun, pk_fine.act_fun):
        assert_close(a.grid, b.grid, 1e-12, msg="grid from another model")


def test_swap_expand_depth_perturb_and_auto_swap():
    pk, g = _perturbed_pykan([2, 4, 2], seed=11)
    ours = kanext.from_pykan(pk)
    x = torch.rand(48, 2, generator=g) * 2 - 1
    ours(x)
    ours.fix_symbolic(0, 1, 3, "sin", verbose=False)
    with torch.no_grad():
        ours.node_bias[0].copy_(torch.tensor([0.1, -0.2, 0.3, 0.05]))
        ours.node_scale[0].copy_(torch.tensor([1.5, 0.5, 1.0, 2.0]))
    y = ours(x)
    params = {id(p) for p in ours.parameters()}
    ours.swap(1, 0, 3)
    assert_close(ours(x), y, 1e-12, msg="swap keeps the function")
    assert {id(p) for p in ours.parameters()} == params  # in place: optimizers stay valid
    assert ours.symbolic_fun[0].funs_name[0][1] == "sin" and ours.node_bias[0][0] == 0.05
    quiet(pk.swap, 1, 0, 3)  # pykan's masks move the same way
    assert torch.equal(ours.act_fun[1].mask, pk.act_fun[1].mask.data)
    with pytest.raises(ValueError, match="hidden layer"):
        ours.swap(0, 0, 1)
    ours.auto_swap()
    assert_close(ours(x), y, 1e-12, msg="auto_swap keeps the function")
    deeper = kanext.from_pykan(pk)
    y2 = deeper(x)
    deeper.expand_depth()  # (pykan 0.2.8's own expand_depth fails on a model with an int mult_arity)
    assert deeper.width == [2, 4, 2, 2] and deeper.depth == 3
    assert_close(deeper(x), y2, 1e-12, msg="expand_depth keeps the function")
    assert deeper.symbolic_fun[2].funs_name == [["x", "0"], ["0", "x"]]
    quiet(pk.fix_symbolic, 0, 1, 2, "sin", fit_params_bool=False)  # active nodes change perturb's choice
    quiet(pk.fix_symbolic, 1, 2, 0, "x", fit_params_bool=False)
    for mode in ("non-intrusive", "all", "minimal"):
        a, b = kanext.from_pykan(pk), _pykan_model([2, 4, 2], grid=5, k=3)
        b.load_state_dict(pk.state_dict())
        for l, sym in enumerate(pk.symbolic_fun):  # the same symbolic names in both
            b.symbolic_fun[l].funs_name = [list(r) for r in sym.funs_name]
        b(x)  # pykan's perturb ends with get_act() on the cached inputs
        a.perturb(0.5, mode)
        quiet(b.perturb, 0.5, mode)
        for la, lb in zip(a.act_fun, b.act_fun):
            assert torch.equal(la.mask, lb.mask.data), mode
            assert torch.equal(la.scale_base, lb.scale_base.data) and torch.equal(la.scale_sp, lb.scale_sp.data)
        assert a.act_fun[0].mask.sum() not in (0, a.act_fun[0].mask.numel()) or mode != "non-intrusive"
    with pytest.raises(ValueError, match="mode must be"):
        ours.perturb(1.0, "some")


def test_expand_width_keeps_the_function_and_adds_switchable_nodes(tmp_path):
    ours = kanext.KAN([2, 3, 2], grid=5, seed=0, affine_trainable=True)
    g = torch.Generator().manual_seed(12)
    x = torch.rand(40, 2, generator=g) * 2 - 1
    with torch.no_grad():
        for p in ours.node_bias:
            p.add_(0.3)
    ours(x)
    ours.fix_symbolic(1, 2, 1, "sin", verbose=False)
    y = ours(x)
    ours.expand_width(1, 2)
    assert ours.width == [2, 5, 2] and ours.act_fun[0].out_features == 5 and ours.act_fun[1].in_features == 5
    assert_close(ours(x), y, 1e-12, msg="expand_width keeps the function")
    assert ours.symbolic_fun[1].funs_name[1][4] == "sin" and ours.n_edge == 2 * 3 + 3 * 2
    ours.perturb(1.0, "all")  # the new edges switch on and then change the output
    assert ours.n_edge == 2 * 5 + 5 * 2
    ours.fit({"train_input": x, "train_label": y.detach(), "test_input": x, "test_label": y.detach()}, steps=2,
             opt="Adam", lr=1e-2, progress=False, update_grid=False)
    kanext.checkpoint.save(ours, tmp_path / "m")
    back = kanext.checkpoint.load(tmp_path / "m")
    assert_close(back(x), ours(x), 0, msg="expanded model round-trips a checkpoint")
    with pytest.raises(ValueError, match="mult_arity must be an int >= 2"):
        ours.expand_width(1, 1, sum_bool=False, mult_arity=1)
    with pytest.raises(ValueError, match="hidden layer"):
        ours.expand_width(2, 1)


@pytest.mark.parametrize("metric", ["edge_forward_spline_n", "edge_forward_spline_u", "edge_forward_sum",
                                    "edge_backward", "node_backward"])
def test_reg_metrics_match_pykan(metric):
    pk, g = _perturbed_pykan([2, 3, 2], seed=13)
    x = torch.rand(50, 2, generator=g) * 2 - 1
    pk(x)
    quiet(pk.fix_symbolic, 0, 1, 2, "sin", fit_params_bool=False)
    with torch.no_grad():
        pk.symbolic_fun[0].affine[2, 1] = torch.tensor([1.3, -0.2, 0.7, 0.1])
        pk.node_scale[0].mul_(1.5)
    ours = kanext.from_pykan(pk)
    pk.get_act(x)
    quiet(pk.attribute)
    if metric == "node_backward":
        quiet(pk.node_attribute)
    want = pk.reg(metric, 1.0, 2.0, 0.0, 0.0)
    got = ours.reg(x, 1.0, 2.0, 0.0, 0.0, metric)
    assert float(got) == pytest.approx(float(want), rel=1e-9)
    got.backward()  # differentiable in the parameters
    assert ours.act_fun[0].coef.grad is not None and ours.act_fun[0].coef.grad.abs().sum() > 0


def _pykan_with_sin_edge(width, seed):
    """A pykan model (G=5, k=3) with perturbed splines and edge (0, 1, 2) fixed
    to 1.3 sin(-0.2 x + 0.7) + 0.4; and the generator, for more draws."""
    model = _pykan_model(width, grid=5, k=3)
    g = torch.Generator().manual_seed(seed)
    for layer in model.act_fun:
        _perturb_layer(layer, g)
    quiet(model.fix_symbolic, 0, 1, 2, "sin", fit_params_bool=False)
    with torch.no_grad():
        model.symbolic_fun[0].affine[2, 1] = torch.tensor([1.3, -0.2, 0.7, 0.4])
    return model, g


def test_speed_and_symbolic_enabled_as_pykan():
    """pykan's speed(): symbolic_enabled = False skips the fixed symbolic edges
    in the forward (the output changes, with a warning here); kanext computes
    pykan's output in both states, from_pykan / to_pykan carry the switch, the
    training forward (layer_forward) and save_act's recording follow it, and a
    model compiled before the switch matches eager after it."""
    model, g = _pykan_with_sin_edge([2, 3, 1], seed=8)
    ours = kanext.from_pykan(model)
    x = torch.rand(30, 2, generator=g) * 2 - 1
    with_sym = ours(x).detach()
    compiled = torch.compile(ours, fullgraph=True)
    assert_close(compiled(x), with_sym, RTOL, msg="compiled, symbolic on")

    assert quiet(model.speed) is model
    with pytest.warns(UserWarning, match=r"1 fixed symbolic edge\(s\) are now skipped"):
        assert ours.speed() is ours
    assert ours.symbolic_enabled is False and ours.save_act is False
    without = ours(x).detach()
    assert (without - with_sym).abs().max() > 1e-3  # the sin edge really dropped out
    assert_close(without, model(x), RTOL, msg="speed mode vs pykan")
    assert_close(compiled(x), without, RTOL, msg="compiled before speed(), run after")
    h = x
    for l in range(len(ours.act_fun)):
        h = ours.layer_forward(l, h)
    assert_close(h, without, 1e-12, msg="layer_forward follows the switch")
    ours.save_act = True
    assert_close(ours(x), without, 1e-12, msg="recording forward follows the switch")
    ours.save_act = False
    model.save_act = True
    model(x)
    quiet(model.attribute, plot=False)
    ours.attribute(x=x)
    for a, b in zip(ours.edge_scores, model.edge_scores):
        assert_close(a, b, RTOL, msg="edge scores in speed mode vs pykan")

    # the switch travels both ways, with the symbolic edges kept
    back = kanext.to_pykan(ours)
    assert back.symbolic_enabled is False
    again = kanext.from_pykan(model)
    assert again.symbolic_enabled is False and again.symbolic_fun[0].funs_name[2][1] == "sin"
    assert_close(again(x), without, RTOL, msg="from_pykan of a speed-mode model")
    again.symbolic_enabled = True
    assert_close(again(x), with_sym, RTOL, msg="switched back on")
    assert not (kanext.KAN([2, 2, 1], seed=0).speed(compile=False).symbolic_enabled)


def test_copy_and_get_params_as_pykan():
    ours = kanext.KAN([2, 3, 1], grid=5, seed=0, dtype=torch.float64)
    x = torch.rand(20, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ours.fix_symbolic(0, 1, 2, "sin", fit_params=False, verbose=False)
    ours.symbolic_enabled = False
    twin = ours.copy()
    assert type(twin) is kanext.KAN and torch.equal(twin(x), ours(x))
    assert twin.symbolic_enabled is False and twin.symbolic_fun[0].funs_name[2][1] == "sin"
    with torch.no_grad():
        twin.act_fun[0].coef.mul_(2)
    assert not torch.equal(twin(x), ours(x))  # independent parameters
    assert [p is q for p, q in zip(ours.get_params(), ours.parameters())] == [True] * len(list(ours.parameters()))
    pk = _pykan_model([2, 3, 1], grid=5, k=3)
    assert {n for n in ("copy", "get_params", "speed", "saveckpt", "loadckpt") if hasattr(pk, n)} <= set(dir(ours))


@pytest.mark.parametrize("width", [[3, 5, 2], [4, 2, 6, 1]])
def test_pykan_constructor_keywords(width):
    """pykan's sparse_init gives pykan's masks and scale_sp and its output
    (same draws); symbolic_enabled and save_act set the attributes;
    auto_save=False is accepted and auto_save=True refused with the way out."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        pk = quiet(kan.KAN, width=list(width), grid=5, k=3, seed=3, sparse_init=True, auto_save=False)
        ours = kanext.KAN(width, grid=5, k=3, seed=3, sparse_init=True, auto_save=False, dtype=torch.float64)
        dense = kanext.KAN(width, grid=5, k=3, seed=3, dtype=torch.float64)
        for a, b, d in zip(ours.act_fun, pk.act_fun, dense.act_fun):
            assert torch.equal(a.mask, b.mask.data) and torch.equal(a.scale_sp, b.scale_sp.data)
            assert a.mask.sum() > 0 and torch.equal(a.coef, d.coef)
        assert any(a.mask.sum() < a.mask.numel() for a in ours.act_fun)  # really sparse somewhere
        x = torch.rand(50, width[0], generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 2 - 1
        assert_close(ours(x), pk(x), RTOL, msg="sparse_init vs pykan")
    finally:
        torch.set_default_dtype(old)
    m = kanext.KAN([2, 3, 1], symbolic_enabled=False, save_act=True)
    assert m.symbolic_enabled is False and m.save_act is True and kanext.KAN.save_act is False
    with pytest.raises(ValueError, match="auto_save=True .* is not provided.*model.save"):
        kanext.KAN([2, 3, 1], auto_save=True)


def test_fix_symbolic_and_prune_node_take_pykans_keywords():
    """fix_symbolic(fun_name=, random=True, log_history=) draws pykan's random
    affine from the global RNG; prune_node(mode=) as pykan; log_history is
    accepted by pykan's editing methods."""
    model = _pykan_model([2, 3, 1], grid=5, k=3)
    ours = kanext.from_pykan(model)
    torch.manual_seed(11)
    quiet(model.fix_symbolic, 0, 1, 2, fun_name="sin", fit_params_bool=False, random=True, log_history=False)
    torch.manual_seed(11)
    ours.fix_symbolic(0, 1, 2, fun_name="sin", fit_params_bool=False, random=True, log_history=False, verbose=False)
    assert torch.equal(ours.symbolic_fun[0].affine[2, 1], model.symbolic_fun[0].affine[2, 1].data)
    assert not torch.equal(ours.symbolic_fun[0].affine[2, 1], torch.tensor([1.0, 0.0, 1.0, 0.0]))
    x = torch.rand(30, 2, generator=torch.Generator().manual_seed(3)) * 2 - 1
    assert_close(ours(x), model(x), RTOL, msg="random symbolic edge vs pykan")
    with pytest.raises(TypeError, match="fun or as pykan's fun_name"):
        ours.fix_symbolic(0, 0, 0, "sin", fun_name="sin")
    with pytest.raises(TypeError, match="fun or as pykan's fun_name"):
        ours.fix_symbolic(0, 0, 0)
    ours.unfix_symbolic(0, 1, 2, log_history=False)
    ours.unfix_symbolic_all(log_history=False)
    ours.remove_edge(0, 0, 0, log_history=False)
    ours.remove_node(1, 2, log_history=False)
    ours.prune_edge(log_history=False)
    ours(x)
    kept = ours.prune_node(mode="manual", active_neurons_id=[[0, 1]], log_history=False)
    assert kept.width == [2, 2, 1]
    assert ours.prune_node(mode="auto").width == ours.prune_node().width
    with pytest.raises(ValueError, match="mode='manual' needs active_neurons_id"):
        ours.prune_node(mode="manual")
    with pytest.raises(ValueError, match="mode='auto' prunes by threshold"):
        ours.prune_node(mode="auto", active_neurons_id=[[0]])
    with pytest.raises(ValueError, match="mode must be 'auto' or 'manual'"):
        ours.prune_node(mode="x")
    finer = kanext.KAN([2, 3, 1], grid=10, seed=0).initialize_from_another_model(another_model=ours, x=x)
    assert_close(finer(x), ours(x), 1e-2, msg="initialize_from_another_model(another_model=)")


@pytest.mark.parametrize("k", [0, 1, 2, 3, 5])
def test_spline_functions_match_kan_spline(k):
    """kanext.spline's B_batch / coef2curve / curve2coef / extend_grid against
    kan.spline's on a non-uniform grid, with points outside it and on knots."""
    from kan import spline as pks

    g = torch.Generator().manual_seed(20 + k)
    knots = torch.sort(torch.rand(3, 8, generator=g, dtype=torch.float64) * 2 - 1, dim=1).values
    grid = kanext.spline.extend_grid(knots, k)
    assert_close(grid, pks.extend_grid(knots, k), 1e-15, msg="extend_grid")  # pykan steps h k times: rounding
    x = torch.rand(300, 3, generator=g, dtype=torch.float64) * 3 - 1.5
    x[0], x[1], x[2] = grid[:, 0], grid[:, k + 2], grid[:, -1]  # knots: the half-open intervals
    B = kanext.spline.B_batch(x, grid, k)
    assert B.dtype == torch.float64 and B.shape == (300, 3, 7 + k)
    assert_close(B, pks.B_batch(x, grid, k).to(torch.float64), 1e-14, msg="B_batch")
    coef = torch.randn(3, 2, 7 + k, generator=g, dtype=torch.float64)
    y = kanext.spline.coef2curve(x, grid, coef, k)
    pk_B = pks.B_batch(x, grid, k).to(torch.float64)  # (pykan's own coef2curve fails on its bool k=0 bases)
    assert_close(y, torch.einsum("big,iog->bio", pk_B, coef), 1e-13, msg="coef2curve")
    if k:
        assert_close(y, pks.coef2curve(x, grid, coef, k), 1e-13, msg="coef2curve vs pykan's")
        lo, hi = grid[:, 0], grid[:, -1]  # samples over every basis' support: a full-rank fit
        inside = lo + torch.rand(400, 3, generator=g, dtype=torch.float64) * (hi - lo)
        yi = pks.coef2curve(inside, grid, coef, k)
        got = kanext.spline.curve2coef(inside, yi, grid, k)
        assert_close(got, pks.curve2coef(inside, yi, grid, k), 1e-8, msg="curve2coef")
        assert_close(got, coef, 1e-8, msg="curve2coef recovers coef")
    assert kanext.MultKAN is kanext.KAN
    with pytest.raises(ValueError, match=r"coef2curve: expected coef of shape \(in=3, out, G\+k="):
        kanext.spline.coef2curve(x, grid, coef[:, :, 1:], k)
    with pytest.raises(ValueError, match=r"curve2coef: expected y_eval of shape"):
        kanext.spline.curve2coef(x, y[:, :2], grid, k)


@pytest.mark.parametrize("enabled", [True, False])
def test_recorded_activation_lists_match_pykans(enabled):
    """spline_preacts / spline_postacts / spline_postsplines / edge_actscale /
    acts_scale_spline / subnode_actscale / acts_premult after a recording
    forward equal pykan's lists (a symbolic edge, multiplication nodes,
    trainable affines), with symbolic edges on and skipped; without a
    recording they raise NoSamplesError naming save_act."""
    model, g = _pykan_with_sin_edge([2, [2, 1], 1], seed=9)
    with torch.no_grad():
        for p in list(model.subnode_scale) + list(model.subnode_bias):
            p.add_(0.2 * torch.randn(p.shape, generator=g))
    model.symbolic_enabled = enabled
    ours = kanext.from_pykan(model)
    with pytest.raises(kanext.recorded.NoSamplesError, match="spline_postacts: no recorded forward.*save_act"):
        ours.spline_postacts
    x = torch.rand(40, 2, generator=g) * 2 - 1
    model.save_act = True
    model(x)
    ours.save_act = True
    ours(x)
    for name in ("spline_preacts", "spline_postacts", "spline_postsplines", "edge_actscale", "acts_scale_spline",
                 "subnode_actscale", "acts_premult"):
        got, exp = getattr(ours, name), getattr(model, name)
        assert len(got) == len(exp) == 2, name
        for l, (a, b) in enumerate(zip(got, exp)):
            assert_close(a, b.detach(), RTOL, msg=f"{name}[{l}], symbolic_enabled={enabled}")


def test_models_derived_in_speed_mode_stay_in_it():
    """prune / prune_node / prune_input / refine / copy of a model whose
    symbolic edges are skipped keep skipping them (a derived model that
    silently brought them back would compute another function)."""
    ours = kanext.KAN([3, 4, 1], seed=0, dtype=torch.float64)
    x = torch.rand(100, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 2 - 1
    ours(x)
    ours.fix_symbolic(0, 0, 0, "sin", verbose=False)
    with pytest.warns(UserWarning, match="skipped"):
        ours.speed()
    for make in (ours.prune, ours.prune_node, ours.prune_input, lambda: ours.refine(10), ours.copy):
        ours(x)
        derived = make()
        assert derived.symbolic_enabled is False, make
