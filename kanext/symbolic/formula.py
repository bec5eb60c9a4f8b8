"""Formulas from a model whose units are all symbolic: :func:`symbolic_formula`
(one sympy expression per output, for a KAN or a LAN), :func:`to_latex`, and
:func:`to_torch` (a formula as a callable on tensors)."""
from __future__ import annotations

import math
import warnings
from typing import Callable, Sequence

import sympy
import torch
from torch import Tensor

from .library import SYMBOLIC_LIB, entry

__all__ = ["symbolic_formula", "kan_formula", "lan_formula", "to_latex", "to_torch"]


def symbolic_formula(model, var=None, normalizer=None, output_normalizer=None, *, simplify=False,
                     floating_digits=4) -> tuple[list, list]:
    """``(exprs, variables)`` as pykan returns them: one sympy expression per
    output of a KAN (:func:`kan_formula`) or a LAN (:func:`lan_formula`), and
    the input symbols (default x_1, x_2, ...).

    normalizer: pykan's ``[mean, std]`` of the inputs the model was trained
    on (numbers or one per input): the formula is then in the raw inputs,
    each x_i entering as (x_i - mean_i) / std_i. output_normalizer:
    ``[mean, std]`` of the outputs: each output becomes y * std + mean.
    simplify and floating_digits: see :func:`kan_formula`. Warns when the
    model skips its symbolic edges (``symbolic_enabled`` False, after
    ``speed()``): the formula then differs from the model's output."""
    fn = kan_formula if hasattr(model, "symbolic_fun") else lan_formula
    if not getattr(model, "symbolic_enabled", True) and any(s.n_fixed for s in getattr(model, "symbolic_fun", ())):
        warnings.warn("symbolic_formula: symbolic_enabled is False (model.speed()), so the model's forward skips "
                      "its fixed symbolic edges, from which this formula is built: the formula is not what model(x) "
                      "computes; set model.symbolic_enabled = True to evaluate them", stacklevel=2)
    xs = _symbols(var, model.width[0])
    inputs = xs
    if normalizer is not None:
        mean, std = _normalizer(normalizer, model.width[0], "normalizer")
        inputs = [(x - _num(m)) / _num(s) for x, m, s in zip(xs, mean, std)]
    exprs = fn(model, inputs, simplify, floating_digits)
    if output_normalizer is not None:
        mean, std = _normalizer(output_normalizer, model.width[-1], "output_normalizer")
        exprs = _rounded([e * _num(s) + _num(m) for e, m, s in zip(exprs, mean, std)], floating_digits)
    return exprs, xs


def _normalizer(norm, n: int, what: str) -> tuple[list, list]:
    """[mean, std] (numbers, or n values each) as two lists of n floats; std must be non-zero."""
    try:
        mean, std = norm
        mean = torch.as_tensor(mean, dtype=torch.float64).reshape(-1).expand(n).tolist() \
            if torch.as_tensor(mean).numel() in (1, n) else None
        std = torch.as_tensor(std, dtype=torch.float64).reshape(-1).expand(n).tolist() \
            if torch.as_tensor(std).numel() in (1, n) else None
    except (TypeError, ValueError, RuntimeError):
        mean = std = None
    if mean is None or std is None or any(v == 0 or not math.isfinite(v) for v in std) or \
            not all(math.isfinite(v) for v in mean):
        raise ValueError(f"symbolic_formula: {what} must be [mean, std] with numbers or {n} values each, finite, "
                         f"std non-zero; got {norm!r}")
    return mean, std


