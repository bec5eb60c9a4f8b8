"""KANLinear: a fused KAN layer that is a drop-in for nn.Linear."""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from . import ops
from ._C import all_equal
from .backend import backend_code
from .checkpoint import checkpointable
from .checks import ConfigError, check_int, check_spline_config, index_list, spline_config_check
from .grid import curve_to_coef, extend_grid, uniform_grid  # noqa: F401  (extend_grid, uniform_grid: re-exported)
from .spline_module import SplineModule

__all__ = ["KANLinear"]



_ONE = (1.0,)
_BASE_IDS = ops.BASE_IDS
_CONFIG_KEYS = {"in_features", "out_features", "grid", "k", "grid_range", "base_fun", "grid_eps"}
# "bias" is written only for a layer that has one, so older checkpoints (and bias-free layers) keep their config.
_BIAS_KEY = "bias"


@checkpointable
class KANLinear(SplineModule):
    r"""One KAN layer: a learnable activation on every edge i -> j.

    .. math:: y_j = \sum_i m_{ij}\,\big(s^b_{ij}\, b(x_i) + s^{sp}_{ij} \sum_g c_{ijg} B_g(x_i)\big)

    It is the same function as pykan's ``KANLayer`` given the same tensors,
    computed by a fused kernel that touches only the k+1 non-zero B-splines of
    each input (cost independent of G; no (N, in, G+k) or (N, in, out) tensor).

    Args:
        in_features, out_features: sizes, as for ``nn.Linear``. Inputs have
            shape (..., in_features), outputs (..., out_features); a 1-D input
            (in_features,) gives (out_features,), as ``nn.Linear`` does.
        grid: number of grid intervals G (pykan's ``num``).
        k: spline order, 0 to 5.
        grid_range: the initial uniform grid's span; k extra knots with the
            same spacing are added on each side.
        base_fun: residual function b: ``'silu'`` (default), ``'identity'``,
            ``'zero'`` (all in the kernel), or any callable on tensors (run in
            PyTorch, then added as ``b(x) @ (mask * scale_base)``).
        noise_scale: amplitude of the initial splines (pykan's recipe: uniform
            noise of width noise_scale / G at the knots, fitted by least squares).
        scale_base_mu, scale_base_sigma: scale_base = mu / sqrt(in) + sigma *
            U(-1, 1) / sqrt(in).
        sp_trainable, sb_trainable: whether scale_sp / scale_base train.
        grid_eps: default mix for :meth:`update_grid`: 1 gives a uniform grid
            over the samples' range, 0 the samples' quantiles.
        bias: if True, a learnable per-output bias (out,), added after the
            edges as ``nn.Linear``'s is (zero at init), so that a Linear with a
            bias can be replaced without losing it. pykan's layer has none.
        generator: a ``torch.Generator`` for the initial draws. Without one the
            draws come from torch's global generator, as ``nn.Linear``'s do
            (so ``torch.manual_seed`` makes them reproducible); the global
            state is never reseeded.

    Attributes (pykan's names and shapes):
        grid: buffer (in, G+2k+1), knots per input, strictly increasing,
            possibly non-uniform after grid updates.
        mask: buffer (in, out).
        coef: parameter (in, out, G+k), contiguous as pykan's (so that
            optimisers which flatten parameters, torch.optim.LBFGS, work). The
            CPU kernels read it directly and fold the scales in tile by tile
            in cache (ops.kan_linear_fused); no (in, G+k, out) copy is kept.
        scale_base, scale_sp: parameters (in, out).
        bias: parameter (out,), or None without ``bias=True``.

    Dtypes: float32 and float64, and on the CPU also bfloat16 / float16 (e.g.
    after ``.to(torch.bfloat16)``, as for nn.Linear): the folded weights and
    the output are computed in float32 and rounded once to the layer's dtype;
    gradients come back in the parameters' dtype (see kanext.ops). The grid
    buffer follows the dtype, so the knots are rounded too.

    NaN/Inf: a NaN input feature makes its whole output row NaN; inputs
    outside the grid (including +-inf) get zero splines and keep the base term.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        grid: int = 5,
        k: int = 3,
        grid_range: Sequence[float] = (-1.0, 1.0),
        base_fun: str | Callable[[Tensor], Tensor] = "silu",
        noise_scale: float = 0.3,
        scale_base_mu: float = 0.0,
        scale_base_sigma: float = 1.0,
        sp_trainable: bool = True,
        sb_trainable: bool = True,
        grid_eps: float = 0.02,
        generator: torch.Generator | None = None,
        device=None,
        dtype=None,
        bias: bool = False,
    ):
        super().__init__()
        if not isinstance(bias, bool):
            raise TypeError(f"KANLinear: bias must be a bool, got {bias!r}")
        check_int("KANLinear", "in_features", in_features, 1)
        check_int("KANLinear", "out_features", out_features, 1)
        lo, hi = check_spline_config("KANLinear", grid, k, grid_range, base_fun)
        self.in_features, self.out_features = in_features, out_features
        self.num, self.k = grid, k
        self.grid_range = (lo, hi)
        self.base_fun = base_fun
        self.grid_eps = float(grid_eps)
        dtype = dtype or torch.get_default_dtype()
        f64 = dict(dtype=torch.float64)

        g = uniform_grid(in_features, grid, k, (lo, hi), **f64)
        # pykan's draws: uniform in the model's dtype (pykan draws in the
        # default dtype, which is its model's), so that a seeded model starts
        # where pykan's does with that seed; then used in float64
        draw_dt = dtype if dtype in (torch.float32, torch.float64) else torch.float32
        rnd = lambda *shape: torch.rand(*shape, generator=generator, dtype=draw_dt).to(torch.float64)  # noqa: E731
        noise = (rnd(grid + 1, in_features, out_features) - 0.5) * noise_scale / grid
        coef = curve_to_coef(g[:, k:-k].T, noise, g, k) if k > 0 else _coef_k0(noise)
        inv = 1.0 / math.sqrt(in_features)
        scale_base = scale_base_mu * inv + scale_base_sigma * (rnd(in_features, out_features) * 2 - 1) * inv
        kw = dict(device=device, dtype=dtype)
        self.register_buffer("grid", g.to(**kw))
        self.register_buffer("mask", torch.ones(in_features, out_features, **kw))
        # pykan's (in, out, G+k), contiguous: optimisers such as torch.optim.LBFGS
        # flatten parameters and their gradients with .view(-1).
        self.coef = nn.Parameter(coef.to(**kw).contiguous())
        self.scale_base = nn.Parameter(scale_base.to(**kw), requires_grad=sb_trainable)
        self.scale_sp = nn.Parameter(torch.full((in_features, out_features), inv, **kw), requires_grad=sp_trainable)
        if bias:
            self.bias = nn.Parameter(torch.zeros(out_features, **kw))
        else:
            self.register_parameter("bias", None)

    # pykan spellings
    @property
    def in_dim(self) -> int:
        return self.in_features

    @property
    def out_dim(self) -> int:
        return self.out_features

    def _masked_scales(self) -> tuple[Tensor, Tensor]:
        """(mask * scale_base, mask * scale_sp), or the parameters themselves
        when no edge is masked (multiplying by 1 changes nothing)."""
        params = self._parameters  # (nn.Module.__getattr__ costs about 1 us per name: see forward)
        Wb, scale = params["scale_base"], params["scale_sp"]
        if self._mask_is_ones():
            return Wb, scale
        mask = self._buffers["mask"]
        return mask * Wb, mask * scale

    def folded_weights(self) -> tuple[Tensor, Tensor]:
        """(Wb, Wc): mask * scale_base (in, out) and mask * scale_sp * coef as
        (in, G+k, out), the two dense weights the kernel takes. Autograd carries
        gradients back through the fold to scale_base, scale_sp and coef.
        (forward does not form Wc on the CPU: see ops.kan_linear_fused.)"""
        Wb, scale = self._masked_scales()
        return Wb, ops.fold_spline_weights(self.coef, scale)

    def _mask_is_ones(self) -> bool:
        """Whether every edge is unmasked, read from the mask's values on
        every call (kanext._C.all_equal, csrc/module.cpp): a write through
        ``mask.data`` or a numpy view changes them without a version bump,
        so no cache keyed on the tensor could see it. False (the mask is
        multiplied, which gives the same values) under torch.compile /
        torch.export and torch.jit.trace (the graph then keeps the mask as
        an input and follows later edits), and for a mask off the CPU,
        where reading it would synchronise."""
        if torch.compiler.is_compiling() or torch.jit.is_tracing():
            return False
        return all_equal((self._buffers["mask"],), _ONE)

    def forward(self, x: Tensor) -> Tensor:
        nd = x.dim()
        if nd == 0 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"KANLinear: expected input of shape (..., {self.in_features}), got shape {tuple(x.shape)}"
            )
        x2 = x if nd == 2 else x.reshape(-1, self.in_features)  # (no view node for 2-D inputs)
        # parameters and buffers straight from their dicts: nn.Module.__getattr__ costs about 1 us per
        # name, which the small layers of the KAN workflow pay several times per step
        params = self._parameters
        coef, bias = params["coef"], params.get("bias")
        Wb, scale = self._masked_scales()
        grid = self._buffers["grid"]
        strategy = backend_code()  # the CUDA strategy, an op argument (kanext.backend)
        # the layer on the parameters themselves: the CPU folds scale into coef
        # inside the kernels (ops.kan_linear_fused), other devices fold first
        base = self.base_fun
        if callable(base):
            y = ops.kan_linear_fused(x2, grid, self.k, 0, Wb, coef, scale, strategy) + base(x2) @ Wb
        else:
            y = ops.kan_linear_fused(x2, grid, self.k, _BASE_IDS[base], Wb, coef, scale, strategy)
        if bias is not None:
            y = y + bias
        # a 2-D input returns y itself, not a view of it (FSDP2 warns about views returned by a module)
        return y if nd == 2 else y.reshape(*x.shape[:-1], self.out_features)

    def _coef3(self) -> Tensor:
        return self.coef

    def _like(self, grid: int, k: int) -> "KANLinear":
        return KANLinear(self.in_features, self.out_features, grid=grid, k=k, grid_range=self.grid_range,
                         base_fun=self.base_fun, grid_eps=self.grid_eps, generator=torch.Generator(),
                         device=self.grid.device, dtype=self.coef.dtype, bias=self.bias is not None)

    def _carry_from(self, src: "KANLinear") -> None:
        self.mask.copy_(src.mask)
        if (self.bias is None) != (src.bias is None):
            raise ValueError(f"KANLinear.refit_from: one layer has a bias and the other not: {src!r} vs {self!r}")
        if src.bias is not None:
            self.bias.copy_(src.bias)
            self.bias.requires_grad_(src.bias.requires_grad)

    def subset(self, in_idx, out_idx) -> "KANLinear":
        """A new layer made of the edges in_idx -> out_idx of this one (pykan:
        get_subset): grid rows, coef, scale_base, scale_sp and mask sliced and
        copied, in the given order, so that
        ``subset(a, b)(x[..., a]) == self(x')[..., b]`` whenever x' agrees
        with x on the inputs a and the inputs not in a are masked off.

        Args:
            in_idx, out_idx: distinct indices (a sequence of ints or a 1-D
                integer tensor), at least one each.
        Self is unchanged; the new layer shares no storage with it and keeps
        the trainable flags, dtype and device. A bias is sliced by out_idx.
        """
        ii = index_list("in_idx", in_idx, self.in_features)
        oi = index_list("out_idx", out_idx, self.out_features)
        dev = self.grid.device
        ti, to = torch.tensor(ii, dtype=torch.long, device=dev), torch.tensor(oi, dtype=torch.long, device=dev)

        def edges(t):  # (in, out, ...) -> rows ii, columns oi, a fresh copy
            return t.detach().index_select(0, ti).index_select(1, to).clone()

        new = KANLinear(len(ii), len(oi), grid=self.num, k=self.k, grid_range=self.grid_range, base_fun=self.base_fun,
                        grid_eps=self.grid_eps, generator=torch.Generator(), device=dev, dtype=self.coef.dtype,
                        bias=self.bias is not None)
        with torch.no_grad():
            new.grid.copy_(self.grid.detach().index_select(0, ti))
            new.mask.copy_(edges(self.mask))
            new.coef.copy_(edges(self.coef))
            new.scale_base.copy_(edges(self.scale_base))
            new.scale_sp.copy_(edges(self.scale_sp))
            if self.bias is not None:
                new.bias.copy_(self.bias.detach().index_select(0, to))
        for name in ("coef", "scale_base", "scale_sp") + (("bias",) if self.bias is not None else ()):
            getattr(new, name).requires_grad_(getattr(self, name).requires_grad)
        return new

    get_subset = subset

    # ------------------------------------------------------------- checkpoints
    def checkpoint_config(self, where: str = "KANLinear") -> dict:
        """The JSON config of a checkpoint (see kanext.checkpoint): sizes, G, k, range, base, grid_eps,
        and ``"bias": true`` for a layer with a bias."""
        cfg = {"in_features": int(self.in_features), "out_features": int(self.out_features),
               **self._spline_config(where)}
        if self.bias is not None:
            cfg[_BIAS_KEY] = True
        return cfg

    @staticmethod
    def check_checkpoint_config(cfg, where: str = "") -> None:
        has_bias = isinstance(cfg, dict) and _BIAS_KEY in cfg
        spline_config_check(cfg, _CONFIG_KEYS | {_BIAS_KEY} if has_bias else _CONFIG_KEYS,
                            ("in_features", "out_features"), where)
        if has_bias and cfg[_BIAS_KEY] is not True:
            raise ConfigError(f"{where}'bias': expected true (the key is absent for a layer without a bias), "
                              f"got {cfg[_BIAS_KEY]!r}")

    @classmethod
    def from_checkpoint_config(cls, cfg, where: str = "", device="meta") -> "KANLinear":
        """A layer of that config, built by __init__ (no draw from the global RNG); its tensors are
        placeholders on ``device`` for the checkpoint's values."""
        cls.check_checkpoint_config(cfg, where)
        return cls(cfg["in_features"], cfg["out_features"], grid=cfg["grid"], k=cfg["k"],
                   grid_range=cfg["grid_range"], base_fun=cfg["base_fun"], grid_eps=float(cfg["grid_eps"]),
                   generator=torch.Generator(), device=device, bias=bool(cfg.get(_BIAS_KEY, False)))

    def extra_repr(self) -> str:
        base = self.base_fun if isinstance(self.base_fun, str) else getattr(self.base_fun, "__name__", "callable")
        return (f"in_features={self.in_features}, out_features={self.out_features}, grid={self.num}, k={self.k}, "
                f"base_fun={base}, bias={self.bias is not None}")


def _coef_k0(noise: Tensor) -> Tensor:
    # Order 0: the G+1 knot samples hit G intervals; the last knot is outside.
    return noise[:-1].permute(1, 2, 0).contiguous()
