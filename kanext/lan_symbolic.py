"""Symbolic regression and plots for a LAN's node activations.

Each :class:`~kanext.lan.SplineActivation` can have channels fixed to
``c * f(a * z + b) + d`` (f a :data:`kanext.symbolic.SYMBOLIC_LIB` function):
the channel's spline + base value is then replaced by the symbolic one. The
state lives in an optional ``act.symbolic`` submodule (:class:`ChannelSymbolic`),
created on the first fix and removed when the last channel is unfixed, so an
activation without fixed channels computes (and stores) nothing extra.

The LAN methods ``fix_symbolic``, ``unfix_symbolic``, ``suggest_symbolic``,
``auto_symbolic``, ``symbolic_formula`` and ``plot`` are thin wrappers around
the functions of the same name here. Fitting and scoring are those of
:mod:`kanext.symbolic` (batched :func:`~kanext.symbolic.fit_params`, pykan's
score with weight_simple).

Pre-activations to fit on: the node inputs ``z = W x + b`` of every layer on
the samples ``x`` given to the call, else on ``model.cache_data`` (the last
:meth:`LAN.fit` inputs).
"""
from __future__ import annotations

import copy

import sympy
import torch
from torch import Tensor, nn

from .symbolic import SYMBOLIC_LIB, _entry, _lib_names, _resolve, _scores, fit_one, fit_params, rank_candidates

__all__ = [
    "ChannelSymbolic", "fix_symbolic", "unfix_symbolic", "suggest_symbolic", "auto_symbolic", "symbolic_formula",
    "plot", "NODE_GID",
]

#: Every node inset's ``get_gid()`` is ``NODE_GID.format(l=l, j=j)`` (layer l's output node j).
NODE_GID = "kanext-node-{l}-{j}"


class ChannelSymbolic(nn.Module):
    """The symbolic branch of one SplineActivation over C channels: channel c,
    when fixed (``mask[c] != 0``), outputs ``c_ * f(a * z + b) + d`` with
    ``affine[c] = (a, b, c_, d)`` instead of its spline + base value.

    Attributes: ``mask`` buffer (C,), ``affine`` parameter (C, 4) (trained by
    fit()), ``funs_name`` list of C library names ('0' when not fixed).
    The forward runs one vectorised call per function present.
    """

    def __init__(self, num_channels: int, device=None, dtype=None):
        super().__init__()
        kw = dict(device=device, dtype=dtype or torch.get_default_dtype())
        self.num_channels = int(num_channels)
        self.register_buffer("mask", torch.zeros(num_channels, **kw))
        self.affine = nn.Parameter(torch.zeros(num_channels, 4, **kw))
        self.funs_name = ["0"] * num_channels
        self._groups = None

    def groups(self) -> list[tuple[str, Tensor]]:
        """[(name, channel indices)] of the fixed channels, by function (cached
        on the mask's identity and version)."""
        if torch.compiler.is_compiling():
            return self._groups[1] if self._groups is not None else []
        key = (id(self.mask), self.mask._version, self.mask.device)
        if self._groups is None or self._groups[0] != key:
            by_name: dict[str, list[int]] = {}
            for c in torch.nonzero(self.mask.detach().cpu() != 0)[:, 0].tolist():
                by_name.setdefault(self.funs_name[c], []).append(c)
            self._groups = (key, [(n, torch.tensor(cs, device=self.mask.device)) for n, cs in by_name.items()])
        return self._groups[1]

    def fixed(self) -> list[int]:
        """Indices of the fixed channels."""
        return sorted(int(c) for _, idx in self.groups() for c in idx.tolist())

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        """z, y (N, C): y with the fixed channels' columns replaced by their symbolic values on z."""
        for name, idx in self.groups():
            p = self.affine[idx]
            v = p[:, 2] * _entry(name).torch_fn(p[:, 0] * z[:, idx] + p[:, 1]) + p[:, 3]
            y = y.index_copy(1, idx, v.to(y.dtype))
        return y

    def values(self, z: Tensor) -> Tensor:
        """(N, C) symbolic values of every fixed channel on z (N, C); 0 elsewhere."""
        return self.forward(z, torch.zeros_like(z))

    @torch.no_grad()
    def set_channel(self, c: int, name: str, params=None) -> None:
        """Fixes channel c to ``name`` with (a, b, c, d) = params (default (1, 0, 1, 0))."""
        _entry(name)
        self.funs_name[c] = name
        p = (1.0, 0.0, 1.0, 0.0) if params is None else params
        self.affine[c] = torch.as_tensor(p, dtype=self.affine.dtype).to(self.affine.device)
        self.mask[c] = 1.0

    @torch.no_grad()
    def unset_channel(self, c: int) -> None:
        self.funs_name[c] = "0"
        self.mask[c] = 0.0
        self.affine[c] = 0.0

    def extra_repr(self) -> str:
        return f"num_channels={self.num_channels}, fixed={len(self.fixed())}"


