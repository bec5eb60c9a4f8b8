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

    Multiplication nodes (MultKAN widths ``[n_sum, n_mult]`` and
    ``mult_arity``) carry over: the kanext model has the same nodes,
    subnodes and arities.

    Pruned inputs: a pykan model made by ``prune_input`` keeps the full input
    and selects the columns ``model.input_id`` in its forward; the kanext
    model reads the selected columns, as kanext's own
    :meth:`KAN.prune_input` result does: ``ours(x[:, model.input_id])``
    equals ``model(x)``. Its ``input_id`` records the selection.

    Raises ValueError for a symbolic function that kanext's library lacks
    (register it with :func:`kanext.symbolic.add_symbolic` first).
    """
    if _is_kan_layer(model):
        return _layer_from_pykan(model, _base_of(getattr(model, "base_fun", None)))
    for attr in ("act_fun", "width", "node_scale", "subnode_scale"):
        if not hasattr(model, attr):
            raise TypeError(f"from_pykan: expected a pykan KAN/MultKAN or KANLayer, got {type(model).__name__}")
    width = [[int(w[0]), int(w[1])] if isinstance(w, (list, tuple)) else int(w) for w in model.width]
    mult_arity = getattr(model, "mult_arity", 2)
    if not isinstance(mult_arity, int):
        mult_arity = [[int(a) for a in ar] for ar in mult_arity]
    symbolic = getattr(model, "symbolic_fun", None)
    input_id = getattr(model, "input_id", None)

    base = _base_of(getattr(model, "base_fun_name", None) or getattr(model, "base_fun", None))
    layers = [_layer_from_pykan(layer, base) for layer in model.act_fun]
    first = layers[0]
    out = KAN(width, mult_arity=mult_arity, grid=[m.num for m in layers], k=[m.k for m in layers], base_fun=base,
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
    for l, layer in enumerate(layers):
        if (layer.in_features, layer.out_features) != (out.width[l], out.width_out[l + 1]):
            raise ValueError(f"from_pykan: layer {l} is {layer.in_features} -> {layer.out_features} but the widths "
                             f"{model.width} and mult_arity {mult_arity} need {out.width[l]} -> {out.width_out[l + 1]}")
    if not getattr(model, "symbolic_enabled", True):
        out.symbolic_enabled = False  # the fixed edges are kept, and skipped as pykan skips them
    if input_id is not None and not torch.equal(input_id.long().cpu(), torch.arange(out.width[0])):
        out.input_id = input_id.detach().long().cpu().clone()
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

    Multiplication nodes carry over (pykan's ``[n_sum, n_mult]`` widths and
    ``mult_arity``). The pykan model reads the same inputs as this one
    (``input_id`` is not carried: pykan would select columns of a wider
    input).

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
    width = [[model.n_sum_nodes(l), len(ar)] for l, ar in enumerate(model.mult_arities)]
    arity = model.mult_arity
    kwargs = dict(width=width, mult_arity=arity if isinstance(arity, int) else [list(a) for a in arity],
                  grid=grids.pop(), k=ks.pop(), base_fun=bases.pop(),
                  grid_range=list(model.act_fun[0].grid_range), auto_save=False, device=str(ref.device))
    kwargs.update(pykan_kwargs)
    pk = nn.Module.to(_without_reseeding(MultKAN, **kwargs), dtype=ref.dtype)  # pykan overrides .to(device) only
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
    pk.symbolic_enabled = bool(model.symbolic_enabled)
    return pk


def _without_reseeding(ctor, **kwargs):
    """ctor(**kwargs) with torch's (CPU), numpy's and Python's global RNG
    states restored afterwards: pykan's constructor reseeds all three."""
    import random

    import numpy as np

    states = torch.get_rng_state(), np.random.get_state(), random.getstate()
    try:
        return ctor(**kwargs)
    finally:
        torch.set_rng_state(states[0])
        np.random.set_state(states[1])
        random.setstate(states[2])


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
