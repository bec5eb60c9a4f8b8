"""pykan's spline functions (``kan.spline``) under pykan's names and
arguments, computed with kanext's kernels: ``from kanext.spline import
B_batch, coef2curve, curve2coef, extend_grid`` in place of ``from
kan.spline import ...``.

These form dense tensors on purpose, as pykan's do: B_batch is (batch, in,
G+k) and coef2curve (batch, in, out). The layers never form them (see
:class:`kanext.KANLinear`); use these for analysis and for code ported
from pykan. ``grid`` is the extended knot grid of every input, (in,
G+2k+1), strictly increasing (a degenerate grid is an error here, where
pykan returns zeros through nan_to_num).
"""
from __future__ import annotations

import torch
from torch import Tensor

from . import ops
from .grid import curve_to_coef, extend_grid as _extend_grid

__all__ = ["B_batch", "coef2curve", "curve2coef", "extend_grid"]


def B_batch(x: Tensor, grid: Tensor, k: int = 0, extend: bool = True, device="cpu") -> Tensor:
    """B-spline bases: x (batch, in), grid (in, G+2k+1) -> (batch, in, G+k),
    pykan's values (the same half-open intervals at the knots; k from 0 to
    5). Computed by :func:`kanext.ops.spline_basis` in x's dtype, on x's
    device: ``extend`` and ``device`` are pykan's arguments, unused there
    as here. pykan returns a bool tensor for k=0; this returns x's dtype."""
    del extend, device
    return ops.spline_basis(x, grid, k)


def coef2curve(x_eval: Tensor, grid: Tensor, coef: Tensor, k: int, device="cpu") -> Tensor:
    """Spline curves: x_eval (batch, in), grid (in, G+2k+1), coef (in, out,
    G+k) -> (batch, in, out), y[b, i, o] = sum_g B_g(x[b, i]) coef[i, o, g]
    (pykan's). ``device`` is unused, as in pykan."""
    del device
    if coef.dim() != 3 or coef.shape[0] != grid.shape[0] or coef.shape[2] != grid.shape[1] - k - 1:
        raise ValueError(f"coef2curve: expected coef of shape (in={grid.shape[0]}, out, G+k={grid.shape[1] - k - 1}) "
                         f"for grid {tuple(grid.shape)} and k={k}, got {tuple(coef.shape)}")
    return torch.einsum("big,iog->bio", B_batch(x_eval, grid, k), coef.to(x_eval.device))


def curve2coef(x_eval: Tensor, y_eval: Tensor, grid: Tensor, k: int) -> Tensor:
    """Least-squares spline coefficients: x_eval (batch, in), y_eval (batch,
    in, out), grid (in, G+2k+1) -> coef (in, out, G+k) (pykan's). Solved
    per input by the pseudo-inverse of its basis matrix: pykan's lstsq
    solution where the bases have full column rank, the minimum-norm one
    where samples leave some bases empty."""
    if y_eval.dim() != 3 or y_eval.shape[:2] != x_eval.shape:
        raise ValueError(f"curve2coef: expected y_eval of shape (batch, in, out) = {tuple(x_eval.shape)} + (out,), "
                         f"got {tuple(y_eval.shape)}")
    return curve_to_coef(x_eval, y_eval, grid, k)


def extend_grid(grid: Tensor, k_extend: int = 0) -> Tensor:
    """Adds k_extend knots on each side of every row of grid (in, m), spaced
    by the row's mean interval (pykan's; :func:`kanext.grid.extend_grid`)."""
    return _extend_grid(grid, k_extend)
