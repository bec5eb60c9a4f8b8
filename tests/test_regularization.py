"""The sparsity regulariser and the statistics recorded with save_act: equal
to pykan's and to brute-force (N, in, out) computations."""
from __future__ import annotations

import contextlib
import io

import pytest
import torch

import kanext
from kanext import reference
from helpers import assert_close

F64 = torch.float64


def _phi(layer, x):
    """Brute force: every edge activation, (N, in, out)."""
    B = reference.spline_basis(x, layer.grid, layer.k)
    spline = torch.einsum("nig,iog->nio", B, layer.coef)
    b = reference.base_function(layer.base_fun, x)
    return layer.mask * (layer.scale_base * b[:, :, None] + layer.scale_sp * spline)


def _model(seed=0):
    m = kanext.KAN([3, 4, 2], grid=5, k=3, seed=seed, dtype=F64)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for layer in m.act_fun:
            layer.coef.add_(0.5 * torch.randn(layer.coef.shape, generator=g, dtype=F64))
        m.act_fun[0].mask[1, 2] = 0.0  # a pruned edge: std 0, its gradient must stay finite
    return m


def test_save_act_records_match_brute_force():
    m = _model()
    x = torch.rand(200, 3, dtype=F64) * 2 - 1
    y_plain = m(x)
    m.save_act = True
    y = m(x)
    assert torch.equal(y, y_plain), "recording must not change the output"
    inputs = [x]
    for l in range(m.depth - 1):
        inputs.append(m.layer_forward(l, inputs[-1]).detach())
    for l, (layer, xl) in enumerate(zip(m.act_fun, inputs)):
        phi = _phi(layer, xl)
        assert_close(m.acts[l], xl, 1e-14, msg=f"acts[{l}]")
        assert_close(m.edge_l1[l], phi.abs().mean(0).T, 1e-12, msg=f"edge_l1[{l}]")
        expected = phi.std(0) / (xl.std(0)[:, None] + 0.1)
        assert_close(m.acts_scale[l], expected.T, 1e-10, msg=f"acts_scale[{l}]")
        assert_close(m.input_range[l], torch.stack([xl.min(0).values, xl.max(0).values], 1), 0, msg="range")
    assert torch.equal(m.acts[-1], y.detach())
    m.save_act = False
    del m.acts
    m(x)
    assert not hasattr(m, "acts")


@pytest.mark.parametrize("metric", ["edge_forward_spline_n", "edge_forward_l1"])
def test_reg_matches_brute_force_value_and_gradients(metric):
    m = _model(3)
    x = torch.rand(150, 3, dtype=F64) * 2 - 1
    lam = dict(lamb_l1=1.3, lamb_entropy=0.7, lamb_coef=0.2, lamb_coefdiff=0.1)
    r = m.reg(x, reg_metric=metric, **lam)
    params = [p for p in m.parameters() if p.requires_grad]
    # allow_unused: the symbolic branch's affine is not in the graph while no edge is fixed
    g = [torch.zeros_like(p) if a is None else a
         for p, a in zip(params, torch.autograd.grad(r, params, allow_unused=True))]

    # brute force with the (N, in, out) tensor
    total = 0.0
    xl = x
    for l, layer in enumerate(m.act_fun):
        phi = _phi(layer, xl)
        if metric == "edge_forward_l1":
            S = phi.abs().mean(0).T
        else:
            S = (phi.std(0) / (xl.std(0)[:, None] + 0.1)).T
        p_row = S / (S.sum(1, keepdim=True) + 1)
        p_col = S / (S.sum(0, keepdim=True) + 1)
        ent = -torch.mean(torch.sum(p_row * torch.log2(p_row + 1e-4), 1)) - torch.mean(
            torch.sum(p_col * torch.log2(p_col + 1e-4), 0))
        total = total + lam["lamb_l1"] * S.sum() + lam["lamb_entropy"] * ent
        total = total + lam["lamb_coef"] * layer.coef.abs().mean(1).sum()
        total = total + lam["lamb_coefdiff"] * layer.coef.diff().abs().mean(1).sum()
        xl = m.layer_forward(l, xl)
    g_ref = torch.autograd.grad(total, params, allow_unused=True)
    assert_close(r, total, 1e-12, msg="reg value")
    for i, (a, b) in enumerate(zip(g, g_ref)):
        b = torch.zeros_like(a) if b is None else b
        assert bool(torch.isfinite(a).all()), f"non-finite gradient in parameter {i}"
        # the pruned edge: torch.std's gradient there is NaN, ours 0
        assert_close(torch.nan_to_num(a), torch.nan_to_num(b), 1e-9, msg=f"grad {i}")


