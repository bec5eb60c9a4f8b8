"""fix / unfix / suggest / auto symbolic, written once for both model kinds.

A *unit* is what gets a symbolic function: an edge (l, i, j) of a KAN, a
node (l, j) of a LAN. :class:`Edges` and :class:`Nodes` are the two adapters;
each tells, for layer l, where the unit's inputs come from, what its current
numeric value is, which units are still splines, and how to switch a unit
between its spline and its symbolic function. Everything else (the samples,
the batched fits, the ranking, the printing) is shared.

Samples: ``x=`` if given, else the inputs of the last recording forward
(``model.acts[0]``, KAN), else ``model.cache_data`` (the last fit inputs);
see :func:`kanext.recorded.samples`. Each layer's unit inputs are recomputed
from those network inputs with the current model, so they are never stale.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .. import dense
from ..recorded import samples
from .branch import ChannelSymbolic, SymbolicLayer
from .fitting import fit_one, fit_params, rank_candidates, scores
from .library import entry, lib_names, resolve

__all__ = ["Edges", "Nodes", "fix", "unfix", "suggest", "auto", "fixed_edge_stats"]


def _check_ints(**kw) -> None:
    for name, v in kw.items():
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"expected an int for {name}, got {v!r}")


class Edges:
    """KAN adapter: unit (i, j) of layer l is the edge i -> j of act_fun[l]."""

    what = "edge"

    def __init__(self, model):
        self.model = model

    def check(self, l, unit) -> None:
        i, j = unit
        _check_ints(l=l, i=i, j=j)
        m = self.model
        if not 0 <= l < m.depth:
            raise ValueError(f"layer index l={l} out of range: the model has {m.depth} layers")
        layer = m.act_fun[l]
        if not (0 <= i < layer.in_features and 0 <= j < layer.out_features):
            raise ValueError(f"edge ({l},{i},{j}) out of range: layer {l} is {layer.in_features} -> {layer.out_features}")

    def spline_units(self, l) -> list[tuple[int, int]]:
        return [tuple(e) for e in (self.model.act_fun[l].mask.detach() != 0).nonzero().tolist()]

    def inputs(self, xl: Tensor, units) -> Tensor:
        return xl[:, [i for i, _ in units]]

    def numeric(self, l, xl: Tensor, units) -> Tensor:
        dev = xl.device
        I = torch.tensor([i for i, _ in units], device=dev)
        J = torch.tensor([j for _, j in units], device=dev)
        return dense.edge_values(self.model.act_fun[l], xl, I, J)

    @torch.no_grad()
    def set(self, l, unit, name, params) -> None:
        i, j = unit
        self.model.act_fun[l].mask[i, j] = 0.0
        self.model.symbolic_fun[l].set_edge(i, j, name, params)

    @torch.no_grad()
    def unset(self, l, unit) -> None:
        i, j = unit
        self.model.act_fun[l].mask[i, j] = 1.0
        self.model.symbolic_fun[l].unset_edge(i, j)

    def before_auto(self, l, verbose) -> None:
        """Dead edges (spline and symbolic masks both 0) are fixed to '0', as pykan does."""
        layer, sym = self.model.act_fun[l], self.model.symbolic_fun[l]
        dead = ((layer.mask.detach() == 0) & (sym.mask.detach().T == 0)).nonzero().tolist()
        for i, j in dead:
            sym.set_edge(i, j, "0", (0.0, 0.0, 0.0, 0.0))
            if verbose >= 2:
                print(f"fixing ({l},{i},{j}) with 0")


class Nodes:
    """LAN adapter: unit (j,) of layer l is output node j of layers[l]; its
    input is the pre-activation z = W x + b."""

    what = "node"

    def __init__(self, model):
        self.model = model

    def check(self, l, unit) -> None:
        (j,) = unit
        _check_ints(l=l, j=j)
        m = self.model
        if not 0 <= l < m.depth:
            raise ValueError(f"layer index l={l} out of range: the LAN has {m.depth} layers")
        if not 0 <= j < m.width[l + 1]:
            raise ValueError(f"node ({l},{j}) out of range: layer {l} has {m.width[l + 1]} nodes")

    def branch(self, l, create: bool = False) -> ChannelSymbolic | None:
        act = self.model.layers[l].act
        sym = act._modules.get("symbolic")
        if sym is None and create:
            sym = ChannelSymbolic(act.num_channels, device=act.coef.device, dtype=act.coef.dtype)
            act.symbolic = sym
        return sym

    def spline_units(self, l) -> list[tuple[int]]:
        sym = self.branch(l)
        fixed = set(sym.fixed()) if sym is not None else set()
        return [(c,) for c in range(self.model.width[l + 1]) if c not in fixed]

    def inputs(self, zl: Tensor, units) -> Tensor:
        return zl[:, [c for (c,) in units]]

    def numeric(self, l, zl: Tensor, units) -> Tensor:
        with torch.no_grad():
            return self.model.layers[l].act.spline_forward(zl)[:, [c for (c,) in units]]

    def set(self, l, unit, name, params) -> None:
        self.branch(l, create=True).set_channel(unit[0], name, params)

    def unset(self, l, unit) -> None:
        act = self.model.layers[l].act
        sym = self.branch(l)
        if sym is not None:
            sym.unset_channel(unit[0])
            if not sym.fixed():  # no fixed channel left: the activation computes and stores nothing extra
                del act.symbolic

    def before_auto(self, l, verbose) -> None:
        pass


def _adapter(model):
    return Edges(model) if hasattr(model, "symbolic_fun") else Nodes(model)


def _label(l, unit) -> str:
    return "(" + ",".join(str(v) for v in (l, *unit)) + ")"


def _finite_rows(xl: Tensor, l: int, what: str) -> Tensor:
    """Layer l's input rows that are finite; at least 2 of them, or a
    ValueError (a fit on one sample has r2 = 0 for every function, and
    auto_symbolic would fix every unit to a constant)."""
    xl = xl[torch.isfinite(xl).all(1)]
    if xl.shape[0] < 2:
        raise ValueError(f"{what}: need at least 2 finite samples of layer {l}'s inputs, got {xl.shape[0]} "
                         "(run the model on a batch, or pass x=)")
    return xl


def _unit_samples(ad, l, unit, x, what) -> tuple[Tensor, Tensor]:
    """(u, y): the unit's inputs and current numeric values on the finite samples."""
    xl = _finite_rows(ad.model.spline_inputs(samples(ad.model, x, what=what))[l], l, what)
    return ad.inputs(xl, [unit])[:, 0], ad.numeric(l, xl, [unit])[:, 0]


