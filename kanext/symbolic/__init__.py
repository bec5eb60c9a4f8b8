"""Symbolic regression on KANs and LANs: fix units (KAN edges, LAN nodes) to
c * f(a * u + b) + d, suggest and fit such functions in batches, and read the
network off as a sympy formula.

Layout (each module imports only those above it in this list):

    library   SYMBOLIC_LIB, add_symbolic: the functions and their complexities
    fitting   fit_params (batched over units x functions), pykan's ranking
    branch    SymbolicLayer (a KAN layer's edges), ChannelSymbolic (a LAN
              activation's channels): the state and forward, one base class
    units     fix / unfix / suggest / auto, once for both, with one small
              adapter per model kind (Edges, Nodes)
    formula   symbolic_formula (KAN and LAN), to_latex, to_torch
    state     checkpoint hooks (function names in the checkpoint's JSON)

The model methods (``KAN.fix_symbolic``, ``LAN.auto_symbolic``, ...) call the
functions here; the module-level functions below take pykan's arguments for
a KAN (edge = (l, i, j)).

Singularities: the forward pass and the formula use the plain functions, so
they agree wherever the formula is defined. Fitting never accepts an (a, b)
for which the plain function is non-finite on a fitting point: such a
candidate scores r2 = 0, and scores, parameters and the fitted values stay
finite. ``SymbolicLayer.forward(x, singularity_avoiding=True)`` evaluates the
safe variants instead (bounded by ``y_th``), for inputs outside the data the
edges were fitted on.
"""
from __future__ import annotations

from .. import checkpoint as _checkpoint
from . import units as _units
from .branch import ChannelSymbolic, SymbolicBranch, SymbolicLayer
from .fitting import fit_one, fit_params, rank_candidates
from .formula import symbolic_formula, to_latex, to_torch
from .library import SYMBOLIC_LIB, SymbolicFunction, add_symbolic
from .state import kan_state, lan_state, restore_kan_state, restore_lan_state

__all__ = [
    "SYMBOLIC_LIB", "SymbolicFunction", "add_symbolic", "SymbolicBranch", "SymbolicLayer", "ChannelSymbolic",
    "fit_params", "fit_one", "rank_candidates", "to_latex", "to_torch", "fix_symbolic", "unfix_symbolic",
    "unfix_symbolic_all", "suggest_symbolic", "auto_symbolic", "symbolic_formula",
]


def fix_symbolic(model, l, i, j, fun, fit_params=True, a_range=(-10, 10), b_range=(-10, 10), verbose=True):
    """Sets KAN edge (l, i, j) to c * fun(a * x + b) + d and returns the fit's
    r2 (None when fit_params is False: then (a, b, c, d) = (1, 0, 1, 0)).

    The parameters are fitted to the edge's current spline on layer l's
    inputs, computed from the recorded network inputs (``model.acts[0]``,
    from a forward with ``model.save_act = True``) or else
    ``model.cache_data``. The edge leaves the spline path
    (act_fun[l].mask[i, j] = 0) and joins the symbolic one.
    """
    return _units.fix(model, l, (i, j), fun, fit_params, a_range, b_range, verbose)


def unfix_symbolic(model, l, i, j) -> None:
    """Returns KAN edge (l, i, j) to its spline (mask 1) and clears its symbolic function."""
    _units.unfix(model, l, (i, j))


def unfix_symbolic_all(model) -> None:
    """Unfixes every symbolic edge of a KAN (only those; pruned edges stay pruned)."""
    for l, sym in enumerate(model.symbolic_fun):
        for j, i in sym.fixed_units():
            _units.unfix(model, l, (i, j))


def suggest_symbolic(model, l, i, j, a_range=(-10, 10), b_range=(-10, 10), lib=None, topk=5, verbose=True,
                     r2_loss_fun=None, c_loss_fun=None, weight_simple=0.8):
    """Ranks the library functions for KAN edge (l, i, j): a list of (name,
    r2, complexity, score), best (lowest score) first, topk long; printed as
    a table when verbose. pykan's arguments, in pykan's order. score =
    weight_simple * c_loss_fun(complexity) + (1 - weight_simple) *
    r2_loss_fun(r2), by default complexity and log2(1 + 1e-5 - r2), as pykan
    ranks (custom losses receive numpy arrays, as in pykan)."""
    return _units.suggest(model, l, (i, j), lib, topk, weight_simple, a_range, b_range, verbose,
                          r2_loss_fun=r2_loss_fun, c_loss_fun=c_loss_fun)


def auto_symbolic(model, a_range=(-10, 10), b_range=(-10, 10), lib=None, verbose=1, weight_simple=0.8,
                  r2_threshold=0.0):
    """Fixes every active spline edge of a KAN to its best suggestion (one
    batched fit per layer); dead edges (spline and symbolic masks both 0) get
    '0'; edges already symbolic are kept. An edge whose best r2 is below
    r2_threshold stays a spline. pykan's arguments, in pykan's order.
    Returns {(l, i, j): (name, r2)} for the edges fixed."""
    return _units.auto(model, lib, weight_simple, r2_threshold, verbose, a_range, b_range)


_checkpoint.register_extension("kanext.symbolic", kan_state, restore_kan_state)
_checkpoint.register_extension("kanext.lan_symbolic", lan_state, restore_lan_state)
