"""Learnable activation networks (LAN, the KAN paper's appendix B).

A LAN is an MLP whose node activations are learnable splines:
``y = phi(W x + bias)`` with one activation per output node (N^2 L + N L G
parameters), instead of one per edge as in a KAN.

    LAN               a stack of LANLayers, with fit / update_grid / refine /
                      save / load / symbolic regression, and LAN.from_mlp
    SplineActivation, LANLayer, Sine   the activations (kanext.activation),
                      re-exported here
"""
from __future__ import annotations

import warnings
from typing import Sequence

import torch
from torch import Tensor, nn

from . import lan_symbolic, ops
from .activation import LANLayer, Sine, SplineActivation
from .checkpoint import checkpointable
from .checks import config_keys, per_layer, width_config, width_list
from .grid import extend_grid
from .recorded import remember_input
from .spline_module import SplineNetwork
from .training import fit as _fit

__all__ = ["SplineActivation", "LANLayer", "LAN", "Sine"]  # the first, second and last from kanext.activation

_LAN_KEYS = {"width", "layers"}


@checkpointable
class LAN(SplineNetwork):
    """A learnable activation network ``width[0] -> ... -> width[-1]``: each
    layer is a :class:`LANLayer` (Linear, then a spline activation per node).

    Args:
        width: layer widths, e.g. ``[2, 5, 1]``.
        grid, k, base_fun: per layer (a list) or for all layers.
        grid_range, grid_eps, noise_scale: for every activation.
        seed: with a seed the initial draws come from a private generator
            (global RNG untouched); without one from torch's global RNG.

    Workflow (as for KAN): :meth:`fit` (LBFGS or Adam, grid updates on
    schedule; ``lamb`` must be 0: a LAN has no sparsity regulariser),
    :meth:`update_grid`, :meth:`refine`, :meth:`save` / :meth:`load`, and
    :meth:`from_mlp` to start from a trained MLP; symbolic regression on the
    node activations (:meth:`fix_symbolic`, :meth:`suggest_symbolic`,
    :meth:`auto_symbolic`, :meth:`symbolic_formula`) and :meth:`plot`, from
    :mod:`kanext.lan_symbolic`.
    """

    def __init__(
        self,
        width: Sequence[int] = (2, 5, 1),
        grid: int | Sequence[int] = 5,
        k: int | Sequence[int] = 3,
        base_fun: str | Sequence[str] = "silu",
        grid_range: Sequence[float] = (-1.0, 1.0),
        grid_eps: float = 0.02,
        noise_scale: float = 0.1,
        bias: bool = True,
        seed: int | None = None,
        device=None,
        dtype=None,
    ):
        super().__init__()
        width = width_list("LAN", width)
        self.width = width
        depth = len(width) - 1
        grids, ks = per_layer("LAN", "grid", grid, depth), per_layer("LAN", "k", k, depth)
        bases = per_layer("LAN", "base_fun", base_fun, depth, kind=str)
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        layers = []
        for l in range(depth):
            if gen is not None:  # Linear draws from the global RNG: fork it so that it stays untouched
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=gen)))
                    layer = LANLayer(width[l], width[l + 1], grids[l], ks[l], bases[l], bias=bias, device=device,
                                     dtype=dtype, grid_range=grid_range, grid_eps=grid_eps, noise_scale=noise_scale,
                                     generator=gen)
            else:
                layer = LANLayer(width[l], width[l + 1], grids[l], ks[l], bases[l], bias=bias, device=device,
                                 dtype=dtype, grid_range=grid_range, grid_eps=grid_eps, noise_scale=noise_scale)
            layers.append(layer)
        self.layers = nn.ModuleList(layers)

    @property
    def depth(self) -> int:
        return len(self.layers)

    @property
    def grid(self) -> list[int]:
        return [layer.act.num for layer in self.layers]

    @property
    def k(self) -> list[int]:
        return [layer.act.k for layer in self.layers]

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        remember_input(self, x)  # for model(x); model.plot() (kanext.recorded)
        for layer in self.layers:
            x = layer(x)
        return x

    # SplineNetwork stages: a layer's spline input is its pre-activation
    def spline(self, l: int) -> SplineActivation:
        return self.layers[l].act

    def set_spline(self, l: int, module: SplineActivation) -> None:
        self.layers[l].act = module

    def spline_input(self, l: int, x: Tensor) -> Tensor:
        return self.layers[l].linear(x)

    def layer_output(self, l: int, x: Tensor) -> Tensor:
        return self.layers[l](x)

    def preactivations(self, x: Tensor) -> list[Tensor]:
        """The input of every layer's activation, ``[W_l x_l + b_l for l]``, on samples x."""
        return self.spline_inputs(x)

    def fit(self, dataset, **kwargs) -> dict:
        """Trains the LAN with :func:`kanext.training.fit` (same arguments and
        returned dict). ``lamb`` must be 0 (the default): KAN's sparsity
        regularisation is defined on edge activations, which a LAN does not
        have; use weight decay through your own optimizer instead."""
        if kwargs.get("lamb", 0.0) > 0:
            raise ValueError(f"LAN.fit: lamb must be 0 (a LAN has no sparsity regulariser), got {kwargs['lamb']}")
        return _fit(self, dataset, **kwargs)

    def fix_symbolic(self, l, j, fun, fit_params=True, a_range=(-10, 10), b_range=(-10, 10), verbose=True, x=None):
        """Fixes node j of layer l to c * fun(a * z + b) + d; returns the fit's r2
        (see :func:`kanext.lan_symbolic.fix_symbolic`; samples x or cache_data)."""
        return lan_symbolic.fix_symbolic(self, l, j, fun, fit_params, a_range, b_range, verbose, x)

    def unfix_symbolic(self, l, j) -> None:
        """Returns node j of layer l to its spline activation."""
        lan_symbolic.unfix_symbolic(self, l, j)

    def suggest_symbolic(self, l, j, lib=None, topk=5, weight_simple=0.8, verbose=True, x=None, **kwargs):
        """[(name, r2, complexity, score)] best first for node (l, j); see
        :func:`kanext.lan_symbolic.suggest_symbolic`."""
        return lan_symbolic.suggest_symbolic(self, l, j, lib, topk, weight_simple, verbose=verbose, x=x, **kwargs)

    def auto_symbolic(self, lib=None, weight_simple=0.8, r2_threshold=0.0, verbose=1, x=None, **kwargs) -> dict:
        """Fixes every spline node to its best library function; see
        :func:`kanext.lan_symbolic.auto_symbolic`."""
        return lan_symbolic.auto_symbolic(self, lib, weight_simple, r2_threshold, verbose, x=x, **kwargs)

    def symbolic_formula(self, var=None, normalizer=None, output_normalizer=None, *, simplify=False,
                         floating_digits=4) -> tuple[list, list]:
        """``(exprs, variables)``: one sympy expression per output (the Linear
        layers composed with the symbolic nodes) and the input symbols, as for
        a KAN; see :func:`kanext.symbolic.symbolic_formula`."""
        return lan_symbolic.symbolic_formula(self, var, normalizer, output_normalizer, simplify=simplify,
                                             floating_digits=floating_digits)

    def plot(self, folder=None, in_vars=None, out_vars=None, title=None, x=None, scale=0.5):
        """The network with an inset of every node activation (a matplotlib
        Figure); see :func:`kanext.lan_symbolic.plot`."""
        return lan_symbolic.plot(self, folder, in_vars, out_vars, title, x, scale)

    @classmethod
    @torch.no_grad()
    def from_mlp(
        cls,
        mlp: nn.Sequential,
        samples: Tensor | None = None,
        grid_range: Sequence[float] | None = None,
        k: int = 3,
        tol: float = 1e-8,
        min_grid: int = 5,
        max_grid: int = 4096,
        margin: float = 0.05,
        input_range=(-1.0, 1.0),
    ) -> "LAN":
        """A LAN computing the same function as the MLP ``mlp`` on inputs whose
        pre-activations lie in the grid ranges; then fine-tune it with :meth:`fit`.

        ``mlp`` is an ``nn.Sequential`` of ``nn.Linear`` layers, each followed
        by at most one activation: ``nn.SiLU``, ``nn.Tanh``, ``nn.ReLU``,
        ``nn.GELU``, ``nn.Sigmoid``, :class:`Sine` or ``nn.Identity`` (a Linear
        without one, e.g. the last, gets the identity).

        Grid range per node, widened by ``margin`` times its span on each side:

        - with ``samples`` (inputs of the MLP, (N, in)): the min and max of the
          node's pre-activation over them;
        - else with ``grid_range`` given: that range for every node (the LAN
          is then exact only where the pre-activations stay inside it);
        - else (the default): sound bounds of the node's pre-activation over
          the input box ``input_range`` (a (low, high) pair for every input,
          or one pair per input, shape (in, 2)), propagated layer by layer:
          exact bounds through each Linear (centre W c + b, radius |W| r) and
          the image of each activation (its critical points included), so the
          LAN equals the MLP on the whole box.

        Activations:

        - SiLU: base 'silu', scale_base 1, zero spline: exact everywhere.
        - Identity / none: base 'identity', zero spline: exact everywhere.
        - ReLU: order k = 1 on knots (lo, 0, hi): exact on the range.
        - Tanh, GELU, Sigmoid, Sine: base 'zero' and an order-k spline fitted
          in least squares (float64) on uniform knots; G doubles from
          ``min_grid`` until every node's max error on a denser check set is
          at most ``tol`` times max(1, max |f|) over its range (a warning if
          ``max_grid`` is reached first).

        The model is built in the Linear layers' dtype and device.
        """
        pairs = _parse_mlp(mlp)
        first = pairs[0][0]
        dtype, device = first.weight.dtype, first.weight.device
        width = [first.in_features] + [lin.out_features for lin, _ in pairs]
        x = None if samples is None else samples.detach().to(torch.float64).reshape(-1, width[0])
        box = _input_box(input_range, width[0]) if x is None and grid_range is None else None
        layers = []
        for lin, act in pairs:
            W64 = lin.weight.detach().to(torch.float64)
            b64 = lin.bias.detach().to(torch.float64) if lin.bias is not None else None
            n = lin.out_features
            if x is not None:
                z = x @ W64.T + (b64 if b64 is not None else 0)
                lo, hi = z.min(0).values, z.max(0).values
                span = (hi - lo).clamp_min(1e-3 * torch.maximum(lo.abs(), hi.abs()).clamp_min(1.0))
                lo, hi = lo - margin * span, hi + margin * span
            elif box is not None:  # interval bounds of the box through the Linear
                centre, radius = (box[0] + box[1]) / 2, (box[1] - box[0]) / 2
                zc = W64 @ centre + (b64 if b64 is not None else 0)
                zr = W64.abs() @ radius
                z_lo, z_hi = zc - zr, zc + zr
                span = (z_hi - z_lo).clamp_min(1e-3 * torch.maximum(z_lo.abs(), z_hi.abs()).clamp_min(1.0))
                lo, hi = z_lo - margin * span, z_hi + margin * span
                box = _image(act, z_lo, z_hi)
            else:
                lo = torch.full((n,), float(grid_range[0]), dtype=torch.float64)
                hi = torch.full((n,), float(grid_range[1]), dtype=torch.float64)
            layer = LANLayer(lin.in_features, n, 1, k, "zero", bias=lin.bias is not None, device=device, dtype=dtype,
                             noise_scale=0.0)
            layer.linear.weight.copy_(lin.weight)
            if lin.bias is not None:
                layer.linear.bias.copy_(lin.bias)
            layer.act = _activation_like(act, lo, hi, k, tol, min_grid, max_grid).to(device=device, dtype=dtype)
            layers.append(layer)
            if x is not None:
                z = x @ W64.T + (b64 if b64 is not None else 0)
                x = z if act is None else act(z)
        lan = cls(width, grid=1, k=k, noise_scale=0.0, seed=0, device=device, dtype=dtype)
        for l, layer in enumerate(layers):
            lan.layers[l] = layer
        return lan

    # ------------------------------------------------------------- checkpoints
    def checkpoint_config(self, where: str = "LAN") -> dict:
        """The JSON config of a checkpoint: widths and each layer's config."""
        return {"width": [int(w) for w in self.width],
                "layers": [l_.checkpoint_config(f"{where} layers[{i}]") for i, l_ in enumerate(self.layers)]}

    @classmethod
    def from_checkpoint_config(cls, cfg, where: str = "", device="meta") -> "LAN":
        """A LAN of that config: built by __init__ (no draw from the global RNG), each layer then
        rebuilt from its own config; tensors are placeholders on ``device``."""
        config_keys(cfg, _LAN_KEYS, where)
        width = width_config(cfg, where)
        layers = [LANLayer.from_checkpoint_config(lc, f"{where}'layers'[{l}] ", device)
                  for l, lc in enumerate(cfg["layers"])]
        model = cls(width, grid=1, k=[layer.act.k for layer in layers], noise_scale=0.0, seed=0, device=device)
        model.layers = nn.ModuleList(layers)
        return model


