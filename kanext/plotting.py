"""Figures of a KAN (the whole network, :func:`plot`, and one edge,
:func:`plot_activation`) and of a LAN (:func:`plot_lan`).

They build a ``matplotlib.figure.Figure`` directly (no pyplot, so no global
figure state and no GUI backend: they work headless), draw every activation
curve as a vector inset of that one figure (no image files are written and
read back), and return the Figure. ``folder=`` also saves a PNG.

matplotlib is imported inside the plotting functions, so that ``import kanext``
does not pay for it; every kanext import is at the top.
"""
from __future__ import annotations

import math
import os

import sympy
import torch
from torch import Tensor

from . import attribution, dense
from .recorded import has_samples
from .recorded import samples as _model_samples

__all__ = ["plot", "plot_activation", "plot_lan", "plot_scores", "edge_curves", "PLOT_METRICS", "SYMBOLIC_COLOR",
           "EDGE_GID", "NODE_GID"]

PLOT_METRICS = ("backward", "forward", "forward_n", "forward_u")
#: Colour of symbolic edges (numeric + symbolic ones are drawn in SYMBOLIC_MIXED_COLOR).
SYMBOLIC_COLOR, SYMBOLIC_MIXED_COLOR, NUMERIC_COLOR = "red", "purple", "black"
#: Every edge inset's ``get_gid()`` is ``EDGE_GID.format(l=l, i=i, j=j)``.
EDGE_GID = "kanext-edge-{l}-{i}-{j}"
#: Every LAN node inset's ``get_gid()`` is ``NODE_GID.format(l=l, j=j)`` (layer l's output node j).
NODE_GID = "kanext-node-{l}-{j}"
_POINTS = 100  # curve samples per edge
_MAX_SAMPLES = 200  # recorded samples scattered per edge with sample=True


