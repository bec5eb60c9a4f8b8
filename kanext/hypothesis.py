"""Hypothesis testing on a learned function (pykan's ``kan.hypothesis``),
with pykan 0.2.x's names, argument order and thresholds.

Every test reads the function through its derivatives at sample points x
(N, n_var): gradients, Hessians and (general separability) third
derivatives, by autograd through ``model(x)``. ``model`` is any callable with
independent rows (a :class:`kanext.KAN`, whose fused ops have derivatives of
every order, a pykan model, or a function such as ``lambda x: x[:, [0]] *
x[:, [1]]``) returning one value per row, (N,) or (N, 1); for output k of a
multi-output model pass ``lambda x: model(x)[:, [k]]``. No (N, in, out)
tensor is formed; the largest is the (N, n_var, n_var) Hessian. The scores
are pykan's, so its thresholds mean the same: a derivative entry (i, j)
times std(x_i) std(x_j), its absolute value's median over the samples.

- :func:`detect_separability` / :func:`test_separability`: additive
  (f = f_1(x_G1) + f_2(x_G2) + ...) or multiplicative (the same for
  log|f + bias|) separation of the variables into groups.
- :func:`test_general_separability`: f = F(g_1(x_G1) + g_2(x_G2) + ...).
- :func:`test_symmetry` / :func:`get_dependence`: f = F(h(x_group), x_rest).
- :func:`get_molecule`, :func:`get_tree_node`, :func:`plot_tree`: the tree
  of nested symmetric groups, nodes labelled 'Add', 'Mul', 'GS', 'Id' or ''.
- :func:`feature_interaction`: the input sets the nodes of a KAN layer use.

Where kanext differs from pykan on purpose: results are Python bools, ints
and lists; nothing is printed unless ``verbose=True``; bad input (a constant
input column, a multi-output model, a function autograd cannot
differentiate, derivatives non-finite at most samples) raises an error
saying what was expected, where pykan gives a KeyError or an answer;
``detect_separability`` partitions by the connected components of the
interaction graph (exact; pykan clusters); ``get_molecule`` leaves the merge
of all variables to the root (pykan merges everything left in its first
level, so ``x*y + z`` gets no (x, y) node); ``plot_tree`` returns a Figure.
"""
from __future__ import annotations

import math
import operator
from typing import Callable, Sequence

import sympy
import torch
from torch import Tensor

from .plotting import draw_tree

__all__ = [
    "detect_separability", "test_separability", "test_general_separability", "test_symmetry",
    "get_dependence", "get_molecule", "get_tree_node", "plot_tree", "feature_interaction",
]

_EPS_NORM = 1e-6  # added to |grad_group| before normalising (pykan's value)


