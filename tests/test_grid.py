"""Grid adaptation (update_grid), grid extension (refine), and
initialize_from_another_model."""
from __future__ import annotations

import pytest
import torch

import kanext
from kanext import grid as kgrid
from helpers import assert_close

F64 = torch.float64


def _random_kan(width, G, k=3, seed=0):
    m = kanext.KAN(width, grid=G, k=k, seed=seed, dtype=F64)
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for layer in m.act_fun:
            layer.coef.copy_(torch.randn(layer.coef.shape, generator=g, dtype=F64) * 0.3)
    return m


def _x(n, d, lo=-1.0, hi=1.0, seed=1):
    return torch.rand(n, d, generator=torch.Generator().manual_seed(seed), dtype=F64) * (hi - lo) + lo


def test_grid_from_samples_quantiles_and_uniform_mix():
    x = _x(2001, 3, seed=2) ** 3  # skewed samples
    G, k = 6, 2
    for eps in (0.0, 0.02, 1.0):
        g = kgrid.grid_from_samples(x, G, k, eps)
        assert g.shape == (3, G + 2 * k + 1)
        assert bool((g.diff(dim=1) > 0).all())
        interior = g[:, k:-k]
        xs = torch.sort(x, dim=0).values
        lo, hi = xs[0], xs[-1]
        assert_close(interior[:, 0], lo, 1e-12, msg="first knot at the sample minimum")
        assert_close(interior[:, -1], hi, 1e-12, msg="last knot at the sample maximum")
        uniform = lo[:, None] + (hi - lo)[:, None] * torch.linspace(0, 1, G + 1, dtype=F64)
        quant = xs[[int(2001 / G * q) for q in range(G)] + [-1]].T
        assert_close(interior, eps * uniform + (1 - eps) * quant, 1e-12, msg=f"grid_eps={eps}")


@pytest.mark.parametrize("case", ["constant", "duplicates", "two_values"])
def test_degenerate_samples_give_a_valid_grid_and_finite_coef(case):
    x = _x(500, 2, seed=3)
    if case == "constant":
        x[:, 1] = 0.25
    elif case == "duplicates":
        x[:250] = x[250:]
    else:
        x[:, 0] = torch.where(x[:, 0] > 0, 1.0, -1.0)
    layer = kanext.KANLinear(2, 3, grid=8, k=3, dtype=F64)
    layer.grid_eps = 0.0  # pure quantiles: the hardest case
    layer.update_grid(x)
    assert bool((layer.grid.diff(dim=1) > 0).all())
    assert bool(torch.isfinite(layer.coef).all())
    y = layer(x)
    assert bool(torch.isfinite(y).all())


def test_update_grid_preserves_a_function_representable_on_the_new_grid():
    # A layer whose splines are (nearly) polynomials of degree <= k is
    # representable on any grid: the least-squares refit must keep it.
    layer = kanext.KANLinear(2, 2, grid=5, k=3, dtype=F64)
    pts = kgrid.collocation_points(layer.grid, 3)
    target = torch.stack([pts ** 3 - pts, 0.5 * pts ** 2], dim=-1)  # (P, in, out)
    with torch.no_grad():
        B = kanext.reference.spline_basis(pts, layer.grid, 3).permute(1, 0, 2)
        layer.coef.copy_(torch.einsum("igp,pio->iog", torch.linalg.pinv(B), target))
    x = _x(3000, 2, -0.9, 0.9, seed=4)
    before = layer(x)
    layer.update_grid(x)
    assert not torch.allclose(layer.grid[:, 3], torch.full((2,), -1.0, dtype=F64))  # knots moved
    assert_close(layer(x), before, 1e-9, msg="function after update_grid")


def test_update_grid_refuses_integer_samples():
    """Integer samples gave repeated knots and a 'knots must be strictly increasing' error from deep
    inside; now a TypeError that names the dtype, before anything changes."""
    xi = torch.randint(0, 5, (50, 2), generator=torch.Generator().manual_seed(0))
    for m in (kanext.KANLinear(2, 3), kanext.KAN([2, 3, 1], seed=0)):
        before = {k: v.clone() for k, v in m.state_dict().items()}
        with pytest.raises(TypeError, match="expected floating-point samples, got torch.int64"):
            m.update_grid(xi)
        assert all(torch.equal(v, m.state_dict()[k]) for k, v in before.items())
    kanext.KANLinear(2, 3).update_grid(xi.float())