def plot(model, folder=None, beta: float = 3, metric: str = "backward", scale: float = 0.5, in_vars=None,
         out_vars=None, title=None, sample: bool = False, x: Tensor | None = None, *, tick: bool = False,
         varscale: float = 1.0):
    """The network as one Figure: nodes as dots, every active edge as a small
    inset of its activation over the input range seen in the data, joined to
    its two nodes by lines; edge opacity tanh(beta * score). Multiplication
    nodes are drawn as crosses: the edges end on their subnodes (small dots
    just below the node row), each wired to its node.

    Args:
        folder: if given, the figure is also saved as ``<folder>/kan.png``.
        beta: opacity sharpness (pykan's).
        metric: edge score: 'backward' (pykan 0.2's attribution, the
            default), 'forward' (the paper's |phi|_1), 'forward_n' (pykan's
            std(phi) / (std(x) + 0.1)), 'forward_u' (std(phi)).
        scale: figure size factor (10 * scale inches wide).
        in_vars, out_vars: names of the inputs / outputs (str or sympy
            expressions, one per node), written under / over them.
        title: figure title.
        sample: also scatter (up to 200 of) the recorded samples on each curve.
        x: the data to draw ranges and scores from (default: the data of the
            last recording forward, else the last fit inputs).
        tick: pykan's: label each inset's axes with the ends of its input
            range (x) and of its curve (y).
        varscale: pykan's: a factor on the font size of in_vars / out_vars.

    Symbolic edges (``model.symbolic_fun[l].mask[j, i] == 1``, if the model
    has a symbolic branch) are drawn in red (purple when the numeric edge is
    active too) and labelled with ``model.symbolic_fun[l].funs_name[j][i]``.
    Each inset axes has gid ``EDGE_GID.format(l=, i=, j=)``.
    """
    from matplotlib.figure import Figure

    if metric not in PLOT_METRICS:
        raise ValueError(f"plot: metric must be one of {PLOT_METRICS}, got {metric!r}")
    if not (isinstance(beta, (int, float)) and beta >= 0) or not (isinstance(scale, (int, float)) and scale > 0):
        raise ValueError(f"plot: beta must be >= 0 and scale > 0, got beta={beta!r}, scale={scale!r}")
    if not (isinstance(varscale, (int, float)) and math.isfinite(varscale) and varscale > 0):
        raise ValueError(f"plot: varscale must be a number > 0, got {varscale!r}")
    width = list(model.width)
    in_vars = _names("in_vars", in_vars, width[0])
    out_vars = _names("out_vars", out_vars, width[-1])
    data = attribution.statistics_data(model, x)
    if metric in ("backward", "forward"):
        attribution.attribute(model, x=data, metric=metric)
        scores = model.edge_scores
    else:
        attribution.record_statistics(model, data)
        scores = model.acts_scale if metric == "forward_n" else attribution.edge_actscale(model)

    depth = len(width) - 1
    fig_w = 10 * scale
    fig_h = 10 * scale * 0.4 * depth + 10 * scale * (0.22 if title is not None else 0.12)
    fig = Figure(figsize=(fig_w, fig_h))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 1)
    y_lo, y_hi = -0.3, depth + (0.55 if title is not None else 0.3)  # node row l at y = l; room for names
    ax.set_ylim(y_lo, y_hi)
    ax.axis("off")

    def fig_y(y):
        return (y - y_lo) / (y_hi - y_lo)

    node_x = [[(i + 0.5) / n for i in range(n)] for n in width]
    dot = (60 * scale / max(max(width), 5)) ** 2
    # Multiplication nodes: edges end on subnodes (a row just below the
    # nodes); each subnode is wired to its node, a multiplication node is an "x".
    groups = [model.subnode_groups(l) if _has_mult(model, l) else None for l in range(depth + 1)]
    sub_x = [[(s + 0.5) / sum(len(g) for g in gr) for s in range(sum(len(g) for g in gr))] if gr else node_x[l]
             for l, gr in enumerate(groups)]
    sub_dy = 0.15
    for l, xs in enumerate(node_x):
        if groups[l] is None:
            ax.scatter(xs, [l] * len(xs), s=dot, color="black", zorder=3)
            continue
        ns = model.n_sum_nodes(l)
        ax.scatter(xs[:ns], [l] * ns, s=dot, color="black", zorder=3)
        ax.scatter(xs[ns:], [l] * (len(xs) - ns), s=dot * 3, marker="x", color="black", zorder=3, linewidths=2 * scale)
        ax.scatter(sub_x[l], [l - sub_dy] * len(sub_x[l]), s=dot / 3, color="black", zorder=3)
        for j, g in enumerate(groups[l]):
            for t in g:
                ax.plot([sub_x[l][t], xs[j]], [l - sub_dy, l], color="black", lw=scale, zorder=2)

    n_edges = max(model.act_fun[l].in_features * model.act_fun[l].out_features for l in range(depth))
    box_w = 0.8 / max(n_edges, 5)  # inset width, figure fraction
    box_h_data = min(box_w * fig_w / fig_h * (y_hi - y_lo), 0.45)  # square insets, at most half a layer
    box_h = box_h_data / (y_hi - y_lo)
    for l in range(depth):
        layer = model.act_fun[l]
        sym = _symbolic(model, l)
        numeric = (layer.mask != 0).T  # (out, in)
        symbolic = (sym.mask != 0) if sym is not None else torch.zeros_like(numeric)
        lo, hi = model.input_range[l][:, 0], model.input_range[l][:, 1]
        xs, ys = edge_curves(model, l, lo, hi, _POINTS)
        samples = _samples(model, l) if sample else None
        alpha = torch.tanh(beta * scores[l].detach().double().clamp_min(0)).nan_to_num(0.0)
        n_in, n_out = layer.in_features, layer.out_features
        N = n_in * n_out
        end_y = l + 1 - (sub_dy if groups[l + 1] is not None else 0.0)
        for i in range(n_in):
            for j in range(n_out):
                if not (numeric[j, i] or symbolic[j, i]):
                    continue
                color = (SYMBOLIC_MIXED_COLOR if numeric[j, i] else SYMBOLIC_COLOR) if symbolic[j, i] else NUMERIC_COLOR
                a = float(alpha[j, i])
                cx = (i * n_out + j + 0.5) / N
                ax.plot([node_x[l][i], cx], [l, l + 0.5 - box_h_data / 2], color=color, lw=2 * scale, alpha=a)
                ax.plot([cx, sub_x[l + 1][j]], [l + 0.5 + box_h_data / 2, end_y], color=color, lw=2 * scale, alpha=a)
                inset = fig.add_axes((cx - box_w / 2, fig_y(l + 0.5) - box_h / 2, box_w, box_h))
                inset.set_gid(EDGE_GID.format(l=l, i=i, j=j))
                inset.plot(xs[:, i].numpy(), ys[:, i, j].numpy(), color=color, lw=3 * scale, alpha=a)
                if samples is not None:
                    inset.plot(samples[0][:, i].numpy(), samples[1][:, i, j].numpy(), "o", color=color,
                               ms=2 * scale, alpha=a)
                if tick:
                    cy = ys[:, i, j]
                    ends = (float(xs[0, i]), float(xs[-1, i])), (float(cy.min()), float(cy.max()))
                    for set_ticks, vals in zip((inset.set_xticks, inset.set_yticks), ends):
                        if all(math.isfinite(v) for v in vals):
                            set_ticks(vals, [f"{v:.2g}" for v in vals])
                        else:
                            set_ticks([])
                    inset.tick_params(labelsize=max(4.0, 8 * scale), length=2, pad=1)
                else:
                    inset.set_xticks([])
                    inset.set_yticks([])
                inset.patch.set_alpha(0)
                for sp in inset.spines.values():
                    sp.set_color(color)
                    sp.set_alpha(a)
                if symbolic[j, i]:
                    inset.set_title(str(sym.funs_name[j][i]), fontsize=max(6.0, 14 * scale), color=color, pad=1)
    fs = max(7.0, 24 * scale)
    for i, name in enumerate(in_vars or []):
        ax.text(node_x[0][i], -0.17, name, ha="center", va="center", fontsize=fs * varscale)
    for j, name in enumerate(out_vars or []):
        ax.text(node_x[-1][j], depth + 0.15, name, ha="center", va="center", fontsize=fs * varscale)
    if title is not None:
        ax.text(0.5, depth + 0.42, str(title), ha="center", va="center", fontsize=fs)
    _save(fig, folder, "kan.png")
    return fig


