"""Step 3 of design T (docs/roofline.md section 6) in host emulation: the
warp-specialised wgmma forward of csrc/cuda/kan_linear_tc_v2_ws.cuh (W folded
into the operand layout, one bulk copy per W tile, a producer warpgroup
building the basis tile, two consumer warpgroups, a 2-stage mbarrier ring),
which backend tensor_core_v2 runs. Checked against kanext.reference with the
TF32 tolerance, and bit for bit against step 2 (tc2_forward_kernel) and the
WMMA forward: in emulation all three add the same TF32 products in the same
order. Inputs whose grid the fold finds uniform (tc2::grid_info) are built by
the uniform-grid builder instead (design T item 3): its intervals are the
search's (k = 0: still bit for bit), its values within 2^-17 of the general
builder's, so there the comparison with steps 1 and 2 is a bound
(same_as_general), and the decision itself is tested (test_uniform_*).

    python -m pytest tests/emu/test_emu_tc_v2_ws.py -m emu -q

What this cannot show: that the GPU agrees with this reading of the ISA, or
any timing. No GPU has run it.
"""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from emulator import BASES, knot_x, p, poisoned
from helpers import assert_tc_close as check
from helpers import dense_in_dtype as dense_torch
from test_emu_tc import TC_DTYPES, exact, rounded_case, tc_forward
from test_emu_tc_v2 import (SHAPES, check_empty_sizes, check_nan_inf_policy, grid_cases, lib, same_bits_as_v1,
                            v2_forward)

from kanext import ops
from kanext import reference as ref

pytestmark = pytest.mark.emu


FAULT_SKIP_FULL_WAIT, FAULT_NO_EMPTY_ARRIVE = 1, 2  # tc2::kFault* in kan_linear_tc_v2_ws.cuh


def ws_forward(x, grid, k, base, Wb, Wc, fault=0):
    """The v2 forward in x's dtype (float32: TF32; bfloat16 / float16: the
    16-bit kernel), its workspace poisoned."""
    x, Wb, Wc = (t.contiguous() for t in (x, Wb, Wc))
    grid = grid.float().contiguous()
    N, inf = x.shape
    out = Wb.shape[1]
    y = poisoned((N, out), x.dtype)
    rc = lib().emu_tc_v2_forward(TC_DTYPES[x.dtype], p(x), p(grid), N, inf, grid.shape[1], k, base, p(Wb), p(Wc),
                                 out, p(y), fault)
    assert rc == 0
    return y


def uniform_inputs(grid):
    """Per input, whether step 3 builds it with the uniform-grid fast path
    (the fold's decision, tc2::grid_info, evaluated on the host)."""
    g = grid.float().contiguous()
    flags = torch.zeros(g.shape[0], dtype=torch.int32)
    lib().emu_tc_v2_uniform_inputs(p(g), g.shape[0], g.shape[1], p(flags))
    return flags.bool()


# Per storage dtype: the operand's rounding unit (one ulp, relative: TF32 and
# float16 have 10 fraction bits, bfloat16 7) and that of the stored y (float32:
# none that matters here).
OP_ULP = {torch.float32: 2.0**-10, torch.bfloat16: 2.0**-7, torch.float16: 2.0**-10}
OUT_ULP = {torch.float32: 0.0, torch.bfloat16: 2.0**-7, torch.float16: 2.0**-10}