def kan_formula(model, var=None, simplify=False, floating_digits=4) -> list:
    """One sympy expression per output of a KAN, composed from the symbolic edges,
    the node/subnode affines and the products of the multiplication nodes.

    Args:
        var: input symbols (default x_1, x_2, ...): sympy symbols or names.
        simplify: run sympy.simplify on each layer's outputs.
        floating_digits: round float constants for reading: to this many
            decimals (pykan's rounding; constants that round to 0 vanish),
            or, below 1, to this many significant digits; repeated until
            sympy's own combining of constants leaves nothing to round.
            None keeps them exact, and then the formula evaluates equal to
            the model up to float rounding.

    Raises ValueError, listing them, if spline edges remain (mask != 0 in
    act_fun): run auto_symbolic (or fix_symbolic) first. Dead edges count as 0.
    """
    xs = _symbols(var, model.width[0])
    left = [(l, i, j) for l, layer in enumerate(model.act_fun) for i, j in (layer.mask.detach() != 0).nonzero().tolist()]
    if left:
        raise ValueError(
            f"symbolic_formula: {len(left)} edge(s) are still splines (l, i, j): {left[:20]}"
            f"{' ...' if len(left) > 20 else ''}; fix them with auto_symbolic() or fix_symbolic() first"
        )

    for l, sym in enumerate(model.symbolic_fun):
        outs = [sympy.Integer(0)] * sym.out_features
        aff = sym.affine.detach().double().cpu()
        mask = sym.mask.detach().double().cpu()
        for name, (J, I) in sym.groups():
            sympy_fn = _sympy_fn(name)
            for j, i in zip(J.tolist(), I.tolist()):
                if mask[j, i] == 0:
                    continue
                a, b, c, d = aff[j, i].tolist()
                term = _num(c) * sympy_fn(_num(a) * xs[i] + _num(b)) + _num(d)
                if mask[j, i] != 1:
                    term = _num(mask[j, i]) * term
                outs[j] = outs[j] + term
        ss, sb = model.subnode_scale[l].detach().double().cpu(), model.subnode_bias[l].detach().double().cpu()
        ns, nb = model.node_scale[l].detach().double().cpu(), model.node_bias[l].detach().double().cpu()
        subs = [_num(ss[j]) * e + _num(sb[j]) for j, e in enumerate(outs)]
        groups = model.subnode_groups(l + 1) if hasattr(model, "subnode_groups") else [[j] for j in range(len(subs))]
        new = []
        for j, g in enumerate(groups):  # a sum node is its subnode; a multiplication node the product of its group
            e = subs[g[0]]
            for t in g[1:]:
                e = e * subs[t]
            e = _num(ns[j]) * e + _num(nb[j])
            new.append(sympy.simplify(e) if simplify else e)
        xs = new
    return _rounded(xs, floating_digits)


def lan_formula(model, var=None, simplify=False, floating_digits=4) -> list:
    """One sympy expression per output of a LAN: the Linear weights and biases
    composed with the symbolic node functions (arguments as
    :func:`kan_formula`; floating_digits=None keeps the constants exact).
    Raises ValueError listing the nodes (l, j) that are still splines."""
    xs = _symbols(var, model.width[0])
    syms = [layer.act._modules.get("symbolic") for layer in model.layers]
    left = []
    for l, sym in enumerate(syms):
        fixed = set(sym.fixed()) if sym is not None else set()
        left += [(l, j) for j in range(model.width[l + 1]) if j not in fixed]
    if left:
        raise ValueError(
            f"symbolic_formula: {len(left)} node(s) are still splines (l, j): {left[:20]}"
            f"{' ...' if len(left) > 20 else ''}; fix them with auto_symbolic() or fix_symbolic() first"
        )
    for layer, sym in zip(model.layers, syms):
        W = layer.linear.weight.detach().double().cpu()
        b = layer.linear.bias.detach().double().cpu() if layer.linear.bias is not None else None
        aff = sym.affine.detach().double().cpu()
        new = []
        for j in range(W.shape[0]):
            z = sum((_num(W[j, i]) * xs[i] for i in range(W.shape[1])), sympy.Integer(0))
            if b is not None:
                z = z + _num(b[j])
            a_, b_, c_, d_ = aff[j].tolist()
            e = _num(c_) * _sympy_fn(sym.funs_name[j])(_num(a_) * z + _num(b_)) + _num(d_)
            new.append(sympy.simplify(e) if simplify else e)
        xs = new
    return _rounded(xs, floating_digits)


def _sympy_fn(name: str):
    """The sympy form of a library function; for one added without it, the
    undefined function ``sympy.Function(name)`` (as pykan does)."""
    fn = entry(name).sympy_fn
    return fn if fn is not None else sympy.Function(name)


def _rounded(xs: list, floating_digits) -> list:
    if floating_digits is None:
        return xs
    return [_round_floats(e, int(floating_digits)) for e in xs]


def _symbols(var, n_in: int) -> list:
    """The input symbols: x_1, x_2, ... by default, else var (symbols or names), n_in of them."""
    if var is None:
        return [sympy.Symbol(f"x_{t + 1}") for t in range(n_in)]
    xs = [v if isinstance(v, sympy.Basic) else sympy.Symbol(str(v)) for v in var]
    if len(xs) != n_in:
        raise ValueError(f"symbolic_formula: var must have {n_in} entries (one per input), got {len(xs)}")
    return xs


