"""pytest-benchmark benchmarks: one KAN layer, forward + backward.

    pytest bench/ --benchmark-only [--benchmark-json out.json]

Parametrised over implementation (kanext, kanext.ops, reference and the
installed peers pykan, inkan, flashkan) x G in {5, 20}, at N=1024,
256 -> 256, k=3, float32. Set KANEXT_BENCH_DEVICE=cuda to run on a GPU.

Every implementation is built from the same seeded parameters (see
harness.py) and checked against kanext.reference inside the fixture before it
is timed: kanext/kanext.ops on the forward and all gradients, the peers on
the forward. A disagreement fails the test, so a wrong kernel is never
benchmarked. Missing peers are skipped.

These live outside tests/, so the main test run (pytest tests/) never
collects them.
"""
from __future__ import annotations

import os

import pytest
import torch

import harness as H

DEVICE = os.environ.get("KANEXT_BENCH_DEVICE", "cpu")
IMPLS = ("kanext", "kanext.ops", "reference", "pykan", "inkan", "flashkan")
GRIDS = (5, 20)
N, IN, OUT, K = 1024, 256, 256, 3


@pytest.fixture(params=[(i, g) for g in GRIDS for i in IMPLS], ids=lambda t: f"{t[0]}-G{t[1]}")
def checked(request):
    """(problem, impl, workloads) for one implementation that agrees with the reference."""
    name, G = request.param
    if DEVICE.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip("CUDA not available")
    p = H.Problem(batch=N, inp=IN, out=OUT, grid=G, k=K, dtype=torch.float32, device=DEVICE)
    P, x = H.master_params(p), H.make_input(p)
    try:
        impl = H.BUILDERS[name](p, P)
    except H.Unavailable as e:
        pytest.skip(str(e))
    if name in H.OWN:
        res = H.check_own(impl, p, P, x)
    elif name == "reference" or not impl.mapped:
        res = None
    else:
        res = H.check_peer(impl, p, P, x[:256] if name == "pykan" else x)
    if res is not None:
        assert res["ok"], f"{name} disagrees with kanext.reference: {res['errors']} (tol {res['tol']:.0e})"
    fns = H.step_fns(impl, x)
    for _ in range(1 if name == "pykan" else 3):  # warmup, torch.compile of the peers
        fns["fwd_bwd"]()
    H.synchronize(DEVICE)
    return p, impl, fns


def test_fwd_bwd(benchmark, checked):
    p, impl, fns = checked
    step = fns["fwd_bwd"]

    def run():
        step()
        H.synchronize(p.device)

    benchmark.group = f"fwd+bwd N={p.batch} {p.inp}->{p.out} G={p.grid} k={p.k} {p.device}"
    benchmark.extra_info.update(impl=impl.name, version=impl.version, note=impl.note,
                                threads=torch.get_num_threads())
    benchmark(run)


# ------------------------------------------------- SplineActivation (LAN)
import spline_activation as SA  # noqa: E402  (bench/ is on sys.path under pytest)

SA_N, SA_C = 65536, 1024


@pytest.mark.parametrize("impl", ["SplineActivation", "silu"])
def test_spline_activation_fwd_bwd(benchmark, impl):
    """SplineActivation forward+backward vs torch silu's on the same (65536, 1024) float32 tensor."""
    torch.set_num_threads(2)
    act, z, ours, silu = SA.step_fns(SA_N, SA_C, 5, 3, torch.float32)
    SA.check(act, z)
    fn = ours if impl == "SplineActivation" else silu
    fn()
    benchmark.pedantic(fn, rounds=5, iterations=1, warmup_rounds=1)
