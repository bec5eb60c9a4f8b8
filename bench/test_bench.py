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


def test_step_fns_grad_modes():
    """fwd_bwd's two backward seeds: 'sum' gives the gradients of y.sum(),
    'dense' those of y.backward(g) for one fixed random g (the same g on every
    call), and anything else is refused."""
    p = H.Problem(batch=37, inp=5, out=7, grid=4, k=3, dtype=torch.float64, device="cpu")
    P, x = H.master_params(p), H.make_input(p)
    impl = H.BUILDERS["kanext"](p, P)
    grads = {}
    for grad in H.GRADS:
        fn = H.step_fns(impl, x, grad)["fwd_bwd"]
        y = fn()
        first = [q.grad.clone() for q in impl.params]
        fn()
        assert all(torch.equal(a, q.grad) for a, q in zip(first, impl.params)), grad
        grads[grad] = (y.detach(), first)
    y = impl.forward(x)
    g = torch.randn(y.shape, generator=torch.Generator().manual_seed(1234), dtype=y.dtype)
    for grad, seed in (("sum", torch.ones_like(y)), ("dense", g)):
        exp = torch.autograd.grad(y, impl.params, seed, retain_graph=True)
        for a, e in zip(grads[grad][1], exp):
            torch.testing.assert_close(a, e, rtol=1e-12, atol=1e-12)
    assert not torch.equal(grads["sum"][1][0], grads["dense"][1][0])
    with pytest.raises(ValueError, match="grad must be one of"):
        H.step_fns(impl, x, "mean")


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


# ------------------------------------------------- sweep.py: crashes, memory cap, incremental output, --resume
import json  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

SWEEP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sweep.py")
#: tiny float64 shapes at width 8, G=5, with the smallest budget the flags allow
SWEEP_TINY = ("--width", "8", "--grid", "5", "--dtype", "float64", "--budget", "0.01", "--repeat", "3",
              "--warmup", "1")


def _sweep(tmp_path, *args, fault="", plot=False):
    env = dict(os.environ, KANEXT_SWEEP_FAULT=fault)
    extra = ("--plot", str(tmp_path / "sweep.png")) if plot else ("--no-plot",)
    return subprocess.Popen([sys.executable, SWEEP, *SWEEP_TINY, "--json", str(tmp_path / "sweep.json"), *extra,
                             *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _rows(tmp_path):
    with open(tmp_path / "sweep.json") as f:
        return json.load(f)["rows"]


def test_sweep_survives_a_killed_peer_and_a_killed_kanext(tmp_path):
    """A peer whose child is SIGKILLed (as by the OOM killer) is noted and the shape re-run without it;
    a killed kanext makes a FAILED row; either way the sweep goes on to the next shape."""
    proc = _sweep(tmp_path, "--batch", "64,128,256", "--peers", "reference",
                  fault="reference:kill@64,kanext:kill@128")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, out + err
    r64, r128, r256 = _rows(tmp_path)
    assert r64["notes"][0] == "reference killed (signal 9 SIGKILL, likely out of memory); shape re-run without it"
    assert set(r64["times"]) == {"floor", "kanext"} and r64["child_runs"] == 2 and r64["best_peer"] is None
    assert r128["failed"] == "kanext killed (signal 9 SIGKILL, likely out of memory)" and not r128["times"]
    assert set(r256["times"]) == {"floor", "kanext", "reference"} and r256["notes"] == []
    assert r256["child_runs"] == 1 and r256["best_peer"] == "reference"
    assert "FAILED: kanext killed" in out and "1 failed" in out


def test_sweep_memory_errors_and_the_address_space_cap(tmp_path):
    """A peer raising MemoryError is a failed peer; an allocation of all the free memory (never touched)
    fails under the default --mem-cap instead of succeeding."""
    proc = _sweep(tmp_path, "--batch", "64", "--peers", "reference,inkan", fault="reference:alloc,inkan:memory")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, out + err
    (row,) = _rows(tmp_path)
    assert row["notes"][0].startswith("reference failed: RuntimeError:") and "can't allocate memory" in row["notes"][0]
    assert row["notes"][1] == "inkan failed: MemoryError: KANEXT_SWEEP_FAULT inkan:memory"
    assert set(row["times"]) == {"floor", "kanext"} and row["mem_cap_bytes"] > 0


def test_sweep_writes_json_and_plot_per_shape_and_resumes(tmp_path):
    """Kill the sweep itself after its first row: the JSON holds that row and the plot exists; --resume then
    keeps it and measures only the other shape."""
    args = ("--batch", "64,128", "--peers", "")
    proc = _sweep(tmp_path, *args, plot=True)
    for line in proc.stdout:
        if line.startswith("| float64"):
            break
    assert "|     64 |" in line  # sweep.py writes the JSON and the plot before it prints the row
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    first = _rows(tmp_path)
    assert [r["batch"] for r in first] == [64] and "kanext_over_floor" in first[0]
    assert (tmp_path / "sweep.png").stat().st_size > 0

    proc = _sweep(tmp_path, *args, "--resume")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, out + err
    assert "--resume: 1 rows kept" in out and "1 of 2 shapes already there are skipped" in out
    rows = _rows(tmp_path)
    assert [r["batch"] for r in rows] == [64, 128] and rows[0] == first[0]
    assert sum(line.startswith("| float64") for line in out.splitlines()) == 1

    r = subprocess.run([sys.executable, SWEEP, "--resume", "--no-plot"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--resume needs --json" in r.stderr


def test_sweep_stops_when_kanext_disagrees(tmp_path):
    """A kanext that disagrees with the reference (in its child) still stops the sweep with status 1,
    its FATAL row written and the next shape not run."""
    proc = _sweep(tmp_path, "--batch", "64,128", "--peers", "", fault="kanext:disagree@64")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, out + err
    (row,) = _rows(tmp_path)
    assert row["fatal"].startswith("kanext disagrees with kanext.reference: y_all_rows=")
    assert row["child_runs"] == 1 and "running" not in row and "not benchmarking a wrong kernel" in err

    proc = _sweep(tmp_path, "--batch", "64,128", "--peers", "", "--resume")  # the FATAL row is checked again
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0 and "--resume: 0 rows kept" in out, out + err
    assert [("kanext_over_floor" in r, r["batch"]) for r in _rows(tmp_path)] == [(True, 64), (True, 128)]


def test_sweep_shape_timeout_ends_a_hung_child(tmp_path):
    """--shape-timeout ends a child that hangs (here in kanext's timing: a FAILED row) and the sweep goes on."""
    proc = _sweep(tmp_path, "--batch", "64,128", "--peers", "", "--shape-timeout", "12", fault="kanext:hang@64")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, out + err
    r64, r128 = _rows(tmp_path)
    assert r64["failed"] == "kanext timed out (ended after --shape-timeout 12 s)"
    assert "kanext_over_floor" in r128