def same_as_general(y3, y_gen, x, grid, k, base, Wb, Wc):
    """y3 (step 3) against y_gen (step 2 or the WMMA forward, the general
    builder), in y3's dtype: bit for bit when no input takes the fast path or
    k = 0 (the fast path's intervals are the search's and its order-0 values
    are 1); otherwise per output within 2 u sum |A| |W| (an A entry of the
    two builders differs by at most one operand rounding unit u, 2^-10
    relative for TF32, after values that differ by float rounding) plus
    2 dev sum_i,g |Wc| with dev = 2 (2^-18 + 2^-21 max|t| / h) per input
    (what a grid at tc2::grid_info's tolerance may move a basis), plus, for
    16-bit y, two units of y's own rounding (two float32 sums that differ by
    e round to values that differ by at most e plus one unit) and float16's
    subnormal spacing; and the same NaN / inf pattern."""
    if k == 0 or not bool(uniform_inputs(grid).any()):
        same_bits_as_v1(y3, y_gen)
        return
    assert torch.equal(torch.isnan(y3), torch.isnan(y_gen))
    assert torch.equal(torch.isinf(y3), torch.isinf(y_gen))
    x64, g64, Wb64, Wc64 = x.double(), grid.double(), Wb.double().abs(), Wc.double().abs()
    A = ref.spline_basis(x64, g64, k).abs()
    b = torch.nan_to_num(ref.base_function(base, x64).abs(), nan=0.0)
    h = (g64[:, -1] - g64[:, 0]) / (g64.shape[1] - 1)
    dev = 2 * (2.0**-18 + 2.0**-21 * torch.maximum(g64[:, 0].abs(), g64[:, -1].abs()) / h)
    u, uy = OP_ULP[y3.dtype], OUT_ULP[y3.dtype]
    bound = 2 * u * (torch.einsum("nig,igj->nj", A, Wc64) + b @ Wb64) + 2 * torch.einsum("i,igj->j", dev, Wc64)
    if y3.dtype != torch.float32:
        bound = bound + 2 * uy * y_gen.double().abs() + 2.0**-24
    fin = torch.isfinite(y_gen)
    err = (y3.double() - y_gen.double()).abs()
    assert bool((err[fin] <= bound[fin]).all()), f"max excess {float((err - bound)[fin].max()):.3g}"


def full_check(tag, x, grid, k, base, Wb, Wc, gy):
    """Reference within the TF32 tolerance; against steps 1 and 2 as
    same_as_general says (the same bits unless the fast path builds)."""
    y3 = ws_forward(x, grid, k, BASES[base], Wb, Wc)
    check(tag, y3, exact(x, grid, k, base, Wb, Wc, gy)[0], dense_torch(x, grid, k, base, Wb, Wc, gy)[0],
          torch.float32)
    same_as_general(y3, v2_forward(x, grid, k, BASES[base], Wb, Wc), x, grid, k, base, Wb, Wc)
    same_as_general(y3, tc_forward(x, grid, k, BASES[base], Wb, Wc), x, grid, k, base, Wb, Wc)
    return y3


# Step 2's cases (test_emu_tc_v2.SHAPES x GRIDS: single element, partial row /
# column tiles, two tiles each way, nb1 below, at and above 64), plus k = 0.
@pytest.mark.parametrize("k", (0, 1, 2, 3, 4, 5))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_forward(k, shape):
    for tag, x, grid, base, Wb, Wc, gy in grid_cases(k, shape):
        full_check(tag, x, grid, k, base, Wb, Wc, gy)


# ------------------------------------------------------ 16-bit storage (k16)
# bfloat16 / float16 x, W and y: the same kernel with 16-bit operand tiles
# (16 KB), k16 wgmmas (four per chunk) and the 16-bit W images. Checked
# against the float64 reference on the same rounded values within twice
# PyTorch's own dense error in the dtype (assert_tc_close), and against the
# WMMA forward in the same dtype: in emulation both add the same exact
# products in the same order (chunks in order, k = 0..63 within a chunk), so
# bit for bit on general grids, within same_as_general's bound where the
# uniform-grid builder runs.
HALF = (torch.bfloat16, torch.float16)


def half_check(tag, dtype, x, grid, k, base, Wb, Wc, gy):
    y3 = ws_forward(x, grid, k, BASES[base], Wb, Wc)
    assert y3.dtype == dtype
    check(tag, y3, exact(x, grid, k, base, Wb, Wc, gy)[0], dense_torch(x, grid, k, base, Wb, Wc, gy)[0], dtype)
    same_as_general(y3, tc_forward(x, grid, k, BASES[base], Wb, Wc), x, grid, k, base, Wb, Wc)
    return y3


@pytest.mark.parametrize("dtype", HALF, ids=("bf16", "f16"))
@pytest.mark.parametrize("k", (0, 1, 3, 5))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_forward_16bit_shapes(dtype, k, shape):
    N, inf, out = shape
    for gi, (G, kind) in enumerate(((1, "uniform"), (5, "nonuniform"), (60, "skewed"))):
        base = list(BASES)[(gi + k) % 3]
        x, grid, Wb, Wc, gy = rounded_case(dtype, k, G, kind, N, inf, out, seed=N + inf + out + 7 * k + G)
        half_check(f"y {dtype} k={k} G={G} {kind} base={base}", dtype, x, grid, k, base, Wb, Wc, gy)


