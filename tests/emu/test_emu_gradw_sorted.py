"""The sorted-rows weight gradient of kan_linear_backward (backend "local_v2"
for G + k > 16: sort_rows_kernel and grad_w_sorted_kernel in
csrc/cuda/kan_linear_backward.cuh, design L.1 of docs/roofline.md) in host
emulation. It sums in another order than grad_w_kernel (rows grouped by
interval), so it is compared with kanext.reference, the CPU op and
grad_w_kernel within TOL, and with itself bit for bit: run to run, across
fiber schedules and across capped grids. The permutation it leaves in the
workspace is checked directly. See tests/emu/emulator.py. Marked ``emu``:
``python -m pytest tests/emu/test_emu_gradw_sorted.py -m emu``."""
from __future__ import annotations

import math

import pytest
import torch
from emulator import (BASES, DTYPES, GRADW_SHAPES, assert_weights_close, case, check_nan_inf_weights, dn,
                      emu_backward, emu_backward_ws, lib)
from helpers import TOL, assert_bitwise_equal, assert_close

REG_ROWS = 16  # kRegRows: above G + k = 16, local_v2's grad W sorts
MAX_KEYS = 360  # kSortMaxKeys: G + 2 sort keys at most, else grad_w_kernel


def weights(gy, x, grid, k, base, Wb, Wc, wgrad="sorted"):
    """(gWb, gWc, workspace bytes) of the emulated backward, weights only."""
    _, gWb, gWc, wsb = emu_backward(gy, x, grid, k, BASES[base], Wb, Wc, need_x=False, need_w=True, wgrad=wgrad)
    return gWb, gWc, wsb


def ws_bytes(N, inf, M, k, out, elem, version):
    return lib().emu_workspace_bytes_version(N, inf, M, k, out, elem, 1, version)


def perm_bytes(N, inf):
    return (inf * N * 4 + 255) // 256 * 256


def check(dtype, k, G, kind, N, inf, out, base, seed, special=True, x=None):
    c = case(dtype, k, G, kind, N, inf, out, seed=seed, special=special)
    if x is not None:
        c = (x,) + c[1:4] + (c[4][: x.shape[0]].contiguous(),)
    x, grid, Wb, Wc, gy = c
    gWb, gWc, wsb = weights(gy, x, grid, k, base, Wb, Wc)
    n = x.shape[0]
    tag = f"{dn(dtype)} k={k} G={G} {kind} N={n} in={inf} out={out} {base} ws={wsb}"
    # the sorted path ran: its workspace holds the permutation after v1's partials
    v1 = ws_bytes(n, inf, grid.shape[1], k, out, x.element_size(), 0)
    assert wsb == v1 + perm_bytes(n, inf), f"not the sorted path? {tag}"
    assert_weights_close(gWb, gWc, gy, x, grid, k, base, Wb, Wc, tag)
    tb, tc, _ = weights(gy, x, grid, k, base, Wb, Wc, "tiles")
    assert_close(gWb, tb, TOL[dtype], msg=f"gWb vs grad_w_kernel {tag}")
    assert_close(gWc, tc, TOL[dtype], msg=f"gWc vs grad_w_kernel {tag}")
    return gWb, gWc, wsb


