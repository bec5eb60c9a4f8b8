#!/usr/bin/env python
"""Shape sweep of one KAN layer's forward+backward: kanext against the
installed peers and against the local-support GEMM floor (issue 18).

    python bench/sweep.py                                    # the full default sweep
    python bench/sweep.py --batch 64,1024 --width 8,64 --grid 5,100 --dtype float32
    python bench/sweep.py --dry-run                          # validate, time nothing (CI)
    python bench/sweep.py --json s.json --resume             # continue a run that was killed

kanext is imported as Python finds it (an editable install points at its
own checkout: from another worktree, put that worktree first on PYTHONPATH).

Axes (each flag takes a comma list and restricts that axis):
    --batch  N       64,1024,4096,65536
    --width  in=out  8,64,256,1024
    --grid   G       5,20,100
    --dtype          float32,float64
    --k              3 (one value)
so the default sweep has 4 x 4 x 3 x 2 = 96 shapes, visited dtype by dtype,
then G, then width, then N ascending. --threads (default 2) is passed to
torch.set_num_threads; --peers (default inkan,flashkan,pykan,reference)
chooses the peers.

What is timed, per shape. The "fwd+bwd" workload of bench/run.py, through
the same code (harness.step_fns / harness.time_fn): the parameter grads are
set to None, then forward, then y.backward(g) into all parameters, g a
dense random (N, out) tensor made once per shape (--grad sum: y.sum().backward(),
the workload of the passes before the twentieth; its grad y is a stride-0
expansion, which kanext reads as one row that stays in L1); x does not
require grad. The median of up to --repeat samples is reported;
each sample repeats the call until it lasts >= 20 ms. It is timed for
  * kanext     kanext.KANLinear (harness.build_kanext, pykan parametrisation)
  * each peer  harness's builders, with the same seeded weights mapped in.
               pykan only where harness.pykan_too_big allows (N*in*out <=
               --pykan-max-elems, default 2**27, and the estimated footprint
               within half the free memory); reference, inkan and flashkan
               only where their dense (N, in, G+k) basis fits
               (harness.dense_too_big). A peer that is skipped or fails on a
               shape is named in that row's notes; the others still run.
  * the floor  harness.gemm_local: (N, in*(k+2)) @ (in*(k+2), out) with both
               operands requiring grad, timed through the same fwd+bwd
               workload, i.e. the forward GEMM and both backward products
               (grad A = gy W^T, grad W = A^T gy): three GEMMs of the
               local-support shape (k+1 non-zero bases per input plus the
               base activation), as issue 18 defines what a perfect
               local-support kernel would cost. This is the three GEMMs
               timed directly, not 3x a forward time. (In the KAN workload
               x needs no gradient, so the grad-A product has no counterpart
               there: the floor is, if anything, generous.)
Each shape runs in a fresh process (below), so the torch.compile'd peers
(inkan, flashkan) compile for that shape alone (as a fixed-shape user would
have them) instead of hitting the recompile limit part-way through the sweep.

Processes. Each shape runs in a child process of its own (this script with
--child SPEC, started by the sweep), and the agreement check, the floor,
kanext and the peers are timed side by side in that one child, so a row's
ratios compare implementations in the same process under the same machine
state. Before each implementation starts, the child writes its row so far
to a file, naming the implementation. If the child dies (a signal, such as
the OOM killer's SIGKILL, or a non-zero exit status), the sweep names the
culprit in the row's notes ("flashkan killed (signal 9 SIGKILL, likely out
of memory); shape re-run without it"). When the culprit is a peer, the whole
shape is re-run in a fresh child without it. The dead child's times are
discarded, never mixed with the new child's, so kanext, the floor and the
surviving peers of a row always come from one process (the row's
child_runs counts the children). When kanext, the floor or the agreement
check dies, the row is FAILED, with the reason in its notes, and the sweep
goes on to the next shape. A peer that raises an exception (MemoryError, a
RuntimeError of the allocator, ...) does not end its child: the child notes
it as "failed" and goes on. A child costs about 2 s of start-up (importing
torch) per shape. Rows come from different processes, so compare their
ratios rather than their absolute times (they were timed under different
machine states anyway).

Memory guard (--mem-cap FRAC, default 0.8; 0 turns it off). The child caps
its address space (RLIMIT_AS) at its size after importing torch and kanext
plus FRAC x the memory free at that moment (MemAvailable). An allocation
beyond the cap then fails in the allocator ("DefaultCPUAllocator: can't
allocate memory"), and the peer is noted as failed, instead of the OOM
killer being called in. This was chosen over a better footprint estimate
(e.g. a small run's peak scaled up) because it needs no model of each
peer's memory use. harness.dense_too_big and pykan_too_big still skip, before
the child starts, the peers they estimate cannot fit. The cap counts virtual
address space, not resident memory, so mappings that are never touched count
too and it errs on the safe side. Memory that other processes take after the
child starts can still bring the OOM killer, and then the child dies instead
of the sweep. The cap is recorded in each row (mem_cap_bytes) and is
inherited by torch.compile's worker processes. The tests use the variable
KANEXT_SWEEP_FAULT (see _fault) to make one implementation of one shape
kill its child, raise MemoryError, allocate all the free memory or hang, or
kanext disagree with the reference.

--shape-timeout S (default none) ends a shape's child after S seconds; the
implementation it was running is noted as "timed out" and treated like one
that died (a peer: the shape is re-run without it).

Agreement, before any timing of a shape. kanext's forward on the shape's full
input is compared with kanext.reference.kan_linear on the folded weights
(evaluated in row chunks, so it fits in memory), and harness.check_own
compares the forward and every gradient (x, coef, scale_base, scale_sp) on
the first --check-rows rows (default 256). Tolerance: max |err| / max |ref|
<= 2e-5 (float32) or 1e-10 (float64), as in run.py. A disagreement stops the
sweep with exit status 1 (the rows so far are still written to --json).
Mapped peers are compared on the forward (pykan on its first 256 rows), with
run.py's tolerance (50x the above); a mismatch is noted in the row ("inkan
MISMATCH y=4e-08") and the peer is still timed. Parameters and inputs come from
harness.master_params / make_input with --seed (default 0).

Budget. Per implementation and shape, sampling stops once --budget seconds
(default 3) are spent, after at least 3 samples; before them come the
warm-up calls (--warmup, default 3; 1 for pykan and reference) and one
calibration call of harness.time_fn. So an implementation costs about
max(--budget, 3 calls) plus 2-4 calls per shape: slow ones stop after 3
samples. Shapes whose estimated floor exceeds --max-floor-ms (default
1000 ms) are skipped, and listed as such: the estimate is the three GEMMs'
flop count, 6 N in (k+2) out, divided by the GEMM rate measured at the start
on a 1024 x 256(k+2) x 256 problem of each dtype. Small GEMMs run below that
rate, so the estimate is low for them, but the skipped shapes are the big
ones, where it is close. At ~150 / 75 GFLOP/s (float32 / float64; what 2
quiet AVX-512 cores may reach) the default skips 12 of the 96 shapes:
N=65536 at width 1024 (both dtypes), and in float64 also N=65536 at width
256 and N=4096 at width 1024, each for every G; on a slower or busy machine
the measured rate is lower and more shapes are skipped. The total time of
the default sweep has not been measured (it was validated on subsets only);
expect an hour or more on 2 cores, most of it the peers (inkan, flashkan,
reference) on the G=100 shapes, whose dense basis is ~20x the local one,
and the per-shape torch.compile of inkan and flashkan. To shorten it, narrow
an axis (--grid 5,20) or the peers (--peers inkan,flashkan). To run every
shape, pass --max-floor-ms inf on a big, quiet machine.

Output. One row per shape: kanext ms, the best (fastest) peer's name and ms,
floor ms, kanext/floor (issue 18's target is <= 1.5x), best-peer/kanext
(> 1: kanext faster), the share of the CPUs other processes used while the
row was timed (the largest over its implementations; rows above 10% are
flagged NOISY: the machine was not quiet),
and notes (skipped or failed peers, peer mismatches; a FAILED row says which implementation's child died and
how). --json PATH writes every row (all implementations' times, sample
counts, agreement errors, notes, child_runs, mem_cap_bytes) with the
configuration and environment. --plot PATH (default bench/out/sweep.png,
git-ignored; --no-plot to skip) draws kanext/floor against N, one panel per
(dtype, G), one line per width, with the 1.5x target as a dashed line and
NOISY rows crossed out. Both files are rewritten after each shape, before
its row is printed (the JSON through a temporary file, so it is always
whole). A run that is killed or interrupted therefore keeps every shape
measured so far. --resume (with --json PATH) reads PATH, keeps its rows, and
skips the shapes that already have one (timed, skipped or FAILED: delete a
row to have its shape measured again; a FATAL row is dropped and its shape
checked again). Shapes are matched on (dtype, G,
width, N, k) only, so resume with the same flags. The file's config and env
become the resumed run's.

CPU load. As in run.py (the helpers are harness.py's): the header shows how
busy the CPUs were before the start (--wait-quiet S waits up to S seconds
for them to go idle), and each row shows the other processes' share.

--dry-run checks the arguments, lists the shapes with their floor's flop
count, builds kanext on a tiny problem of every (dtype, G) and checks it
against the reference, says which peers import, and exits 0 without timing.
A bad axis value (e.g. --width 0, --dtype float16, --peers foo) is an
argument error: a message naming the flag and exit status 2.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DTYPES = {"float32": torch.float32, "float64": torch.float64}
BATCHES = (64, 1024, 4096, 65536)
WIDTHS = (8, 64, 256, 1024)
GRIDS = (5, 20, 100)
SWEEP_PEERS = ("inkan", "flashkan", "pykan", "reference")
TARGET = 1.5  # issue 18: kanext within 1.5x of the floor
NOISY = 0.1  # other processes' CPU share above which a row is flagged


# ------------------------------------------------------------------ arguments
def _int_list(flag):
    def parse(text):
        vals = []
        for tok in text.split(","):
            tok = tok.strip()
            try:
                v = int(tok)
            except ValueError:
                raise argparse.ArgumentTypeError(f"{flag} takes positive integers separated by commas, got {tok!r}")
            if v <= 0:
                raise argparse.ArgumentTypeError(f"{flag} takes positive integers, got {v}")
            vals.append(v)
        return sorted(set(vals))

    return parse


def _choice_list(flag, allowed, empty_ok=False):
    def parse(text):
        vals = [t.strip() for t in text.split(",") if t.strip()]
        bad = [v for v in vals if v not in allowed]
        if bad:
            raise argparse.ArgumentTypeError(f"{flag}: unknown value(s) {', '.join(map(repr, bad))}; "
                                             f"choose from {', '.join(allowed)}")
        if not vals and not empty_ok:
            raise argparse.ArgumentTypeError(f"{flag} needs at least one of {', '.join(allowed)}")
        return list(dict.fromkeys(vals))

    return parse


def _positive(kind):
    def parse(text):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}")
        if not v > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return v

    return parse


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    j = lambda t: ",".join(map(str, t))  # noqa: E731
    ap.add_argument("--batch", type=_int_list("--batch"), default=list(BATCHES), help=f"N values (default {j(BATCHES)})")
    ap.add_argument("--width", type=_int_list("--width"), default=list(WIDTHS),
                    help=f"in = out values (default {j(WIDTHS)})")
    ap.add_argument("--grid", type=_int_list("--grid"), default=list(GRIDS), help=f"G values (default {j(GRIDS)})")
    ap.add_argument("--dtype", type=_choice_list("--dtype", tuple(DTYPES)), default=list(DTYPES),
                    help="float32,float64 (default both)")
    ap.add_argument("--k", type=_positive(int), default=3, help="spline order (default 3)")
    ap.add_argument("--threads", type=_positive(int), default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--peers", type=_choice_list("--peers", SWEEP_PEERS, empty_ok=True), default=list(SWEEP_PEERS),
                    help=f"comma list from {j(SWEEP_PEERS)} (default all; '' for none)")
    ap.add_argument("--repeat", type=_positive(int), default=10, help="timed samples at most (median reported)")
    ap.add_argument("--warmup", type=_positive(int), default=3, help="warm-up calls (1 for pykan and reference)")
    ap.add_argument("--budget", type=_positive(float), default=3.0,
                    help="seconds per implementation per shape after which sampling stops (min 3 samples)")
    ap.add_argument("--max-floor-ms", type=_positive(float), default=1000.0,
                    help="skip shapes whose estimated floor exceeds this (default 1000; inf for none)")
    ap.add_argument("--pykan-max-elems", type=_positive(float), default=2 ** 27)
    ap.add_argument("--check-rows", type=_positive(int), default=256,
                    help="rows on which kanext's gradients are checked against the reference (default 256)")
    ap.add_argument("--grad", choices=H.GRADS, default="dense",
                    help="grad y of the backward: 'dense' (default; a random (N, out) tensor, as a training "
                         "loss gives) or 'sum' (y.sum(), a stride-0 expansion that kanext reads as one row)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="write all rows to this path")
    ap.add_argument("--plot", default=os.path.join(ROOT, "bench", "out", "sweep.png"),
                    help="kanext/floor plot (default bench/out/sweep.png)")
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--wait-quiet", type=float, default=0.0, metavar="S",
                    help="before starting, wait up to S seconds for the CPUs to be < 10%% busy")
    ap.add_argument("--resume", action="store_true",
                    help="keep the rows already in --json and skip their shapes")
    ap.add_argument("--mem-cap", type=float, default=0.8, metavar="FRAC",
                    help="cap each shape's child process's address space at its size after the imports plus "
                         "FRAC x the free memory (RLIMIT_AS; default 0.8; 0 for no cap)")
    ap.add_argument("--shape-timeout", type=_positive(float), default=None, metavar="S",
                    help="end a shape's child process after S seconds (default: no limit)")
    ap.add_argument("--dry-run", action="store_true", help="validate and list the shapes, time nothing")
    return ap.parse_args(argv)


def shapes(a) -> list:
    return [dict(dtype=dt, grid=G, width=w, batch=N, k=a.k)
            for dt in a.dtype for G in a.grid for w in a.width for N in a.batch]


def problem(s: dict, seed: int) -> H.Problem:
    return H.Problem(batch=s["batch"], inp=s["width"], out=s["width"], grid=s["grid"], k=s["k"],
                     dtype=DTYPES[s["dtype"]], seed=seed)


def floor_flops(p: H.Problem) -> float:
    """Flops of the floor's three GEMMs (forward, grad A, grad W)."""
    return 3 * 2.0 * p.batch * p.inp * (p.k + 2) * p.out


