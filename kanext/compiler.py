"""From a formula to a KAN: :func:`expr2kan` (pykan's ``kan.compiler``; also
named :func:`kanpiler` and :func:`sf2kan`).

A sympy expression is read as a tree of nodes, each a sum node (a sum of
edges plus a constant) or a multiplication node (a product of such sums, one
per factor), and laid out as a KAN with pykan's multiplication nodes. Every
edge is a fixed symbolic function of :data:`~kanext.symbolic.SYMBOLIC_LIB`,
``c * f(a * x + b) + d``, so the model computes the expression exactly (up
to float rounding) wherever the expression is real and finite.

How the expression maps to the network:

- ``k0 + k1 * t1 + k2 * t2 + ...`` (numbers k): one subnode with an edge per
  term, the constant k0 in the subnode bias, each k in its edge's c.
- ``f(a * u + b)`` for a library function f: one edge f with that a and b
  from the node computing u (u an input, or a deeper node).
- ``u1 * u2 * ...``: a multiplication node with one subnode per factor
  (division is multiplication by ``u ** -1``).
- powers: ``u**n`` for 2 <= |n| <= 5 and ``u**(1/2), u**(-1/2), u**(3/2)`` are
  one edge (x^n, 1/x^n, sqrt, 1/sqrt(x), x^1.5); a larger integer power is a
  multiplication node of such powers; any other exponent e (a number or an
  expression) is ``exp(e * log(u))``, exact where u > 0, which is where sympy's
  real power is defined for such exponents. A constant base ``c**u`` (c > 0)
  is ``exp(log(c) * u)``.
- sinh and cosh are two exp edges from the same node.
- a node used at a lower depth than its parent's layer reaches it through
  identity edges (``x``, a=1, b=0, c=1, d=0); identical nodes at the same
  depth are built once.
- two edges from one node into one subnode (``sin(x) + x**2``) are not possible
  in a KAN (one edge per pair): the second reads a copy of the node (an
  identity node for an input).
"""
from __future__ import annotations

import math
from typing import Sequence

import sympy
import torch

from .kan import KAN
from .symbolic.library import SYMBOLIC_LIB

__all__ = ["expr2kan", "kanpiler", "sf2kan", "CompileError"]

# sympy function -> library name
_UNARY = {
    sympy.exp: "exp", sympy.log: "log", sympy.sin: "sin", sympy.cos: "cos", sympy.tan: "tan",
    sympy.tanh: "tanh", sympy.Abs: "abs", sympy.sign: "sgn", sympy.asin: "arcsin", sympy.acos: "arccos",
    sympy.atan: "arctan", sympy.atanh: "arctanh",
}
# sympy function -> edges (library name, a, c) from the same node, summed: f(u) = sum c * g(a * u)
_SUMS = {
    sympy.sinh: (("exp", 1.0, 0.5), ("exp", -1.0, -0.5)),
    sympy.cosh: (("exp", 1.0, 0.5), ("exp", -1.0, 0.5)),
}
_POWERS = {2: "x^2", 3: "x^3", 4: "x^4", 5: "x^5", -1: "1/x", -2: "1/x^2", -3: "1/x^3", -4: "1/x^4", -5: "1/x^5"}
_HALF_POWERS = {sympy.Rational(1, 2): "sqrt", sympy.Rational(-1, 2): "1/sqrt(x)", sympy.Rational(3, 2): "x^1.5"}
_SUPPORTED = ("+, -, *, /, numbers (pi, E, ...), powers, " + ", ".join(sorted(
    [str(f) for f in _UNARY] + [str(f) for f in _SUMS])))


class CompileError(ValueError):
    """The expression cannot be compiled to a KAN (an unsupported function or operator)."""


class _Node:
    """A node of the network being built: an input (var), or a sum / mult node
    whose value is scale * prod(subnode values) + bias; a subnode is
    (edges, bias), its value the sum of its edges plus bias; an edge is
    (name, a, b, c, d, child node)."""

    __slots__ = ("kind", "var", "subs", "height", "scale", "bias")

    def __init__(self, kind, var=None, subs=(), scale=1.0, bias=0.0):
        self.kind, self.var, self.subs = kind, var, [(list(e), float(b)) for e, b in subs]
        self.scale, self.bias = float(scale), float(bias)
        self.height = 0 if kind == "in" else 1 + max((e[5].height for es, _ in self.subs for e in es), default=0)


