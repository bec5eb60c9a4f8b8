"""The Feynman equations benchmark (AI Feynman, Udrescu & Tegmark 2020) as
used by the KAN paper and pykan's ``kan.feynman``.

    >>> from kanext.datasets.feynman import get_feynman_dataset, feynman_dataset
    >>> symbols, expr, f, ranges = get_feynman_dataset("I.12.11")
    >>> ds = feynman_dataset("I.12.11", train_num=1000, test_num=1000, seed=0)

:func:`get_feynman_dataset` returns what pykan's function of the same name
returns, in the same order: ``(symbols, expr, f, ranges)``: the input
variables as sympy Symbols (input column i is ``symbols[i]``), the target as
a sympy expression over them, a torch function ``f`` mapping inputs (N,
n_var) to labels (N, 1), and ``ranges``, one ``[low, high]`` per variable
(pykan sometimes gives a single pair for all variables; here there is always
one per variable). The sympy and torch forms are written independently and
agree numerically (tested).

Names: ``FEYNMAN_NAMES`` lists every equation once: the 100 equations of
the benchmark (I.*, II.*, III.*), its 20 bonus equations and pykan's
``"test"`` formula. pykan's numbers 1..120 are accepted as well. ``ALIASES``
maps other spellings to these names: the benchmark's file names (e.g.
``"I.6.2"`` for I.6.20, ``"I.15.1"`` for I.15.10, ``"I.8.14"`` for I.8.4),
the KAN paper's Table 3 labels (``"I.6.2"``, ``"I.6.2b"``, ``"II.11.7"`` for
II.11.17) and pykan's own ``"I.10.9"`` (II.10.9) and ``"Rutherforld
scattering"``. ``KAN_PAPER_EQUATIONS`` lists Table 3 of the KAN paper.

Variables and ranges are pykan's (those of the KAN paper's experiments):
pykan rescaled every variable to a small box, [-1, 1], [0, 1] or [0.5, 2]
mostly, while the original benchmark draws most variables from [1, 5]; all
ranges therefore differ from the original benchmark's. pykan's formulas
follow the benchmark, except that h/(2 pi) is written as one variable hbar
and I.32.5 drops the constant factor 1/(6 pi).

Where this module deviates from pykan (``PYKAN_DIFFERENCES``): pykan's torch
function and its own formula disagree for I.16.6 (the function computes
u*v/(1 + u*v/c**2) instead of (u + v)/(...)) and Goldstein 12.80 (the formula
has alpha*y/x, the function and the benchmark alpha*x/y); its Jackson 2.11
function raises an IndexError; pykan labels equation 22 (r*F*sin(theta),
the benchmark's I.18.12) "I.18.4" too, so that pykan's "I.18.4" returns it
instead of equation 21 (the centre of mass, here "I.18.4"). Here both forms
follow the benchmark's formula and every name is unique.

Dimensionless forms (``dimensionless=True``): the KAN paper's Table 3
works on dimensionless rewrites of its 27 equations, with fewer variables
(ratios of the original ones), e.g. I.12.11 q(E_f + B v sin(theta)) becomes
1 + a sin(theta) and II.38.3 Y A x/d becomes a/b. ``get_feynman_dataset(name,
dimensionless=True)`` and ``feynman_dataset(name, ..., dimensionless=True)``
return those forms for the names in ``DIMENSIONLESS_NAMES`` (the Table-3
names, ``KAN_PAPER_EQUATIONS``; aliases accepted), in the same
``(symbols, expr, f, ranges)`` shape. Their ranges are chosen here (the
paper gives none; see ``_feynman_dimensionless``); other names raise
ValueError. The default, ``dimensionless=False``, is pykan's dimensional
table described above.

Removable singularities: a few formulas are 0/0 on a measure-zero edge of
their box (III.4.33 at hbar*omega = 0, III.9.52 at omega = omega_0 or
t = 0); :func:`feynman_dataset` reports non-finite labels instead of
returning them.
"""
from __future__ import annotations

from typing import Callable

import sympy
import torch
from sympy.parsing.sympy_parser import parse_expr
from torch import Tensor

from ._create import create_dataset
from ._feynman_dimensionless import DIMENSIONLESS
from ._feynman_equations import EQUATIONS

