"""pykan's small utilities (``kan.utils``), with pykan's names, arguments and
results: data sets from data, auxiliary inputs, batched Jacobians and
Hessians, rounding of formulas, pykan's sparse initial mask, and a model's
parameters as one vector.

Where kanext differs on purpose: random choices come from a private
generator seeded by ``seed`` (pykan uses numpy's global RNG), and auxiliary
variables are computed in torch on the inputs' device and dtype (pykan goes
through numpy on the CPU).
"""
from __future__ import annotations

from typing import Callable, Sequence

import sympy
import torch
from torch import Tensor, nn

from .symbolic.formula import to_torch

__all__ = ["create_dataset_from_data", "augment_input", "batch_jacobian", "batch_hessian", "ex_round", "sparse_mask",
           "model2param"]


def create_dataset_from_data(inputs: Tensor, labels: Tensor, train_ratio: float = 0.8, device=None,
                             seed: int = 0) -> dict[str, Tensor]:
    """pykan's dataset dict from given data: a random ``train_ratio`` share of
    the rows (drawn with a private generator seeded by ``seed``) is the
    training split, the rest the test split, both in their original order.
    ``device``: where the tensors go (default: where they are)."""
    inputs, labels = torch.as_tensor(inputs), torch.as_tensor(labels)
    n = inputs.shape[0] if inputs.dim() else 0
    if inputs.dim() == 0 or labels.dim() == 0 or labels.shape[0] != n:
        raise ValueError(f"create_dataset_from_data: inputs and labels need the same number of rows, got shapes "
                         f"{tuple(inputs.shape)} and {tuple(labels.shape)}")
    if not 0.0 < train_ratio <= 1.0:
        raise ValueError(f"create_dataset_from_data: train_ratio must be in (0, 1], got {train_ratio!r}")
    n_train = int(n * train_ratio)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    train = perm[:n_train].sort().values
    test = perm[n_train:].sort().values
    dev = inputs.device if device is None else device
    pick = lambda t, rows: t[rows.to(t.device)].detach().to(dev)  # noqa: E731
    return {"train_input": pick(inputs, train), "test_input": pick(inputs, test),
            "train_label": pick(labels, train), "test_label": pick(labels, test)}


def augment_input(orig_vars: Sequence, aux_vars: Sequence, x):
    """Prepends auxiliary inputs, sympy expressions of the original variables,
    to x (N, len(orig_vars)): the result is (N, len(aux_vars) + len(orig_vars)),
    auxiliary columns first (pykan's order). A dataset dict gets both its
    train_input and test_input augmented (in place, and returned)."""
    if isinstance(x, dict):
        for key in ("train_input", "test_input"):
            x[key] = augment_input(orig_vars, aux_vars, x[key])
        return x
    if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[1] != len(orig_vars):
        raise ValueError(f"augment_input: expected x of shape (N, {len(orig_vars)}) or a dataset dict, got "
                         f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
    cols = [to_torch(sympy.sympify(e), orig_vars)(x).reshape(-1, 1).to(x.dtype) for e in aux_vars]
    return torch.cat(cols + [x], dim=1)


def batch_jacobian(func: Callable[[Tensor], Tensor], x: Tensor, create_graph: bool = False,
                   mode: str = "scalar") -> Tensor:
    """Per-sample Jacobians of a batched function whose rows are independent
    (as every KAN is): 'scalar' gives (N, in), the gradient of the first
    output; 'vector' gives (N, out, in). One backward pass per output."""
    if mode not in ("scalar", "vector"):
        raise ValueError(f"batch_jacobian: mode must be 'scalar' or 'vector', got {mode!r}")
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        y = func(x)
        if y.dim() == 1:
            y = y.unsqueeze(1)
        n_out = 1 if mode == "scalar" else y.shape[1]
        rows = [torch.autograd.grad(y[:, k].sum(), x, create_graph=create_graph, retain_graph=True)[0]
                for k in range(n_out)]
    if mode == "scalar":
        return rows[0]
    return torch.stack(rows, dim=1)


def batch_hessian(model: Callable[[Tensor], Tensor], x: Tensor, create_graph: bool = False) -> Tensor:
    """(N, in, in) per-sample Hessians of the first output of a batched
    function with independent rows (pykan's batch_hessian)."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        g = _grad_of_first_output(model, x)
        rows = [torch.autograd.grad(g[:, i].sum(), x, create_graph=create_graph, retain_graph=True)[0]
                for i in range(x.shape[1])]
    return torch.stack(rows, dim=1)


def _grad_of_first_output(func, x: Tensor) -> Tensor:
    """The gradient of the first output at x (which requires grad), kept differentiable."""
    y = func(x)
    y = y.unsqueeze(1) if y.dim() == 1 else y
    return torch.autograd.grad(y[:, 0].sum(), x, create_graph=True)[0]


def ex_round(ex, n_digit: int):
    """The sympy expression with every float rounded to n_digit decimals (pykan's ex_round)."""
    ex = sympy.sympify(ex)
    return ex.xreplace({a: sympy.Float(round(float(a), n_digit)) for a in ex.atoms(sympy.Float)})


def sparse_mask(in_dim: int, out_dim: int) -> Tensor:
    """pykan's sparse initial mask (in_dim, out_dim): nodes of both layers
    evenly placed on [0, 1]; each input is linked to its nearest output and
    each output to its nearest input."""
    pin = (torch.arange(in_dim) + 0.5) / in_dim
    pout = (torch.arange(out_dim) + 0.5) / out_dim
    dist = (pout[:, None] - pin[None, :]).abs()  # (out, in)
    mask = torch.zeros(in_dim, out_dim)
    mask[torch.arange(in_dim), dist.argmin(dim=0)] = 1.0
    mask[dist.argmin(dim=1), torch.arange(out_dim)] = 1.0
    return mask


def model2param(model: nn.Module) -> Tensor:
    """Every parameter of the model flattened into one vector, in
    ``model.parameters()`` order (pykan's model2param)."""
    params = [p.reshape(-1) for p in model.parameters()]
    return torch.cat(params) if params else torch.zeros(0)