# ------------------------------------------------------------------ helpers


def _act(model, l: int):
    return model.layers[l].act


def _check_node(model, l, j):
    for nm, v in (("l", l), ("j", j)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"expected an int for {nm}, got {v!r}")
    if not 0 <= l < model.depth:
        raise ValueError(f"layer index l={l} out of range: the LAN has {model.depth} layers")
    if not 0 <= j < model.width[l + 1]:
        raise ValueError(f"node ({l},{j}) out of range: layer {l} has {model.width[l + 1]} nodes")


def _inputs(model, x) -> Tensor:
    if x is None:
        x = getattr(model, "cache_data", None)
    if x is None:
        raise RuntimeError("no samples to fit on: pass x= (inputs of shape (N, width[0])) or fit() the LAN first "
                           "(its inputs are kept as cache_data)")
    x = torch.as_tensor(x)
    if x.dim() == 0 or x.shape[-1] != model.width[0]:
        raise ValueError(f"expected samples of shape (N, {model.width[0]}), got shape {tuple(x.shape)}")
    p = next(model.parameters())
    return x.detach().reshape(-1, model.width[0]).to(device=p.device, dtype=p.dtype)


def _preact(model, l: int, x) -> Tensor:
    z = model.preactivations(_inputs(model, x))[l]
    return z[torch.isfinite(z).all(1)]


def _symbolic_of(act, create: bool = False):
    sym = act._modules.get("symbolic")
    if sym is None and create:
        sym = ChannelSymbolic(act.num_channels, device=act.coef.device, dtype=act.coef.dtype)
        act.symbolic = sym
    return sym


def _drop_if_empty(act) -> None:
    sym = _symbolic_of(act)
    if sym is not None and not sym.fixed():
        del act.symbolic


# ------------------------------------------------------------------ methods


def fix_symbolic(model, l, j, fun, fit_params=True, a_range=(-10, 10), b_range=(-10, 10), verbose=True, x=None):
    """Fixes node j of layer l to ``c * fun(a * z + b) + d``; returns the r2 of
    the fit to the node's current spline activation on its recorded
    pre-activations (None when fit_params is False: then (a, b, c, d) = (1, 0, 1, 0))."""
    _check_node(model, l, j)
    name = _resolve(fun)
    act = _act(model, l)
    r2, params = None, None
    if fit_params:
        z = _preact(model, l, x)
        if z.shape[0] < 2:
            raise RuntimeError(f"fix_symbolic: need at least 2 finite pre-activations for layer {l}, got {z.shape[0]}")
        with torch.no_grad():
            y = act.spline_forward(z)[:, j]
        params, r2 = fit_one(z[:, j], y, name, a_range, b_range, verbose, "node")
    _symbolic_of(act, create=True).set_channel(j, name, params)
    return r2


def unfix_symbolic(model, l, j):
    """Returns node j of layer l to its spline activation."""
    _check_node(model, l, j)
    act = _act(model, l)
    sym = _symbolic_of(act)
    if sym is not None:
        sym.unset_channel(j)
        _drop_if_empty(act)


