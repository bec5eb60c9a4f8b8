"""The register-accumulator weight-gradient kernel of kan_linear_backward
(grad_w_reg_kernel in csrc/cuda/kan_linear_backward.cuh, backend "local_v2")
in host emulation: against kanext.reference, the CPU op and the present
shared-memory kernel (grad_w_kernel, which it must match bit for bit: same
order of FMAs, same batch slices). See tests/emu/emulator.py. Marked ``emu``:
``python -m pytest tests/emu/test_emu_gradw.py -m emu``."""
from __future__ import annotations

import math

import pytest
import torch
from emulator import (BASES, DTYPES, GRADW_SHAPES, assert_weights_close, case, check_nan_inf_weights, dn,
                      emu_backward, lib, p)
from helpers import assert_bitwise_equal

from kanext import ops

REG_ROWS = 16  # kRegRows: the most basis rows (G + k) the register kernel holds


def weights(gy, x, grid, k, base, Wb, Wc, wgrad):
    """(gWb, gWc, workspace bytes) of the emulated backward, weights only."""
    _, gWb, gWc, wsb = emu_backward(gy, x, grid, k, BASES[base], Wb, Wc, need_x=False, need_w=True, wgrad=wgrad)
    return gWb, gWc, wsb


def check(dtype, k, G, kind, N, inf, out, base, seed, special=True):
    x, grid, Wb, Wc, gy = case(dtype, k, G, kind, N, inf, out, seed=seed, special=special)
    gWb, gWc, wsb = weights(gy, x, grid, k, base, Wb, Wc, "registers")
    tb, tc, _ = weights(gy, x, grid, k, base, Wb, Wc, "tiles")
    tag = f"{dn(dtype)} k={k} G={G} {kind} N={x.shape[0]} in={inf} out={out} {base} ws={wsb}"
    assert_bitwise_equal(gWb, tb, f"gWb vs grad_w_kernel {tag}")
    assert_bitwise_equal(gWc, tc, f"gWc vs grad_w_kernel {tag}")
    assert_weights_close(gWb, gWc, gy, x, grid, k, base, Wb, Wc, tag)
    return wsb


@pytest.mark.parametrize("shape", GRADW_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("k", (1, 2, 3))
@pytest.mark.parametrize("dtype", DTYPES, ids=dn)
def test_sizes(dtype, k, shape):
    N, inf, out = shape
    # G = 1, a middle G, and the largest G that still fits the registers (G + k = 16)
    for G, kind, base in ((1, "uniform", "silu"), (5, "nonuniform", "identity"), (REG_ROWS - k, "skewed", "zero")):
        check(dtype, k, G, kind, N, inf, out, base, seed=N + 7 * inf + out + 11 * k + G)


@pytest.mark.parametrize("k", (0, 4, 5))
def test_other_orders(k):
    for dtype in DTYPES:
        for G in (1, REG_ROWS - k):
            check(dtype, k, G, "nonuniform", 77, 3, 9, "silu", seed=13 * k + G)


def test_nan_inf_inputs():
    """x: NaN, +-inf and every knot (case(special=True)), plus NaN and inf in gy:
    the same bits as grad_w_kernel (NaN where it has NaN) and the CPU op."""
    check_nan_inf_weights(6, "registers", same_bits=True)


def test_nan_x_adds_nothing():
    for dtype in DTYPES:
        x, grid, Wb, Wc, gy = case(dtype, 2, 7, "uniform", 40, 3, 5, seed=4, special=False)
        x[:, 1] = math.nan
        gWb, gWc, _ = weights(gy, x, grid, 2, "silu", Wb, Wc, "registers")
        assert not bool(gWb[1].any() | gWc[1].any()), "a NaN input must add nothing"
        assert bool(torch.isfinite(gWb).all() & torch.isfinite(gWc).all())


def test_batch_slices_and_determinism(monkeypatch):
    """Small in * out with a large batch: the batch is split into slices whose
    partials a second pass adds in order; bit-identical run to run and across
    fiber schedules."""
    assert lib().emu_workspace_bytes(3000, 4, 5 + 7, 3, 3, 8, 1) > 0, "expected a multi-slice plan"
    for dtype in DTYPES:
        x, grid, Wb, Wc, gy = case(dtype, 3, 5, "nonuniform", 3000, 4, 3, seed=9)
        wsb = check(dtype, 3, 5, "nonuniform", 3000, 4, 3, "silu", seed=9)
        assert wsb > 0
        first = weights(gy, x, grid, 3, "silu", Wb, Wc, "registers")
        monkeypatch.setenv("EMU_SEED", "12345")
        again = weights(gy, x, grid, 3, "silu", Wb, Wc, "registers")
        monkeypatch.delenv("EMU_SEED")
        for a, b in zip(first[:2], again[:2]):
            assert_bitwise_equal(a, b, "two runs, two schedules")


def test_grid_stride_loops(monkeypatch):
    monkeypatch.setenv("EMU_MAX_GRID", "2")
    for dtype in DTYPES:
        check(dtype, 2, 6, "nonuniform", 300, 70, 70, "silu", seed=5)


def test_empty_and_invalid():
    """Empty sizes launch nothing (the binding returns zeros); an unknown
    wgrad kernel code is an error, not a silent fallback."""
    for N, inf, out in ((0, 3, 4), (5, 0, 4), (5, 3, 0)):
        x, grid, Wb, Wc, gy = case(torch.float32, 3, 5, "uniform", max(N, 1), max(inf, 1), max(out, 1), seed=1,
                                   special=False)
        x, gy = x[:N, :inf].contiguous(), gy[:N, :out].contiguous()
        grid, Wb, Wc = grid[:inf].contiguous(), Wb[:inf, :out].contiguous(), Wc[:inf, :, :out].contiguous()
        gWb, gWc, wsb = weights(gy, x, grid, 3, "silu", Wb, Wc, "registers")
        assert wsb == 0 and gWb.shape == (inf, out) and gWc.shape == (inf, 8, out)
        cb, cc = ops.kan_linear_backward(gy, x, grid, 3, 2, Wb, Wc)[1:]
        assert not bool(cb.any() | cc.any())
    x, grid, Wb, Wc, gy = case(torch.float64, 3, 5, "uniform", 8, 2, 3, seed=1, special=False)
    out = torch.zeros_like(Wc)
    for bad in (2, -1):
        rc = lib().emu_backward_wgrad(1, p(gy), p(x), p(grid), 8, 2, grid.shape[1], 3, 2, p(Wb), p(Wc), 3, 0, 1, bad,
                                      p(torch.zeros_like(x)), p(torch.zeros_like(Wb)), p(out), None, 0)
        assert rc != 0, f"wgrad={bad} must be rejected"