def plot_scores(scores: Tensor):
    """A bar chart of one score per input (KAN.attribute(l, i, plot=True),
    pykan's figure): a matplotlib Figure, 1 inch wide per input."""
    from matplotlib.figure import Figure

    v = scores.detach().double().cpu().reshape(-1).numpy()
    fig = Figure(figsize=(max(1.0 * len(v), 2.0), 3))
    ax = fig.add_subplot()
    ax.bar(range(len(v)), v)
    ax.set_xticks(range(len(v)))
    ax.set_xlabel("input")
    ax.set_ylabel("attribution score")
    return fig


def plot_activation(model, l: int, i: int, j: int, x_range=None, folder=None):
    """One edge i -> j of layer l: its spline part mask * scale_sp * spline,
    its base part mask * scale_base * b(x), and their sum, over x_range
    (default: the input range recorded by the last recording forward, else
    the extended grid span), with the knots marked on the total curve and as
    dotted lines. Saves ``<folder>/activation_<l>_<i>_<j>.png`` if folder is given."""
    from matplotlib.figure import Figure

    for name, v, n in (("l", l, model.depth), ("i", i, model.width[l] if _is_index(l, model.depth) else 0),
                       ("j", j, model.act_fun[l].out_features if _is_index(l, model.depth) else 0)):
        if not _is_index(v, n):
            raise ValueError(f"plot_activation: {name} must be an int in [0, {n}), got {v!r}")
    layer = model.act_fun[l]
    knots = layer.grid[i].detach()
    if x_range is None:
        ranges = getattr(model, "input_range", None)
        if ranges and len(ranges) == model.depth and ranges[l].shape[0] == model.width[l]:
            x_range = (float(ranges[l][i, 0]), float(ranges[l][i, 1]))
        else:
            x_range = (float(knots[0]), float(knots[-1]))
    lo, hi = (float(v) for v in x_range)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise ValueError(f"plot_activation: x_range must be finite (lo, hi) with lo <= hi, got {x_range!r}")
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    x = torch.linspace(lo, hi, 200, dtype=knots.dtype, device=knots.device)
    base, spline = _edge_parts(layer, i, j, x)
    inside = knots[(knots >= lo) & (knots <= hi)]
    kb, ks = _edge_parts(layer, i, j, inside)

    fig = Figure(figsize=(5, 3.5))
    ax = fig.add_subplot()
    ax.plot(x.cpu().numpy(), spline.cpu().numpy(), label="spline", color="tab:blue")
    ax.plot(x.cpu().numpy(), base.cpu().numpy(), label="base", color="tab:orange", ls="--")
    ax.plot(x.cpu().numpy(), (base + spline).cpu().numpy(), label="total", color="black", lw=2)
    for t in inside.cpu().numpy():
        ax.axvline(t, color="grey", lw=0.5, ls=":")
    ax.plot(inside.cpu().numpy(), (kb + ks).cpu().numpy(), "o", color="black", ms=4, label="knots")
    masked = " (masked)" if float(layer.mask[i, j]) == 0 else ""
    ax.set_title(f"layer {l}: input {i} -> node {j}{masked}")
    ax.set_xlabel(f"x_{i}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, folder, f"activation_{l}_{i}_{j}.png")
    return fig


def edge_curves(model, l: int, lo: Tensor, hi: Tensor, points: int = _POINTS) -> tuple[Tensor, Tensor]:
    """(xs (P, in), phi (P, in, out)) on P points per input from lo[i] to
    hi[i]: every edge's activation (mask applied; symbolic part added if the
    model has one), float64 on the CPU. P is small, so (P, in, out) is fine."""
    lo, hi = lo.detach().double().cpu(), hi.detach().double().cpu()
    hi = torch.where(hi > lo, hi, lo + 1e-3)
    t = torch.linspace(0, 1, points, dtype=torch.float64).unsqueeze(1)
    xs = lo + t * (hi - lo)
    return xs, _activations(model, l, xs)


def _activations(model, l: int, xs: Tensor) -> Tensor:
    layer = model.act_fun[l]
    dev, dt = layer.grid.device, layer.grid.dtype
    with torch.no_grad():
        x = xs.to(device=dev, dtype=dt)
        phi = dense.all_edge_values(layer, x)
        sym = _symbolic(model, l)
        if sym is not None:
            phi = phi + sym.edge_values(x).transpose(1, 2)  # (P, out, in) -> (P, in, out)
    return phi.double().cpu()


def _edge_parts(layer, i: int, j: int, x: Tensor) -> tuple[Tensor, Tensor]:
    """(base part, spline part) of edge i -> j at the points x (P,)."""
    xs = x.new_zeros(x.numel(), layer.in_features)
    xs[:, i] = x.reshape(-1)
    dev = x.device
    base, spline = dense.edge_parts(layer, xs, torch.tensor([i], device=dev), torch.tensor([j], device=dev))
    return base[:, 0].double(), spline[:, 0].double()


def _samples(model, l: int):
    acts = model.acts[l]
    n = acts.shape[0]
    idx = torch.linspace(0, n - 1, min(n, _MAX_SAMPLES)).round().long().to(acts.device)
    xs = acts.index_select(0, idx).double().cpu()
    return xs, _activations(model, l, xs)


def _symbolic(model, l: int):
    sym = getattr(model, "symbolic_fun", None)
    if sym is None:
        return None
    s = sym[l]
    return s if hasattr(s, "mask") and hasattr(s, "funs_name") and hasattr(s, "edge_values") else None


def _names(arg: str, names, n: int):
    if names is None:
        return None
    names = list(names)
    if len(names) != n:
        raise ValueError(f"plot: {arg} needs {n} names (one per node), got {len(names)}")
    out = []
    for v in names:
        if hasattr(v, "free_symbols"):  # a sympy expression
            out.append(f"${sympy.latex(v)}$")
        else:
            out.append(str(v))
    return out


def _is_index(v, n: int) -> bool:
    return not isinstance(v, bool) and isinstance(v, int) and 0 <= v < n


def _save(fig, folder, name: str) -> None:
    if folder is not None:
        os.makedirs(folder, exist_ok=True)
        fig.savefig(os.path.join(os.fspath(folder), name), dpi=100)


def plot_lan(model, folder=None, in_vars=None, out_vars=None, title=None, x=None, scale: float = 0.5):
    """The LAN as one Figure: nodes per layer (inputs at the bottom), every
    Linear weight as a line between two nodes (opacity |w| / max |w| of its
    layer), and over every hidden/output node an inset of its activation on
    its recorded pre-activation range (from x, else cache_data or the last forward's inputs, else the
    node's grid range). Symbolic nodes are drawn in red and titled with the
    function name; inset gids are ``NODE_GID.format(l=, j=)``. ``folder``
    also saves ``<folder>/lan.png``. Returns the Figure."""
    from matplotlib.figure import Figure

    if not (isinstance(scale, (int, float)) and scale > 0):
        raise ValueError(f"plot: scale must be > 0, got {scale!r}")
    width = list(model.width)
    in_vars = _names("in_vars", in_vars, width[0])
    out_vars = _names("out_vars", out_vars, width[-1])
    has_data = x is not None or has_samples(model)
    zs = model.preactivations(_model_samples(model, x, what="plot")) if has_data else None
    depth = len(width) - 1
    fig_w, fig_h = 10 * scale, 10 * scale * (0.5 * depth + (0.25 if title is not None else 0.15))
    fig = Figure(figsize=(fig_w, fig_h))
    ax = fig.add_axes((0, 0, 1, 1))
    y_lo, y_hi = -0.3, depth + (0.7 if title is not None else 0.45)
    ax.set_xlim(0, 1)
    ax.set_ylim(y_lo, y_hi)
    ax.axis("off")
    node_x = [[(i + 0.5) / n for i in range(n)] for n in width]
    box_w = min(0.8 / max(width[1:]), 0.15)
    box_h_data = min(box_w * fig_w / fig_h * (y_hi - y_lo), 0.4)
    box_h = box_h_data / (y_hi - y_lo)
    ax.scatter(node_x[0], [0] * width[0], s=(60 * scale / max(width[0], 5)) ** 2, color="black", zorder=3)
    for l, layer in enumerate(model.layers):
        W = layer.linear.weight.detach().double().abs().cpu()
        alpha = (W / W.max()).nan_to_num(0.0) if W.max() > 0 else W
        for j in range(width[l + 1]):
            for i in range(width[l]):
                ax.plot([node_x[l][i], node_x[l + 1][j]], [l, l + 1 - box_h_data / 2], color=NUMERIC_COLOR,
                        lw=1.5 * scale, alpha=float(alpha[j, i]))
        act = layer.act
        sym = act._modules.get("symbolic")
        fixed = set(sym.fixed()) if sym is not None else set()
        if zs is not None:
            lo, hi = zs[l].min(0).values.double().cpu(), zs[l].max(0).values.double().cpu()
        else:
            lo = act.grid[:, act.k].double().cpu()
            hi = act.grid[:, -act.k - 1].double().cpu()
        t = torch.linspace(0, 1, 100, dtype=torch.float64)[:, None]
        pts = (lo + (hi - lo) * t).to(device=act.coef.device, dtype=act.coef.dtype)
        with torch.no_grad():
            ys = act(pts).double().cpu()
        pts = pts.double().cpu()
        for j in range(width[l + 1]):
            color = SYMBOLIC_COLOR if j in fixed else NUMERIC_COLOR
            cx, cy = node_x[l + 1][j], (l + 1 - y_lo) / (y_hi - y_lo)
            inset = fig.add_axes((cx - box_w / 2, cy - box_h / 2, box_w, box_h))
            inset.set_gid(NODE_GID.format(l=l, j=j))
            inset.plot(pts[:, j].numpy(), ys[:, j].numpy(), color=color, lw=2 * scale)
            inset.set_xticks([])
            inset.set_yticks([])
            for sp in inset.spines.values():
                sp.set_color(color)
            if j in fixed:
                inset.set_title(sym.funs_name[j], fontsize=max(6.0, 14 * scale), color=color, pad=1)
    fs = max(7.0, 24 * scale)
    for i, name in enumerate(in_vars or []):
        ax.text(node_x[0][i], -0.2, name, ha="center", va="center", fontsize=fs)
    for j, name in enumerate(out_vars or []):
        ax.text(node_x[-1][j], depth + box_h_data / 2 + 0.12, name, ha="center", va="center", fontsize=fs)
    if title is not None:
        ax.text(0.5, depth + 0.55, str(title), ha="center", va="center", fontsize=fs)
    _save(fig, folder, "lan.png")
    return fig


def _has_mult(model, l: int) -> bool:
    ar = getattr(model, "mult_arities", None)
    return bool(ar and ar[l])


_TREE_SYMBOL = {"Add": "+", "Mul": "\u00d7", "GS": "GS"}


def draw_tree(molecules, kids, properties, labels, style: str = "tree"):
    """The Figure of a tree of variable groups (for
    :func:`kanext.hypothesis.plot_tree`): ``molecules`` its levels (lists of
    groups of variable indices, leaves first), ``kids[l][g]`` the groups of
    level l that make group g of level l + 1, ``properties[l][g]`` its label
    ('Add', 'Mul', 'GS', 'Id' or ''), ``labels`` the variables' names.
    Leaves sit at the bottom in the root's order, level l at height l; style
    'tree' joins each node to its children and marks it (+, \u00d7, GS), a node
    with several children and no property is a box over its variables;
    style 'box' draws every such node as a box with its property inside."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    n, depth = len(labels), len(molecules) - 1
    fig = Figure(figsize=(max(3.0, 1.2 * n), max(2.5, 1.3 * depth + 1)))
    ax = fig.add_subplot(1, 1, 1)
    slot = {v: (k + 0.5) / n for k, v in enumerate(molecules[-1][0])}  # leaf positions, in the root's order
    center = {(0, (v,)): slot[v] for v in range(n)}
    for (v,) in molecules[0]:
        ax.text(slot[v], -0.15, labels[v], ha="center", va="top", fontsize=14)
    half = 0.4 / n
    for l in range(depth):
        for g, group in enumerate(molecules[l + 1]):
            children, prop = kids[l][g], properties[l][g]
            cx = sum(center[(l, tuple(c))] for c in children) / len(children)
            center[(l + 1, tuple(group))] = cx
            boxed = len(children) > 1 and (style == "box" or prop == "")
            color = "tab:blue" if prop in _TREE_SYMBOL else "k"
            for c in children:
                ax.plot([center[(l, tuple(c))], cx], [l, l + 1 - (0.2 if boxed else 0.0)], color=color, lw=1.5)
            if boxed:
                lo = min(slot[v] for v in group) - half
                ax.add_patch(Rectangle((lo, l + 0.8), max(slot[v] for v in group) + half - lo, 0.4, fill=False,
                                       ec="k", lw=1.5))
                if style == "box" and prop:
                    ax.text(cx, l + 1, prop, ha="center", va="center", fontsize=12)
            elif len(children) > 1 and prop in _TREE_SYMBOL:
                ax.text(cx, l + 1, _TREE_SYMBOL[prop], ha="center", va="center", fontsize=18 if prop != "GS" else 11,
                        color="tab:red", bbox=dict(boxstyle="circle", fc="white", ec="tab:red"))
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.6, depth + 0.5)
    ax.axis("off")
    return fig