def test_kan_update_grid_moves_every_layer_to_its_inputs():
    m = _random_kan([2, 4, 1], 5)
    x = _x(800, 2, -0.5, 0.7, seed=5)
    inputs = m.layer_inputs(x)
    y0 = m(x)
    m.update_grid(x)
    for l, layer in enumerate(m.act_fun):
        xl = m.layer_inputs(x)[l]
        interior = layer.grid[:, layer.k:-layer.k]
        assert_close(interior[:, 0], xl.min(0).values * 0.98 + xl.min(0).values * 0.02, 1e-9,
                     msg=f"layer {l} first knot")
    rel = (m(x) - y0).norm() / y0.norm()
    assert rel < 0.2  # a least-squares refit of random splines on new knots
    del inputs


@pytest.mark.parametrize("G,G2", [(3, 6), (5, 10), (5, 20), (4, 4)])
def test_refine_nested_is_exact_on_the_grid_range(G, G2):
    m = _random_kan([2, 3, 1], G)
    x = _x(2000, 2, seed=6)
    m.update_grid(x)  # grids cover the data, in every layer, non-uniform
    m2 = m.refine(G2)
    assert m2.grid == [G2, G2] and m.grid == [G, G]
    assert kgrid.is_refinement(m.act_fun[0].grid, 3, m2.act_fun[0].grid, 3)
    # Exactness holds where every layer's input lies inside its grid range,
    # which the grid update made true for the samples themselves.
    assert_close(m2(x), m(x), 1e-9, msg=f"refine {G}->{G2}")


def test_refine_non_nested_uses_least_squares_on_samples():
    m = _random_kan([2, 3, 1], 5)
    x = _x(2000, 2, seed=8)
    m.update_grid(x)
    m.cache_data = x
    m2 = m.refine(7)  # 5 -> 7: old knots are not new knots
    assert not kgrid.is_refinement(m.act_fun[0].grid, 3, m2.act_fun[0].grid, 3)
    err = (m2(x) - m(x)).norm() / m(x).norm()
    assert err < 0.05
    # and a finer non-nested grid is closer than a coarser one
    err_fine = (m.refine(23)(x) - m(x)).norm() / m(x).norm()
    assert err_fine < err


def test_refine_copies_scales_masks_affines_and_does_not_touch_rng_or_self(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    m = _random_kan([3, 2, 2], 4)
    with torch.no_grad():
        m.act_fun[0].mask[1, 0] = 0
        m.node_bias[0].fill_(0.3)
        m.subnode_scale[1].fill_(1.7)
    state = torch.get_rng_state()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    m2 = m.refine(8)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    assert torch.equal(m2.act_fun[0].mask, m.act_fun[0].mask)
    assert torch.equal(m2.node_bias[0], m.node_bias[0]) and torch.equal(m2.subnode_scale[1], m.subnode_scale[1])
    assert torch.equal(m2.act_fun[1].scale_base, m.act_fun[1].scale_base)
    assert list(tmp_path.iterdir()) == []


def test_initialize_from_another_model_changes_k_and_G():
    src = _random_kan([2, 2, 1], 5, k=3)
    x = _x(3000, 2, seed=9)
    src.update_grid(x)
    dst = kanext.KAN([2, 2, 1], grid=40, k=2, seed=1, dtype=F64)
    dst.initialize_from_another_model(src, x)
    err = (dst(x) - src(x)).norm() / src(x).norm()
    assert err < 1e-3
    with pytest.raises(ValueError, match="widths differ"):
        kanext.KAN([2, 3, 1]).initialize_from_another_model(src, x)


def test_refit_solver_handles_empty_intervals():
    # All samples in one corner: most new intervals see no data. The ridge keeps
    # the solve finite, and the function on the samples is still matched.
    layer = kanext.KANLinear(1, 1, grid=5, k=3, dtype=F64)
    x = _x(200, 1, 0.5, 0.6, seed=10)
    new_grid = kgrid.interpolate_grid(layer.grid, 3, 40)
    coef = kgrid.refit_coef(x, layer.grid, 3, layer.coef, new_grid, 3)
    assert bool(torch.isfinite(coef).all())
    old = kanext.reference.kan_layer(x, layer.grid, 3, "zero", layer.coef, layer.scale_base, layer.scale_sp,
                                     layer.mask)
    new = kanext.reference.kan_layer(x, new_grid, 3, "zero", coef, layer.scale_base, layer.scale_sp, layer.mask)
    assert_close(new, old, 1e-8, msg="function on the samples")
