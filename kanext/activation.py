"""Learnable activations: :class:`SplineActivation` (a learnable spline per
channel, usable in any model), :class:`LANLayer` (nn.Linear, then a
SplineActivation: one layer of a LAN) and :class:`Sine` (SIREN's activation).
The network itself, :class:`kanext.LAN`, is in :mod:`kanext.lan`."""
from __future__ import annotations

import copy
from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from . import ops
from .checkpoint import Checkpointed, checkpointable
from .checks import ConfigError, check_int, check_spline_config, config_keys, is_int, need, spline_config_check
from .grid import curve_to_coef, uniform_grid
from .spline_module import SplineModule

__all__ = ["SplineActivation", "LANLayer", "Sine"]

_ACT_KEYS = {"num_channels", "grid", "k", "grid_range", "base_fun", "grid_eps"}
_LANLAYER_KEYS = {"in_features", "out_features", "bias", "activation"}


class Sine(nn.Module):
    """SIREN's activation ``sin(w0 * x)`` (Sitzmann et al. 2020); w0 = 30 there.

    :meth:`LAN.from_mlp` recognises it (any module with this class)."""

    def __init__(self, w0: float = 30.0):
        super().__init__()
        self.w0 = float(w0)

    def forward(self, x: Tensor) -> Tensor:
        return torch.sin(self.w0 * x)

    def extra_repr(self) -> str:
        return f"w0={self.w0}"


@checkpointable
class SplineActivation(SplineModule):
    r"""A learnable activation per channel: for z of shape (..., C),

    .. math:: y_{\dots c} = s^b_c\, b(z_{\dots c}) + s^{sp}_c \sum_g c_{cg} B_g(z_{\dots c})

    on each channel's own knot vector, computed by the fused
    ``kanext.ops.spline_activation`` op (cost per element independent of G).
    Usable on its own in any model, e.g. in place of ``nn.SiLU()``.

    Args:
        num_channels: C, the size of the last dimension.
        grid: G, intervals per grid.
        k: spline order, 0 to 5.
        grid_range: the initial uniform grid's span (k extra knots each side).
        base_fun: ``'silu'`` (default), ``'identity'``, ``'zero'`` (in the
            kernel) or a callable on tensors (run in PyTorch, times scale_base).
        noise_scale: amplitude of the initial splines (uniform noise of width
            noise_scale / G at the knots, fitted); 0 gives coef = 0, i.e.
            exactly ``scale_base * b``.
        scale_base, scale_sp: initial values of the per-channel scales.
        grid_eps: default mix of :meth:`update_grid` (1 uniform, 0 quantiles).
        generator: optional ``torch.Generator`` for the initial noise.

    Attributes: ``grid`` buffer (C, G+2k+1); parameters ``coef`` (C, G+k),
    ``scale_base`` (C,), ``scale_sp`` (C,). Outside a channel's grid only the
    base term remains; NaN in gives NaN out. Channels can be fixed to symbolic
    functions (:meth:`LAN.fix_symbolic`): their state is then the optional
    ``symbolic`` submodule (:class:`kanext.symbolic.ChannelSymbolic`).
    Grid methods (update_grid, refine, refit_from) come from
    :class:`kanext.spline_module.SplineModule`.

    Dtypes: float32 and float64, and on the CPU also bfloat16 / float16
    (e.g. after ``.to(torch.bfloat16)``, as for ``nn.Linear``): the spline is
    then evaluated in float32 and rounded once to the module's dtype, and
    gradients come back in the parameters' dtype (see :mod:`kanext.ops`). The
    grid buffer follows the module's dtype, so its knots are rounded to 16
    bits too. A callable base_fun and symbolic channels run in PyTorch in the
    module's dtype.
    """

    #: Checkpoints may carry symbolic channels for this class (kanext.symbolic.state).
    has_symbolic_channels = True

    def __init__(
        self,
        num_channels: int,
        grid: int = 5,
        k: int = 3,
        grid_range: Sequence[float] = (-1.0, 1.0),
        base_fun: str | Callable[[Tensor], Tensor] = "silu",
        noise_scale: float = 0.1,
        scale_base: float = 1.0,
        scale_sp: float = 1.0,
        grid_eps: float = 0.02,
        generator: torch.Generator | None = None,
        device=None,
        dtype=None,
    ):
        super().__init__()
        check_int("SplineActivation", "num_channels", num_channels, 1)
        lo, hi = check_spline_config("SplineActivation", grid, k, grid_range, base_fun)
        self.num_channels, self.num, self.k = num_channels, grid, k
        self.grid_range = (lo, hi)
        self.base_fun = base_fun
        self.grid_eps = float(grid_eps)
        kw = dict(device=device, dtype=dtype or torch.get_default_dtype())
        g = uniform_grid(num_channels, grid, k, (lo, hi), dtype=torch.float64)
        noise = (torch.rand(grid + 1, num_channels, 1, generator=generator, dtype=torch.float64) - 0.5)
        noise = noise * noise_scale / grid
        if noise_scale == 0:
            coef = torch.zeros(num_channels, grid + k, dtype=torch.float64)
        elif k > 0:
            coef = curve_to_coef(g[:, k:-k].T, noise, g, k)[:, 0, :]
        else:
            coef = noise[:-1, :, 0].T.contiguous()
        self.register_buffer("grid", g.to(**kw))
        self.coef = nn.Parameter(coef.to(**kw))
        self.scale_base = nn.Parameter(torch.full((num_channels,), float(scale_base), **kw))
        self.scale_sp = nn.Parameter(torch.full((num_channels,), float(scale_sp), **kw))

    def forward(self, z: Tensor) -> Tensor:
        if z.dim() == 0 or z.shape[-1] != self.num_channels:
            raise ValueError(
                f"SplineActivation: expected input of shape (..., {self.num_channels}), got shape {tuple(z.shape)}"
            )
        z2 = z.reshape(-1, self.num_channels)
        y = self.spline_forward(z2)
        sym = self._modules.get("symbolic")  # channels fixed by LAN.fix_symbolic (kanext.lan_symbolic)
        if sym is not None:
            y = sym(z2, y)
        return y.reshape(z.shape)

    def spline_forward(self, z2: Tensor) -> Tensor:
        """The spline + base path of every channel on z2 (N, C), symbolic channels ignored."""
        if callable(self.base_fun):
            y = ops.spline_activation(z2, self.grid, self.k, 0, self.coef, self.scale_base, self.scale_sp)
            return y + self.scale_base * self.base_fun(z2)
        return ops.spline_activation(z2, self.grid, self.k, self.base_fun, self.coef, self.scale_base, self.scale_sp)

    def _coef3(self) -> Tensor:
        return self.coef.unsqueeze(1)

    def _like(self, grid: int, k: int) -> "SplineActivation":
        return SplineActivation(self.num_channels, grid, k, self.grid_range, self.base_fun, noise_scale=0.0,
                                grid_eps=self.grid_eps, device=self.grid.device, dtype=self.coef.dtype)

    def _carry_from(self, src: "SplineActivation") -> None:
        sym = src._modules.get("symbolic")
        if sym is not None:
            self.symbolic = copy.deepcopy(sym)

    def extra_repr(self) -> str:
        base = self.base_fun if isinstance(self.base_fun, str) else getattr(self.base_fun, "__name__", "callable")
        return f"num_channels={self.num_channels}, grid={self.num}, k={self.k}, base_fun={base}"

    # ------------------------------------------------------------- checkpoints
    def checkpoint_config(self, where: str = "SplineActivation") -> dict:
        """The JSON config of a checkpoint (see kanext.checkpoint); symbolic channels travel as an extension."""
        if type(self) is not SplineActivation:
            raise ConfigError(f"{where} is a {type(self).__qualname__}, expected SplineActivation")
        return {"num_channels": int(self.num_channels), **self._spline_config(where)}

    @classmethod
    def from_checkpoint_config(cls, cfg, where: str = "", device="meta") -> "SplineActivation":
        """An activation of that config, built by __init__; tensors are placeholders on ``device``."""
        spline_config_check(cfg, _ACT_KEYS, ("num_channels",), where)
        return cls(cfg["num_channels"], cfg["grid"], cfg["k"], cfg["grid_range"], cfg["base_fun"], noise_scale=0.0,
                   grid_eps=float(cfg["grid_eps"]), generator=torch.Generator(), device=device)