def suggest_symbolic(model, l, j, lib=None, topk=5, weight_simple=0.8, a_range=(-10, 10), b_range=(-10, 10),
                     verbose=True, x=None):
    """Ranks the library functions for node (l, j): a list of (name, r2,
    complexity, score), best (lowest score) first, topk long (pykan's score,
    see :func:`kanext.symbolic.suggest_symbolic`)."""
    _check_node(model, l, j)
    if not 0 <= weight_simple <= 1:
        raise ValueError(f"weight_simple must be in [0, 1], got {weight_simple}")
    names = _lib_names(lib)
    z = _preact(model, l, x)
    with torch.no_grad():
        y = _act(model, l).spline_forward(z)[:, j]
    return rank_candidates(z[:, j], y, names, a_range, b_range, weight_simple, topk, verbose)


def auto_symbolic(model, lib=None, weight_simple=0.8, r2_threshold=0.0, verbose=1, a_range=(-10, 10),
                  b_range=(-10, 10), x=None):
    """Fixes every spline node to its best suggestion (one batched fit per
    layer over its spline nodes and all lib functions), layer by layer, each
    on the pre-activations produced by the already converted layers. Nodes
    already symbolic are kept; a node whose best r2 is below r2_threshold
    stays a spline. Returns {(l, j): (name, r2)} for the nodes fixed."""
    names = _lib_names(lib)
    x = _inputs(model, x)
    done = {}
    for l in range(model.depth):
        act = _act(model, l)
        sym = _symbolic_of(act)
        fixed = set(sym.fixed()) if sym is not None else set()
        free = [c for c in range(act.num_channels) if c not in fixed]
        if not free:
            continue
        z = _preact(model, l, x)
        with torch.no_grad():
            y = act.spline_forward(z)
        F = torch.tensor(free, device=z.device)
        params, r2 = fit_params(z[:, F].T, y[:, F].T, names, a_range, b_range)
        best = _scores(r2, names, weight_simple).argmin(1)
        for e, j in enumerate(free):
            c = int(best[e])
            r = float(r2[e, c])
            if r >= r2_threshold:
                _symbolic_of(act, create=True).set_channel(j, names[c], params[e, c].tolist())
                done[(l, j)] = (names[c], r)
                if verbose >= 1:
                    print(f"fixing ({l},{j}) with {names[c]}, r2={r:.6g}, c={_entry(names[c]).complexity}")
            elif verbose >= 1:
                print(f"({l},{j}): best fit {names[c]} has r2={r:.6g} < r2_threshold={r2_threshold}; kept as a spline")
    return done


def symbolic_formula(model, var=None, simplify=False, floating_digits=4) -> list:
    """One sympy expression per output: the Linear weights and biases composed
    with the symbolic node functions (arguments as
    :func:`kanext.symbolic.symbolic_formula`; floating_digits=None keeps the
    constants exact). Raises ValueError listing the nodes (l, j) that are
    still splines."""
    from .formula import _num, _round_floats, _symbols

    xs = _symbols(var, model.width[0])
    left = []
    for l in range(model.depth):
        sym = _symbolic_of(_act(model, l))
        fixed = set(sym.fixed()) if sym is not None else set()
        left += [(l, j) for j in range(model.width[l + 1]) if j not in fixed]
    if left:
        raise ValueError(
            f"symbolic_formula: {len(left)} node(s) are still splines (l, j): {left[:20]}"
            f"{' ...' if len(left) > 20 else ''}; fix them with auto_symbolic() or fix_symbolic() first"
        )
    for l, layer in enumerate(model.layers):
        W = layer.linear.weight.detach().double().cpu()
        b = layer.linear.bias.detach().double().cpu() if layer.linear.bias is not None else None
        sym = _symbolic_of(layer.act)
        aff = sym.affine.detach().double().cpu()
        new = []
        for j in range(W.shape[0]):
            z = sum((_num(W[j, i]) * xs[i] for i in range(W.shape[1])), sympy.Integer(0))
            if b is not None:
                z = z + _num(b[j])
            entry = _entry(sym.funs_name[j])
            if entry.sympy_fn is None:
                raise ValueError(f"symbolic_formula: function {entry.name!r} has no sympy form "
                                 "(give sympy_fn to add_symbolic)")
            a_, b_, c_, d_ = aff[j].tolist()
            e = _num(c_) * entry.sympy_fn(_num(a_) * z + _num(b_)) + _num(d_)
            new.append(sympy.simplify(e) if simplify else e)
        xs = new
    if floating_digits is not None:
        xs = [_round_floats(e, int(floating_digits)) for e in xs]
    return xs