# ------------------------------------------------------------------ helpers

_ACTS = (nn.SiLU, nn.Tanh, nn.ReLU, nn.GELU, nn.Sigmoid, nn.Identity, Sine)


def _parse_mlp(mlp) -> list[tuple[nn.Linear, nn.Module | None]]:
    if not isinstance(mlp, nn.Sequential):
        raise TypeError(f"LAN.from_mlp: expected an nn.Sequential of Linear layers and activations, got {type(mlp).__name__}")
    mods = list(mlp)
    pairs, i = [], 0
    while i < len(mods):
        m = mods[i]
        if not isinstance(m, nn.Linear):
            raise ValueError(f"LAN.from_mlp: expected nn.Linear at position {i} of the Sequential, got {type(m).__name__}")
        act = None
        if i + 1 < len(mods) and not isinstance(mods[i + 1], nn.Linear):
            act = mods[i + 1]
            if type(act) not in _ACTS:
                raise ValueError(
                    f"LAN.from_mlp: unsupported activation {type(act).__name__} at position {i + 1}; expected one of "
                    f"{[a.__name__ for a in _ACTS]}"
                )
            i += 1
        pairs.append((m, act))
        i += 1
    if not pairs:
        raise ValueError("LAN.from_mlp: the Sequential is empty")
    for (a, _), (b, _) in zip(pairs, pairs[1:]):
        if a.out_features != b.in_features:
            raise ValueError(f"LAN.from_mlp: Linear sizes do not chain: {a.out_features} outputs feed {b.in_features} inputs")
    return pairs


