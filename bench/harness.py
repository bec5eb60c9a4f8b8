"""Shared machinery of the kanext benchmarks (used by run.py and test_bench.py).

One "problem" (batch N, in -> out, G intervals, order k, dtype, device) is
turned into a set of implementations that all compute the same KAN layer

    y[n, j] = sum_i mask[i,j] * (scale_base[i,j] * silu(x[n,i])
                                 + scale_sp[i,j] * sum_g coef[i,j,g] B_g(x[n,i]))

from one seeded set of pykan-style parameters, so their outputs can be
compared element by element before anything is timed:

* ``kanext``     kanext.KANLinear holding the pykan parameters (coef,
                 scale_base, scale_sp; buffers grid, mask).
* ``kanext.ops`` kanext.ops.kan_linear on the folded weights
                 Wb = mask*scale_base (in, out), Wc = mask*scale_sp*coef
                 permuted to (in, G+k, out), both leaf parameters.
* ``reference``  kanext.reference.kan_linear (dense basis + einsum) on the same
                 folded leaves.
* ``pykan``      kan.KANLayer with grid/coef/scale_base/scale_sp/mask copied in.
* ``inkan``      inkan.KANLayer (default settings: compiled basis, "local"
                 basis mode, automatic contraction); its packed weight is
                 filled from Wc/Wb. Cubic only: skipped when k != 3.
* ``flashkan``   flashkan.KANLayer (compiled truncated-power basis); its
                 spline_weight/base_weight are filled from Wc/Wb. Its basis is
                 hard-wired cubic, so for k != 3 it keeps its own random
                 initialisation and is timed but not compared.

inkan and flashkan place the cubic bases on the uniform knots
lo + (j - k) h, j = 0..G+2k, exactly the extended grid pykan builds, so with
k = 3 they compute the same function class and the mapping is exact up to
rounding.

Inputs are drawn uniformly from the grid range, where every implementation
is defined the same way (pykan's half-open knot intervals and the peers'
closed-form bases differ only at the knots themselves and far outside).
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib
import math
import os
import platform
import statistics
import time
from typing import Callable

import torch

PEERS = ("pykan", "inkan", "flashkan", "reference", "gemm", "gemm_local")
#: Numerics of a run (run.py --precision): float32 strict, float32 with TF32
#: matmuls allowed, or the layer under torch.autocast in bfloat16 / float16.
PRECISIONS = ("strict", "tf32", "bf16", "fp16")
#: implementations whose disagreement with the reference aborts a run
OWN = ("kanext", "kanext.ops")


# ------------------------------------------------------------------ problem
@dataclasses.dataclass
class Problem:
    batch: int = 1024
    inp: int = 256
    out: int = 256
    grid: int = 5
    k: int = 3
    grid_range: tuple = (-1.0, 1.0)
    dtype: torch.dtype = torch.float32
    device: str = "cpu"
    seed: int = 0
    precision: str = "strict"

    def describe(self) -> str:
        return (f"N={self.batch} in={self.inp} out={self.out} G={self.grid} k={self.k} "
                f"dtype={str(self.dtype).replace('torch.', '')} precision={self.precision} device={self.device}")

    def autocast(self):
        """The autocast context of this precision (a no-op for strict / tf32)."""
        dt = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
        dev = "cuda" if self.device.startswith("cuda") else "cpu"
        return torch.autocast(dev, dtype=dt) if dt is not None else contextlib.nullcontext()


def extended_grid(p: Problem) -> torch.Tensor:
    """(in, G+2k+1) uniform knots lo + (m - k) h, m = 0..G+2k (pykan's layout)."""
    lo, hi = p.grid_range
    h = (hi - lo) / p.grid
    m = torch.arange(-p.k, p.grid + p.k + 1, dtype=torch.float64)
    row = (lo + m * h).to(p.dtype)
    return row.expand(p.inp, -1).contiguous().to(p.device)


def master_params(p: Problem) -> dict:
    """Seeded pykan-style parameters, with a spline part big enough to matter."""
    g = torch.Generator().manual_seed(p.seed)
    inp, out, nb = p.inp, p.out, p.grid + p.k
    kw = dict(generator=g, dtype=torch.float64)
    coef = 0.1 * torch.randn(inp, out, nb, **kw)
    scale_base = (torch.rand(inp, out, **kw) * 2 - 1) / math.sqrt(inp)
    scale_sp = (0.5 + torch.rand(inp, out, **kw)) / math.sqrt(inp)
    mask = torch.ones(inp, out, dtype=torch.float64)
    cast = lambda t: t.to(device=p.device, dtype=p.dtype).contiguous()  # noqa: E731
    P = dict(coef=cast(coef), scale_base=cast(scale_base), scale_sp=cast(scale_sp), mask=cast(mask))
    P["grid"] = extended_grid(p)
    P["Wb"] = (P["mask"] * P["scale_base"]).contiguous()
    P["Wc"] = ((P["mask"] * P["scale_sp"]).unsqueeze(-1) * P["coef"]).permute(0, 2, 1).contiguous()
    return P


def make_input(p: Problem, batch: int | None = None) -> torch.Tensor:
    g = torch.Generator().manual_seed(p.seed + 1)
    lo, hi = p.grid_range
    x = lo + (hi - lo) * torch.rand(batch or p.batch, p.inp, generator=g, dtype=torch.float64)
    return x.to(device=p.device, dtype=p.dtype)


# ----------------------------------------------------------- implementations
@dataclasses.dataclass
class Impl:
    name: str
    forward: Callable[[torch.Tensor], torch.Tensor]
    params: list  # leaf tensors that receive gradients
    mapped: bool  # computes the same function as the reference
    note: str = ""
    version: str = ""
    module: object = None  # the nn.Module, where there is one


class Unavailable(Exception):
    """The implementation cannot run on this problem/installation (reason in args)."""


def _first(out):
    return out[0] if isinstance(out, tuple) else out


def _version(modname: str) -> str:
    try:
        from importlib.metadata import version

        return version({"kan": "pykan"}.get(modname, modname))
    except Exception:
        return getattr(importlib.import_module(modname), "__version__", "?")


def _leaf(t: torch.Tensor) -> torch.Tensor:
    return t.detach().clone().requires_grad_(True)


def build_kanext(p: Problem, P: dict) -> Impl:
    import kanext

    if not hasattr(kanext, "KANLinear"):
        raise Unavailable("kanext.KANLinear not available in this build")
    layer = kanext.KANLinear(p.inp, p.out, grid=p.grid, k=p.k, grid_range=tuple(p.grid_range), dtype=p.dtype)
    layer = layer.to(p.device)
    with torch.no_grad():
        if tuple(layer.grid.shape) != tuple(P["grid"].shape):
            raise RuntimeError(f"kanext.KANLinear grid shape {tuple(layer.grid.shape)} != {tuple(P['grid'].shape)}")
        for name in ("grid", "mask", "coef", "scale_base", "scale_sp"):
            getattr(layer, name).copy_(P[name])
    params = [q for q in layer.parameters() if q.requires_grad]
    return Impl("kanext", lambda x: _first(layer(x)), params, True,
                "kanext.KANLinear (pykan parameters)", kanext.__version__, layer)


def _folded(P: dict):
    return _leaf(P["Wb"]), _leaf(P["Wc"])


def build_kanext_ops(p: Problem, P: dict) -> Impl:
    import kanext

    Wb, Wc = _folded(P)
    grid, k = P["grid"], p.k
    return Impl("kanext.ops", lambda x: kanext.ops.kan_linear(x, grid, k, "silu", Wb, Wc), [Wb, Wc], True,
                "kanext.ops.kan_linear on folded Wb, Wc", kanext.__version__)


def build_reference(p: Problem, P: dict) -> Impl:
    import kanext
    from kanext import reference

    Wb, Wc = _folded(P)
    grid, k = P["grid"], p.k
    return Impl("reference", lambda x: reference.kan_linear(x, grid, k, "silu", Wb, Wc), [Wb, Wc], True,
                "kanext.reference.kan_linear (dense basis + einsum)", kanext.__version__)


def build_pykan(p: Problem, P: dict) -> Impl:
    try:
        from kan.KANLayer import KANLayer
    except ImportError as e:
        raise Unavailable(f"pykan not installed ({e})")
    # pykan builds its float32 grid/coef on the default dtype; construct, then cast.
    layer = KANLayer(in_dim=p.inp, out_dim=p.out, num=p.grid, k=p.k, grid_range=list(p.grid_range),
                     device="cpu")
    # KANLayer.to() takes a device only; cast through nn.Module.to and keep its attribute right
    torch.nn.Module.to(layer, device=p.device, dtype=p.dtype)
    layer.device = p.device
    with torch.no_grad():
        for name in ("grid", "mask", "coef", "scale_base", "scale_sp"):
            getattr(layer, name).copy_(P[name])
    params = [q for q in layer.parameters() if q.requires_grad]
    return Impl("pykan", lambda x: _first(layer(x)), params, True,
                "kan.KANLayer, parameters copied", _version("kan"))


def build_inkan(p: Problem, P: dict) -> Impl:
    try:
        import inkan
    except ImportError as e:
        raise Unavailable(f"inkan not installed ({e})")
    if p.k != 3:
        raise Unavailable(f"inkan supports cubic splines only (k=3), problem has k={p.k}")
    layer = inkan.KANLayer(p.inp, p.out, grid_size=p.grid, spline_order=p.k, grid_range=tuple(p.grid_range))
    layer = layer.to(dtype=p.dtype, device=p.device)
    nb = p.grid + p.k
    with torch.no_grad():
        # packed weight (out, in*nb + in): [spline (out, in, nb) flattened | base (out, in)]
        w = layer.weight
        w[:, : p.inp * nb].copy_(P["Wc"].permute(2, 0, 1).reshape(p.out, p.inp * nb))
        w[:, p.inp * nb:].copy_(P["Wb"].t())
    return Impl("inkan", lambda x: layer(x), [layer.weight], True,
                "inkan.KANLayer defaults (compiled basis), weights mapped", _version("inkan"))


def build_flashkan(p: Problem, P: dict) -> Impl:
    try:
        import flashkan
    except ImportError as e:
        raise Unavailable(f"flashkan not installed ({e})")
    layer = flashkan.KANLayer(p.inp, p.out, grid_size=p.grid, spline_order=p.k, grid_range=tuple(p.grid_range))
    layer = layer.to(dtype=p.dtype, device=p.device)
    mapped = p.k == 3
    if mapped:
        with torch.no_grad():
            layer.spline_weight.copy_(P["Wc"].permute(2, 0, 1))  # (out, in, nb)
            layer.base_weight.copy_(P["Wb"].t())
        note = "flashkan.KANLayer (compiled basis), weights mapped"
    else:
        note = f"flashkan basis is cubic only: k={p.k} not mappable, own random init, not compared"
    return Impl("flashkan", lambda x: layer(x), [layer.spline_weight, layer.base_weight], mapped,
                note, _version("flashkan"))


def _gemm(p: Problem, K: int, name: str, what: str) -> Impl:
    """(N, K) @ (K, out) with both operands leaf tensors requiring grad: fwd is
    one GEMM, fwd+bwd three (y, grad A, grad W)."""
    g = torch.Generator().manual_seed(p.seed + 1)
    A = torch.rand(p.batch, K, generator=g, dtype=torch.float64).to(device=p.device, dtype=p.dtype)
    W = torch.randn(K, p.out, generator=g, dtype=torch.float64).to(device=p.device, dtype=p.dtype)
    A, W = _leaf(A), _leaf(W)
    return Impl(name, lambda x: A @ W, [A, W], False,
                f"torch.matmul ({p.batch} x {K}) @ ({K} x {p.out}), {what}; fwd+bwd = 3 GEMMs", torch.__version__)


def build_gemm(p: Problem, P: dict) -> Impl:
    """Not a KAN: the dense GEMM of the same shape, (N, in (G+k+1)) @
    (in (G+k+1), out), with both operands requiring grad, so fwd is one GEMM
    and fwd+bwd three (y, grad A, grad W): the floor of the dense formulation."""
    return _gemm(p, p.inp * (p.grid + p.k + 1), "gemm", "K = in (G+k+1), dense basis")


def build_gemm_local(p: Problem, P: dict) -> Impl:
    """Not a KAN: the GEMM of the local-support shape, (N, in (k+2)) @
    (in (k+2), out) -- k+1 non-zero B-spline bases per input plus the base
    activation, whatever G is -- with both operands requiring grad, so fwd+bwd
    is three GEMMs: what a perfect local-support kernel would cost (issue 18)."""
    return _gemm(p, p.inp * (p.k + 2), "gemm_local", "K = in (k+2), local support")


BUILDERS = {
    "gemm": build_gemm,
    "gemm_local": build_gemm_local,
    "kanext": build_kanext,
    "kanext.ops": build_kanext_ops,
    "reference": build_reference,
    "pykan": build_pykan,
    "inkan": build_inkan,
    "flashkan": build_flashkan,
}


def pykan_too_big(p: Problem, max_elems: int) -> str | None:
    """Reason to skip pykan automatically, or None. pykan materialises several
    (N, in, out) tensors in forward and more in backward."""
    elems = p.batch * p.inp * p.out
    itemsize = torch.empty((), dtype=p.dtype).element_size()
    est = 12 * elems * itemsize  # rough fwd+bwd footprint, measured ~10-12 tensors
    avail = available_memory_bytes(p.device)
    if elems > max_elems:
        return f"N*in*out = {elems:.3g} > {max_elems:.3g} (pykan forms (N, in, out) tensors)"
    if avail is not None and est > 0.5 * avail:
        return f"estimated pykan footprint {est / 2**30:.1f} GiB > half the free memory ({avail / 2**30:.1f} GiB)"
    return None


#: rough peak of a fwd+bwd call, in units of the dense basis (N, in, G+k)
#: (from run.py's peak-memory column: reference ~9x, inkan and flashkan ~2-3x)
DENSE_BASIS_FACTOR = {"reference": 10, "inkan": 3, "flashkan": 3}


def dense_too_big(p: Problem, name: str) -> str | None:
    """Reason to skip an implementation that materialises the dense basis
    (reference, inkan, flashkan) because it would not fit in memory, or None."""
    factor = DENSE_BASIS_FACTOR.get(name)
    if factor is None:
        return None
    itemsize = torch.empty((), dtype=p.dtype).element_size()
    est = factor * p.batch * p.inp * (p.grid + p.k) * itemsize
    avail = available_memory_bytes(p.device)
    if avail is not None and est > 0.5 * avail:
        return (f"estimated footprint {est / 2**30:.1f} GiB (dense (N, in, G+k) basis) "
                f"> half the free memory ({avail / 2**30:.1f} GiB)")
    return None


def available_memory_bytes(device: str) -> int | None:
    try:
        if device.startswith("cuda"):
            return torch.cuda.mem_get_info(torch.device(device))[0]
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except Exception:
        return None
    return None


# ------------------------------------------------------------------ agreement
def tolerance(dtype: torch.dtype, precision: str = "strict") -> float:
    """Agreement tolerance (max |err| / max |ref|) of a dtype and precision:
    TF32 and 16-bit autocast round every operand to 10 / 8 mantissa bits."""
    if precision != "strict" and dtype == torch.float32:
        return {"tf32": 5e-3, "fp16": 1e-2, "bf16": 3e-2}[precision]
    return {torch.float64: 1e-10, torch.float32: 2e-5}.get(dtype, 2e-2)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b| (NaN-aware: any NaN mismatch gives inf)."""
    a, b = a.detach().double(), b.detach().double()
    if a.shape != b.shape:
        return float("inf")
    if not torch.equal(torch.isnan(a), torch.isnan(b)):
        return float("inf")
    ok = ~torch.isnan(b)
    scale = b[ok].abs().max().item() if ok.any() else 0.0
    diff = (a[ok] - b[ok]).abs().max().item() if ok.any() else 0.0
    return diff / max(scale, 1e-30)


def _grads(y: torch.Tensor, wrt: list) -> list:
    g = torch.Generator().manual_seed(7)
    gy = torch.randn(y.shape, generator=g, dtype=torch.float64).to(device=y.device, dtype=y.dtype)
    return list(torch.autograd.grad(y, wrt, gy))


def check_own(impl: Impl, p: Problem, P: dict, x: torch.Tensor) -> dict:
    """Forward and all gradients of kanext / kanext.ops against the reference."""
    from kanext import reference

    xr = x.detach().clone().requires_grad_(True)
    xi = x.detach().clone().requires_grad_(True)
    if impl.name == "kanext":
        # unfolded pykan parametrisation, differentiated w.r.t. coef, scale_base, scale_sp
        leaves = {n: _leaf(P[n]) for n in ("coef", "scale_base", "scale_sp")}
        y_ref = reference.kan_layer(xr, P["grid"], p.k, "silu", leaves["coef"], leaves["scale_base"],
                                    leaves["scale_sp"], P["mask"])
        ref_wrt = [xr, leaves["coef"], leaves["scale_base"], leaves["scale_sp"]]
        names = ["x", "coef", "scale_base", "scale_sp"]
        imp_wrt = [xi] + [getattr(impl.module, n) for n in names[1:]]
    else:
        Wb, Wc = _folded(P)
        y_ref = reference.kan_linear(xr, P["grid"], p.k, "silu", Wb, Wc)
        ref_wrt, names = [xr, Wb, Wc], ["x", "Wb", "Wc"]
        imp_wrt = [xi] + impl.params
    y = impl.forward(xi)
    errs = {"y": rel_err(y, y_ref)}
    for n, a, b in zip(names, _grads(y, imp_wrt), _grads(y_ref, ref_wrt)):
        errs["grad_" + n] = rel_err(a, b)
    tol = tolerance(p.dtype, p.precision)
    return {"errors": errs, "tol": tol, "ok": all(e <= tol for e in errs.values())}


def check_peer(impl: Impl, p: Problem, P: dict, x: torch.Tensor) -> dict:
    """Forward of a mapped peer against the reference (no gradients needed)."""
    from kanext import reference

    with torch.no_grad():
        y_ref = reference.kan_linear(x, P["grid"], p.k, "silu", P["Wb"], P["Wc"])
        y = impl.forward(x)
    err = rel_err(y, y_ref)
    # peers use other (closed-form) basis formulas: allow a little more rounding
    tol = 50 * tolerance(p.dtype) if p.precision == "strict" else 2 * tolerance(p.dtype, p.precision)
    return {"errors": {"y": err}, "tol": tol, "ok": err <= tol}


# ------------------------------------------------------------------- timing
def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


GRADS = ("sum", "dense")


def step_fns(impl: Impl, x: torch.Tensor, grad: str = "sum") -> dict:
    """The three timed workloads; each returns what it must keep alive.

    fwd_bwd's backward starts from y.sum() (grad="sum": grad y is a scalar
    expanded to y's shape, stride 0, which an implementation may read as one
    row) or from a dense random grad y made once per shape (grad="dense",
    y.backward(g): what a training loss hands the layer)."""
    if grad not in GRADS:
        raise ValueError(f"step_fns: grad must be one of {GRADS}, got {grad!r}")
    seeds = {}

    def fwd():
        return impl.forward(x)

    def fwd_nograd():
        with torch.no_grad():
            return impl.forward(x)

    def fwd_bwd():
        for q in impl.params:
            q.grad = None  # optimizer.zero_grad(set_to_none=True)
        y = impl.forward(x)
        if grad == "sum":
            y.sum().backward()
        else:
            if "g" not in seeds:
                gen = torch.Generator(device="cpu").manual_seed(1234)
                seeds["g"] = torch.randn(y.shape, generator=gen, dtype=y.dtype).to(y.device)
            y.backward(seeds["g"])
        return y

    return {"fwd": fwd, "fwd_nograd": fwd_nograd, "fwd_bwd": fwd_bwd}


def time_fn(fn, device: str, repeat: int, warmup: int, budget_s: float, min_sample_s: float = 0.02) -> dict:
    """Median per-call seconds over `repeat` samples; each sample runs the call
    `number` times so that it lasts >= min_sample_s. Stops early (>= 3 samples)
    once `budget_s` is spent."""
    for _ in range(max(warmup, 1)):
        fn()
    synchronize(device)
    t0 = time.perf_counter()
    fn()
    synchronize(device)
    one = time.perf_counter() - t0
    number = max(1, int(math.ceil(min_sample_s / max(one, 1e-9))))
    samples = []
    start = time.perf_counter()
    for _ in range(max(repeat, 1)):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        synchronize(device)
        samples.append((time.perf_counter() - t0) / number)
        if len(samples) >= 3 and time.perf_counter() - start > budget_s:
            break
    return {"median_s": statistics.median(samples), "min_s": min(samples), "samples": len(samples),
            "number": number}


# ------------------------------------------------------------------- memory
def _allocation_events(prof):
    from torch._C._profiler import _EventType

    out, stack = [], list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        e = stack.pop()
        if e.tag == _EventType.Allocation:
            out.append((e.start_time_ns, e.extra_fields.alloc_size, str(e.extra_fields.device)))
        stack.extend(e.children)
    out.sort(key=lambda t: t[0])
    return out


def peak_extra_bytes(fn, device: str):
    """Peak bytes of tensor memory allocated (and still live) during one call,
    on top of what existed before it (parameters, x, ...).

    CUDA: torch.cuda.max_memory_allocated() - memory_allocated() before.
    CPU: torch.profiler(profile_memory=True) records every allocation and free
    made through PyTorch's CPU allocator (including at::empty/zeros inside C++
    kernels and inductor-generated code, on all threads); the running sum of
    their sizes, in time order, peaks at the returned value. Memory a kernel
    takes from malloc/new or the stack directly is not seen.
    """
    synchronize(device)
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        keep = fn()
        synchronize(device)
        peak = torch.cuda.max_memory_allocated() - base
        del keep
        return peak
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        keep = fn()
    del keep
    live = peak = 0
    for _, size, dev in _allocation_events(prof):
        if dev.startswith("cpu"):
            live += size
            peak = max(peak, live)
    return peak


# ---------------------------------------------------------------- CPU load
class OtherCpuUse:
    """Share of all CPUs' time used by other processes between start() and stop():
    system non-idle time (/proc/stat) minus this process's own CPU time."""

    def _snap(self):
        with open("/proc/stat") as f:
            v = [int(t) for t in f.readline().split()[1:]]
        tck = os.sysconf("SC_CLK_TCK")
        t = os.times()
        own = (t.user + t.system + t.children_user + t.children_system) * tck
        return sum(v), sum(v) - v[3] - v[4], own

    def start(self):
        try:
            self.s0 = self._snap()
        except (OSError, ValueError, IndexError, AttributeError):
            self.s0 = None
        return self

    def stop(self):
        if self.s0 is None:
            return None
        try:
            t1, b1, o1 = self._snap()
        except (OSError, ValueError, IndexError, AttributeError):
            return None
        t0, b0, o0 = self.s0
        return max(0.0, ((b1 - b0) - (o1 - o0)) / max(t1 - t0, 1))


