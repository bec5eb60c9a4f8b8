"""Symbolic regression on a LAN's node activations, under the names it had
before the symbolic package: the functions take a LAN and node indices
(l, j); the work is done by :mod:`kanext.symbolic.units` (shared with KAN
edges), the state is :class:`kanext.symbolic.ChannelSymbolic`, the figure
:func:`kanext.plotting.plot_lan`.

Samples: the node inputs ``z = W x + b`` of every layer on ``x=`` if given,
else on ``model.cache_data`` (the last :meth:`LAN.fit` inputs).
"""
from __future__ import annotations

from .plotting import NODE_GID
from .plotting import plot_lan as plot
from .symbolic import units as _units
from .symbolic.branch import ChannelSymbolic
from .symbolic.formula import symbolic_formula

__all__ = [
    "ChannelSymbolic", "fix_symbolic", "unfix_symbolic", "suggest_symbolic", "auto_symbolic", "symbolic_formula",
    "plot", "NODE_GID",
]


def fix_symbolic(model, l, j, fun, fit_params=True, a_range=(-10, 10), b_range=(-10, 10), verbose=True, x=None):
    """Fixes node j of layer l to ``c * fun(a * z + b) + d``; returns the r2 of
    the fit to the node's current spline activation on its pre-activations
    (None when fit_params is False: then (a, b, c, d) = (1, 0, 1, 0))."""
    return _units.fix(model, l, (j,), fun, fit_params, a_range, b_range, verbose, x)


def unfix_symbolic(model, l, j) -> None:
    """Returns node j of layer l to its spline activation."""
    _units.unfix(model, l, (j,))


def suggest_symbolic(model, l, j, lib=None, topk=5, weight_simple=0.8, a_range=(-10, 10), b_range=(-10, 10),
                     verbose=True, x=None):
    """Ranks the library functions for node (l, j): (name, r2, complexity, score) rows, best first."""
    return _units.suggest(model, l, (j,), lib, topk, weight_simple, a_range, b_range, verbose, x)


def auto_symbolic(model, lib=None, weight_simple=0.8, r2_threshold=0.0, verbose=1, a_range=(-10, 10),
                  b_range=(-10, 10), x=None) -> dict:
    """Fixes every spline node to its best suggestion; returns {(l, j): (name, r2)}."""
    return _units.auto(model, lib, weight_simple, r2_threshold, verbose, a_range, b_range, x)
