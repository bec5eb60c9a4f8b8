"""MLP: a plain multilayer perceptron baseline with KAN's interface (fit,
attribute, plot, save/load), for side-by-side experiments as in the KAN
paper and pykan's ``kan.MLP``."""
from __future__ import annotations

import math
import os
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checkpoint import Checkpointed, checkpointable
from .checks import config_keys, is_int, need, width_list
from .recorded import DataProperties, NoRecordingError, NoSamplesError, remember_input, samples
from .training import fit as _fit

__all__ = ["MLP", "MLP_ACTIVATIONS"]

#: Activation names an MLP accepts (applied after every layer but the last).
MLP_ACTIVATIONS = {
    "silu": F.silu, "relu": F.relu, "gelu": F.gelu, "tanh": torch.tanh, "sigmoid": torch.sigmoid,
    "softplus": F.softplus, "elu": F.elu, "identity": lambda x: x,
}
_PLOT_METRICS = ("w", "act", "fa")


@checkpointable
class MLP(DataProperties, Checkpointed, nn.Module):
    """``width[0] -> width[1] -> ... -> width[-1]``: nn.Linear layers with the
    activation ``act`` between them (none after the last).

    Args:
        width: layer widths, e.g. ``[2, 5, 1]`` (copied).
        act: activation name, one of :data:`MLP_ACTIVATIONS` (default 'silu',
            as pykan's MLP).
        seed: with a seed, the initial weights come from a private generator
            (reproducible, global RNG untouched); without one from torch's
            global generator. The distribution is nn.Linear's default:
            weight and bias uniform in +-1/sqrt(fan_in).
        device, dtype: of the parameters.

    Attributes:
        linears: ``nn.ModuleList`` of the nn.Linear layers (pykan's name).
        node_scores, edge_scores: set by :meth:`attribute`.
        cache_data: the last fit inputs (set by :meth:`fit`).
    """

    _data_properties = frozenset({"feature_score"})  # NoRecordingError without samples (DataProperties)

    def __init__(self, width: Sequence[int] = (2, 5, 1), act: str = "silu", seed: int | None = None,
                 device=None, dtype=None):
        super().__init__()
        self.width = width_list("MLP", width)
        if not isinstance(act, str) or act not in MLP_ACTIVATIONS:
            raise ValueError(f"MLP: act must be one of {sorted(MLP_ACTIVATIONS)}, got {act!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"MLP: seed must be an int or None, got {seed!r}")
        self.act = act
        device = torch.get_default_device() if device is None else device
        self.linears = nn.ModuleList(  # no default init: the draws below are the only ones
            nn.utils.skip_init(nn.Linear, a, b, device=device, dtype=dtype) for a, b in zip(self.width, self.width[1:])
        )
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        with torch.no_grad():
            for lin in self.linears:
                if lin.weight.is_meta:
                    continue  # a checkpoint skeleton: its values come from the file
                bound = 1.0 / math.sqrt(lin.in_features)
                for p in (lin.weight, lin.bias):
                    u = torch.rand(p.shape, generator=gen, dtype=p.dtype)
                    p.copy_((2 * u - 1) * bound)

    @property
    def depth(self) -> int:
        return len(self.linears)

    @property
    def n_params(self) -> int:
        """Number of parameters (weights and biases)."""
        return sum(p.numel() for p in self.parameters())

    @property
    def w(self) -> list[Tensor]:
        """The weight matrices, (width[l+1], width[l]) each (pykan's ``w``)."""
        return [lin.weight for lin in self.linears]

    def forward(self, x: Tensor) -> Tensor:
        """x (..., width[0]) -> (..., width[-1])."""
        if not isinstance(x, Tensor):
            raise TypeError(f"MLP: expected a torch.Tensor input, got {type(x).__name__}")
        if x.dim() < 1 or x.shape[-1] != self.width[0]:
            raise ValueError(f"MLP: expected inputs of shape (..., {self.width[0]}), got {tuple(x.shape)}")
        remember_input(self, x)
        return self._layers(x)[-1]

    def _layers(self, x: Tensor) -> list[Tensor]:
        """[input of layer 0, input of layer 1, ..., output]: the post-activation values."""
        act = MLP_ACTIVATIONS[self.act]
        outs = [x]
        for l, lin in enumerate(self.linears):
            x = lin(x)
            if l < self.depth - 1:
                x = act(x)
            outs.append(x)
        return outs

    # ------------------------------------------------------------- training
    def fit(self, dataset, **kwargs) -> dict:
        """Trains the model with :func:`kanext.training.fit` (same arguments;
        there is no grid to update and no sparsity regulariser: lamb must
        stay 0). Returns a dict of per-step lists."""
        return _fit(self, dataset, **kwargs)

    def train(self, mode=True, *args, **kwargs):
        """``model.train(dataset, ...)`` is :meth:`fit`; ``model.train()`` /
        ``model.train(False)`` keep nn.Module's meaning (as :class:`KAN`)."""
        if isinstance(mode, bool):
            if args or kwargs:
                raise TypeError("MLP.train(mode: bool) takes no other arguments; to fit, pass a dataset")
            return super().train(mode)
        return self.fit(mode, *args, **kwargs)

    # ------------------------------------------------------------- attribution
    @torch.no_grad()
    def attribute(self, x: Tensor | None = None) -> None:
        """Node and edge scores by pykan's MLP attribution (backward from the
        outputs through |W| weighted by the input spread), stored as
        ``node_scores`` (depth+1 tensors, (width[l],)), ``edge_scores``
        (depth tensors, (width[l+1], width[l])) and ``wa_forward``.

        With a_l the input of layer l (a_0 = x, later ones after the
        activation, a_depth the output) and s_l = std_n(a_l) (unbiased):
        ``wa_forward[l] = s_l[None, :] * W_l``; from node_score_depth = 1,
        for l = depth-1 .. 0::

            edge_score_l[j, i] = |wa_forward[l][j, i]| * node_score_{l+1}[j] / (s_{l+1}[j] + 1e-4)
            node_score_l[i]    = sum_j edge_score_l[j, i] / sqrt(width[l])

        x: the inputs to score on (N >= 2, width[0]); default the inputs of
        the last forward, else the last fit inputs (``cache_data``).
        """
        x = samples(self, x, what="MLP.attribute")
        if x.shape[0] < 2:
            raise ValueError(f"MLP.attribute: needs at least 2 samples for a spread, got {tuple(x.shape)}")
        x = x.to(self.linears[0].weight)
        stds = [torch.std(a, dim=0) for a in self._layers(x)]
        self.wa_forward = [stds[l][None, :] * lin.weight for l, lin in enumerate(self.linears)]
        node = torch.ones_like(stds[-1])
        nodes, edges = [node], []
        for l in range(self.depth - 1, -1, -1):
            edge = self.wa_forward[l].abs() * (node / (stds[l + 1] + 1e-4))[:, None]
            node = edge.sum(dim=0) / math.sqrt(self.width[l])
            edges.append(edge)
            nodes.append(node)
        self.node_scores, self.edge_scores = nodes[::-1], edges[::-1]

    @property
    def feature_score(self) -> Tensor:
        """(width[0],) attribution score of every input, computed afresh.
        Without samples it raises NoRecordingError (an AttributeError too:
        ``hasattr`` is False)."""
        try:
            self.attribute()
        except NoSamplesError as e:
            raise NoRecordingError(str(e)) from None
        return self.node_scores[0]

    # ------------------------------------------------------------- plot
    def plot(self, beta: float = 3, scale: float = 1.0, metric: str = "w", in_vars=None, out_vars=None,
             title=None, folder=None, x: Tensor | None = None):
        """The network as a matplotlib Figure (no pyplot): nodes as dots,
        layer 0 at the bottom, every weight as a line between its two nodes,
        line width proportional to |value| / max |value| of its layer,
        opacity tanh(beta * |value|), blue for positive and red for negative.

        metric: the value drawn per edge: 'w' (the weight), 'act' (``wa_forward``:
        the weight times the spread of its input) or 'fa' (the attribution
        edge score); 'act' and 'fa' run :meth:`attribute` on x (default as there).
        in_vars, out_vars: labels of the inputs / outputs. folder: if given,
        the figure is also saved as ``<folder>/mlp.png``.
        """
        from matplotlib.figure import Figure

        if metric not in _PLOT_METRICS:
            raise ValueError(f"MLP.plot: metric must be one of {_PLOT_METRICS}, got {metric!r}")
        for name, v, n in (("in_vars", in_vars, self.width[0]), ("out_vars", out_vars, self.width[-1])):
            if v is not None and len(v) != n:
                raise ValueError(f"MLP.plot: {name} needs {n} labels, got {len(v)}")
        if metric == "w":
            values = [w.detach() for w in self.w]
        else:
            self.attribute(x)
            values = self.wa_forward if metric == "act" else self.edge_scores
        fig = Figure(figsize=(4 * scale, 1.5 * self.depth * scale + 1))
        ax = fig.add_axes((0.02, 0.02, 0.96, 0.96 if title is None else 0.9))
        ax.set_axis_off()

        def xs(n):
            return [(i + 0.5) / n for i in range(n)]

        for l, v in enumerate(values):
            v = v.float().cpu()
            vmax = float(v.abs().max()) or 1.0
            x_in, x_out = xs(v.shape[1]), xs(v.shape[0])
            for j in range(v.shape[0]):
                for i in range(v.shape[1]):
                    p = float(v[j, i])
                    ax.plot([x_in[i], x_out[j]], [l, l + 1], color="blue" if p > 0 else "red",
                            lw=0.2 + 3.0 * abs(p) / vmax, alpha=math.tanh(beta * abs(p)),
                            gid=f"kanext-mlp-edge-{l}-{i}-{j}")
        for l, n in enumerate(self.width):
            ax.scatter(xs(n), [l] * n, s=40 * scale, color="black", zorder=3)
        for labels, l, dy in ((in_vars, 0, -0.15), (out_vars, self.depth, 0.15)):
            for xi, lab in zip(xs(self.width[l]), labels or []):
                ax.text(xi, l + dy, f"${lab}$" if not isinstance(lab, str) else lab, ha="center",
                        va="top" if dy < 0 else "bottom")
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.3, self.depth + 0.3)
        if title is not None:
            fig.suptitle(title)
        if folder is not None:
            os.makedirs(folder, exist_ok=True)
            fig.savefig(os.path.join(folder, "mlp.png"), bbox_inches="tight", dpi=100)
        return fig

    # ------------------------------------------------------------- checkpoints
    def checkpoint_config(self, where: str = "MLP") -> dict:
        """The JSON config of a checkpoint (see kanext.checkpoint): widths and activation."""
        return {"width": [int(w) for w in self.width], "act": self.act}

    @classmethod
    def from_checkpoint_config(cls, cfg, where: str = "", device="meta") -> "MLP":
        """An MLP of that config with placeholder tensors on ``device`` (no
        draw from the global RNG)."""
        config_keys(cfg, {"width", "act"}, where)
        w = cfg["width"]
        need(isinstance(w, list) and len(w) >= 2 and all(is_int(v) and v >= 1 for v in w),
             f"{where}'width'", "a list of >= 2 positive ints", w)
        need(cfg["act"] in MLP_ACTIVATIONS, f"{where}'act'", f"one of {sorted(MLP_ACTIVATIONS)}", cfg["act"])
        return cls(w, cfg["act"], seed=0, device=device)
