"""kanext under torch.distributed: synchronised grid updates and the
collectives that :func:`kanext.training.fit` uses under torchrun.

Every function here takes ``sync``: ``True`` (the default process group when
``torch.distributed`` is initialised and has more than one rank, else a
local computation), ``False`` (always local) or a ``ProcessGroup``.
Collectives must be called by every rank of the group, in the same order,
as all torch.distributed collectives must.

Grid updates (``update_grid`` of KANLinear, SplineActivation, KAN, LAN) gather
the samples of all ranks, in rank order, and compute on every rank the
update of their concatenation: the same grid and refitted coefficients as a
single process given those samples, on every rank, so that data-parallel
replicas never diverge. Ranks may hold different sample counts (0 included,
as long as some rank has a finite sample). Under FSDP2 (``fully_shard``) the
update runs on full copies of the parameters, gathered on every rank, and is
sharded back (:func:`on_full_tensors`); ``refine`` there returns an unsharded
model, to shard again.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["is_sharded", "refuse_sharded", "on_full_tensors", "sync_group", "is_main", "gather_rows", "check_same_model", "broadcast_state", "all_reduce_grads",
           "all_reduce_sum"]

_DTYPES = [torch.float64, torch.float32, torch.bfloat16, torch.float16]


def _dist():
    import torch.distributed as dist

    return dist


def sync_group(sync=True):
    """The process group to synchronise over for ``sync`` (see the module
    docstring), or None when the computation is local (not initialised,
    ``sync=False``, or a group of one rank)."""
    if sync is False or sync is None:
        return None
    dist = _dist()
    ready = dist.is_available() and dist.is_initialized()
    if sync is True:
        if not ready:
            return None
        group = dist.group.WORLD
    else:
        if not ready:
            raise ValueError(f"sync={sync!r}: a process group was given but torch.distributed is not initialised")
        if not isinstance(sync, dist.ProcessGroup):
            raise TypeError(f"sync must be True, False or a torch.distributed.ProcessGroup, got {sync!r}")
        group = sync
    return group if dist.get_world_size(group) > 1 else None


def is_main(group) -> bool:
    """Whether this process is rank 0 of ``group`` (always True for None)."""
    return group is None or _dist().get_rank(group) == 0


def _dtensor_type():
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # a torch without DTensor has no FSDP2 either
        return None
    return DTensor


def is_sharded(module: nn.Module) -> bool:
    """Whether module holds sharded (DTensor) parameters, as under FSDP2's ``fully_shard``."""
    dt = _dtensor_type()
    return dt is not None and any(isinstance(p, dt) for p in module.parameters())


def refuse_sharded(module: nn.Module, what: str) -> None:
    """Raises NotImplementedError when module holds sharded (DTensor)
    parameters: ``what`` would read shards as whole tensors."""
    dt = _dtensor_type()
    for name, p in module.named_parameters():
        if dt is not None and isinstance(p, dt):
            raise NotImplementedError(
                f"{what} on a model whose parameters are sharded (FSDP2 fully_shard; {name!r} is a DTensor) is not "
                "supported: train it with your own loop (forward, backward and optimizer steps work), or run fit "
                "on the model before sharding it.")


