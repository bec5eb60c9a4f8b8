"""Formulas from symbolic models, under the module name they had before the
symbolic package: see :mod:`kanext.symbolic.formula`."""
from .symbolic.formula import kan_formula, lan_formula, symbolic_formula, to_latex, to_torch

__all__ = ["symbolic_formula", "kan_formula", "lan_formula", "to_latex", "to_torch"]
