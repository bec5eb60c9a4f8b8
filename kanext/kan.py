"""KAN: fused KAN layers with pykan's node / subnode affines and multiplication nodes (MultKAN).

Long file: the model class itself (construction, the forward with its affines, mult nodes and
cached state, pykan's method names); the workflows it exposes live in their own modules
(training, pruning, attribution, symbolic, plotting, checkpoint, pykan_methods)."""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from . import attribution, plotting, pruning, symbolic
from ._C import all_equal
from .checkpoint import checkpointable
from .checks import BASE_NAMES, ConfigError, base_name, config_keys, is_int, mult_structure, need, per_layer, \
    range_config, range_value
from .layers import KANLinear
from .pykan_methods import PykanMethods
from .recorded import NoRecordingError, NoSamplesError, cached_inputs, remember_input, samples
from .regularization import edge_scales
from .regularization import reg as _reg
from .spline_module import SplineNetwork
from .symbolic import SymbolicLayer
from .symbolic.units import fixed_edge_stats
from .training import fit as _fit
from .utils import sparse_mask

__all__ = ["KAN", "refit_layer_from"]


_CONFIG_KEYS = {"width", "grid_range", "base_fun", "layers"}
_MULT_KEY = "mult_arity"  # written only for a model with multiplication nodes
# a layer's affines in the order of _identity_affines' check, and their identity values
_AFFINE_LISTS = ("subnode_scale", "subnode_bias", "node_scale", "node_bias")
_IDENTITY = (1.0, 0.0, 1.0, 0.0)