class _Builder:
    def __init__(self, variables, expr_text):
        self.index = {v: t for t, v in enumerate(variables)}
        self.inputs = [_Node("in", var=t) for t in range(len(variables))]
        self.memo = {}
        self.expr_text = expr_text

    # ---- constants and affine splits
    def number(self, e) -> float:
        try:
            v = complex(sympy.N(e, 20))
        except (TypeError, ValueError):
            raise CompileError(f"expr2kan: cannot evaluate the constant {e} (in {self.expr_text})") from None
        if v.imag != 0 or not math.isfinite(v.real):
            raise CompileError(f"expr2kan: the constant {e} (in {self.expr_text}) is not a finite real number "
                               f"(it is {v}); expected real finite constants")
        return v.real

    def split_add(self, e):
        """e = const + sum(terms): (const, [terms])."""
        args = e.args if e.is_Add else (e,)
        const = sum((self.number(t) for t in args if t.is_number), 0.0)
        return const, [t for t in args if not t.is_number]

    def split_mul(self, t):
        """t = coef * core (t not a number, not an Add): (coef, [non-number factors])."""
        args = t.args if t.is_Mul else (t,)
        coef = 1.0
        for f in args:
            if f.is_number:
                coef *= self.number(f)
        return coef, [f for f in args if not f.is_number]

    def affine(self, e):
        """e = a * node + b: (a, b, node); node None for a constant e."""
        const, terms = self.split_add(e)
        if not terms:
            return 0.0, const, None
        if len(terms) == 1:
            coef, factors = self.split_mul(terms[0])
            return coef, const, self.node_of_factors(factors)
        return 1.0, const, self.sum_node(terms)

    # ---- nodes (memoised on their definition, so equal nodes are built once)
    def make(self, kind, subs, copy=0):
        key = (kind, copy, tuple((tuple((n, a, b, c, d, id(ch)) for n, a, b, c, d, ch in es), bias)
                                 for es, bias in subs))
        node = self.memo.get(key)
        if node is None:
            node = self.memo[key] = _Node(kind, subs=subs)
        return node

    def node_of_factors(self, factors, coef=1.0):
        """A node whose value is coef times the product of the (non-number) factors."""
        if len(factors) == 1 and coef == 1:
            return self.node_of(factors[0])
        subs = [self.sub_of(f) for f in factors]
        es, bias = subs[0]  # the number scales the first factor's subnode
        subs[0] = ([(n, a, b, c * coef, d * coef, ch) for n, a, b, c, d, ch in es], bias * coef)
        return self.make("mult" if len(subs) > 1 else "sum", subs)

    def node_of(self, e):
        """A node whose value is e (not a number)."""
        if e.is_Symbol:
            return self.inputs[self.index[e]]
        if e.is_Mul:
            coef, factors = self.split_mul(e)
            if len(factors) > 1:
                return self.node_of_factors(factors, coef)
        if e.is_Pow and e.exp.is_Integer and abs(int(e.exp)) > 5:
            return self.big_power(e.base, int(e.exp))
        return self.make("sum", [self.sub_of(e)])  # a sum, a function, a power, a number times one of them

    def sum_node(self, terms):
        sub = ([], 0.0)
        for t in terms:
            sub = self.add_term(sub, t)
        return self.make("sum", [sub])

    def sub_of(self, e):
        """A subnode (edges, bias) whose value is e."""
        const, terms = self.split_add(e)
        sub = ([], const)
        for t in terms:
            sub = self.add_term(sub, t)
        return sub

    def add_term(self, sub, t, scale=1.0):
        """sub plus scale times the term t (a non-number): coef * core as edges;
        a number times a sum adds the sum's terms (pi * (x + 1): pi * x + pi)."""
        edges, bias = sub
        coef, factors = self.split_mul(t)
        coef *= scale
        if len(factors) == 1 and factors[0].is_Add:
            const, terms = self.split_add(factors[0])
            sub = (edges, bias + coef * const)
            for u in terms:
                sub = self.add_term(sub, u, coef)
            return sub
        new = self.edges_of(factors[0]) if len(factors) == 1 else [("x", 1.0, 0.0, 1.0, 0.0, self.node_of_factors(factors))]
        for n, a, b, c, d, ch in new:
            edges = edges + [(n, a, b, c * coef, d * coef, self.distinct(ch, edges))]
        return edges, bias

    def distinct(self, child, edges):
        """child, or a copy of it if an edge of this subnode already reads child (one edge per pair)."""
        copies = 0
        used = {id(e[5]) for e in edges}
        node = child
        while id(node) in used:
            copies += 1
            if child.kind == "in":
                node = self.make("sum", [([("x", 1.0, 0.0, 1.0, 0.0, child)], 0.0)], copy=copies)
            else:
                node = self.make(child.kind, child.subs, copy=copies)
        return node

    def edge(self, name, arg, c=1.0):
        """The edge c * name(arg) as (name, a, b, c, 0, child) with arg = a * child + b."""
        a, b, child = self.affine(arg)
        if child is None:  # a constant argument: sympy evaluates those, but be safe
            raise CompileError(f"expr2kan: the argument {arg} of {name} (in {self.expr_text}) is constant")
        return (name, a, b, c, 0.0, child)

    def edges_of(self, e):
        """Edges (from one or more nodes) whose values sum to e, a single non-number term without a numeric factor."""
        if e.is_Symbol:
            return [("x", 1.0, 0.0, 1.0, 0.0, self.inputs[self.index[e]])]
        if e.is_Mul or e.is_Add:
            return [("x", 1.0, 0.0, 1.0, 0.0, self.node_of(e))]
        if e.is_Pow:
            return self.power_edges(e.base, e.exp)
        f = e.func
        if f in _UNARY and len(e.args) == 1:
            return [self.edge(_UNARY[f], e.args[0])]
        if f in _SUMS and len(e.args) == 1:
            _, a, b, _, _, child = self.edge(str(f), e.args[0])
            return [(n, s * a, s * b, c, 0.0, child) for n, s, c in _SUMS[f]]
        where = f"{e}" + ("" if str(e) == self.expr_text else f" (in {self.expr_text})")
        raise CompileError(f"expr2kan: unsupported {'function' if isinstance(e, sympy.Function) else 'operation'} "
                           f"{f} in {where}; expected an expression of {_SUPPORTED}")

    def power_edges(self, base, ex):
        if base.is_number:  # c ** u = exp(log(c) * u)
            c = self.number(base)
            if c <= 0:
                raise CompileError(f"expr2kan: the power {base}**({ex}) (in {self.expr_text}) has a base <= 0; "
                                   "expected a positive constant base")
            a, b, child = self.affine(ex)
            return [("exp", a * math.log(c), b * math.log(c), 1.0, 0.0, child)]
        if ex.is_number:
            v = self.number(ex)
            if v == int(v) and abs(v) < 2**31:
                n = int(v)
                if n == 1:
                    return [self.edge("x", base)]
                if n in _POWERS:
                    return [self.edge(_POWERS[n], base)]
                if n != 0:
                    return [("x", 1.0, 0.0, 1.0, 0.0, self.big_power(base, n))]
            for r, name in _HALF_POWERS.items():
                if v == float(r):
                    return [self.edge(name, base)]
        # u ** e = exp(e * log(u)) (real for u > 0)
        log_u = self.make("sum", [([self.edge("log", base)], 0.0)])
        if ex.is_number:
            return [("exp", self.number(ex), 0.0, 1.0, 0.0, log_u)]
        # exp(e * log(u)) with e an expression: a multiplication node e * log(u)
        prod = self.make("mult", [self.sub_of(ex), ([("x", 1.0, 0.0, 1.0, 0.0, log_u)], 0.0)])
        return [("exp", 1.0, 0.0, 1.0, 0.0, prod)]

    def big_power(self, base, n):
        """u ** n for |n| > 5: a multiplication node of powers of at most 5."""
        s = 1 if n > 0 else -1
        parts, left = [], abs(n)
        while left:
            p = min(left, 5)
            if left - p == 1:  # no part of 1: 6 = 4 + 2
                p = left - 2
            parts.append(p)
            left -= p
        subs = [([self.edge(_POWERS[s * p], base)], 0.0) for p in parts]
        return self.make("mult", subs)