__all__ = [
    "get_feynman_dataset", "feynman_dataset", "FEYNMAN_NAMES", "ALIASES", "KAN_PAPER_EQUATIONS",
    "PYKAN_DIFFERENCES", "DIMENSIONLESS_NAMES",
]

FEYNMAN_NAMES: tuple[str, ...] = tuple(e[1] for e in EQUATIONS)

ALIASES: dict[str, str] = {
    # the benchmark's file names (trailing zeros dropped) and its I.8.14 / I.18.14
    "I.6.2a": "I.6.20a", "I.6.2": "I.6.20", "I.6.2b": "I.6.20b", "I.8.14": "I.8.4", "I.15.1": "I.15.10",
    "I.18.14": "I.18.16", "I.34.1": "I.34.10", "I.39.1": "I.39.10", "I.48.2": "I.48.20",
    # the KAN paper's Table 3 label
    "II.11.7": "II.11.17",
    # pykan's spellings
    "I.10.9": "II.10.9", "Rutherforld scattering": "Rutherford scattering",
}

#: Table 3 of the KAN paper (Liu et al. 2024), under the names used here.
KAN_PAPER_EQUATIONS: tuple[str, ...] = (
    "I.6.20", "I.6.20b", "I.9.18", "I.12.11", "I.13.12", "I.15.3x", "I.16.6", "I.18.4", "I.26.2", "I.27.6",
    "I.29.16", "I.30.3", "I.30.5", "I.37.4", "I.40.1", "I.44.4", "I.50.26", "II.2.42", "II.6.15a", "II.11.17",
    "II.11.27", "II.35.18", "II.36.38", "II.38.3", "III.9.52", "III.10.19", "III.17.37",
)

PYKAN_DIFFERENCES: dict[str, str] = {
    "I.16.6": "pykan's torch function computes u*v/(1 + u*v/c**2); its formula and this module (u + v)/(1 + u*v/c**2)",
    "I.18.4": "pykan's name 'I.18.4' returns r*F*sin(theta) (its duplicate label of equation 22); "
              "here 'I.18.4' is equation 21, (m1*r1 + m2*r2)/(m1 + m2)",
    "I.18.12": "pykan labels this equation (number 22) 'I.18.4'",
    "II.10.9": "pykan labels this equation (number 60) 'I.10.9'",
    "Goldstein 12.80": "pykan's formula has alpha*y/x; its torch function, the benchmark and this module alpha*x/y",
    "Jackson 2.11": "pykan's torch function raises an IndexError; here it follows the formula",
    "Rutherford scattering": "pykan spells it 'Rutherforld scattering'",
}

#: the equations with a dimensionless form (``dimensionless=True``): Table 3 of the KAN paper, same order
DIMENSIONLESS_NAMES: tuple[str, ...] = tuple(e[0] for e in DIMENSIONLESS)

_BY_NAME = {e[1]: e for e in EQUATIONS}
_DIMENSIONLESS = {e[0]: e for e in DIMENSIONLESS}
_BY_NUMBER = {e[0]: e for e in EQUATIONS if e[0] >= 1}


def _resolve(name):
    if isinstance(name, bool):
        raise TypeError(f"get_feynman_dataset: name must be a str or an int 1..120, got {name!r}")
    if isinstance(name, int):
        if name not in _BY_NUMBER:
            raise ValueError(f"get_feynman_dataset: equation number must be in 1..{max(_BY_NUMBER)}, got {name}")
        return _BY_NUMBER[name]
    if not isinstance(name, str):
        raise TypeError(f"get_feynman_dataset: name must be a str or an int 1..120, got {type(name).__name__}")
    entry = _BY_NAME.get(ALIASES.get(name, name))
    if entry is None:
        raise ValueError(
            f"get_feynman_dataset: unknown equation {name!r}; valid names: {', '.join(FEYNMAN_NAMES)} "
            f"(aliases: {', '.join(sorted(ALIASES))}; or pykan's numbers 1..{max(_BY_NUMBER)})"
        )
    return entry


def _symbols(spec: str):
    idents, syms = [], []
    for tok in spec.split():
        ident, _, sname = tok.partition("=")
        idents.append(ident)
        syms.append(sympy.Symbol(sname or ident))
    return idents, tuple(syms)


