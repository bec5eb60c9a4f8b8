"""Sparsity regularisation of KAN edges (the paper's section 2.5, pykan's reg).

Per layer, every edge i -> j gets a scale from the batch statistics of its
activation phi_ij(x_i). These come from the fused ``edge_stats`` op, which
reduces over the batch without forming an (N, in, out) tensor:

- ``'edge_forward_spline_n'`` (pykan's default): std_n(phi_ij) / (std_n(x_i) + 0.1),
  with torch.std's unbiased estimator, as pykan computes it;
- ``'edge_forward_l1'`` (the paper's |phi_ij|_1): mean_n |phi_ij(x_i)|;
- pykan's other metrics, on the whole edge (spline path + symbolic function):
  ``'edge_forward_spline_u'`` std_n(phi_ij) (unnormalised),
  ``'edge_forward_sum'`` std_n(phi_ij) / (std_n(x_i) + 0.1) (pykan detaches
  this one, so there it adds no gradient; here it is differentiable),
  ``'edge_backward'`` pykan's backward edge attribution scores and
  ``'node_backward'`` pykan's node attribution matrices (one per layer l >= 1:
  each input's score for each node of layer l), both computed
  differentiably from the std_n(phi_ij) and the layers' output stds.
  Symbolic edges are evaluated densely, only those ((N, n_fixed) values).

With those scales S (out, in), per layer:

    reg_l = lamb_l1 * sum S + lamb_entropy * (row entropy + column entropy)

where the entropies are pykan's: p = S / (sum over the row or column + 1),
entropy = -mean(sum p log2(p + 1e-4)). Then, over layers,
lamb_coef * sum_i mean_j |coef| and lamb_coefdiff * the same of |diff(coef)|.
"""
from __future__ import annotations

import torch
from torch import Tensor

from . import dense, ops
from .attribution import propagate_scores, subnode_index

__all__ = ["reg", "edge_scales", "edge_statistics", "REG_METRICS"]

REG_METRICS = ("edge_forward_spline_n", "edge_forward_l1", "edge_forward_spline_u", "edge_forward_sum",
               "edge_backward", "node_backward")
_SPLINE_METRICS = ("edge_forward_spline_n", "edge_forward_l1")


