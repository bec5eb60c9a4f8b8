"""The function library of symbolic regression: each entry is a torch
function, its sympy form, pykan's complexity and a finite ("safe") variant."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import sympy
import torch
from torch import Tensor

__all__ = ["SYMBOLIC_LIB", "SymbolicFunction", "add_symbolic", "entry", "resolve", "lib_names"]


@dataclass(frozen=True)
class SymbolicFunction:
    """One library entry: ``torch_fn(x)``, ``sympy_fn(expr)``, a complexity
    (pykan's integer cost), and ``safe_fn(x, y_th)``, a variant that stays
    finite (at most about y_th in size near a singularity)."""

    name: str
    torch_fn: Callable[[Tensor], Tensor]
    sympy_fn: Callable | None
    complexity: float
    safe_fn: Callable[[Tensor, float], Tensor]

    def as_pykan(self) -> tuple:
        """pykan's library tuple: (torch function, sympy function, complexity,
        singularity-avoiding function ``(x, y_th) -> ((), y)``). A function
        added without a sympy form gets ``sympy.Function(name)``."""
        safe = self.safe_fn
        return (self.torch_fn, self.sympy_fn or sympy.Function(self.name), self.complexity,
                lambda x, y_th: ((), safe(x, y_th)))

    def __getitem__(self, i):
        """pykan's indexing: ``SYMBOLIC_LIB['sin'][2]`` is the complexity (see :meth:`as_pykan`)."""
        return self.as_pykan()[i]

    def __iter__(self):
        return iter(self.as_pykan())

    def __len__(self) -> int:
        return 4


def _inv_pow(n):
    def safe(x, y_th):
        eps = float(y_th) ** (-1.0 / n)
        sgn = torch.where(x < 0, -torch.ones_like(x), torch.ones_like(x))
        return 1 / torch.where(x.abs() < eps, sgn * eps, x) ** n
    return safe


def _same(fn):
    return lambda x, y_th: fn(x)


def _safe_tan(x, y_th):
    return torch.tan(x).clamp(-y_th, y_th)


def _below_one(x, lim):
    # tanh(y_th) rounds to 1.0 once y_th > ~19 (float64), and arctanh(1) = inf:
    # keep the clamp strictly inside (-1, 1) in x's dtype
    return min(lim, 1.0 - torch.finfo(x.dtype).eps)


def _safe_arctanh(x, y_th):
    lim = _below_one(x, math.tanh(y_th))
    return torch.arctanh(x.clamp(-lim, lim))


def _safe_log(x, y_th):
    # exp(-y_th) underflows to 0 once y_th > ~745 (pykan's fit default is 1000), and log(0) = -inf:
    # floor at the dtype's smallest normal number instead
    return torch.log(x.clamp_min(max(math.exp(-y_th), torch.finfo(x.dtype).tiny)))


def _safe_arc(fn):
    # the derivative of arcsin / arccos is infinite at +-1: clamp just inside
    return lambda x, y_th: fn(x.clamp(-_below_one(x, 1.0), _below_one(x, 1.0)))


_ENTRIES = [
    # name, torch, sympy, complexity (pykan 0.2.8's), safe variant
    ("x", lambda x: x, lambda x: x, 1, None),
    ("x^2", lambda x: x**2, lambda x: x**2, 2, None),
    ("x^3", lambda x: x**3, lambda x: x**3, 3, None),
    ("x^4", lambda x: x**4, lambda x: x**4, 3, None),
    ("x^5", lambda x: x**5, lambda x: x**5, 3, None),
    ("1/x", lambda x: 1 / x, lambda x: 1 / x, 2, _inv_pow(1)),
    ("1/x^2", lambda x: 1 / x**2, lambda x: 1 / x**2, 2, _inv_pow(2)),
    ("1/x^3", lambda x: 1 / x**3, lambda x: 1 / x**3, 3, _inv_pow(3)),
    ("1/x^4", lambda x: 1 / x**4, lambda x: 1 / x**4, 4, _inv_pow(4)),
    ("1/x^5", lambda x: 1 / x**5, lambda x: 1 / x**5, 5, _inv_pow(5)),
    ("sqrt", torch.sqrt, sympy.sqrt, 2, lambda x, y_th: torch.sqrt(x.clamp_min(0))),
    ("x^0.5", torch.sqrt, sympy.sqrt, 2, lambda x, y_th: torch.sqrt(x.clamp_min(0))),
    ("x^1.5", lambda x: torch.sqrt(x) ** 3, lambda x: sympy.sqrt(x) ** 3, 4,
     lambda x, y_th: torch.sqrt(x.clamp_min(0)) ** 3),
    ("1/sqrt(x)", torch.rsqrt, lambda x: 1 / sympy.sqrt(x), 2,
     lambda x, y_th: torch.rsqrt(x.clamp_min(float(y_th) ** -2))),
    ("1/x^0.5", torch.rsqrt, lambda x: 1 / sympy.sqrt(x), 2,
     lambda x, y_th: torch.rsqrt(x.clamp_min(float(y_th) ** -2))),
    ("exp", torch.exp, sympy.exp, 2, lambda x, y_th: torch.exp(x.clamp_max(math.log(y_th)))),
    ("log", torch.log, sympy.log, 2, _safe_log),
    ("abs", torch.abs, sympy.Abs, 3, None),
    ("sin", torch.sin, sympy.sin, 2, None),
    ("cos", torch.cos, sympy.cos, 2, None),
    ("tan", torch.tan, sympy.tan, 3, _safe_tan),
    ("tanh", torch.tanh, sympy.tanh, 3, None),
    ("sgn", torch.sign, sympy.sign, 3, None),
    ("arcsin", torch.arcsin, sympy.asin, 4, _safe_arc(torch.arcsin)),
    ("arccos", torch.arccos, sympy.acos, 4, _safe_arc(torch.arccos)),
    ("arctan", torch.arctan, sympy.atan, 4, None),
    ("arctanh", torch.arctanh, sympy.atanh, 4, _safe_arctanh),
    ("0", lambda x: x * 0, lambda x: x * 0, 0, None),
    ("gaussian", lambda x: torch.exp(-x**2), lambda x: sympy.exp(-x**2), 3, None),
]