def _num(v):
    """A float as a sympy number (an Integer when it is one, exactly)."""
    v = float(v)
    return sympy.Integer(int(v)) if v == int(v) and abs(v) < 2**53 else sympy.Float(v)


def _round_number(v: float, digits: int) -> float:
    # pykan rounds to `digits` decimals (so tiny constants vanish); below 1 we
    # keep `digits` significant digits instead, so that a small factor like
    # 0.006074 in 0.006074 * (12.83 x)^2 is not coarsened to 0.0061.
    if round(v, digits) == 0:
        return 0.0
    if abs(v) >= 1:
        return round(v, digits)
    return round(v, digits - 1 - math.floor(math.log10(abs(v))))


def _round_floats(expr, digits: int):
    # sympy re-combines constants after a replacement (c * (a x)^2 -> (c a^2) x^2),
    # so round until nothing changes
    for _ in range(6):
        new = expr.xreplace({f: sympy.Float(_round_number(float(f), digits)) for f in expr.atoms(sympy.Float)})
        if new == expr:
            break
        expr = new
    return expr


def to_latex(expr) -> str:
    """LaTeX source of a formula (sympy.latex)."""
    return sympy.latex(sympy.sympify(expr))


_TORCH_FUNS = {
    sympy.exp: torch.exp, sympy.log: torch.log, sympy.sin: torch.sin, sympy.cos: torch.cos, sympy.tan: torch.tan,
    sympy.tanh: torch.tanh, sympy.sinh: torch.sinh, sympy.cosh: torch.cosh, sympy.asin: torch.arcsin,
    sympy.acos: torch.arccos, sympy.atan: torch.arctan, sympy.atanh: torch.arctanh, sympy.Abs: torch.abs,
    sympy.sign: torch.sign,
}


def to_torch(expr, var: Sequence) -> Callable[[Tensor], Tensor]:
    """A callable running the formula on tensors: ``fn(x)`` with x of shape
    (..., len(var)) returns (...); column t of x is var[t]. Supports +, *,
    powers, numbers (pi, E) and exp, log, sin, cos, tan, tanh, sinh, cosh,
    asin, acos, atan, atanh, Abs, sign, and the library's user functions
    added without a sympy form (by name)."""
    expr = sympy.sympify(expr)
    if isinstance(var, (str, sympy.Basic)):  # one variable
        var = [var]
    syms = [v if isinstance(v, sympy.Basic) else sympy.Symbol(str(v)) for v in var]
    index = {s: t for t, s in enumerate(syms)}
    missing = expr.free_symbols - set(index)
    if missing:
        raise ValueError(f"to_torch: the formula uses {sorted(map(str, missing))}, not in var={list(map(str, syms))}")
    compiled = _compile(expr, index)

    def fn(x: Tensor) -> Tensor:
        if x.shape[-1] != len(syms):
            raise ValueError(f"to_torch: expected input of shape (..., {len(syms)}), got {tuple(x.shape)}")
        out = compiled(x)
        if not isinstance(out, Tensor):
            return torch.full(x.shape[:-1], float(out), dtype=x.dtype, device=x.device)
        return out.expand(x.shape[:-1]) if out.shape != x.shape[:-1] else out

    return fn


def _compile(e, index):
    if e.is_Symbol:
        t = index[e]
        return lambda x: x[..., t]
    if e.is_Number or e.is_NumberSymbol:
        v = float(e)
        return lambda x: v
    args = [_compile(a, index) for a in e.args]
    if e.is_Add:
        def add(x):
            out = args[0](x)
            for g in args[1:]:
                out = out + g(x)
            return out
        return add
    if e.is_Mul:
        def mul(x):
            out = args[0](x)
            for g in args[1:]:
                out = out * g(x)
            return out
        return mul
    if e.is_Pow:
        base, ex = args
        if e.exp.is_Number:
            p = float(e.exp)
            if p == int(p):
                p = int(p)
            return lambda x: base(x) ** p
        return lambda x: torch.as_tensor(base(x)) ** ex(x)
    f = _TORCH_FUNS.get(type(e)) or _TORCH_FUNS.get(e.func)
    if f is None and isinstance(e, sympy.core.function.AppliedUndef) and str(e.func) in SYMBOLIC_LIB:
        f = SYMBOLIC_LIB[str(e.func)].torch_fn  # a user function added without a sympy form
    if f is not None and len(args) == 1:
        return lambda x: f(torch.as_tensor(args[0](x), dtype=x.dtype, device=x.device))
    raise ValueError(f"to_torch: cannot translate {e.func} (in {e}) to torch")