def _check_inputs(input_variables, expr):
    if isinstance(input_variables, sympy.Symbol) or isinstance(input_variables, str):
        input_variables = [input_variables]
    try:
        variables = list(input_variables)
    except TypeError:
        raise TypeError(f"expr2kan: input_variables must be a list of sympy Symbols, got "
                        f"{type(input_variables).__name__}") from None
    bad = [v for v in variables if not isinstance(v, sympy.Symbol)]
    if bad or not variables:
        raise TypeError(f"expr2kan: input_variables must be a non-empty list of sympy Symbols (e.g. "
                        f"sympy.symbols('x y')), got {variables!r}")
    if len(set(variables)) != len(variables):
        raise ValueError(f"expr2kan: input_variables must be distinct, got {variables!r}")
    exprs = list(expr) if isinstance(expr, (list, tuple)) else [expr]
    if not exprs:
        raise ValueError("expr2kan: expected a sympy expression or a non-empty list of them, got an empty list")
    for e in exprs:
        if not isinstance(e, sympy.Expr):
            raise TypeError(f"expr2kan: expr must be a sympy expression (e.g. sympy.sin(x) + y**2) or a list of "
                            f"them, got {type(e).__name__} {e!r}; use sympy.sympify(text) for a string")
        extra = e.free_symbols - set(variables)
        if extra:
            same = sorted(str(v) for v in extra if str(v) in {str(u) for u in variables})
            hint = (f" (symbols named {same} are in input_variables, but with other assumptions, e.g. "
                    "positive=True: sympy treats them as different symbols)") if same else ""
            raise ValueError(f"expr2kan: the expression {e} uses {sorted(map(str, extra))}, which are not in "
                             f"input_variables={[str(v) for v in variables]}{hint}")
    return variables, exprs