def cpu_busy(seconds: float = 1.0):
    """Fraction of all CPUs' time spent non-idle over `seconds` (from /proc/stat)."""

    def snap():
        with open("/proc/stat") as f:
            v = [int(t) for t in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]  # total, idle + iowait

    try:
        t0, i0 = snap()
        time.sleep(seconds)
        t1, i1 = snap()
        return 1.0 - (i1 - i0) / max(t1 - t0, 1)
    except (OSError, ValueError, IndexError):
        return None


def loadavg():
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def wait_quiet(seconds: float):
    """CPU busy fraction (cpu_busy) now; if above 10%, re-measure every few
    seconds for up to `seconds` until it drops below. Returns the last value."""
    busy = cpu_busy()
    deadline = time.monotonic() + seconds
    while busy is not None and busy > 0.1 and time.monotonic() < deadline:
        time.sleep(2)
        busy = cpu_busy(3.0)
    return busy


def print_cpu_busy(busy, device: str = "cpu") -> None:
    """The header line of a benchmark about the load measured before its start."""
    if busy is None:
        return
    la = loadavg()
    print(f"# CPU busy before start: {100 * busy:.0f}% of {os.cpu_count()} logical CPUs over 1 s"
          + (f" (load average 1 min {la:.2f})" if la is not None else ""))
    if busy > 0.2 and not device.startswith("cuda"):
        print("# WARNING: other processes are using the CPUs; timings will be noisy")


def pykan_setup(threads: int | None = None):
    """For the *_vs_pykan scripts: applies --threads, imports pykan (exits with a
    message when it is missing) and makes float64 torch's default dtype, since
    pykan builds its models in the default dtype. Returns the kan module."""
    import sys

    if threads:
        torch.set_num_threads(threads)
    try:
        import kan
    except ImportError:
        sys.exit("pykan is not installed (pip install -r requirements/test.txt)")
    torch.set_default_dtype(torch.float64)
    return kan