def edge_statistics(layer, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(sum, sum of squares, sum of |.|) of phi_ij(x_i) over the batch, each
    (in, out), and the batch size, for a KANLinear on its input x (N, in).
    Differentiable in the layer's parameters and in x. 16-bit layers and
    inputs are reduced in float32 (the sums are float32): a 16-bit sum of
    squares overflows or cancels."""
    x = x.reshape(-1, layer.in_features)
    Wb, Wc = layer.folded_weights()
    grid = layer.grid
    if x.dtype in _HALF:
        x, Wb, Wc, grid = x.float(), Wb.float(), Wc.float(), grid.float()
    if callable(layer.base_fun):
        # The kernels only know built-in base functions: add the base term here
        # (an (N, in, out) tensor, only for callable bases).
        B = ops.spline_basis(x, grid, layer.k)
        phi = layer.base_fun(x).unsqueeze(-1) * Wb + torch.einsum("nig,igj->nij", B, Wc)
        s = (phi.sum(0), (phi * phi).sum(0), phi.abs().sum(0))
    else:
        s = ops.edge_stats(x, grid, layer.k, layer.base_fun, Wb, Wc)
    return s[0], s[1], s[2], x.shape[0]


_HALF = (torch.float16, torch.bfloat16)


def _sqrt_floor(dtype: torch.dtype) -> float:
    """Added to a variance before sqrt, to keep sqrt's gradient finite for
    constant (e.g. masked) edges: float32's tiny ** 0.5 (1e-19) for 16-bit
    models too, whose statistics are float32 (float16's would floor every
    std at 0.088)."""
    return torch.finfo(torch.float32 if dtype in _HALF else dtype).tiny ** 0.5


def edge_scales(layer, x: Tensor, reg_metric: str = "edge_forward_spline_n") -> Tensor:
    """Per-edge activation scale (out, in) of a KANLinear on its input x, as
    used by the regulariser (see the module docstring)."""
    if reg_metric not in _SPLINE_METRICS:
        raise ValueError(f"reg_metric must be one of {_SPLINE_METRICS} for a layer alone, got {reg_metric!r}")
    s1, s2, sa, n = edge_statistics(layer, x)
    if reg_metric == "edge_forward_l1":
        return (sa / max(n, 1)).T.to(x.dtype)
    if n < 2:
        raise ValueError("edge_forward_spline_n needs a batch of at least 2 samples (torch.std)")
    var = ((s2 - s1 * s1 / n) / (n - 1)).clamp_min(0)
    std_phi = torch.sqrt(var + _sqrt_floor(x.dtype))
    xr = x.reshape(-1, layer.in_features).to(s1.dtype)
    std_x = torch.std(xr, dim=0) + 0.1  # (in,)
    return (std_phi / std_x.unsqueeze(-1)).T.to(x.dtype)


def reg(model, x: Tensor, lamb_l1: float = 1.0, lamb_entropy: float = 2.0, lamb_coef: float = 0.0,
        lamb_coefdiff: float = 0.0, reg_metric: str = "edge_forward_spline_n", inputs: list[Tensor] | None = None):
    """The regularisation of a KAN on inputs x (differentiable). ``inputs``:
    the per-layer inputs, if the caller already has them with autograd."""
    if inputs is None:
        inputs = [x.reshape(-1, model.width[0])]
        for l in range(model.depth - 1):
            inputs.append(model.layer_forward(l, inputs[-1]))
    if reg_metric not in REG_METRICS:
        raise ValueError(f"reg_metric must be one of {REG_METRICS}, got {reg_metric!r}")
    total = x.new_zeros(())
    if reg_metric not in _SPLINE_METRICS:
        if lamb_l1 != 0 or lamb_entropy != 0:
            for S in _whole_edge_scales(model, inputs, reg_metric):
                total = total + _l1_entropy(S, lamb_l1, lamb_entropy)
        return total + _coef_terms(model, lamb_coef, lamb_coefdiff)
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


def _l1_entropy(S: Tensor, lamb_l1: float, lamb_entropy: float) -> Tensor:
    p_row = S / (S.sum(dim=1, keepdim=True) + 1)
    p_col = S / (S.sum(dim=0, keepdim=True) + 1)
    ent_row = -torch.mean(torch.sum(p_row * torch.log2(p_row + 1e-4), dim=1))
    ent_col = -torch.mean(torch.sum(p_col * torch.log2(p_col + 1e-4), dim=0))
    return lamb_l1 * S.sum() + lamb_entropy * (ent_row + ent_col)


def _coef_terms(model, lamb_coef: float, lamb_coefdiff: float):
    total = 0.0
    for layer in model.act_fun:
        if lamb_coef != 0:
            total = total + lamb_coef * torch.sum(torch.mean(torch.abs(layer.coef), dim=1))
        if lamb_coefdiff != 0:
            total = total + lamb_coefdiff * torch.sum(torch.mean(torch.abs(torch.diff(layer.coef)), dim=1))
    return total


def _whole_edge_std(model, l: int, x: Tensor) -> Tensor:
    """(out, in) std_n (unbiased) of every whole edge activation of layer l on
    its inputs x: spline path from the fused statistics, symbolic edges added
    densely (only the fixed ones, and none where symbolic_enabled is False,
    as the forward skips them)."""
    layer, sym = model.act_fun[l], model.symbolic_fun[l]
    s1, s2, _, n = edge_statistics(layer, x)
    if n < 2:
        raise ValueError("pykan's reg metrics need a batch of at least 2 samples (torch.std)")
    tiny = _sqrt_floor(x.dtype)
    var = ((s2 - s1 * s1 / n) / (n - 1)).clamp_min(0)
    std = torch.sqrt(var + tiny).T  # (out, in)
    for name, (J, I) in (sym.groups() if getattr(model, "symbolic_enabled", True) else ()):
        phi = dense.edge_values(layer, x, I, J) + sym.mask[J, I] * sym._group_values(x[:, I], name, (J, I))
        std = std.index_put((J, I), torch.sqrt(phi.to(std.dtype).var(dim=0) + tiny))
    return std.to(x.dtype)


def _whole_edge_scales(model, inputs: list[Tensor], reg_metric: str) -> list[Tensor]:
    """The per-layer matrices that pykan's reg sums for reg_metric (see the module docstring)."""
    E = [_whole_edge_std(model, l, xl) for l, xl in enumerate(inputs)]
    if reg_metric == "edge_forward_spline_u":
        return E
    if reg_metric == "edge_forward_sum":
        return [e / (torch.std(xl, dim=0) + 0.1).unsqueeze(0) for e, xl in zip(E, inputs)]
    with torch.no_grad():  # the layers' output stds before the affines (pykan detaches them)
        S = []
        for l, xl in enumerate(inputs):
            if getattr(model, "mult_arities", None) and model.mult_arities[l + 1]:
                S.append(torch.std(model.subnode_values(l, xl), dim=0))  # subnodes, before the affines
                continue
            y = model.layer_forward(l, xl)
            a = (model.node_scale[l] * model.subnode_scale[l]).abs()
            S.append(torch.where(a > 0, torch.std(y, dim=0) / torch.where(a > 0, a, torch.ones_like(a)),
                                 torch.zeros_like(a)))

    ref = E[0]
    sub = lambda l: subnode_index(model, l)  # noqa: E731
    nodes, edges = propagate_scores(E, S, torch.eye(model.width[-1], dtype=ref.dtype, device=ref.device), model.depth,
                                    sub)
    if reg_metric == "edge_backward":
        return [e.mean(dim=0) for e in edges]
    node_scores = [s.mean(dim=0) for s in nodes]
    return [propagate_scores(E, S, torch.diag(node_scores[l]), l, sub)[0][0] for l in range(1, model.depth + 1)]