@contextlib.contextmanager
def _pykan_float64():
    """pykan's [3, 4, 2] KAN (grid 5, seed 0) built and used in float64 (its
    default dtype), pykan's prints silenced while it is built."""
    kan = pytest.importorskip("kan")
    old = torch.get_default_dtype()
    torch.set_default_dtype(F64)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            pk = kan.KAN(width=[3, 4, 2], grid=5, k=3, seed=0, auto_save=False)
        yield pk
    finally:
        torch.set_default_dtype(old)


def test_reg_equals_pykans():
    with _pykan_float64() as pk:
        g = torch.Generator().manual_seed(5)
        with torch.no_grad():
            for layer in pk.act_fun:
                layer.coef.add_(0.5 * torch.randn(layer.coef.shape, generator=g))
        x = torch.rand(120, 3, generator=g) * 2 - 1
        ours = kanext.from_pykan(pk)
        pk(x)
        r_pk = pk.reg("edge_forward_spline_n", 1.0, 2.0, 0.3, 0.2)
        r = ours.reg(x, 1.0, 2.0, 0.3, 0.2)
        assert_close(r, r_pk, 1e-10, msg="reg vs pykan")
        params_pk = [p for l in pk.act_fun for p in (l.coef, l.scale_base, l.scale_sp)]
        params = [p for l in ours.act_fun for p in (l.coef, l.scale_base, l.scale_sp)]
        for a, b in zip(torch.autograd.grad(r, params), torch.autograd.grad(r_pk, params_pk)):
            assert_close(a, b, 1e-9, msg="reg gradient vs pykan")


@pytest.mark.parametrize("enabled", [True, False])
def test_whole_edge_reg_with_symbolic_edges_equals_pykans(enabled):
    """reg("edge_forward_sum") counts the fixed symbolic edges as pykan's
    does: in the whole edge when symbolic_enabled, not at all when the
    forward skips them (pykan's speed mode)."""
    with _pykan_float64() as pk:
        with contextlib.redirect_stdout(io.StringIO()):
            pk.fix_symbolic(0, 1, 2, "sin", fit_params_bool=False)
        g = torch.Generator().manual_seed(6)
        with torch.no_grad():
            pk.symbolic_fun[0].affine[2, 1] = torch.tensor([1.3, -0.2, 0.9, 0.1])
            for layer in pk.act_fun:
                layer.coef.add_(0.5 * torch.randn(layer.coef.shape, generator=g))
        pk.symbolic_enabled = enabled
        ours = kanext.from_pykan(pk)
        assert ours.symbolic_enabled is enabled
        x = torch.rand(120, 3, generator=g) * 2 - 1
        pk.save_act = True
        pk(x)
        r_pk = pk.reg("edge_forward_sum", 1.0, 2.0, 0.0, 0.0)
        r = ours.reg(x, 1.0, 2.0, 0.0, 0.0, reg_metric="edge_forward_sum")
        assert_close(r, r_pk, 1e-10, msg=f"reg vs pykan, symbolic_enabled={enabled}")


def test_fit_with_lamb_sparsifies():
    ds = kanext.create_dataset(lambda x: x[:, :1] ** 2, n_var=3, train_num=300, test_num=100, seed=0, dtype=F64)
    dense = kanext.KAN([3, 3, 1], grid=5, seed=0, dtype=F64)
    sparse = kanext.KAN([3, 3, 1], grid=5, seed=0, dtype=F64)
    dense.fit(ds, steps=15, progress=False)
    r = sparse.fit(ds, steps=15, lamb=1e-2, progress=False)
    assert r["reg"][-1] > 0 and all(torch.isfinite(torch.tensor(r["reg"])))
    x = ds["train_input"]
    assert sparse.reg(x) < dense.reg(x)
