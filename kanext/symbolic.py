"""Symbolic regression on a KAN: fix edges to c * f(a * x + b) + d, suggest and
fit such functions in batches, and read the network off as a sympy formula.

Public API:
    SYMBOLIC_LIB        name -> SymbolicFunction (torch fn, sympy fn, complexity, safe torch fn)
    add_symbolic        register a user function
    SymbolicLayer       the per-layer symbolic branch of a KAN (``model.symbolic_fun[l]``)
    fit_params          batched (a, b, c, d) fitting of many functions on many edges
    to_latex, to_torch  a formula as LaTeX, or as a callable on tensors

The KAN methods (``fix_symbolic``, ``suggest_symbolic``, ``auto_symbolic``,
``symbolic_formula``, ...) are thin wrappers around the functions of the same
name here.

Singularities: the forward pass and the formula use the plain functions, so
they agree wherever the formula is defined. Fitting never accepts an (a, b)
for which the plain function is non-finite on a fitting point: such a
candidate scores r2 = 0, and scores, parameters and the fitted edge outputs on
the data stay finite. ``SymbolicLayer.forward(x, singularity_avoiding=True)``
evaluates the safe variants instead (bounded by ``y_th``), for inputs outside
the data the edges were fitted on.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import sympy
import torch
from torch import Tensor, nn

__all__ = [
    "SYMBOLIC_LIB", "SymbolicFunction", "add_symbolic", "SymbolicLayer", "fit_params", "to_latex", "to_torch",
    "fix_symbolic", "unfix_symbolic", "unfix_symbolic_all", "suggest_symbolic", "auto_symbolic", "symbolic_formula",
]


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


def _safe_arctanh(x, y_th):
    lim = math.tanh(y_th)
    return torch.arctanh(x.clamp(-lim, lim))


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
    ("log", torch.log, sympy.log, 2, lambda x, y_th: torch.log(x.clamp_min(math.exp(-y_th)))),
    ("abs", torch.abs, sympy.Abs, 3, None),
    ("sin", torch.sin, sympy.sin, 2, None),
    ("cos", torch.cos, sympy.cos, 2, None),
    ("tan", torch.tan, sympy.tan, 3, _safe_tan),
    ("tanh", torch.tanh, sympy.tanh, 3, None),
    ("sgn", torch.sign, sympy.sign, 3, None),
    ("arcsin", torch.arcsin, sympy.asin, 4, lambda x, y_th: torch.arcsin(x.clamp(-1, 1))),
    ("arccos", torch.arccos, sympy.acos, 4, lambda x, y_th: torch.arccos(x.clamp(-1, 1))),
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


def add_symbolic(name: str, torch_fn: Callable[[Tensor], Tensor], sympy_fn: Callable | None = None,
                 complexity: float = 2, safe_fn: Callable[[Tensor, float], Tensor] | None = None) -> None:
    """Adds (or replaces) a user function in :data:`SYMBOLIC_LIB`.

    Args:
        name: library key (a non-empty str; the built-in names cannot be replaced).
        torch_fn: elementwise function on tensors.
        sympy_fn: the same function on sympy expressions (needed by
            symbolic_formula; None if you only fit and train with it).
        complexity: its cost in suggest_symbolic's score (pykan's scale: x is 1, sin 2, tanh 3).
        safe_fn: ``safe_fn(x, y_th)``, a finite variant (default: torch_fn).

    Checkpoints store only the name: register the function again (same name)
    before loading a model that uses it.
    """
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
    SYMBOLIC_LIB[name] = SymbolicFunction(name, torch_fn, sympy_fn, complexity, safe_fn or _same(torch_fn))


def _entry(name: str) -> SymbolicFunction:
    try:
        return SYMBOLIC_LIB[name]
    except KeyError:
        raise ValueError(
            f"unknown symbolic function {name!r}: expected one of {sorted(SYMBOLIC_LIB)} "
            "(register your own with kanext.symbolic.add_symbolic)"
        ) from None


def _resolve(fun) -> str:
    """A library name for fun: a name, or a callable (registered under its __name__)."""
    if isinstance(fun, str):
        _entry(fun)
        return fun
    if callable(fun):
        name = getattr(fun, "__name__", None)
        if not name or name == "<lambda>":
            raise ValueError("fix_symbolic: a callable fun needs a name: register it with add_symbolic(name, fn, sympy_fn)")
        entry = SYMBOLIC_LIB.get(name)
        if entry is None:
            add_symbolic(name, fun)
        elif entry.torch_fn is not fun:
            raise ValueError(f"fix_symbolic: the name {name!r} of the callable is taken by another library function")
        return name
    raise TypeError(f"fix_symbolic: fun must be a library name or a callable, got {type(fun).__name__}")


# ------------------------------------------------------------------ the layer


class SymbolicLayer(nn.Module):
    """The symbolic branch of one KAN layer (pykan's Symbolic_KANLayer shapes):
    edge i -> j, when fixed, adds ``mask[j, i] * (c * f(a * x_i + b) + d)`` to
    output j, with ``affine[j, i] = (a, b, c, d)``.

    Attributes:
        mask: buffer (out, in), 0 where the edge is not symbolic.
        affine: parameter (out, in, 4), trained by fit().
        funs_name: list of lists, ``funs_name[j][i]`` the library name ('0' when not fixed).

    The forward computes only the fixed edges: one vectorised call per
    function present (x columns gathered, results index-added into the
    output); with no fixed edge it returns zeros.
    """

    def __init__(self, in_features: int, out_features: int, device=None, dtype=None):
        super().__init__()
        for nm, v in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"SymbolicLayer: {nm} must be an int >= 1, got {v!r}")
        self.in_features, self.out_features = in_features, out_features
        kw = dict(device=device, dtype=dtype or torch.get_default_dtype())
        self.register_buffer("mask", torch.zeros(out_features, in_features, **kw))
        self.affine = nn.Parameter(torch.zeros(out_features, in_features, 4, **kw))
        self.funs_name = [["0"] * in_features for _ in range(out_features)]
        self._groups = None
        self.invalidate()

    @property
    def in_dim(self) -> int:
        return self.in_features

    @property
    def out_dim(self) -> int:
        return self.out_features

    def invalidate(self) -> None:
        """Rebuilds the grouping of fixed edges by function (call after
        editing mask or funs_name by hand; the forward also notices a changed
        mask by itself, except under torch.compile)."""
        self._groups = None
        if self.mask.device.type != "meta":
            self.groups()

    def groups(self) -> list[tuple[str, Tensor, Tensor]]:
        """[(name, j_idx, i_idx)] of the fixed edges (mask != 0), by function.

        Cached; rebuilt eagerly when the mask tensor or its contents change.
        Under torch.compile the cached grouping is used as is (dynamo guards
        on it), so the graph holds no data-dependent control flow."""
        if torch.compiler.is_compiling():
            return self._groups[1] if self._groups is not None else []
        key = (id(self.mask), self.mask._version, self.mask.device)
        if self._groups is None or self._groups[0] != key:
            nz = torch.nonzero(self.mask.detach().cpu() != 0).tolist()
            by_name: dict[str, list[tuple[int, int]]] = {}
            for j, i in nz:
                by_name.setdefault(self.funs_name[j][i], []).append((j, i))
            dev = self.mask.device
            groups = [(name, torch.tensor([e[0] for e in es], device=dev), torch.tensor([e[1] for e in es], device=dev))
                      for name, es in by_name.items()]
            self._groups = (key, groups)
        return self._groups[1]

    @property
    def n_fixed(self) -> int:
        return sum(int(j.numel()) for _, j, _ in self.groups())

    def forward(self, x: Tensor, singularity_avoiding: bool = False, y_th: float = 10.0) -> Tensor:
        """x (..., in) -> (..., out): the sum over fixed edges of mask * (c f(a x_i + b) + d)."""
        if x.dim() == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"SymbolicLayer: expected input of shape (..., {self.in_features}), got {tuple(x.shape)}")
        lead = x.shape[:-1]
        x = x.reshape(-1, self.in_features)
        y = x.new_zeros(x.shape[0], self.out_features)
        for name, J, I in self.groups():
            entry = _entry(name)
            p = self.affine[J, I]  # (E, 4)
            z = p[:, 0] * x[:, I] + p[:, 1]
            f = entry.safe_fn(z, y_th) if singularity_avoiding else entry.torch_fn(z)
            y = y.index_add(1, J, self.mask[J, I] * (p[:, 2] * f + p[:, 3]))
        return y.reshape(*lead, self.out_features)

    def edge_values(self, x: Tensor) -> Tensor:
        """x (P, in) -> (P, out, in): each fixed edge's value mask * (c f(a x_i + b) + d),
        0 for the others (pykan's per-edge layout; for plots of a few points)."""
        x = x.reshape(-1, self.in_features)
        v = x.new_zeros(x.shape[0], self.out_features, self.in_features)
        for name, J, I in self.groups():
            p = self.affine[J, I]
            f = _entry(name).torch_fn(p[:, 0] * x[:, I] + p[:, 1])
            v[:, J, I] = self.mask[J, I] * (p[:, 2] * f + p[:, 3])
        return v

    @torch.no_grad()
    def set_edge(self, i: int, j: int, name: str, params=None) -> None:
        """Fixes edge i -> j to the library function ``name`` with (a, b, c, d) = params (default (1, 0, 1, 0))."""
        _entry(name)
        self.funs_name[j][i] = name
        p = (1.0, 0.0, 1.0, 0.0) if params is None else params
        self.affine[j, i] = torch.as_tensor(p, dtype=self.affine.dtype).to(self.affine.device)
        self.mask[j, i] = 1.0
        self.invalidate()

    @torch.no_grad()
    def unset_edge(self, i: int, j: int) -> None:
        self.funs_name[j][i] = "0"
        self.mask[j, i] = 0.0
        self.affine[j, i] = 0.0
        self.invalidate()

    @torch.no_grad()
    def copy_from(self, other: "SymbolicLayer") -> None:
        """Takes other's mask, affine and names (same shapes)."""
        if (other.in_features, other.out_features) != (self.in_features, self.out_features):
            raise ValueError("SymbolicLayer.copy_from: shapes differ")
        self.mask.copy_(other.mask)
        self.affine.copy_(other.affine)
        self.funs_name = [list(r) for r in other.funs_name]
        self.invalidate()

    @torch.no_grad()
    def subset(self, in_idx: Sequence[int], out_idx: Sequence[int]) -> "SymbolicLayer":
        """A new layer keeping the inputs in_idx and outputs out_idx (in that order)."""
        in_idx, out_idx = [int(v) for v in in_idx], [int(v) for v in out_idx]
        for nm, idx, n in (("in_idx", in_idx, self.in_features), ("out_idx", out_idx, self.out_features)):
            if not idx or any(v < 0 or v >= n for v in idx):
                raise ValueError(f"SymbolicLayer.subset: {nm} must be non-empty indices in [0, {n}), got {idx}")
        new = SymbolicLayer(len(in_idx), len(out_idx), device=self.mask.device, dtype=self.mask.dtype)
        ii = torch.tensor(in_idx, device=self.mask.device)
        jj = torch.tensor(out_idx, device=self.mask.device)
        new.mask.copy_(self.mask[jj][:, ii])
        new.affine.copy_(self.affine[jj][:, ii])
        new.affine.requires_grad_(self.affine.requires_grad)
        new.funs_name = [[self.funs_name[j][i] for i in in_idx] for j in out_idx]
        return new

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, fixed={self.n_fixed}"


# ---------------------------------------------------------------- fitting


def fit_params(x: Tensor, y: Tensor, names: Sequence[str], a_range=(-10.0, 10.0), b_range=(-10.0, 10.0),
               grid_number: int = 21, iteration: int = 7, search_points: int = 256, zoom_number: int = 11,
               chunk_elems: int = 1 << 18) -> tuple[Tensor, Tensor]:
    """Fits y ~ c * f(a * x + b) + d for every edge and every function at once.

    Args:
        x, y: (E, P) inputs and outputs of E edges (or (P,) for one edge).
        names: C library names.
        a_range, b_range: the first grid's spans of a and b, in units where
            each edge's inputs are standardised (mean 0, std 1), so that the
            search does not depend on the input scale; the returned (a, b)
            act on x itself.
        grid_number, zoom_number, iteration: ``iteration`` passes of a grid
            search over (a, b): a grid_number x grid_number grid over the
            ranges, then zoom_number x zoom_number grids over +-1 step of the
            previous pass around its best point (the defaults end with a step
            of 6.4e-5 of the initial span / 20, as fine as pykan's 101 x 101 x 3).
        search_points: the grid search uses at most this many points per edge
            (evenly spaced in sorted x, extremes included); c, d and the
            returned r2 use all points.
    Returns:
        params (E, C, 4) holding (a, b, c, d) and r2 (E, C), float64, always finite.

    r2 of (a, b) is corr(f(a x + b), y)^2 from closed-form sums; (a, b) for which
    f is not finite on some point get r2 = 0, and so do constant f or y.
    """
    x = torch.as_tensor(x)
    y = torch.as_tensor(y)
    if x.shape != y.shape or x.dim() not in (1, 2) or x.shape[-1] < 1:
        raise ValueError(f"fit_params: x and y must have the same shape (P,) or (E, P), got {tuple(x.shape)} and {tuple(y.shape)}")
    if grid_number < 3 or zoom_number < 3 or iteration < 1:
        raise ValueError(f"fit_params: need grid_number >= 3, zoom_number >= 3 and iteration >= 1, "
                         f"got {grid_number}, {zoom_number}, {iteration}")
    entries = [_entry(n) for n in names]
    single = x.dim() == 1
    x = x.detach().to(torch.float64).reshape(-1, x.shape[-1])
    y = y.detach().to(torch.float64).reshape(-1, y.shape[-1])
    E, P = x.shape
    C = len(entries)
    dev = x.device
    # Search in standardised units, u = (x - mu) / sd, so that the grid's
    # resolution does not depend on the edge's input scale; then map back.
    mu = x.mean(1, keepdim=True)
    sd = x.std(1, keepdim=True, correction=0)
    sd = torch.where(sd > 0, sd, torch.ones_like(sd))
    x = (x - mu) / sd
    if P > search_points:
        sel = torch.linspace(0, P - 1, search_points, device=dev).round().long()
        order = torch.argsort(x, dim=1)[:, sel]
        xs, ys = torch.gather(x, 1, order), torch.gather(y, 1, order)
    else:
        xs, ys = x, y
    yc = ys - ys.mean(1, keepdim=True)
    syy = (yc * yc).sum(1)  # (E,)
    W = torch.stack([torch.ones_like(yc), yc], dim=2)  # (E, S, 2): one GEMM gives sum f and sum f yc
    a_mid = torch.full((E, C), (a_range[0] + a_range[1]) / 2, dtype=torch.float64, device=dev)
    b_mid = torch.full((E, C), (b_range[0] + b_range[1]) / 2, dtype=torch.float64, device=dev)
    a_half = torch.full((E, C), (a_range[1] - a_range[0]) / 2, dtype=torch.float64, device=dev)
    b_half = torch.full((E, C), (b_range[1] - b_range[0]) / 2, dtype=torch.float64, device=dev)
    S = xs.shape[1]
    # functions that are the same torch callable (sqrt and x^0.5, ...) are searched once
    first_of: dict[int, int] = {}
    for c, entry in enumerate(entries):
        first_of.setdefault(id(entry.torch_fn), c)
    for it in range(iteration):
        G = grid_number if it == 0 else zoom_number
        t = torch.linspace(-1, 1, G, dtype=torch.float64, device=dev)
        A = a_mid[..., None] + a_half[..., None] * t  # (E, C, G)
        B = b_mid[..., None] + b_half[..., None] * t
        best = torch.empty(E, C, dtype=torch.long, device=dev)
        step = max(1, chunk_elems // (G * G * S))
        for c, entry in enumerate(entries):
            c0 = first_of[id(entry.torch_fn)]
            if c0 != c:
                best[:, c] = best[:, c0]
                continue
            for e0 in range(0, E, step):
                sl = slice(e0, e0 + step)
                z = torch.addcmul(B[sl, c, None, :, None], A[sl, c, :, None, None], xs[sl, None, None, :])  # (e, G, G, S)
                r2 = _r2(entry.torch_fn(z).reshape(z.shape[0], G * G, S), W[sl], syy[sl, None])
                best[sl, c] = r2.argmax(1)
        ia, ib = best // G, best % G
        a_mid = torch.gather(A, 2, ia[..., None])[..., 0]
        b_mid = torch.gather(B, 2, ib[..., None])[..., 0]
        a_half = a_half * 2 / (G - 1)
        b_half = b_half * 2 / (G - 1)
    # c, d and r2 on all points
    params = torch.zeros(E, C, 4, dtype=torch.float64, device=dev)
    r2_all = torch.zeros(E, C, dtype=torch.float64, device=dev)
    ym = y.mean(1)
    yca = y - ym[:, None]
    syya = (yca * yca).sum(1)
    for c, entry in enumerate(entries):
        f = entry.torch_fn(a_mid[:, c, None] * x + b_mid[:, c, None])  # (E, P)
        ok = torch.isfinite(f).all(1)
        f = torch.where(torch.isfinite(f), f, torch.zeros_like(f))
        fm = f.mean(1)
        fc = f - fm[:, None]
        sff = (fc * fc).sum(1)
        sfy = (fc * yca).sum(1)
        good = ok & (sff > _flat_tol(fm, P)) & torch.isfinite(sff) & torch.isfinite(sfy)
        cc = torch.where(good, sfy / torch.where(good, sff, torch.ones_like(sff)), torch.zeros_like(sff))
        dd = torch.where(good, ym - cc * fm, ym)
        r2 = torch.where(good & (syya > 0), sfy * sfy / torch.where(good, sff, torch.ones_like(sff)) / syya.clamp_min(1e-300),
                         torch.zeros_like(sff))
        a_x = a_mid[:, c] / sd[:, 0]  # a u + b = a_x x + b_x
        b_x = b_mid[:, c] - a_mid[:, c] * mu[:, 0] / sd[:, 0]
        params[:, c] = torch.stack([a_x, b_x, cc, dd], dim=1)
        r2_all[:, c] = r2.clamp(0, 1)
    params = torch.nan_to_num(params, nan=0.0, posinf=0.0, neginf=0.0)
    r2_all = torch.nan_to_num(r2_all, nan=0.0)
    if single:
        return params[0], r2_all[0]
    return params, r2_all


def fit_one(x: Tensor, y: Tensor, name: str, a_range, b_range, verbose, what: str) -> tuple[list[float], float]:
    """(a, b, c, d) and r2 of c * name(a x + b) + d fitted to the samples y(x);
    prints r2 (and a warning below 0.9) when verbose. `what` names the fitted
    thing in the warning ('edge', 'node'). Shared by the KAN and LAN fix_symbolic."""
    p, r = fit_params(x, y, [name], a_range, b_range)
    params, r2 = p[0].tolist(), float(r[0])
    if verbose:
        print(f"r2 is {r2:.6g}")
        if r2 < 0.9:
            print(f"r2 is not very high; check that the symbolic function fits this {what}")
    return params, r2


def _flat_tol(fm: Tensor, n: int) -> Tensor:
    # f constant up to rounding: its centred sum of squares is rounding noise
    return n * (1e-10 * fm) ** 2 + 1e-300


def _r2(f: Tensor, W: Tensor, syy: Tensor) -> Tensor:
    """corr(f, y)^2 over the last axis of f (e, K, S), with W (e, S, 2) =
    [1, y - mean(y)] and syy (e, 1) = sum (y - mean y)^2. 0 where f is not
    finite somewhere (the sums then are not finite), or f or y is constant."""
    n = f.shape[-1]
    # shift by one sample of f: the variance is unchanged and the one-pass
    # sum of squares below does not cancel catastrophically
    ref = f[..., n // 2: n // 2 + 1]
    fr = f - ref
    sums = torch.bmm(fr, W)  # (e, K, 2)
    sf, sfy = sums[..., 0], sums[..., 1]
    sff = torch.linalg.vector_norm(fr, dim=-1) ** 2 - sf * sf / n
    fm = ref[..., 0] + sf / n
    good = torch.isfinite(sff) & torch.isfinite(sfy) & (sff > _flat_tol(fm, n)) & (syy > 0)
    r2 = sfy * sfy / (torch.where(good, sff, torch.ones_like(sff)) * torch.where(syy > 0, syy, torch.ones_like(syy)))
    return torch.where(good, torch.nan_to_num(r2, nan=0.0, posinf=0.0), torch.zeros_like(r2))


# --------------------------------------------------------- model-level methods


def _check_edge(model, l, i, j):
    for nm, v in (("l", l), ("i", i), ("j", j)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"expected an int for {nm}, got {v!r}")
    if not 0 <= l < model.depth:
        raise ValueError(f"layer index l={l} out of range: the model has {model.depth} layers")
    layer = model.act_fun[l]
    if not (0 <= i < layer.in_features and 0 <= j < layer.out_features):
        raise ValueError(f"edge ({l},{i},{j}) out of range: layer {l} is {layer.in_features} -> {layer.out_features}")


def _recorded_inputs(model) -> Tensor:
    """The recorded network inputs acts[0] (from a forward with save_act=True),
    or, failing that, model.cache_data (the last fit inputs)."""
    acts = getattr(model, "acts", None)
    if acts:
        return acts[0]
    cache = getattr(model, "cache_data", None)
    if cache is not None:
        return cache
    raise RuntimeError(
        "no recorded activations: run a forward with model.save_act = True on representative inputs "
        "(e.g. model.save_act = True; model(dataset['train_input'])) or fit() the model first"
    )


def _layer_input(model, l: int) -> Tensor:
    acts = getattr(model, "acts", None)
    if acts and len(acts) > l and acts[l].shape[-1] == model.width[l]:
        x = acts[l]
    else:
        x = model.layer_inputs(_recorded_inputs(model))[l]
    return x[torch.isfinite(x).all(1)]


@torch.no_grad()
def _edge_outputs(layer, x: Tensor, I: Tensor, J: Tensor) -> Tensor:
    """phi_{I_e -> J_e}(x[:, I_e]) of the spline path, (N, E), for the listed edges only."""
    from . import reference

    uniq, pos = torch.unique(I, return_inverse=True)
    xu = x[:, uniq]
    B = reference.spline_basis(xu, layer.grid[uniq], layer.k)  # (N, U, G+k)
    coef = layer.coef[I, J] * (layer.scale_sp[I, J])[:, None]  # (E, G+k)
    spline = torch.einsum("neg,eg->ne", B[:, pos, :], coef)
    base = layer.base_fun(xu) if callable(layer.base_fun) else reference.base_function(layer.base_fun, xu)
    return layer.mask[I, J] * (base[:, pos] * layer.scale_base[I, J] + spline)


@torch.no_grad()
def fixed_edge_stats(layer, sym: SymbolicLayer, x: Tensor, scale: Tensor, l1: Tensor) -> None:
    """Overwrites, for the fixed edges of one layer, the recorded edge
    statistics scale (pykan's std(phi) / (std(x) + 0.1)) and l1 (mean |phi|),
    both (out, in), with those of the whole edge: spline (if still on) plus
    symbolic. Cost O(N * fixed edges)."""
    for name, J, I in sym.groups():
        p = sym.affine[J, I]
        phi = sym.mask[J, I] * (p[:, 2] * _entry(name).torch_fn(p[:, 0] * x[:, I] + p[:, 1]) + p[:, 3])
        phi = phi + _edge_outputs(layer, x, I, J)
        l1[J, I] = phi.abs().mean(0).to(l1.dtype)
        if x.shape[0] > 1:
            scale[J, I] = (phi.std(0) / (x[:, I].std(0) + 0.1)).to(scale.dtype)


def fix_symbolic(model, l, i, j, fun, fit_params=True, a_range=(-10, 10), b_range=(-10, 10), verbose=True):
    """Sets edge (l, i, j) to c * fun(a * x + b) + d and returns the fit's r2
    (None when fit_params is False: then (a, b, c, d) = (1, 0, 1, 0)).

    The parameters are fitted to the edge's spline on the layer's recorded
    inputs (``model.acts``, from a forward with ``model.save_act = True``, or
    else the inputs implied by ``model.cache_data``). The edge leaves the
    spline path (act_fun[l].mask[i, j] = 0) and joins the symbolic one.
    """
    _check_edge(model, l, i, j)
    name = _resolve(fun)
    sym = model.symbolic_fun[l]
    layer = model.act_fun[l]
    r2 = None
    params = None
    if fit_params:
        x = _layer_input(model, l)
        if x.shape[0] < 2:
            raise RuntimeError(f"fix_symbolic: need at least 2 finite recorded inputs for layer {l}, got {x.shape[0]}")
        I = torch.tensor([i], device=x.device)
        J = torch.tensor([j], device=x.device)
        y = _edge_outputs(layer, x, I, J)[:, 0]
        params, r2 = fit_one(x[:, i], y, name, a_range, b_range, verbose, "edge")
    with torch.no_grad():
        layer.mask[i, j] = 0.0
    sym.set_edge(i, j, name, params)
    return r2


def unfix_symbolic(model, l, i, j):
    """Returns edge (l, i, j) to its spline (mask 1) and clears its symbolic function."""
    _check_edge(model, l, i, j)
    with torch.no_grad():
        model.act_fun[l].mask[i, j] = 1.0
    model.symbolic_fun[l].unset_edge(i, j)


def unfix_symbolic_all(model):
    """Unfixes every symbolic edge (only those; pruned edges stay pruned)."""
    for l, sym in enumerate(model.symbolic_fun):
        for _, J, I in sym.groups():
            for j, i in zip(J.tolist(), I.tolist()):
                unfix_symbolic(model, l, i, j)


def _lib_names(lib) -> list[str]:
    names = list(SYMBOLIC_LIB) if lib is None else list(lib)
    if not names:
        raise ValueError("lib must name at least one function")
    for n in names:
        _entry(n)
    return names


def _scores(r2: Tensor, names: list[str], weight_simple: float) -> Tensor:
    """pykan's ranking loss (lower is better): weight_simple * complexity + (1 - weight_simple) * log2(1 + 1e-5 - r2)."""
    comp = torch.tensor([float(_entry(n).complexity) for n in names], dtype=torch.float64, device=r2.device)
    return weight_simple * comp + (1 - weight_simple) * torch.log2(1 + 1e-5 - r2)


def suggest_symbolic(model, l, i, j, lib=None, topk=5, weight_simple=0.8, a_range=(-10, 10), b_range=(-10, 10),
                     verbose=True):
    """Ranks the library functions for edge (l, i, j): a list of
    (name, r2, complexity, score), best (lowest score) first, topk long;
    printed as a table when verbose. score = weight_simple * complexity +
    (1 - weight_simple) * log2(1 + 1e-5 - r2), as pykan ranks."""
    _check_edge(model, l, i, j)
    if not 0 <= weight_simple <= 1:
        raise ValueError(f"weight_simple must be in [0, 1], got {weight_simple}")
    names = _lib_names(lib)
    x = _layer_input(model, l)
    layer = model.act_fun[l]
    dev = x.device
    y = _edge_outputs(layer, x, torch.tensor([i], device=dev), torch.tensor([j], device=dev))[:, 0]
    return rank_candidates(x[:, i], y, names, a_range, b_range, weight_simple, topk, verbose)


def rank_candidates(x: Tensor, y: Tensor, names: list[str], a_range, b_range, weight_simple: float, topk: int,
                    verbose) -> list[tuple[str, float, float, float]]:
    """Fits every candidate function to the samples y(x) (one batched fit) and
    returns the topk rows (name, r2, complexity, score), best (lowest score)
    first; prints them as a table when verbose. Shared by the KAN edge and the
    LAN node versions of suggest_symbolic."""
    _, r2 = fit_params(x, y, names, a_range, b_range)
    score = _scores(r2, names, weight_simple)
    order = torch.argsort(score, stable=True)[: max(1, int(topk))].tolist()
    rows = [(names[c], float(r2[c]), _entry(names[c]).complexity, float(score[c])) for c in order]
    if verbose:
        print(f"{'function':>12} {'r2':>12} {'complexity':>10} {'score':>10}")
        for n, r, c, s in rows:
            print(f"{n:>12} {r:12.6f} {c:10g} {s:10.4f}")
    return rows


def auto_symbolic(model, lib=None, weight_simple=0.8, r2_threshold=0.0, verbose=1, a_range=(-10, 10),
                  b_range=(-10, 10)):
    """Fixes every active spline edge to its best suggestion (one batched fit
    per layer over all its edges and all lib functions); dead edges (spline
    and symbolic masks both 0) get '0'; edges already symbolic are kept.
    Layers are done in order, each on the inputs produced by the already
    converted layers before it. An edge whose best r2 is below r2_threshold
    stays a spline. Returns {(l, i, j): (name, r2)} for the edges fixed."""
    names = _lib_names(lib)
    x0 = _recorded_inputs(model)
    done = {}
    for l in range(model.depth):
        layer, sym = model.act_fun[l], model.symbolic_fun[l]
        x = model.layer_inputs(x0)[l]
        x = x[torch.isfinite(x).all(1)]
        act_on = layer.mask.detach() != 0  # (in, out)
        sym_on = sym.mask.detach().T != 0
        dead = (~act_on & ~sym_on).nonzero().tolist()
        for i, j in dead:
            sym.set_edge(i, j, "0", (0.0, 0.0, 0.0, 0.0))
            if verbose >= 2:
                print(f"fixing ({l},{i},{j}) with 0")
        edges = act_on.nonzero()
        if edges.shape[0] == 0:
            continue
        I, J = edges[:, 0].to(x.device), edges[:, 1].to(x.device)
        y = _edge_outputs(layer, x, I, J)  # (N, E)
        params, r2 = fit_params(x[:, I].T, y.T, names, a_range, b_range)
        score = _scores(r2, names, weight_simple)
        best = score.argmin(1)
        for e, (i, j) in enumerate(zip(I.tolist(), J.tolist())):
            c = int(best[e])
            r = float(r2[e, c])
            if r >= r2_threshold:
                with torch.no_grad():
                    layer.mask[i, j] = 0.0
                sym.set_edge(i, j, names[c], params[e, c].tolist())
                done[(l, i, j)] = (names[c], r)
                if verbose >= 1:
                    print(f"fixing ({l},{i},{j}) with {names[c]}, r2={r:.6g}, c={_entry(names[c]).complexity}")
            elif verbose >= 1:
                print(f"({l},{i},{j}): best fit {names[c]} has r2={r:.6g} < r2_threshold={r2_threshold}; kept as a spline")
    return done


# ------------------------------------------------------------- checkpoints


def checkpoint_state(model):
    """Extension data for kanext.checkpoint: the function names per layer, or
    None when the model has no symbolic edge names to keep."""
    syms = getattr(model, "symbolic_fun", None)
    if syms is None or all(n == "0" for s in syms for row in s.funs_name for n in row):
        return None
    return {"funs_name": [s.funs_name for s in syms]}


def restore_checkpoint_state(model, data) -> None:
    """Restores funs_name (checkpoint load, before tensors are loaded); every
    name must be in SYMBOLIC_LIB (register user functions with add_symbolic first)."""
    names = data["funs_name"]
    syms = model.symbolic_fun
    if not isinstance(names, list) or len(names) != len(syms):
        raise ValueError(f"expected funs_name for {len(syms)} layers, found {names!r}")
    for l, (s, rows) in enumerate(zip(syms, names)):
        if (not isinstance(rows, list) or len(rows) != s.out_features
                or any(not isinstance(r, list) or len(r) != s.in_features for r in rows)):
            raise ValueError(f"layer {l}: expected {s.out_features} x {s.in_features} function names, found {rows!r}")
        for j, row in enumerate(rows):
            for i, n in enumerate(row):
                if not isinstance(n, str) or n not in SYMBOLIC_LIB:
                    raise ValueError(
                        f"symbolic edge ({l},{i},{j}) uses function {n!r}, which is not in kanext.symbolic.SYMBOLIC_LIB; "
                        "register it with kanext.symbolic.add_symbolic(name, torch_fn, sympy_fn) before loading"
                    )
        s.funs_name = [list(r) for r in rows]
        s.invalidate()


from .formula import symbolic_formula, to_latex, to_torch  # noqa: E402  (formula uses this module's library)
