"""Dense per-edge values of a KAN layer, for the few places that need each
edge's activation on its own (symbolic fitting, plots, recorded statistics of
symbolic edges) rather than the layer's sum over inputs.

These form (N, E, G+k) basis tensors, so they are for small N x E (a fit
of a few edges, a plot of 100 points); training and inference go through the
fused ops. This is library code built on :func:`kanext.ops.spline_basis`;
the independent test oracle is :mod:`kanext.reference`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from . import ops

__all__ = ["base_values", "edge_parts", "edge_values", "all_edge_values"]


def base_values(base_fun, x: Tensor) -> Tensor:
    """b(x) elementwise for a base name ('silu', 'identity', 'zero') or a callable."""
    if callable(base_fun):
        return base_fun(x)
    if base_fun == "silu":
        return F.silu(x)
    if base_fun == "identity":
        return x
    if base_fun == "zero":
        return torch.zeros_like(x)
    raise ValueError(f"unknown base function {base_fun!r}: expected one of {sorted(ops.BASE_IDS)} or a callable")


@torch.no_grad()
def edge_parts(layer, x: Tensor, I: Tensor, J: Tensor) -> tuple[Tensor, Tensor]:
    """(base part, spline part), each (N, E), of the edges I[e] -> J[e] of the
    KANLinear ``layer`` at x (N, in): mask * scale_base * b(x_i) and
    mask * scale_sp * sum_g coef B_g(x_i)."""
    uniq, pos = torch.unique(I, return_inverse=True)
    xu = x[:, uniq]
    B = ops.spline_basis(xu, layer.grid[uniq], layer.k)  # (N, U, G+k)
    m = layer.mask[I, J]
    coef = layer.coef[I, J] * (m * layer.scale_sp[I, J])[:, None]  # (E, G+k)
    spline = torch.einsum("neg,eg->ne", B[:, pos, :], coef)
    base = base_values(layer.base_fun, xu)[:, pos] * (m * layer.scale_base[I, J])
    return base, spline


def edge_values(layer, x: Tensor, I: Tensor, J: Tensor) -> Tensor:
    """(N, E) activation phi_{I[e] -> J[e]}(x[:, I[e]]) of the spline path (mask applied)."""
    base, spline = edge_parts(layer, x, I, J)
    return base + spline


def all_edge_values(layer, x: Tensor) -> Tensor:
    """(N, in, out) activation of every edge of the layer at x (N, in)."""
    n_in, n_out = layer.in_features, layer.out_features
    I = torch.arange(n_in, device=x.device).repeat_interleave(n_out)
    J = torch.arange(n_out, device=x.device).repeat(n_in)
    return edge_values(layer, x, I, J).reshape(x.shape[0], n_in, n_out)