# ------------------------------------------------------------- checkpoints


def checkpoint_state(model):
    """Extension data for kanext.checkpoint: {module name: {funs_name, dtype}}
    for every SplineActivation with a symbolic branch, or None if there is none."""
    from .lan import SplineActivation

    data = {}
    for name, m in model.named_modules():
        if isinstance(m, SplineActivation) and _symbolic_of(m) is not None:
            sym = _symbolic_of(m)
            data[name] = {"funs_name": list(sym.funs_name), "dtype": str(sym.affine.dtype).removeprefix("torch.")}
    return data or None


def restore_checkpoint_state(model, data) -> None:
    """Rebuilds the symbolic branches (tensors uninitialised, filled by the
    checkpoint load); every name must be in SYMBOLIC_LIB."""
    from .lan import SplineActivation

    if not isinstance(data, dict):
        raise ValueError(f"expected a dict of activation names, found {data!r}")
    mods = dict(model.named_modules())
    for name, ent in data.items():
        m = mods.get(name)
        if not isinstance(m, SplineActivation):
            raise ValueError(f"{name!r} is not a SplineActivation of this model")
        if not isinstance(ent, dict) or set(ent) != {"funs_name", "dtype"}:
            raise ValueError(f"{name!r}: expected keys ['dtype', 'funs_name'], found {ent!r}")
        names, dt = ent["funs_name"], getattr(torch, str(ent["dtype"]), None)
        if not isinstance(dt, torch.dtype) or not dt.is_floating_point:
            raise ValueError(f"{name!r}: expected a floating dtype name, found {ent['dtype']!r}")
        if not isinstance(names, list) or len(names) != m.num_channels:
            raise ValueError(f"{name!r}: expected {m.num_channels} function names, found {names!r}")
        for c, n in enumerate(names):
            if not isinstance(n, str) or n not in SYMBOLIC_LIB:
                raise ValueError(
                    f"{name!r} channel {c} uses function {n!r}, which is not in kanext.symbolic.SYMBOLIC_LIB; "
                    "register it with kanext.symbolic.add_symbolic(name, torch_fn, sympy_fn) before loading"
                )
        sym = ChannelSymbolic(m.num_channels, device="meta", dtype=dt)
        sym.funs_name = list(names)
        m.symbolic = sym


def copy_symbolic(src, dst) -> None:
    """Gives the activation dst (same channel count) a copy of src's symbolic branch, if any."""
    sym = _symbolic_of(src)
    if sym is not None:
        dst.symbolic = copy.deepcopy(sym)


# ------------------------------------------------------------------- plot


def plot(model, folder=None, in_vars=None, out_vars=None, title=None, x=None, scale: float = 0.5):
    """The LAN as one Figure: nodes per layer (inputs at the bottom), every
    Linear weight as a line between two nodes (opacity |w| / max |w| of its
    layer), and over every hidden/output node an inset of its activation on
    its recorded pre-activation range (from x, else cache_data, else the
    node's grid range). Symbolic nodes are drawn in red and titled with the
    function name; inset gids are ``NODE_GID.format(l=, j=)``. ``folder``
    also saves ``<folder>/lan.png``. Returns the Figure."""
    from matplotlib.figure import Figure

    from .plotting import NUMERIC_COLOR, SYMBOLIC_COLOR, _names, _save

    if not (isinstance(scale, (int, float)) and scale > 0):
        raise ValueError(f"plot: scale must be > 0, got {scale!r}")
    width = list(model.width)
    in_vars = _names("in_vars", in_vars, width[0])
    out_vars = _names("out_vars", out_vars, width[-1])
    has_data = x is not None or getattr(model, "cache_data", None) is not None
    zs = model.preactivations(_inputs(model, x)) if has_data else None
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
        sym = _symbolic_of(act)
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
