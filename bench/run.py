#!/usr/bin/env python
"""Benchmark one KAN layer: kanext against its pure-PyTorch reference and
the installed peers (pykan, inkan, flashkan), in one process.

    python bench/run.py --batch 1024 --in 256 --out 256 --grid 5 --k 3 \
        [--dtype float32] [--device cpu] [--repeat 20] [--threads T] \
        [--json out.json] [--peers pykan,inkan,flashkan,reference] [--skip-slow]
        [--wait-quiet S]

1. Agreement. Every implementation gets the same seeded pykan-style
   parameters (see harness.py for how each peer's weights are mapped) and the
   same input, uniform on the grid range. kanext.KANLinear (forward, and the
   gradients of x, coef, scale_base, scale_sp) and kanext.ops.kan_linear
   (forward, gradients of x, Wb, Wc) are compared with kanext.reference; if
   either disagrees by more than the dtype's tolerance (max abs error / max
   abs value: 2e-5 float32, 1e-10 float64) the script stops with exit
   status 1 before timing anything. Mapped peers are compared on the forward
   only and a disagreement is reported, not fatal. pykan is checked on the
   first 256 rows only.

2. Timing, per implementation, with warmup (this also triggers the
   torch.compile of inkan/flashkan), then the median of --repeat samples
   (time.perf_counter; torch.cuda.synchronize on CUDA; each sample repeats the
   call until it lasts >= 20 ms; a per-workload time budget stops slow
   implementations after 3 samples):
     fwd        forward with autograd recording, as in training
     fwd_nograd forward under torch.no_grad (inference)
     fwd+bwd    grads set to None, forward, y.sum().backward() into all
                parameters (x does not require grad)
   The ratio column is time(impl) / time(kanext) for fwd+bwd (> 1: kanext
   faster); the JSON holds the ratios of every workload.

3. Peak extra memory: the largest amount of tensor memory live at any moment
   during one call, beyond what existed before it (parameters, their old
   gradients are dropped first, x). For fwd this includes the autograd graph's
   saved tensors and y; for fwd+bwd also the parameter gradients.
   CUDA: torch.cuda.max_memory_allocated() minus memory_allocated() before.
   CPU: the call runs under torch.profiler(profile_memory=True), which logs
   every allocation and free made through PyTorch's CPU allocator, in every
   thread (including at::empty/zeros inside the C++ kernels and buffers of
   inductor-generated code); the running sum of the logged sizes, in time
   order, is maximised. Memory a kernel takes from malloc/new or its stack
   directly is invisible to this method.

CPU timings are only meaningful on an otherwise idle machine: the header
shows how busy the CPUs were before the start (--wait-quiet S waits up to S
seconds for them to be idle), each timing line shows the share of CPU time
other processes took meanwhile, and rows above 10% are flagged.

pykan materialises several (N, in, out) tensors; it is skipped automatically
when N*in*out > --pykan-max-elems (default 2**27) or its estimated footprint
exceeds half the free memory, and always with --skip-slow.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

DTYPES = {"float32": torch.float32, "float64": torch.float64}
WORKLOADS = ("fwd", "fwd_nograd", "fwd_bwd")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--in", dest="inp", type=int, default=256)
    ap.add_argument("--out", type=int, default=256)
    ap.add_argument("--grid", type=int, default=5, help="number of grid intervals G")
    ap.add_argument("--k", type=int, default=3, help="spline order")
    ap.add_argument("--grid-range", type=float, nargs=2, default=(-1.0, 1.0))
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", choices=H.PRECISIONS, default="strict",
                    help="float32 numerics: strict, tf32 (TF32 matmuls allowed, as "
                         "torch.backends.cuda.matmul.allow_tf32), bf16 / fp16 (every implementation "
                         "under torch.autocast in that dtype)")
    ap.add_argument("--backend", choices=("auto", "local", "tensor_core", "local_v2", "tensor_core_v2"), default="auto",
                    help="kanext.set_backend for the CUDA kernels")
    ap.add_argument("--repeat", type=int, default=20, help="timed samples per workload (median reported)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--budget", type=float, default=8.0,
                    help="seconds per workload after which sampling stops (min 3 samples)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--json", default=None, help="write results to this path")
    ap.add_argument("--peers", default="pykan,inkan,flashkan,reference,gemm",
                    help="comma list from: pykan, inkan, flashkan, reference, gemm (dense-basis GEMM), "
                         "gemm_local (local-support GEMM) (kanext and kanext.ops always run)")
    ap.add_argument("--no-ops", action="store_true", help="do not time kanext.ops on folded weights")
    ap.add_argument("--skip-slow", action="store_true", help="skip pykan")
    ap.add_argument("--pykan-max-elems", type=float, default=2 ** 27)
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dry-run", action="store_true",
                    help="check the arguments and which peers import, then exit without timing (no GPU needed)")
    ap.add_argument("--wait-quiet", type=float, default=0.0, metavar="S",
                    help="before starting, wait up to S seconds for the CPUs to be < 10%% busy")
    return ap.parse_args(argv)


def fmt_ms(s):
    return "-" if s is None else f"{1e3 * s:.2f}"


def fmt_mib(b):
    return "-" if b is None else f"{b / 2**20:.1f}"


def fmt_ratio(r):
    return "-" if r is None else f"{r:.2f}x"


def _dry_run(p, a, peers) -> int:
    """--dry-run: the arguments are valid and kanext imports; say which peers would run."""
    import importlib.util

    print(f"# dry run: {p.describe()} backend={a.backend}")
    for s in peers:
        mod = {"pykan": "kan"}.get(s, s)
        there = s in ("reference", "gemm", "gemm_local") or importlib.util.find_spec(mod) is not None
        print(f"#   {s:<10} {'importable' if there else 'not installed (would be skipped)'}")
    print("# dry run OK: nothing timed")
    return 0


def main(argv=None) -> int:
    a = parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    p = H.Problem(batch=a.batch, inp=a.inp, out=a.out, grid=a.grid, k=a.k, grid_range=tuple(a.grid_range),
                  dtype=DTYPES[a.dtype], device=a.device, seed=a.seed, precision=a.precision)
    if p.precision != "strict" and p.dtype != torch.float32:
        print("error: --precision other than strict needs --dtype float32", file=sys.stderr)
        return 2
    peers = [s.strip() for s in a.peers.split(",") if s.strip()]
    for s in peers:
        if s not in H.PEERS:
            print(f"error: unknown peer {s!r}; choose from {', '.join(H.PEERS)}", file=sys.stderr)
            return 2
    import kanext

    kanext.set_backend(a.backend)
    if a.dry_run:
        return _dry_run(p, a, peers)
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        print("error: CUDA requested but not available", file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = p.precision == "tf32"
    torch.backends.cudnn.allow_tf32 = p.precision == "tf32"
    # pykan last: it takes most of the time, the fast rows should share one quiet window
    peers = sorted(peers, key=lambda s: s == "pykan")
    names = ["kanext"] + ([] if a.no_ops else ["kanext.ops"]) + peers

    print(f"# kanext layer benchmark: {p.describe()} backend={a.backend} threads={torch.get_num_threads()}")
    print(f"# torch {torch.__version__}, python {platform.python_version()}, {H.cpu_name()}"
          + (f", {torch.cuda.get_device_name()}" if a.device.startswith("cuda") else ""))
    busy = H.wait_quiet(a.wait_quiet)
    H.print_cpu_busy(busy, a.device)
    notes, impls = [], {}
    P = H.master_params(p)
    x = H.make_input(p)
    for name in names:
        if name == "pykan":
            why = "--skip-slow" if a.skip_slow else H.pykan_too_big(p, int(a.pykan_max_elems))
            if why:
                notes.append(f"pykan skipped: {why}")
                continue
        try:
            impls[name] = H.BUILDERS[name](p, P)
        except H.Unavailable as e:
            notes.append(f"{name} skipped: {e}")
        except Exception as e:  # a broken peer must not stop the others
            if name in H.OWN:
                raise
            notes.append(f"{name} skipped: {type(e).__name__}: {e}")
    for n in notes:
        print("# note:", n)
    if p.precision in ("bf16", "fp16"):
        for impl in impls.values():
            impl.forward = _under(p.autocast, impl.forward)
    base_name = "kanext" if "kanext" in impls else ("kanext.ops" if "kanext.ops" in impls else None)
    if base_name is None:
        print("error: neither kanext.KANLinear nor kanext.ops is usable", file=sys.stderr)
        return 1
    if base_name != "kanext":
        print("# note: ratios are relative to kanext.ops (kanext.KANLinear unavailable)")

    # ---------------------------------------------------------- agreement
    print("\n## agreement with kanext.reference (max |err| / max |ref|)")
    agreement, fatal = {}, False
    for name, impl in impls.items():
        if name == "reference":
            continue
        if not impl.mapped:
            agreement[name] = None
            print(f"  {name:<11} not compared: {impl.note}")
            continue
        try:
            if name in H.OWN:
                res = H.check_own(impl, p, P, x)
            else:
                xs = x[:256] if name == "pykan" else x
                res = H.check_peer(impl, p, P, xs)
        except Exception as e:
            if name in H.OWN:
                raise
            res = {"errors": {}, "tol": None, "ok": False, "exception": f"{type(e).__name__}: {e}"}
        agreement[name] = res
        errs = "  ".join(f"{k}={v:.2e}" for k, v in res["errors"].items()) or res.get("exception", "")
        flag = "ok" if res["ok"] else ("FAIL" if name in H.OWN else "MISMATCH")
        print(f"  {name:<11} {flag:<8} {errs}  (tol {res['tol']:.0e})" if res["tol"] else f"  {name:<11} {flag} {errs}")
        if not res["ok"] and name in H.OWN:
            fatal = True
    if fatal:
        print("\nFATAL: kanext disagrees with kanext.reference; not benchmarking a wrong kernel.", file=sys.stderr)
        return 1
    for name, res in agreement.items():
        if res is not None and not res["ok"]:
            print(f"# WARNING: {name} does not compute the same layer as the reference (see above); "
                  "its timings are still reported")

    # ------------------------------------------------------------- timing
    print("\n## timing (median ms per call) and peak extra memory (MiB)", flush=True)
    results = {}
    for name, impl in impls.items():
        monitor = H.OtherCpuUse().start()
        fns = H.step_fns(impl, x)
        row = {"note": impl.note, "version": impl.version, "mapped": impl.mapped}
        t_start = time.perf_counter()
        for w in WORKLOADS:
            warm = 1 if name == "pykan" else a.warmup
            row[w] = H.time_fn(fns[w], p.device, a.repeat, warm, a.budget)
        for q in impl.params:
            q.grad = None
        row["time_wall_s"] = time.perf_counter() - t_start
        row["other_cpu_use"] = monitor.stop()
        results[name] = row
        other = row["other_cpu_use"]
        print(f"  {name:<11} timed in {row['time_wall_s']:.1f}s"
              + ("" if other is None else f"; other processes used {100 * other:.0f}% of the CPUs meanwhile"),
              flush=True)
    # memory last: a profiler session must not disturb any timing
    if not a.no_memory:
        for name, impl in impls.items():
            row, fns = results[name], H.step_fns(impl, x)
            for w in ("fwd", "fwd_bwd"):
                try:
                    for q in impl.params:
                        q.grad = None
                    row["peak_" + w] = H.peak_extra_bytes(fns[w], p.device)
                except Exception as e:
                    row["peak_" + w] = None
                    row.setdefault("memory_error", f"{type(e).__name__}: {e}")
            for q in impl.params:
                q.grad = None

    base = results[base_name]
    for name, row in results.items():
        row["ratio"] = {w: row[w]["median_s"] / base[w]["median_s"] for w in WORKLOADS}

    hdr = ("impl", "fwd ms", "fwd nograd ms", "fwd+bwd ms", "ratio fwd", "ratio fwd+bwd",
           "peak fwd MiB", "peak fwd+bwd MiB")
    rows = []
    for name, r in results.items():
        rows.append((name, fmt_ms(r["fwd"]["median_s"]), fmt_ms(r["fwd_nograd"]["median_s"]),
                     fmt_ms(r["fwd_bwd"]["median_s"]), fmt_ratio(r["ratio"]["fwd"]),
                     fmt_ratio(r["ratio"]["fwd_bwd"]), fmt_mib(r.get("peak_fwd")),
                     fmt_mib(r.get("peak_fwd_bwd"))))
    widths = [max(len(h), *(len(rw[i]) for rw in rows)) for i, h in enumerate(hdr)]
    line = lambda cells: "| " + " | ".join(  # noqa: E731
        c.ljust(wd) if i == 0 else c.rjust(wd) for i, (c, wd) in enumerate(zip(cells, widths))) + " |"
    print()
    print(line(hdr))
    print("|" + "|".join(("-" * (wd + 1) + ":") if i else ("-" * (wd + 2)) for i, wd in enumerate(widths)) + "|")
    for rw in rows:
        print(line(rw))
    print(f"\nratio = impl time / {base_name} time (> 1: {base_name} is faster). "
          "peak = max tensor memory live during one call beyond parameters and input "
          f"({'torch.cuda.max_memory_allocated' if p.device.startswith('cuda') else 'torch.profiler allocation log'}).")
    noisy = [n for n, r in results.items() if (r.get("other_cpu_use") or 0) > 0.1]
    if noisy and not p.device.startswith("cuda"):
        print(f"# WARNING: other processes took > 10% of the CPUs while timing {', '.join(noisy)}; "
              "those rows are unreliable, rerun on a quiet machine")
    for name, r in results.items():
        if "memory_error" in r:
            print(f"# note: {name} memory not measured: {r['memory_error']}")

    if a.json:
        out = {
            "config": {"batch": p.batch, "in": p.inp, "out": p.out, "grid": p.grid, "k": p.k,
                       "precision": p.precision, "backend": a.backend,
                       "grid_range": list(p.grid_range), "dtype": a.dtype, "device": p.device,
                       "repeat": a.repeat, "warmup": a.warmup, "threads": torch.get_num_threads(),
                       "seed": p.seed, "argv": sys.argv[1:]},
            "env": {"torch": torch.__version__, "python": platform.python_version(),
                    "platform": platform.platform(), "processor": H.cpu_name(),
                    "loadavg_1min_at_start": H.loadavg(), "cpu_busy_at_start": busy, "cpu_count": os.cpu_count(),
                    "cuda_device": torch.cuda.get_device_name() if p.device.startswith("cuda") else None},
            "baseline": base_name,
            "notes": notes,
            "agreement": agreement,
            "results": results,
        }
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2, default=str)
        print(f"# wrote {a.json}")
    return 0


def _under(ctx_factory, fn):
    def wrapped(x):
        with ctx_factory():
            return fn(x)

    return wrapped


if __name__ == "__main__":
    sys.exit(main())