# ---------------------------------------------------------------- checks
def _check_x(x, what: str) -> tuple[Tensor, Tensor]:
    """x detached and its per-column std; x must be (N >= 2, n_var >= 1), floating, finite, every column varying."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{what}: x must be a torch.Tensor of shape (N, n_var), got {type(x).__name__}")
    if x.dim() != 2 or x.shape[0] < 2 or x.shape[1] < 1:
        raise ValueError(f"{what}: x must have shape (N, n_var) with N >= 2 samples, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{what}: x must be a floating point tensor, got dtype {x.dtype}")
    x = x.detach()
    if not torch.isfinite(x).all():
        raise ValueError(f"{what}: x holds NaN or inf values")
    std = x.std(dim=0)
    const = [int(i) for i in torch.nonzero(std == 0).flatten()]
    if const:
        raise ValueError(f"{what}: x column(s) {const} are constant; every input must vary over the samples "
                         "(the scores are scaled by each input's std, so a constant input tells nothing)")
    return x, std


def _check_threshold(value, name: str, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 or math.isinf(value):
        raise ValueError(f"{what}: {name} must be a finite number >= 0, got {value!r}")
    return float(value)


def _index(v, n: int, what: str, name: str) -> int:
    try:
        i = operator.index(v) if not isinstance(v, bool) else None
    except TypeError:
        i = None
    if i is None:
        raise ValueError(f"{what}: {name} must hold variable indices (ints in [0, {n})), got {v!r}")
    if not 0 <= i < n:
        raise ValueError(f"{what}: {name} holds index {i}, outside [0, {n}) for x with {n} columns")
    return i


def _check_group(group, n: int, what: str, name: str = "group") -> list[int]:
    if isinstance(group, (str, bytes)) or not isinstance(group, Sequence) and not isinstance(group, Tensor):
        raise ValueError(f"{what}: {name} must be a list of variable indices, e.g. [0, 1], got {group!r}")
    out = [_index(v, n, what, name) for v in group]
    if not out:
        raise ValueError(f"{what}: {name} is empty; it must hold at least one variable index")
    if len(set(out)) != len(out):
        raise ValueError(f"{what}: {name} repeats a variable: {out}")
    return out


def _check_groups(groups, n: int, what: str) -> list[list[int]]:
    if isinstance(groups, (str, bytes)) or not isinstance(groups, Sequence):
        raise ValueError(f"{what}: groups must be a list of lists of variable indices, e.g. [[0, 1], [2]], "
                         f"got {groups!r}")
    out = [_check_group(g, n, what, f"groups[{k}]") for k, g in enumerate(groups)]
    for k, g in enumerate(out):
        for j in range(k):
            for i in set(g) & set(out[j]):
                raise ValueError(f"{what}: variable {i} is in groups[{j}] and groups[{k}]; groups must be disjoint")
    return out


def _with_rest(groups: list[list[int]], n: int) -> list[list[int]]:
    """The groups, plus the variables in none of them as one more group."""
    rest = [i for i in range(n) if all(i not in g for g in groups)]
    return groups + [rest] if rest else list(groups)


# ---------------------------------------------------------------- derivatives
def _output(model: Callable[[Tensor], Tensor], x: Tensor, what: str) -> Tensor:
    """model(x) as (N,), differentiable in x (which requires grad)."""
    y = model(x)
    if not isinstance(y, Tensor):
        raise TypeError(f"{what}: model(x) must return a torch.Tensor, got {type(y).__name__}")
    if y.dim() == 2 and y.shape[1] == 1:
        y = y[:, 0]
    elif y.dim() != 1:
        raise ValueError(f"{what}: model(x) must return one value per row, shape (N,) or (N, 1), got shape "
                         f"{tuple(y.shape)}; for output k of a multi-output model pass lambda x: model(x)[:, [k]]")
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"{what}: model(x) returned {y.shape[0]} rows for {x.shape[0]} input rows")
    if not y.requires_grad:
        raise ValueError(f"{what}: model(x) is not differentiable with respect to x (its output does not require "
                         "grad): the tests take derivatives by autograd, so model must be torch code (not numpy, "
                         "not under torch.no_grad) that depends on x")
    return y


def _dsum(t: Tensor, x: Tensor) -> Tensor:
    """d(sum over rows of t)/dx, (N, n_var): row n's gradient of t[n] when rows are independent. Differentiable."""
    if not t.requires_grad:
        return torch.zeros_like(x)
    (g,) = torch.autograd.grad(t.sum(), x, create_graph=True, allow_unused=True)
    return torch.zeros_like(x) if g is None else g


def _hessian(y: Tensor, x: Tensor) -> Tensor:
    """(N, n_var, n_var) per-sample Hessians of y (N,) with respect to x."""
    g = _dsum(y, x)
    return torch.stack([_dsum(g[:, i], x) for i in range(x.shape[1])], dim=1)


def _median_scores(d: Tensor, what: str, about: str, ok: Tensor | None = None) -> Tensor:
    """Median over the samples (dim 0) of |d|, leaving out non-finite entries
    and the samples where ``ok`` (N,) is False (the function differentiated
    is not finite there); an error where fewer than half the samples remain."""
    d = d.detach().abs()
    finite = torch.isfinite(d)
    if ok is not None:
        finite = finite & ok.detach().reshape(-1, *([1] * (d.dim() - 1)))
    n_ok = finite.sum(dim=0)
    if (n_ok * 2 < d.shape[0]).any():
        worst = int(n_ok.min())
        raise ValueError(f"{what}: {about} is NaN or infinite at {d.shape[0] - worst} of {d.shape[0]} samples, too "
                         "many for a reliable median")
    return torch.where(finite, d, torch.full_like(d, float("nan"))).nanmedian(dim=0).values


