"""KANLinear and KAN: drop-in behaviour, pykan's function and parameters,
initialisation, RNG hygiene, torch.compile, bad input."""
from __future__ import annotations

import io
import math
import os

import pytest
import torch
from torch import nn

import kanext
from kanext import reference
from helpers import assert_close, make_grid

F64 = torch.float64


def _randomise(layer: kanext.KANLinear, seed: int, nonuniform: bool = True):
    """Non-default values in every parameter and buffer (mask with zeros,
    non-uniform per-input knots) so that no term can hide."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        layer.coef.copy_(torch.randn(layer.coef.shape, generator=g, dtype=F64))
        layer.scale_base.copy_(torch.randn(layer.scale_base.shape, generator=g, dtype=F64))
        layer.scale_sp.copy_(torch.randn(layer.scale_sp.shape, generator=g, dtype=F64))
        layer.mask.copy_((torch.rand(layer.mask.shape, generator=g, dtype=F64) > 0.25).to(F64))
        if nonuniform:
            layer.grid.copy_(make_grid(layer.in_features, layer.num, layer.k, F64, uniform=False, seed=seed))
    return layer


# ------------------------------------------------------------- the function
@pytest.mark.parametrize("base", ["silu", "identity", "zero", torch.tanh])
@pytest.mark.parametrize("k,G", [(0, 4), (1, 3), (3, 5), (5, 20)])
def test_kanlinear_equals_pykan_formula(base, k, G):
    """Forward and every parameter gradient equal reference.kan_layer: pykan's
    KANLayer sum over edges written out with the full (N, in, out) tensor."""
    layer = _randomise(kanext.KANLinear(7, 5, grid=G, k=k, base_fun=base, dtype=F64), seed=k * 10 + G)
    x = torch.rand(33, 7, generator=torch.Generator().manual_seed(1), dtype=F64) * 4 - 2
    y = layer(x)
    names = ["coef", "scale_base", "scale_sp"]
    params = [getattr(layer, n) for n in names]
    y_ref = reference.kan_layer(x, layer.grid, k, base, *params, layer.mask)
    assert_close(y, y_ref, 1e-12, msg="KANLinear forward")
    gy = torch.randn(y.shape, generator=torch.Generator().manual_seed(2), dtype=F64)
    grads = torch.autograd.grad(y, params, gy)
    grads_ref = torch.autograd.grad(y_ref, params, gy)
    for n, a, b in zip(names, grads, grads_ref):
        assert_close(a, b, 1e-12, msg=f"grad of {n}")


def test_kanlinear_gradcheck_all_parameters():
    layer = _randomise(kanext.KANLinear(3, 2, grid=4, k=3, dtype=F64), seed=3)
    x = (torch.rand(6, 3, dtype=F64) * 1.6 - 0.8).requires_grad_()

    def f(x, coef, sb, ssp):
        Wb = layer.mask * sb
        Wc = kanext.ops.fold_spline_weights(coef, layer.mask * ssp)
        return kanext.ops.kan_linear(x, layer.grid, layer.k, "silu", Wb, Wc)

    args = (x, layer.coef.detach().clone().requires_grad_(), layer.scale_base.detach().clone().requires_grad_(),
            layer.scale_sp.detach().clone().requires_grad_())
    assert torch.autograd.gradcheck(f, args)


# ------------------------------------------------------------- drop-in for nn.Linear
@pytest.mark.parametrize("shape", [(5,), (4, 5), (2, 3, 5), (0, 5), (2, 0, 5)])
def test_kanlinear_accepts_any_leading_shape(shape):
    layer = kanext.KANLinear(5, 3)
    x = torch.rand(shape) * 2 - 1
    y = layer(x)
    assert y.shape == shape[:-1] + (3,)
    flat = layer(x.reshape(-1, 5)).reshape(y.shape)
    assert torch.equal(y, flat)


@pytest.mark.parametrize("cls", ["KAN", "LAN"])
def test_recording_forward_of_an_empty_batch(cls):
    """save_act=True with an empty batch (of any leading shape) records it
    without an error; the fits and attribution on that record then raise
    their clear 'at least 2 samples' errors."""
    m = getattr(kanext, cls)([2, 3, 1], grid=3, k=3, seed=0)
    m.save_act = True
    assert m(torch.zeros(0, 2)).shape == (0, 1)
    assert m(torch.zeros(4, 0, 2)).shape == (4, 0, 1)
    if cls == "KAN":
        assert [a.shape[0] for a in m.acts] == [0, 0, 0]
    unit = (0, 0, 0) if cls == "KAN" else (0, 0)
    with pytest.raises(ValueError, match="need at least 2 finite samples|no samples"):
        m.suggest_symbolic(*unit, verbose=False)
    if cls == "KAN":
        with pytest.raises(ValueError, match="N >= 2"):
            m.attribute()


def test_kanlinear_in_a_sequential_with_linear_layers_trains():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), kanext.KANLinear(8, 6), nn.Linear(6, 1))
    x, y = torch.rand(64, 4), torch.rand(64, 1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss0 = None
    for _ in range(30):
        opt.zero_grad()
        loss = torch.mean((model(x) - y) ** 2)
        loss.backward()
        opt.step()
        loss0 = loss0 if loss0 is not None else loss.item()
    assert loss.item() < 0.5 * loss0
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_kanlinear_noncontiguous_input():
    layer = kanext.KANLinear(6, 4, dtype=F64)
    x = torch.rand(6, 10, dtype=F64).t()  # (10, 6), not contiguous
    assert torch.equal(layer(x), layer(x.contiguous()))


def test_kanlinear_state_dict_names_and_shapes():
    layer = kanext.KANLinear(3, 4, grid=5, k=2)
    sd = layer.state_dict()
    assert {k: tuple(v.shape) for k, v in sd.items()} == {
        "grid": (3, 5 + 2 * 2 + 1), "mask": (3, 4), "coef": (3, 4, 7), "scale_base": (3, 4), "scale_sp": (3, 4)}
    assert {n for n, _ in layer.named_parameters()} == {"coef", "scale_base", "scale_sp"}
    assert {n for n, _ in layer.named_buffers()} == {"grid", "mask"}
    other = kanext.KANLinear(3, 4, grid=5, k=2)
    other.load_state_dict(sd)
    x = torch.rand(5, 3)
    assert torch.equal(other(x), layer(x))


def test_kanlinear_dtype_and_trainable_flags():
    layer = kanext.KANLinear(3, 2, dtype=F64, sp_trainable=False, sb_trainable=False)
    assert all(t.dtype == F64 for t in layer.state_dict().values())
    assert not layer.scale_sp.requires_grad and not layer.scale_base.requires_grad
    assert layer.coef.requires_grad
    assert "in_features=3, out_features=2, grid=5, k=3" in repr(layer)


# ------------------------------------------------------------- initialisation
def test_init_follows_pykans_recipe():
    G, k, n_in, n_out, noise = 5, 3, 16, 9, 0.3
    layer = kanext.KANLinear(n_in, n_out, grid=G, k=k, noise_scale=noise, scale_base_mu=0.5,
                             scale_base_sigma=0.25, generator=torch.Generator().manual_seed(0), dtype=F64)
    inv = 1 / math.sqrt(n_in)
    assert torch.allclose(layer.scale_sp, torch.full((n_in, n_out), inv, dtype=F64))
    lo, hi = 0.5 * inv - 0.25 * inv, 0.5 * inv + 0.25 * inv
    assert layer.scale_base.min() >= lo and layer.scale_base.max() <= hi
    assert layer.scale_base.std() > 0.05 * inv  # really random
    expected_grid = torch.linspace(-1 - k * 2 / G, 1 + k * 2 / G, G + 2 * k + 1, dtype=F64)
    assert_close(layer.grid, expected_grid.expand(n_in, -1), 1e-14, msg="grid")
    # the initial splines interpolate uniform noise of width noise/G at the G+1 knots
    knots = layer.grid[:, k:-k].T  # (G+1, in)
    B = reference.spline_basis(knots, layer.grid, k)
    values = torch.einsum("pig,iog->pio", B, layer.coef)
    assert values.abs().max() <= noise / G / 2 + 1e-12
    assert values.std() > noise / G / 10
    assert torch.equal(layer.mask, torch.ones(n_in, n_out, dtype=F64))


def test_global_rng_untouched_with_seed_and_reproducible():
    state = torch.get_rng_state()
    a = kanext.KAN([3, 4, 2], grid=5, seed=7)
    b = kanext.KAN([3, 4, 2], grid=5, seed=7)
    c = kanext.KAN([3, 4, 2], grid=5, seed=8)
    assert torch.equal(torch.get_rng_state(), state), "KAN(seed=...) must not touch the global RNG"
    for (n, p), (_, q), (_, r) in zip(a.named_parameters(), b.named_parameters(), c.named_parameters()):
        assert torch.equal(p, q), n
    assert not torch.equal(a.act_fun[0].coef, c.act_fun[0].coef)


def test_without_seed_draws_follow_torch_manual_seed():
    torch.manual_seed(123)
    a = kanext.KANLinear(3, 4)
    torch.manual_seed(123)
    b = kanext.KANLinear(3, 4)
    assert torch.equal(a.coef, b.coef) and torch.equal(a.scale_base, b.scale_base)


def test_kan_copies_width_and_writes_no_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    width = [2, 5, 1]
    model = kanext.KAN(width, seed=0)
    model(torch.rand(4, 2)).sum().backward()
    assert width == [2, 5, 1]
    model.width.append(9)
    assert width == [2, 5, 1]
    assert os.listdir(tmp_path) == []


def test_kan_structure_and_pykan_width_form():
    m = kanext.KAN([[3, 0], [4, 0], [2, 0]], grid=[3, 6], k=[2, 3], seed=0)
    assert m.width == [3, 4, 2] and m.grid == [3, 6] and m.k == [2, 3] and m.depth == 2
    assert m(torch.rand(5, 3)).shape == (5, 2)
    assert m(torch.rand(2, 5, 3)).shape == (2, 5, 2)
    mult = kanext.KAN([[2, 0], [3, 2], [1, 0]])  # multiplication nodes (tests/test_multkan.py)
    assert mult.width == [2, 5, 1] and mult.width_out == [2, 7, 1]
    with pytest.raises(ValueError, match=r"width entry 1 must be .*got \[3, -1\]"):
        kanext.KAN([[2, 0], [3, -1], [1, 0]])


# ------------------------------------------------------------- torch.compile
def test_compile_fullgraph_kanlinear_and_kan_match_eager():
    torch._dynamo.reset()
    model = kanext.KAN([3, 5, 2], grid=5, k=3, seed=0, dtype=F64)
    layer = kanext.KANLinear(3, 4, grid=7, k=2, base_fun="identity", dtype=F64)
    x = torch.rand(17, 3, dtype=F64) * 2 - 1
    for m in (model, layer):
        m.zero_grad()
        y_e = m(x)
        y_e.pow(2).sum().backward()
        # the symbolic branch's affine gets no gradient while no edge is fixed
        g_e = [None if p.grad is None else p.grad.clone() for p in m.parameters() if p.requires_grad]
        m.zero_grad()
        y_c = torch.compile(m, fullgraph=True)(x)
        y_c.pow(2).sum().backward()
        g_c = [None if p.grad is None else p.grad.clone() for p in m.parameters() if p.requires_grad]
        assert_close(y_c, y_e, 1e-12, msg=f"compiled {type(m).__name__} forward")
        for a, b in zip(g_c, g_e):
            assert (a is None) == (b is None)
            if a is not None:
                assert_close(a, b, 1e-12, msg=f"compiled {type(m).__name__} grads")


# ------------------------------------------------------------- bad input
def test_bad_input_errors():
    layer = kanext.KANLinear(4, 3)
    with pytest.raises(ValueError, match=r"expected input of shape \(\.\.\., 4\), got shape \(2, 5\)"):
        layer(torch.rand(2, 5))
    with pytest.raises(ValueError, match=r"got shape \(\)"):
        layer(torch.tensor(1.0))
    with pytest.raises(RuntimeError, match="dtype"):
        layer(torch.rand(2, 4, dtype=F64))
    model = kanext.KAN([2, 3, 1])
    with pytest.raises(ValueError, match=r"KAN: expected input of shape \(\.\.\., 2\)"):
        model(torch.rand(3, 3))
    for kwargs, frag in [({"k": -1}, "k must be an int >= 0"), ({"k": 6}, r"k must be in \[0, 5\]"),
                         ({"grid": 0}, "grid must be an int >= 1"), ({"grid_range": (1, -1)}, "low < high"),
                         ({"base_fun": "relu"}, "base_fun must be one of")]:
        with pytest.raises(ValueError, match=frag):
            kanext.KANLinear(2, 2, **kwargs)
    with pytest.raises(ValueError, match=r"width entry 1 must be a positive int .*got 0"):
        kanext.KAN([2, 0, 1])
    with pytest.raises(ValueError, match="one per layer"):
        kanext.KAN([2, 3, 1], grid=[3])


def test_non_increasing_grid_is_rejected_by_the_module():
    layer = kanext.KANLinear(2, 2)
    with torch.no_grad():
        layer.grid[1, 4] = layer.grid[1, 3]
    with pytest.raises(RuntimeError, match="strictly increasing.*grid row 1"):
        layer(torch.rand(3, 2))


def test_module_nan_policy_rows_only():
    layer = kanext.KANLinear(3, 2, dtype=F64)
    x = torch.rand(4, 3, dtype=F64)
    x[1, 2] = float("nan")
    y = layer(x)
    assert torch.isnan(y[1]).all()
    mask = torch.tensor([True, False, True, True])
    assert torch.equal(y[mask], layer(x[mask]))


def test_frozen_affines_edited_in_place_take_effect():
    # the forward skips identity affines (which layers qualify is cached on
    # version counters): an in-place edit (as load_state_dict or pykan
    # conversion does) must count.
    torch.manual_seed(3)
    model = kanext.KAN([3, 4, 2], grid=4, k=3, seed=1, dtype=torch.float64)
    x = torch.rand(7, 3, dtype=torch.float64) * 2 - 1
    y_ident = model(x)
    with torch.no_grad():
        model.node_scale[0].copy_(torch.rand(4, dtype=torch.float64) + 0.5)
        model.subnode_bias[1].add_(0.25)
    h = model.act_fun[0](x) * model.node_scale[0]
    expected = model.act_fun[1](h) + 0.25
    assert_close(model(x), expected, 1e-12)
    assert not torch.allclose(model(x), y_ident)
    with torch.no_grad():
        model.node_scale[0].fill_(1.0)
        model.subnode_bias[1].zero_()
    assert torch.equal(model(x), y_ident)


def test_mask_edited_in_place_takes_effect():
    # the forward skips the mask multiply while the mask is all ones: in-place
    # edits must count.
    torch.manual_seed(4)
    layer = kanext.KANLinear(4, 3, grid=5, k=3, dtype=torch.float64)
    x = torch.rand(9, 4, dtype=torch.float64) * 2 - 1
    y_full = layer(x)
    with torch.no_grad():
        layer.mask[1, 2] = 0.0
    expected = reference.kan_layer(x, layer.grid, layer.k, "silu", layer.coef, layer.scale_base, layer.scale_sp,
                                   layer.mask)
    assert_close(layer(x), expected, 1e-12)
    assert not torch.allclose(layer(x)[:, 2], y_full[:, 2])
    with torch.no_grad():
        layer.mask.fill_(1.0)
    assert torch.equal(layer(x), y_full)


@pytest.mark.parametrize("how", ["data", "numpy"])
def test_writes_without_version_bump_take_effect(how):
    # `.data` and numpy views share the storage but not the version counter,
    # so no cache keyed on the tensor sees these writes: the skipped mask
    # multiply and the skipped identity affines must read the values again.
    torch.manual_seed(5)
    model = kanext.KAN([3, 4, 2], grid=4, k=3, seed=1, dtype=torch.float64)
    x = torch.rand(7, 3, dtype=torch.float64) * 2 - 1
    y0 = model(x)  # fills the caches

    def write(t, index, value):
        (t.data if how == "data" else t.detach().numpy())[index] = value

    write(model.act_fun[0].mask, (1, 2), 0.0)
    write(model.node_scale[0], 1, 2.0)
    write(model.subnode_bias[1], 0, 0.25)
    h = reference.kan_layer(x, model.act_fun[0].grid, 3, "silu", model.act_fun[0].coef,
                            model.act_fun[0].scale_base, model.act_fun[0].scale_sp, model.act_fun[0].mask)
    h = h * torch.tensor([1.0, 2.0, 1.0, 1.0], dtype=torch.float64)
    expected = model.act_fun[1](h) + torch.tensor([0.25, 0.0], dtype=torch.float64)
    assert_close(model(x), expected, 1e-12)
    write(model.act_fun[0].mask, (1, 2), 1.0)
    write(model.node_scale[0], 1, 1.0)
    write(model.subnode_bias[1], 0, 0.0)
    assert torch.equal(model(x), y0)
    layer = model.act_fun[1]
    write(layer.mask, (0, 1), 0.0)
    expected = reference.kan_layer(h, layer.grid, 3, "silu", layer.coef, layer.scale_base, layer.scale_sp,
                                   layer.mask)
    assert_close(layer(h), expected, 1e-12)


def test_forward_ad_tangents_of_masks_and_affines():
    # a dual tensor's values are those of the identity (mask of ones, scale 1,
    # bias 0), but its tangent must reach the output: the forward may not skip it
    import torch.autograd.forward_ad as fwad
    from torch.func import functional_call

    torch.manual_seed(6)
    model = kanext.KAN([2, 3, 1], grid=5, k=3, seed=0, dtype=torch.float64)
    x = torch.rand(5, 2, dtype=torch.float64) * 2 - 1
    state = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    for name in ("node_scale.0", "subnode_bias.1", "act_fun.0.mask"):
        p = state[name].detach()
        t = torch.randn_like(p)
        with fwad.dual_level():
            out = functional_call(model, {name: fwad.make_dual(p, t)}, (x,))
            tangent = fwad.unpack_dual(out).tangent
        eps = 1e-6
        with torch.no_grad():
            fd = (functional_call(model, {name: p + eps * t}, (x,))
                  - functional_call(model, {name: p - eps * t}, (x,))) / (2 * eps)
        assert tangent is not None, name
        assert_close(tangent, fd, 1e-6, msg=name)


def test_torch_optim_lbfgs_steps_on_every_module():
    """torch.optim.LBFGS flattens parameters and their gradients with
    .view(-1): every parameter and gradient must be dense (it failed on every
    KAN while coef was stored transposed), also after a double backward."""
    torch.manual_seed(0)
    x = torch.rand(40, 2, dtype=torch.float64) * 2 - 1
    for model in (kanext.KAN([2, 3, 1], grid=5, seed=0, dtype=torch.float64),
                  kanext.KANLinear(2, 1, grid=4, dtype=torch.float64),
                  kanext.LAN([2, 3, 1], grid=4, seed=0, dtype=torch.float64)):
        opt = torch.optim.LBFGS(model.parameters(), max_iter=3)

        def closure():
            opt.zero_grad()
            xr = x.clone().requires_grad_()
            (g,) = torch.autograd.grad(model(xr).sum(), xr, create_graph=True)
            loss = model(x).pow(2).mean() + g.pow(2).mean()
            loss.backward()
            return loss

        before = float(closure())
        opt.step(closure)
        assert float(closure()) < before, type(model).__name__
        assert all(p.is_contiguous() and (p.grad is None or p.grad.is_contiguous()) for p in model.parameters())


def test_kan_forward_caches_follow_every_state_change(tmp_path):
    """KAN.forward keeps two caches (which layers' affines are frozen identities, and each symbolic
    layer's count of fixed edges; KANLinear keeps whether its mask is all ones). After each kind of
    state change, with the caches warm from the previous forward, the model must compute what a
    fresh copy of it computes (a checkpoint round trip: a new object, no cache)."""
    model = kanext.KAN([2, [2, 1], 2], grid=5, k=3, seed=2, dtype=F64)
    g = torch.Generator().manual_seed(7)
    x = torch.rand(30, 2, generator=g, dtype=F64) * 2 - 1
    step = [0]

    def check(what, atol=0.0):
        y = model(x.to(model.act_fun[0].coef.dtype))
        step[0] += 1
        kanext.checkpoint.save(model, tmp_path / f"m{step[0]}")
        fresh = kanext.checkpoint.load(tmp_path / f"m{step[0]}")
        want = fresh(x.to(fresh.act_fun[0].coef.dtype))
        assert_close(y, want, atol, msg=what)
        return y

    y0 = check("initial")
    with torch.no_grad():
        model.node_scale[0].mul_(1.5)  # in place: version counter
    assert not torch.allclose(check("node_scale edited in place"), y0)
    with torch.no_grad():
        model.node_scale[0].fill_(1.0)
    assert torch.equal(check("node_scale back to 1"), y0)
    model.node_bias[1].data = torch.full((2,), 0.3, dtype=F64)  # new storage, no version bump
    check("node_bias.data replaced")
    model.node_bias[1] = nn.Parameter(torch.zeros(2, dtype=F64), requires_grad=False)  # a new Parameter
    assert torch.equal(check("node_bias replaced by zeros"), y0)
    model.subnode_scale[0].requires_grad_(True)  # values still 1, but now a gradient is asked for
    model(x).sum().backward()
    assert model.subnode_scale[0].grad is not None and model.subnode_scale[0].grad.abs().sum() > 0
    model.subnode_scale[0].requires_grad_(False)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model.subnode_bias[0].add_(0.2)
    check("subnode_bias edited")
    model.load_state_dict(state)
    assert torch.equal(check("load_state_dict back"), y0)
    model.fix_symbolic(0, 1, 2, "sin", fit_params=False, verbose=False)  # the fixed-edge count: 0 -> 1
    y_sym = check("fix_symbolic")
    assert not torch.allclose(y_sym, y0)
    model.unfix_symbolic(0, 1, 2)
    assert torch.equal(check("unfix_symbolic"), y0)
    model.symbolic_fun[1].funs_name[0][1] = "x^2"  # a hand edit, announced with invalidate()
    model.symbolic_fun[1].mask[0, 1] = 1.0
    model.symbolic_fun[1].affine.data[0, 1] = torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=F64)
    model.symbolic_fun[1].invalidate()
    assert not torch.allclose(check("funs_name edited + invalidate"), y0)
    model.unfix_symbolic_all()
    assert torch.equal(check("unfix_symbolic_all"), y0)
    model.remove_edge(0, 1, 0)
    check("remove_edge")
    model.update_grid(x)
    check("update_grid")
    with torch.no_grad():
        model.node_scale[1].mul_(-2.0)
    model.to(torch.float32)
    check(".to(float32)", atol=1e-6)
    model.to(F64)
    small = model.prune(node_th=0.0, edge_th=0.0, x=x)
    model = small
    check("prune")


def test_data_properties_are_absent_without_data_and_say_why():
    """Properties that need recorded data (feature_score, connection_cost,
    pykan's recorded lists) raise NoRecordingError, an AttributeError too:
    hasattr is False and tools that scan a module's attributes
    (torch.jit.trace does) never fail on them; reading one still says what is
    missing. Every attribute of a fresh model can be probed."""
    from kanext.recorded import NoRecordingError, NoSamplesError

    models = [kanext.KAN([2, 3, 1], seed=0), kanext.KAN([2, [1, 1], 1], seed=0), kanext.LAN([2, 3, 1], seed=0),
              kanext.KANLinear(2, 3), kanext.MLP([2, 3, 1], seed=0)]
    for m in models:
        for name in dir(m):
            hasattr(m, name)  # must not raise
    kan, mlp = models[0], models[-1]
    for obj, name, pattern in [(kan, "spline_postacts", "spline_postacts: no recorded forward.*save_act"),
                               (kan, "acts_premult", "acts_premult: no recorded forward"),
                               (kan, "edge_actscale", "edge_actscale: no recorded forward"),
                               (kan, "feature_score", "attribution: no samples"),
                               (kan, "connection_cost", "connection_cost: no edge scores"),
                               (mlp, "feature_score", "no samples")]:
        assert not hasattr(obj, name)
        with pytest.raises(NoRecordingError, match=pattern) as info:
            getattr(obj, name)
        assert isinstance(info.value, (AttributeError, NoSamplesError, ValueError))
    with pytest.raises(AttributeError, match="'KAN' object has no attribute 'no_such_thing'"):
        kan.no_such_thing
    kan(torch.rand(8, 2))
    assert hasattr(kan, "feature_score") and kan.feature_score.shape == (2,)
    for m in (kan, mlp):  # whole-module pickling goes through __getattr__ while the object is half-built
        buf = io.BytesIO()
        torch.save(m, buf)
        buf.seek(0)
        x = torch.rand(4, 2)
        assert torch.equal(torch.load(buf, weights_only=False)(x), m(x))
