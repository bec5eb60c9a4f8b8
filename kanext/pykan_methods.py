"""pykan's smaller KAN methods, with pykan's names and arguments, as a mixin
of :class:`kanext.KAN`: counting (n_edge, width_in / width_out, n_sum /
n_mult), pykan's checkpoint names (saveckpt, loadckpt), copy, get_params,
speed (with the symbolic_enabled switch), the lists pykan records in its
forward (:mod:`kanext.pykan_recorded`), inspecting one edge (get_fun,
get_range, get_act), evaluate, connection_cost, get_reg, set_mode,
module, node_attribute, initialize_grid_from_another_model, and editing
the network (swap, auto_swap, expand_depth, expand_width, perturb).

Where kanext differs on purpose it says so in the method's docstring.
With multiplication nodes (pykan's MultKAN), ``width`` holds the node counts
(pykan's width_in) and edges (l, i, j) end on subnode j of layer l+1
(j < width_out[l+1]), as in pykan.
"""
from __future__ import annotations

import copy
import warnings

import torch
from torch import Tensor

from . import attribution, dense
from . import hypothesis
from .grid import interpolate_grid
from .pykan_recorded import PykanRecorded
from .recorded import NoRecordingError, samples
from .training import check_label_shape

__all__ = ["PykanMethods"]

_MODES = ("n", "s", "sn", "ns", "0")