def _hessian_scores(model, x: Tensor, std: Tensor, mode: str, bias: float, what: str) -> Tensor:
    """pykan's (n_var, n_var) interaction scores: median_n |H_ij| std_i std_j of
    f (mode 'add') or of log|f + bias| (mode 'mul')."""
    xg = x.clone().requires_grad_(True)
    with torch.enable_grad():
        y = _output(model, xg, what)
        about = "the Hessian of f"
        if mode == "mul":
            y = torch.log(torch.abs(y + bias))
            about = f"the Hessian of log|f + bias| (bias={bias}; it needs f + bias != 0)"
        H = _hessian(y, xg)
    return _median_scores(H * std[:, None] * std[None, :], what, about, ok=torch.isfinite(y))


def _max_cross(S: Tensor, parts: list[list[int]]) -> float:
    """The largest score between two different parts (0 with one part)."""
    pairs = [(a, b) for a in range(len(parts)) for b in range(a + 1, len(parts))]
    return max((float(S[parts[a]][:, parts[b]].max()) for a, b in pairs), default=0.0)


# ---------------------------------------------------------------- separability
def detect_separability(model, x: Tensor, mode: str = "add", score_th: float = 1e-2, res_th: float = 1e-2,
                        n_clusters=None, bias: float = 0.0, verbose: bool = False) -> dict:
    """Finds how the variables split into groups that do not interact: mode
    'add', f = f_1(x_G1) + f_2(x_G2) + ...; mode 'mul', f = f_1(x_G1) *
    f_2(x_G2) * ... (tested on log|f + bias|). model, x: see the module
    docstring. The groups are the connected components of the graph linking
    variables whose score is >= ``score_th``; while the share of the total
    score left between groups (pykan's residual ratio) is >= ``res_th``, or
    there are more groups than ``n_clusters`` allows (None: any; an int; or
    pykan's [lo, hi]), the two groups that interact most are merged.
    ``verbose`` prints the outcome (pykan always prints it).

    Returns pykan's dict: ``'hessian'`` (the (n_var, n_var) scores),
    ``'n_groups'``, ``'labels'`` (each variable's group), ``'groups'``
    (variable lists, ordered by their smallest variable), and
    ``'residual_ratio'``. Raises ValueError when fewer groups than n_clusters
    asks for pass the thresholds.
    """
    what = "detect_separability"
    if mode not in ("add", "mul"):
        raise ValueError(f"{what}: mode must be 'add' or 'mul', got {mode!r}")
    score_th = _check_threshold(score_th, "score_th", what)
    res_th = _check_threshold(res_th, "res_th", what)
    x, std = _check_x(x, what)
    n = x.shape[1]
    if n_clusters is None:
        lo, hi = 1, n
    elif isinstance(n_clusters, int) and not isinstance(n_clusters, bool):
        lo = hi = n_clusters
    elif (isinstance(n_clusters, (list, tuple)) and len(n_clusters) == 2
          and all(isinstance(v, int) and not isinstance(v, bool) for v in n_clusters)):
        lo, hi = n_clusters
    else:
        raise ValueError(f"{what}: n_clusters must be None, an int or a [lo, hi] pair of ints, got {n_clusters!r}")
    if not 1 <= lo <= hi <= n:
        raise ValueError(f"{what}: n_clusters must lie in [1, {n}] (x has {n} columns) with lo <= hi, got {n_clusters!r}")
    S = _hessian_scores(model, x, std, mode, bias, what)
    # connected components of the interaction graph
    label = list(range(n))
    for i in range(n):
        for j in range(i + 1, n):
            if S[i, j] >= score_th or S[j, i] >= score_th:
                old, new = max(label[i], label[j]), min(label[i], label[j])
                label = [new if v == old else v for v in label]
    groups = [[i for i in range(n) if label[i] == c] for c in sorted(set(label))]
    total = float(S.sum())

    def residual(parts):
        inside = sum(float(S[p][:, p].sum()) for p in parts)
        return (total - inside) / total if total > 0 else 0.0

    def merge_most_interacting(parts):  # ties: the first pair
        pairs = [(a, b) for a in range(len(parts)) for b in range(a + 1, len(parts))]
        a, b = max(pairs, key=lambda p: float(S[parts[p[0]]][:, parts[p[1]]].sum()))
        rest = [p for k, p in enumerate(parts) if k not in (a, b)]
        return sorted(rest + [sorted(parts[a] + parts[b])], key=min)

    while len(groups) > 1 and (residual(groups) >= res_th or len(groups) > hi):
        groups = merge_most_interacting(groups)
    if len(groups) < lo or residual(groups) >= res_th:
        raise ValueError(f"{what}: no partition into {lo}..{hi} groups passes score_th={score_th} and res_th={res_th}; "
                         f"the finest one found has {len(groups)} group(s): {groups}")
    labels = [next(k for k, g in enumerate(groups) if i in g) for i in range(n)]
    if verbose:
        found = "detected" if len(groups) > 1 else "not detected"
        print(f"{mode} separability {found}: groups {groups}, residual ratio {residual(groups):.3g}")
    return {"hessian": S, "n_groups": len(groups), "labels": labels, "groups": groups,
            "residual_ratio": residual(groups)}


