"""pykan's smaller KAN methods, with pykan's names and arguments, as a mixin
of :class:`kanext.KAN`: counting (n_edge, width_in / width_out, n_sum /
n_mult), inspecting one edge (get_fun, get_range, get_act), evaluate,
connection_cost, get_reg, set_mode, module, node_attribute and
initialize_grid_from_another_model.

Where kanext differs on purpose it says so in the method's docstring.
kanext has no multiplication nodes yet, so n_mult is all zeros and
width_in == width_out == width.
"""
from __future__ import annotations

import torch
from torch import Tensor

from . import attribution, dense
from .grid import interpolate_grid
from .recorded import samples

__all__ = ["PykanMethods"]

_MODES = ("n", "s", "sn", "ns", "0")


class PykanMethods:
    """Mixed into :class:`kanext.KAN`; see the module docstring."""

    # ---------------------------------------------------------------- counting
    @property
    def n_edge(self) -> int:
        """Number of active edges: spline (mask != 0) or symbolic. pykan counts
        only the spline ones, so there an edge made symbolic stops counting."""
        total = 0
        for l, layer in enumerate(self.act_fun):
            on = layer.mask.detach() != 0
            on = on | (self.symbolic_fun[l].mask.detach().T != 0)
            total += int(on.sum())
        return total

    @property
    def width_in(self) -> list[int]:
        """pykan: the nodes each layer's inputs see (sum + mult nodes)."""
        return list(self.width)

    @property
    def width_out(self) -> list[int]:
        """pykan: the subnodes each layer's outputs feed (sum + arity * mult nodes)."""
        return list(self.width)

    @property
    def n_sum(self) -> list[int]:
        """pykan: sum nodes of each hidden layer."""
        return list(self.width[1:-1])

    @property
    def n_mult(self) -> list[int]:
        """pykan: multiplication nodes of each hidden layer (none in kanext yet)."""
        return [0] * (len(self.width) - 2)

    # ---------------------------------------------------------------- one edge
    def _edge_samples(self, l: int, i: int, j: int) -> tuple[Tensor, Tensor]:
        """(x, phi): edge (l, i, j)'s inputs on the model's samples and its
        activation there (spline path and symbolic path), sorted by x."""
        self._check_edge(l, i, j)
        xl = self.spline_inputs(samples(self, what="get_fun"))[l]
        layer = self.act_fun[l]
        I = torch.tensor([i], device=xl.device)
        J = torch.tensor([j], device=xl.device)
        with torch.no_grad():
            phi = dense.edge_values(layer, xl, I, J)[:, 0]
            sym = self.symbolic_fun[l]
            if sym.n_fixed:
                phi = phi + sym.edge_values(xl)[:, j, i]
        x = xl[:, i]
        order = torch.argsort(x)
        return x[order], phi[order]

    def _check_edge(self, l, i, j) -> None:
        for name, v, hi in (("l", l, self.depth), ("i", i, self.width[l] if 0 <= l < self.depth else 0),
                            ("j", j, self.width[l + 1] if 0 <= l < self.depth else 0)):
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < hi:
                raise ValueError(f"edge ({l}, {i}, {j}): {name} must be an int in [0, {hi}), got {v!r}")

    def get_fun(self, l: int, i: int, j: int, plot: bool = True):
        """Edge (l, i, j)'s (inputs, outputs) on the model's samples, sorted by
        input, as numpy arrays (pykan's get_fun). With plot (pykan always
        plots), also draws them on a new matplotlib figure."""
        x, y = self._edge_samples(l, i, j)
        x, y = x.double().cpu().numpy(), y.double().cpu().numpy()
        if plot:
            import matplotlib.pyplot as plt

            plt.figure(figsize=(3, 3))
            plt.plot(x, y, marker="o")
        return x, y

    def get_range(self, l: int, i: int, j: int, verbose: bool = True):
        """(x_min, x_max, y_min, y_max) of edge (l, i, j) on the model's samples (pykan's get_range)."""
        x, y = self._edge_samples(l, i, j)
        out = tuple(float(v) for v in (x.min(), x.max(), y.min(), y.max()))
        if verbose:
            print(f"x range: [{out[0]:.2f} , {out[1]:.2f} ]")
            print(f"y range: [{out[2]:.2f} , {out[3]:.2f} ]")
        return out

    def get_act(self, x=None) -> None:
        """Records the statistics of a forward (``acts``, ``acts_scale``, ...)
        on x (a tensor, or a dataset dict: its train_input), else on the
        model's samples (pykan's get_act)."""
        if isinstance(x, dict):
            x = x["train_input"]
        attribution.record_statistics(self, samples(self, x, what="get_act"))

    # ---------------------------------------------------------------- whole model
    def evaluate(self, dataset: dict) -> dict:
        """``{'test_loss': RMSE on the test split, 'n_edge', 'n_grid'}`` (pykan's evaluate)."""
        with torch.no_grad():
            err = self(dataset["test_input"]) - dataset["test_label"]
        return {"test_loss": float(torch.sqrt(torch.mean(err**2))), "n_edge": self.n_edge, "n_grid": self.grid}

    @property
    def connection_cost(self) -> Tensor:
        """pykan's wiring cost: sum over layers and edges of the edge score
        times the distance between its two nodes, each layer's nodes evenly
        placed on [0, 1]. Needs edge scores (run :meth:`attribute` first)."""
        scores = getattr(self, "edge_scores", None)
        if not scores:
            raise ValueError("connection_cost: no edge scores; run model.attribute() first")
        total = scores[0].new_zeros(())
        for t in scores:
            a, b = t.shape
            pa = (torch.arange(a, dtype=t.dtype, device=t.device) + 0.5) / a
            pb = (torch.arange(b, dtype=t.dtype, device=t.device) + 0.5) / b
            total = total + torch.sum((pa[:, None] - pb[None, :]).abs() * t)
        return total

    def get_reg(self, reg_metric="edge_forward_spline_n", lamb_l1=1.0, lamb_entropy=2.0, lamb_coef=0.0,
                lamb_coefdiff=0.0) -> Tensor:
        """pykan's get_reg: :meth:`reg` on the inputs the model last saw."""
        return self.reg(reg_metric, lamb_l1, lamb_entropy, lamb_coef, lamb_coefdiff)

    @torch.no_grad()
    def set_mode(self, l: int, i: int, j: int, mode: str, mask_n: float | None = None) -> None:
        """Switches edge (l, i, j) between its spline ('n'), its symbolic
        function ('s'), both ('sn' / 'ns', the spline scaled by mask_n,
        default 1) or neither ('0'), as pykan's set_mode does with the masks.
        'n' and 'sn' keep the symbolic function's name and parameters."""
        self._check_edge(l, i, j)
        if mode not in _MODES:
            raise ValueError(f"set_mode: mode must be one of {list(_MODES)}, got {mode!r}")
        n = {"n": 1.0, "s": 0.0, "0": 0.0}.get(mode, 1.0 if mask_n is None else float(mask_n))
        s = 1.0 if mode in ("s", "sn", "ns") else 0.0
        sym = self.symbolic_fun[l]
        if s and sym.funs_name[j][i] == "0":
            raise ValueError(f"set_mode: edge ({l}, {i}, {j}) has no symbolic function; fix_symbolic it first")
        self.act_fun[l].mask[i, j] = n
        sym.mask[j, i] = s
        sym.invalidate()

    @torch.no_grad()
    def module(self, start_layer: int, chain: str) -> None:
        """pykan's module: keeps groups of nodes connected only among
        themselves. ``chain`` holds two node groups per layer from
        ``start_layer`` on, inputs then outputs, e.g. ``'[0,1]->[1]'`` for one
        layer or ``'[0,1]->[1]->[1]->[0]'`` for two (pykan's format); in each
        layer the edges from the input group to outputs outside the output
        group, and from other inputs into the output group, are masked."""
        groups = [g.strip() for g in chain.split("->")]
        try:
            ids = [[int(v) for v in g.strip("[]").split(",")] for g in groups]
        except ValueError:
            raise ValueError(f"module: chain must look like '[0,1]->[2]' (two groups per layer), got {chain!r}") from None
        if len(ids) % 2 or start_layer + len(ids) // 2 > self.depth:
            raise ValueError(f"module: chain {chain!r} must hold two groups (inputs, outputs) per layer, for layers "
                             f"{start_layer}.. of a model of depth {self.depth}; got {len(ids)} groups")
        for step in range(len(ids) // 2):
            l = start_layer + step
            ins, outs = set(ids[2 * step]), set(ids[2 * step + 1])
            for name, group, n in (("in", ins, self.width[l]), ("out", outs, self.width[l + 1])):
                if not group <= set(range(n)):
                    raise ValueError(f"module: layer {l} {name} ids {sorted(group)} out of range [0, {n})")
            mask, smask = self.act_fun[l].mask, self.symbolic_fun[l].mask
            for i in range(self.width[l]):
                for j in range(self.width[l + 1]):
                    if (i in ins) != (j in outs):
                        mask[i, j] = 0.0
                        smask[j, i] = 0.0
            self.symbolic_fun[l].invalidate()

    def node_attribute(self) -> list[Tensor]:
        """For every layer l >= 1, the scores of the input nodes for each node
        of layer l (``attribute(l)``); stored as ``node_attribute_scores`` and returned."""
        self.node_attribute_scores = [self.attribute(l) for l in range(1, self.depth + 1)]
        return self.node_attribute_scores

    @torch.no_grad()
    def initialize_grid_from_another_model(self, model, x: Tensor | None = None) -> None:
        """Sets every layer's knots from ``model``'s (same widths; any G and
        k), interpolated as in grid extension; coefficients are not refitted
        (pykan's method of the same name; :meth:`initialize_from_another_model`
        also carries the function). x is accepted for pykan's signature and unused."""
        if list(model.width) != list(self.width):
            raise ValueError(f"initialize_grid_from_another_model: widths differ: {model.width} vs {self.width}")
        for src, dst in zip(model.act_fun, self.act_fun):
            dst.grid.copy_(interpolate_grid(src.grid, src.k, dst.num, dst.k))
