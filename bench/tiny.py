#!/usr/bin/env python
"""Per-call overhead of the paper's tiny KANs, and L-BFGS loss evaluations per step.

    python bench/tiny.py [--threads 2] [--n 1000,100] [--dtype float32,float64]
                         [--width 2,5,1 --width 4,3,3,1] [--repeat 7] [--calls 200]
                         [--profile] [--floor] [--breakdown] [--lbfgs-steps 50] [--lbfgs-case continual] [--no-lbfgs]
                         [--no-time]

1. Timing. For each width, N and dtype: a KAN(width, grid=5, k=3, seed=0)
   and uniform inputs in [-1, 1]; one call is what fit's closure does:
   zero the gradients (set to None), forward, fit's default loss
   (kanext.training.mean_squared_error), backward (as fit calls it, kanext.training._backward).
   Each of --repeat samples times --calls calls with time.perf_counter;
   the median sample, divided by --calls, is printed in microseconds (min in
   brackets). The machine this was written on has 2 cores shared with other
   jobs: compare builds by running them alternately (the figures move by
   10-20% with the load) and read the min as well as the median; the
   process CPU time per call (all threads) is printed too. --floor adds the
   same computation from the raw torch.ops.kanext ops without module code:
   the cost of the ops and autograd alone. --breakdown prints, per
   configuration, this thread's CPU time (lowest sample) of the call's parts:
   the forward, forward + loss, the backward alone, each layer's raw fused
   forward and backward op, their sum ('ops') and the rest (autograd, the
   loss, allocation, module code). Thread CPU time moves less with the load
   than wall time; compare builds alternately all the same.

2. --profile: a cProfile of the calls of the first configuration, the top
   25 functions by own time, to see where the Python time goes.

3. L-BFGS: pykan's KAN(width, grid=5, k=3, seed=0) in float64 and
   kanext.from_pykan of it (the same initial model) fit the same data
   (f = exp(sin(pi x1) + x2^2) for two inputs; exp((sin(pi (x1^2 + x2^2)) +
   sin(pi (x3^2 + x4^2))) / 2) for four) with fit(opt='LBFGS',
   steps=--lbfgs-steps, update_grid=False). Both optimisers' step() is
   wrapped to count closure calls; printed per step, with each side's final
   train RMSE. Then the same for examples/paper/continual_learning.py's
   KAN ([1, 1], G=200, base 'zero', frozen scales; five phases of 100
   points, --lbfgs-steps each). Needs pykan (skipped when it is missing).
"""
from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import statistics
import sys
import tempfile
import time

import torch

import kanext
import kanext.training

# fit's default loss; builds before it was kanext.training.mean_squared_error computed pykan's form (each build is timed
# with the loss its own fit uses)
mse = getattr(kanext.training, "mean_squared_error", None) or (lambda pred, y: torch.mean((pred - y) ** 2))
# and the way fit's closure calls the backward (builds before kanext.training._backward: loss.backward())
backward = getattr(kanext.training, "_backward", None) or (lambda loss: loss.backward())


def _widths(values):
    return [[int(v) for v in w.split(",")] for w in values] if values else [[2, 5, 1], [4, 3, 3, 1]]


def make_problem(width, n, dtype):
    model = kanext.KAN(width, grid=5, k=3, seed=0, dtype=dtype)
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(n, width[0], generator=g, dtype=torch.float64) * 2 - 1).to(dtype)
    y = torch.rand(n, width[-1], generator=g, dtype=torch.float64).to(dtype)
    return model, x, y


def make_call(model, x, y):
    params = [p for p in model.parameters() if p.requires_grad]

    def call():
        for p in params:  # what fit's optimizer.zero_grad() does
            p.grad = None
        pred = model(x)
        loss = mse(pred, y)
        backward(loss)
        return loss

    return call


def make_floor_call(model, x, y):
    """The same computation as make_call's, from the raw ops with no module code around them: each layer
    is torch.ops.kanext.kan_linear_fused (KANLinear's CPU path; default affines and masks are identities,
    so they are skipped). What is left is the cost of the ops and autograd: the floor for kan.py."""
    params = [p for p in model.parameters() if p.requires_grad]
    layers = [(layer.coef, layer.scale_base, layer.scale_sp, layer.grid, layer.k, kanext.ops.BASE_IDS[layer.base_fun])
              for layer in model.act_fun]
    fused = torch.ops.kanext.kan_linear_fused

    def call():
        for p in params:
            p.grad = None
        h = x
        for coef, sb, sp, grid, k, base in layers:
            h = fused(h, grid, k, base, sb, coef, sp, 0)
        loss = mse(h, y)
        backward(loss)
        return loss

    return call