def test_separability(model, x: Tensor, groups, mode: str = "add", threshold: float = 1e-2,
                      bias: float = 0.0) -> bool:
    """Whether f separates along ``groups`` (lists of variable indices; the
    variables in none of them form one more group): additively (mode 'add',
    f = f_1(x_G1) + f_2(x_G2) + ...) or multiplicatively (mode 'mul', the same
    for log|f + bias|). True when every score between two groups is below
    ``threshold``. pykan's arguments; returns a Python bool."""
    what = "test_separability"
    if mode not in ("add", "mul"):
        raise ValueError(f"{what}: mode must be 'add' or 'mul', got {mode!r}")
    threshold = _check_threshold(threshold, "threshold", what)
    x, std = _check_x(x, what)
    parts = _with_rest(_check_groups(groups, x.shape[1], what), x.shape[1])
    if len(parts) < 2:
        return True
    S = _hessian_scores(model, x, std, mode, bias, what)
    return _max_cross(S, parts) < threshold


def test_general_separability(model, x: Tensor, groups, threshold: float = 1e-2) -> bool:
    """Whether the groups enter f through a sum, f = F(g_1(x_G1) + g_2(x_G2)
    + ..., x_rest) (pykan's general separability). Then for a, b in groups G_A
    != G_B, r = (df/dx_b) / (df/dx_a) is a function of x_GA times one of x_GB:
    for every such pair (third derivatives of model) the Hessian scores of
    log|r| between G_A and G_B, and its dependence on other variables (median
    |d log|r| / dx_c| std(x_c)), must be below ``threshold``. pykan tests
    only the first, so it also accepts F(x*y + z) with groups [[0], [1], [2]]."""
    what = "test_general_separability"
    threshold = _check_threshold(threshold, "threshold", what)
    x, std = _check_x(x, what)
    n = x.shape[1]
    given = _check_groups(groups, n, what)
    xg = x.clone().requires_grad_(True)
    with torch.enable_grad():
        g = _dsum(_output(model, xg, what), xg) if len(given) > 1 else None
        for A in range(len(given)):
            for B in range(A + 1, len(given)):
                GA, GB = given[A], given[B]
                others = [c for c in range(n) if c not in GA and c not in GB]
                for a in GA:
                    for b in GB:
                        about = f"log|(df/dx_{b}) / (df/dx_{a})| or its derivatives (it needs both nonzero)"
                        r = torch.log(torch.abs(g[:, b])) - torch.log(torch.abs(g[:, a]))
                        gr, ok = _dsum(r, xg), torch.isfinite(r)
                        if others and float(_median_scores(gr[:, others] * std[others], what, about, ok).max()) >= threshold:
                            return False
                        cross = torch.stack([_dsum(gr[:, j], xg)[:, GA] for j in GB], dim=1)  # (N, |GB|, |GA|)
                        cross = cross * std[GB][None, :, None] * std[GA][None, None, :]
                        if float(_median_scores(cross, what, about, ok).max()) >= threshold:
                            return False
    return True


# ---------------------------------------------------------------- symmetry
def get_dependence(model, x: Tensor, group) -> Tensor:
    """(len(group), n_var - len(group)) scores of how the direction of the
    gradient with respect to the group's variables changes with each other
    variable (pykan's get_dependence): entry (a, b) is the median over the
    samples of |d u_a / d x_b| std(x_a) std(x_b), with u = grad_group f /
    (|grad_group f| + 1e-6). Columns follow the other variables in increasing
    order. All near 0 means f = F(h(x_group), x_rest)."""
    what = "get_dependence"
    x, std = _check_x(x, what)
    n = x.shape[1]
    A = _check_group(group, n, what)
    B = [i for i in range(n) if i not in A]
    if not B:
        return x.new_zeros(len(A), 0)
    xg = x.clone().requires_grad_(True)
    with torch.enable_grad():
        g = _dsum(_output(model, xg, what), xg)[:, A]
        u = g / (g.norm(dim=1, keepdim=True) + _EPS_NORM)
        D = torch.stack([_dsum(u[:, k], xg)[:, B] for k in range(len(A))], dim=1)  # (N, |A|, |B|)
    D = D * std[A][None, :, None] * std[B][None, None, :]
    return _median_scores(D, what, "the derivative of the normalised group gradient")