class PykanMethods(PykanRecorded):
    """Mixed into :class:`kanext.KAN`; see the module docstring."""

    # properties that read recorded data (NoRecordingError without it; see DataProperties)
    _data_properties = PykanRecorded._data_properties | {"feature_score", "connection_cost"}

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
    def n_sum(self) -> list[int]:
        """pykan: sum nodes of each hidden layer."""
        return [self.n_sum_nodes(l) for l in range(1, len(self.width) - 1)]

    @property
    def n_mult(self) -> list[int]:
        """pykan: multiplication nodes of each hidden layer."""
        return [len(self.mult_arities[l]) for l in range(1, len(self.width) - 1)]

    # ------------------------------------------------------------- checkpoints
    def saveckpt(self, path: str = "model"):
        """pykan's name for :meth:`save` (same default path): writes
        ``<path>.json`` and ``<path>.safetensors`` in kanext's format, without
        pickle, and returns the two paths. pykan writes ``<path>_config.yml``
        and ``<path>_state`` instead; kanext reads neither (load the pykan
        model with pykan and convert it with :func:`kanext.from_pykan`)."""
        return self.save(path)

    @classmethod
    def loadckpt(cls, path: str = "model"):
        """pykan's name for :meth:`load`, called as pykan's is:
        ``KAN.loadckpt(path)``. Reads a checkpoint written by :meth:`saveckpt`
        or :meth:`save`, bit for bit, onto the CPU; a missing, corrupted or
        mismatched file, or a checkpoint of another class, raises
        CheckpointError naming the file."""
        return cls.load(path)

    def copy(self):
        """pykan's ``copy``: an independent deep copy (parameters, buffers,
        symbolic edges, switches); pykan makes it through a checkpoint on
        disk, kanext in memory."""
        return copy.deepcopy(self)

    def get_params(self):
        """pykan's ``get_params``: ``self.parameters()``."""
        return self.parameters()

    def speed(self, compile: bool = False):
        """pykan's speed mode: ``symbolic_enabled = False`` and ``save_act =
        False``, then the model itself, or ``torch.compile(self)`` with
        ``compile=True``. As in pykan, the fixed symbolic edges are then
        skipped, so a model that has any computes another function; a
        UserWarning says how many (set ``symbolic_enabled = True`` to bring
        them back). Without symbolic edges the output is unchanged (kanext's
        forward skips an empty symbolic branch anyway)."""
        fixed = sum(int(s.n_fixed) for s in self.symbolic_fun)
        if fixed and self.symbolic_enabled:
            warnings.warn(f"speed(): {fixed} fixed symbolic edge(s) are now skipped (symbolic_enabled=False), "
                          "as pykan's speed mode does; the model's output changes", UserWarning, stacklevel=2)
        self.symbolic_enabled = False
        self.save_act = False
        return torch.compile(self) if compile else self

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
                            ("j", j, self.act_fun[l].out_features if 0 <= l < self.depth else 0)):
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
            pred = self(dataset["test_input"])
            check_label_shape(pred.shape, dataset["test_label"].shape, "evaluate")
            err = pred - dataset["test_label"]
        return {"test_loss": float(torch.sqrt(torch.mean(err**2))), "n_edge": self.n_edge, "n_grid": self.grid}

    @property
    def connection_cost(self) -> Tensor:
        """pykan's wiring cost: sum over layers and edges of the edge score
        times the distance between its two nodes, each layer's nodes evenly
        placed on [0, 1]. Needs edge scores (run :meth:`attribute` first)."""
        scores = getattr(self, "edge_scores", None)
        if not scores:
            raise NoRecordingError("connection_cost: no edge scores; run model.attribute() first")
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
            n_out = self.act_fun[l].out_features  # subnodes of layer l+1
            for name, group, n in (("in", ins, self.width[l]), ("out", outs, n_out)):
                if not group <= set(range(n)):
                    raise ValueError(f"module: layer {l} {name} ids {sorted(group)} out of range [0, {n})")
            mask, smask = self.act_fun[l].mask, self.symbolic_fun[l].mask
            for i in range(self.width[l]):
                for j in range(n_out):
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
        if list(model.width) != list(self.width) or getattr(model, "mult_arities", None) != self.mult_arities:
            raise ValueError(f"initialize_grid_from_another_model: widths differ: {model.width} (arities "
                             f"{getattr(model, 'mult_arities', None)}) vs {self.width} (arities {self.mult_arities})")
        for src, dst in zip(model.act_fun, self.act_fun):
            dst.grid.copy_(interpolate_grid(src.grid, src.k, dst.num, dst.k))

    # ---------------------------------------------------------------- editing the network
    @torch.no_grad()
    def _permute_node(self, l: int, perm: list[int]) -> None:
        """Reorders the nodes of hidden layer l (outputs of layer l-1, inputs
        of layer l) in place; the model's function is unchanged and every
        parameter keeps its identity (optimizers stay valid). A
        multiplication node moves with its subnodes; perm must map sum nodes
        to sum nodes and multiplication nodes to ones of the same arity."""
        groups, ns = self.subnode_groups(l), self.n_sum_nodes(l)
        for new, old in enumerate(perm):
            if (new < ns) != (old < ns) or len(groups[new]) != len(groups[old]):
                raise ValueError(f"layer {l}: node {old} cannot take the place of node {new}: only sum nodes with "
                                 f"sum nodes, or multiplication nodes of the same arity, can be exchanged")
        sub_perm = [s for old in perm for s in groups[old]]
        p = torch.tensor(perm, device=self.act_fun[l].grid.device)
        sp = torch.tensor(sub_perm, device=self.act_fun[l].grid.device)
        prev, nxt = self.act_fun[l - 1], self.act_fun[l]
        for t in (prev.coef, prev.scale_base, prev.scale_sp, prev.mask):
            t.copy_(t.index_select(1, sp))
        if prev.bias is not None:
            prev.bias.copy_(prev.bias.index_select(0, sp))
        for t in (nxt.grid, nxt.coef, nxt.scale_base, nxt.scale_sp, nxt.mask):
            t.copy_(t.index_select(0, p))
        s_prev, s_next = self.symbolic_fun[l - 1], self.symbolic_fun[l]
        for t in (s_prev.mask, s_prev.affine):
            t.copy_(t.index_select(0, sp))
        for t in (s_next.mask, s_next.affine):
            t.copy_(t.index_select(1, p))
        s_prev.funs_name = [list(s_prev.funs_name[q]) for q in sub_perm]
        s_next.funs_name = [[row[q] for q in perm] for row in s_next.funs_name]
        s_prev.invalidate()
        s_next.invalidate()
        for name in ("node_scale", "node_bias", "subnode_scale", "subnode_bias"):
            t = getattr(self, name)[l - 1]
            t.copy_(t.index_select(0, sp if name.startswith("sub") else p))
        self.mult_arities[l] = [self.mult_arities[l][old - ns] for old in perm[ns:]]

    def swap(self, l: int, i1: int, i2: int, log_history: bool = True) -> None:
        """Swaps nodes i1 and i2 of hidden layer l (pykan's swap): their
        incoming and outgoing edges, symbolic functions and affines move with
        them, so the function is unchanged. Two sum nodes, or two
        multiplication nodes of the same arity (with their subnodes), can be
        swapped; anything else raises ValueError. log_history is accepted for
        pykan's signature (kanext keeps no history)."""
        if isinstance(l, bool) or not isinstance(l, int) or not 1 <= l < self.depth:
            raise ValueError(f"swap: l must be a hidden layer in [1, {self.depth}), got {l!r}")
        n = self.width[l]
        for name, v in (("i1", i1), ("i2", i2)):
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < n:
                raise ValueError(f"swap: {name} must be a node of layer {l} in [0, {n}), got {v!r}")
        perm = list(range(n))
        perm[i1], perm[i2] = i2, i1
        self._permute_node(l, perm)

    def auto_swap_l(self, l: int) -> None:
        """pykan's greedy reordering of hidden layer l: for each node i in
        turn, the swap (i, j) that gives the lowest connection_cost is made
        (scores from :meth:`attribute` on the model's samples)."""
        n, groups, ns = self.width[l], self.subnode_groups(l), self.n_sum_nodes(l)
        for i in range(n):
            costs = []
            for j in range(n):
                if (i < ns) != (j < ns) or len(groups[i]) != len(groups[j]):
                    costs.append(float("inf"))  # not exchangeable (see _permute_node)
                    continue
                self.swap(l, i, j)
                self.attribute()
                costs.append(float(self.connection_cost))
                self.swap(l, i, j)
            self.swap(l, i, int(torch.tensor(costs).argmin()))

    def auto_swap(self) -> None:
        """:meth:`auto_swap_l` on every hidden layer (pykan's auto_swap)."""
        for l in range(1, self.depth):
            self.auto_swap_l(l)

    @torch.no_grad()
    def expand_depth(self) -> None:
        """Appends a layer that passes its inputs through: every edge i -> i is
        the symbolic 'x' (a = c = 1, b = d = 0), the rest are off, so the
        function is unchanged (pykan's expand_depth); train it on, or
        :meth:`perturb` it to switch its splines on."""
        n = self.width[-1]
        ref = self.act_fun[-1]
        kw = dict(device=ref.grid.device, dtype=ref.coef.dtype)
        layer = type(ref)(n, n, grid=ref.num, k=ref.k, grid_range=ref.grid_range, base_fun=ref.base_fun,
                          grid_eps=ref.grid_eps, generator=torch.Generator(), **kw)
        layer.mask.zero_()
        sym = type(self.symbolic_fun[-1])(n, n, **kw)
        for i in range(n):
            sym.set_edge(i, i, "x")
        self.act_fun.append(layer)
        self.symbolic_fun.append(sym)
        trainable = self.node_scale[0].requires_grad
        for name, fill in (("node_scale", 1.0), ("node_bias", 0.0), ("subnode_scale", 1.0), ("subnode_bias", 0.0)):
            getattr(self, name).append(torch.nn.Parameter(torch.full((n,), fill, **kw), requires_grad=trainable))
        self.width.append(n)
        self.mult_arities.append([])

    @torch.no_grad()
    def perturb(self, mag: float = 1.0, mode: str = "non-intrusive") -> None:
        """pykan's perturb: switches splines on (spline mask = mag) on edges
        chosen by how active their two nodes are, an input or output node
        being active when it has a symbolic edge other than '0'. Edges are
        typed by (input active, output active) and, when both are, by whether
        the edge itself is symbolic; mode 'all' perturbs every edge,
        'non-intrusive' (default) the edges into inactive output nodes
        outside the last layer, and in the last layer switches every spline
        on with zero scales (so they start at 0 and train; as pykan, this
        zeroes the last layer's existing splines too), and 'minimal' only
        symbolic edges between active nodes."""
        plan = {"all": {"aa_a", "aa_i", "ai", "ia", "ii"}, "non-intrusive": {"ai", "ii"}, "minimal": {"aa_a"}}
        if mode not in plan:
            raise ValueError(f"perturb: mode must be one of {list(plan)}, got {mode!r}")
        for l in range(self.depth):
            layer = self.act_fun[l]
            if l == self.depth - 1 and mode == "non-intrusive":  # present, with zero scales: trainable from 0
                layer.mask.fill_(1.0)
                layer.scale_base.zero_()
                layer.scale_sp.zero_()
                continue
            names = self.symbolic_fun[l].funs_name
            n_out = layer.out_features  # subnodes of layer l+1
            for j in range(n_out):
                for i in range(self.width[l]):
                    in_on = any(names[jj][i] != "0" for jj in range(n_out))
                    out_on = any(names[j][ii] != "0" for ii in range(self.width[l]))
                    kind = ("a" if in_on else "i") + ("a" if out_on else "i")
                    if kind == "aa":
                        kind += "_i" if names[j][i] == "0" else "_a"
                    if kind in plan[mode]:
                        layer.mask[i, j] = mag

    @torch.no_grad()
    def expand_width(self, layer_id: int, n_added_nodes: int, sum_bool: bool = True, mult_arity=2) -> None:
        """Adds n_added_nodes nodes to hidden layer ``layer_id`` (pykan's
        expand_width): sum nodes at the front of the layer (sum_bool=True),
        or multiplication nodes at its end (sum_bool=False), each of arity
        ``mult_arity`` (an int >= 2, or one per added node) with its subnodes
        at the end of the subnodes, as pykan places them. Their incoming and
        outgoing edges are off (spline mask 0, symbolic '0'), so the function
        is unchanged; :meth:`perturb` or :meth:`set_mode` switches them on.
        Unlike pykan, which rebuilds both layers with zero splines, the
        existing edges keep their splines."""
        l = layer_id
        if isinstance(l, bool) or not isinstance(l, int) or not 1 <= l < self.depth:
            raise ValueError(f"expand_width: layer_id must be a hidden layer in [1, {self.depth}), got {l!r}")
        if isinstance(n_added_nodes, bool) or not isinstance(n_added_nodes, int) or n_added_nodes < 1:
            raise ValueError(f"expand_width: n_added_nodes must be an int >= 1, got {n_added_nodes!r}")
        add = n_added_nodes
        if sum_bool:
            arities = []
        else:
            arities = [mult_arity] * add if isinstance(mult_arity, int) and not isinstance(mult_arity, bool) \
                else list(mult_arity)
            if len(arities) != add or not all(isinstance(a, int) and not isinstance(a, bool) and a >= 2
                                              for a in arities):
                raise ValueError(f"expand_width: mult_arity must be an int >= 2 or {add} of them (one per added "
                                 f"node), got {mult_arity!r}")
        n, n_sub = self.width[l], self.act_fun[l - 1].out_features
        add_sub = sum(arities) if not sum_bool else add
        # where the old nodes and subnodes go in the grown layer
        node_pos = list(range(add, add + n)) if sum_bool else list(range(n))
        sub_pos = list(range(add, add + n_sub)) if sum_bool else list(range(n_sub))
        prev, nxt = self.act_fun[l - 1], self.act_fun[l]
        kw = dict(device=prev.grid.device, dtype=prev.coef.dtype)
        P = torch.tensor(node_pos, device=kw["device"])
        SP = torch.tensor(sub_pos, device=kw["device"])

        def grown(old, n_in, n_out):
            new = type(old)(n_in, n_out, grid=old.num, k=old.k, grid_range=old.grid_range, base_fun=old.base_fun,
                            grid_eps=old.grid_eps, generator=torch.Generator(), bias=old.bias is not None, **kw)
            new.mask.zero_()
            for name in ("coef", "scale_base", "scale_sp"):
                getattr(new, name).requires_grad_(getattr(old, name).requires_grad)
            return new

        a = grown(prev, prev.in_features, n_sub + add_sub)  # new subnodes: outputs of layer l-1
        a.grid.copy_(prev.grid)
        for name in ("coef", "scale_base", "scale_sp", "mask"):
            getattr(a, name).index_copy_(1, SP, getattr(prev, name))
        if prev.bias is not None:
            a.bias.index_copy_(0, SP, prev.bias)
        b = grown(nxt, n + add, nxt.out_features)  # new inputs of layer l; their knots copy the first old row's
        b.grid.copy_(nxt.grid[:1].expand(n + add, -1))
        b.grid.index_copy_(0, P, nxt.grid)
        for name in ("coef", "scale_base", "scale_sp", "mask"):
            getattr(b, name).index_copy_(0, P, getattr(nxt, name))
        if nxt.bias is not None:
            b.bias.copy_(nxt.bias)
        self.act_fun[l - 1], self.act_fun[l] = a, b
        s_prev, s_next = self.symbolic_fun[l - 1], self.symbolic_fun[l]
        sa = type(s_prev)(s_prev.in_features, n_sub + add_sub, **kw)
        sa.mask.index_copy_(0, SP, s_prev.mask)
        sa.affine.index_copy_(0, SP, s_prev.affine)
        names = [["0"] * s_prev.in_features for _ in range(n_sub + add_sub)]
        for q, r in zip(sub_pos, s_prev.funs_name):
            names[q] = list(r)
        sa.funs_name = names
        sb = type(s_next)(n + add, s_next.out_features, **kw)
        sb.mask.index_copy_(1, P, s_next.mask)
        sb.affine.index_copy_(1, P, s_next.affine)
        rows = []
        for r in s_next.funs_name:
            row = ["0"] * (n + add)
            for q, v in zip(node_pos, r):
                row[q] = v
            rows.append(row)
        sb.funs_name = rows
        for s_ in (sa, sb):
            s_.invalidate()
        self.symbolic_fun[l - 1], self.symbolic_fun[l] = sa, sb
        for name, fill in (("node_scale", 1.0), ("node_bias", 0.0), ("subnode_scale", 1.0), ("subnode_bias", 0.0)):
            plist = getattr(self, name)
            old = plist[l - 1]
            sub = name.startswith("sub")
            t = torch.full((n_sub + add_sub if sub else n + add,), fill, **kw)
            t.index_copy_(0, SP if sub else P, old.detach())
            plist[l - 1] = torch.nn.Parameter(t, requires_grad=old.requires_grad)
        self.width[l] = n + add
        self.mult_arities[l] = self.mult_arities[l] + arities

    # ---------------------------------------------------------------- hypothesis testing (kanext.hypothesis)
    def tree(self, x=None, in_var=None, style="tree", sym_th=1e-3, sep_th=1e-1, skip_sep_test=False, verbose=False):
        """The tree of nested symmetric groups of the model's first output, as a
        Figure (pykan's tree; pykan shows it and returns None): see
        :func:`kanext.hypothesis.plot_tree`. x defaults to the model's
        samples (the inputs of its last forward, else its last fit inputs)."""
        x = samples(self, x, what="tree")
        return hypothesis.plot_tree(self, x, in_var=in_var, style=style, sym_th=sym_th, sep_th=sep_th,
                                    skip_sep_test=skip_sep_test, verbose=verbose)

    def feature_interaction(self, l, neuron_th=1e-2, feature_th=1e-2) -> dict:
        """``{(input ids...): count}``: the input sets the nodes of layer l
        depend on (pykan's feature_interaction); see
        :func:`kanext.hypothesis.feature_interaction`."""
        return hypothesis.feature_interaction(self, l, neuron_th, feature_th)