#: name -> SymbolicFunction; pykan 0.2.8's entries and complexities.
SYMBOLIC_LIB: dict[str, SymbolicFunction] = {
    name: SymbolicFunction(name, fn, sfn, c, safe or _same(fn)) for name, fn, sfn, c, safe in _ENTRIES
}
_BUILTIN = frozenset(SYMBOLIC_LIB)


def add_symbolic(name: str, torch_fn: Callable[[Tensor], Tensor], sympy_fn=None, complexity: float = 2,
                 safe_fn: Callable[[Tensor, float], Tensor] | None = None) -> None:
    """Adds (or replaces) a user function in :data:`SYMBOLIC_LIB`.

    Args:
        name: library key (a non-empty str; the built-in names cannot be replaced).
        torch_fn: elementwise function on tensors.
        sympy_fn: the same function on sympy expressions, used by
            symbolic_formula (default: ``sympy.Function(name)``, an
            undefined function of that name, which ``to_torch`` evaluates
            with torch_fn).
        complexity: its cost in suggest_symbolic's score (pykan's scale: x is 1, sin 2, tanh 3).
        safe_fn: ``safe_fn(x, y_th)``, a finite variant (default: torch_fn).

    pykan's form ``add_symbolic(name, fun, c=1, fun_singularity=None)`` works
    too: a number in third place is the complexity, and a fourth argument is
    pykan's singularity function (returning ``(x_th, y)``; y is used).

    Checkpoints store only the name: register the function again (same name)
    before loading a model that uses it.
    """
    if isinstance(sympy_fn, (int, float)) and not isinstance(sympy_fn, bool):  # pykan: (name, fun, c, fun_singularity)
        singularity = complexity if callable(complexity) else None
        sympy_fn, complexity = None, sympy_fn
        if singularity is not None:
            safe_fn = _from_pykan_singularity(singularity)
    if not isinstance(name, str) or not name:
        raise ValueError(f"add_symbolic: name must be a non-empty str, got {name!r}")
    if name in _BUILTIN:
        raise ValueError(f"add_symbolic: {name!r} is a built-in library function and cannot be replaced")
    if not callable(torch_fn):
        raise TypeError(f"add_symbolic: torch_fn must be callable, got {type(torch_fn).__name__}")
    if sympy_fn is not None and not callable(sympy_fn):
        raise TypeError(f"add_symbolic: sympy_fn must be callable or None, got {type(sympy_fn).__name__}")
    if isinstance(complexity, bool) or not isinstance(complexity, (int, float)) or not math.isfinite(complexity):
        raise ValueError(f"add_symbolic: complexity must be a finite number, got {complexity!r}")
    if safe_fn is not None and not callable(safe_fn):
        raise TypeError(f"add_symbolic: safe_fn must be callable or None, got {type(safe_fn).__name__}")
    SYMBOLIC_LIB[name] = SymbolicFunction(name, torch_fn, sympy_fn, complexity, safe_fn or _same(torch_fn))


def _from_pykan_singularity(fs):
    def safe(x, y_th):
        out = fs(x, y_th)
        return out[1] if isinstance(out, tuple) else out
    return safe


def entry(name: str) -> SymbolicFunction:
    try:
        return SYMBOLIC_LIB[name]
    except KeyError:
        raise ValueError(
            f"unknown symbolic function {name!r}: expected one of {sorted(SYMBOLIC_LIB)} "
            "(register your own with kanext.symbolic.add_symbolic)"
        ) from None


def resolve(fun) -> str:
    """A library name for fun: a name, or a callable (registered under its __name__)."""
    if isinstance(fun, str):
        entry(fun)
        return fun
    if callable(fun):
        name = getattr(fun, "__name__", None)
        if not name or name == "<lambda>":
            raise ValueError("fix_symbolic: a callable fun needs a name: register it with add_symbolic(name, fn, sympy_fn)")
        known = SYMBOLIC_LIB.get(name)
        if known is None:
            add_symbolic(name, fun)
        elif known.torch_fn is not fun:
            raise ValueError(f"fix_symbolic: the name {name!r} of the callable is taken by another library function")
        return name
    raise TypeError(f"fix_symbolic: fun must be a library name or a callable, got {type(fun).__name__}")


def lib_names(lib) -> list[str]:
    """The library names to try: all of SYMBOLIC_LIB when lib is None, else lib (each checked)."""
    names = list(SYMBOLIC_LIB) if lib is None else list(lib)
    if not names:
        raise ValueError("lib must name at least one function")
    for n in names:
        entry(n)
    return names