def _column_function(fn, n_var: int, name: str) -> Callable[[Tensor], Tensor]:
    def f(x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"feynman {name}: expected a torch.Tensor of shape (N, {n_var}), got {type(x).__name__}")
        if x.dim() != 2 or x.shape[1] != n_var:
            raise ValueError(f"feynman {name}: expected inputs of shape (N, {n_var}), got {tuple(x.shape)}")
        return fn(*x.unbind(dim=1)).unsqueeze(1)

    f.__name__ = f"feynman_{name}".replace(" ", "_").replace(".", "_")
    f.__doc__ = f"Feynman equation {name}: inputs (N, {n_var}) -> labels (N, 1)."
    return f


def get_feynman_dataset(name: str | int, dimensionless: bool = False):
    """``(symbols, expr, f, ranges)`` of a Feynman equation, as pykan's
    ``kan.feynman.get_feynman_dataset`` returns them (see the module
    docstring for the names, ranges and where pykan differs).

    Args:
        name: an equation name from ``FEYNMAN_NAMES`` or ``ALIASES``, or
            pykan's number 1..120.
        dimensionless: False (default): pykan's dimensional variables and
            ranges. True: the KAN paper's dimensionless Table-3 form (fewer
            variables, ranges chosen here); only for ``DIMENSIONLESS_NAMES``.

    Returns:
        symbols: tuple of sympy Symbols, one per input column, in order.
        expr: sympy expression of the target in those symbols.
        f: torch function, (N, n_var) tensor -> (N, 1) tensor.
        ranges: list of ``[low, high]`` floats, one per variable.

    Raises:
        ValueError for an unknown name (the message lists the valid names) or
        number, or with ``dimensionless=True`` for an equation outside
        ``DIMENSIONLESS_NAMES``; TypeError for a name that is neither str
        nor int.
    """
    number, canonical, spec, expr_text, fn, ranges = _resolve(name)
    if dimensionless:
        if canonical not in _DIMENSIONLESS:
            raise ValueError(f"get_feynman_dataset: no dimensionless form of {canonical!r}; those with one "
                             f"(the KAN paper's Table 3): {', '.join(DIMENSIONLESS_NAMES)}")
        canonical, spec, expr_text, fn, ranges = _DIMENSIONLESS[canonical]
    idents, syms = _symbols(spec)
    expr = parse_expr(expr_text, local_dict=dict(zip(idents, syms)))
    n_var = len(syms)
    if isinstance(ranges[0], (int, float)):
        ranges = [ranges] * n_var
    ranges = [[float(lo), float(hi)] for lo, hi in ranges]
    return syms, expr, _column_function(fn, n_var, canonical), ranges


def feynman_dataset(
    name: str | int,
    train_num: int = 1000,
    test_num: int = 1000,
    seed: int = 0,
    normalize_input: bool = False,
    normalize_label: bool = False,
    device=None,
    dtype=None,
    dimensionless: bool = False,
) -> dict[str, Tensor]:
    """A kanext data set dict (train_input, train_label, test_input,
    test_label) for a Feynman equation: inputs uniform on its ranges,
    labels from its torch function, through :func:`kanext.create_dataset`
    (same arguments and reproducibility from ``seed``). ``dimensionless``:
    as in :func:`get_feynman_dataset`.

    Raises ValueError for an unknown name (listing the valid names) and when
    a label is not finite (a sample on a removable singularity of the
    formula, e.g. 0/0; try another seed).
    """
    _, _, f, ranges = get_feynman_dataset(name, dimensionless=dimensionless)
    ds = create_dataset(f, n_var=len(ranges), ranges=ranges, train_num=train_num, test_num=test_num,
                        normalize_input=normalize_input, normalize_label=normalize_label, device=device,
                        seed=seed, dtype=dtype)
    for split in ("train_label", "test_label"):
        bad = ~torch.isfinite(ds[split])
        if bool(bad.any()):
            rows = bad.any(dim=1).nonzero().reshape(-1).tolist()
            raise ValueError(f"feynman_dataset({name!r}): {len(rows)} non-finite {split} value(s) at rows "
                             f"{rows[:10]} (a sample on a singularity of the formula); try another seed")
    return ds
