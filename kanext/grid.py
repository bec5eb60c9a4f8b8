"""Grid adaptation and extension: new knots from data, and spline refits that
keep a layer's function.

All refits solve, per input i, the least-squares problem

    min_C || A_new C - A_old C_old ||^2 + ridge ||C||^2

over sample points, where A_old / A_new are the old and new B-spline bases at
the samples. The normal equations are accumulated in batch chunks as small
(in, nb, nb) Gram matrices, so no (N, in, out) tensor is formed, and are
solved in float64 by a batched Cholesky factorisation with a ridge that is
negligible for a well-posed system (1e-12 of the mean diagonal) and keeps
rank-deficient ones (duplicate samples, constant inputs, empty intervals)
solvable: coefficients that no sample determines go to 0 instead of
NaN or inf.
"""
from __future__ import annotations

import torch
from torch import Tensor

from . import ops

__all__ = [
    "uniform_grid", "extend_grid", "curve_to_coef", "grid_from_samples", "refit_coef", "interpolate_grid",
    "collocation_points", "is_refinement",
]

_CHUNK = 8192  # samples per Gram accumulation step


def uniform_grid(n: int, G: int, k: int, grid_range=(-1.0, 1.0), dtype=None, device=None) -> Tensor:
    """(n, G+2k+1) knots: G+1 uniform knots over grid_range plus k each side with the same spacing."""
    lo, hi = grid_range
    base = torch.linspace(lo, hi, G + 1, dtype=dtype, device=device)
    return extend_grid(base.expand(n, G + 1), k)


def extend_grid(grid: Tensor, k: int) -> Tensor:
    """Adds k knots on each side of every row of grid (n, m), spaced by the
    row's mean interval (pykan's extend_grid)."""
    h = (grid[:, -1:] - grid[:, :1]) / (grid.shape[1] - 1)
    steps = torch.arange(1, k + 1, dtype=grid.dtype, device=grid.device)
    left = grid[:, :1] - h * steps.flip(0)
    right = grid[:, -1:] + h * steps
    return torch.cat([left, grid, right], dim=1)


def curve_to_coef(x: Tensor, y: Tensor, grid: Tensor, k: int) -> Tensor:
    """Least-squares (minimum-norm) spline coefficients: x (P, in) samples,
    y (P, in, out) values, grid (in, G+2k+1) -> coef (in, out, G+k)."""
    B = ops.spline_basis(x, grid, k).permute(1, 0, 2)  # (in, P, G+k)
    pinv = torch.linalg.pinv(B)  # (in, G+k, P)
    return torch.einsum("igp,pio->iog", pinv, y)


def grid_from_samples(x: Tensor, G: int, k: int, grid_eps: float = 0.02) -> Tensor:
    """Knots for samples x (N, in): per input, G+1 knots = grid_eps * uniform(min, max)
    + (1 - grid_eps) * sample quantiles, then k knots each side with the mean spacing.

    Always strictly increasing: a constant input gets a small span around its
    value, and quantiles that coincide (duplicate samples, grid_eps = 0) are
    spread by a tiny minimum gap.
    """
    if x.dim() != 2 or x.shape[0] == 0:
        raise ValueError(f"grid_from_samples: expected samples of shape (N >= 1, in), got {tuple(x.shape)}")
    if not 0.0 <= grid_eps <= 1.0:
        raise ValueError(f"grid_from_samples: grid_eps must be in [0, 1], got {grid_eps}")
    xs = x.detach().to(torch.float64)
    finite = torch.isfinite(xs)
    if not bool(finite.all()):
        raise ValueError("grid_from_samples: samples contain NaN or inf; drop those rows first")
    xs = torch.sort(xs, dim=0).values
    N = xs.shape[0]
    ids = [int(N / G * q) for q in range(G)] + [N - 1]
    adaptive = xs[ids, :].T  # (in, G+1), non-decreasing
    lo, hi = adaptive[:, :1], adaptive[:, -1:]
    span = hi - lo
    scale = torch.maximum(lo.abs(), hi.abs()).clamp_min(1.0)
    tiny = span <= 1e-9 * scale  # constant (or nearly constant) input
    half = torch.where(tiny, 1e-3 * scale, torch.zeros_like(scale))
    lo, hi = lo - half, hi + half
    adaptive = torch.where(tiny, lo + (hi - lo) * torch.linspace(0, 1, G + 1, dtype=xs.dtype), adaptive)
    uniform = lo + (hi - lo) * torch.linspace(0, 1, G + 1, dtype=xs.dtype)
    knots = grid_eps * uniform + (1 - grid_eps) * adaptive
    gap = (hi - lo) * 1e-6 / G
    for q in range(1, G + 1):  # enforce strict increase (G is small; this is not a hot path)
        knots[:, q] = torch.maximum(knots[:, q], knots[:, q - 1] + gap[:, 0])
    return extend_grid(knots, k).to(x.dtype)


