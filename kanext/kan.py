"""KAN: a stack of fused KAN layers with pykan's node and subnode affines."""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from .layers import KANLinear

__all__ = ["KAN"]


class KAN(nn.Module):
    """A Kolmogorov-Arnold Network: ``width[0] -> width[1] -> ... -> width[-1]``.

    Args:
        width: layer widths, e.g. ``[2, 5, 1]`` (copied, never mutated). pykan's
            ``[[n, 0], ...]`` form is accepted when no multiplication node is used.
        grid: G, intervals per grid (an int, or one per layer).
        k: spline order 0..5 (an int, or one per layer).
        base_fun, grid_range, noise_scale, scale_base_mu, scale_base_sigma,
        sp_trainable, sb_trainable: as for :class:`KANLinear`.
        affine_trainable: whether pykan's per-node affines (node_scale,
            node_bias, subnode_scale, subnode_bias; identity at init) train.
        seed: with a seed, all initial draws come from a private generator
            (reproducible, global RNG untouched). Without one they come from
            torch's global generator, which is never reseeded.

    Attributes:
        act_fun: ``nn.ModuleList`` of :class:`KANLinear` (pykan's name).
        node_scale, node_bias, subnode_scale, subnode_bias: ``nn.ParameterList``
            of (width[l+1],) tensors; each layer computes
            ``node_scale * (subnode_scale * layer(x) + subnode_bias) + node_bias``.
    """

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
        seed: int | None = None,
        device=None,
        dtype=None,
    ):
        super().__init__()
        self.width = _normalise_width(width)
        depth = len(self.width) - 1
        grids = _per_layer("grid", grid, depth)
        ks = _per_layer("k", k, depth)
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        self.base_fun = base_fun
        self.grid_range = tuple(float(v) for v in grid_range)
        self.act_fun = nn.ModuleList(
            KANLinear(
                self.width[l], self.width[l + 1], grid=grids[l], k=ks[l], grid_range=grid_range,
                base_fun=base_fun, noise_scale=noise_scale, scale_base_mu=scale_base_mu,
                scale_base_sigma=scale_base_sigma, sp_trainable=sp_trainable, sb_trainable=sb_trainable,
                generator=gen, device=device, dtype=dtype,
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

    @property
    def depth(self) -> int:
        return len(self.act_fun)

    @property
    def grid(self) -> list[int]:
        return [layer.num for layer in self.act_fun]

    @property
    def k(self) -> list[int]:
        return [layer.k for layer in self.act_fun]

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 0 or x.shape[-1] != self.width[0]:
            raise ValueError(f"KAN: expected input of shape (..., {self.width[0]}), got shape {tuple(x.shape)}")
        for l, layer in enumerate(self.act_fun):
            x = layer(x)
            x = torch.addcmul(self.subnode_bias[l], self.subnode_scale[l], x)
            x = torch.addcmul(self.node_bias[l], self.node_scale[l], x)
        return x


def _normalise_width(width) -> list[int]:
    out = []
    for w in width:
        if isinstance(w, (list, tuple)):
            if len(w) != 2 or w[1] != 0:
                raise NotImplementedError(
                    f"KAN: multiplication nodes are not supported yet; got width entry {list(w)} (expected [n, 0])"
                )
            w = w[0]
        if isinstance(w, bool) or not isinstance(w, int) or w < 1:
            raise ValueError(f"KAN: widths must be positive ints, got {list(width)!r}")
        out.append(int(w))
    if len(out) < 2:
        raise ValueError(f"KAN: width needs at least an input and an output size, got {list(width)!r}")
    return out


def _per_layer(name, v, depth):
    if isinstance(v, int):
        return [v] * depth
    v = list(v)
    if len(v) != depth:
        raise ValueError(f"KAN: {name} must be an int or a list of {depth} ints (one per layer), got {v!r}")
    return v
