"""Peak extra memory of one forward+backward at large width: kanext against
inkan and flashkan, each configuration in a fresh process.

    python bench/memory.py                        # the issue-15 sizes: N=2048, 4096 -> 4096, G=5 and 50
    python bench/memory.py --quick                # small sizes, seconds (smoke test)
    python bench/memory.py --batch 1024 --width 2048 --grids 5 20 --peers inkan

Per configuration (library, G) a child process builds the layer with the
shared harness (bench/harness.py: the same parameters for every library),
makes the input, and then measures one forward + y.sum().backward():

- ``alloc``: the peak of tensor memory live during the call beyond what
  existed before it (parameters and input), from torch.profiler's log of
  every allocation through PyTorch's CPU allocator (harness.peak_extra_bytes;
  on CUDA torch.cuda.max_memory_allocated). It includes the parameter
  gradients (as large as the parameters) and the output.
- ``rss``: growth of the process's peak resident set (VmHWM) during the call,
  which also sees memory that bypasses the allocator.

A 3-layer KAN training step (forward, backward, Adam step) of width
``--width`` is measured the same way (``kanext KAN x3``; the optimizer state
is created before the measured step).

What kanext keeps for the backward is O(N (in + out)) (x and the output's
gradient; the bases are recomputed), so its extra memory is the gradients
(in*out*(G+k+2) floats, G-dependent like the parameters themselves) plus
O(N (in + out)); peers that form the (N, in, G+k) basis add N*in*(G+k) floats.
``bytes per sample`` is (alloc at N - alloc at N/2) / (N/2): the memory that
grows with the batch, which must be O(in + out) for kanext, independent of G.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

BUILDERS = {"kanext": H.build_kanext, "inkan": H.build_inkan, "flashkan": H.build_flashkan}


def _hwm_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def measure_one(lib: str, batch: int, width: int, grid: int, k: int, threads: int | None) -> dict:
    """Runs in the child: one configuration's peak extra memory (bytes)."""
    if threads:
        torch.set_num_threads(threads)
    if lib == "kanext-kan3":
        import kanext

        model = kanext.KAN([width] * 4, grid=grid, k=k, seed=0)
        x = torch.rand(batch, width, generator=torch.Generator().manual_seed(1)) * 2 - 1
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        model(x[:2]).sum().backward()
        opt.step()  # Adam's state exists before the measured step
        params = list(model.parameters())

        def step():
            opt.zero_grad(set_to_none=True)
            y = model(x)
            y.pow(2).mean().backward()
            opt.step()
            return y
        fn = step
    else:
        p = H.Problem(batch=batch, inp=width, out=width, grid=grid, k=k)
        impl = BUILDERS[lib](p, H.master_params(p))
        x = H.make_input(p)
        fn = H.step_fns(impl, x)["fwd_bwd"]
        params = impl.params
    grads = sum(q.numel() * q.element_size() for q in params if q.requires_grad)
    before = _hwm_bytes()
    alloc = H.peak_extra_bytes(fn, "cpu")
    rss = max(0, _hwm_bytes() - before)
    return {"alloc": alloc, "rss": rss, "grads": grads}


def _child(args) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--one", json.dumps(args)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        return {"error": last[:160]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=2048)
    ap.add_argument("--width", type=int, default=4096)
    ap.add_argument("--grids", type=int, nargs="+", default=[5, 50])
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--peers", default="inkan,flashkan")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--no-kan3", action="store_true", help="skip the 3-layer KAN training step")
    ap.add_argument("--quick", action="store_true", help="N=256, width 128, G 5 and 50")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.one is not None:
        print(json.dumps(measure_one(**json.loads(a.one))))
        return []
    if a.quick:
        a.batch, a.width = 256, 128
    libs = ["kanext"] + [s for s in a.peers.split(",") if s]
    rows = []
    for G in a.grids:
        for lib in libs + ([] if a.no_kan3 else ["kanext-kan3"]):
            res = _child(dict(lib=lib, batch=a.batch, width=a.width, grid=G, k=a.k, threads=a.threads))
            half = _child(dict(lib=lib, batch=a.batch // 2, width=a.width, grid=G, k=a.k, threads=a.threads))
            if "error" not in res and "error" not in half:  # what one more sample costs
                res["per_sample"] = (res["alloc"] - half["alloc"]) / (a.batch - a.batch // 2)
            rows.append({"lib": lib, "G": G, **res})
    mib = lambda b: f"{b / 2**20:.1f}"  # noqa: E731
    print(f"\n## peak extra memory of one forward+backward, N={a.batch}, {a.width} -> {a.width}, k={a.k}, float32, "
          f"CPU, {torch.get_num_threads() if a.threads is None else a.threads} threads (MiB)\n")
    print("| library | G | alloc | grads | alloc - grads | rss growth | bytes per sample |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        name = "kanext KAN x3 training step" if r["lib"] == "kanext-kan3" else r["lib"]
        if "error" in r:
            print(f"| {name} | {r['G']} | not measured: {r['error']} | | | |")
        else:
            per = f"{r['per_sample']:.0f}" if "per_sample" in r else "-"
            print(f"| {name} | {r['G']} | {mib(r['alloc'])} | {mib(r['grads'])} | {mib(r['alloc'] - r['grads'])} "
                  f"| {mib(r['rss'])} | {per} |")
    print(f"\nbytes per sample: (alloc at N - alloc at N/2) / (N/2), the memory that grows with the batch; "
          f"(in + out) float32 values = {2 * a.width * 4} bytes, in (G+k) = "
          + ", ".join(f"{a.width * (G + a.k) * 4} at G={G}" for G in a.grids)
          + ". alloc - grads also holds what does not grow with the batch (on the CPU kanext folds "
            "the spline weights inside its kernels and keeps no weight-sized temporary; peers and the "
            "CUDA path may).")
    return rows


if __name__ == "__main__":
    main()
