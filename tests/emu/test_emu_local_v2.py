"""The v2 local-support forward and grad x kernels (kan_linear_forward_v2_kernel
in csrc/cuda/kan_linear_forward.cuh, grad_x_v2_kernel in
kan_linear_backward.cuh; backend "local_v2", design L.2 of docs/roofline.md)
in host emulation: the same bits as the v1 kernels (same arithmetic in the
same order, only the addressing differs), and close to kanext.reference and
the CPU op. See tests/emu/emulator.py. Marked ``emu``:
``python -m pytest tests/emu/test_emu_local_v2.py -m emu``.

grad x is slow to emulate (every warp shuffle is a fiber rendezvous), so its
cases are few and small, chosen to reach each code path: chunks of 32 lanes x
2 vectors (256 fp32 / 128 fp64 columns) that lie wholly inside `out` (the
unguarded loads, aligned and not) and the guarded last chunk, two input tiles,
a row tile cut by N."""
from __future__ import annotations

import math

import pytest
import torch
from emulator import BASES, DTYPES, case, dn, emu_backward, emu_forward, lazy_zeros, lib, p, ref, ref_grads
from helpers import TOL, assert_bitwise_equal, assert_close, randn

from kanext import ops


def forward_both(x, grid, k, base, Wb, Wc):
    a = emu_forward(x, grid, k, BASES[base], Wb, Wc, "v2")
    b = emu_forward(x, grid, k, BASES[base], Wb, Wc, "v1")
    return a, b


def check_forward(dtype, k, G, kind, N, inf, out, base, seed):
    x, grid, Wb, Wc, _ = case(dtype, k, G, kind, N, inf, out, seed=seed)
    y, y1 = forward_both(x, grid, k, base, Wb, Wc)
    tag = f"{dn(dtype)} k={k} G={G} {kind} N={x.shape[0]} in={inf} out={out} {base}"
    assert_bitwise_equal(y, y1, f"forward v2 vs v1 {tag}")
    exp = ref.kan_linear(x.double(), grid.double(), k, base, Wb.double(), Wc.double())
    assert_close(y, exp, TOL[dtype], msg=f"forward vs reference {tag}")
    assert_close(y, ops.kan_linear(x, grid, k, base, Wb, Wc), TOL[dtype], msg=f"forward vs CPU op {tag}")


def grad_x(gy, x, grid, k, base, Wb, Wc, version):
    return emu_backward(gy, x, grid, k, BASES[base], Wb, Wc, need_x=True, need_w=False, wgrad=version)[0]


def check_grad_x(dtype, k, G, kind, N, inf, out, base, seed):
    x, grid, Wb, Wc, gy = case(dtype, k, G, kind, N, inf, out, seed=seed)
    gx = grad_x(gy, x, grid, k, base, Wb, Wc, "v2")
    tag = f"{dn(dtype)} k={k} G={G} {kind} N={x.shape[0]} in={inf} out={out} {base}"
    assert_bitwise_equal(gx, grad_x(gy, x, grid, k, base, Wb, Wc, "v1"), f"gx v2 vs v1 {tag}")
    fin = torch.isfinite(x).all(1)  # rows with +-inf x: the CPU op only (inf/NaN base derivatives)
    assert_close(gx[fin], ref_grads(gy, x, grid, k, base, Wb, Wc)[0][fin], TOL[dtype], msg=f"gx vs reference {tag}")
    assert_close(gx, ops.kan_linear_backward(gy, x, grid, k, BASES[base], Wb, Wc)[0], TOL[dtype],
                 msg=f"gx vs CPU op {tag}")


# Odd sizes: N not a multiple of the 64-row tile, in not of the 8-input chunk,
# out odd (unaligned: scalar guarded loads) or even / a multiple of 4 (16-byte
# vectors); v2's column tile is 128 fp32 / 64 fp64 columns, so out = 64 is a
# partial tile in fp32 and a full one in fp64, and 260 is two full tiles and
# a partial one in both.
FWD_SHAPES = [(1, 1, 1), (70, 7, 5), (65, 17, 37), (130, 9, 64), (3, 40, 130), (20, 9, 260)]