def _input_box(input_range, n_in: int) -> tuple[Tensor, Tensor]:
    """(lo, hi) of the input box, each (n_in,) float64, from a pair or an (n_in, 2) table."""
    try:
        r = torch.as_tensor(input_range, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        r = None
    if r is not None and r.shape == (2,):
        r = r.expand(n_in, 2)
    if r is None or r.shape != (n_in, 2) or not bool(torch.isfinite(r).all()) or not bool((r[:, 0] < r[:, 1]).all()):
        raise ValueError(f"LAN.from_mlp: input_range must be a finite (low, high) pair with low < high, or one such "
                         f"pair per input (shape ({n_in}, 2)); got {input_range!r}")
    return r[:, 0].clone(), r[:, 1].clone()


_MONOTONE = (nn.Tanh, nn.Sigmoid, nn.ReLU, nn.Identity)


def _image(act, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    """Bounds of act over [lo, hi] per node (float64): the endpoints for the
    increasing activations; for SiLU, GELU and Sine the min and max over a
    fine grid of the interval (their minima and maxima inside it included),
    widened by 1e-6 of the value span plus 1e-9, far more than the dips a
    smooth function can make between grid points (h^2 max|f''| / 8)."""
    if act is None or isinstance(act, _MONOTONE):
        f = (lambda t: t) if act is None else act
        return f(lo), f(hi)
    if isinstance(act, Sine) and bool(((hi - lo) * abs(act.w0) >= 2 * torch.pi).any()):
        full = (hi - lo) * abs(act.w0) >= 2 * torch.pi
    else:
        full = torch.zeros_like(lo, dtype=torch.bool)
    t = torch.linspace(0, 1, 4097, dtype=torch.float64)
    v = act(lo[None, :] + (hi - lo)[None, :] * t[:, None])  # (4097, n)
    v_lo, v_hi = v.min(0).values, v.max(0).values
    pad = 1e-6 * (v_hi - v_lo) + 1e-9
    v_lo, v_hi = v_lo - pad, v_hi + pad
    if isinstance(act, Sine):
        v_lo = torch.where(full, torch.full_like(v_lo, -1.0), v_lo.clamp_min(-1.0))
        v_hi = torch.where(full, torch.full_like(v_hi, 1.0), v_hi.clamp_max(1.0))
    return v_lo, v_hi


def _grid_over(lo: Tensor, hi: Tensor, G: int, k: int) -> Tensor:
    s = torch.linspace(0, 1, G + 1, dtype=torch.float64)
    return extend_grid(lo[:, None] + (hi - lo)[:, None] * s, k)


def _activation_like(act, lo, hi, k, tol, min_grid, max_grid) -> SplineActivation:
    n = lo.shape[0]
    f64 = torch.float64
    if act is None or isinstance(act, (nn.Identity, nn.SiLU)):
        base = "silu" if isinstance(act, nn.SiLU) else "identity"
        sa = SplineActivation(n, min_grid, k, base_fun=base, noise_scale=0.0, dtype=f64)
        sa.grid.copy_(_grid_over(lo, hi, min_grid, k))
        return sa
    if isinstance(act, nn.ReLU):
        # Order 1 with 0 a knot: relu is exactly piecewise linear there.
        lo_c, hi_c = torch.minimum(lo, -(hi - lo) * 1e-3), torch.maximum(hi, (hi - lo) * 1e-3)
        sa = SplineActivation(n, 2, 1, base_fun="zero", noise_scale=0.0, dtype=f64)
        sa.grid.copy_(extend_grid(torch.stack([lo_c, torch.zeros_like(lo), hi_c], 1), 1))
        # Linear B-splines interpolate their knot values: coef = relu at the G+k = 3 Greville points.
        pts = sa.grid[:, 1:4]
        sa.coef.copy_(torch.relu(pts))
        return sa
    f = act
    G = min_grid
    while True:
        g = _grid_over(lo, hi, G, k)
        # Least squares on (k + 3) points per interval, shared in the unit coordinate.
        per = k + 3
        s = ((torch.arange(G * per, dtype=f64) + 0.5) / (G * per))
        unit = _grid_over(torch.zeros(1, dtype=f64), torch.ones(1, dtype=f64), G, k)
        A = ops.spline_basis(s[:, None], unit, k)[:, 0, :]  # (P, G+k), same for every node
        pts = lo[None, :] + (hi - lo)[None, :] * s[:, None]  # (P, n)
        F = f(pts)
        AtA = A.T @ A
        coef = torch.linalg.solve(AtA, A.T @ F).T  # (n, G+k)
        sc = ((torch.arange(G * 7, dtype=f64) + 0.37) / (G * 7))
        chk = lo[None, :] + (hi - lo)[None, :] * sc[:, None]
        spl = ops.spline_activation(chk, g, k, "zero", coef, torch.zeros(n, dtype=f64), torch.ones(n, dtype=f64))
        exact = f(chk)
        err = ((spl - exact).abs().max(0).values / exact.abs().max(0).values.clamp_min(1.0)).max()
        if float(err) <= tol or G * 2 > max_grid:
            if float(err) > tol:
                warnings.warn(f"LAN.from_mlp: {type(act).__name__} fit error {float(err):.2e} > tol {tol:.1e} at "
                              f"max_grid={max_grid}; raise max_grid or k", stacklevel=3)
            break
        G *= 2
    sa = SplineActivation(n, G, k, base_fun="zero", noise_scale=0.0, dtype=f64)
    sa.grid.copy_(g)
    sa.coef.copy_(coef)
    sa.scale_base.zero_()
    return sa