def interpolate_grid(grid: Tensor, k: int, G_new: int, k_new: int | None = None) -> Tensor:
    """pykan's grid for a finer (or coarser) layer: the G_new+1 interior knots
    follow the old interior knots (grid of order k) piecewise linearly at
    evenly spaced positions, then k_new (default k) knots are added each side.
    A uniform grid stays uniform; with G_new a multiple of G every old
    interior knot is a new knot."""
    interior = grid[:, k : grid.shape[1] - k].to(torch.float64)  # (in, G+1)
    G = interior.shape[1] - 1
    pos = torch.linspace(0, G, G_new + 1, dtype=torch.float64)
    left = pos.floor().long().clamp(max=G - 1)
    frac = (pos - left).unsqueeze(0)
    knots = interior[:, left] * (1 - frac) + interior[:, left + 1] * frac
    return extend_grid(knots, k if k_new is None else k_new).to(grid.dtype)


def is_refinement(old_grid: Tensor, k_old: int, new_grid: Tensor, k_new: int) -> bool:
    """True when, for every input, each old interior knot is (to rounding) a new
    interior knot and the orders match: the new spline space on the grid
    range then contains the old one, and a refit is exact there."""
    if k_old != k_new or old_grid.shape[0] != new_grid.shape[0]:
        return False
    old = old_grid[:, k_old : old_grid.shape[1] - k_old].to(torch.float64)
    new = new_grid[:, k_new : new_grid.shape[1] - k_new].to(torch.float64)
    tol = 1e-9 * (new[:, -1:] - new[:, :1])
    dist = (old.unsqueeze(-1) - new.unsqueeze(1)).abs().min(dim=-1).values
    return bool((dist <= tol).all())


def collocation_points(grid: Tensor, k: int, per_interval: int | None = None) -> Tensor:
    """(P, in) points inside each input's grid range: per_interval (default
    k+2) distinct points in every interior interval. Enough for a spline refit
    of order <= k on that grid to be exact (Schoenberg-Whitney)."""
    per = per_interval or (k + 2)
    interior = grid[:, k : grid.shape[1] - k].to(torch.float64)
    a, b = interior[:, :-1], interior[:, 1:]  # (in, G)
    u = (torch.arange(per, dtype=torch.float64) + 0.5) / per  # strictly inside each interval
    pts = a.unsqueeze(-1) + (b - a).unsqueeze(-1) * u  # (in, G, per)
    return pts.reshape(grid.shape[0], -1).T.contiguous().to(grid.dtype)


def refit_coef(x: Tensor, old_grid: Tensor, k_old: int, old_coef: Tensor, new_grid: Tensor, k_new: int,
               ridge: float = 1e-12) -> Tensor:
    """New coef (in, out, G'+k') whose splines on new_grid best match, in least
    squares over the samples x (N, in), the splines old_coef (in, out, G+k) on
    old_grid. Rows of x with a NaN or inf are ignored."""
    if x.dim() != 2 or x.shape[1] != old_grid.shape[0]:
        raise ValueError(f"refit_coef: expected samples of shape (N, {old_grid.shape[0]}), got {tuple(x.shape)}")
    f64 = torch.float64
    x = x.detach().to(f64)
    x = x[torch.isfinite(x).all(dim=1)]
    og, ng = old_grid.detach().to(f64), new_grid.detach().to(f64)
    n_in = og.shape[0]
    nb_new = ng.shape[1] - k_new - 1
    gram = torch.zeros(n_in, nb_new, nb_new, dtype=f64, device=x.device)
    cross = torch.zeros(n_in, nb_new, og.shape[1] - k_old - 1, dtype=f64, device=x.device)
    for c in range(0, x.shape[0], _CHUNK):
        xc = x[c : c + _CHUNK]
        A_new = ops.spline_basis(xc, ng, k_new)  # (n, in, nb_new)
        A_old = ops.spline_basis(xc, og, k_old)
        gram += torch.einsum("nip,niq->ipq", A_new, A_new)
        cross += torch.einsum("nip,niq->ipq", A_new, A_old)
    rhs = torch.einsum("ipq,ijq->ipj", cross, old_coef.detach().to(f64))  # (in, nb_new, out)
    sol = _ridge_solve(gram, rhs, ridge)
    return sol.permute(0, 2, 1).contiguous().to(old_coef.dtype)


def _ridge_solve(gram: Tensor, rhs: Tensor, ridge: float) -> Tensor:
    """Solves (gram + lam I) X = rhs per batch entry, lam = ridge * mean diag
    (plus a floor), growing lam until the Cholesky factorisation succeeds."""
    n = gram.shape[-1]
    eye = torch.eye(n, dtype=gram.dtype, device=gram.device)
    scale = gram.diagonal(dim1=-2, dim2=-1).mean(-1).clamp_min(1e-300)[:, None, None]
    lam = ridge
    for _ in range(12):
        L, info = torch.linalg.cholesky_ex(gram + lam * scale * eye)
        if bool((info == 0).all()):
            return torch.cholesky_solve(rhs, L)
        lam *= 100.0
    # Last resort (never reached for finite input): minimum-norm least squares.
    return torch.linalg.pinv(gram) @ rhs
