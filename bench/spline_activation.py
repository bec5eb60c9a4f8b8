"""SplineActivation forward+backward against torch's silu forward+backward on
the same (N, C) float32 tensor, same process (the issue's speed target: at
most 2x).

    python bench/spline_activation.py                      # N=65536, C=1024, G=5, k=3, 2 threads
    python bench/spline_activation.py --grid 50 --repeat 7
    python bench/spline_activation.py --device cuda          # the CUDA kernel (csrc/cuda/spline_activation.cu)

Both sides do the same work per step: y = f(z) with z requiring grad (and,
for SplineActivation, its coef / scale_base / scale_sp), then y.backward(g)
with a fixed upstream gradient g; gradients are set to None between steps.
The SplineActivation result is first checked against kanext.reference on a
slice of the rows. Prints the median and min of --repeat timed steps per
side, after --warmup untimed ones, and the ratio of medians.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

import kanext
from kanext import reference as ref


def step_fns(N, C, G, k, dtype, seed=0, device="cpu"):
    gen = torch.Generator().manual_seed(seed)
    act = kanext.SplineActivation(C, grid=G, k=k, noise_scale=0.5, generator=gen, dtype=dtype).to(device)
    z = (torch.rand(N, C, generator=gen, dtype=dtype) * 2.4 - 1.2).to(device).requires_grad_()  # some outside the grid
    g = torch.randn(N, C, generator=gen, dtype=dtype).to(device)

    def ours():
        act.coef.grad = act.scale_base.grad = act.scale_sp.grad = z.grad = None
        act(z).backward(g)

    def silu():
        z.grad = None
        torch.nn.functional.silu(z).backward(g)

    return act, z, ours, silu


def check(act, z, rows=2048):
    zs = z.detach()[:rows].double()
    with torch.no_grad():
        got = act(z.detach()[:rows]).double()
        exp = ref.spline_activation(zs, act.grid.double(), act.k, "silu", act.coef.double(),
                                    act.scale_base.double(), act.scale_sp.double())
    err = float((got - exp).abs().max() / exp.abs().max().clamp_min(1))
    if err > 1e-5:
        raise SystemExit(f"SplineActivation disagrees with kanext.reference: rel err {err:.2e}")
    return err


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=65536)
    ap.add_argument("--channels", type=int, default=1024)
    ap.add_argument("--grid", type=int, default=5)
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dry-run", action="store_true", help="check the arguments and exit (no GPU needed)")
    args = ap.parse_args(argv)
    if args.dry_run:
        import kanext  # noqa: F401

        print(f"dry run OK: N={args.batch} C={args.channels} G={args.grid} k={args.k} {args.dtype} "
              f"device={args.device}; nothing timed")
        return None
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    act, z, ours, silu = step_fns(args.batch, args.channels, args.grid, args.k, dtype, device=args.device)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    err = check(act, z)
    # interleave the two sides so that background load hits both alike
    res = {"SplineActivation": [], "silu": []}
    for _ in range(args.warmup):
        ours(), silu()
    for _ in range(args.repeat):
        for name, fn in (("SplineActivation", ours), ("silu", silu)):
            sync()
            t = time.perf_counter()
            fn()
            sync()
            res[name].append(time.perf_counter() - t)
    print(f"N={args.batch} C={args.channels} G={args.grid} k={args.k} {args.dtype} device={args.device} "
          f"threads={args.threads} "
          f"(agreement with reference: rel err {err:.1e})")
    print("| op (forward+backward) | median ms | min ms |")
    print("|---|---:|---:|")
    med = {}
    for name, ts in res.items():
        med[name] = statistics.median(ts)
        print(f"| {name} | {1e3 * med[name]:.1f} | {1e3 * min(ts):.1f} |")
    ratio = med["SplineActivation"] / med["silu"]
    print(f"ratio SplineActivation / silu (medians): {ratio:.2f}x")
    return ratio


if __name__ == "__main__":
    main()