@pytest.mark.parametrize("shape", GRADW_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("k", (1, 2, 3))
@pytest.mark.parametrize("dtype", DTYPES, ids=dn)
def test_sizes(dtype, k, shape):
    N, inf, out = shape
    # the smallest G that sorts (G + k = 17), and G = 50 and 100
    for G, kind, base in ((REG_ROWS + 1 - k, "uniform", "silu"), (50, "nonuniform", "identity"),
                          (100, "skewed", "zero")):
        check(dtype, k, G, kind, N, inf, out, base, seed=N + 7 * inf + out + 11 * k + G)


@pytest.mark.parametrize("k", (0, 4, 5))
def test_other_orders(k):
    for dtype in DTYPES:
        for G in (REG_ROWS + 1 - k, 20, 50):
            check(dtype, k, G, "nonuniform", 77, 3, 9, "silu", seed=13 * k + G)


def window_keys(x, grid, k):
    """The sort key of every (n, i), (N, in): window start clamp(g - k, 0, G - 1)
    of interval g, -1 outside the grid, -2 for NaN."""
    N, inf = x.shape
    M = grid.shape[1]
    G = M - 2 * k - 1
    keys = torch.empty(N, inf, dtype=torch.int64)
    for i in range(inf):
        t, xi = grid[i], x[:, i].contiguous()
        g = torch.searchsorted(t, xi, right=True) - 1
        s = (g - k).clamp(0, G - 1)
        inside = (xi >= t[0]) & (xi < t[-1])
        keys[:, i] = torch.where(inside, s, torch.where(torch.isnan(xi), -2, -1))
    return keys


def permutation(ws, wsb, N, inf):
    """The (in, N) permutation that the sort left at the end of the workspace."""
    start = wsb - perm_bytes(N, inf)
    return ws[start:start + inf * N * 4].view(torch.int32).reshape(inf, N).long()


def test_permutation_is_a_stable_sort_by_interval():
    """One slice (N < 1024): per input, every row once, ordered by (key, row):
    NaN rows first, then those outside the grid, then the windows in order."""
    for dtype in DTYPES:
        x, grid, Wb, Wc, gy = case(dtype, 3, 40, "skewed", 700, 5, 3, seed=8)
        x[10:20, 1] = math.nan
        x[30:40, 2] = x[5, 2]  # ties: a run of equal keys
        _, _, _, wsb, ws = emu_backward_ws(gy, x, grid, 3, 2, Wb, Wc, need_x=False, wgrad="sorted")
        N, inf = x.shape
        assert ws_bytes(N, inf, grid.shape[1], 3, 3, x.element_size(), 0) == 0, "expected one slice"
        perm = permutation(ws, wsb, N, inf)
        keys = window_keys(x, grid, 3)
        for i in range(inf):
            expect = sorted(range(N), key=lambda n: (int(keys[n, i]), n))
            assert perm[i].tolist() == expect, f"input {i} {dn(dtype)}"


def test_permutation_with_batch_slices():
    """Several slices: per input, a permutation of all rows that maps every
    slice onto itself, and within a slice sorted by (key, row). A slice's
    bounds are prefix-closed positions (perm[:p] is a permutation of 0..p-1);
    every segment between such positions lies in one slice."""
    x, grid, Wb, Wc, gy = case(torch.float32, 2, 30, "nonuniform", 3000, 3, 2, seed=12)
    N, inf = x.shape
    assert ws_bytes(N, inf, grid.shape[1], 2, 2, 4, 0) > 0, "expected a multi-slice plan"
    _, _, _, wsb, ws = emu_backward_ws(gy, x, grid, 2, 1, Wb, Wc, need_x=False, wgrad="sorted")
    perm = permutation(ws, wsb, N, inf)
    keys = window_keys(x, grid, 2)
    for i in range(inf):
        pi = perm[i].tolist()
        assert sorted(pi) == list(range(N)), f"input {i}: not a permutation"
        cuts = [0] + [p + 1 for p, m in enumerate(torch.tensor(pi).cummax(0).values.tolist()) if m == p]
        assert len(cuts) > 2, "expected several slices"
        for a, b in zip(cuts, cuts[1:]):
            seg = pi[a:b]
            assert seg == sorted(seg, key=lambda n: (int(keys[n, i]), n)), f"input {i} rows {a}..{b}"


def test_nan_inf_inputs():
    """x: NaN, +-inf and every knot, plus NaN and inf in gy: NaN where
    grad_w_kernel has NaN, close to it and to the CPU op elsewhere."""
    check_nan_inf_weights(30, "sorted", same_bits=False)


def test_nan_x_adds_nothing():
    for dtype in DTYPES:
        x, grid, Wb, Wc, gy = case(dtype, 2, 27, "uniform", 40, 3, 5, seed=4, special=False)
        x[:, 1] = math.nan
        x[::3, 2] = math.nan
        gWb, gWc, _ = check(dtype, 2, 27, "uniform", 40, 3, 5, "silu", seed=4, special=False, x=x)
        assert not bool(gWb[1].any() | gWc[1].any()), "a NaN input must add nothing"
        assert bool(torch.isfinite(gWb).all() & torch.isfinite(gWc).all())


def test_outside_the_grid():
    """Every x outside the grid (both sides, and +-inf): gWc exactly zero, gWb
    the base term alone."""
    for dtype in DTYPES:
        x, grid, Wb, Wc, gy = case(dtype, 3, 25, "nonuniform", 60, 3, 6, seed=6, special=False)
        lo, hi = grid[:, 0], grid[:, -1]
        x = torch.where(torch.arange(60)[:, None] % 2 == 0, lo - 1 - x.abs(), hi + x.abs())
        x[7, 0], x[8, 1] = math.inf, -math.inf
        gWb, gWc, _ = check(dtype, 3, 25, "nonuniform", 60, 3, 6, "identity", seed=6, special=False, x=x)
        assert not bool(gWc.any()), "outside the grid only the base term contributes"
        assert bool(gWb.any())


@pytest.mark.parametrize("kind", ("uniform", "skewed"))
def test_one_interval(kind):
    """All rows of an input in one interval (one long run: the window moves
    once) or all on one knot; and the first and the last interval."""
    for dtype in DTYPES:
        x, grid, Wb, Wc, gy = case(dtype, 3, 40, kind, 300, 4, 33, seed=2, special=False)
        t = grid
        x = torch.empty_like(x)
        x[:, 0] = (t[0, 20] + t[0, 21]) / 2  # one inner interval
        x[:, 1] = t[1, 0]                    # the first knot: interval 0
        x[:, 2] = torch.nextafter(t[2, -1], t[2, -2])  # just below the last knot: the last interval
        x[:, 3] = t[3, 9] + (t[3, 10] - t[3, 9]) * torch.rand(300, dtype=torch.float64).to(dtype) * 0.5
        for base in ("silu", "zero"):
            check(dtype, 3, 40, kind, 300, 4, 33, base, seed=2, special=False, x=x)


def test_batch_slices_and_determinism(monkeypatch):
    """Small in * out with a large batch: sorted within each batch slice, the
    slices' partials added in order; bit-identical run to run, across fiber
    schedules and across capped grids (EMU_MAX_GRID)."""
    for dtype in DTYPES:
        N, inf, out = 3000, 4, 3
        x, grid, Wb, Wc, gy = case(dtype, 3, 30, "nonuniform", N, inf, out, seed=9)
        n = x.shape[0]
        assert ws_bytes(n, inf, grid.shape[1], 3, out, x.element_size(), 0) > 0, "expected a multi-slice plan"
        first = check(dtype, 3, 30, "nonuniform", N, inf, out, "silu", seed=9)[:2]
        monkeypatch.setenv("EMU_SEED", "12345")
        again = weights(gy, x, grid, 3, "silu", Wb, Wc)
        monkeypatch.delenv("EMU_SEED")
        for a, b in zip(first, again[:2]):
            assert_bitwise_equal(a, b, f"two runs, two schedules {dn(dtype)}")
        for cap in ("1", "2", "3"):
            monkeypatch.setenv("EMU_MAX_GRID", cap)
            capped = weights(gy, x, grid, 3, "silu", Wb, Wc)
            for a, b in zip(first, capped[:2]):
                assert_bitwise_equal(a, b, f"EMU_MAX_GRID={cap} {dn(dtype)}")
        monkeypatch.delenv("EMU_MAX_GRID")


def test_grid_stride_loops(monkeypatch):
    """Many (input, column) tiles and (input, slice) sort items on a grid of 2
    blocks: the same bits as the full grid."""
    for dtype in DTYPES:
        x, grid, Wb, Wc, gy = case(dtype, 2, 20, "nonuniform", 300, 70, 70, seed=5)
        full = check(dtype, 2, 20, "nonuniform", 300, 70, 70, "silu", seed=5)[:2]
        monkeypatch.setenv("EMU_MAX_GRID", "2")
        capped = check(dtype, 2, 20, "nonuniform", 300, 70, 70, "silu", seed=5)[:2]
        monkeypatch.delenv("EMU_MAX_GRID")
        for a, b in zip(full, capped):
            assert_bitwise_equal(a, b, f"capped grid {dn(dtype)}")


def test_register_path_and_fallbacks():
    """G + k = 16 still runs grad_w_reg_kernel (grad_w_kernel's bits, no
    permutation); more than kSortMaxKeys - 2 intervals run grad_w_kernel
    (its bits, no permutation)."""
    for dtype in DTYPES:
        for k, G in ((3, REG_ROWS - 3), (1, MAX_KEYS - 1)):
            x, grid, Wb, Wc, gy = case(dtype, k, G, "nonuniform", 40, 2, 3, seed=G)
            a = weights(gy, x, grid, k, "silu", Wb, Wc, "v2")
            b = weights(gy, x, grid, k, "silu", Wb, Wc, "tiles")
            assert a[2] == b[2], "no permutation in the workspace"
            assert_bitwise_equal(a[0], b[0], f"gWb G={G} {dn(dtype)}")
            assert_bitwise_equal(a[1], b[1], f"gWc G={G} {dn(dtype)}")
        # the largest G that sorts: G + 2 = kSortMaxKeys
        check(dtype, 1, MAX_KEYS - 2, "uniform", 40, 2, 3, "silu", seed=1)


def test_full_backward():
    """grad x and the sorted grad W in one local_v2 launch: gx the bits of v1
    (grad_x_v2_kernel), the weights as alone."""
    for dtype in DTYPES:
        x, grid, Wb, Wc, gy = case(dtype, 2, 30, "nonuniform", 37, 5, 11, seed=8)
        a = emu_backward(gy, x, grid, 2, 2, Wb, Wc, wgrad="sorted")
        b = emu_backward(gy, x, grid, 2, 2, Wb, Wc, wgrad="v1")
        w = weights(gy, x, grid, 2, "silu", Wb, Wc)
        assert_bitwise_equal(a[0], b[0], f"gx {dn(dtype)}")
        assert_bitwise_equal(a[1], w[0], f"gWb {dn(dtype)}")
        assert_bitwise_equal(a[2], w[1], f"gWc {dn(dtype)}")
        assert_close(a[2], b[2], TOL[dtype], msg=f"gWc vs v1 {dn(dtype)}")


def test_empty():
    """Empty sizes launch nothing and need no workspace (the binding returns zeros)."""
    for N, inf, out in ((0, 3, 4), (5, 0, 4), (5, 3, 0)):
        x, grid, Wb, Wc, gy = case(torch.float32, 3, 30, "uniform", max(N, 1), max(inf, 1), max(out, 1), seed=1,
                                   special=False)
        x, gy = x[:N, :inf].contiguous(), gy[:N, :out].contiguous()
        grid, Wb, Wc = grid[:inf].contiguous(), Wb[:inf, :out].contiguous(), Wc[:inf, :, :out].contiguous()
        gWb, gWc, wsb = weights(gy, x, grid, 3, "silu", Wb, Wc)
        assert wsb == 0 and gWb.shape == (inf, out) and gWc.shape == (inf, 33, out)


def test_short_workspace_is_an_error():
    """A workspace without room for the permutation is rejected, not overrun."""
    import ctypes
    from emulator import p
    x, grid, Wb, Wc, gy = case(torch.float64, 3, 30, "uniform", 20, 2, 3, seed=1, special=False)
    N, inf = x.shape
    need = ws_bytes(N, inf, grid.shape[1], 3, 3, 8, 1)
    assert need == perm_bytes(N, inf)
    ws = torch.zeros(need, dtype=torch.uint8)
    outs = [torch.zeros_like(t) for t in (x, Wb, Wc)]
    rc = lib().emu_backward_wgrad(1, p(gy), p(x), p(grid), N, inf, grid.shape[1], 3, 2, p(Wb), p(Wc), 3, 0, 1, 1,
                                  *(p(t) for t in outs), p(ws), ctypes.c_size_t(need - 1))
    assert rc != 0, "a short workspace must be rejected"
