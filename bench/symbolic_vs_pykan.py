#!/usr/bin/env python
"""auto_symbolic on the same trained [5,5,1] KAN (30 edges, full library) in
pykan and in kanext, timed in one process.

    python bench/symbolic_vs_pykan.py [--points 1000] [--steps 10] [--repeat 3] [--pykan-repeat 1]
                                      [--pykan-edges E]

A pykan KAN([5,5,1], grid=5, seed=0) is trained briefly (LBFGS, --steps) on
f(x) = exp(sin(pi x1) + x2^2) + x3 x4 + tanh(x5) (--points train points,
pykan's create_dataset, seed 0), then converted with kanext.from_pykan, so
both libraries hold the same tensors and record the same layer inputs. Each
then runs auto_symbolic(lib=None) (every library function on every edge) from
an unfixed copy. pykan's time is taken --pykan-repeat times (it is slow), ours
--repeat times; medians of wall time and of process CPU time are reported (CPU time
is less disturbed by other jobs on a shared machine), with the ratios, the number of edges on
which the two chose the same function, and the test RMSE of each converted
model (before any retraining).
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import io
import os
import tempfile
import time

import torch

import kanext

import harness


def target(x):
    return torch.exp(torch.sin(torch.pi * x[:, :1]) + x[:, 1:2] ** 2) + x[:, 2:3] * x[:, 3:4] + torch.tanh(x[:, 4:5])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--points", type=int, default=1000)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeat", type=int, default=3, help="runs of kanext's auto_symbolic (median reported)")
    p.add_argument("--pykan-repeat", type=int, default=1, help="runs of pykan's auto_symbolic (median reported); 0 times kanext only")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--pykan-edges", type=int, default=0,
                   help="also time pykan's suggest_symbolic (full library) on this many edges and print "
                        "the per-edge time x 30 as an estimate of its auto_symbolic (a lower bound: "
                        "auto_symbolic also refits the chosen function)")
    args = p.parse_args(argv)
    kan = harness.pykan_setup(args.threads)
    ds = kanext.create_dataset(target, n_var=5, train_num=args.points, test_num=1000, seed=0, dtype=torch.float64)
    cwd = os.getcwd()
    os.chdir(tempfile.mkdtemp())  # pykan may write into its cwd
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            pk = kan.KAN(width=[5, 5, 1], grid=5, k=3, seed=0, auto_save=False)
            pk.fit(ds, opt="LBFGS", steps=args.steps)
        with torch.no_grad():
            pk(ds["train_input"])  # records pykan's acts on the train inputs (as plain tensors: deepcopy-able)
        ours0 = kanext.from_pykan(pk)
        ours0.save_act = True
        ours0(ds["train_input"])
        ours0.save_act = False

        if args.pykan_edges:
            edges = [(l, i, j) for l, (n_in, n_out) in enumerate([(5, 5), (5, 1)])
                     for i in range(n_in) for j in range(n_out)][: args.pykan_edges]
            m = copy.deepcopy(pk)
            t0 = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                for l, i, j in edges:
                    m.suggest_symbolic(l, i, j, lib=None, verbose=False)
            per_edge = (time.perf_counter() - t0) / len(edges)
            print(f"pykan suggest_symbolic, full library: {per_edge:.2f} s per edge over {len(edges)} edges; "
                  f"x 30 edges = {30 * per_edge:.1f} s (estimate, lower bound of its auto_symbolic)")
        t_pk, c_pk, pk_done = [], [], None
        for _ in range(args.pykan_repeat):
            m = copy.deepcopy(pk)
            t0, c0 = time.perf_counter(), time.process_time()
            with contextlib.redirect_stdout(io.StringIO()):
                m.auto_symbolic(lib=None, verbose=0)
            t_pk.append(time.perf_counter() - t0)
            c_pk.append(time.process_time() - c0)
            pk_done = m
        t_ours, c_ours, ours = [], [], None
        for _ in range(args.repeat):
            m = copy.deepcopy(ours0)
            t0, c0 = time.perf_counter(), time.process_time()
            m.auto_symbolic(lib=None, verbose=0)
            t_ours.append(time.perf_counter() - t0)
            c_ours.append(time.process_time() - c0)
            ours = m
    finally:
        os.chdir(cwd)

    med = lambda v: sorted(v)[len(v) // 2]  # noqa: E731
    if pk_done is None:  # --pykan-repeat 0: kanext's timings only
        print(f"kanext auto_symbolic, [5,5,1], full library, {args.points} points, {torch.get_num_threads()} threads: "
              f"median {med(t_ours):.2f} s wall, {med(c_ours):.2f} s CPU; runs {[round(v, 3) for v in t_ours]}")
        return None, med(t_ours)
    same = sum(
        pk_done.symbolic_fun[l].funs_name[j][i] == ours.symbolic_fun[l].funs_name[j][i]
        for l, w in enumerate([(5, 5), (5, 1)]) for i in range(w[0]) for j in range(w[1])
    )
    x, y = ds["test_input"], ds["test_label"]
    with torch.no_grad():
        rmse_pk = torch.sqrt(torch.mean((pk_done(x) - y) ** 2)).item()
        rmse_ours = torch.sqrt(torch.mean((ours(x) - y) ** 2)).item()
    print(f"auto_symbolic, [5,5,1] (30 edges), full library ({len(kanext.symbolic.SYMBOLIC_LIB)} functions), "
          f"{args.points} points, float64, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"{'impl':8s} {'wall s':>8s} {'cpu s':>8s} {'runs':>5s} {'test RMSE after':>16s}")
    print(f"{'pykan':8s} {med(t_pk):8.2f} {med(c_pk):8.2f} {len(t_pk):5d} {rmse_pk:16.3e}")
    print(f"{'kanext':8s} {med(t_ours):8.2f} {med(c_ours):8.2f} {len(t_ours):5d} {rmse_ours:16.3e}")
    print(f"kanext wall times: {[round(v, 3) for v in t_ours]}")
    print(f"same function chosen on {same}/30 edges")
    print(f"speed-up of kanext over pykan: {med(t_pk) / med(t_ours):.1f}x wall, {med(c_pk) / med(c_ours):.1f}x cpu time")
    return med(t_pk), med(t_ours)


if __name__ == "__main__":
    main()