@checkpointable
class KAN(PykanMethods, SplineNetwork):
    """A Kolmogorov-Arnold Network: ``width[0] -> width[1] -> ... -> width[-1]``.

    Args:
        width: layer widths, e.g. ``[2, 5, 1]`` (copied, never mutated), or
            pykan's MultKAN form with multiplication nodes: an entry
            ``[n_sum, n_mult]`` gives a layer of n_sum sum nodes followed by
            n_mult multiplication nodes, e.g. ``[2, [1, 1], 1]`` or
            ``[[2, 0], [1, 1], [1, 0]]``. ``model.width`` holds the node
            counts (n_sum + n_mult, pykan's width_in).
        mult_arity: how many subnodes each multiplication node multiplies: an
            int >= 2 (default 2), or pykan's per-entry lists of per-node
            arities, e.g. ``[[], [2, 3], []]``.
        grid: G, intervals per grid (an int, or one per layer).
        k: spline order 0..5 (an int, or one per layer).
        base_fun, grid_range, noise_scale, scale_base_mu, scale_base_sigma,
        sp_trainable, sb_trainable: as for :class:`KANLinear`.
        grid_eps: default mix for :meth:`update_grid` (1 uniform, 0 quantiles).
        affine_trainable: whether pykan's per-node affines (node_scale,
            node_bias, subnode_scale, subnode_bias; identity at init) train.
        sparse_init: pykan's sparse initialisation: each layer's mask links
            every input to its nearest outputs and every output to its
            nearest inputs (:func:`kanext.utils.sparse_mask`), and scale_sp
            is masked the same way. The draws are the same either way.
        symbolic_enabled, save_act: initial values of the attributes below
            (pykan's keywords; kanext's save_act defaults to False).
        auto_save: pykan's keyword; only False: kanext writes no checkpoint
            folder of its own (see :meth:`save`).
        seed: the initial draws come from a private generator seeded with
            it (default 1, as pykan; the global RNG is never touched or
            reseeded), so two models built with the same seed are equal.
            They are pykan's draws: ``KAN(w, seed=s)`` starts from the same
            coef and scale_base as ``kan.MultKAN(w, seed=s)`` (same order,
            same uniform draws in the default dtype; coef then fitted in
            float64, so in float32 they agree to float32 rounding). With
            seed=None the draws come from torch's global generator.

    Attributes:
        save_act: when True, every forward also records, per layer and
            without (N, in, out) tensors (one fused statistics pass per
            layer, no autograd): ``acts`` (each layer's input, and the output),
            ``acts_scale`` ((out, in) pykan's edge scores std(phi) / (std(x) + 0.1)),
            ``edge_l1`` ((out, in) the paper's |phi|_1 = mean |phi|) and
            ``input_range`` ((in, 2) min and max of each layer input). Off by
            default: it costs about one more forward. pykan's other lists
            (``spline_preacts``, ``spline_postacts``, ``spline_postsplines``,
            ``edge_actscale``, ``acts_scale_spline``, ``subnode_actscale``,
            ``acts_premult``) are computed from ``acts`` when read (see
            :class:`kanext.pykan_methods.PykanMethods`).
        act_fun: ``nn.ModuleList`` of :class:`KANLinear` (pykan's name).
        symbolic_fun: ``nn.ModuleList`` of :class:`kanext.symbolic.SymbolicLayer`
            (pykan's name): each layer's symbolic edges c * f(a x + b) + d,
            added to the spline layer's output (see :meth:`fix_symbolic`).
        symbolic_enabled: pykan's switch, True by default. False makes the
            forward (and what save_act records) skip the fixed symbolic
            edges, as pykan's does: their terms drop out of the output.
            Formulas, plots and fix_symbolic still see them. Set by
            :meth:`speed`.
        node_scale, node_bias, subnode_scale, subnode_bias: ``nn.ParameterList``;
            node ones of (width[l+1],), subnode ones of (width_out[l+1],).
            Layer l computes pykan's MultKAN layer: its spline (and symbolic)
            edges map the width[l] nodes to width_out[l+1] = n_sum + sum of
            the arities subnodes, ``s = subnode_scale * phi(x) + subnode_bias``;
            the first n_sum subnodes pass as they are and each
            multiplication node is the product of its consecutive group of
            subnodes (in order); then ``node_scale * nodes + node_bias``.
            Without multiplication nodes subnodes and nodes coincide.
        mult_arities: per width entry, the list of arities of its
            multiplication nodes (the last n_mult nodes of the entry).
    """

    save_act = False  # class default; set it on an instance to record statistics
    symbolic_enabled = True  # pykan's switch: False skips the fixed symbolic edges (see speed)

    def __init__(
        self,
        width: Sequence = (2, 5, 1),
        grid: int | Sequence[int] = 3,
        k: int | Sequence[int] = 3,
        mult_arity: int | Sequence[Sequence[int]] = 2,
        base_fun: str | Callable[[Tensor], Tensor] = "silu",
        grid_range: Sequence[float] = (-1.0, 1.0),
        noise_scale: float = 0.3,
        scale_base_mu: float = 0.0,
        scale_base_sigma: float = 1.0,
        sp_trainable: bool = True,
        sb_trainable: bool = True,
        affine_trainable: bool = False,
        grid_eps: float = 0.02,
        seed: int | None = 1,
        device=None,
        dtype=None,
        *,
        sparse_init: bool = False,
        symbolic_enabled: bool = True,
        save_act: bool = False,
        auto_save: bool = False,
    ):
        if auto_save:
            raise ValueError("KAN: auto_save=True (pykan's checkpoint folder on every edit) is not provided; "
                             "leave auto_save out (or False) and call model.save(path) / KAN.load(path)")
        super().__init__()
        self.width, self.mult_arities = mult_structure("KAN", width, mult_arity)
        self._mult_homo = int(mult_arity) if is_int(mult_arity) else None
        depth = len(self.width) - 1
        w_out = self.width_out
        grids = per_layer("KAN", "grid", grid, depth)
        ks = per_layer("KAN", "k", k, depth)
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        self.base_fun = base_fun
        self.grid_range = tuple(float(v) for v in grid_range)
        self.act_fun = nn.ModuleList(
            KANLinear(
                self.width[l], w_out[l + 1], grid=grids[l], k=ks[l], grid_range=grid_range,
                base_fun=base_fun, noise_scale=noise_scale, scale_base_mu=scale_base_mu,
                scale_base_sigma=scale_base_sigma, sp_trainable=sp_trainable, sb_trainable=sb_trainable,
                grid_eps=grid_eps, generator=gen, device=device, dtype=dtype,
            )
            for l in range(depth)
        )
        kw = dict(device=device, dtype=dtype or torch.get_default_dtype())

        def plist(fill, widths):
            return nn.ParameterList(
                nn.Parameter(torch.full((w,), fill, **kw), requires_grad=affine_trainable) for w in widths[1:]
            )

        self.node_scale, self.node_bias = plist(1.0, self.width), plist(0.0, self.width)
        self.subnode_scale, self.subnode_bias = plist(1.0, w_out), plist(0.0, w_out)
        self.symbolic_fun = nn.ModuleList(
            SymbolicLayer(self.width[l], w_out[l + 1], **kw) for l in range(depth)
        )
        if sparse_init:  # pykan's: each input linked to its nearest outputs, scale_sp masked to match
            with torch.no_grad():
                for layer in self.act_fun:
                    m = sparse_mask(layer.in_features, layer.out_features).to(layer.mask)
                    layer.mask.copy_(m)
                    layer.scale_sp.mul_(m)
        if not symbolic_enabled:
            self.symbolic_enabled = False
        if save_act:
            self.save_act = True

    @property
    def depth(self) -> int:
        return len(self.act_fun)

    # ------------------------------------------------------------- multiplication nodes
    @property
    def mult_arity(self):
        """pykan's mult_arity: the int given at construction while every
        multiplication node still has that arity, else one list of arities
        per width entry."""
        h = self._mult_homo
        if h is not None and all(a == h for ar in self.mult_arities for a in ar):
            return h
        return [list(a) for a in self.mult_arities]

    @property
    def has_mult(self) -> bool:
        """Whether any layer has multiplication nodes."""
        return any(self.mult_arities)

    def n_sum_nodes(self, l: int) -> int:
        """Sum nodes of width entry l (they come first; the rest are multiplication nodes)."""
        return self.width[l] - len(self.mult_arities[l])

    @property
    def width_out(self) -> list[int]:
        """pykan: the subnodes of each width entry (sum nodes + sum of the arities)."""
        return [w - len(a) + sum(a) for w, a in zip(self.width, self.mult_arities)]

    def subnode_groups(self, l: int) -> list[list[int]]:
        """For each node of width entry l, the indices of its subnodes (a sum
        node has one, a multiplication node its consecutive group)."""
        ns = self.n_sum_nodes(l)
        groups = [[j] for j in range(ns)]
        off = ns
        for a in self.mult_arities[l]:
            groups.append(list(range(off, off + a)))
            off += a
        return groups

    def node_of_subnode(self, l: int) -> list[int]:
        """For each subnode of width entry l, the index of its node."""
        return [j for j, g in enumerate(self.subnode_groups(l)) for _ in g]

    def _multiply(self, l: int, s: Tensor) -> Tensor:
        """Width entry l's nodes from its subnodes s (..., width_out[l]): the
        sum subnodes pass, each multiplication node multiplies its group left
        to right (pykan's order)."""
        ar = self.mult_arities[l]
        ns = s.shape[-1] - sum(ar)
        if len(set(ar)) == 1:  # one arity: one strided product
            a = ar[0]
            g = s[..., ns:].unflatten(-1, (len(ar), a))
            p = g[..., 0]
            for t in range(1, a):
                p = p * g[..., t]
        else:
            parts, off = [], ns
            for a in ar:
                q = s[..., off]
                for t in range(1, a):
                    q = q * s[..., off + t]
                parts.append(q)
                off += a
            p = torch.stack(parts, dim=-1)
        return torch.cat([s[..., :ns], p], dim=-1)

    @property
    def grid(self) -> list[int]:
        return [layer.num for layer in self.act_fun]

    @property
    def k(self) -> list[int]:
        return [layer.k for layer in self.act_fun]

    def forward(self, x: Tensor, singularity_avoiding: bool = False, y_th: float = 10.0) -> Tensor:
        """x (..., width[0]) -> (..., width[-1]). singularity_avoiding, y_th:
        pykan's: the symbolic edges evaluate their singularity-safe variants
        (bounded by about y_th near a pole; see kanext.symbolic)."""
        self._check_input(x)
        remember_input(self, x)  # for model(x); model.plot() (kanext.recorded)
        if self.save_act:
            return self._forward_recording(x, singularity_avoiding, y_th)
        # layer_forward's work, with the per-layer look-ups done once for all layers
        ident = self._identity_affines()
        arities = self.mult_arities
        mods = self._modules  # (without nn.Module.__getattr__, about 1 us per name)
        symbolic = self.symbolic_enabled
        for l, (layer, sym) in enumerate(zip(mods["act_fun"], mods["symbolic_fun"])):
            s = layer(x)
            if symbolic and sym.n_fixed:
                s = s + sym(x, singularity_avoiding=singularity_avoiding, y_th=y_th)
            x = self._apply_nodes(l, s, ident[l], bool(arities[l + 1]))
        return x

    def _forward_recording(self, x: Tensor, singularity_avoiding: bool = False, y_th: float = 10.0) -> Tensor:
        lead = x.shape[:-1]
        x = x.reshape(-1, self.width[0])
        acts, scales, l1, ranges, sub_std = [], [], [], [], []
        for l, layer in enumerate(self.act_fun):
            xd = x.detach()
            acts.append(xd)
            with torch.no_grad():
                n = xd.shape[0]
                scales.append(edge_scales(layer, xd, "edge_forward_spline_n") if n > 1
                              else xd.new_zeros(layer.out_features, layer.in_features))
                l1.append(edge_scales(layer, xd, "edge_forward_l1"))
                ranges.append(torch.stack([xd.amin(0), xd.amax(0)], dim=1) if xd.shape[0] else xd.new_zeros(xd.shape[1], 2))
                if self.symbolic_enabled and self.symbolic_fun[l].n_fixed:  # fixed edges: spline + symbolic
                    fixed_edge_stats(layer, self.symbolic_fun[l], xd, scales[-1], l1[-1])
            s = self.subnode_values(l, x, singularity_avoiding, y_th)
            sub_std.append(torch.std(s.detach(), dim=0) if s.shape[0] > 1 else s.detach().new_zeros(s.shape[1:]))
            x = self.nodes_from_subnodes(l, s)
        acts.append(x.detach())
        self.acts, self.acts_scale, self.edge_l1, self.input_range = acts, scales, l1, ranges
        self.subnode_std = sub_std
        return x.reshape(*lead, self.width[-1])

    def layer_forward(self, l: int, x: Tensor, singularity_avoiding: bool = False, y_th: float = 10.0) -> Tensor:
        """Layer l with its affines: node_scale * (subnode_scale * phi(x) + subnode_bias) + node_bias,
        where phi(x) sums the spline edges and the symbolic edges (pykan's order), and
        multiplication nodes multiply their subnodes between the two affines."""
        return self.nodes_from_subnodes(l, self.subnode_values(l, x, singularity_avoiding, y_th))

    def subnode_values(self, l: int, x: Tensor, singularity_avoiding: bool = False, y_th: float = 10.0) -> Tensor:
        """Layer l's subnodes before any affine: spline edges plus symbolic edges, (..., width_out[l+1])."""
        sym = self.symbolic_fun[l]
        if self.symbolic_enabled and sym.n_fixed:
            return self.act_fun[l](x) + sym(x, singularity_avoiding=singularity_avoiding, y_th=y_th)
        return self.act_fun[l](x)

    def nodes_from_subnodes(self, l: int, x: Tensor) -> Tensor:
        """Layer l's output nodes from its subnodes (see the class docstring)."""
        return self._apply_nodes(l, x, self._identity_affines()[l], bool(self.mult_arities[l + 1]))

    def _apply_nodes(self, l: int, x: Tensor, identity: bool, mult: bool) -> Tensor:
        if identity:
            # the same values, without four ops and their backward per layer
            return self._multiply(l + 1, x) if mult else x
        x = torch.addcmul(self.subnode_bias[l], self.subnode_scale[l], x)
        if mult:
            x = self._multiply(l + 1, x)
        return torch.addcmul(self.node_bias[l], self.node_scale[l], x)

    def _affines_are_identity(self, l: int) -> bool:
        """True when layer l's affines are frozen at scale 1, bias 0 (the
        default), so that applying them changes nothing and needs no gradient."""
        return self._identity_affines()[l]

    def _identity_affines(self) -> tuple[bool, ...] | list[bool]:
        """Per layer, whether its four affines (subnode_scale, subnode_bias,
        node_scale, node_bias) are frozen at scale 1, bias 0, so that the
        forward can skip them. Read from the values on every call
        (kanext._C.all_equal, csrc/module.cpp, a fraction of a microsecond
        per layer): a write through ``.data`` or a numpy view changes them
        without a version bump, so no cache keyed on the tensors could see
        it. A trainable affine is never skipped (its gradient is needed).
        Under torch.compile / torch.export and torch.jit.trace (so that the
        graph keeps the affines as inputs and follows later edits), and for
        parameters off the CPU (reading them would synchronise), every layer
        applies its affines: the same values."""
        mods = self._modules  # (the ParameterLists, without nn.Module.__getattr__ on the hot path)
        cols = [mods[name]._parameters.values() for name in _AFFINE_LISTS]
        if torch.compiler.is_compiling() or torch.jit.is_tracing():
            return [False] * len(mods["node_bias"])
        return tuple([all_equal(ps, _IDENTITY) for ps in zip(*cols)])

    # SplineNetwork stages: a layer's spline input is the layer's input
    def spline(self, l: int) -> KANLinear:
        return self.act_fun[l]

    def set_spline(self, l: int, module: KANLinear) -> None:
        self.act_fun[l] = module

    def spline_input(self, l: int, x: Tensor) -> Tensor:
        return x

    def layer_output(self, l: int, x: Tensor) -> Tensor:
        return self.layer_forward(l, x)

    def layer_inputs(self, x: Tensor) -> list[Tensor]:
        """The input of every layer for x (N, width[0]), without autograd."""
        return self.spline_inputs(x)

    @torch.no_grad()
    def initialize_from_another_model(self, another_model: "KAN", x: Tensor | None = None) -> "KAN":
        """Makes this KAN (same widths; any G and k) compute another_model's
        function (pykan's method, pykan's argument names): grids interpolated
        from another_model's, splines refitted as in :meth:`refine` (on x,
        default another_model's cache_data), scales, masks, affines and
        symbolic edges copied. Returns self."""
        other = another_model
        if list(other.width) != list(self.width) or getattr(other, "mult_arities", None) != self.mult_arities:
            raise ValueError(f"initialize_from_another_model: widths differ: {other.width} (multiplication arities "
                             f"{getattr(other, 'mult_arities', None)}) vs {self.width} (arities {self.mult_arities})")
        if x is None:
            x = cached_inputs(other)
        inputs = other.layer_inputs(x) if x is not None else [None] * self.depth
        for src, dst, xl in zip(other.act_fun, self.act_fun, inputs):
            dst.refit_from(src, xl)
        for name in ("node_scale", "node_bias", "subnode_scale", "subnode_bias"):
            for p, q in zip(getattr(self, name), getattr(other, name)):
                p.copy_(q)
        for dst, src in zip(self.symbolic_fun, other.symbolic_fun):
            dst.copy_from(src)
        self.base_fun = other.base_fun
        return self

    # ------------------------------------------------------------- training
    def fit(self, dataset, **kwargs) -> dict:
        """Trains the model (pykan's fit); see :func:`kanext.training.fit` for
        the arguments. Returns a dict of per-step lists."""
        return _fit(self, dataset, **kwargs)

    def train(self, mode=True, *args, **kwargs):
        """``model.train(dataset, ...)`` is the paper's spelling of :meth:`fit`;
        ``model.train()`` / ``model.train(False)`` keep nn.Module's meaning."""
        if isinstance(mode, bool):
            if args or kwargs:
                raise TypeError("KAN.train(mode: bool) takes no other arguments; to fit, pass a dataset")
            return super().train(mode)
        return self.fit(mode, *args, **kwargs)

    def reg(self, x: Tensor | str | None = None, lamb_l1: float = 1.0, lamb_entropy: float = 2.0,
            lamb_coef: float = 0.0, lamb_coefdiff: float = 0.0, reg_metric: str = "edge_forward_spline_n") -> Tensor:
        """The sparsity regularisation on inputs x (differentiable); see
        :func:`kanext.regularization.reg`.

        pykan's form ``reg(reg_metric, lamb_l1, lamb_entropy, lamb_coef,
        lamb_coefdiff)`` (a metric name first) works too: the inputs are then
        those the model last saw (see :func:`kanext.recorded.samples`), as
        pykan uses the activations of the last forward. With x=None likewise."""
        if isinstance(x, str):
            x, reg_metric = None, x
        if x is None:
            x = samples(self, what="reg")
        return _reg(self, x, lamb_l1, lamb_entropy, lamb_coef, lamb_coefdiff, reg_metric)

    # ------------------------------------------------------------- interpretability
    def attribute(self, l=None, i=None, out_score=None, x=None, metric="backward", *, plot=False):
        """Node and edge scores (sets node_scores, edge_scores, ...); see
        :func:`kanext.attribution.attribute`. ``plot`` (pykan's): with l and
        i given, also draw the returned scores of the inputs as a bar chart
        (a matplotlib Figure, kept as ``self.attribution_figure``). pykan
        draws by default; kanext only when asked."""
        scores = attribution.attribute(self, l, i, out_score, x, metric)
        if plot and l is not None and i is not None:
            self.attribution_figure = plotting.plot_scores(scores)
        return scores

    @property
    def feature_score(self) -> Tensor:
        """(width[0],) backward attribution score of every input (pykan's
        feature_score), computed afresh. Without samples it raises
        NoRecordingError (an AttributeError too: ``hasattr`` is False)."""
        try:
            self.attribute()
        except NoSamplesError as e:
            raise NoRecordingError(str(e)) from None
        return self.node_scores[0]

    def prune_node(self, threshold=1e-2, active_neurons_id=None, x=None, metric="backward", *, mode=None,
                   log_history=True) -> "KAN":
        """A smaller KAN without the weak hidden nodes; see :func:`kanext.pruning.prune_node`.
        pykan's ``mode``: 'auto' keeps the nodes scoring above threshold,
        'manual' keeps active_neurons_id (the default follows whether
        active_neurons_id is given, as pykan's). ``log_history``: pykan's,
        accepted and without effect (kanext keeps no automatic history)."""
        if mode not in (None, "auto", "manual"):
            raise ValueError(f"prune_node: mode must be 'auto' or 'manual', got {mode!r}")
        if mode == "manual" and active_neurons_id is None:
            raise ValueError("prune_node: mode='manual' needs active_neurons_id (the nodes to keep, per hidden layer)")
        if mode == "auto" and active_neurons_id is not None:
            raise ValueError("prune_node: mode='auto' prunes by threshold; active_neurons_id needs mode='manual'")
        return pruning.prune_node(self, threshold, active_neurons_id, x, metric)

    def prune_edge(self, threshold=3e-2, x=None, metric="backward", *, log_history=True) -> "KAN":
        """Masks the weak edges in place; see :func:`kanext.pruning.prune_edge`.
        ``log_history``: pykan's, without effect."""
        return pruning.prune_edge(self, threshold, x, metric)

    def prune_input(self, threshold=1e-2, active_inputs=None, x=None, metric="backward", *,
                    log_history=True) -> "KAN":
        """A KAN reading only the important inputs; see :func:`kanext.pruning.prune_input`.
        ``log_history``: pykan's, without effect."""
        return pruning.prune_input(self, threshold, active_inputs, x, metric)

    def prune(self, node_th=1e-2, edge_th=3e-2, x=None, metric="backward") -> "KAN":
        """prune_node then prune_edge (pykan's prune); see :func:`kanext.pruning.prune`."""
        return pruning.prune(self, node_th, edge_th, x, metric)

    def remove_edge(self, l: int, i: int, j: int, log_history: bool = True) -> None:
        """Masks edge i -> j of layer l; see :func:`kanext.pruning.remove_edge`.
        ``log_history``: pykan's, without effect."""
        pruning.remove_edge(self, l, i, j)

    def remove_node(self, l: int, i: int, mode: str = "all", log_history: bool = True) -> None:
        """Masks the edges of node i of layer l; see :func:`kanext.pruning.remove_node`.
        ``log_history``: pykan's, without effect."""
        pruning.remove_node(self, l, i, mode)

    def plot(self, folder=None, beta=3, metric="backward", scale=0.5, in_vars=None, out_vars=None, title=None,
             sample=False, x=None, *, tick=False, varscale=1.0):
        """A matplotlib Figure of the network; see :func:`kanext.plotting.plot`."""
        return plotting.plot(self, folder, beta, metric, scale, in_vars, out_vars, title, sample, x, tick=tick,
                             varscale=varscale)

    def plot_activation(self, l: int, i: int, j: int, x_range=None, folder=None):
        """A Figure of edge i -> j of layer l (spline, base, total, knots); see
        :func:`kanext.plotting.plot_activation`."""
        return plotting.plot_activation(self, l, i, j, x_range, folder)

    # ------------------------------------------------------------- symbolic (bodies in kanext.symbolic)
    def fix_symbolic(self, l, i, j, fun=None, fit_params=True, a_range=(-10, 10), b_range=(-10, 10), verbose=True,
                     *, fit_params_bool=None, fun_name=None, random=False, log_history=True):
        """Sets edge (l, i, j) to c * fun(a x + b) + d; returns the fit's r2.
        See :func:`kanext.symbolic.fix_symbolic`. pykan's keywords:
        ``fun_name`` for ``fun`` and ``fit_params_bool`` for ``fit_params``
        (give one of each pair); ``random``: without a fit, (a, b, c, d) are
        drawn uniform in [-1, 1) from torch's global RNG, as pykan draws
        them, instead of (1, 0, 1, 0) (with a fit it changes nothing);
        ``log_history`` has no effect."""
        if fit_params_bool is not None:
            if fit_params is not True:
                raise TypeError("fix_symbolic: give fit_params or pykan's fit_params_bool, not both")
            fit_params = fit_params_bool
        if (fun is None) == (fun_name is None):
            raise TypeError("fix_symbolic: give the function as fun or as pykan's fun_name (one of them)")
        fun = fun if fun_name is None else fun_name
        r2 = symbolic.fix_symbolic(self, l, i, j, fun, fit_params, a_range, b_range, verbose)
        if random and not fit_params:
            sym = self.symbolic_fun[l]
            with torch.no_grad():
                sym.set_edge(i, j, sym.funs_name[j][i], torch.rand(4) * 2 - 1)
        return r2

    def unfix_symbolic(self, l, i, j, log_history=True):
        """Returns edge (l, i, j) to its spline; see :func:`kanext.symbolic.unfix_symbolic`.
        ``log_history``: pykan's, without effect."""
        symbolic.unfix_symbolic(self, l, i, j)

    def unfix_symbolic_all(self, log_history=True):
        """Returns every symbolic edge to its spline. ``log_history``: pykan's, without effect."""
        symbolic.unfix_symbolic_all(self)

    def suggest_symbolic(self, l, i, j, a_range=(-10, 10), b_range=(-10, 10), lib=None, topk=5, verbose=True,
                         r2_loss_fun=None, c_loss_fun=None, weight_simple=0.8):
        """Ranked (name, r2, complexity, score) for edge (l, i, j), pykan's
        arguments in pykan's order; see :func:`kanext.symbolic.suggest_symbolic`."""
        return symbolic.suggest_symbolic(self, l, i, j, a_range, b_range, lib, topk, verbose, r2_loss_fun, c_loss_fun,
                                         weight_simple)

    def auto_symbolic(self, a_range=(-10, 10), b_range=(-10, 10), lib=None, verbose=1, weight_simple=0.8,
                      r2_threshold=0.0):
        """Fixes every active edge to its best suggestion, pykan's arguments in
        pykan's order; see :func:`kanext.symbolic.auto_symbolic`."""
        return symbolic.auto_symbolic(self, a_range, b_range, lib, verbose, weight_simple, r2_threshold)

    def symbolic_formula(self, var=None, normalizer=None, output_normalizer=None, *, simplify=False,
                         floating_digits=4):
        """``(exprs, variables)`` as in pykan: one sympy expression per output and
        the input symbols; see :func:`kanext.symbolic.symbolic_formula`."""
        return symbolic.symbolic_formula(self, var, normalizer, output_normalizer, simplify=simplify,
                                         floating_digits=floating_digits)

    # ------------------------------------------------------------- checkpoints
    def checkpoint_config(self, where: str = "KAN") -> dict:
        """The JSON config of a checkpoint (see kanext.checkpoint): widths, range, base, and each layer's."""
        layers = []
        for l, layer in enumerate(self.act_fun):
            if type(layer) is not KANLinear:
                raise ConfigError(f"{where} act_fun[{l}] is a {type(layer).__qualname__}, expected KANLinear")
            if layer.bias is not None:
                raise ConfigError(f"{where} act_fun[{l}] has a bias, which a KAN does not hold (its node_bias "
                                  f"plays that part); expected a KANLinear with bias=False")
            layers.append(layer.checkpoint_config(f"{where} act_fun[{l}]"))
        cfg = {"width": [int(w) for w in self.width], "grid_range": range_value(self.grid_range, where),
               "base_fun": base_name(self.base_fun, where), "layers": layers}
        if self.has_mult:  # absent for a model without multiplication nodes (older checkpoints look the same)
            cfg[_MULT_KEY] = [[int(a) for a in ar] for ar in self.mult_arities]
        return cfg

    @classmethod
    def from_checkpoint_config(cls, cfg, where: str = "", device="meta") -> "KAN":
        """A KAN of that config, built by __init__ (no draw from the global RNG), each layer's range,
        base and grid_eps then set from its config; tensors are placeholders on ``device``."""
        config_keys(cfg, _CONFIG_KEYS | ({_MULT_KEY} if isinstance(cfg, dict) and _MULT_KEY in cfg else set()), where)
        w = cfg["width"]
        need(isinstance(w, list) and len(w) >= 2 and all(is_int(v) and v >= 1 for v in w),
             f"{where}'width'", "a list of >= 2 positive ints", w)
        ar = cfg.get(_MULT_KEY, [[] for _ in w])
        need(isinstance(ar, list) and len(ar) == len(w) and all(
            isinstance(a, list) and len(a) <= n and all(is_int(v) and v >= 2 for v in a) for a, n in zip(ar, w))
             and not ar[0], f"{where}{_MULT_KEY!r}", f"one list per width entry ({len(w)}), each with at most as many "
             "arities (ints >= 2) as the entry has nodes, the first empty", ar)
        try:
            width, arities = mult_structure("checkpoint", [[n - len(a), len(a)] for n, a in zip(w, ar)], ar)
        except ValueError as e:
            raise ConfigError(f"{where}{e}") from None
        w_out = [n - len(a) + sum(a) for n, a in zip(width, arities)]
        need(isinstance(cfg["layers"], list) and len(cfg["layers"]) == len(w) - 1,
             f"{where}'layers'", f"a list of {len(w) - 1} layer configs", cfg["layers"])
        for l, lc in enumerate(cfg["layers"]):
            need(isinstance(lc, dict) and lc.get("in_features") == w[l] and lc.get("out_features") == w_out[l + 1],
                 f"{where}'layers'[{l}]", f"in_features={w[l]}, out_features={w_out[l + 1]} (from width"
                 f"{' and ' + _MULT_KEY if _MULT_KEY in cfg else ''})", lc)
        range_config(cfg["grid_range"], f"{where}'grid_range'")
        need(cfg["base_fun"] in BASE_NAMES, f"{where}'base_fun'", f"one of {list(BASE_NAMES)}", cfg["base_fun"])
        for l, lc in enumerate(cfg["layers"]):
            KANLinear.check_checkpoint_config(lc, f"{where}'layers'[{l}] ")
        model = cls([[n - len(a), len(a)] for n, a in zip(width, arities)], mult_arity=arities,
                    grid=[lc["grid"] for lc in cfg["layers"]], k=[lc["k"] for lc in cfg["layers"]],
                    base_fun=cfg["base_fun"], grid_range=cfg["grid_range"], seed=0, device=device)
        for layer, lc in zip(model.act_fun, cfg["layers"]):
            layer.grid_range = tuple(float(v) for v in lc["grid_range"])
            layer.base_fun, layer.grid_eps = lc["base_fun"], float(lc["grid_eps"])
        return model


def refit_layer_from(dst: KANLinear, src: KANLinear, x: Tensor | None) -> None:
    """dst (any G, k) takes src's function; the same as ``dst.refit_from(src, x)``
    (:meth:`kanext.spline_module.SplineModule.refit_from`)."""
    dst.refit_from(src, x)