def on_full_tensors(module: nn.Module, edit, write_back: bool = True):
    """Runs ``edit(plain)`` on an unsharded twin of an FSDP2-sharded module
    and returns its result: ``plain`` is a module of the original class whose
    parameters are full copies (gathered on every rank) and whose buffers
    are the module's own. With ``write_back`` the twin's parameters are then
    sharded back into the module (every rank must have computed the same
    values, as the synchronised grid updates do). Memory: one full copy of
    the parameters per rank while it runs."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, set_model_state_dict

    opts = StateDictOptions(full_state_dict=True)
    full = get_model_state_dict(module, options=opts)
    plain = _plain_twin(module, full, "")
    result = edit(plain)
    if write_back:
        set_model_state_dict(module, dict(plain.state_dict()), options=opts)
    return result


def _plain_twin(module: nn.Module, full: dict, prefix: str) -> nn.Module:
    from torch.distributed.fsdp import FSDPModule

    cls = next(c for c in type(module).__mro__ if not issubclass(c, FSDPModule))
    twin = cls.__new__(cls)
    # no FSDP state (torch's composable-API entries, FSDP flags) and no hooks on the twin
    state = {k: v for k, v in module.__dict__.items()
             if not k.startswith(("__composable_api_state_key", "_fsdp", "_is_fsdp"))}
    for key, value in state.items():
        if "hooks" in key and isinstance(value, dict):
            state[key] = type(value)()
    state["_parameters"] = {
        n: None if p is None else nn.Parameter(full[prefix + n].detach().clone(), requires_grad=p.requires_grad)
        for n, p in module._parameters.items()}
    state["_buffers"] = dict(module._buffers)  # the same tensors: buffer edits land in the module
    state["_modules"] = {n: None if m is None else _plain_twin(m, full, f"{prefix}{n}.")
                         for n, m in module._modules.items()}
    twin.__dict__.update(state)
    return twin


def _comm_device(group, like: Tensor) -> torch.device:
    if _dist().get_backend(group) == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def gather_rows(x: Tensor, group, what: str = "samples") -> Tensor:
    """All ranks' rows x (n_r, F), concatenated in rank order (the same tensor
    on every rank, on x's device and dtype). Raises ValueError on every rank
    when the ranks disagree on F or the dtype."""
    dist = _dist()
    if x.dim() != 2:
        raise ValueError(f"gather_rows: expected {what} of shape (n, F), got {tuple(x.shape)}")
    dev = _comm_device(group, x)
    code = _DTYPES.index(x.dtype) if x.dtype in _DTYPES else -1
    head = torch.tensor([x.shape[0], x.shape[1], code], dtype=torch.int64, device=dev)
    heads = [torch.empty_like(head) for _ in range(dist.get_world_size(group))]
    dist.all_gather(heads, head, group=group)
    rows = [tuple(int(v) for v in h) for h in heads]
    if code < 0 or len({(f, c) for _, f, c in rows}) != 1:
        desc = ", ".join(f"rank {r}: (n={n}, F={f}, dtype={_DTYPES[c] if c >= 0 else 'unsupported'})"
                         for r, (n, f, c) in enumerate(rows))
        raise ValueError(f"ranks disagree on the {what}' feature size or dtype (expected the same on every rank; "
                         f"got {desc}); are the models' shapes the same on every rank?")
    n_max = max(n for n, _, _ in rows)
    buf = torch.zeros(n_max, x.shape[1], dtype=x.dtype, device=dev)
    buf[: x.shape[0]] = x.detach().to(dev)
    bufs = [torch.empty_like(buf) for _ in rows]
    dist.all_gather(bufs, buf, group=group)
    return torch.cat([b[:n] for b, (n, _, _) in zip(bufs, rows)]).to(x.device)


def _signature(model: nn.Module) -> list:
    return [(kind, name, tuple(t.shape), str(t.dtype))
            for kind, items in (("param", model.named_parameters()), ("buffer", model.named_buffers()))
            for name, t in items]


def check_same_model(model: nn.Module, group) -> None:
    """Raises ValueError (on every rank) unless every rank's model has the same
    parameter and buffer names, shapes and dtypes."""
    dist = _dist()
    mine = _signature(model)
    sigs = [None] * dist.get_world_size(group)
    dist.all_gather_object(sigs, mine, group=group)
    for r, sig in enumerate(sigs):
        if sig != sigs[0]:
            a, b = dict(((k, n), s) for k, n, *s in sigs[0]), dict(((k, n), s) for k, n, *s in sig)
            diff = sorted({key for key in a.keys() | b.keys() if a.get(key) != b.get(key)})[:5]
            shown = "; ".join(f"{k} {n}: rank 0 {a.get((k, n))}, rank {r} {b.get((k, n))}" for k, n in diff)
            raise ValueError(f"ranks disagree on the model's shapes (expected the same model on every rank): {shown}")


@torch.no_grad()
def broadcast_state(model: nn.Module, group) -> None:
    """Copies rank 0's parameters and buffers to every rank of the group (as
    DistributedDataParallel does when it wraps a model)."""
    dist = _dist()
    src = dist.get_global_rank(group, 0) if group is not dist.group.WORLD else 0
    for t in list(model.parameters()) + list(model.buffers()):
        dev = _comm_device(group, t)
        buf = t.detach().to(dev)
        dist.broadcast(buf, src=src, group=group)
        if buf is not t:
            t.copy_(buf)


def all_reduce_sum(values: Tensor, group) -> Tensor:
    """The sum over ranks of ``values`` (a new tensor on values' device)."""
    dist = _dist()
    buf = values.detach().to(_comm_device(group, values), copy=True)
    dist.all_reduce(buf, group=group)
    return buf.to(values.device)


@torch.no_grad()
def all_reduce_grads(params, group) -> None:
    """Sums the gradients of ``params`` over the ranks, in place (a missing
    gradient counts as zero and is created), one flat buffer per dtype."""
    by_dtype: dict = {}
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        by_dtype.setdefault(p.grad.dtype, []).append(p)
    for ps in by_dtype.values():
        flat = torch.cat([p.grad.reshape(-1) for p in ps])
        flat = all_reduce_sum(flat, group)
        offset = 0
        for p in ps:
            n = p.grad.numel()
            p.grad.copy_(flat[offset:offset + n].view_as(p.grad))
            offset += n