def expr2kan(input_variables, expr, grid=5, k=3, auto_save=False, *, splines=False, dtype=None,
             device=None) -> KAN:
    """A :class:`~kanext.KAN` that computes ``expr``, with fixed symbolic edges
    (pykan's ``kan.compiler.expr2kan``; pykan's arguments in pykan's order).

    Args:
        input_variables: the sympy Symbols of the inputs, in input order
            (column t of the model's input is input_variables[t]); a symbol
            the expression does not use is an input with no edge.
        expr: a sympy expression in those symbols, or a list of them (one
            output each; kanext's extension).
        grid, k: the splines' grid intervals and order.
        auto_save: pykan's automatic checkpoint folder; kanext has none, so
            only False is accepted.
        splines: kanext's extension. False (pykan's model): every edge's
            spline is switched off (mask 0); training (``fit``) adjusts the
            symbolic edges' (a, b, c, d). True: every edge also keeps its
            spline switched on, starting at zero (coef and scale_base 0), so
            the model still equals the expression and ``fit`` can add
            spline corrections on any edge (``symbolic_formula`` then needs
            the splines fixed first, e.g. by ``auto_symbolic``).
        dtype, device: as for :class:`~kanext.KAN` (float64 for values
            exact to about 1e-14 relative; in float32 the constants are rounded).

    Each edge is ``c * f(a * x + b) + d`` with f from SYMBOLIC_LIB; numbers
    in the expression become the edges' a, b, c and the subnode and node
    affines (see the module docstring for the mapping). The model equals
    the expression wherever the expression is real and finite, and
    ``model.symbolic_formula(floating_digits=None)`` gives it back (as an
    equivalent expression).

    Raises:
        TypeError: input_variables not sympy Symbols, expr not a sympy expression.
        ValueError: the expression uses symbols not in input_variables;
            an unsupported function or operator (:class:`CompileError`);
            a non-real constant.
    """
    if auto_save:
        raise ValueError("expr2kan: auto_save=True is pykan's automatic checkpoint folder, which kanext does not "
                         "have; expected auto_save=False (save with model.save(path))")
    variables, exprs = _check_inputs(input_variables, expr)
    text = str(exprs[0]) if len(exprs) == 1 else str(exprs)
    bld = _Builder(variables, text)
    roots = []
    for e in exprs:
        a, b, node = bld.affine(e)
        if node is None:  # a constant output: a sum node without edges
            root = _Node("sum", subs=[([], 0.0)], scale=1.0, bias=b)
        else:
            if node.kind == "in":
                node = bld.make("sum", [([("x", 1.0, 0.0, 1.0, 0.0, node)], 0.0)])
            root = _Node(node.kind, subs=node.subs, scale=a * node.scale, bias=a * node.bias + b)
        roots.append(root)
    # several outputs: sum nodes must come before multiplication nodes; wrap the mult roots if not
    kinds = [r.kind for r in roots]
    if "mult" in kinds and "sum" in kinds[kinds.index("mult"):]:
        roots = [r if r.kind == "sum" else _Node("sum", subs=[([("x", 1.0, 0.0, 1.0, 0.0, r)], 0.0)])
                 for r in roots]
    depth = max(r.height for r in roots)
    for r in roots:
        r.height = depth
    return _build_model(bld, roots, depth, grid, k, splines, dtype, device)


