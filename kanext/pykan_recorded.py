"""The lists pykan's forward records when save_act is on (spline_preacts,
spline_postacts, spline_postsplines, edge_actscale, acts_scale_spline,
subnode_actscale, acts_premult), as properties of :class:`kanext.KAN`
(mixed in through :class:`kanext.pykan_methods.PykanMethods`).

kanext records only each layer's input (``acts``) and statistics, and
computes these from them when read: the dense (N, out, in) tensors cost
memory only then, and they use the current parameters. Without a recording
they raise :class:`kanext.recorded.NoRecordingError` (an AttributeError too,
so ``hasattr`` is False).
"""
from __future__ import annotations

import torch
from torch import Tensor

from . import dense
from .recorded import DataProperties, NoRecordingError
from .spline import coef2curve

__all__ = ["PykanRecorded"]


class PykanRecorded(DataProperties):
    """Mixin of :class:`kanext.KAN`; see the module docstring."""

    _data_properties = frozenset({"spline_preacts", "spline_postacts", "spline_postsplines", "edge_actscale",
                                  "acts_scale_spline", "subnode_actscale", "acts_premult"})

    def _recorded_acts(self, name: str) -> list[Tensor]:
        acts = getattr(self, "acts", None)
        if not isinstance(acts, list) or len(acts) != self.depth + 1:
            raise NoRecordingError(
                f"{name}: no recorded forward: set model.save_act = True and run model(x) first (pykan records "
                "every forward; kanext only with save_act)")
        return acts

    @torch.no_grad()
    def _edge_activations(self, l: int, x: Tensor) -> tuple[Tensor, Tensor]:
        """(whole edge, spline path) activations of layer l at x, (N, out, in)
        each: the spline path is mask * (scale_base b(x) + scale_sp spline);
        the whole edge adds the fixed symbolic edges where symbolic_enabled."""
        numeric = dense.all_edge_values(self.act_fun[l], x).permute(0, 2, 1)
        whole = numeric.clone()
        sym = self.symbolic_fun[l]
        if self.symbolic_enabled and sym.n_fixed:
            for name, (J, I) in sym.groups():
                whole[:, J, I] += sym.mask[J, I] * sym._group_values(x[:, I], name, (J, I))
        return whole, numeric

    @property
    def spline_preacts(self) -> list[Tensor]:
        """pykan's: per layer, its input broadcast over the edges, (N, out, in)
        (an expanded view of ``acts[l]``, no copy)."""
        acts = self._recorded_acts("spline_preacts")
        return [acts[l][:, None, :].expand(-1, self.act_fun[l].out_features, -1) for l in range(self.depth)]

    @property
    def spline_postacts(self) -> list[Tensor]:
        """pykan's: per layer, every edge's activation on the recorded inputs,
        (N, out, in): the spline path plus the symbolic edge (computed now,
        with the current parameters, from ``acts``)."""
        acts = self._recorded_acts("spline_postacts")
        return [self._edge_activations(l, acts[l])[0] for l in range(self.depth)]

    @property
    def spline_postsplines(self) -> list[Tensor]:
        """pykan's: per layer, every edge's spline sum_g coef B_g(x) before
        scale_sp and the mask, (N, out, in)."""
        acts = self._recorded_acts("spline_postsplines")
        with torch.no_grad():
            return [coef2curve(acts[l], layer.grid, layer.coef, layer.k).permute(0, 2, 1)
                    for l, layer in enumerate(self.act_fun)]

    @property
    def edge_actscale(self) -> list[Tensor]:
        """pykan's: per layer, (out, in) std over the samples of each edge's
        activation (spline_postacts)."""
        acts = self._recorded_acts("edge_actscale")
        return [self._edge_activations(l, acts[l])[0].std(dim=0) for l in range(self.depth)]

    @property
    def acts_scale_spline(self) -> list[Tensor]:
        """pykan's: per layer, (out, in) std of the spline path of each edge
        over (std of its input + 0.1)."""
        acts = self._recorded_acts("acts_scale_spline")
        out = []
        for l in range(self.depth):
            numeric = self._edge_activations(l, acts[l])[1]
            out.append(numeric.std(dim=0) / (acts[l].std(dim=0) + 0.1)[None, :])
        return out

    @property
    def subnode_actscale(self) -> list[Tensor]:
        """pykan's: per layer, (width_out[l+1],) std of the subnodes before the
        affines, as recorded."""
        self._recorded_acts("subnode_actscale")
        return list(self.subnode_std)

    @property
    def acts_premult(self) -> list[Tensor]:
        """pykan's: per layer, its subnodes after the subnode affine and before
        the multiplications, (N, width_out[l+1])."""
        acts = self._recorded_acts("acts_premult")
        with torch.no_grad():
            return [torch.addcmul(self.subnode_bias[l], self.subnode_scale[l], self.subnode_values(l, acts[l]))
                    for l in range(self.depth)]