@pytest.mark.parametrize("dtype", HALF, ids=("bf16", "f16"))
def test_16bit_general_grid_same_bits_as_wmma(dtype):
    """Non-uniform knots (the general builder): the WMMA forward's bits,
    over a ring that wraps (4 chunks per tile, 2 x 2 tiles) and x outside the grid."""
    x, grid, Wb, Wc, gy = rounded_case(dtype, 3, 5, "nonuniform", 200, 24, 150, seed=41)
    assert not bool(uniform_inputs(grid).any())
    x[::7] = (x[::7].float() * 30.0).to(dtype)
    y3 = half_check(f"y {dtype}", dtype, x, grid, 3, "silu", Wb, Wc, gy)
    assert torch.equal(y3.view(torch.int16), tc_forward(x, grid, 3, BASES["silu"], Wb, Wc).view(torch.int16))


@pytest.mark.parametrize("dtype", HALF, ids=("bf16", "f16"))
def test_16bit_grid_stride(dtype, monkeypatch):
    """At most 2 blocks per grid dimension: a block walks several tiles, the
    ring's count runs on across them."""
    monkeypatch.setenv("EMU_MAX_GRID", "2")
    x, grid, Wb, Wc, gy = rounded_case(dtype, 2, 6, "nonuniform", 300, 20, 300, seed=5)
    half_check(f"y {dtype}", dtype, x, grid, 2, "identity", Wb, Wc, gy)


@pytest.mark.parametrize("dtype", HALF, ids=("bf16", "f16"))
def test_16bit_nan_inf_policy(dtype):
    """As in float32: a NaN x makes its output row NaN, +-inf x adds only its
    base term; on a uniform grid (the fast path) and a general one."""
    for kind in ("uniform", "nonuniform"):
        x, grid, Wb, Wc, gy = rounded_case(dtype, 3, 5, kind, 40, 6, 9, seed=3)
        x[4, 2], x[9, 0], x[7, 1], x[8, 3] = math.nan, math.nan, math.inf, -math.inf
        y = ws_forward(x, grid, 3, 2, Wb, Wc)
        assert torch.isnan(y[4]).all() and torch.isnan(y[9]).all()
        cpu = ops.kan_linear(x.float(), grid, 3, "silu", Wb.float(), Wc.float())
        assert torch.equal(torch.isnan(y), torch.isnan(cpu))
        assert torch.equal(torch.isinf(y), torch.isinf(cpu))
        same_as_general(y, tc_forward(x, grid, 3, 2, Wb, Wc), x, grid, 3, "silu", Wb, Wc)


@pytest.mark.parametrize("dtype", HALF, ids=("bf16", "f16"))
def test_16bit_empty_sizes(dtype):
    for N, inf, out in ((0, 3, 4), (5, 3, 0), (5, 0, 4)):
        x, grid, Wb, Wc, gy = rounded_case(dtype, 3, 5, "uniform", max(N, 1), max(inf, 1), max(out, 1), seed=1)
        x, Wb, Wc, grid = x[:N, :inf], Wb[:inf, :out], Wc[:inf, :, :out], grid[:max(inf, 1)]
        y = ws_forward(x, grid, 3, 2, Wb, Wc)
        assert y.shape == (N, out) and y.dtype == dtype
        if N and out:
            assert torch.equal(y, torch.zeros(N, out, dtype=dtype))


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
    """On a uniform grid: the NaN / inf policy of the fast path."""
    assert bool(uniform_inputs(rounded_case(torch.float32, 3, 5, "uniform", 1, 6, 1, seed=3)[1]).all())
    check_nan_inf_policy(ws_forward,
                         lambda y, y1, x, grid, Wb, Wc: same_as_general(y, y1, x, grid, 3, "silu", Wb, Wc))


def test_nan_inf_policy_general_builder():
    x, grid, Wb, Wc, gy = rounded_case(torch.float32, 3, 5, "nonuniform", 40, 6, 9, seed=3)
    assert not bool(uniform_inputs(grid).any())
    x[4, 2], x[7, 1], x[8, 3] = float("nan"), float("inf"), -float("inf")
    y = ws_forward(x, grid, 3, 2, Wb, Wc)
    assert torch.isnan(y[4]).all() and not torch.isnan(y[:4]).any()
    assert torch.equal(torch.isnan(y), torch.isnan(ops.kan_linear(x, grid, 3, "silu", Wb, Wc)))
    same_bits_as_v1(y, tc_forward(x, grid, 3, 2, Wb, Wc))


