"""Pruning: masking edges and cutting a KAN down to a smaller one.

- :func:`prune_edge` masks the edges whose score is at most a threshold (in
  place; the widths do not change).
- :func:`prune_node` / :func:`prune_input` return a new, smaller KAN whose
  layers are re-sliced (:meth:`KANLinear.subset`) and whose node / subnode
  affines are sliced with them. It computes exactly the function of the
  *masked* original: the original with every edge into and out of the removed
  nodes masked (:func:`remove_node`). Grids (non-uniform ones too), masks,
  trainable flags and per-edge extra state (``model.symbolic_fun``, see
  :func:`_carry_layer`) carry over. The original is left unchanged (pykan
  also masks the removed nodes in the original).
- :func:`prune` = prune_node, then prune_edge on the result (pykan's order).

Multiplication nodes (pykan's MultKAN rules): a node, sum or multiplication,
is kept when its score is above the threshold; keeping a multiplication
node keeps all of its subnodes (the edges into them, their subnode
affines) and its arity, removing it removes them all. Edges end on
subnodes, so prune_edge masks edges into subnodes by their own scores.

Scores come from :func:`kanext.attribution.attribute` ('backward' by default,
pykan's choice; 'forward' uses the paper's |phi|_1 rule). A node is kept when
its score is strictly above the threshold, as in pykan.

Dead layers: at least one node of every hidden layer (and one input) is always
kept, the highest-scoring one, so that the result is still a valid KAN. When
every node of a layer scores below the threshold, or the only path to an
output goes through pruned nodes, the pruned model computes what the masked
original computes: the outputs cut off become constants (their node biases
and the base/spline values of the kept node), finite, never NaN; a short
re-fit then recovers what it can. Outputs are never pruned.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from . import attribution
from .recorded import copy_without_data, has_samples

__all__ = ["prune_node", "prune_edge", "prune_input", "prune", "remove_edge", "remove_node", "subset_model"]

def prune_node(model, threshold: float = 1e-2, active_neurons_id=None, x: Tensor | None = None,
               metric: str = "backward"):
    """A new KAN without the hidden nodes whose score is <= threshold.

    Args:
        threshold: nodes with score > threshold are kept (pykan: 1e-2).
        active_neurons_id: manual mode (pykan's name): one list of node
            indices to keep per hidden layer (depth - 1 lists); no scores
            are computed then.
        x: the inputs to score on (default: see
            :func:`kanext.attribution.statistics_data`).
        metric: 'backward' (pykan 0.2) or 'forward' (the paper's rule).
    """
    L = model.depth
    if active_neurons_id is not None:
        active_neurons_id = list(active_neurons_id)
        if len(active_neurons_id) != L - 1:
            raise ValueError(f"prune_node: active_neurons_id needs one list per hidden layer ({L - 1}), "
                             f"got {len(active_neurons_id)}")
        keep = [list(range(model.width[0]))] + [list(a) for a in active_neurons_id] + [list(range(model.width[-1]))]
        data = attribution.statistics_data(model, x) if x is not None or _has_data(model) else None
    else:
        _check_threshold("prune_node", threshold)
        data = attribution.statistics_data(model, x)
        attribution.attribute(model, x=data, metric=metric)
        keep = [list(range(model.width[0]))]
        for l in range(1, L):
            keep.append(_kept(model.node_scores[l], threshold))
        keep.append(list(range(model.width[-1])))
    return subset_model(model, keep, data)


def prune_edge(model, threshold: float = 3e-2, x: Tensor | None = None, metric: str = "backward"):
    """Masks (in place) every edge whose score is <= threshold, also its
    symbolic twin if the model has ``symbolic_fun``. Returns the model."""
    _check_threshold("prune_edge", threshold)
    attribution.attribute(model, x=x, metric=metric)
    with torch.no_grad():
        for l in range(model.depth):
            dead = (model.edge_scores[l] <= threshold).T  # (in, out)
            layer = model.act_fun[l]
            layer.mask.mul_((~dead).to(layer.mask.dtype))
            sym = _symbolic(model, l)
            if sym is not None:
                sym.mask.mul_((~dead.T).to(sym.mask.dtype))
    return model


def prune_input(model, threshold: float = 1e-2, active_inputs=None, x: Tensor | None = None,
                metric: str = "backward"):
    """A new KAN that reads only the inputs whose score is > threshold (or
    the indices ``active_inputs``, in that order). It takes x[:, kept] as its
    input; ``new.input_id`` (a long tensor, informational, not saved in
    checkpoints) lists the kept columns of the original input."""
    if active_inputs is None:
        _check_threshold("prune_input", threshold)
        data = attribution.statistics_data(model, x)
        attribution.attribute(model, x=data, metric=metric)
        kept = _kept(model.node_scores[0], threshold)
    else:
        kept = active_inputs.tolist() if isinstance(active_inputs, Tensor) else list(active_inputs)
        data = attribution.statistics_data(model, x) if x is not None or _has_data(model) else None
    keep = [kept] + [list(range(w)) for w in model.width[1:]]
    new = subset_model(model, keep, data)
    old_id = getattr(model, "input_id", None)
    ids = torch.as_tensor(kept, dtype=torch.long)
    new.input_id = old_id[ids] if isinstance(old_id, Tensor) and old_id.numel() == model.width[0] else ids
    return new


def prune(model, node_th: float = 1e-2, edge_th: float = 3e-2, x: Tensor | None = None, metric: str = "backward"):
    """pykan's prune: :func:`prune_node` with node_th, then :func:`prune_edge`
    with edge_th on the smaller model (scored afresh on the same inputs).
    Returns the new model; the original is unchanged."""
    _check_threshold("prune", node_th)
    _check_threshold("prune", edge_th)
    data = attribution.statistics_data(model, x)
    new = prune_node(model, node_th, x=data, metric=metric)
    return prune_edge(new, edge_th, x=data, metric=metric)


def remove_edge(model, l: int, i: int, j: int) -> None:
    """Masks edge i -> j of layer l (and its symbolic twin, if any), in place.
    j indexes the subnodes of layer l+1 (as in pykan; they are the nodes
    when the layer has no multiplication node)."""
    _check_index("remove_edge: l", l, model.depth)
    _check_index("remove_edge: i", i, model.width[l])
    _check_index("remove_edge: j", j, model.act_fun[l].out_features)
    with torch.no_grad():
        model.act_fun[l].mask[i, j] = 0
        sym = _symbolic(model, l)
        if sym is not None:
            sym.mask[j, i] = 0


def remove_node(model, l: int, i: int, mode: str = "all") -> None:
    """Masks, in place, the edges into node i of layer l ('down'), out of it
    ('up'), or both ('all', pykan's default). Layer 0 (the inputs) has only
    outgoing edges and the last layer only incoming ones. The edges into a
    multiplication node are those into all of its subnodes (pykan's
    remove_node takes a subnode index for 'down'; here i is always a node)."""
    if mode not in ("all", "up", "down"):
        raise ValueError(f"remove_node: mode must be 'all', 'up' or 'down', got {mode!r}")
    _check_index("remove_node: l", l, model.depth + 1)
    _check_index("remove_node: i", i, model.width[l])
    with torch.no_grad():
        if mode in ("all", "down") and l > 0:
            subs = model.subnode_groups(l)[i] if hasattr(model, "subnode_groups") else [i]
            model.act_fun[l - 1].mask[:, subs] = 0
            sym = _symbolic(model, l - 1)
            if sym is not None:
                sym.mask[subs, :] = 0
        if mode in ("all", "up") and l < model.depth:
            model.act_fun[l].mask[i, :] = 0
            sym = _symbolic(model, l)
            if sym is not None:
                sym.mask[:, i] = 0


def subset_model(model, keep: list, data: Tensor | None = None):
    """A new KAN with only the nodes keep[l] of every layer l (depth + 1
    lists of distinct indices, in the order given; keep[-1] may reorder the
    outputs). Layers are sliced with :meth:`KANLinear.subset`, affines with
    them, extra per-edge state through :func:`_carry_layer`. ``data`` (the
    inputs the scores came from) becomes the new model's ``cache_data``
    (its columns keep[0])."""
    if len(keep) != model.depth + 1:
        raise ValueError(f"subset_model: keep needs {model.depth + 1} index lists (one per layer), got {len(keep)}")
    # A deep copy keeps every other attribute (base_fun, grid_range, state
    # added by later work); recorded data is not copied.
    keep = [list(k) for k in keep]
    sub_keep, arities = _subnodes_kept(model, keep)
    new = copy_without_data(model)
    new.act_fun = nn.ModuleList(model.act_fun[l].subset(keep[l], sub_keep[l + 1]) for l in range(model.depth))
    dev = model.act_fun[0].grid.device
    for name in ("node_scale", "node_bias", "subnode_scale", "subnode_bias"):
        plist = nn.ParameterList()
        for l, p in enumerate(getattr(model, name)):
            idx = torch.tensor((sub_keep if name.startswith("sub") else keep)[l + 1], dtype=torch.long, device=dev)
            plist.append(nn.Parameter(p.detach().index_select(0, idx).clone(), requires_grad=p.requires_grad))
        setattr(new, name, plist)
    if getattr(model, "symbolic_fun", None) is not None:
        new.symbolic_fun = nn.ModuleList(_carry_layer(model, l, keep[l], sub_keep[l + 1]) for l in range(model.depth))
    new.width = [len(k) for k in keep]
    if arities is not None:
        new.mult_arities = arities
    if data is not None:
        cols = torch.tensor(keep[0], dtype=torch.long, device=data.device)
        new.cache_data = data.reshape(-1, data.shape[-1]).detach().index_select(1, cols)
    return new


def _subnodes_kept(model, keep: list) -> tuple[list, list | None]:
    """Per width entry, the subnodes of the kept nodes (in the order of
    keep), and the arities of the kept multiplication nodes (None for a
    model without multiplication nodes). The kept sum nodes must come before
    the kept multiplication nodes."""
    arities = getattr(model, "mult_arities", None)
    if not arities or not any(arities):
        return keep, None
    subs, new_ar = [], []
    for l, k in enumerate(keep):
        groups, ns = model.subnode_groups(l), model.n_sum_nodes(l)
        if any(not 0 <= int(j) < len(groups) for j in k):
            raise ValueError(f"pruning: node indices of width entry {l} must be in [0, {len(groups)}), got {k}")
        kinds = [int(j) >= ns for j in k]
        if kinds != sorted(kinds):
            raise ValueError(f"pruning: width entry {l} has sum nodes 0..{ns - 1} and multiplication nodes "
                             f"{ns}..{len(groups) - 1}; the kept nodes must list the sum nodes first, got {k}")
        subs.append([s for j in k for s in groups[int(j)]])
        new_ar.append([arities[l][int(j) - ns] for j in k if int(j) >= ns])
    return subs, new_ar


def _carry_layer(model, l: int, in_idx: list, out_idx: list):
    """The hook for per-edge state beyond KANLinear: the symbolic branch
    (``model.symbolic_fun[l]``, pykan's name) is sliced with its own
    ``subset(in_idx, out_idx)``."""
    sym = model.symbolic_fun[l]
    if not hasattr(sym, "subset"):
        raise TypeError(f"pruning: model.symbolic_fun[{l}] ({type(sym).__name__}) has no subset(in_idx, out_idx) "
                        "method, so its per-edge state cannot be carried over")
    return sym.subset(in_idx, out_idx)


def _symbolic(model, l: int):
    sym = getattr(model, "symbolic_fun", None)
    return sym[l] if sym is not None and hasattr(sym[l], "mask") else None


def _kept(scores: Tensor, threshold: float) -> list[int]:
    """Indices with score > threshold; the best one alone if there are none
    (a layer keeps at least one node; see the module docstring). NaN scores
    count as below the threshold."""
    keep = torch.nonzero(scores > threshold).flatten().tolist()
    if not keep:
        s = torch.nan_to_num(scores, nan=-1.0)
        keep = [int(torch.argmax(s))]
    return keep


def _has_data(model) -> bool:
    return has_samples(model)


def _check_threshold(fn: str, th) -> None:
    if isinstance(th, bool) or not isinstance(th, (int, float)) or not th == th:
        raise ValueError(f"{fn}: threshold must be a real number, got {th!r}")


def _check_index(name: str, v, n: int) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < n:
        raise ValueError(f"{name} must be an int in [0, {n}), got {v!r}")
