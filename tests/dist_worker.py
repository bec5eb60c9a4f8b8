"""The rank side of tests/test_distributed.py: ``python tests/dist_worker.py OUT``
spawns 2 CPU processes (gloo) that run every scenario below and write what
they saw to OUT/<scenario>.rank<r>.pt; the test compares the ranks and a
single-process run. A scenario that raises records the error's text, so one
failure does not hide the others and no rank waits for a peer forever.

Each rank has different local data (different values and row counts).
"""
from __future__ import annotations

import os
import sys
import traceback
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import kanext

F64 = torch.float64


def local_data(rank: int, n_train=(37, 23), n_test=(11, 7)):
    """Rank r's dict dataset: different sizes and values per rank (x in [-1.5, 1.5]^2)."""
    g = torch.Generator().manual_seed(100 + rank)
    f = lambda x: torch.sin(torch.pi * x[:, :1]) + x[:, 1:] ** 2  # noqa: E731
    xtr = torch.rand(n_train[rank], 2, generator=g, dtype=F64) * 3 - 1.5
    xte = torch.rand(n_test[rank], 2, generator=g, dtype=F64) * 3 - 1.5
    return {"train_input": xtr, "train_label": f(xtr), "test_input": xte, "test_label": f(xte)}


def fresh_kan():
    return kanext.KAN([2, 3, 1], grid=5, k=3, seed=0, dtype=F64)


FIT_KW = dict(opt="LBFGS", steps=4, update_grid=True, grid_update_num=2, stop_grid_update_step=4,
              progress=False, shard=False)


def scenario_fit(rank):
    model = fresh_kan()
    res = model.fit(local_data(rank), **FIT_KW)
    return {"state": {k: v.clone() for k, v in model.state_dict().items()}, "train_loss": res["train_loss"],
            "test_loss": res["test_loss"]}


def scenario_fit_adam_lan(rank):
    model = kanext.LAN([2, 4, 1], grid=5, seed=0, dtype=F64)
    if rank == 1:  # a different start: fit must copy rank 0's parameters first
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1.0)
    res = model.fit(local_data(rank), opt="Adam", lr=1e-2, steps=5, grid_update_num=5, stop_grid_update_step=5,
                    progress=False, shard=False)
    return {"state": {k: v.clone() for k, v in model.state_dict().items()}, "train_loss": res["train_loss"]}


def scenario_fit_sharded(rank):
    """The same global dict on every rank, split by fit (shard=True)."""
    both = [local_data(r) for r in range(2)]
    full = {k: torch.cat([d[k] for d in both]) for k in both[0]}
    model = fresh_kan()
    res = model.fit(full, **{**FIT_KW, "shard": True})
    return {"state": {k: v.clone() for k, v in model.state_dict().items()}, "train_loss": res["train_loss"]}


def scenario_fit_loaders(rank):
    """DataLoaders with a DistributedSampler (each rank its half of the global data per step);
    a loader without one raises unless shard=False."""
    from torch.utils.data import DataLoader, TensorDataset
    from torch.utils.data.distributed import DistributedSampler

    both = [local_data(r) for r in range(2)]
    full = {k: torch.cat([d[k] for d in both]) for k in both[0]}
    loaders = []
    for split in ("train", "test"):
        ds = TensorDataset(full[f"{split}_input"], full[f"{split}_label"])
        sampler = DistributedSampler(ds, shuffle=False)
        loaders.append(DataLoader(ds, batch_size=len(sampler), sampler=sampler))
    model = fresh_kan()
    res = model.fit(tuple(loaders), **{k: v for k, v in FIT_KW.items() if k != "shard"})
    out = {"state": {k: v.clone() for k, v in model.state_dict().items()}, "train_loss": res["train_loss"]}
    plain = DataLoader(TensorDataset(full["train_input"], full["train_label"]), batch_size=8)
    try:
        fresh_kan().fit((plain, plain), steps=1, progress=False)
    except ValueError as e:
        out["error"] = str(e)
    return out


def scenario_update_grid(rank):
    """update_grid on KAN, KANLinear and LAN with unequal counts (rank 1: 0 rows for the layer)."""
    x = local_data(rank)["train_input"]
    kan = fresh_kan()
    kan.update_grid(x)
    layer = kanext.KANLinear(2, 3, grid=5, generator=torch.Generator().manual_seed(0), dtype=F64)
    layer.update_grid(x if rank == 0 else x[:0])
    lan = kanext.LAN([2, 4, 1], grid=5, seed=0, dtype=F64)
    lan.update_grid(x)
    local = fresh_kan()
    local.update_grid(x, sync=False)
    return {"kan": {k: v.clone() for k, v in kan.state_dict().items()},
            "layer": {k: v.clone() for k, v in layer.state_dict().items()},
            "lan": {k: v.clone() for k, v in lan.state_dict().items()},
            "local_grid": local.act_fun[0].grid.clone()}


