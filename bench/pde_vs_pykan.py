"""The paper's Poisson problem (examples/pde_poisson.py) in kanext and pykan,
side by side in one process, from the same initial [2, 10, 1] KAN.

    python bench/pde_vs_pykan.py [--points 31] [--steps 20] [--reps 20] [--threads T]

1. One training step: the physics-informed loss (Laplacian by two nested
   torch.autograd.grad calls, interior residual + boundary term) forward and
   backward to the parameters; median of --reps calls each, alternating.
2. Training: --steps L-BFGS steps (torch.optim.LBFGS, strong Wolfe) at G=5 on
   the same points from the same initial function (pykan's KAN(seed=0),
   converted with kanext.from_pykan), then the L2 and H1 errors against the
   exact solution on a 101 x 101 mesh and the wall time of each.

float64 on the CPU; pykan runs with save_act and the symbolic branch off
(its model.speed()), its fastest mode.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

import kanext

import harness

_spec = importlib.util.spec_from_file_location(
    "pde_poisson", Path(__file__).resolve().parents[1] / "examples" / "pde_poisson.py")
pde = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pde)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--points", type=int, default=31, help="points**2 random interior points, points per boundary side")
    p.add_argument("--steps", type=int, default=20, help="L-BFGS steps of the training comparison")
    p.add_argument("--reps", type=int, default=20, help="timed calls of one training step")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    kan = harness.pykan_setup(args.threads)
    dtype = torch.float64
    x_in = torch.rand(args.points ** 2, 2, generator=torch.Generator().manual_seed(0), dtype=dtype) * 2 - 1
    x_bd = pde.boundary(args.points, dtype)
    f_in = pde.source(x_in)
    x_test = pde.mesh(101, dtype)
    cwd = os.getcwd()
    os.chdir(tempfile.mkdtemp())  # pykan may write checkpoints into its cwd
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            pk = kan.KAN(width=[2, 10, 1], grid=5, k=3, seed=0, auto_save=False)
        ours = kanext.from_pykan(pk)
        with contextlib.redirect_stdout(io.StringIO()):
            pk.speed()

        def step(model):
            model.zero_grad(set_to_none=True)
            loss, _, _ = pde.pinn_loss(model, x_in, x_bd, f_in, 0.01)
            loss.backward()
            return loss.detach().item()

        l_pk, l_ours = step(pk), step(ours)  # same function: same loss
        times = {"pykan": [], "kanext": []}
        for _ in range(args.reps):
            for name, m in (("pykan", pk), ("kanext", ours)):
                t0 = time.perf_counter()
                step(m)
                times[name].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) for k, v in times.items()}

        rows = {}
        for name, m in (("pykan", pk), ("kanext", ours)):
            t0 = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                last = pde.train(m, args.steps, x_in, x_bd, f_in, 0.01)
            rows[name] = (time.perf_counter() - t0, last["pde"], last["bc"], *pde.errors(m, x_test))
    finally:
        os.chdir(cwd)
    print(f"Poisson, [2,10,1] G=5 k=3, {len(x_in)} interior + {len(x_bd)} boundary points, float64, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"initial loss: pykan {l_pk:.10e}, kanext {l_ours:.10e}")
    print(f"one step (Laplacian loss forward + backward), median of {args.reps}: pykan {med['pykan'] * 1e3:.1f} ms, "
          f"kanext {med['kanext'] * 1e3:.1f} ms, speed-up {med['pykan'] / med['kanext']:.1f}x")
    print(f"{args.steps} L-BFGS steps:")
    print(f"{'impl':8s} {'time s':>8s} {'pde loss':>10s} {'bc loss':>10s} {'L2 err':>10s} {'H1 err':>10s}")
    for k, (t, a, b, l2, h1) in rows.items():
        print(f"{k:8s} {t:8.2f} {a:10.3e} {b:10.3e} {l2:10.3e} {h1:10.3e}")
    return med, rows


if __name__ == "__main__":
    main()
