"""Step 3 of design T (docs/roofline.md section 6) in host emulation: the
warp-specialised wgmma forward of csrc/cuda/kan_linear_tc_v2_ws.cuh (W folded
into the operand layout, one bulk copy per W tile, a producer warpgroup
building the basis tile, two consumer warpgroups, a 2-stage mbarrier ring),
which backend tensor_core_v2 runs. Checked against kanext.reference with the
TF32 tolerance, and bit for bit against step 2 (tc2_forward_kernel) and the
WMMA forward: in emulation all three add the same TF32 products in the same
order.

    python -m pytest tests/emu/test_emu_tc_v2_ws.py -m emu -q

What this cannot show: that the GPU agrees with this reading of the ISA, or
any timing. No GPU has run it.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from emulator import BASES, p, poisoned
from helpers import assert_tc_close as check
from helpers import dense_in_dtype as dense_torch
from test_emu_tc import exact, rounded_case, tc_forward
from test_emu_tc_v2 import (SHAPES, check_empty_sizes, check_nan_inf_policy, grid_cases, lib, same_bits_as_v1,
                            v2_forward)

pytestmark = pytest.mark.emu


FAULT_SKIP_FULL_WAIT, FAULT_NO_EMPTY_ARRIVE = 1, 2  # tc2::kFault* in kan_linear_tc_v2_ws.cuh


def ws_forward(x, grid, k, base, Wb, Wc, fault=0):
    x, Wb, Wc = (t.float().contiguous() for t in (x, Wb, Wc))
    grid = grid.float().contiguous()
    N, inf = x.shape
    out = Wb.shape[1]
    y = poisoned((N, out), torch.float32)
    rc = lib().emu_tc_v2_forward(p(x), p(grid), N, inf, grid.shape[1], k, base, p(Wb), p(Wc), out, p(y),
                                 fault)
    assert rc == 0
    return y


def full_check(tag, x, grid, k, base, Wb, Wc, gy):
    """Reference within the TF32 tolerance; the same bits as steps 1 and 2."""
    y3 = ws_forward(x, grid, k, BASES[base], Wb, Wc)
    check(tag, y3, exact(x, grid, k, base, Wb, Wc, gy)[0], dense_torch(x, grid, k, base, Wb, Wc, gy)[0],
          torch.float32)
    same_bits_as_v1(y3, v2_forward(x, grid, k, BASES[base], Wb, Wc))
    same_bits_as_v1(y3, tc_forward(x, grid, k, BASES[base], Wb, Wc))
    return y3


# Step 2's cases (test_emu_tc_v2.SHAPES x GRIDS: single element, partial row /
# column tiles, two tiles each way, nb1 below, at and above 64), plus k = 0.
@pytest.mark.parametrize("k", (0, 1, 2, 3, 4, 5))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_forward(k, shape):
    for tag, x, grid, base, Wb, Wc, gy in grid_cases(k, shape):
        full_check(tag, x, grid, k, base, Wb, Wc, gy)


def test_ring_wraps_many_chunks():
    """40 inputs at G = 5, k = 3 (9 columns with the base: 7 inputs per
    chunk) are 6 chunks: three rounds of the 2-stage ring, phases of both
    parities on every mbarrier."""
    x, grid, Wb, Wc, gy = rounded_case(torch.float32, 3, 5, "nonuniform", 90, 40, 70, seed=11)
    full_check("y 6 chunks", x, grid, 3, "silu", Wb, Wc, gy)


def test_grid_stride_keeps_the_ring_count(monkeypatch):
    """At most 2 blocks per grid dimension: a block runs several tiles and
    the ring's chunk counter (stage and parity) carries over between them
    (5 chunks per tile: odd, so the second tile starts on the other stage)."""
    monkeypatch.setenv("EMU_MAX_GRID", "2")
    x, grid, Wb, Wc, gy = rounded_case(torch.float32, 2, 6, "nonuniform", 300, 5, 300, seed=5)
    full_check("y", x, grid, 2, "identity", Wb, Wc, gy)


def test_outside_grid():
    """x well outside the grid: only the base term (zero bases)."""
    for k in (0, 3):
        x, grid, Wb, Wc, gy = rounded_case(torch.float32, k, 5, "nonuniform", 50, 6, 20, seed=21 + k)
        x[::3] = x[::3] * 40.0 + 7.0
        x[1::3] = -x[1::3].abs() * 40.0 - 7.0
        full_check(f"y k={k}", x, grid, k, "silu", Wb, Wc, gy)


def test_nan_inf_policy():
    check_nan_inf_policy(ws_forward)


def test_empty_sizes():
    """No input: no chunk, and the consumers store y = 0."""
    check_empty_sizes(ws_forward)


# The broken variants run in a subprocess: the emulator may abort the process.
FAULTY = """
import sys, torch
sys.path[:0] = [{here!r}, {tests!r}, {root!r}]
from emulator import p, poisoned
from test_emu_tc import rounded_case
from test_emu_tc_v2 import lib
N, inf, out = {N}, {inf}, {out}
x, grid, Wb, Wc, gy = rounded_case(torch.float32, 3, 5, "uniform", N, inf, out, seed=2)
y = poisoned((N, out), torch.float32)
assert lib().emu_tc_v2_forward(p(x), p(grid), N, inf, grid.shape[1], 3, 2, p(Wb), p(Wc), out, p(y), {fault}) == 0
print("returned nan=%d" % int(torch.isnan(y).any()))
"""


def run_faulty(fault, N, inf, out):
    here = Path(__file__).resolve().parent
    code = FAULTY.format(here=str(here), tests=str(here.parent), root=str(here.parents[1]), N=N, inf=inf, out=out,
                         fault=fault)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)


def test_skipping_the_full_wait_is_caught():
    """Consumers that do not wait on the stage's full mbarrier cannot pass
    unnoticed: either they read the W tile before its bulk copy lands
    (poisoned shared memory: NaN in y), or, depending on the emulator's
    schedule, their early arrivals on empty complete a phase before the
    producer waits for it, the producer then waits on the next phase and the
    emulator reports the deadlock. The same case with the wait is clean."""
    for N, inf, out in ((70, 3, 30), (40, 20, 10)):  # 1 chunk, 3 chunks
        r = run_faulty(FAULT_SKIP_FULL_WAIT, N, inf, out)
        aborted = r.returncode != 0 and "emu" in r.stderr and "returned" not in r.stdout
        assert aborted or (r.returncode == 0 and "returned nan=1" in r.stdout), (r.stdout, r.stderr[-2000:])
        ok = run_faulty(0, N, inf, out)
        assert ok.returncode == 0 and "returned nan=0" in ok.stdout, ok.stderr[-2000:]


def test_consumers_that_never_release_a_stage_deadlock_and_are_caught():
    """Consumers that never arrive on empty: with 5 chunks the producer waits
    for a stage that is never released and the consumers for a stage that is
    never filled again. The emulator's deadlock detection (every runnable
    fiber spins, nothing in flight, no mbarrier changes) aborts the process
    with its message instead of hanging."""
    r = run_faulty(FAULT_NO_EMPTY_ARRIVE, 20, 30, 10)
    assert r.returncode != 0 and "returned" not in r.stdout
    assert "every runnable thread spins on a wait that nothing can complete" in r.stderr