# ------------------------------------------------------------------ agreement
def check_kanext(impl: H.Impl, p: H.Problem, P: dict, x: torch.Tensor, check_rows: int) -> dict:
    """kanext's forward on all of x against kanext.reference.kan_linear (row
    chunks), and harness.check_own (forward and all gradients) on x[:check_rows]."""
    from kanext import reference

    itemsize = torch.empty((), dtype=p.dtype).element_size()
    chunk = max(1, int(2 ** 28 // (H.DENSE_BASIS_FACTOR["reference"] * p.inp * (p.grid + p.k) * itemsize)))
    with torch.no_grad():
        y = impl.forward(x)
        y_ref = torch.cat([reference.kan_linear(x[i:i + chunk], P["grid"], p.k, "silu", P["Wb"], P["Wc"])
                           for i in range(0, x.shape[0], chunk)])
    tol = H.tolerance(p.dtype)
    errs = {"y_all_rows": H.rel_err(y, y_ref)}
    own = H.check_own(impl, p, P, x[:check_rows])
    errs.update({f"{k}_first_{min(check_rows, x.shape[0])}_rows": v for k, v in own["errors"].items()})
    return {"errors": errs, "tol": tol, "ok": all(e <= tol for e in errs.values())}


# --------------------------------------------------------------------- timing
def time_impl(impl: H.Impl, x: torch.Tensor, a, warmup: int) -> dict:
    """run.py's fwd+bwd workload of one implementation, with the other processes' CPU share."""
    monitor = H.OtherCpuUse().start()
    t0 = time.perf_counter()
    r = H.time_fn(H.step_fns(impl, x, a.grad)["fwd_bwd"], "cpu", a.repeat, warmup, a.budget)
    for q in impl.params:
        q.grad = None
    r["wall_s"] = time.perf_counter() - t0
    r["other_cpu_use"] = monitor.stop()
    return r


def gemm_rate(dtype: str, k: int, a) -> float:
    """Flop/s of the floor's three GEMMs on a 1024 x 256(k+2) x 256 problem (for --max-floor-ms)."""
    p = H.Problem(batch=1024, inp=256, out=256, grid=1, k=k, dtype=DTYPES[dtype], seed=a.seed)
    impl = H.build_gemm_local(p, {})
    r = H.time_fn(H.step_fns(impl, None, a.grad)["fwd_bwd"], "cpu", 5, 2, 2.0)
    return floor_flops(p) / r["median_s"]


def run_shape(s: dict, a, save=lambda row: None) -> dict:
    """One shape, in the child process: agreement, then floor, kanext and the peers.
    save(row) is called with row["running"] naming each implementation before it
    starts, so a parent that sees the child die knows which one it was."""
    p = problem(s, a.seed)
    row = dict(s, notes=[], times={}, agreement={})

    def running(name):
        row["running"] = name
        save(row)
        return _fault(name, s)

    import torch._dynamo

    torch._dynamo.reset()
    torch.manual_seed(a.seed)  # the peers' own initialisation, before their weights are mapped in
    P, x = H.master_params(p), H.make_input(p)
    if running("kanext"):
        kan = H.build_kanext(p, dict(P, coef=1.01 * P["coef"]))  # KANEXT_SWEEP_FAULT kanext:disagree
    else:
        kan = H.build_kanext(p, P)
    res = check_kanext(kan, p, P, x, a.check_rows)
    row["agreement"]["kanext"] = res
    if not res["ok"]:
        row["fatal"] = "kanext disagrees with kanext.reference: " + ", ".join(
            f"{k}={v:.2e}" for k, v in res["errors"].items()) + f" (tol {res['tol']:.0e})"
        return row
    running("floor")
    row["times"]["floor"] = time_impl(H.build_gemm_local(p, P), x, a, a.warmup)
    running("kanext")
    row["times"]["kanext"] = time_impl(kan, x, a, a.warmup)
    del kan
    for name in sorted(a.peers, key=lambda n: n == "pykan"):  # pykan last, as in run.py
        why = (H.pykan_too_big(p, int(a.pykan_max_elems)) if name == "pykan" else H.dense_too_big(p, name))
        if why:
            row["notes"].append(f"{name} skipped: {why}")
            continue
        try:
            running(name)
            impl = H.BUILDERS[name](p, P)
            if impl.mapped and name != "reference":
                chk = H.check_peer(impl, p, P, x[:256] if name == "pykan" else x)
                row["agreement"][name] = chk
                if not chk["ok"]:
                    row["notes"].append(f"{name} MISMATCH y={chk['errors']['y']:.1e}")
            row["times"][name] = time_impl(impl, x, a, 1 if name in ("pykan", "reference") else a.warmup)
        except H.Unavailable as e:
            row["notes"].append(f"{name} skipped: {e}")
        except Exception as e:  # a failing peer must not stop the sweep
            row["notes"].append(f"{name} failed: {type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}")
        finally:
            impl = None
    t = row["times"]
    kx, fl = t["kanext"]["median_s"], t["floor"]["median_s"]
    peers = {n: v["median_s"] for n, v in t.items() if n not in ("kanext", "floor")}
    best = min(peers, key=peers.get) if peers else None
    row.update(kanext_ms=1e3 * kx, floor_ms=1e3 * fl, kanext_over_floor=kx / fl, best_peer=best,
               best_peer_ms=1e3 * peers[best] if best else None,
               best_peer_over_kanext=peers[best] / kx if best else None,
               other_cpu_use=max((v["other_cpu_use"] or 0.0) for v in t.values()))
    return row


# ------------------------------------------------------------ child processes
FAULT_ENV = "KANEXT_SWEEP_FAULT"


def _fault(name: str, s: dict) -> bool:
    """Test hook: $KANEXT_SWEEP_FAULT is a comma list of IMPL:KIND[@N]; when IMPL
    (kanext, floor or a peer) is about to run on a shape (of batch N), KIND happens:
    kill (SIGKILL, as the OOM killer sends), memory (raise MemoryError), alloc
    (ask for as many bytes as are free: fails only under --mem-cap), hang (sleep
    an hour) or, for kanext, disagree (returns True: kanext is built from
    coefficients 1% off)."""
    for item in filter(None, os.environ.get(FAULT_ENV, "").split(",")):
        who, _, rest = item.partition(":")
        kind, _, batch = rest.partition("@")
        if who != name or (batch and int(batch) != s["batch"]):
            continue
        if kind == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if kind == "memory":
            raise MemoryError(f"{FAULT_ENV} {item}")
        if kind == "alloc":
            torch.empty(H.available_memory_bytes("cpu") or 2 ** 40, dtype=torch.uint8)
        if kind == "hang":
            time.sleep(3600)
        if kind == "disagree":
            return True
    return False


def _vm_size() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise OSError("no VmSize in /proc/self/status")


def cap_memory(frac: float):
    """RLIMIT_AS := this process's address space now + frac x the free memory,
    so that an allocation beyond it fails (RuntimeError / MemoryError, caught
    like any failure) instead of waking the OOM killer. Returns the cap or None."""
    avail = H.available_memory_bytes("cpu")
    if not frac > 0 or avail is None:
        return None
    try:
        cap = _vm_size() + int(frac * avail)
        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        if hard != resource.RLIM_INFINITY:
            cap = min(cap, hard)
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    except (OSError, ValueError):
        return None
    return cap


def _write_json(path: str, obj) -> None:
    """Write obj to path through a temporary file, so the file is always whole."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, default=str)
    os.replace(tmp, path)


def child_main(spec_path: str) -> int:
    """`sweep.py --child SPEC`: one shape (SPEC: JSON of shape, args, peers, out),
    its row written to out after every step."""
    with open(spec_path) as f:
        spec = json.load(f)
    a = argparse.Namespace(**spec["args"])
    a.peers = spec["peers"]
    torch.set_num_threads(a.threads)
    import kanext  # noqa: F401  (imported before the cap is taken)

    cap = cap_memory(a.mem_cap)
    save = lambda row: _write_json(spec["out"], dict(row, mem_cap_bytes=cap))  # noqa: E731
    row = run_shape(spec["shape"], a, save)
    row.pop("running", None)
    save(row)
    return 0


def _death(rc: int, stderr: str) -> str:
    if rc < 0:
        sig = -rc
        name = signal.Signals(sig).name if sig in signal.valid_signals() else "?"
        return f"killed (signal {sig} {name}{', likely out of memory' if sig == signal.SIGKILL else ''})"
    last = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    return f"crashed (exit status {rc}{': ' + last[-1].strip()[:160] if last else ''})"


def _run_child(s: dict, a, peers: list):
    """(row, None) from a child that finished, or (partial row, why) from one that died."""
    with tempfile.TemporaryDirectory(prefix="kanext-sweep-") as tmp:
        out, spec = os.path.join(tmp, "row.json"), os.path.join(tmp, "spec.json")
        with open(spec, "w") as f:
            json.dump({"shape": s, "args": {k: v for k, v in vars(a).items()}, "peers": peers, "out": out}, f)
        try:
            proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", spec],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                  timeout=a.shape_timeout)
            why = None if proc.returncode == 0 else _death(proc.returncode, proc.stderr)
        except subprocess.TimeoutExpired:  # subprocess.run has killed the child
            why = f"timed out (ended after --shape-timeout {a.shape_timeout:g} s)"
        row = None
        if os.path.exists(out):
            with open(out) as f:
                row = json.load(f)
    if why is None and row is not None and "running" not in row:
        return row, None
    return row or dict(s, running="startup"), why or "crashed (exit status 0 without a finished row)"


def measure_shape(s: dict, a, rates: dict) -> dict:
    """One shape in a child process (kanext, the floor and the peers side by side);
    a peer that kills or crashes its child is dropped and the shape re-run in a
    fresh child without it; if kanext or the floor dies, the row says so."""
    p = problem(s, a.seed)
    est = floor_flops(p) / rates[s["dtype"]] * 1e3
    if est > a.max_floor_ms:
        return dict(s, notes=[], times={}, agreement={}, est_floor_ms=est,
                    skipped=f"estimated floor {est:.0f} ms > --max-floor-ms {a.max_floor_ms:g}")
    peers, lost, runs = list(a.peers), [], 0
    while True:
        row, why = _run_child(s, a, peers)
        runs += 1
        if why is None:
            break
        who = row.get("running", "startup")
        if who in peers:
            peers.remove(who)
            lost.append(f"{who} {why}; shape re-run without it")
            continue
        row = dict(s, notes=[], times={}, agreement={}, failed=f"{who} {why}")
        break
    row.update(est_floor_ms=est, child_runs=runs)
    row["notes"] = lost + row["notes"]
    return row


# --------------------------------------------------------------------- output
COLS = ("dtype", "G", "in=out", "N", "kanext ms", "best peer", "peer ms", "floor ms", "kanext/floor",
        "peer/kanext", "other CPU", "notes")
WIDTHS_COL = (7, 3, 6, 6, 10, 9, 10, 9, 12, 11, 9, 0)


def fmt_row(cells) -> str:
    out = []
    for i, (c, wd) in enumerate(zip(cells, WIDTHS_COL)):
        out.append(c.ljust(wd) if i in (0, 5, 11) else c.rjust(wd))
    return "| " + " | ".join(out) + " |"


def row_cells(r: dict):
    head = [r["dtype"], str(r["grid"]), str(r["width"]), str(r["batch"])]
    if "skipped" in r or "fatal" in r or "failed" in r:
        why = r.get("skipped") or ("FATAL: " + r["fatal"] if "fatal" in r else "FAILED: " + r["failed"])
        return head + ["-"] * 7 + ["; ".join(r["notes"] + [why])]
    f = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
    notes = list(r["notes"])
    if (r["other_cpu_use"] or 0) > NOISY:
        notes.insert(0, "NOISY")
    return head + [f(r["kanext_ms"], ".3f"), r["best_peer"] or "-", f(r["best_peer_ms"], ".3f"),
                   f(r["floor_ms"], ".3f"), f(r["kanext_over_floor"], ".3g") + "x",
                   (f(r["best_peer_over_kanext"], ".3g") + "x") if r["best_peer"] else "-",
                   f"{100 * r['other_cpu_use']:.0f}%", "; ".join(notes)]


def plot(rows: list, path: str) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in rows if "kanext_over_floor" in r]
    if not done:
        return False
    dtypes = list(dict.fromkeys(r["dtype"] for r in done))
    grids = sorted({r["grid"] for r in done})
    fig, axes = plt.subplots(len(dtypes), len(grids), figsize=(4.2 * len(grids), 3.4 * len(dtypes)),
                             squeeze=False, sharey=True)
    for i, dt in enumerate(dtypes):
        for j, G in enumerate(grids):
            ax = axes[i][j]
            for w in sorted({r["width"] for r in done}):
                pts = sorted((r["batch"], r["kanext_over_floor"]) for r in done
                             if r["dtype"] == dt and r["grid"] == G and r["width"] == w)
                if pts:
                    ax.plot(*zip(*pts), marker="o", label=f"in=out={w}")
            noisy = [(r["batch"], r["kanext_over_floor"]) for r in done
                     if r["dtype"] == dt and r["grid"] == G and (r["other_cpu_use"] or 0) > NOISY]
            if noisy:
                ax.scatter(*zip(*noisy), marker="x", color="black", s=60, zorder=3, label="NOISY row")
            ax.axhline(TARGET, color="red", linestyle="--", linewidth=1, label=f"target {TARGET}x")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_title(f"{dt}, G={G}")
            ax.set_xlabel("N (batch)")
            if j == 0:
                ax.set_ylabel("kanext / floor (fwd+bwd)")
            ax.grid(True, which="both", alpha=0.3)
    handles = {}
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    axes[0][-1].legend(handles.values(), handles.keys(), fontsize=8)
    fig.suptitle("kanext fwd+bwd / floor\n(floor: 3 GEMMs (N, in (k+2)) x (in (k+2), out))", fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _dry_run(a, todo) -> int:
    print(f"# dry run: {len(todo)} shapes, k={a.k}, threads={a.threads}, peers={','.join(a.peers) or 'none'}")
    for s in todo:
        p = problem(s, a.seed)
        print(f"#   {s['dtype']:<7} G={s['grid']:<3} in=out={s['width']:<5} N={s['batch']:<6} "
              f"floor {floor_flops(p) / 1e9:.3g} GFLOP")
    for dt in a.dtype:  # the code path of every (dtype, G) on a tiny problem
        for G in a.grid:
            p = H.Problem(batch=16, inp=4, out=3, grid=G, k=a.k, dtype=DTYPES[dt], seed=a.seed)
            P, x = H.master_params(p), H.make_input(p)
            res = check_kanext(H.build_kanext(p, P), p, P, x, a.check_rows)
            if not res["ok"]:
                print(f"error: kanext disagrees with the reference on {p.describe()}: {res['errors']}",
                      file=sys.stderr)
                return 1
            H.build_gemm_local(p, P)
    print(f"#   kanext agrees with kanext.reference on a tiny problem of every (dtype, G)")
    for s in a.peers:
        there = s == "reference" or importlib.util.find_spec({"pykan": "kan"}.get(s, s)) is not None
        print(f"#   {s:<10} {'importable' if there else 'not installed (would be skipped)'}")
    if not a.no_plot and importlib.util.find_spec("matplotlib") is None:
        print("#   matplotlib not installed: no plot would be drawn")
    print("# dry run OK: nothing timed")
    return 0


def shape_key(r: dict) -> tuple:
    return r["dtype"], r["grid"], r["width"], r["batch"], r["k"]


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--child"]:
        return child_main(argv[1])
    a = parse_args(argv)
    torch.set_num_threads(a.threads)
    todo = shapes(a)
    if a.dry_run:
        return _dry_run(a, todo)
    rows = []
    if a.resume:
        if not a.json:
            print("error: --resume needs --json PATH (the file to resume)", file=sys.stderr)
            return 2
        if os.path.exists(a.json):
            with open(a.json) as f:
                rows = [r for r in json.load(f)["rows"] if "fatal" not in r]  # a disagreement is checked again
        done_keys = {shape_key(r) for r in rows}
        print(f"# --resume: {len(rows)} rows kept from {a.json}; "
              f"{sum(shape_key(s) in done_keys for s in todo)} of {len(todo)} shapes already there are skipped")
        todo = [s for s in todo if shape_key(s) not in done_keys]

    print(f"# kanext shape sweep: {len(todo)} shapes, k={a.k}, threads={torch.get_num_threads()}, "
          f"peers={','.join(a.peers) or 'none'}, budget {a.budget:g} s, --max-floor-ms {a.max_floor_ms:g}")
    print(f"# torch {torch.__version__}, python {platform.python_version()}, {H.cpu_name()}")
    busy = H.wait_quiet(a.wait_quiet)
    H.print_cpu_busy(busy)
    rates = {dt: gemm_rate(dt, a.k, a) for dt in a.dtype}
    print("# floor GEMM rate (1024 x 256(k+2) x 256, fwd+bwd): "
          + ", ".join(f"{dt} {r / 1e9:.1f} GFLOP/s" for dt, r in rates.items()), flush=True)
    env = {"torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform(),
           "processor": H.cpu_name(), "cpu_count": os.cpu_count(), "cpu_busy_at_start": busy,
           "loadavg_1min_at_start": H.loadavg(), "threads": torch.get_num_threads(),
           "gemm_rate_flops": rates}
    config = {k: v for k, v in vars(a).items()}
    config["argv"] = argv

    def dump():
        if a.json:
            _write_json(a.json, {"config": config, "env": env, "rows": rows})

    plotting = not a.no_plot

    def draw():
        nonlocal plotting
        if plotting:
            try:
                return plot(rows, a.plot)
            except ImportError as e:
                print(f"# no plot: {e}")
                plotting = False
        return False

    print()
    print(fmt_row(COLS))
    print("|" + "|".join("-" * (max(wd, len(c)) + 2) for c, wd in zip(COLS, WIDTHS_COL)) + "|", flush=True)
    status = 0
    t_all = time.perf_counter()
    for s in todo:
        r = measure_shape(s, a, rates)
        rows.append(r)
        dump()  # on disk before it is printed
        draw()
        print(fmt_row(row_cells(r)), flush=True)
        if "fatal" in r:
            print(f"\nFATAL: {r['fatal']} on {problem(s, a.seed).describe()}; "
                  "not benchmarking a wrong kernel.", file=sys.stderr)
            status = 1
            break
    done = [r for r in rows if "kanext_over_floor" in r]
    print(f"\n# {len(done)} shapes timed, {sum('skipped' in r for r in rows)} skipped, "
          f"{sum('failed' in r for r in rows)} failed, in {time.perf_counter() - t_all:.0f} s")
    if done:
        over = [r for r in done if r["kanext_over_floor"] > TARGET]
        print(f"# kanext/floor: max {max(r['kanext_over_floor'] for r in done):.3g}x; "
              f"{len(over)} of {len(done)} shapes above the {TARGET}x target")
    noisy = [r for r in done if (r["other_cpu_use"] or 0) > NOISY]
    if noisy:
        print(f"# WARNING: other processes took > {100 * NOISY:.0f}% of the CPUs during {len(noisy)} of "
              f"{len(done)} rows (flagged NOISY); rerun those on a quiet machine")
    if a.json:
        dump()
        print(f"# wrote {a.json}")
    if done and draw():
        print(f"# wrote {a.plot}")
    return status


if __name__ == "__main__":
    sys.exit(main())