def _thread_us(fn, repeat, calls):
    """Lowest of `repeat` samples of this thread's CPU time per call of fn, in us (one thread: the ops
    and the autograd engine's CPU work run on the calling thread)."""
    for _ in range(max(10, calls // 10)):
        fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.thread_time_ns()
        for _ in range(calls):
            fn()
        best = min(best, (time.thread_time_ns() - t0) / calls / 1e3)
    return best


def breakdown(model, x, y, repeat, calls):
    """Where a call's time goes, as this thread's CPU time per call (lowest sample): the whole call; the
    model's forward (graph built); forward + loss; the backward alone (on a retained graph, gradients
    set to None first); and each layer's raw kan_linear_fused forward and backward ops on the layer's
    actual input, the backward asked for the gradients autograd asks for (grad x for every layer but the
    first). 'ops' sums the raw ops; 'rest' = call - ops is autograd, the loss, tensor allocation and
    freeing, and module code."""
    torch_ops = torch.ops.kanext
    params = [p for p in model.parameters() if p.requires_grad]
    out = {"call": _thread_us(make_call(model, x, y), repeat, calls),
           "forward": _thread_us(lambda: model(x), repeat, calls),
           "forward+loss": _thread_us(lambda: mse(model(x), y), repeat, calls)}
    loss = mse(model(x), y)

    def backward():
        for p in params:
            p.grad = None
        loss.backward(retain_graph=True)

    out["backward"] = _thread_us(backward, repeat, calls)
    ops = 0.0
    with torch.no_grad():
        h = x
        for li, layer in enumerate(model.act_fun):
            a = (h, layer.grid, layer.k, kanext.ops.BASE_IDS[layer.base_fun], layer.scale_base, layer.coef,
                 layer.scale_sp)
            gy = torch.randn(h.shape[0], layer.out_features, dtype=h.dtype)
            f = _thread_us(lambda: torch_ops.kan_linear_fused(*a, 0), repeat, calls)
            b = _thread_us(lambda: torch_ops.kan_linear_fused_backward(gy, *a, li > 0, True, 0), repeat, calls)
            out[f"layer {li} op fwd"], out[f"layer {li} op bwd"] = f, b
            ops += f + b
            h = model.layer_forward(li, h)
    out["ops"], out["rest"] = ops, out["call"] - ops
    return out


def time_call(call, repeat, calls):
    """(median, min) of the wall-clock samples and the median process-CPU sample, in us per call. On a
    loaded machine the CPU time (all threads of this process) is the steadier figure."""
    for _ in range(max(10, calls // 10)):
        call()
    samples, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(calls):
            call()
        samples.append((time.perf_counter() - t0) / calls * 1e6)
        cpu.append((time.process_time() - c0) / calls * 1e6)
    return statistics.median(samples), min(samples), statistics.median(cpu)


def profile_call(call, calls):
    for _ in range(20):
        call()
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        call()
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(25)
    print(out.getvalue())


# ------------------------------------------------------------------ L-BFGS evaluations
def _target(n_in):
    if n_in == 2:
        return lambda x: torch.exp(torch.sin(torch.pi * x[:, :1]) + x[:, 1:2] ** 2)
    return lambda x: torch.exp((torch.sin(torch.pi * (x[:, :1] ** 2 + x[:, 1:2] ** 2))
                                + torch.sin(torch.pi * (x[:, 2:3] ** 2 + x[:, 3:4] ** 2))) / 2)


def _counting(cls, counter):
    """A subclass of the optimiser class cls whose step() counts its closure calls into counter."""

    class Counting(cls):
        def step(self, closure):
            def counted():
                counter["calls"] += 1
                return closure()

            counter["steps"] += 1
            return super().step(counted)

    return Counting


def _continual_data(n_per_peak=100):
    """examples/paper/continual_learning.py's five phases: (x, y) of each Gaussian peak's region."""
    centers = [0.4 * (i - 2) for i in range(5)]
    xs = [torch.linspace(c - 0.2, c + 0.2, n_per_peak, dtype=torch.float64)[:, None] for c in centers]
    return [(x, sum(torch.exp(-300.0 * (x - c) ** 2) for c in centers)) for x in xs]


def lbfgs_counts(case, steps):
    """case: a width list (the function-fitting problem above) or 'continual' (the continual-learning
    KAN [1,1], G=200, base 'zero', frozen scales, five phases of 100 points, steps per phase)."""
    try:
        import kan
        pk_multkan = sys.modules["kan.MultKAN"]  # the module (kan.MultKAN is also the class's name)
    except ImportError:
        print("L-BFGS counts: pykan is not installed; skipped")
        return None
    import kanext.training as kx_training

    old_dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # pykan builds in the default dtype
    cwd = os.getcwd()
    os.chdir(tempfile.mkdtemp())  # pykan may write into its cwd
    counts = {"pykan": {"calls": 0, "steps": 0}, "kanext": {"calls": 0, "steps": 0}}
    old_pk, old_kx = pk_multkan.LBFGS, kx_training.LBFGS
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            if case == "continual":
                pk = kan.KAN(width=[1, 1], grid=200, k=3, base_fun="zero", noise_scale=0.1, sp_trainable=False,
                             sb_trainable=False, seed=0, auto_save=False)
                phases = [{"train_input": x, "train_label": y, "test_input": x, "test_label": y}
                          for x, y in _continual_data()]
                title = "continual learning: [1, 1], G=200, 5 phases x 100 points"
            else:
                pk = kan.KAN(width=list(case), grid=5, k=3, seed=0, auto_save=False)
                phases = [kanext.create_dataset(_target(case[0]), n_var=case[0], train_num=1000, test_num=1000,
                                                seed=0, dtype=torch.float64)]
                title = f"{case}, G=5, 1000 points"
        ours = kanext.from_pykan(pk)
        pk_multkan.LBFGS = _counting(old_pk, counts["pykan"])
        kx_training.LBFGS = _counting(old_kx, counts["kanext"])
        t_pk = t_kx = 0.0
        for ds in phases:
            t0 = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                r_pk = pk.fit(ds, opt="LBFGS", steps=steps, update_grid=False)
            t_pk += time.perf_counter() - t0
            t0 = time.perf_counter()
            r_kx = ours.fit(ds, opt="LBFGS", steps=steps, update_grid=False, progress=False)
            t_kx += time.perf_counter() - t0
    finally:
        pk_multkan.LBFGS, kx_training.LBFGS = old_pk, old_kx
        os.chdir(cwd)
        torch.set_default_dtype(old_dtype)
    res = {"pykan": (counts["pykan"], float(r_pk["train_loss"][-1]), t_pk),
           "kanext": (counts["kanext"], r_kx["train_loss"][-1], t_kx)}
    print(f"L-BFGS, {title}, {steps} steps per fit, float64, no grid update:")
    for name, (c, rmse, secs) in res.items():
        print(f"  {name:7s} {c['calls']:6d} closure calls = {c['calls'] / max(c['steps'], 1):5.1f} per step, "
              f"final train RMSE {rmse:.3e}, {secs:.2f} s")
    return res


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--width", action="append", help="comma-separated widths; repeatable (default 2,5,1 and 4,3,3,1)")
    p.add_argument("--n", default="1000,100", help="batch sizes, comma-separated")
    p.add_argument("--dtype", default="float32,float64")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--repeat", type=int, default=7, help="timed samples per configuration (median reported)")
    p.add_argument("--calls", type=int, default=200, help="calls per sample")
    p.add_argument("--profile", action="store_true", help="cProfile the first configuration")
    p.add_argument("--floor", action="store_true",
                   help="also time the same computation from the raw ops without module code (kan.py's floor)")
    p.add_argument("--breakdown", action="store_true",
                   help="per configuration: thread CPU time of the call's parts (forward, loss, backward, raw ops)")
    p.add_argument("--lbfgs-steps", type=int, default=50)
    p.add_argument("--lbfgs-case", action="append",
                   help="'continual' or comma-separated widths; repeatable (default: the --width list and continual)")
    p.add_argument("--no-lbfgs", action="store_true")
    p.add_argument("--no-time", action="store_true")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    widths = _widths(args.width)
    ns = [int(v) for v in args.n.split(",")]
    dtypes = [getattr(torch, d) for d in args.dtype.split(",")]
    print(f"kanext at {os.path.dirname(kanext.__file__)}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.2f}")
    results = {}
    if args.profile:
        model, x, y = make_problem(widths[0], ns[0], dtypes[0])
        print(f"cProfile: {widths[0]}, N={ns[0]}, {dtypes[0]}, {args.calls} calls")
        profile_call(make_call(model, x, y), args.calls)
    if not args.no_time:
        head = f"{'width':14s} {'N':>5s} {'dtype':8s} {'us/call median [min]':>22s} {'cpu us':>8s}"
        print(head + (f" {'floor us [min]':>16s} {'cpu us':>8s}" if args.floor else ""))
        for width in widths:
            for n in ns:
                for dt in dtypes:
                    model, x, y = make_problem(width, n, dt)
                    med, mn, cpu = time_call(make_call(model, x, y), args.repeat, args.calls)
                    results[(tuple(width), n, str(dt))] = (med, mn, cpu)
                    line = f"{str(width):14s} {n:5d} {str(dt).replace('torch.', ''):8s} {med:12.1f} [{mn:7.1f}] {cpu:8.1f}"
                    if args.floor:
                        fmed, fmn, fcpu = time_call(make_floor_call(model, x, y), args.repeat, args.calls)
                        line += f" {fmed:7.1f} [{fmn:6.1f}] {fcpu:8.1f}"
                    print(line)
                    if args.breakdown:
                        parts = breakdown(model, x, y, args.repeat, args.calls)
                        print("    thread CPU us: " + ", ".join(f"{k} {v:.1f}" for k, v in parts.items()))
                    sys.stdout.flush()
    if not args.no_lbfgs:
        cases = [c if c == "continual" else _widths([c])[0] for c in args.lbfgs_case] if args.lbfgs_case \
            else widths + ["continual"]
        for case in cases:
            lbfgs_counts(case, args.lbfgs_steps)
    return results


if __name__ == "__main__":
    main()
