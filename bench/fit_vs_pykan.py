#!/usr/bin/env python
"""One grid stage of the paper's grid-extension experiment, timed in kanext
and in pykan, in one process, from the same initial model and data.

    python bench/fit_vs_pykan.py [--width 2,5,1] [--grid 5] [--steps 200] [--repeat 1]

f(x, y) = exp(sin(pi x) + y^2), 1000 train / 1000 test points (pykan's
create_dataset, seed 0), float64 on the CPU. pykan's KAN(seed=0) is built
first and converted with kanext.from_pykan, so both fits start from the same
function; both run fit(opt='LBFGS', steps) with pykan's defaults (grid
updates every 5 steps until step 50). Prints wall times, the ratio, and the
final train/test RMSE of each (they should be close, not identical: the two
L-BFGS implementations differ in rounding and line-search details).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import tempfile
import time

import torch

import kanext

import harness


def target(x):
    return torch.exp(torch.sin(torch.pi * x[:, :1]) + x[:, 1:] ** 2)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--width", default="2,5,1")
    p.add_argument("--grid", type=int, default=5)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--repeat", type=int, default=1, help="runs of each fit (the median time is reported)")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    kan = harness.pykan_setup(args.threads)
    width = [int(v) for v in args.width.split(",")]
    dataset = kanext.create_dataset(target, n_var=2, train_num=1000, test_num=1000, seed=0, dtype=torch.float64)
    cwd = os.getcwd()
    os.chdir(tempfile.mkdtemp())  # pykan may write checkpoints into its cwd
    try:
        times = {"pykan": [], "kanext": []}
        cpu = {"pykan": [], "kanext": []}
        final = {}
        for _ in range(args.repeat):
            with contextlib.redirect_stdout(io.StringIO()):
                pk = kan.KAN(width=list(width), grid=args.grid, k=3, seed=0, auto_save=False)
            ours = kanext.from_pykan(pk)
            t0, c0 = time.perf_counter(), time.process_time()
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                r_pk = pk.fit(dataset, opt="LBFGS", steps=args.steps)
            times["pykan"].append(time.perf_counter() - t0)
            cpu["pykan"].append(time.process_time() - c0)
            t0, c0 = time.perf_counter(), time.process_time()
            r_ours = ours.fit(dataset, opt="LBFGS", steps=args.steps, progress=False)
            times["kanext"].append(time.perf_counter() - t0)
            cpu["kanext"].append(time.process_time() - c0)
            final = {"pykan": (float(r_pk["train_loss"][-1]), float(r_pk["test_loss"][-1])),
                     "kanext": (r_ours["train_loss"][-1], r_ours["test_loss"][-1])}
    finally:
        os.chdir(cwd)
    med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    med_cpu = {k: sorted(v)[len(v) // 2] for k, v in cpu.items()}
    print(f"fit, {width}, G={args.grid}, {args.steps} LBFGS steps, 1000 points, float64, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"{'impl':8s} {'time s':>8s} {'cpu s':>8s} {'train RMSE':>11s} {'test RMSE':>11s}")
    for k in ("pykan", "kanext"):
        print(f"{k:8s} {med[k]:8.2f} {med_cpu[k]:8.2f} {final[k][0]:11.3e} {final[k][1]:11.3e}")
    print(f"speed-up of kanext over pykan: {med['pykan'] / med['kanext']:.1f}x wall time, "
          f"{med_cpu['pykan'] / med_cpu['kanext']:.1f}x CPU time (process CPU seconds, all threads; with "
          f"--threads 1 it is the fair figure on a busy machine)")
    return med, final


if __name__ == "__main__":
    main()