# The uniform-grid builder (design T item 3).
def nudged(grid, ulps, seed):
    """grid with every knot moved by a random -ulps..ulps float32 steps."""
    g = grid.float().clone()
    steps = torch.randint(-ulps, ulps + 1, g.shape, generator=torch.Generator().manual_seed(seed))
    for _ in range(ulps):
        up, down = steps > 0, steps < 0
        g = torch.where(up, torch.nextafter(g, torch.full_like(g, float("inf"))), g)
        g = torch.where(down, torch.nextafter(g, torch.full_like(g, -float("inf"))), g)
        steps = steps - up.int() + down.int()
    return g


def moved_knot(grid, i, m, frac):
    """grid with knot m of input i moved by frac times the input's spacing."""
    g = grid.float().clone()
    h = float(g[i, -1] - g[i, 0]) / (g.shape[1] - 1)
    g[i, m] = g[i, m] + frac * h
    return g


def test_uniform_decision():
    """Which inputs the fold hands to the fast path: pykan's uniform grids
    (float32 linspace, so not exactly uniform) and those nudged by one ulp per
    knot, or one knot moved by 2^-20 spacings: yes; non-uniform and skewed
    grids, one knot moved by 2^-12 spacings (past the tolerance, 2^-18
    spacings plus four half-ulps of the largest knot), a NaN or an infinite
    knot: no."""
    for G, k in ((1, 0), (5, 3), (60, 5), (100, 1)):
        grid = rounded_case(torch.float32, k, G, "uniform", 1, 4, 1, seed=G)[1]
        assert bool(uniform_inputs(grid).all()), (G, k)
        assert bool(uniform_inputs(nudged(grid, 1, seed=G)).all()), (G, k)
        assert bool(uniform_inputs(moved_knot(grid, 1, 1, 2.0**-20)).all()), (G, k)
        if grid.shape[1] > 2:  # an interior knot exists
            assert uniform_inputs(moved_knot(grid, 1, 1, 2.0**-12)).tolist() == [True, False, True, True]
            assert uniform_inputs(moved_knot(grid, 2, grid.shape[1] - 2, -2.0**-12)).tolist() == [
                True, True, False, True]
        for bad in (float("nan"), float("inf")):
            g = grid.clone()
            g[3, -1] = bad
            assert uniform_inputs(g).tolist() == [True, True, True, False]
    for kind in ("nonuniform", "skewed"):
        assert not bool(uniform_inputs(rounded_case(torch.float32, 3, 5, kind, 1, 4, 1, seed=1)[1]).any())


def test_uniform_fast_path_runs():
    """The fast path does build: on a uniform grid at k = 3 its y differs
    from step 2's somewhere (other roundings of the same bases), while the
    same case on a grid just past the tolerance gives step 2's bits."""
    x, grid, Wb, Wc, gy = rounded_case(torch.float32, 3, 5, "uniform", 70, 7, 5, seed=4)
    y3 = full_check("y uniform", x, grid, 3, "silu", Wb, Wc, gy)
    assert not torch.equal(y3, v2_forward(x, grid, 3, 2, Wb, Wc))
    off = grid.float().clone()
    for i in range(off.shape[0]):
        off = moved_knot(off, i, 3, 2.0**-12)
    assert not bool(uniform_inputs(off).any())
    full_check("y just past the tolerance", x, off, 3, "silu", Wb, Wc, gy)  # bit for bit (general builder)