def fix(model, l, unit, fun, fit_params=True, a_range=(-10, 10), b_range=(-10, 10), verbose=True, x=None):
    """Fixes a unit to c * fun(a * u + b) + d; returns the fit's r2 (None
    when fit_params is False: then (a, b, c, d) = (1, 0, 1, 0))."""
    ad = _adapter(model)
    ad.check(l, unit)
    name = resolve(fun)
    r2, params = None, None
    if fit_params:
        u, y = _unit_samples(ad, l, unit, x, "fix_symbolic")
        params, r2 = fit_one(u, y, name, a_range, b_range, verbose, ad.what)
    ad.set(l, unit, name, params)
    return r2


def unfix(model, l, unit) -> None:
    """Returns a unit to its spline."""
    ad = _adapter(model)
    ad.check(l, unit)
    ad.unset(l, unit)


def suggest(model, l, unit, lib=None, topk=5, weight_simple=0.8, a_range=(-10, 10), b_range=(-10, 10),
            verbose=True, x=None, r2_loss_fun=None, c_loss_fun=None):
    """Ranked (name, r2, complexity, score) rows for a unit, best (lowest
    score) first, topk long; score = weight_simple * complexity +
    (1 - weight_simple) * log2(1 + 1e-5 - r2), as pykan ranks."""
    ad = _adapter(model)
    ad.check(l, unit)
    if not 0 <= weight_simple <= 1:
        raise ValueError(f"weight_simple must be in [0, 1], got {weight_simple}")
    names = lib_names(lib)
    u, y = _unit_samples(ad, l, unit, x, "suggest_symbolic")
    return rank_candidates(u, y, names, a_range, b_range, weight_simple, topk, verbose, r2_loss_fun, c_loss_fun)


def auto(model, lib=None, weight_simple=0.8, r2_threshold=0.0, verbose=1, a_range=(-10, 10), b_range=(-10, 10),
         x=None) -> dict:
    """Fixes every spline unit to its best suggestion: one batched fit per
    layer over its spline units and all lib functions, layer by layer, each
    on the inputs produced by the already converted layers. Units already
    symbolic are kept; a unit whose best r2 is below r2_threshold stays a
    spline. Returns {(l, *unit): (name, r2)} for the units fixed."""
    ad = _adapter(model)
    names = lib_names(lib)
    x0 = samples(model, x, what="auto_symbolic")
    done = {}
    for l in range(model.depth):
        ad.before_auto(l, verbose)
        units = ad.spline_units(l)
        if not units:
            continue
        xl = _finite_rows(model.spline_inputs(x0)[l], l, "auto_symbolic")
        params, r2 = fit_params(ad.inputs(xl, units).T, ad.numeric(l, xl, units).T, names, a_range, b_range)
        best = scores(r2, names, weight_simple).argmin(1)
        for e, unit in enumerate(units):
            c = int(best[e])
            r = float(r2[e, c])
            if r >= r2_threshold:
                ad.set(l, unit, names[c], params[e, c].tolist())
                done[(l, *unit)] = (names[c], r)
                if verbose >= 1:
                    print(f"fixing {_label(l, unit)} with {names[c]}, r2={r:.6g}, c={entry(names[c]).complexity}")
            elif verbose >= 1:
                print(f"{_label(l, unit)}: best fit {names[c]} has r2={r:.6g} < r2_threshold={r2_threshold}; "
                      "kept as a spline")
    return done


@torch.no_grad()
def fixed_edge_stats(layer, sym: SymbolicLayer, x: Tensor, scale: Tensor, l1: Tensor) -> None:
    """Overwrites, for the fixed edges of one KAN layer, the recorded edge
    statistics scale (pykan's std(phi) / (std(x) + 0.1)) and l1 (mean |phi|),
    both (out, in), with those of the whole edge: spline (if still on) plus
    symbolic. Cost O(N * fixed edges)."""
    for name, (J, I) in sym.groups():
        phi = sym.mask[J, I] * sym._group_values(x[:, I], name, (J, I))
        phi = phi + dense.edge_values(layer, x, I, J)
        l1[J, I] = phi.abs().mean(0).to(l1.dtype)
        if x.shape[0] > 1:
            scale[J, I] = (phi.std(0) / (x[:, I].std(0) + 0.1)).to(scale.dtype)
