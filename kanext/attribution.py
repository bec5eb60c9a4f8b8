"""Attribution: how much each node and edge of a KAN matters.

Two families of scores, both computed from the per-layer statistics that a
recording forward (``model.save_act = True``) gathers with the fused
``edge_stats`` op, so no (N, in, out) tensor is ever formed:

Backward (pykan 0.2's ``attribute``, the default for pruning and plots).
With E_l[j, i] = std_n phi_lji(x_i) (the edge's unnormalised activation
spread) and S_l[j] = std_n of the layer's summed output y_j (before the node
affines), starting from the identity on the outputs, layer by layer from the
top:

    edge_score_l[k, j, i] = node_score_{l+1}[k, j] * E_l[j, i] / (S_l[j] + 1e-4)
    node_score_l[k, i]    = sum_j edge_score_l[k, j, i]

where k runs over the model outputs; the reported node and edge scores are the
means over k. (As in pykan the node and subnode affines do not enter.)

Multiplication nodes (pykan's MultKAN rule): edges end on subnodes, so j
above runs over the subnodes of layer l+1 and S_l[j] is the std of subnode j
before the affines; each subnode takes the score of its node (every subnode
of a multiplication node gets the node's full score), and
``subnode_scores`` hold those per-subnode scores. For the forward metric a
node's incoming score is the largest over the edges into any of its
subnodes.

Forward (the paper's section 2.5): the edge score is |phi|_1 = mean_n |phi(x)|;
a node's score is the smaller of its largest incoming and largest outgoing
edge score (inputs: outgoing only; outputs: incoming only), so that "score >
threshold" is the paper's rule "both above threshold".

E_l is derived from the recorded ``acts_scale`` (pykan's std(phi) / (std(x) +
0.1), itself from edge_stats' sums) times std(x) + 0.1, and S_l from the
recorded layer outputs: the node affines scale a node's spread by
|node_scale * subnode_scale|, which is divided out.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .recorded import samples

__all__ = [
    "attribute", "record_statistics", "statistics_data", "edge_actscale", "subnode_actscale",
    "forward_scores", "ATTRIBUTION_METRICS",
]

ATTRIBUTION_METRICS = ("backward", "forward")


def record_statistics(model, x: Tensor) -> None:
    """One recording forward of ``model`` on x (no autograd): sets
    ``model.acts``, ``acts_scale``, ``edge_l1``, ``input_range`` (see
    :class:`kanext.KAN`). ``model.save_act`` is left as it was."""
    if not isinstance(x, Tensor):
        raise TypeError(f"expected the inputs x as a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 2 or x.shape[0] < 2:
        raise ValueError(f"attribution needs inputs of shape (N >= 2, {model.width[0]}), got {tuple(x.shape)}")
    had = "save_act" in vars(model)
    old = model.save_act
    model.save_act = True
    try:
        with torch.no_grad():
            model(x)
    finally:
        if had:
            model.save_act = old
        else:
            del model.save_act


def statistics_data(model, x: Tensor | None = None) -> Tensor:
    """The inputs to score the model on: x if given, else the inputs of the
    last recording forward (``model.acts[0]``), else ``model.cache_data`` (the
    last fit inputs); see :func:`kanext.recorded.samples`."""
    return samples(model, x, what="attribution")


def edge_actscale(model) -> list[Tensor]:
    """Per layer, (out, in) std_n of every edge's activation phi_ji(x_i)
    (unbiased, as torch.std), from the recorded statistics."""
    out = []
    sym = getattr(model, "symbolic_fun", None)
    for l in range(model.depth):
        xl = model.acts[l]
        std_x = torch.std(xl, dim=0) if xl.shape[0] > 1 else torch.zeros_like(xl[0])
        E = model.acts_scale[l] * (std_x + 0.1).unsqueeze(0)
        # A masked edge is identically 0; the recorded scale carries a tiny
        # floor (for the regulariser's gradient) that is dropped here.
        active = model.act_fun[l].mask.T != 0
        if sym is not None and hasattr(sym[l], "mask") and getattr(model, "symbolic_enabled", True):
            active = active | (sym[l].mask != 0)  # (skipped symbolic edges are 0, as in the forward)
        out.append(torch.where(active, E, torch.zeros_like(E)))
    return out


def subnode_actscale(model) -> list[Tensor]:
    """Per layer, (out,) std_n of the layer's summed output before the node
    affines, from the recorded outputs (the affines scale it by
    |node_scale * subnode_scale|; where that product is 0 the node is
    constant and 0 is returned). A layer whose outputs include
    multiplication nodes gives the recorded std of its subnodes before the
    affines instead (width_out entries)."""
    out = []
    for l in range(model.depth):
        if _mult(model, l + 1):
            out.append(model.subnode_std[l])
            continue
        y = model.acts[l + 1]
        std_y = torch.std(y, dim=0) if y.shape[0] > 1 else torch.zeros_like(y[0])
        a = (model.node_scale[l] * model.subnode_scale[l]).detach().abs()
        out.append(torch.where(a > 0, std_y / torch.where(a > 0, a, torch.ones_like(a)), torch.zeros_like(std_y)))
    return out


def attribute(model, l: int | None = None, i: int | None = None, out_score: Tensor | None = None,
              x: Tensor | None = None, metric: str = "backward"):
    """Computes node and edge scores and stores them on the model (pykan's names):

    - ``model.node_scores``: list of depth+1 tensors, (width[l],) each;
    - ``model.edge_scores``: list of depth tensors, (width[l+1], width[l]) each;
    - ``model.subnode_scores``: per layer, (width_out[l+1],) the score of each
      subnode (equal to node_scores[1:] without multiplication nodes);
    - for metric 'backward' also ``node_scores_all`` / ``edge_scores_all``: the
      same before averaging over the queried outputs (leading dim K).

    The statistics are recorded afresh on :func:`statistics_data` (x, else the
    data of the last recording forward, else the last fit inputs), so the
    scores always describe the model as it is now.

    Args:
        l, i: pykan's query: with l given, the scores of the inputs for the
            nodes of layer l, each weighted by its own score; returns
            ``node_scores_all[0]`` ((width[l], width[0])), or its row i.
        out_score: (width[-1],) weights of the outputs (default all 1).
        metric: 'backward' (pykan 0.2) or 'forward' (the paper's |phi|_1);
            see the module docstring. l, i and out_score need 'backward'.
    Returns None unless l is given.
    """
    if metric not in ATTRIBUTION_METRICS:
        raise ValueError(f"attribute: metric must be one of {ATTRIBUTION_METRICS}, got {metric!r}")
    record_statistics(model, statistics_data(model, x))
    if metric == "forward":
        if l is not None or i is not None or out_score is not None:
            raise ValueError("attribute: l, i and out_score need metric='backward'")
        model.node_scores, model.edge_scores = forward_scores(model)
        model.subnode_scores = [s if subnode_index(model, l + 1) is None else s.index_select(0, subnode_index(
            model, l + 1, s.device)) for l, s in enumerate(model.node_scores[1:])]
        return None
    if l is not None:
        if isinstance(l, bool) or not isinstance(l, int) or not 0 <= l <= model.depth:
            raise ValueError(f"attribute: l must be a layer index in [0, {model.depth}], got {l!r}")
        _backward(model, None, model.depth)
        out_score = model.node_scores[l]
        _backward(model, out_score, l)
        if i is None:
            return model.node_scores_all[0]
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < model.width[l]:
            raise ValueError(f"attribute: i must be a node index in [0, {model.width[l]}), got {i!r}")
        return model.node_scores_all[0][i]
    if i is not None:
        raise ValueError("attribute: i needs l (the layer of node i)")
    _backward(model, out_score, model.depth)
    return None


def _mult(model, l: int) -> bool:
    """Whether width entry l of the model has multiplication nodes."""
    ar = getattr(model, "mult_arities", None)
    return bool(ar and ar[l])


def subnode_index(model, l: int, device=None) -> Tensor | None:
    """(width_out[l],) long tensor: the node of each subnode of width entry l,
    or None when they coincide (no multiplication node)."""
    if not _mult(model, l):
        return None
    return torch.tensor(model.node_of_subnode(l), dtype=torch.long, device=device)


def propagate_scores(E: list[Tensor], S: list[Tensor], score: Tensor, l_end: int, sub_index=None,
                     subnodes: list | None = None) -> tuple[list, list]:
    """pykan's backward attribution from layer l_end down to the inputs:
    (node scores per layer 0..l_end, each (K, width[l]); edge scores per
    layer 0..l_end-1, each (K, out, in)), from the edge activation stds E[l]
    (out, in), the layer output stds S[l] (out,) and the starting node scores
    ``score`` (K, width[l_end]). Differentiable in E (the regulariser uses it).
    sub_index: None, or a function l -> the node of each subnode of width
    entry l (a long tensor) or None (multiplication nodes; see the module
    docstring). subnodes: a list that receives the subnode scores of layers
    0..l_end-1 (K, width_out[l+1])."""
    nodes, edges, subs = [score], [], []
    for l in range(l_end - 1, -1, -1):
        idx = sub_index(l + 1) if sub_index is not None else None
        sub = score if idx is None else score.index_select(-1, idx.to(score.device))
        edge = sub.unsqueeze(-1) * (E[l] / (S[l] + 1e-4).unsqueeze(-1)).unsqueeze(0)  # (K, out, in)
        score = edge.sum(dim=1)
        edges.append(edge)
        nodes.append(score)
        subs.append(sub)
    if subnodes is not None:
        subnodes.extend(subs[::-1])
    return nodes[::-1], edges[::-1]


def _backward(model, out_score: Tensor | None, l_end: int) -> None:
    E, S = edge_actscale(model), subnode_actscale(model)
    n = model.width[l_end]
    ref = E[0] if E else model.acts[0]
    if out_score is None:
        score = torch.eye(n, dtype=ref.dtype, device=ref.device)
    else:
        out_score = torch.as_tensor(out_score, dtype=ref.dtype, device=ref.device)
        if out_score.shape != (n,):
            raise ValueError(f"attribute: out_score must have shape ({n},), got {tuple(out_score.shape)}")
        score = torch.diag(out_score)
    subs = []
    model.node_scores_all, model.edge_scores_all = propagate_scores(
        E, S, score, l_end, lambda l: subnode_index(model, l), subs)
    model.node_scores = [s.mean(dim=0) for s in model.node_scores_all]
    model.edge_scores = [s.mean(dim=0) for s in model.edge_scores_all]
    model.subnode_scores_all = subs
    model.subnode_scores = [s.mean(dim=0) for s in subs]


def forward_scores(model) -> tuple[list[Tensor], list[Tensor]]:
    """The paper's scores from the recorded statistics: (node scores, one
    (width[l],) tensor per layer; edge scores |phi|_1, one (out, in) tensor
    per layer). See the module docstring."""
    edges = [s.clone() for s in model.edge_l1]
    incoming = [None]  # per node of layer l+1 (the largest over its subnodes)
    for l, e in enumerate(edges):
        inc = e.amax(dim=1)
        idx = subnode_index(model, l + 1, inc.device)
        if idx is not None:
            inc = inc.new_full((model.width[l + 1],), float("-inf")).scatter_reduce(0, idx, inc, "amax")
        incoming.append(inc)
    outgoing = [e.amax(dim=0) for e in edges] + [None]  # per node of layer l
    nodes = []
    for a, b in zip(incoming, outgoing):
        nodes.append(b if a is None else a if b is None else torch.minimum(a, b))
    return nodes, edges