@pytest.mark.parametrize("shape", FWD_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("k", range(6))
@pytest.mark.parametrize("dtype", DTYPES, ids=dn)
def test_forward(dtype, k, shape):
    N, inf, out = shape
    for G, kind, base in ((1, "uniform", "silu"), (5, "nonuniform", "identity"), (50, "skewed", "zero")):
        check_forward(dtype, k, G, kind, N, inf, out, base, seed=N + 3 * inf + out + 11 * k + G)


def chunk(dtype):
    """Columns per grad x chunk: 32 lanes x 2 vectors of 16 bytes."""
    return 64 * 16 // torch.tensor([], dtype=dtype).element_size()


@pytest.mark.parametrize("k", (1, 2, 3))
@pytest.mark.parametrize("dtype", DTYPES, ids=dn)
def test_grad_x(dtype, k):
    CH = chunk(dtype)
    # a guarded chunk only (odd out; out a multiple of 4), one full aligned
    # chunk, a full unaligned chunk then a guarded one, two input tiles
    for (N, inf, out), G, kind, base in (((21, 7, 5), 5, "nonuniform", "silu"),
                                         ((5, 3, 64), 1, "uniform", "identity"),
                                         ((4, 2, CH), 7, "skewed", "silu"),
                                         ((3, 3, CH + 1), 5, "nonuniform", "zero"),
                                         ((2, 33, 9), 3, "nonuniform", "silu")):
        check_grad_x(dtype, k, G, kind, N, inf, out, base, seed=N + 5 * inf + out + 13 * k + G)


@pytest.mark.parametrize("k", (0, 4, 5))
def test_grad_x_other_orders(k):
    for dtype in DTYPES:
        check_grad_x(dtype, k, 4, "nonuniform", 17, 5, chunk(dtype) + 3, "silu", seed=17 * k + 1)


def test_nan_inf():
    """NaN, +-inf and knots in x (case(special=True)), NaN and inf in gy and in
    the weights: the same bits as v1, NaN rows / entries where v1 has them."""
    for dtype in DTYPES:
        for base in BASES:
            x, grid, Wb, Wc, gy = case(dtype, 3, 6, "nonuniform", 19, 4, 9, seed=21)
            x[5, 2] = math.nan
            x[6, 3] = math.inf
            gy[7, 1] = math.inf
            gy[8, 4] = math.nan
            Wc[1, 3, 2] = math.inf
            Wb[2, 5] = math.nan
            y, y1 = forward_both(x, grid, 3, base, Wb, Wc)
            assert_bitwise_equal(y, y1, f"forward {dn(dtype)} {base}")
            assert_close(y, ops.kan_linear(x, grid, 3, base, Wb, Wc), TOL[dtype], msg=f"forward vs CPU {base}")
            gx = grad_x(gy, x, grid, 3, base, Wb, Wc, "v2")
            assert_bitwise_equal(gx, grad_x(gy, x, grid, 3, base, Wb, Wc, "v1"), f"gx {dn(dtype)} {base}")
            assert bool(torch.isnan(y[5]).all()) and bool(torch.isnan(gx[5, 2]))


def test_full_backward_v2():
    """The whole local_v2 backward (grad x v2 and the register grad W) in one
    launch: the same bits as v1."""
    for dtype in DTYPES:
        x, grid, Wb, Wc, gy = case(dtype, 2, 6, "nonuniform", 37, 5, 11, seed=8)
        a = emu_backward(gy, x, grid, 2, 2, Wb, Wc, wgrad="v2")
        b = emu_backward(gy, x, grid, 2, 2, Wb, Wc, wgrad="v1")
        for name, u, v in zip(("gx", "gWb", "gWc"), a[:3], b[:3]):
            assert_bitwise_equal(u, v, f"{name} {dn(dtype)}")


def test_grid_stride_loops(monkeypatch):
    """Grid capped at 2 blocks per dimension: the kernels' tile loops run."""
    monkeypatch.setenv("EMU_MAX_GRID", "2")
    for dtype in DTYPES:
        x, grid, Wb, Wc, gy = case(dtype, 2, 6, "nonuniform", 150, 70, 70, seed=5)
        assert_bitwise_equal(*forward_both(x, grid, 2, "silu", Wb, Wc), "forward, capped grid")
    x, grid, Wb, Wc, gy = case(torch.float32, 2, 6, "nonuniform", 40, 70, 9, seed=5, special=False)
    assert_bitwise_equal(grad_x(gy, x, grid, 2, "silu", Wb, Wc, "v2"), grad_x(gy, x, grid, 2, "silu", Wb, Wc, "v1"),
                         "gx, capped grid")


def test_invalid_version():
    x, grid, Wb, Wc, gy = case(torch.float32, 3, 5, "uniform", 8, 2, 3, seed=1, special=False)
    y = torch.zeros(8, 3)
    for bad in (2, -1):
        rc = lib().emu_forward_version(0, p(x), p(grid), 8, 2, grid.shape[1], 3, 2, p(Wb), p(Wc), 3, p(y), bad)
        assert rc != 0, f"version={bad} must be rejected"


def test_slab_of_2gb_or_more_runs_v1():
    """One input's Wc slab ((G+k) x out values) of 2^31 bytes or more is past
    the v2 kernels' 32-bit byte offsets (LocalEntry::off), so the launchers
    run the v1 kernels (64-bit indexing) for version v2 (offsets_fit in
    common.cuh). The samples sit in the slab's top rows, where a 32-bit offset
    would wrap, and in its first rows and outside the grid. Wc (4.3 GB over two
    inputs) comes from lazy_zeros, whose pages are mapped on first touch: only the rows the
    samples reach are written and read, so the test needs a few MB."""
    dtype, k, out, inf = torch.float32, 3, 4096, 2
    row_bytes = out * 4
    nb = (1 << 31) // row_bytes + 40  # window starts from 2^17 on are at byte offsets >= 2^31
    G = nb - k
    grid = torch.arange(-k, G + k + 1, dtype=dtype).expand(inf, -1).contiguous()  # integer knots: exact
    assert grid.shape[1] == G + 2 * k + 1 and float(grid[0, -1]) == G + k
    x = torch.tensor([[G - 0.3, G - 20.7], [G - 37.5, 2.25], [0.5, G - 0.01], [-9.0, G + 5.0],
                      [G - 1.0, float(1 << 17) + 0.5]], dtype=dtype)
    Wb = randn(inf, out, seed=3, dtype=dtype)
    Wc = lazy_zeros((inf, nb, out), dtype)
    gen = torch.Generator().manual_seed(4)
    rows = []
    for i in range(inf):
        s = x[:, i].floor().clamp(0, G - 1).long()
        r = torch.unique(torch.cat([s + q for q in range(k + 1)]))
        Wc[i, r] = torch.randn(r.numel(), out, generator=gen, dtype=dtype)
        rows.append(r)
    assert int(rows[0].max()) * row_bytes >= 1 << 31 and int(rows[1].max()) * row_bytes >= 1 << 31
    gy = randn(x.shape[0], out, seed=5, dtype=dtype)

    # The float64 reference over the filled rows only (every other row is 0).
    xd, gd = x.double(), grid.double()
    B, dB = ref.spline_basis(xd, gd, k), ref.spline_basis_deriv(xd, gd, k)
    b, db = ref.base_function("silu", xd), ref.base_derivative("silu", xd, 1)
    y_ref = b @ Wb.double()
    gx_ref = db * (gy.double() @ Wb.double().T)
    for i, r in enumerate(rows):
        W = Wc[i, r].double()
        y_ref += B[:, i, r] @ W
        gx_ref[:, i] += ((dB[:, i, r] @ W) * gy.double()).sum(1)

    y2 = emu_forward(x, grid, k, BASES["silu"], Wb, Wc, "v2")
    assert_bitwise_equal(y2, emu_forward(x, grid, k, BASES["silu"], Wb, Wc, "v1"), "forward, slab >= 2 GB")
    assert_close(y2, y_ref, TOL[dtype], msg="forward vs reference, slab >= 2 GB")
    gx2 = grad_x(gy, x, grid, k, "silu", Wb, Wc, "v2")
    assert_bitwise_equal(gx2, grad_x(gy, x, grid, k, "silu", Wb, Wc, "v1"), "grad x, slab >= 2 GB")
    assert_close(gx2, gx_ref, TOL[dtype], msg="grad x vs reference, slab >= 2 GB")
