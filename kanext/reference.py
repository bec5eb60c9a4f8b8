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
    "base_derivative",
    "kan_linear_eval",
    "kan_linear_transpose",
    "kan_linear_wgrad",
    "spline_activation_eval",
    "spline_activation_wgrad",
    "edge_product",
    "edge_product_wgrad",
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


def spline_basis_deriv(x: Tensor, grid: Tensor, k: int, order: int = 1) -> Tensor:
    """d^order/dx^order of :func:`spline_basis` over the whole knot vector:
    from the order-(k - order) bases, `order` steps of
    d/dx B_{g,p} = p (B_{g,p-1} / (t_{g+p}-t_g) - B_{g+1,p-1} / (t_{g+p+1}-t_{g+1})); zero beyond k."""
    if order > k:
        return torch.zeros(x.shape[0], x.shape[1], grid.shape[1] - k - 1, dtype=x.dtype, device=x.device)
    D = _bases_all_orders(x, grid, k - order)[k - order]
    t = grid.unsqueeze(0)
    for p in range(k - order + 1, k + 1):
        D = p * (D[..., :-1] / (t[..., p:-1] - t[..., : -(p + 1)]) - D[..., 1:] / (t[..., p + 1 :] - t[..., 1:-p]))
    return D


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


def base_derivative(name: str, x: Tensor, order: int) -> Tensor:
    """The order-th derivative of the base function, by nested autograd of
    :func:`base_function` (independent of the kernels' closed form)."""
    xs = x.detach().clone().requires_grad_()
    with torch.enable_grad():
        f = base_function(name, xs)
        for _ in range(order):
            if not f.requires_grad:
                return torch.zeros_like(x)
            (f,) = torch.autograd.grad(f.sum(), xs, create_graph=True)
    return f.detach()


def _edge_terms(x: Tensor, grid: Tensor, k: int, base: str, order: int):
    """(order-m bases (N, in, G+k), base term (N, in)), NaN entries as 0."""
    nan = torch.isnan(x)
    xc = torch.where(nan, torch.zeros_like(x), x)
    B = spline_basis(xc, grid, k) if order == 0 else spline_basis_deriv(xc, grid, k, order)
    b = base_derivative(base, xc, order)
    keep = (~nan).to(x.dtype)
    return B * keep.unsqueeze(-1), b * keep, nan


def kan_linear_eval(x, v, grid, k, base, Wb, Wc, order):
    """y[n,j] = sum_i v[n,i] phi^(m)_ij(x[n,i]); NaN x makes the row NaN."""
    B, b, nan = _edge_terms(x, grid, k, base, order)
    w = torch.ones_like(x) if v is None else v
    y = (w * b) @ Wb + torch.einsum("nig,igj->nj", w.unsqueeze(-1) * B, Wc)
    return torch.where(nan.any(1, keepdim=True), torch.full_like(y, float("nan")), y)


def kan_linear_transpose(dy, x, grid, k, base, Wb, Wc, order):
    """gx[n,i] = sum_j dy[n,j] phi^(m)_ij(x[n,i]); NaN where x is NaN."""
    B, b, nan = _edge_terms(x, grid, k, base, order)
    gx = b * (dy @ Wb.T) + torch.einsum("nig,igj,nj->ni", B, Wc, dy)
    return torch.where(nan, torch.full_like(gx, float("nan")), gx)


def kan_linear_wgrad(dy, x, v, grid, k, base, order):
    """(sum_n v dy b^(m), sum_n v dy B^(m)); NaN x add nothing."""
    B, b, _ = _edge_terms(x, grid, k, base, order)
    w = torch.ones_like(x) if v is None else v
    return (w * b).T @ dy, torch.einsum("nig,nj->igj", w.unsqueeze(-1) * B, dy)


def spline_activation_eval(z, grid, k, base, coef, scale_base, scale_sp, order):
    """scale_base b^(m)(z) + scale_sp sum_g coef B_g^(m)(z); NaN z gives NaN."""
    B, b, nan = _edge_terms(z, grid, k, base, order)
    y = scale_base * b + scale_sp * torch.einsum("ncg,cg->nc", B, coef)
    return torch.where(nan, torch.full_like(y, float("nan")), y)


def spline_activation_wgrad(gy, z, grid, k, base, order):
    """(sum_n gy B^(m)(z) (C, G+k), sum_n gy b^(m)(z) (C,)); NaN z add nothing."""
    B, b, _ = _edge_terms(z, grid, k, base, order)
    return torch.einsum("ncg,nc->cg", B, gy), (gy * b).sum(0)


def _edge_weights(x, grid, k, base, Wb, Wc, mode, order):
    """(N, in, out): sign(phi) (mode 0) or phi^(order) (mode 1) with weights
    (Wb, Wc), materialised; 0 where x is NaN."""
    B, b, _ = _edge_terms(x, grid, k, base, 0 if mode == 0 else order)
    phi = b.unsqueeze(-1) * Wb + torch.einsum("nig,igj->nij", B, Wc)
    return torch.sign(phi) if mode == 0 else phi


def edge_product(x, grid, k, base, Wb, Wc, Vb, Vc, mode, c, a):
    """P[n,i] = sum_j w_ij psi^(a)_ij: w = sign(phi) (mode 0) or phi^(c) (mode 1)
    with weights W, psi with weights V; 0 where x is NaN."""
    w = _edge_weights(x, grid, k, base, Wb, Wc, mode, c)
    return (w * _edge_weights(x, grid, k, base, Vb, Vc, 1, a)).sum(-1)


def edge_product_wgrad(x, u, grid, k, base, Wb, Wc, mode, c, a):
    """(sum_n u w b^(a) (in, out), sum_n u w B_g^(a) (in, G+k, out)); NaN x add nothing."""
    w = _edge_weights(x, grid, k, base, Wb, Wc, mode, c)
    if u is not None:
        w = w * u.unsqueeze(-1)
    B, b, _ = _edge_terms(x, grid, k, base, a)
    return torch.einsum("ni,nij->ij", b, w), torch.einsum("nig,nij->igj", B, w)
