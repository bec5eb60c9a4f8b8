"""Conversion between kanext and pykan models (``kan.KAN`` / ``kan.MultKAN``,
``kan.KANLayer``): :func:`from_pykan` and its inverse :func:`to_pykan`."""
from __future__ import annotations

import torch
from torch import nn

from .kan import KAN
from .layers import KANLinear
from .symbolic.library import SYMBOLIC_LIB

__all__ = ["from_pykan", "to_pykan"]

_BASES = ("silu", "identity", "zero")


def from_pykan(model: nn.Module) -> KAN | KANLinear:
    """A kanext model computing the same function as a pykan model.

    Accepts a pykan ``KAN``/``MultKAN`` (returns :class:`kanext.KAN`) or a single
    ``KANLayer`` (returns :class:`kanext.KANLinear`, whose forward returns only
    pykan's first output, y). Grids, coefficients, scales, masks, the node /
    subnode affines and the fixed symbolic edges (names, masks, affines) are
    copied as they are (trained or pruned), with the same dtype and device and
    the same ``requires_grad`` flags.

    Raises NotImplementedError, saying what is unsupported, for multiplication
    nodes or an input selection (``input_id``) other than all inputs in order,
    and ValueError for a symbolic function that kanext's library lacks
    (register it with :func:`kanext.symbolic.add_symbolic` first).
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
    symbolic = getattr(model, "symbolic_fun", None) if getattr(model, "symbolic_enabled", True) else None
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
        for l, sym in enumerate(symbolic or []):
            _symbolic_from_pykan(out.symbolic_fun[l], sym, l)
    return out


def _symbolic_from_pykan(dst, sym, l: int) -> None:
    """Copies a pykan Symbolic_KANLayer's fixed edges (mask != 0) into a kanext SymbolicLayer."""
    names = [["0"] * dst.in_features for _ in range(dst.out_features)]
    for j, i in torch.nonzero(sym.mask).tolist():
        name = sym.funs_name[j][i]
        if name not in SYMBOLIC_LIB:
            raise ValueError(f"from_pykan: symbolic edge ({l},{i},{j}) uses {name!r}, which is not in "
                             "kanext.symbolic.SYMBOLIC_LIB; register it with kanext.symbolic.add_symbolic first")
        names[j][i] = name
    dst.mask.copy_(sym.mask)
    dst.affine.copy_(sym.affine)
    dst.funs_name = names
    dst.invalidate()


def to_pykan(model: KAN, **pykan_kwargs):
    """A pykan ``MultKAN`` computing the same function as a kanext :class:`KAN`
    (the inverse of :func:`from_pykan`), to check results in pykan.

    Grids, coefficients, scales, masks, node / subnode affines and fixed
    symbolic edges are copied, in the model's dtype and device. pykan is built
    with ``auto_save=False`` (no checkpoint folder) unless ``pykan_kwargs``
    say otherwise; they go to ``kan.MultKAN``. pykan must be installed.

    Raises NotImplementedError when pykan cannot hold the model: layers with
    different G or k (pykan has one of each), a callable base function, or a
    symbolic function missing from pykan's library.
    """
    try:
        from kan import MultKAN
        from kan.utils import SYMBOLIC_LIB as PYKAN_LIB
    except ImportError as e:
        raise ImportError("to_pykan needs pykan (pip install pykan)") from e
    if not isinstance(model, KAN):
        raise TypeError(f"to_pykan: expected a kanext.KAN, got {type(model).__name__}")
    grids, ks = {layer.num for layer in model.act_fun}, {layer.k for layer in model.act_fun}
    if len(grids) > 1 or len(ks) > 1:
        raise NotImplementedError(f"to_pykan: pykan has one G and one k for all layers; this model has G {model.grid} "
                                  f"and k {model.k}")
    bases = {layer.base_fun if isinstance(layer.base_fun, str) else None for layer in model.act_fun}
    if None in bases or len(bases) > 1:
        raise NotImplementedError("to_pykan: every layer needs the same named base function ('silu', 'identity', "
                                  "'zero'); a callable or mixed bases cannot be rebuilt in pykan")
    ref = model.act_fun[0].coef
    kwargs = dict(width=list(model.width), grid=grids.pop(), k=ks.pop(), base_fun=bases.pop(),
                  grid_range=list(model.act_fun[0].grid_range), auto_save=False, device=str(ref.device))
    kwargs.update(pykan_kwargs)
    pk = nn.Module.to(MultKAN(**kwargs), dtype=ref.dtype)  # pykan overrides .to(device) only
    with torch.no_grad():
        for src, dst in zip(model.act_fun, pk.act_fun):
            dst.grid.data = src.grid.detach().clone()
            for name in ("mask", "coef", "scale_base", "scale_sp"):
                getattr(dst, name).data.copy_(getattr(src, name).detach())
            for name in ("coef", "scale_base", "scale_sp"):
                getattr(dst, name).requires_grad_(getattr(src, name).requires_grad)
            dst.grid_eps = src.grid_eps
        for name in ("node_scale", "node_bias", "subnode_scale", "subnode_bias"):
            for p, q in zip(getattr(pk, name), getattr(model, name)):
                p.data.copy_(q.detach())
                p.requires_grad_(q.requires_grad)
        for l, (src, dst) in enumerate(zip(model.symbolic_fun, pk.symbolic_fun)):
            for j, i in src.fixed_units():
                name = src.funs_name[j][i]
                if name not in PYKAN_LIB:
                    raise NotImplementedError(f"to_pykan: symbolic edge ({l},{i},{j}) uses {name!r}, which pykan's "
                                              "library lacks (add it there with kan.utils.add_symbolic first)")
                dst.fix_symbolic(i, j, name, verbose=False)
            dst.mask.data.copy_(src.mask.detach())
            dst.affine.data.copy_(src.affine.detach())
    return pk


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