def test_symmetry(model, x: Tensor, group, dependence_th: float = 1e-3) -> bool:
    """Whether the variables of ``group`` enter f only through one function of
    them, f = F(h(x_group), x_rest) (pykan's test_symmetry): every score of
    :func:`get_dependence` is below ``dependence_th``. A group of every
    variable is trivially symmetric (True). Returns a Python bool."""
    what = "test_symmetry"
    dependence_th = _check_threshold(dependence_th, "dependence_th", what)
    x, _ = _check_x(x, what)
    A = _check_group(group, x.shape[1], what)
    if len(A) == x.shape[1]:
        return True
    return float(get_dependence(model, x, A).max()) < dependence_th


# ---------------------------------------------------------------- tree
def get_molecule(model, x: Tensor, sym_th: float = 1e-3, verbose: bool = False) -> list[list[list[int]]]:
    """The hierarchy of symmetric groups ("molecules"), pykan's format: a list
    of levels, from ``[[0], [1], ..., [n-1]]`` to ``[[all variables]]``; each
    group of a level is the concatenation of groups of the level below, and
    every level lists the variables in the same order (the order of the last
    level).

    A level is built greedily: taking the remaining groups in order, each one
    absorbs every later group with which it stays symmetric
    (:func:`test_symmetry` with ``sym_th``). A merge of every variable (always
    symmetric) is left to the last level, made when no other merge is found.
    """
    what = "get_molecule"
    sym_th = _check_threshold(sym_th, "sym_th", what)
    x, _ = _check_x(x, what)
    n = x.shape[1]
    levels = [[[i] for i in range(n)]]
    while len(levels[-1]) > 1:
        units = [list(u) for u in levels[-1]]
        merged: list[list[list[int]]] = []  # each new group as its list of old groups
        while units:
            seed = [units.pop(0)]
            for u in list(units):
                cand = [i for part in seed for i in part] + u
                if len(cand) < n and test_symmetry(model, x, cand, dependence_th=sym_th):
                    seed.append(u)
                    units.remove(u)
            merged.append(seed)
        if len(merged) == len(levels[-1]):  # nothing merged: the root joins everything
            merged = [list(levels[-1])]
        levels.append([[i for part in m for i in part] for m in merged])
        if verbose:
            print(f"level {len(levels) - 1}: {levels[-1]}")
    # reorder every level so that each one lists the variables in the root's order
    order = {v: k for k, v in enumerate(levels[-1][0])}
    return [sorted(level, key=lambda grp: order[grp[0]]) for level in levels]


def _children(lower: list[list[int]], group: list[int]) -> list[list[int]]:
    """The groups of the level below whose concatenation is ``group``."""
    out, start = [], 0
    while start < len(group):
        part = next((p for p in lower if group[start:start + len(p)] == p), None)
        if part is None:
            raise ValueError(f"get_tree_node: group {group} is not a concatenation of groups of the level below {lower}")
        out.append(part)
        start += len(part)
    return out


def get_tree_node(model, x: Tensor, moleculess, sep_th: float = 1e-2, skip_test: bool = True):
    """For each level transition of ``moleculess`` (from :func:`get_molecule`),
    the arity (number of children) and the property of every group (pykan's
    get_tree_node): 'Id' (one child), 'GS' (f is generally separable along
    the children), at the last level 'Add' or 'Mul' (f separates along them;
    'Mul' wins when both hold), else ''. With skip_test (pykan's default)
    nothing is tested and every node with several children is ''.
    Returns (arities, properties), lists of lists, one per transition."""
    what = "get_tree_node"
    sep_th = _check_threshold(sep_th, "sep_th", what)
    x, _ = _check_x(x, what)
    if not isinstance(moleculess, Sequence) or len(moleculess) < 1:
        raise ValueError(f"{what}: moleculess must be the list of levels get_molecule returns, got {moleculess!r}")
    depth = len(moleculess) - 1
    arities, properties = [], []
    for l in range(depth):
        ar, pr = [], []
        for group in moleculess[l + 1]:
            kids = _children(moleculess[l], list(group))
            ar.append(len(kids))
            prop = "Id" if len(kids) == 1 else ""
            if len(kids) > 1 and not skip_test:
                if test_general_separability(model, x, kids, threshold=sep_th):
                    prop = "GS"
                if l == depth - 1:
                    if test_separability(model, x, kids, mode="add", threshold=sep_th):
                        prop = "Add"
                    if test_separability(model, x, kids, mode="mul", threshold=sep_th):
                        prop = "Mul"
            pr.append(prop)
        arities.append(ar)
        properties.append(pr)
    return arities, properties


