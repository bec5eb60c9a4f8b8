"""Argument checks shared by the spline modules (KANLinear, SplineActivation,
LANLayer, KAN, LAN): one message format for every bad argument, saying what
was expected and what was given."""
from __future__ import annotations

import torch
from torch import Tensor

from .ops import BASE_IDS

__all__ = ["check_int", "check_spline_config", "index_list", "per_layer", "width_list"]


def check_int(owner: str, name: str, v, lo: int) -> None:
    """Raises ValueError unless v is an int (not a bool) >= lo."""
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise ValueError(f"{owner}: {name} must be an int >= {lo}, got {v!r}")


def check_spline_config(owner: str, grid, k, grid_range, base_fun) -> tuple[float, float]:
    """The checks every spline module makes of its grid size, order, grid
    range and base function; returns (low, high)."""
    check_int(owner, "grid", grid, 1)
    check_int(owner, "k", k, 0)
    if k > 5:
        raise ValueError(f"{owner}: spline order k must be in [0, 5], got k={k}")
    lo, hi = (float(v) for v in grid_range)
    if not lo < hi:
        raise ValueError(f"{owner}: grid_range must be (low, high) with low < high, got {tuple(grid_range)}")
    if isinstance(base_fun, str) and base_fun not in BASE_IDS:
        raise ValueError(f"{owner}: base_fun must be one of {sorted(BASE_IDS)} or a callable, got {base_fun!r}")
    return lo, hi


def per_layer(owner: str, name: str, v, depth: int, kind: type = int) -> list:
    """v as one value per layer: a single value (of type kind) is repeated,
    a sequence must have depth entries."""
    if isinstance(v, kind) and not isinstance(v, bool):
        return [v] * depth
    v = list(v)
    if len(v) != depth:
        raise ValueError(f"{owner}: {name} must be one value or a list of {depth} (one per layer), got {v!r}")
    return v


def index_list(name: str, idx, n: int) -> list[int]:
    """idx (ints, or a 1-D integer tensor) as a list of distinct ints in [0, n), at least one."""
    if isinstance(idx, Tensor):
        if idx.dim() != 1 or idx.dtype.is_floating_point or idx.dtype == torch.bool:
            raise ValueError(f"{name}: expected a 1-D integer tensor or a sequence of ints, got a "
                             f"{idx.dtype} tensor of shape {tuple(idx.shape)}")
        idx = idx.tolist()
    try:
        out = [int(i) for i in idx]
        bad = [i for i in idx if isinstance(i, bool) or int(i) != i]
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a sequence of ints, got {idx!r}") from None
    if bad:
        raise ValueError(f"{name}: expected ints, got {bad[:3]!r}")
    if not out:
        raise ValueError(f"{name}: expected at least one index (a layer needs >= 1 input and output), got none")
    if any(i < 0 or i >= n for i in out):
        raise ValueError(f"{name}: indices must be in [0, {n}), got {out}")
    if len(set(out)) != len(out):
        raise ValueError(f"{name}: indices must be distinct, got {out}")
    return out


def width_list(owner: str, width, pykan_pairs: bool = False) -> list[int]:
    """The layer widths as a list of >= 2 positive ints. With pykan_pairs,
    pykan's [n, 0] entries (n sum nodes, no multiplication node) are accepted."""
    out = []
    for w in width:
        if pykan_pairs and isinstance(w, (list, tuple)):
            if len(w) != 2 or w[1] != 0:
                raise NotImplementedError(
                    f"{owner}: multiplication nodes are not supported yet; got width entry {list(w)} (expected [n, 0])"
                )
            w = w[0]
        if isinstance(w, bool) or not isinstance(w, int) or w < 1:
            raise ValueError(f"{owner}: widths must be positive ints, got {list(width)!r}")
        out.append(int(w))
    if len(out) < 2:
        raise ValueError(f"{owner}: width needs at least an input and an output size, got {list(width)!r}")
    return out