@pytest.mark.parametrize("k", (0, 1, 2, 3, 4, 5))
def test_uniform_knots_and_ulp_nudged(k):
    """x on every knot and one float step either side of it, x outside the
    grid, on a uniform grid and on the same grid with every knot nudged by up
    to 2 ulps (still uniform for the decision): the intervals are the
    search's (k = 0: bit for bit with step 2), the values within the bound."""
    G, inf, out = 5, 6, 20
    x0, grid, Wb, Wc, gy0 = rounded_case(torch.float32, k, G, "uniform", 40, inf, out, seed=30 + k)
    for g in (grid.float(), nudged(grid, 2, seed=k)):
        assert bool(uniform_inputs(g).all())
        x = torch.cat([knot_x(g), x0, x0[:8] * 40.0 + 7.0, -x0[8:16].abs() * 40.0 - 7.0])
        gy = torch.cat([gy0] * (x.shape[0] // gy0.shape[0] + 1))[: x.shape[0]]
        full_check(f"y k={k} uniform knots", x, g, k, "silu", Wb, Wc, gy)


@pytest.mark.parametrize("G,k", ((60, 3), (1, 5), (2, 0)))
def test_uniform_wide_and_tiny_grids(G, k):
    """nb1 > 64 (each input over two chunks, the base column in the second)
    and the smallest grids, uniform, x on the knots and around them."""
    x0, grid, Wb, Wc, gy0 = rounded_case(torch.float32, k, G, "uniform", 30, 3, 9, seed=G + k)
    assert bool(uniform_inputs(grid).all())
    x = torch.cat([knot_x(grid.float()), x0])
    gy = torch.cat([gy0] * (x.shape[0] // gy0.shape[0] + 1))[: x.shape[0]]
    full_check(f"y G={G} k={k}", x, grid, k, "identity", Wb, Wc, gy)


def test_uniform_decision_and_guess_at_the_float_range():
    """Grids spanning most of float32's range. 7 knots on [-3e38, 3e38]: 1/h
    (1e-38) is subnormal, which a flush-to-zero build would read as 0, so the
    decision must say no. 9 knots (1/h = 1.33e-38, normal): yes, and there
    x - t[0] overflows to inf for x past about 4e37, so the interval guess
    must not convert inf to int (the host's conversion gives INT_MIN: an
    index far out of the knot row); the clamped guess, corrected against the
    knots, gives the search's interval. Both against the general builder and
    the reference."""
    g7 = torch.linspace(-3e38, 3e38, 7, dtype=torch.float64).float().repeat(2, 1)  # (float32 linspace overflows)
    assert bool(torch.isfinite(g7).all())
    assert not bool(uniform_inputs(g7).any())
    k, inf, out = 3, 2, 5
    grid = torch.linspace(-3e38, 3e38, 9, dtype=torch.float64).float().repeat(inf, 1)
    assert bool(uniform_inputs(grid).all())
    gen = torch.Generator().manual_seed(5)
    x = torch.cat([knot_x(grid), (torch.rand(24, inf, generator=gen) * 2 - 1) * 2.9e38])
    Wb = torch.randn(inf, out, generator=gen) * 1e-3  # b(x) W_b stays inside float32 for the identity base
    Wc = torch.randn(inf, grid.shape[1] - k - 1, out, generator=gen)
    gy = torch.randn(x.shape[0], out, generator=gen)
    for base in ("zero", "identity"):
        full_check(f"y float range {base}", x, grid, k, base, Wb, Wc, gy)


def test_uniform_and_general_inputs_in_one_chunk():
    """Per-input decision: uniform and non-uniform inputs alternate inside
    the chunks, each built by its own builder."""
    k, G, inf = 3, 5, 12
    x0, gu, Wb, Wc, gy = rounded_case(torch.float32, k, G, "uniform", 60, inf, 30, seed=41)
    gn = rounded_case(torch.float32, k, G, "nonuniform", 1, inf, 1, seed=42)[1]
    grid = gu.float().clone()
    grid[1::2] = gn.float()[1::2]
    assert uniform_inputs(grid).tolist() == [True, False] * (inf // 2)
    x = torch.cat([knot_x(grid), x0])
    gy = torch.cat([gy] * 3)[: x.shape[0]]
    full_check("y mixed", x, grid, k, "zero", Wb, Wc, gy)


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
assert lib().emu_tc_v2_forward(0, p(x), p(grid), N, inf, grid.shape[1], 3, 2, p(Wb), p(Wc), out, p(y), {fault}) == 0
print("returned nan=%d" % int(torch.isnan(y).any()))
"""


def run_snippet(template, **fields):
    """template, formatted with fields and the folders {here}, {tests} and
    {root}, run by a fresh interpreter: (returncode, stdout, stderr)."""
    here = Path(__file__).resolve().parent
    code = template.format(here=str(here), tests=str(here.parent), root=str(here.parents[1]), **fields)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)


def run_faulty(fault, N, inf, out):
    return run_snippet(FAULTY, N=N, inf=inf, out=out, fault=fault)


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
