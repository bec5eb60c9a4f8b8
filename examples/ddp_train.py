"""Data-parallel training of a wide KAN with torch.distributed.

    torchrun --nproc_per_node 2 examples/ddp_train.py            # DDP (gloo on CPU, nccl on GPUs)
    torchrun --nproc_per_node 2 examples/ddp_train.py --fsdp     # FSDP2 (fully_shard)
    torchrun --nproc_per_node 2 examples/ddp_train.py --fit      # kanext's fit() does the data parallelism

Each rank draws its own samples of f(x) = sum_i sin(pi x_i) / d + (x_0 x_1)^2 (no download) and
trains the same KAN. Every --grid-every steps the grids move to the data: ``model.update_grid(x)``
gathers all ranks' samples, so every replica gets the same new grid (the update of the union of
the ranks' samples); under FSDP2 the update runs on full copies of the parameters and is sharded
back. At the end rank 0 prints the loss and whether the ranks' parameters are bit-identical.
"""
from __future__ import annotations

import argparse
import gc
import os
import time

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

import kanext


def target(x):
    return torch.sin(torch.pi * x).mean(1, keepdim=True) + (x[:, :1] * x[:, 1:2]) ** 2


def local_data(rank, n, d, device):
    g = torch.Generator().manual_seed(1000 + rank)
    x = (torch.rand(n, d, generator=g) * 2 - 1).to(device)
    return x, target(x)


def parameter_checksum_agrees(model, device) -> bool:
    """Whether every rank holds exactly rank 0's parameters and buffers."""
    flat = torch.cat([t.detach().reshape(-1).to(torch.float64) for t in model.state_dict().values()])
    mine = flat.to(device)
    ref = mine.clone()
    dist.broadcast(ref, src=0)
    same = torch.tensor([float(torch.equal(mine, ref))], device=device)
    dist.all_reduce(same, op=dist.ReduceOp.MIN)
    return bool(same.item())


def full_state(model):
    return {k: (v.full_tensor() if hasattr(v, "full_tensor") else v) for k, v in model.state_dict().items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inputs", type=int, default=8)
    ap.add_argument("--width", type=int, default=256, help="hidden width (two hidden layers)")
    ap.add_argument("--grid", type=int, default=5)
    ap.add_argument("--batch", type=int, default=512, help="samples per rank")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--grid-every", type=int, default=20, help="steps between grid updates (0: none)")
    ap.add_argument("--fsdp", action="store_true", help="shard parameters with FSDP2 instead of DDP")
    ap.add_argument("--fit", action="store_true", help="train with kanext's fit() (LBFGS-free: Adam)")
    args = ap.parse_args(argv)
    if args.fsdp and args.fit:
        ap.error("--fit trains the bare model; it cannot be combined with --fsdp")

    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group("nccl" if cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda") if cuda else torch.device("cpu")
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))

    x, y = local_data(rank, args.batch, args.inputs, device)
    model = kanext.KAN([args.inputs, args.width, args.width, 1], grid=args.grid, seed=0, device=device)
    t0 = time.perf_counter()
    if args.fit:
        xt, yt = local_data(rank + world, args.batch // 4, args.inputs, device)
        ds = {"train_input": x, "train_label": y, "test_input": xt, "test_label": yt}
        res = model.fit(ds, opt="Adam", lr=args.lr, steps=args.steps, shard=False, progress=False,
                        grid_update_num=max(1, args.steps // max(args.grid_every, 1)),
                        stop_grid_update_step=args.steps if args.grid_every else 0)
        losses = [v**2 for v in res["train_loss"]]
    else:
        if args.fsdp:
            from torch.distributed.fsdp import fully_shard

            for layer in model.act_fun:
                fully_shard(layer)
            net = fully_shard(model)
        else:
            net = DDP(model)
        opt = torch.optim.Adam(net.parameters(), lr=args.lr)
        losses = []
        for step in range(args.steps):
            if args.grid_every and step % args.grid_every == 0:
                model.update_grid(x)  # the same new grid on every rank: the update of all ranks' samples
            opt.zero_grad()
            loss = (net(x) - y).pow(2).mean()
            loss.backward()
            opt.step()
            mean = loss.detach().clone()
            dist.all_reduce(mean)
            losses.append(mean.item() / world)
    seconds = time.perf_counter() - t0
    same = parameter_checksum_agrees(model, device) if not args.fsdp else None
    if args.fsdp:  # the shards differ by design; compare the gathered full tensors
        full = full_state(model)
        flat = torch.cat([t.detach().reshape(-1).to(torch.float64) for t in full.values()])
        ref = flat.clone()
        dist.broadcast(ref, src=0)
        ok = torch.tensor([float(torch.equal(flat, ref))], device=device)
        dist.all_reduce(ok, op=dist.ReduceOp.MIN)
        same = bool(ok.item())
    result = {"mode": "fsdp2" if args.fsdp else ("fit" if args.fit else "ddp"), "world": world,
              "first_loss": losses[0], "last_loss": losses[-1], "identical": same, "seconds": seconds}
    if rank == 0:
        print(f"{result['mode']}: {world} ranks, KAN [{args.inputs}, {args.width}, {args.width}, 1], G={args.grid}, "
              f"{args.steps} steps in {seconds:.1f} s; mse {losses[0]:.3e} -> {losses[-1]:.3e}; "
              f"replicas identical: {same}")
    # every rank's collectives done and the sharded modules gone before the group goes: FSDP2 on gloo
    # otherwise sometimes aborts one rank at exit ("terminate called without an active exception")
    dist.barrier()
    del model
    if not args.fit:
        del net, opt
    gc.collect()
    dist.destroy_process_group()
    return result


if __name__ == "__main__":
    main()
