"""kanext.utils against pykan's kan.utils (pykan 0.2.8, a test dependency)."""
from __future__ import annotations

import pytest
import sympy
import torch

import kanext
from kanext import utils

F64 = torch.float64
kan = pytest.importorskip("kan", reason="pykan is a test dependency (requirements/test.txt)")
from kan import utils as pku  # noqa: E402


def _model():
    model = kanext.KAN([2, 3, 2], grid=5, seed=0, dtype=F64)
    with torch.no_grad():
        for layer in model.act_fun:
            layer.coef.add_(0.3 * torch.randn(layer.coef.shape, generator=torch.Generator().manual_seed(1), dtype=F64))
    return model


def test_batch_jacobian_and_hessian_match_pykan_and_torch_func():
    model = _model()
    x = torch.rand(7, 2, generator=torch.Generator().manual_seed(2), dtype=F64) * 2 - 1
    for mode in ("scalar", "vector"):
        got = utils.batch_jacobian(model, x, mode=mode)
        want = pku.batch_jacobian(model, x, mode=mode)
        assert got.shape == want.shape and torch.allclose(got, want, atol=1e-12)
    jac = torch.func.vmap(torch.func.jacrev(model))(x)
    assert torch.allclose(utils.batch_jacobian(model, x, mode="vector"), jac, atol=1e-12)
    got_h = utils.batch_hessian(model, x)
    assert got_h.shape == (7, 2, 2)
    assert torch.allclose(got_h, pku.batch_hessian(model, x), atol=1e-10)
    assert torch.allclose(got_h, torch.func.vmap(torch.func.hessian(lambda t: model(t)[0]))(x), atol=1e-10)
    # create_graph keeps it differentiable in the parameters (a physics-informed loss)
    loss = utils.batch_jacobian(model, x, create_graph=True).pow(2).sum()
    loss.backward()
    assert model.act_fun[0].coef.grad is not None and model.act_fun[0].coef.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="mode must be"):
        utils.batch_jacobian(model, x, mode="matrix")


def test_ex_round_sparse_mask_model2param_match_pykan():
    a, b = sympy.symbols("a b")
    ex = sympy.Float(1.23456) * sympy.sin(sympy.Float(2.71828) * a) + sympy.Float(0.333333) * b
    assert str(utils.ex_round(ex, 2)) == str(pku.ex_round(ex, 2))
    assert utils.ex_round(ex, 2).atoms(sympy.Float) == {sympy.Float(1.23), sympy.Float(2.72), sympy.Float(0.33)}
    for shape in ((3, 5), (5, 3), (4, 4), (1, 6)):
        assert torch.equal(utils.sparse_mask(*shape), pku.sparse_mask(*shape))
    model = _model()
    v = utils.model2param(model)
    assert v.shape == (sum(p.numel() for p in model.parameters()),)
    assert torch.equal(v, torch.cat([p.reshape(-1) for p in model.parameters()]))


def test_create_dataset_from_data_splits_every_row_once():
    x = torch.arange(20, dtype=F64).reshape(10, 2)
    y = x.sum(1, keepdim=True)
    ds = utils.create_dataset_from_data(x, y, train_ratio=0.7, seed=3)
    assert ds["train_input"].shape == (7, 2) and ds["test_input"].shape == (3, 2)
    rows = torch.cat([ds["train_input"], ds["test_input"]])
    assert sorted(rows[:, 0].tolist()) == x[:, 0].tolist()
    assert torch.equal(ds["train_label"], ds["train_input"].sum(1, keepdim=True))
    again = utils.create_dataset_from_data(x, y, train_ratio=0.7, seed=3)
    assert all(torch.equal(ds[k], again[k]) for k in ds)
    with pytest.raises(ValueError, match="same number of rows"):
        utils.create_dataset_from_data(x, y[:3])
    with pytest.raises(ValueError, match="train_ratio"):
        utils.create_dataset_from_data(x, y, train_ratio=0.0)


def test_augment_input_matches_pykan():
    x1, x2 = sympy.symbols("x1 x2")
    x = torch.rand(6, 2, generator=torch.Generator().manual_seed(4), dtype=F64) + 0.5
    aux = [x1 * x2, sympy.sin(x1) / x2]
    got = utils.augment_input([x1, x2], aux, x)
    want = pku.augment_input([x1, x2], aux, x)
    assert got.shape == (6, 4) and torch.allclose(got, want.to(F64), atol=1e-12)
    ds = {"train_input": x, "test_input": x[:2]}
    out = utils.augment_input([x1, x2], aux, ds)
    assert out["train_input"].shape == (6, 4) and out["test_input"].shape == (2, 4)
    with pytest.raises(ValueError, match="expected x of shape"):
        utils.augment_input([x1], aux, x)