@checkpointable
class LANLayer(Checkpointed, nn.Module):
    """``SplineActivation(Linear(x))``: one LAN layer (in_features -> out_features).

    Args: in_features, out_features, bias as for ``nn.Linear`` (``linear``
    attribute); grid, k, base_fun and the remaining keywords go to the
    :class:`SplineActivation` (``act`` attribute) over out_features channels.
    In bfloat16 / float16 on the CPU the Linear runs as ``nn.Linear`` does
    and the activation in float32, rounded to the layer's dtype
    (:class:`SplineActivation`).
    """

    def __init__(self, in_features: int, out_features: int, grid: int = 5, k: int = 3,
                 base_fun: str | Callable[[Tensor], Tensor] = "silu", bias: bool = True, device=None, dtype=None,
                 **act_kwargs):
        super().__init__()
        check_int("LANLayer", "in_features", in_features, 1)
        check_int("LANLayer", "out_features", out_features, 1)
        self.in_features, self.out_features = in_features, out_features
        self.linear = nn.Linear(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.act = SplineActivation(out_features, grid, k, base_fun=base_fun, device=device, dtype=dtype, **act_kwargs)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.linear(x))

    def checkpoint_config(self, where: str = "LANLayer") -> dict:
        """The JSON config of a checkpoint: sizes, bias, and the activation's config."""
        if type(self) is not LANLayer or type(self.linear) is not nn.Linear:
            raise ConfigError(f"{where} is a {type(self).__qualname__} (linear "
                              f"{type(getattr(self, 'linear', None)).__qualname__}), expected LANLayer with nn.Linear")
        return {"in_features": int(self.in_features), "out_features": int(self.out_features),
                "bias": self.linear.bias is not None, "activation": self.act.checkpoint_config(where + " act")}

    @classmethod
    def from_checkpoint_config(cls, cfg, where: str = "", device="meta") -> "LANLayer":
        """A layer of that config, built by __init__; tensors are placeholders on ``device``."""
        config_keys(cfg, _LANLAYER_KEYS, where)
        for key in ("in_features", "out_features"):
            need(is_int(cfg[key]) and cfg[key] >= 1, f"{where}{key!r}", "an int >= 1", cfg[key])
        need(isinstance(cfg["bias"], bool), f"{where}'bias'", "true or false", cfg["bias"])
        act = cfg["activation"]
        need(isinstance(act, dict) and act.get("num_channels") == cfg["out_features"], f"{where}'activation'",
             f"an activation config with num_channels={cfg['out_features']}", act)
        layer = cls(cfg["in_features"], cfg["out_features"], bias=cfg["bias"], device=device, noise_scale=0.0,
                    generator=torch.Generator())
        layer.act = SplineActivation.from_checkpoint_config(act, f"{where}'activation' ", device)
        return layer
