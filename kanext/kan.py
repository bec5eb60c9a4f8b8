"""KAN: a stack of fused KAN layers with pykan's node and subnode affines."""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from . import attribution, plotting, pruning, symbolic
from .checkpoint import checkpointable
from .checks import BASE_NAMES, ConfigError, base_name, config_keys, need, per_layer, range_config, range_value, \
    width_config, width_list
from .layers import KANLinear
from .pykan_methods import PykanMethods
from .recorded import remember_input, samples
from .regularization import edge_scales
from .regularization import reg as _reg
from .spline_module import SplineNetwork
from .symbolic import SymbolicLayer
from .symbolic.units import fixed_edge_stats
from .training import fit as _fit

__all__ = ["KAN", "refit_layer_from"]


_CONFIG_KEYS = {"width", "grid_range", "base_fun", "layers"}


@checkpointable
class KAN(PykanMethods, SplineNetwork):
    """A Kolmogorov-Arnold Network: ``width[0] -> width[1] -> ... -> width[-1]``.

    Args:
        width: layer widths, e.g. ``[2, 5, 1]`` (copied, never mutated). pykan's
            ``[[n, 0], ...]`` form is accepted when no multiplication node is used.
        grid: G, intervals per grid (an int, or one per layer).
        k: spline order 0..5 (an int, or one per layer).
        base_fun, grid_range, noise_scale, scale_base_mu, scale_base_sigma,
        sp_trainable, sb_trainable: as for :class:`KANLinear`.
        grid_eps: default mix for :meth:`update_grid` (1 uniform, 0 quantiles).
        affine_trainable: whether pykan's per-node affines (node_scale,
            node_bias, subnode_scale, subnode_bias; identity at init) train.
        seed: with a seed, all initial draws come from a private generator
            (reproducible, global RNG untouched). Without one they come from
            torch's global generator, which is never reseeded.

    Attributes:
        save_act: when True, every forward also records, per layer and
            without (N, in, out) tensors (one fused statistics pass per
            layer, no autograd): ``acts`` (each layer's input, and the output),
            ``acts_scale`` ((out, in) pykan's edge scores std(phi) / (std(x) + 0.1)),
            ``edge_l1`` ((out, in) the paper's |phi|_1 = mean |phi|) and
            ``input_range`` ((in, 2) min and max of each layer input). Off by
            default: it costs about one more forward.
        act_fun: ``nn.ModuleList`` of :class:`KANLinear` (pykan's name).
        symbolic_fun: ``nn.ModuleList`` of :class:`kanext.symbolic.SymbolicLayer`
            (pykan's name): each layer's symbolic edges c * f(a x + b) + d,
            added to the spline layer's output (see :meth:`fix_symbolic`).
        node_scale, node_bias, subnode_scale, subnode_bias: ``nn.ParameterList``
            of (width[l+1],) tensors; each layer computes
            ``node_scale * (subnode_scale * layer(x) + subnode_bias) + node_bias``.
    """

    save_act = False  # class default; set it on an instance to record statistics

    def __init__(
        self,
        width: Sequence[int] = (2, 5, 1),
        grid: int | Sequence[int] = 3,
        k: int | Sequence[int] = 3,
        base_fun: str | Callable[[Tensor], Tensor] = "silu",
        grid_range: Sequence[float] = (-1.0, 1.0),
        noise_scale: float = 0.3,
        scale_base_mu: float = 0.0,
        scale_base_sigma: float = 1.0,
        sp_trainable: bool = True,
        sb_trainable: bool = True,
        affine_trainable: bool = False,
        grid_eps: float = 0.02,
        seed: int | None = None,
        device=None,
        dtype=None,
    ):
        super().__init__()
        self.width = width_list("KAN", width, pykan_pairs=True)
        depth = len(self.width) - 1
        grids = per_layer("KAN", "grid", grid, depth)
        ks = per_layer("KAN", "k", k, depth)
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        self.base_fun = base_fun
        self.grid_range = tuple(float(v) for v in grid_range)
        self.act_fun = nn.ModuleList(
            KANLinear(
                self.width[l], self.width[l + 1], grid=grids[l], k=ks[l], grid_range=grid_range,
                base_fun=base_fun, noise_scale=noise_scale, scale_base_mu=scale_base_mu,
                scale_base_sigma=scale_base_sigma, sp_trainable=sp_trainable, sb_trainable=sb_trainable,
                grid_eps=grid_eps, generator=gen, device=device, dtype=dtype,
            )
            for l in range(depth)
        )
        kw = dict(device=device, dtype=dtype or torch.get_default_dtype())

        def plist(fill):
            return nn.ParameterList(
                nn.Parameter(torch.full((w,), fill, **kw), requires_grad=affine_trainable) for w in self.width[1:]
            )

        self.node_scale, self.node_bias = plist(1.0), plist(0.0)
        self.subnode_scale, self.subnode_bias = plist(1.0), plist(0.0)
        self.symbolic_fun = nn.ModuleList(
            SymbolicLayer(self.width[l], self.width[l + 1], **kw) for l in range(depth)
        )

    @property
    def depth(self) -> int:
        return len(self.act_fun)

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
        for l in range(self.depth):
            x = self.layer_forward(l, x, singularity_avoiding, y_th)
        return x

    def _forward_recording(self, x: Tensor, singularity_avoiding: bool = False, y_th: float = 10.0) -> Tensor:
        lead = x.shape[:-1]
        x = x.reshape(-1, self.width[0])
        acts, scales, l1, ranges = [], [], [], []
        for l, layer in enumerate(self.act_fun):
            xd = x.detach()
            acts.append(xd)
            with torch.no_grad():
                n = xd.shape[0]
                scales.append(edge_scales(layer, xd, "edge_forward_spline_n") if n > 1
                              else xd.new_zeros(layer.out_features, layer.in_features))
                l1.append(edge_scales(layer, xd, "edge_forward_l1"))
                ranges.append(torch.stack([xd.amin(0), xd.amax(0)], dim=1) if xd.shape[0] else xd.new_zeros(xd.shape[1], 2))
                if self.symbolic_fun[l].n_fixed:  # fixed edges: spline + symbolic
                    fixed_edge_stats(layer, self.symbolic_fun[l], xd, scales[-1], l1[-1])
            x = self.layer_forward(l, x, singularity_avoiding, y_th)
        acts.append(x.detach())
        self.acts, self.acts_scale, self.edge_l1, self.input_range = acts, scales, l1, ranges
        return x.reshape(*lead, self.width[-1])

    def layer_forward(self, l: int, x: Tensor, singularity_avoiding: bool = False, y_th: float = 10.0) -> Tensor:
        """Layer l with its affines: node_scale * (subnode_scale * phi(x) + subnode_bias) + node_bias,
        where phi(x) sums the spline edges and the symbolic edges (pykan's order)."""
        sym = self.symbolic_fun[l]
        if sym.n_fixed:
            x = self.act_fun[l](x) + sym(x, singularity_avoiding=singularity_avoiding, y_th=y_th)
        else:
            x = self.act_fun[l](x)
        if self._affines_are_identity(l):
            return x  # the same values, without four ops and their backward per layer
        x = torch.addcmul(self.subnode_bias[l], self.subnode_scale[l], x)
        return torch.addcmul(self.node_bias[l], self.node_scale[l], x)

    def _affines_are_identity(self, l: int) -> bool:
        """True when layer l's affines are frozen at scale 1, bias 0 (the
        default), so that applying them changes nothing and needs no gradient.
        The answer is cached per layer and recomputed whenever one of the four
        tensors is modified (its version counter or storage changes)."""
        if torch.compiler.is_compiling():
            return False
        ps = (self.subnode_scale[l], self.subnode_bias[l], self.node_scale[l], self.node_bias[l])
        key = tuple((id(p), p._version, p.data_ptr(), p.requires_grad) for p in ps)
        cache = self.__dict__.setdefault("_identity_affine_cache", {})
        hit = cache.get(l)
        if hit is not None and hit[0] == key:
            return hit[1]
        ident = not any(p.requires_grad for p in ps) and bool(
            (ps[0] == 1).all() and (ps[1] == 0).all() and (ps[2] == 1).all() and (ps[3] == 0).all()
        )
        cache[l] = (key, ident)
        return ident

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
    def initialize_from_another_model(self, other: "KAN", x: Tensor | None = None) -> "KAN":
        """Makes this KAN (same widths; any G and k) compute other's function
        (pykan's method of the same name): grids interpolated from other's,
        splines refitted as in :meth:`refine` (on x, default other's
        cache_data), scales, masks, affines and symbolic edges copied.
        Returns self."""
        if list(other.width) != list(self.width):
            raise ValueError(f"initialize_from_another_model: widths differ: {other.width} vs {self.width}")
        if x is None:
            x = getattr(other, "cache_data", None)
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
    def attribute(self, l=None, i=None, out_score=None, x=None, metric="backward"):
        """Node and edge scores (sets node_scores, edge_scores, ...); see
        :func:`kanext.attribution.attribute`."""
        return attribution.attribute(self, l, i, out_score, x, metric)

    @property
    def feature_score(self) -> Tensor:
        """(width[0],) backward attribution score of every input (pykan's
        feature_score), computed afresh."""
        self.attribute()
        return self.node_scores[0]

    def prune_node(self, threshold=1e-2, active_neurons_id=None, x=None, metric="backward") -> "KAN":
        """A smaller KAN without the weak hidden nodes; see :func:`kanext.pruning.prune_node`."""
        return pruning.prune_node(self, threshold, active_neurons_id, x, metric)

    def prune_edge(self, threshold=3e-2, x=None, metric="backward") -> "KAN":
        """Masks the weak edges in place; see :func:`kanext.pruning.prune_edge`."""
        return pruning.prune_edge(self, threshold, x, metric)

    def prune_input(self, threshold=1e-2, active_inputs=None, x=None, metric="backward") -> "KAN":
        """A KAN reading only the important inputs; see :func:`kanext.pruning.prune_input`."""
        return pruning.prune_input(self, threshold, active_inputs, x, metric)

    def prune(self, node_th=1e-2, edge_th=3e-2, x=None, metric="backward") -> "KAN":
        """prune_node then prune_edge (pykan's prune); see :func:`kanext.pruning.prune`."""
        return pruning.prune(self, node_th, edge_th, x, metric)

    def remove_edge(self, l: int, i: int, j: int) -> None:
        """Masks edge i -> j of layer l; see :func:`kanext.pruning.remove_edge`."""
        pruning.remove_edge(self, l, i, j)

    def remove_node(self, l: int, i: int, mode: str = "all") -> None:
        """Masks the edges of node i of layer l; see :func:`kanext.pruning.remove_node`."""
        pruning.remove_node(self, l, i, mode)

    def plot(self, folder=None, beta=3, metric="backward", scale=0.5, in_vars=None, out_vars=None, title=None,
             sample=False, x=None):
        """A matplotlib Figure of the network; see :func:`kanext.plotting.plot`."""
        return plotting.plot(self, folder, beta, metric, scale, in_vars, out_vars, title, sample, x)

    def plot_activation(self, l: int, i: int, j: int, x_range=None, folder=None):
        """A Figure of edge i -> j of layer l (spline, base, total, knots); see
        :func:`kanext.plotting.plot_activation`."""
        return plotting.plot_activation(self, l, i, j, x_range, folder)

    # ------------------------------------------------------------- symbolic (bodies in kanext.symbolic)
    def fix_symbolic(self, l, i, j, fun, fit_params=True, a_range=(-10, 10), b_range=(-10, 10), verbose=True):
        """Sets edge (l, i, j) to c * fun(a x + b) + d; returns the fit's r2.
        See :func:`kanext.symbolic.fix_symbolic`."""
        return symbolic.fix_symbolic(self, l, i, j, fun, fit_params, a_range, b_range, verbose)

    def unfix_symbolic(self, l, i, j):
        """Returns edge (l, i, j) to its spline; see :func:`kanext.symbolic.unfix_symbolic`."""
        symbolic.unfix_symbolic(self, l, i, j)

    def unfix_symbolic_all(self):
        """Returns every symbolic edge to its spline."""
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
        return {"width": [int(w) for w in self.width], "grid_range": range_value(self.grid_range, where),
                "base_fun": base_name(self.base_fun, where), "layers": layers}

    @classmethod
    def from_checkpoint_config(cls, cfg, where: str = "", device="meta") -> "KAN":
        """A KAN of that config, built by __init__ (no draw from the global RNG), each layer's range,
        base and grid_eps then set from its config; tensors are placeholders on ``device``."""
        config_keys(cfg, _CONFIG_KEYS, where)
        width = width_config(cfg, where)
        range_config(cfg["grid_range"], f"{where}'grid_range'")
        need(cfg["base_fun"] in BASE_NAMES, f"{where}'base_fun'", f"one of {list(BASE_NAMES)}", cfg["base_fun"])
        for l, lc in enumerate(cfg["layers"]):
            KANLinear.check_checkpoint_config(lc, f"{where}'layers'[{l}] ")
        model = cls(width, grid=[lc["grid"] for lc in cfg["layers"]], k=[lc["k"] for lc in cfg["layers"]],
                    base_fun=cfg["base_fun"], grid_range=cfg["grid_range"], seed=0, device=device)
        for layer, lc in zip(model.act_fun, cfg["layers"]):
            layer.grid_range = tuple(float(v) for v in lc["grid_range"])
            layer.base_fun, layer.grid_eps = lc["base_fun"], float(lc["grid_eps"])
        return model


def refit_layer_from(dst: KANLinear, src: KANLinear, x: Tensor | None) -> None:
    """dst (any G, k) takes src's function; the same as ``dst.refit_from(src, x)``
    (:meth:`kanext.spline_module.SplineModule.refit_from`)."""
    dst.refit_from(src, x)