def _build_model(bld, roots, depth, grid, k, splines, dtype, device) -> KAN:
    # identity chains: a child more than one layer below its parent reads it through pass-through nodes
    passes = {}

    def lifted(node, h):
        while node.height < h:
            key = (id(node), node.height + 1)
            nxt = passes.get(key)
            if nxt is None:
                nxt = passes[key] = _Node("sum", subs=[([("x", 1.0, 0.0, 1.0, 0.0, node)], 0.0)])
            node = nxt
        return node

    levels = [list(bld.inputs)] + [[] for _ in range(depth)]
    levels[depth] = list(roots)
    seen = {id(n) for n in roots}
    for h in range(depth, 0, -1):
        # this level's sum nodes first, then its mult nodes (pykan's layout); roots keep their order
        if h < depth:
            levels[h] = [n for n in levels[h] if n.kind == "sum"] + [n for n in levels[h] if n.kind == "mult"]
        for node in levels[h]:
            for es, _ in node.subs:
                for t, e in enumerate(es):
                    ch = lifted(e[5], h - 1)
                    es[t] = e[:5] + (ch,)
                    if id(ch) not in seen and ch.kind != "in":
                        seen.add(id(ch))
                        levels[h - 1].append(ch)
    pos = [{id(n): t for t, n in enumerate(lv)} for lv in levels]
    width = [[len(bld.inputs), 0]] + [[sum(n.kind == "sum" for n in lv), sum(n.kind == "mult" for n in lv)]
                                      for lv in levels[1:]]
    arities = [[len(n.subs) for n in lv if n.kind == "mult"] for lv in levels]
    model = KAN(width, grid=grid, k=k, mult_arity=arities, noise_scale=0.0, scale_base_mu=0.0,
                scale_base_sigma=0.0, dtype=dtype, device=device)
    with torch.no_grad():
        for layer in model.act_fun:  # splines at exactly zero: they add nothing until trained
            layer.coef.zero_()
            layer.scale_base.zero_()
            layer.mask.fill_(1.0 if splines else 0.0)
        for h in range(1, depth + 1):
            l = h - 1
            groups = model.subnode_groups(h)
            sym = model.symbolic_fun[l]
            for j, node in enumerate(levels[h]):
                model.node_scale[l][j] = node.scale
                model.node_bias[l][j] = node.bias
                for s, (es, bias) in zip(groups[j], node.subs):
                    model.subnode_bias[l][s] = bias
                    for name, a, b, c, d, ch in es:
                        i = pos[l][id(ch)]
                        if sym.funs_name[s][i] != "0":
                            raise AssertionError(f"expr2kan: edge ({l},{i},{s}) set twice")  # guarded by distinct()
                        sym.set_edge(i, s, name, (a, b, c, d))
    return model


kanpiler = sf2kan = expr2kan
