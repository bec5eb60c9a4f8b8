"""Conversion from pykan models (``kan.KAN`` / ``kan.MultKAN``, ``kan.KANLayer``)."""
from __future__ import annotations

import torch
from torch import nn

from .kan import KAN
from .layers import KANLinear

__all__ = ["from_pykan"]

_BASES = ("silu", "identity", "zero")


def from_pykan(model: nn.Module) -> KAN | KANLinear:
    """A kanext model computing the same function as a pykan model.

    Accepts a pykan ``KAN``/``MultKAN`` (returns :class:`kanext.KAN`) or a single
    ``KANLayer`` (returns :class:`kanext.KANLinear`, whose forward returns only
    pykan's first output, y). Grids, coefficients, scales, masks and the node /
    subnode affines are copied as they are (trained or pruned), with the same
    dtype and device and the same ``requires_grad`` flags.

    Raises NotImplementedError, saying what is unsupported, for multiplication
    nodes, fixed symbolic edges, or an input selection (``input_id``) other than
    all inputs in order.
    """
    if _is_kan_layer(model):
        return _layer_from_pykan(model, _base_of(getattr(model, "base_fun", None)))
    for attr in ("act_fun", "width", "node_scale", "subnode_scale"):
        if not hasattr(model, attr):
            raise TypeError(f"from_pykan: expected a pykan KAN/MultKAN or KANLayer, got {type(model).__name__}")
    widths = []
    for l, w in enumerate(model.width):
        n, mult = (w[0], w[1]) if isinstance(w, (list, tuple)) else (w, 0)
        if mult:
            raise NotImplementedError(
                f"from_pykan: layer {l} has {mult} multiplication node(s); kanext does not support them yet"
            )
        widths.append(int(n))
    for l, sym in enumerate(getattr(model, "symbolic_fun", [])):
        if getattr(model, "symbolic_enabled", True) and bool((sym.mask != 0).any()):
            fixed = [tuple(ix.tolist()[::-1]) for ix in torch.nonzero(sym.mask)][:5]
            raise NotImplementedError(
                f"from_pykan: layer {l} has fixed symbolic edges (i, j) e.g. {fixed}; kanext cannot import "
                "symbolic edges yet"
            )
    input_id = getattr(model, "input_id", None)
    if input_id is not None and not torch.equal(input_id.long().cpu(), torch.arange(widths[0])):
        raise NotImplementedError(f"from_pykan: input_id {input_id.tolist()} selects inputs; only all inputs in order are supported")

    base = _base_of(getattr(model, "base_fun_name", None) or getattr(model, "base_fun", None))
    layers = [_layer_from_pykan(layer, base) for layer in model.act_fun]
    first = layers[0]
    out = KAN(widths, grid=[m.num for m in layers], k=[m.k for m in layers], base_fun=base,
              grid_range=first.grid_range, seed=0, device=first.grid.device, dtype=first.coef.dtype)
    with torch.no_grad():
        for l, layer in enumerate(layers):
            out.act_fun[l] = layer
        for name in ("node_scale", "node_bias", "subnode_scale", "subnode_bias"):
            for p, q in zip(getattr(out, name), getattr(model, name)):
                p.copy_(q)
                p.requires_grad_(q.requires_grad)
    return out


def _is_kan_layer(m) -> bool:
    return all(hasattr(m, a) for a in ("grid", "coef", "scale_base", "scale_sp", "mask")) and not hasattr(m, "act_fun")


def _base_of(b):
    if isinstance(b, str):
        if b in _BASES:
            return b
        raise NotImplementedError(f"from_pykan: unknown base function name {b!r}")
    if isinstance(b, nn.SiLU):
        return "silu"
    if isinstance(b, nn.Identity):
        return "identity"
    if callable(b):
        return b
    return "silu"


def _layer_from_pykan(layer, base) -> KANLinear:
    in_dim, out_dim = layer.coef.shape[0], layer.coef.shape[1]
    k = int(layer.k)
    G = layer.grid.shape[1] - 2 * k - 1
    t = layer.grid.detach()
    out = KANLinear(in_dim, out_dim, grid=G, k=k, grid_range=(float(t[0, k]), float(t[0, -k - 1])), base_fun=base,
                    grid_eps=float(getattr(layer, "grid_eps", 0.02)), generator=torch.Generator(), device=t.device,
                    dtype=layer.coef.dtype)
    with torch.no_grad():
        out.grid.copy_(t)
        out.mask.copy_(layer.mask)
        out.coef.copy_(layer.coef)
        out.scale_base.copy_(layer.scale_base)
        out.scale_sp.copy_(layer.scale_sp)
    for name in ("coef", "scale_base", "scale_sp"):
        getattr(out, name).requires_grad_(getattr(layer, name).requires_grad)
    return out