def plot_tree(model, x: Tensor, in_var=None, style: str = "tree", sym_th: float = 1e-3, sep_th: float = 1e-1,
              skip_sep_test: bool = False, verbose: bool = False):
    """The tree of :func:`get_molecule` with the properties of
    :func:`get_tree_node` (pykan's plot_tree; pykan shows it, this returns a
    ``matplotlib.figure.Figure``, made without pyplot).

    Leaves (the variables, labelled by ``in_var``: sympy symbols or strings,
    default x_1..x_n) are at the bottom, one level per row above. style
    'tree': each node joins its children with lines and is marked '+' (Add),
    '\u00d7' (Mul) or 'GS'; a node with none of these is drawn as a box over its
    variables. style 'box': every node with several children is a box
    labelled with its property. The axes carry the structure for programs:
    ``ax.kanext_tree = {'molecules', 'arities', 'properties'}``."""
    what = "plot_tree"
    if style not in ("tree", "box"):
        raise ValueError(f"{what}: style must be 'tree' or 'box', got {style!r}")
    x, _ = _check_x(x, what)
    n = x.shape[1]
    if in_var is None:
        labels = [f"$x_{{{i + 1}}}$" for i in range(n)]
    elif isinstance(in_var, (str, bytes)) or not isinstance(in_var, Sequence) or len(in_var) != n:
        raise ValueError(f"{what}: in_var must be a list of {n} names or sympy symbols (x has {n} columns), "
                         f"got {in_var!r}")
    else:
        labels = [f"${sympy.latex(v)}$" if isinstance(v, sympy.Basic) else str(v) for v in in_var]
    molecules = get_molecule(model, x, sym_th=sym_th, verbose=verbose)
    arities, properties = get_tree_node(model, x, molecules, sep_th=sep_th, skip_test=skip_sep_test)
    kids = [[_children(molecules[l], list(g)) for g in molecules[l + 1]] for l in range(len(molecules) - 1)]
    fig = draw_tree(molecules, kids, properties, labels, style)
    fig.axes[0].kanext_tree = {"molecules": molecules, "arities": arities, "properties": properties}
    return fig


# ---------------------------------------------------------------- attribution
def feature_interaction(model, l: int, neuron_th: float = 1e-2, feature_th: float = 1e-2) -> dict:
    """Which inputs the nodes of layer l depend on (pykan's
    KAN.feature_interaction): from the backward attribution scores of the
    inputs for each node of layer l (``model.attribute(l)``), a node counts
    when its largest score exceeds ``neuron_th``, and its features are the
    inputs scoring above ``feature_th`` times that largest score. Returns
    ``{(input indices...): number of nodes with exactly those features}``
    (keys are tuples of Python ints)."""
    what = "feature_interaction"
    neuron_th = _check_threshold(neuron_th, "neuron_th", what)
    feature_th = _check_threshold(feature_th, "feature_th", what)
    if isinstance(l, bool) or not isinstance(l, int) or not 0 <= l <= model.depth:
        raise ValueError(f"{what}: l must be a layer index in [0, {model.depth}], got {l!r}")
    scores = model.attribute(l).detach()  # (width[l], width[0])
    out: dict[tuple[int, ...], int] = {}
    for row in scores:
        top = float(row.max())
        if top > neuron_th:
            key = tuple(int(i) for i in torch.nonzero(row > top * feature_th).flatten())
            out[key] = out.get(key, 0) + 1
    return out


# pytest must not collect these as tests when a test module imports them by name
for _f in (test_separability, test_general_separability, test_symmetry):
    _f.__test__ = False
