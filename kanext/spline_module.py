"""What KAN and LAN share above the ops: spline modules and spline networks.

- :class:`SplineModule`, the base of :class:`~kanext.KANLinear` (a spline
  per edge) and :class:`~kanext.SplineActivation` (a spline per channel):
  one knot row per input feature and coefficients that read as
  (features, outputs, G+k). Grid adaptation (:meth:`~SplineModule.update_grid`),
  taking another module's function (:meth:`~SplineModule.refit_from`) and
  grid extension (:meth:`~SplineModule.refine`) are written once here on that
  view; the two classes only say how their coef reads as (F, out, G+k) and what
  else a copy carries (KAN: the mask; LAN: the symbolic channels).
- :class:`SplineNetwork`, the base of :class:`~kanext.KAN` and
  :class:`~kanext.LAN`: model-level update_grid and refine, given each
  network's stages (where a layer's spline inputs come from and how the
  layer maps its input to the next).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from .checkpoint import Checkpointed
from .distributed import gather_rows, is_sharded, on_full_tensors, sync_group
from .checks import base_name, check_int, eps_value, per_layer, range_value
from .grid import collocation_points, grid_from_samples, interpolate_grid, is_refinement, refit_coef
from .recorded import cached_inputs, copy_without_data

__all__ = ["SplineModule", "SplineNetwork"]


class SplineModule(Checkpointed, nn.Module):
    """Base of the spline modules; see the module docstring. Subclasses have
    ``grid`` (F, G+2k+1), ``coef``, ``scale_base``, ``scale_sp``, ``num`` (G),
    ``k``, ``grid_range``, ``base_fun``, ``grid_eps`` and implement
    :meth:`_coef3`, :meth:`_like` and, if they carry more, :meth:`_carry_from`."""

    def _coef3(self) -> Tensor:
        """coef as (F, out, G+k), a view (writing into it writes coef)."""
        raise NotImplementedError

    def _like(self, grid: int, k: int) -> "SplineModule":
        """A new module of the same sizes, range, base and dtype/device with G = grid and order k."""
        raise NotImplementedError

    def _carry_from(self, src: "SplineModule") -> None:
        """Copies what src holds beyond grid, coef and scales (called by refit_from)."""

    @property
    def _n_features(self) -> int:
        return self.grid.shape[0]

    def _spline_config(self, where: str) -> dict:
        """The checkpoint config entries every spline module has (grid, k, grid_range, base_fun, grid_eps)."""
        return {"grid": int(self.num), "k": int(self.k), "grid_range": range_value(self.grid_range, where),
                "base_fun": base_name(self.base_fun, where),
                # the default, for objects made before grid_eps existed
                "grid_eps": eps_value(getattr(self, "grid_eps", 0.02), where)}

    @torch.no_grad()
    def update_grid(self, x: Tensor, grid_eps: float | None = None, sync=True) -> None:
        """Moves the knots to the samples x (..., F): per feature, G+1 knots =
        grid_eps * uniform(min, max) + (1 - grid_eps) * sample quantiles,
        extended by k knots each side; then refits coef so that the splines
        on the samples are kept in least squares (see kanext.grid). Rows
        containing NaN or inf are ignored. pykan: update_grid_from_samples.

        sync: under torch.distributed (True: the default group when one is
        initialised; or a ProcessGroup), the samples of all ranks are
        gathered and every rank computes the update of their concatenation,
        so that replicas stay identical (see :mod:`kanext.distributed`); every
        rank must call it. False: this rank's samples only. Under FSDP2
        (sharded parameters) the update runs on full copies gathered on
        every rank and is sharded back."""
        if is_sharded(self):  # FSDP2: on gathered full tensors, sharded back
            return on_full_tensors(self, lambda plain: plain.update_grid(x, grid_eps, sync))
        F = self._n_features
        if x.dim() == 0 or x.shape[-1] != F:
            raise ValueError(f"{type(self).__name__}.update_grid: expected samples of shape (..., {F}), "
                             f"got {tuple(x.shape)}")
        if not x.is_floating_point():  # (integer samples would give repeated knots)
            raise TypeError(f"{type(self).__name__}.update_grid: expected floating-point samples, got {x.dtype}; "
                            f"convert them, e.g. x.to({self.grid.dtype})")
        x2 = x.detach().reshape(-1, F)
        x2 = x2[torch.isfinite(x2).all(dim=1)]
        group = sync_group(sync)
        if group is not None:
            x2 = gather_rows(x2, group)
        if x2.shape[0] == 0:
            raise ValueError(f"{type(self).__name__}.update_grid: no finite samples to place the grid on "
                             f"(got {tuple(x.shape)})")
        eps = self.grid_eps if grid_eps is None else grid_eps
        new_grid = grid_from_samples(x2, self.num, self.k, eps)
        coef = refit_coef(x2, self.grid, self.k, self._coef3(), new_grid, self.k)
        self.grid.copy_(new_grid)
        self._coef3().copy_(coef)

    update_grid_from_samples = update_grid

    @torch.no_grad()
    def refit_from(self, src: "SplineModule", x: Tensor | None = None) -> None:
        """Makes this module (same sizes; any G and k) compute src's function:
        knots interpolated from src's (pykan's grid extension), coef refitted
        exactly on collocation points when every old knot is a new knot (e.g.
        G -> 2G), else in least squares on the samples x (..., F) of the
        module's input, or on collocation points when x is None; scales,
        trainable flags and the rest (:meth:`_carry_from`) copied."""
        if type(src) is not type(self) or src.grid.shape[0] != self.grid.shape[0] or \
                src._coef3().shape[1] != self._coef3().shape[1]:
            raise ValueError(f"{type(self).__name__}.refit_from: shapes differ: {src!r} vs {self!r}")
        new_grid = interpolate_grid(src.grid, src.k, self.num, self.k)
        if x is None or is_refinement(src.grid, src.k, new_grid, self.k):
            pts = collocation_points(new_grid, self.k)
        else:
            pts = x.detach().reshape(-1, self._n_features)
            if pts.shape[0] == 0:  # least squares on nothing would give zero splines
                raise ValueError(f"{type(self).__name__}.refit_from: the new knots do not contain the old ones, so the "
                                 f"splines are refitted on samples x, but x has none (shape {tuple(x.shape)}); pass "
                                 "samples, or x=None for collocation points over the grid")
        self.grid.copy_(new_grid)
        self._coef3().copy_(refit_coef(pts, src.grid, src.k, src._coef3(), new_grid, self.k))
        for name in ("scale_base", "scale_sp"):
            getattr(self, name).copy_(getattr(src, name))
            getattr(self, name).requires_grad_(getattr(src, name).requires_grad)
        self.coef.requires_grad_(src.coef.requires_grad)
        self.base_fun, self.grid_eps = src.base_fun, src.grid_eps
        self._carry_from(src)

    def refine(self, new_grid: int, x: Tensor | None = None) -> "SplineModule":
        """Grid extension: a new module with new_grid intervals computing this
        one's function (see :meth:`refit_from`; x are samples of the input for
        inexact refits). self is unchanged."""
        check_int(f"{type(self).__name__}.refine", "new_grid", new_grid, 1)
        if is_sharded(self):  # FSDP2: the new module is built unsharded, from gathered full tensors
            return on_full_tensors(self, lambda plain: plain.refine(new_grid, x), write_back=False)
        new = self._like(new_grid, self.k)
        new.refit_from(self, x)
        return new


class SplineNetwork(Checkpointed, nn.Module):
    """Base of KAN and LAN: model-level grid update and grid extension.
    Subclasses implement :meth:`spline`, :meth:`set_spline`,
    :meth:`spline_input` and :meth:`layer_output`."""

    def spline(self, l: int) -> SplineModule:
        """The spline module of layer l."""
        raise NotImplementedError

    def set_spline(self, l: int, module: SplineModule) -> None:
        raise NotImplementedError

    def spline_input(self, l: int, x: Tensor) -> Tensor:
        """What layer l's spline module sees when the layer's input is x."""
        raise NotImplementedError

    def layer_output(self, l: int, x: Tensor) -> Tensor:
        """Layer l's output for its input x."""
        raise NotImplementedError

    def _check_input(self, x: Tensor) -> None:
        if x.dim() == 0 or x.shape[-1] != self.width[0]:
            raise ValueError(f"{type(self).__name__}: expected input of shape (..., {self.width[0]}), "
                             f"got shape {tuple(x.shape)}")

    @torch.no_grad()
    def spline_inputs(self, x: Tensor) -> list[Tensor]:
        """The input of every layer's spline module for x (N, width[0]), without autograd."""
        self._check_input(x)
        x = x.reshape(-1, self.width[0])
        out = []
        for l in range(self.depth):
            out.append(self.spline_input(l, x))
            if l + 1 < self.depth:
                x = self.layer_output(l, x)
        return out

    @torch.no_grad()
    def update_grid(self, x: Tensor, grid_eps: float | None = None, sync=True) -> None:
        """Adapts every layer's grid to its spline inputs on the samples x
        (..., width[0]), layer by layer (each layer sees the inputs produced
        by the already updated layers before it), keeping each layer's
        function in least squares; see :meth:`SplineModule.update_grid`.
        pykan: update_grid_from_samples.

        sync: under torch.distributed, the update of all ranks' samples
        (gathered once, in rank order) on every rank, also under FSDP2; see
        :meth:`SplineModule.update_grid`."""
        if is_sharded(self):  # FSDP2: on gathered full tensors, sharded back
            return on_full_tensors(self, lambda plain: plain.update_grid(x, grid_eps, sync))
        self._check_input(x)
        x = x.detach().reshape(-1, self.width[0])
        group = sync_group(sync)
        if group is not None:
            x = gather_rows(x, group)
        for l in range(self.depth):
            self.spline(l).update_grid(self.spline_input(l, x), grid_eps, sync=False)
            if l + 1 < self.depth:
                x = self.layer_output(l, x)

    update_grid_from_samples = update_grid

    def refine(self, new_grid: int | Sequence[int], x: Tensor | None = None):
        """Grid extension: a new model with new_grid intervals per layer (an
        int, or one per layer) that computes this one's function. The new
        knots follow the old ones (pykan's interpolation). When every old knot
        is a new knot (e.g. a uniform G -> 2G), the new splines equal the old
        ones on each grid range up to rounding (an exact refit on collocation
        points). Otherwise they are fitted in least squares on the samples x
        (default: the last training inputs, ``self.cache_data``), or on
        collocation points over the grid range if there are none. Every
        other parameter, mask, symbolic unit and trainable flag is copied;
        recorded data is not. Writes no files; self is unchanged. On an
        FSDP2-sharded model the new model is unsharded (shard it again)."""
        if is_sharded(self):  # FSDP2: the new model is built unsharded, from gathered full tensors
            return on_full_tensors(self, lambda plain: plain.refine(new_grid, x), write_back=False)
        grids = per_layer(f"{type(self).__name__}.refine", "new_grid", new_grid, self.depth)
        if x is None:
            x = cached_inputs(self)
        inputs = self.spline_inputs(x) if x is not None else [None] * self.depth
        new = copy_without_data(self)
        for l in range(self.depth):
            new.set_spline(l, self.spline(l).refine(grids[l], inputs[l]))
        return new
