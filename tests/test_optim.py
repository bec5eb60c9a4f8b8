"""kanext.optim.LBFGS: converges like a textbook L-BFGS, and keeps curvature
pairs that torch.optim.LBFGS's fixed 1e-10 threshold would drop."""
from __future__ import annotations

import pytest
import torch

from kanext.optim import LBFGS

F64 = torch.float64


def _rosenbrock(p):
    x, y = p[0], p[1]
    return (1 - x) ** 2 + 100 * (y - x * x) ** 2


def test_rosenbrock_converges():
    p = torch.tensor([-1.2, 1.0], dtype=F64, requires_grad=True)
    opt = LBFGS([p], lr=1.0, history_size=10, line_search_fn="strong_wolfe", max_iter=50, tolerance_grad=1e-14,
                tolerance_change=1e-16)

    def closure():
        opt.zero_grad()
        loss = _rosenbrock(p)
        loss.backward()
        return loss

    for _ in range(20):
        opt.step(closure)
    assert _rosenbrock(p).item() < 1e-12


def test_fixed_step_without_line_search():
    x = torch.tensor([3.0, -2.0], dtype=F64, requires_grad=True)
    opt = LBFGS([x], lr=0.5, max_iter=40, tolerance_change=1e-30)

    def closure():
        opt.zero_grad()
        loss = (x * x).sum()
        loss.backward()
        return loss

    opt.step(closure)
    assert (x * x).sum().item() < 1e-10


def test_quadratic_matches_torch_lbfgs_when_curvature_is_large():
    torch.manual_seed(0)
    A = torch.randn(20, 20, dtype=F64)
    A = A @ A.T + 20 * torch.eye(20, dtype=F64)
    b = torch.randn(20, dtype=F64)
    results = []
    for cls in (LBFGS, torch.optim.LBFGS):
        x = torch.zeros(20, dtype=F64, requires_grad=True)
        opt = cls([x], lr=1, history_size=10, line_search_fn="strong_wolfe", max_iter=8)

        def closure():
            opt.zero_grad()
            loss = 0.5 * x @ A @ x - b @ x
            loss.backward()
            return loss

        opt.step(closure)
        results.append(x.detach().clone())
    exact = torch.linalg.solve(A, b)
    for r in results:
        assert (r - exact).norm() / exact.norm() < 1e-2
    assert (results[0] - results[1]).norm() / exact.norm() < 1e-6  # same algorithm, same iterates


def test_tiny_curvature_pairs_are_kept():
    # A badly scaled quadratic close to its minimum: y.s is far below 1e-10.
    scale = torch.tensor([1e-8, 1e-6, 1e-4], dtype=F64)
    x0 = torch.tensor([1e-3, 1e-3, 1e-3], dtype=F64)
    finals = {}
    for name, cls, kw in (("kanext", LBFGS, {"tolerance_ys": 1e-32}), ("torch", torch.optim.LBFGS, {})):
        x = x0.clone().requires_grad_()
        opt = cls([x], lr=1, history_size=10, line_search_fn="strong_wolfe", max_iter=30,
                  tolerance_grad=1e-32, tolerance_change=1e-32, **kw)

        def closure():
            opt.zero_grad()
            loss = 0.5 * (scale * x * x).sum()
            loss.backward()
            return loss

        opt.step(closure)
        finals[name] = (0.5 * (scale * x * x).sum()).item()
    assert finals["kanext"] < 1e-3 * finals["torch"]


def test_bad_arguments():
    p = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="line_search_fn"):
        LBFGS([p], line_search_fn="backtracking")
