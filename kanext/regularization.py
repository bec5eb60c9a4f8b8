"""Sparsity regularisation of KAN edges (the paper's section 2.5, pykan's reg).

Per layer, every edge i -> j gets a scale from the batch statistics of its
activation phi_ij(x_i). These come from the fused ``edge_stats`` op, which
reduces over the batch without forming an (N, in, out) tensor:

- ``'edge_forward_spline_n'`` (pykan's default): std_n(phi_ij) / (std_n(x_i) + 0.1),
  with torch.std's unbiased estimator, as pykan computes it;
- ``'edge_forward_l1'`` (the paper's |phi_ij|_1): mean_n |phi_ij(x_i)|.

With those scales S (out, in), per layer:

    reg_l = lamb_l1 * sum S + lamb_entropy * (row entropy + column entropy)

where the entropies are pykan's: p = S / (sum over the row or column + 1),
entropy = -mean(sum p log2(p + 1e-4)). Then, over layers,
lamb_coef * sum_i mean_j |coef| and lamb_coefdiff * the same of |diff(coef)|.
"""
from __future__ import annotations

import torch
from torch import Tensor

from . import ops

__all__ = ["reg", "edge_scales", "edge_statistics", "REG_METRICS"]

REG_METRICS = ("edge_forward_spline_n", "edge_forward_l1")


def edge_statistics(layer, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(sum, sum of squares, sum of |.|) of phi_ij(x_i) over the batch, each
    (in, out), and the batch size, for a KANLinear on its input x (N, in).
    Differentiable in the layer's parameters and in x."""
    x = x.reshape(-1, layer.in_features)
    Wb, Wc = layer.folded_weights()
    if callable(layer.base_fun):
        # The kernels only know built-in base functions: add the base term here
        # (an (N, in, out) tensor, only for callable bases).
        B = ops.spline_basis(x, layer.grid, layer.k)
        phi = layer.base_fun(x).unsqueeze(-1) * Wb + torch.einsum("nig,igj->nij", B, Wc)
        s = (phi.sum(0), (phi * phi).sum(0), phi.abs().sum(0))
    else:
        s = ops.edge_stats(x, layer.grid, layer.k, layer.base_fun, Wb, Wc)
    return s[0], s[1], s[2], x.shape[0]


def edge_scales(layer, x: Tensor, reg_metric: str = "edge_forward_spline_n") -> Tensor:
    """Per-edge activation scale (out, in) of a KANLinear on its input x, as
    used by the regulariser (see the module docstring)."""
    if reg_metric not in REG_METRICS:
        raise ValueError(f"reg_metric must be one of {REG_METRICS}, got {reg_metric!r}")
    s1, s2, sa, n = edge_statistics(layer, x)
    if reg_metric == "edge_forward_l1":
        return (sa / max(n, 1)).T
    tiny = torch.finfo(s1.dtype).tiny ** 0.5  # keeps sqrt's gradient finite for constant (e.g. masked) edges
    if n < 2:
        raise ValueError("edge_forward_spline_n needs a batch of at least 2 samples (torch.std)")
    var = ((s2 - s1 * s1 / n) / (n - 1)).clamp_min(0)
    std_phi = torch.sqrt(var + tiny)
    xr = x.reshape(-1, layer.in_features)
    std_x = torch.std(xr, dim=0) + 0.1  # (in,)
    return (std_phi / std_x.unsqueeze(-1)).T


def reg(model, x: Tensor, lamb_l1: float = 1.0, lamb_entropy: float = 2.0, lamb_coef: float = 0.0,
        lamb_coefdiff: float = 0.0, reg_metric: str = "edge_forward_spline_n", inputs: list[Tensor] | None = None):
    """The regularisation of a KAN on inputs x (differentiable). ``inputs``:
    the per-layer inputs, if the caller already has them with autograd."""
    if inputs is None:
        inputs = [x.reshape(-1, model.width[0])]
        for l in range(model.depth - 1):
            inputs.append(model.layer_forward(l, inputs[-1]))
    total = x.new_zeros(())
    for layer, xl in zip(model.act_fun, inputs):
        if lamb_l1 != 0 or lamb_entropy != 0:
            S = edge_scales(layer, xl, reg_metric)
            p_row = S / (S.sum(dim=1, keepdim=True) + 1)
            p_col = S / (S.sum(dim=0, keepdim=True) + 1)
            ent_row = -torch.mean(torch.sum(p_row * torch.log2(p_row + 1e-4), dim=1))
            ent_col = -torch.mean(torch.sum(p_col * torch.log2(p_col + 1e-4), dim=0))
            total = total + lamb_l1 * S.sum() + lamb_entropy * (ent_row + ent_col)
        if lamb_coef != 0:
            total = total + lamb_coef * torch.sum(torch.mean(torch.abs(layer.coef), dim=1))
        if lamb_coefdiff != 0:
            total = total + lamb_coefdiff * torch.sum(torch.mean(torch.abs(torch.diff(layer.coef)), dim=1))
    return total
