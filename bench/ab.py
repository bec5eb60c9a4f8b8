#!/usr/bin/env python
"""A/B timing of one KANLinear's forward+backward (or forward alone) between two kanext trees.

    python bench/ab.py TREE_A TREE_B "N,in,out,G;N,in,out,G;..." [ROUNDS] [cpu1|dense|densex|fwd]

TREE_A / TREE_B are directories that hold a `kanext/` package with its built
_C extension (e.g. a `git archive` of an older commit's kanext/ plus the .so
built from it). A tree may carry environment settings for its processes
after "+": `.+KANEXT_CPU_CACHE_MB=0` is this tree with the CPU output cache
off. Each shape runs in a fresh process per tree (PYTHONPATH set to
the tree), alternating A, B, A, B ... for ROUNDS rounds (default 3), so both
see the same machine state. Workload: bench/run.py's "fwd+bwd" (grads set to
None, forward, y.sum().backward(), x without grad), float32 (append ":f64"
to a shape for float64), 2 threads, median of 7 samples of calls repeated to
>= 50 ms of wall time. With `cpu1`: one thread, timed as the thread's CPU
time (steadier on a shared machine), and x ~ N(0, 1) requiring grad (grad x
too, and a third of the points outside the grid or in its end intervals).
With `dense`: as the default, but backward from a dense random grad y
(y.backward(g), as a training loss gives) instead of y.sum()'s stride-0 one,
like the floor's. With `densex`: as `dense`, with x requiring grad (grad x
too, as a hidden layer's backward computes it and as the floor's grad A
does). With `fwd`: the forward alone under torch.no_grad() (inference), and
the floor's forward GEMM likewise. The table gives the minimum over rounds
for A, B and the floor (three GEMMs of the local-support shape (N, in (k+2))
x (in (k+2), out), timed the same way; with `fwd` the one forward GEMM). CPU
timings are noisy on a shared machine: compare only differences larger than
the spread between rounds.
"""
import json, os, subprocess, sys
if len(sys.argv) < 4:
    sys.exit(__doc__)
A, B = sys.argv[1], sys.argv[2]
shapes = sys.argv[3].split(";")
rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 3
mode = sys.argv[5] if len(sys.argv) > 5 else ""
if mode not in ("", "cpu1", "dense", "densex", "fwd"):
    sys.exit(f"ab.py: the 5th argument is 'cpu1', 'dense', 'densex', 'fwd' or nothing, got {mode!r}")
child = r'''
import os, sys, time, json, torch, kanext
cpu1 = os.environ.get("AB_MODE") == "cpu1"
densex = os.environ.get("AB_MODE") == "densex"
dense = os.environ.get("AB_MODE") == "dense" or densex
fwd = os.environ.get("AB_MODE") == "fwd"
torch.set_num_threads(1 if cpu1 else 2)
clock = time.thread_time if cpu1 else time.perf_counter
N,i,o,G = [int(v) for v in sys.argv[1].split(",")]
dt = torch.float64 if len(sys.argv) > 2 and sys.argv[2] == "f64" else torch.float32
torch.manual_seed(0)
lay = kanext.KANLinear(i, o, grid=G, dtype=dt)
x = torch.randn(N, i, dtype=dt).requires_grad_(True) if cpu1 else torch.rand(N, i, dtype=dt) * 2 - 1
if densex: x.requires_grad_(True)
A = torch.randn(N, i*5, dtype=dt, requires_grad=True); W = torch.randn(i*5, o, dtype=dt, requires_grad=True)
gy = torch.ones(N, o, dtype=dt)
gd = torch.randn(N, o, dtype=dt)
def full():
    if fwd:
        with torch.no_grad(): lay(x)
        return
    lay.zero_grad(set_to_none=True); x.grad = None
    if dense: lay(x).backward(gd)
    else: lay(x).sum().backward()
def floor():
    if fwd:
        with torch.no_grad(): A @ W
        return
    A.grad = None; W.grad = None; (A @ W).backward(gy)
def med(f):
    f(); f()
    reps = 1; 
    while True:
        t0 = clock()
        for _ in range(reps): f()
        d = clock() - t0
        if d > 0.05: break
        reps *= 2
    ts = []
    for _ in range(7):
        t0 = clock()
        for _ in range(reps): f()
        ts.append((clock() - t0) / reps * 1e3)
    ts.sort(); return ts[3]
print(json.dumps([med(full), med(floor), kanext.__file__]))
'''
res = {}
for r in range(rounds):
    for s in shapes:
        for name, spec in (("A", A), ("B", B)):
            path, *assigns = spec.split("+")
            extra = dict(a.split("=", 1) for a in assigns)
            # -P: `python -c` would put the working directory first on sys.path, ahead of PYTHONPATH, and
            # run from a checkout it would import that checkout's kanext for both trees
            out = subprocess.run([sys.executable, "-P", "-c", child, *s.split(":")],
                                 env={"PYTHONPATH": path, "PATH": "/usr/bin:/bin", "AB_MODE": mode, **extra},
                                 capture_output=True, text=True)
            if out.returncode:
                print(out.stderr[-2000:]); sys.exit(1)
            full, floor, where = json.loads(out.stdout)
            if not os.path.realpath(where).startswith(os.path.realpath(path) + os.sep):
                sys.exit(f"ab.py: tree {name} imported kanext from {where}, not from {path}")
            d = res.setdefault(s, {"A": [], "B": [], "floor": []})
            d[name].append(full); d["floor"].append(floor)
print("| shape | A ms | B ms | A/B | floor ms | B/floor |")
for s, d in res.items():
    a, b, f = min(d["A"]), min(d["B"]), min(d["floor"])
    print(f"| {s} | {a:.2f} | {b:.2f} | {a/b:.2f} | {f:.2f} | {b/f:.2f} |")
