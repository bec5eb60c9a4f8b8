"""Pure-PyTorch twins of every kanext op: slow, obviously correct, the ground
truth of the tests. They form the full (N, in, G+k) basis tensor on purpose.

The B-spline recursion here runs over the whole extended knot vector exactly as
pykan's ``B_batch`` does (Cox-de Boor from the order-0 half-open indicators),
so it is independent of the kernels' local triangle.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "spline_basis",
    "spline_basis_deriv",
    "base_function",
    "kan_linear",
    "kan_layer",
    "fold_spline_weights",
    "edge_activations",
    "edge_stats",
    "spline_activation",
]


def _bases_all_orders(x: Tensor, grid: Tensor, k: int) -> list[Tensor]:
    """[B^0, ..., B^k]: order-j bases of shape (N, in, M-1-j)."""
    xe = x.unsqueeze(-1)  # (N, in, 1)
    t = grid.unsqueeze(0)  # (1, in, M)
    B = ((xe >= t[..., :-1]) & (xe < t[..., 1:])).to(x.dtype)
    out = [B]
    for j in range(1, k + 1):
        left = (xe - t[..., : -(j + 1)]) / (t[..., j:-1] - t[..., : -(j + 1)])
        right = (t[..., j + 1 :] - xe) / (t[..., j + 1 :] - t[..., 1:-j])
        # x = +-inf or NaN gives inf * 0 = NaN here; those bases are 0 (outside
        # the grid), as pykan's nan_to_num makes them. Gradients pass through
        # unchanged everywhere else, knots included.
        B = torch.nan_to_num(left * B[..., :-1] + right * B[..., 1:], nan=0.0)
        out.append(B)
    return out


def spline_basis(x: Tensor, grid: Tensor, k: int) -> Tensor:
    """(N, in) x, (in, G+2k+1) grid -> (N, in, G+k) order-k B-spline values."""
    return _bases_all_orders(x, grid, k)[k]


def spline_basis_deriv(x: Tensor, grid: Tensor, k: int) -> Tensor:
    """d/dx of :func:`spline_basis`: k (B^{k-1}_g / (t_{g+k}-t_g) - B^{k-1}_{g+1} / (t_{g+k+1}-t_{g+1}))."""
    if k == 0:
        return torch.zeros(x.shape[0], x.shape[1], grid.shape[1] - 1, dtype=x.dtype, device=x.device)
    Bm = _bases_all_orders(x, grid, k - 1)[k - 1]  # (N, in, G+k+1)
    t = grid.unsqueeze(0)
    a = Bm[..., :-1] / (t[..., k:-1] - t[..., : -(k + 1)])
    b = Bm[..., 1:] / (t[..., k + 1 :] - t[..., 1:-k])
    return k * (a - b)


def base_function(name: str, x: Tensor) -> Tensor:
    if name == "silu":
        return F.silu(x)
    if name == "identity":
        return x
    if name == "zero":
        return torch.zeros_like(x)
    raise ValueError(f"unknown base function {name!r}")


def kan_linear(x: Tensor, grid: Tensor, k: int, base: str, Wb: Tensor, Wc: Tensor) -> Tensor:
    """y[n,j] = sum_i b(x[n,i]) Wb[i,j] + sum_{i,g} B_g(x[n,i]) Wc[i,g,j], with the NaN-row policy."""
    B = spline_basis(x, grid, k)
    y = base_function(base, x) @ Wb + torch.einsum("nig,igj->nj", B, Wc)
    nan_rows = torch.isnan(x).any(dim=1, keepdim=True)
    return torch.where(nan_rows, torch.full_like(y, float("nan")), y)


def edge_activations(x: Tensor, grid: Tensor, k: int, base: str, Wb: Tensor, Wc: Tensor) -> Tensor:
    """phi (N, in, out): phi[n,i,j] = b(x[n,i]) Wb[i,j] + sum_g B_g(x[n,i]) Wc[i,g,j]
    (the terms kan_linear sums over i); 0 where x is NaN, with gradient 0 there."""
    nan = torch.isnan(x)
    xc = torch.where(nan, torch.zeros_like(x), x)  # keeps NaN out of the gradient too
    phi = base_function(base, xc).unsqueeze(-1) * Wb + torch.einsum("nig,igj->nij", spline_basis(xc, grid, k), Wc)
    return torch.where(nan.unsqueeze(-1), torch.zeros_like(phi), phi)


def edge_stats(x: Tensor, grid: Tensor, k: int, base: str, Wb: Tensor, Wc: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(sum_n phi, sum_n phi^2, sum_n |phi|), each (in, out), from the materialised phi."""
    phi = edge_activations(x, grid, k, base, Wb, Wc)
    return phi.sum(0), (phi * phi).sum(0), phi.abs().sum(0)


def fold_spline_weights(coef: Tensor, scale: Tensor) -> Tensor:
    """coef (in, out, G+k), scale (in, out) -> (in, G+k, out): scale[i,j] coef[i,j,g]."""
    return (scale.unsqueeze(-1) * coef).transpose(1, 2).contiguous()


def kan_layer(x, grid, k, base, coef, scale_base, scale_sp, mask):
    """pykan's KANLayer forward from its own parameters (no folding): the
    explicit (N, in, out) sum that the fused op must equal."""
    B = spline_basis(x, grid, k)
    spline = torch.einsum("nig,iog->nio", B, coef)
    b = base_function(base, x) if isinstance(base, str) else base(x)
    y = mask[None] * (scale_base[None] * b[:, :, None] + scale_sp[None] * spline)
    return y.sum(dim=1)


def spline_activation(z: Tensor, grid: Tensor, k: int, base: str, coef: Tensor, scale_base: Tensor,
                      scale_sp: Tensor) -> Tensor:
    """y[n,c] = scale_base[c] b(z[n,c]) + scale_sp[c] sum_g coef[c,g] B_g(z[n,c]) from the full
    (N, C, G+k) basis tensor; NaN z gives NaN y (whatever the base)."""
    B = spline_basis(z, grid, k)
    y = scale_base * base_function(base, z) + scale_sp * torch.einsum("ncg,cg->nc", B, coef)
    return torch.where(torch.isnan(z), torch.full_like(y, float("nan")), y)