def _ddp_steps(model, x, steps=3):
    ddp = nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.Adam(ddp.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        ddp(x).pow(2).mean().backward()
        opt.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def scenario_ddp(rank):
    """DDP without find_unused_parameters over every module kind, a KAN with and without a
    symbolic edge, base 'zero' and trainable affines, and a model after replace_linear."""
    torch.manual_seed(0)  # the same initial draws on both ranks (DDP broadcasts rank 0's anyway)
    x = local_data(rank)["train_input"]
    out = {}
    out["kan"] = _ddp_steps(fresh_kan(), x)
    sym = fresh_kan()
    sym.fix_symbolic(0, 0, 1, "sin", fit_params=False, verbose=False)
    out["kan_symbolic"] = _ddp_steps(sym, x)
    out["kan_zero_affine"] = _ddp_steps(kanext.KAN([2, 3, 1], base_fun="zero", affine_trainable=True, seed=0,
                                                   dtype=F64), x)
    out["kanlinear_bias"] = _ddp_steps(kanext.KANLinear(2, 3, bias=True, dtype=F64), x)
    out["lan"] = _ddp_steps(kanext.LAN([2, 4, 1], seed=0, dtype=F64), x)
    out["spline_activation"] = _ddp_steps(kanext.SplineActivation(2, dtype=F64), x)
    mlp = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1)).to(F64)
    out["replaced"] = _ddp_steps(kanext.replace_linear(mlp, init="kan"), x)
    # a model taken out of DDP prunes and refines as usual (the same data on both ranks here)
    kan = fresh_kan()
    _ddp_steps(kan, x)
    same_x = local_data(0)["train_input"]
    out["pruned"] = {k: v.clone() for k, v in kan.prune(edge_th=0.5, x=same_x).state_dict().items()}
    out["refined"] = {k: v.clone() for k, v in kan.refine(10, same_x).state_dict().items()}
    return out


def scenario_fsdp2(rank):
    """FSDP2 (fully_shard per layer and at the root): the same steps as DDP, then a synchronised
    grid update on the sharded model and a refine that returns an unsharded model; fit refuses."""
    from torch.distributed.fsdp import fully_shard

    x = local_data(rank)["train_input"]
    out = {"ddp": {}, "fsdp": {}, "refined_ddp": {}, "refined_fsdp": {}, "errors": {}}
    for name, make in (("kan", fresh_kan), ("lan", lambda: kanext.LAN([2, 4, 1], seed=0, dtype=F64))):
        plain = make()
        out["ddp"][name] = _ddp_steps(plain, x)
        plain.update_grid(x)
        out["ddp"][name] = {k: v.clone() for k, v in plain.state_dict().items()}
        out["refined_ddp"][name] = {k: v.clone() for k, v in plain.refine(10, x).state_dict().items()}
        model = make()
        for layer in (model.act_fun if name == "kan" else model.layers):
            fully_shard(layer)
        fully_shard(model)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(3):
            opt.zero_grad()
            model(x).pow(2).mean().backward()
            opt.step()
        model.update_grid(x)
        model(x).sum().backward()  # still trains after the update
        out["fsdp"][name] = {k: (v.full_tensor() if hasattr(v, "full_tensor") else v).detach().clone()
                             for k, v in model.state_dict().items()}
        refined = model.refine(10, x)
        out["refined_fsdp"][name] = {k: v.clone() for k, v in refined.state_dict().items()}
        out["refined_fsdp"][name + ".type"] = type(refined).__name__
        try:
            model.fit(local_data(rank), steps=1, progress=False)
        except NotImplementedError as e:
            out["errors"][f"{name}.fit"] = str(e)
    layer = kanext.KANLinear(2, 3, bias=True, generator=torch.Generator().manual_seed(0), dtype=F64)
    fully_shard(layer)
    layer.update_grid(x)
    out["layer"] = {k: (v.full_tensor() if hasattr(v, "full_tensor") else v).detach().clone()
                    for k, v in layer.state_dict().items()}
    return out


def scenario_shape_mismatch(rank):
    """Ranks with different models: fit and update_grid must raise on every rank."""
    model = kanext.KAN([2, 3 + rank, 1], seed=0, dtype=F64)
    errors = {}
    try:
        model.fit(local_data(rank), steps=1, progress=False, shard=False)
    except ValueError as e:
        errors["fit"] = str(e)
    layer = kanext.KANLinear(2 + rank, 3, dtype=F64)
    try:
        layer.update_grid(torch.rand(5, 2 + rank, dtype=F64))
    except ValueError as e:
        errors["update_grid"] = str(e)
    return errors


SCENARIOS = [scenario_fit, scenario_fit_adam_lan, scenario_fit_sharded, scenario_fit_loaders, scenario_update_grid,
             scenario_ddp, scenario_fsdp2, scenario_shape_mismatch]


def run(rank, world, out):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{out}/rendezvous", rank=rank, world_size=world,
                            timeout=timedelta(seconds=120))
    try:
        for sc in SCENARIOS:
            name = sc.__name__.removeprefix("scenario_")
            if len(sys.argv) > 2 and name not in sys.argv[2].split(","):
                continue
            try:
                result = {"ok": sc(rank)}
            except Exception:  # recorded for the test to show
                result = {"error": traceback.format_exc()}
            torch.save(result, os.path.join(out, f"{name}.rank{rank}.pt"))
            dist.barrier()
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    mp.start_processes(run, args=(2, sys.argv[1]), nprocs=2, start_method="spawn")
