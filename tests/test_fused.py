"""kanext.ops.kan_linear_fused (ops kan_linear_fused / kan_linear_fused_backward):
the layer on pykan's parameters with the fold inside the CPU kernels.

It must equal the two calls it stands for, kan_linear(..., Wb,
fold_spline_weights(coef, scale)): against the float64 reference, and on the
CPU bit for bit against the unfused ops (same fold products, same kernels,
same summation order), forward, backward, every need_x / need_w, every
derivative order, under torch.func, torch.compile and opcheck.
"""
from __future__ import annotations

import pytest
import torch

from kanext import ops
from kanext import reference as ref

from helpers import (
    DTYPES,
    TOL,
    assert_bitwise_equal,
    assert_close,
    dname,
    grid_of_kind,
    knot_x,
    randn,
    sample_x,
    seed_of,
)

K_OPS = torch.ops.kanext
BASES = ("zero", "identity", "silu")


def _case(dtype, k, G, kind, in_f, out, N, seed):
    grid = grid_of_kind(kind, in_f, G, k, dtype, seed=seed)
    x = sample_x(N, grid, seed=seed + 1)  # includes points outside the grid
    if N >= in_f:  # and points exactly on knots
        x = torch.cat([x, knot_x(grid)])
    Wb = randn(in_f, out, seed=seed + 2, dtype=dtype)
    coef = randn(in_f, out, G + k, seed=seed + 3, dtype=dtype)
    scale = randn(in_f, out, seed=seed + 4, dtype=dtype)
    gy = randn(x.shape[0], out, seed=seed + 5, dtype=dtype)
    return x, grid, Wb, coef, scale, gy


def _assert_finite_rows_match_reference(y, x, grid, k, base, Wb, coef, scale, dtype, msg):
    """y on the rows of x without NaN or inf against the float64 reference
    (reference.kan_linear on the reference fold)."""
    finite = torch.isfinite(x).all(1)
    y_ref = ref.kan_linear(x[finite].double(), grid.double(), k, base, Wb.double(),
                           ref.fold_spline_weights(coef.double(), scale.double()))
    assert_close(y[finite], y_ref, TOL[dtype], msg=msg)


def _unfused(x, grid, k, bid, Wb, coef, scale, gy, need_x=True, need_w=True):
    """The composition the fused op stands for, through the raw unfused ops."""
    Wc = K_OPS.fold_spline_weights(coef, scale)
    y = K_OPS.kan_linear_forward(x, grid, k, bid, Wb, Wc)
    gx, gWb, gWc = K_OPS.kan_linear_backward(gy, x, grid, k, bid, Wb, Wc, need_x, need_w)
    gc, gs = K_OPS.fold_spline_weights_backward(gWc, coef, scale)
    return y, (gx, gWb, gc, gs)


@pytest.mark.parametrize("shape", [(7, 5, 90), (3, 37, 300), (2, 64, 33), (1, 1, 5), (5, 200, 40)],
                         ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("kind", ("uniform", "nonuniform"))
@pytest.mark.parametrize("G", (1, 5, 20, 100))
@pytest.mark.parametrize("k", (0, 1, 3, 5))
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_fused_equals_unfused_ops_bitwise(dtype, k, G, kind, shape):
    """On the CPU the fused kernels compute the very same products and sums:
    equal bit for bit to fold + kan_linear_forward / _backward + fold backward,
    for every base and need_x / need_w. Shapes cross the kernels' tiles: out
    200 with G=100 makes several backward chunks; N=300 two 256-row spans."""
    in_f, out, N = shape
    for b, base in enumerate(BASES):
        s = seed_of("fused-bits", dtype, k, G, kind, shape, base)
        x, grid, Wb, coef, scale, gy = _case(dtype, k, G, kind, in_f, out, N, s)
        bid = ops.BASE_IDS[base]
        y_exp, g_exp = _unfused(x, grid, k, bid, Wb, coef, scale, gy)
        assert_bitwise_equal(K_OPS.kan_linear_fused(x, grid, k, bid, Wb, coef, scale), y_exp, f"y {base}")
        for need_x in (True, False):
            for need_w in (True, False):
                got = K_OPS.kan_linear_fused_backward(gy, x, grid, k, bid, Wb, coef, scale, need_x, need_w)
                for name, g, e, needed in zip(("gx", "gWb", "gcoef", "gscale"), got, g_exp,
                                              (need_x, need_w, need_w, need_w)):
                    # (skipped outputs: stride-0 zeros, test_backward_skipped_outputs_are_stride0_zeros)
                    assert g.shape == e.shape and (g.is_contiguous() if needed else set(g.stride()) <= {0}), name
                    assert_bitwise_equal(g, e if needed else torch.zeros_like(e),
                                         f"{name} {base} need_x={need_x} need_w={need_w}")


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("G", (1, 5, 100))
@pytest.mark.parametrize("k", (0, 2, 3))
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_fused_matches_reference(dtype, k, G, base, device):
    """Forward and all four gradients (autograd through the wrapper) against
    the float64 pure-PyTorch twin, reference.kan_linear on the reference fold."""
    in_f, out, N = 6, 19, 70
    s = seed_of("fused-ref", dtype, k, G, base)
    x, grid, Wb, coef, scale, gy = _case(dtype, k, G, "nonuniform", in_f, out, N, s)
    x = sample_x(N, grid, seed=s + 9)  # off the knots: the reference's autograd is exact there
    gy = gy[:N]
    leaves64 = [t.double().requires_grad_() for t in (x, Wb, coef, scale)]
    y_ref = ref.kan_linear(leaves64[0], grid.double(), k, base, leaves64[1],
                           ref.fold_spline_weights(leaves64[2], leaves64[3]))
    g_ref = torch.autograd.grad(y_ref, leaves64, gy.double(), allow_unused=True)  # x unused: k=0, no base
    g_ref = [torch.zeros_like(t) if g is None else g for g, t in zip(g_ref, leaves64)]
    leaves = [t.to(device).requires_grad_() for t in (x, Wb, coef, scale)]
    y = ops.kan_linear_fused(leaves[0], grid.to(device), k, base, *leaves[1:])
    y.backward(gy.to(device))
    assert_close(y.detach().cpu(), y_ref.detach(), TOL[dtype], msg="y")
    for name, t, e in zip(("gx", "gWb", "gcoef", "gscale"), leaves, g_ref):
        assert t.grad.dtype == dtype
        assert_close(t.grad.cpu(), e, TOL[dtype], msg=name)


def test_fused_noncontiguous_and_empty():
    dtype, k, G = torch.float64, 3, 5
    x, grid, Wb, coef, scale, gy = _case(dtype, k, G, "uniform", 4, 6, 20, seed_of("fused-nc"))
    y_exp, g_exp = _unfused(x, grid, k, 2, Wb, coef, scale, gy)
    # coef stored as (in, G+k, out) memory, scale and x transposed copies
    coef_nc = coef.transpose(1, 2).contiguous().transpose(1, 2)
    scale_nc, x_nc = scale.t().contiguous().t(), x.t().contiguous().t()
    assert not (coef_nc.is_contiguous() or scale_nc.is_contiguous() or x_nc.is_contiguous())
    assert_bitwise_equal(K_OPS.kan_linear_fused(x_nc, grid, k, 2, Wb, coef_nc, scale_nc), y_exp, "y")
    got = K_OPS.kan_linear_fused_backward(gy, x_nc, grid, k, 2, Wb, coef_nc, scale_nc, True, True)
    for g, e in zip(got, g_exp):
        assert_bitwise_equal(g, e, "non-contiguous backward")
    # empty batch: zeros of the right shapes
    y0 = K_OPS.kan_linear_fused(x[:0], grid, k, 2, Wb, coef, scale)
    assert y0.shape == (0, 6)
    g0 = K_OPS.kan_linear_fused_backward(gy[:0], x[:0], grid, k, 2, Wb, coef, scale, True, True)
    assert [t.shape for t in g0] == [(0, 4), Wb.shape, coef.shape, scale.shape]
    assert all(float(t.abs().sum()) == 0 for t in g0)


def test_fused_nan_policy():
    """A NaN input makes its output row NaN, its grad_x NaN, and adds nothing
    to the weight gradients (kanext.ops' NaN/Inf policy, as kan_linear)."""
    dtype, k = torch.float64, 3
    x, grid, Wb, coef, scale, gy = _case(dtype, k, 5, "uniform", 3, 4, 10, seed_of("fused-nan"))
    x[2, 1] = float("nan")
    x[4, 0] = float("inf")
    y = K_OPS.kan_linear_fused(x, grid, k, 2, Wb, coef, scale)
    assert torch.isnan(y[2]).all() and not torch.isnan(y[torch.arange(len(y)) != 2]).any()
    gx, gWb, gc, gs = K_OPS.kan_linear_fused_backward(gy, x, grid, k, 2, Wb, coef, scale, True, True)
    assert torch.isnan(gx[2, 1]) and torch.isfinite(gc).all() and torch.isfinite(gs).all()
    keep = torch.ones(len(x), dtype=torch.bool)
    keep[2] = False  # the NaN row contributes nothing to the other inputs' gradients of input 1
    _, g_exp = _unfused(x, grid, k, 2, Wb, coef, scale, gy)
    for g, e in zip((gWb, gc, gs), g_exp[1:]):
        assert_bitwise_equal(g, e, "weight gradients with NaN/inf inputs")


# (dtype, in, out) of the strip forward's cases: narrow strips (16 columns,
# float32 below 4 vectors of outputs), and on AVX-512 builds the wide ones (4
# vectors: 64 float32 / 32 float64 columns), one full and one partial strip,
# and for float64 two input tiles (40 inputs of 128 padded columns x 33 rows
# x 8 bytes: more than the 1 MiB tile of a 2 MiB L2).
STRIP_CASES = [(torch.float32, 5, 45), (torch.float32, 24, 100), (torch.float64, 40, 100)]


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("k", (0, 3, 5))
@pytest.mark.parametrize("dtype,in_f,out", STRIP_CASES, ids=lambda v: dname(v) if isinstance(v, torch.dtype) else str(v))
def test_fused_strip_forward_nan_rows_and_passes(dtype, in_f, out, k, base):
    """Layers of 16 outputs and more at moderate G take the forward by column
    strips (cpu::strip_cols): 700 rows are several passes of 128 or 256 rows
    and a partial one. y equals the unfused forward bit for bit (NaN rows
    included), the NaN/inf policy holds, and y matches the float64 reference
    on the finite rows."""
    G = 30
    s = seed_of("fused-strips", dtype, in_f, out, k, base)
    x, grid, Wb, coef, scale, gy = _case(dtype, k, G, "nonuniform", in_f, out, 700, s)
    x[3, 1] = float("nan")
    x[300, 4] = float("nan")
    x[650, 0] = float("inf")
    bid = ops.BASE_IDS[base]
    y = K_OPS.kan_linear_fused(x, grid, k, bid, Wb, coef, scale)
    y_exp, _ = _unfused(x, grid, k, bid, Wb, coef, scale, gy)
    assert_bitwise_equal(y, y_exp, "strip forward")
    nan_rows = torch.isnan(y).all(1)
    assert nan_rows[3] and nan_rows[300] and int(nan_rows.sum()) == 2
    _assert_finite_rows_match_reference(y, x, grid, k, base, Wb, coef, scale, dtype, "strip forward vs reference")


@pytest.mark.parametrize("kind", ("nonuniform", "skewed"))
@pytest.mark.parametrize("G", (1, 5, 37))
@pytest.mark.parametrize("k", (1, 2, 3, 5))
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_kernel_bases_equal_spline_basis_bitwise(dtype, k, G, kind):
    """The layer kernels' B-spline bases (cpu::BlockBases, vectorised over
    rows; in float64 on AVX-512 with its quotients formed without a division,
    cpu::knot_quotient) are the very bits of spline_basis' scalar Cox-de Boor
    (bspline.h's local_bases, one division per quotient). With a zero base,
    zero Wb and one-hot spline weights (Wc[0, g, g] = 1), y[n, g] is basis g
    at x_n exactly (products with 1 and 0, sums with 0). Points on, just
    below and just above every knot, inside and outside the grid; knot
    spacings up to 1000x apart ('skewed')."""
    s = seed_of("bases-bits", dtype, k, G, kind)
    grid = grid_of_kind(kind, 1, G, k, dtype, seed=s)
    x = torch.cat([sample_x(3000, grid, seed=s + 1, widen=0.05), knot_x(grid)])
    nb = G + k
    y = K_OPS.kan_linear_forward(x, grid, k, 0, torch.zeros(1, nb, dtype=dtype),
                                 torch.eye(nb, dtype=dtype).unsqueeze(0))
    assert_bitwise_equal(y, K_OPS.spline_basis(x, grid, k)[:, 0, :], "kernel bases vs spline_basis")


# G where the knot table of the AVX-512 row search (cpu::KnotTable: the padded
# knots the search reads, G + 2k + 1 + max(k, 2k - 1) + 1 - min(k + 1, 2)
# values) fills p two-register pairs exactly (32 float32 / 16 float64 values
# each) and where it takes one value more: p pairs, then p + 1 or, past 4
# pairs, gathers. (On other builds these are just more grids.)
def _knot_table_size(G, k):
    return G + 2 * k + 1 + max(k, 2 * k - 1) + 1 - min(k + 1, 2)


KNOT_TABLE_CASES = [
    (dtype, k, pair * p - _knot_table_size(0, k) + extra)
    for dtype, pair in ((torch.float32, 32), (torch.float64, 16))
    for k in (1, 3)
    for p in (1, 2, 3, 4)
    for extra in (0, 1)
]


@pytest.mark.parametrize("dtype,k,G", KNOT_TABLE_CASES, ids=lambda v: dname(v) if isinstance(v, torch.dtype) else str(v))
def test_kernel_bases_knot_table_edges_bitwise(dtype, k, G):
    """As test_kernel_bases_equal_spline_basis_bitwise, at the grid sizes
    where the AVX-512 row search's knot table (only the knots it reads) is
    exactly full or one knot past full: the first and the last knot it
    reads must be in the table (points on, below and above every knot, in
    the first and the last interval, and outside the grid)."""
    assert _knot_table_size(G, k) % (32 if dtype == torch.float32 else 16) in (0, 1)
    s = seed_of("bases-table", dtype, k, G)
    grid = grid_of_kind("nonuniform", 1, G, k, dtype, seed=s)
    x = torch.cat([sample_x(2000, grid, seed=s + 1, widen=0.05), knot_x(grid)])
    nb = G + k
    y = K_OPS.kan_linear_forward(x, grid, k, 0, torch.zeros(1, nb, dtype=dtype),
                                 torch.eye(nb, dtype=dtype).unsqueeze(0))
    assert_bitwise_equal(y, K_OPS.spline_basis(x, grid, k)[:, 0, :], "kernel bases vs spline_basis")


# (G, out, N) of the sliding-window cases: one and two window starts (G = 1,
# 2, 300 outputs so that an input's weights pass the row forward's 4 KiB),
# and G = 100, 200 with a pass of 9 rows (nearly every knot interval empty)
# or 300 rows (a full pass and a partial one); G = 92 and 93, either side of
# the switch to passes of 256 rows (cpu::strip_pass_rows, from G + k = 96),
# with 600 rows (4 passes of 128 and a partial one, or 2 of 256 and a
# partial one).
WINDOW_CASES = [(1, 300, 300), (2, 300, 9), (100, 100, 9), (100, 100, 300), (200, 100, 300), (92, 100, 600),
                (93, 100, 600)]


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
@pytest.mark.parametrize("G,out,N", WINDOW_CASES, ids=str)
def test_fused_strip_window_forward(G, out, N, dtype, base, restore_threads):
    """With k = 3 the wide strips (AVX-512 builds, 64 float32 / 32 float64
    columns) add each knot interval's rows with the interval's 4 weight rows
    held in registers and slid one row per interval
    (cpu::strip_window_axpy). y equals the unfused forward bit for bit, at 1
    and 3 threads, with rows in the first and the last interval, on knots,
    outside the grid, NaN and inf, and on G+2 intervals of which most hold
    no row; and it matches the float64 reference on the finite rows."""
    k = 3
    s = seed_of("fused-strip-window", dtype, G, out, N, base)
    x, grid, Wb, coef, scale, gy = _case(dtype, k, G, "nonuniform", 6, out, N, s)
    lo, hi = grid[:, k], grid[:, k + G]  # the grid's ends
    x[0] = lo + (grid[:, k + 1] - lo) * 0.25  # the first interval
    x[1] = hi - (hi - grid[:, k + G - 1]) * 0.25  # the last
    x[2, :3] = hi[:3]  # the right end and beyond it
    x[2, 3:] = hi[3:] * 1.5 + 1
    x[4, 1] = float("nan")
    x[5, 2] = float("inf")
    bid = ops.BASE_IDS[base]
    y = K_OPS.kan_linear_fused(x, grid, k, bid, Wb, coef, scale)
    y_exp = K_OPS.kan_linear_forward(x, grid, k, bid, Wb, K_OPS.fold_spline_weights(coef, scale))
    assert_bitwise_equal(y, y_exp, "window strips vs unfused forward")
    y3 = _with_threads(3, lambda: K_OPS.kan_linear_fused(x, grid, k, bid, Wb, coef, scale))
    assert_bitwise_equal(y3, y, "window strips, 3 threads")
    nan_rows = torch.isnan(y).all(1)
    assert nan_rows[4] and int(nan_rows.sum()) == 1
    _assert_finite_rows_match_reference(y, x, grid, k, base, Wb, coef, scale, dtype, "window strips vs reference")


@pytest.mark.parametrize("base", ("zero", "silu"))
@pytest.mark.parametrize("k", (0, 3, 5))
@pytest.mark.parametrize("G", (5, 100))
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
@pytest.mark.parametrize("out", (8, 16, 24, 32, 64, 128))
def test_fused_fixed_width_forward(dtype, out, G, k, base, restore_threads):
    """With k = 3 (cpu::kFixedWidths), layers whose width is 1 to 8 whole
    vectors (16..128 float32 and 8..64 float64 outputs on AVX-512 builds,
    half that on AVX2) add each row's terms with the width fixed at compile
    time (cpu::axpy_rows_vectors), instead of the grouped rows or the strips;
    k = 0 and 5 check that the other orders' run-time widths agree as well. Their y equals, bit for bit,
    the first `out` columns of the same layer one column wider (which takes
    the general forward), through both ops and at 1 and 3 threads, with NaN
    rows, inf, points outside the grid and on knots, 37 inputs (several input
    tiles at G=100) and a partial 32-row block; and it matches the float64
    reference on the finite rows."""
    s = seed_of("fused-fixed-width", dtype, out, G, k, base)
    x, grid, Wb, coef, scale, gy = _case(dtype, k, G, "nonuniform", 37, out + 1, 700, s)
    x = x * 1.3  # more points outside the grid
    x[3, 1] = float("nan")
    x[650, 36] = float("nan")
    x[500, 0] = float("inf")
    bid = ops.BASE_IDS[base]
    Wb1, coef1, scale1 = Wb[:, :out].contiguous(), coef[:, :out].contiguous(), scale[:, :out].contiguous()
    wide = K_OPS.kan_linear_fused(x, grid, k, bid, Wb, coef, scale)[:, :out]
    y = K_OPS.kan_linear_fused(x, grid, k, bid, Wb1, coef1, scale1)
    assert_bitwise_equal(y, wide, "fixed width vs one column wider")
    y_unfused = K_OPS.kan_linear_forward(x, grid, k, bid, Wb1, K_OPS.fold_spline_weights(coef1, scale1))
    assert_bitwise_equal(y_unfused, wide, "unfused fixed width vs one column wider")
    y3 = _with_threads(3, lambda: K_OPS.kan_linear_fused(x, grid, k, bid, Wb1, coef1, scale1))
    assert_bitwise_equal(y3, y, "fixed width, 3 threads")
    nan_rows = torch.isnan(y).all(1)
    assert nan_rows[3] and nan_rows[650] and int(nan_rows.sum()) == 2
    _assert_finite_rows_match_reference(y, x, grid, k, base, Wb1, coef1, scale1, dtype, "fixed width vs reference")


@pytest.mark.parametrize("k", (1, 3))
@pytest.mark.parametrize("G", (5, 30))
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
@pytest.mark.parametrize("out", (8, 16, 24, 32, 64, 128, 256))
def test_fixed_width_backward_matches_reference(dtype, out, G, k, restore_threads):
    """With k = 3, grad_x of layers 1 to 16 whole vectors wide takes
    combined_dot with the width fixed at compile time (k = 1: run-time), and narrow layers' weight gradients take
    spans of up to 1024 rows (cpu::span_blocks): all four gradients of both
    backward ops against the float64 reference, with 1100 rows (two spans and
    a partial one at 64 float32 outputs) and points outside the grid,
    bit-identical at 1 and 3 threads. A NaN input gives a NaN grad_x there
    only, and leaves every other input's gradients as they were."""
    s = seed_of("fixed-width-backward", dtype, out, G, k)
    x, grid, Wb, coef, scale, gy = _case(dtype, k, G, "nonuniform", 5, out, 1100, s)
    x = sample_x(1100, grid, seed=s + 9) * 1.2  # off the knots; some points outside the grid
    gy = gy[:1100]
    bid = ops.BASE_IDS["silu"]
    names = ("gx", "gWb", "gcoef", "gscale")
    got = K_OPS.kan_linear_fused_backward(gy, x, grid, k, bid, Wb, coef, scale, True, True)
    got3 = _with_threads(3, lambda: K_OPS.kan_linear_fused_backward(gy, x, grid, k, bid, Wb, coef, scale, True, True))
    for name, a, b in zip(names, got, got3):
        assert_bitwise_equal(a, b, f"{name}, 3 threads")
    _, unfused = _unfused(x, grid, k, bid, Wb, coef, scale, gy)
    for name, a, b in zip(names, got, unfused):
        assert_bitwise_equal(a, b, f"{name}, fused vs unfused")
    l64 = [t.detach().double().clone().requires_grad_() for t in (x, Wb, coef, scale)]  # (not x itself: float64)
    y_ref = ref.kan_linear(l64[0], grid.double(), k, "silu", l64[1], ref.fold_spline_weights(l64[2], l64[3]))
    exp = torch.autograd.grad(y_ref, l64, gy.double())
    for name, g, e in zip(names, got, exp):
        assert_close(g, e, TOL[dtype] * 10, msg=name)
    x_nan = x.clone()
    x_nan[7, 2] = float("nan")
    g_nan = K_OPS.kan_linear_fused_backward(gy, x_nan, grid, k, bid, Wb, coef, scale, True, True)
    assert torch.isnan(g_nan[0][7, 2]) and int(torch.isnan(g_nan[0]).sum()) == 1
    other = torch.ones_like(x, dtype=torch.bool)
    other[7, 2] = False
    assert_bitwise_equal(g_nan[0][other], got[0][other], "gx beside the NaN")
    for name, a, b in zip(names[1:], g_nan[1:], got[1:]):
        assert_bitwise_equal(torch.cat([a[:2], a[3:]]), torch.cat([b[:2], b[3:]]), f"{name} of the other inputs")
        assert torch.isfinite(a[2]).all()


def _with_threads(n, f):
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        return f()
    finally:
        torch.set_num_threads(old)


@pytest.mark.parametrize("k", (0, 3, 5))
@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
@pytest.mark.parametrize("N,in_f,out,G", [(9, 140, 250, 30), (200, 60, 600, 30), (200, 40, 256, 100)],
                         ids=["9x140x250", "200x60x600", "200x40x256-G100"])
def test_fused_forward_split_by_columns(dtype, base, k, N, in_f, out, G):
    """Few rows against wide weights: with two threads or more the forward
    splits the columns among the tasks (each folds only its slice of coef) instead of
    the rows. 9 rows, 140 -> 250 (not a multiple of the 16-column slices),
    and 200 rows, 60 -> 600, where (on AVX-512 builds) each of two column
    tasks takes the wide strips on its slice (the second slice partial),
    G=30; 200 rows, 40 -> 256, G=100, where the split by rows would take
    wide strips too and AVX-512 builds split by columns for two tasks of two
    wide strips each (three tasks: float64 only): y equals the one-thread
    forward (split by rows) and the unfused ops bit for bit, NaN rows and
    the inf policy included, and matches the float64 reference on the finite
    rows."""
    s = seed_of("fused-columns", dtype, base, k, N, G)
    x, grid, Wb, coef, scale, gy = _case(dtype, k, G, "nonuniform", in_f, out, N, s)
    x = x * 1.5  # more points outside the grid
    x[2, 7] = float("nan")
    x[5, in_f - 1] = float("inf")
    bid = ops.BASE_IDS[base]
    run = lambda: K_OPS.kan_linear_fused(x, grid, k, bid, Wb, coef, scale)
    y2, y1 = _with_threads(2, run), _with_threads(1, run)
    assert_bitwise_equal(y2, y1, "split by columns vs by rows")
    for t in (3, 5):  # 16 column slices shared out unevenly
        assert_bitwise_equal(_with_threads(t, run), y1, f"split by columns, {t} threads")
    y_exp, _ = _unfused(x, grid, k, bid, Wb, coef, scale, gy)
    assert_bitwise_equal(y2, y_exp, "split by columns vs unfused")
    nan_rows = torch.isnan(y2).all(1)
    assert nan_rows[2] and int(nan_rows.sum()) == 1
    _assert_finite_rows_match_reference(y2, x, grid, k, base, Wb, coef, scale, dtype, "split by columns vs reference")


def test_fused_deep_grid():
    """A grid of 1021 intervals (past the forward's 127-key grouping and the
    strips' limits; 64 x 128 x 1024 coefficients): the fused backward equals
    the unfused ops bit for bit, and the backward and the fold match the
    float64 reference. Its grad coef (32 MiB) is past cpu::stream_grad_coef's
    16 MiB, so the fused unfold streams it to memory (AVX2 builds), and the unfused one
    (fold_spline_weights' backward) does not."""
    dtype, k, G, in_f, out, N = torch.float32, 3, 1021, 64, 128, 6
    s = seed_of("fused-large")
    x, grid, Wb, coef, scale, gy = _case(dtype, k, G, "uniform", in_f, out, N, s)
    bid = ops.BASE_IDS["silu"]
    got = K_OPS.kan_linear_fused_backward(gy, x, grid, k, bid, Wb, coef, scale, True, True)
    _, exp = _unfused(x, grid, k, bid, Wb, coef, scale, gy)
    for name, g, e in zip(("gx", "gWb", "gcoef", "gscale"), got, exp):
        assert_bitwise_equal(g, e, name)
    Wc = K_OPS.fold_spline_weights(coef, scale)
    assert_close(Wc, ref.fold_spline_weights(coef, scale), TOL[dtype], msg="fold")
    l64 = [t.double().requires_grad_() for t in (Wb, coef, scale)]
    y_ref = ref.kan_linear(x.double(), grid.double(), k, "silu", l64[0], ref.fold_spline_weights(l64[1], l64[2]))
    g_ref = torch.autograd.grad(y_ref, l64, gy.double())
    for name, g, e in zip(("gWb", "gcoef", "gscale"), got[1:], g_ref):
        assert_close(g, e, TOL[dtype], msg=name)


@pytest.mark.parametrize("out", range(1, 18))
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_fused_every_narrow_width_matches_reference(dtype, out):
    """Widths below one vector (1-15 float32, 1-7 float64) each have their own
    compile-time weight-gradient loop (cpu::narrow_grad_w<T, K, O>), and 16-17
    cross into the vector paths: forward and all four gradients against the
    float64 reference, with 700 rows (three backward spans)."""
    k, G = 3, 6
    s = seed_of("fused-narrow", dtype, out)
    x, grid, Wb, coef, scale, gy = _case(dtype, k, G, "nonuniform", 3, out, 700, s)
    x = sample_x(700, grid, seed=s + 9)  # off the knots: the reference's autograd is exact there
    gy = gy[:700]
    leaves = [t.clone().requires_grad_() for t in (x, Wb, coef, scale)]
    y = ops.kan_linear_fused(leaves[0], grid, k, "silu", *leaves[1:])
    got = torch.autograd.grad(y, leaves, gy)
    l64 = [t.double().requires_grad_() for t in (x, Wb, coef, scale)]
    y_ref = ref.kan_linear(l64[0], grid.double(), k, "silu", l64[1], ref.fold_spline_weights(l64[2], l64[3]))
    exp = torch.autograd.grad(y_ref, l64, gy.double())
    assert_close(y, y_ref, TOL[dtype] * 10, msg="y")
    for name, g, e in zip(("gx", "gWb", "gcoef", "gscale"), got, exp):
        assert_close(g, e, TOL[dtype] * 10, msg=name)


def test_fused_thread_count_independent(restore_threads):
    dtype, k = torch.float32, 3
    x, grid, Wb, coef, scale, gy = _case(dtype, k, 20, "nonuniform", 33, 70, 600, seed_of("fused-threads"))
    res = []
    for threads in (1, 2, 3):
        torch.set_num_threads(threads)
        res.append((K_OPS.kan_linear_fused(x, grid, k, 2, Wb, coef, scale),
                    *K_OPS.kan_linear_fused_backward(gy, x, grid, k, 2, Wb, coef, scale, True, True)))
    for other in res[1:]:
        for a, b in zip(res[0], other):
            assert_bitwise_equal(a, b, "thread count")


def test_fused_gradcheck_and_gradgradcheck():
    """float64 gradcheck of all four inputs, and second order (create_graph:
    the composed path of csrc/autograd.cpp's KanLinearFusedFn)."""
    dtype, k = torch.float64, 2
    x, grid, Wb, coef, scale, _ = _case(dtype, k, 4, "nonuniform", 3, 2, 6, seed_of("fused-gc"))
    x = sample_x(6, grid, seed=seed_of("fused-gc-x"))
    args = [t.clone().requires_grad_() for t in (x, Wb, coef, scale)]
    fn = lambda x, Wb, c, s: ops.kan_linear_fused(x, grid, k, "silu", Wb, c, s)  # noqa: E731
    assert torch.autograd.gradcheck(fn, args)
    assert torch.autograd.gradgradcheck(fn, args)


def test_fused_hessian_matches_unfused_under_torch_func():
    dtype, k = torch.float64, 3
    x, grid, Wb, coef, scale, _ = _case(dtype, k, 5, "uniform", 3, 2, 4, seed_of("fused-func"))
    x = sample_x(4, grid, seed=seed_of("fused-func-x"))
    fused = lambda x: ops.kan_linear_fused(x, grid, k, "silu", Wb, coef, scale).sum()  # noqa: E731
    unfused = lambda x: ops.kan_linear(x, grid, k, "silu", Wb, ops.fold_spline_weights(coef, scale)).sum()  # noqa: E731
    assert_close(torch.func.hessian(fused)(x), torch.func.hessian(unfused)(x), 1e-12, msg="hessian")
    # the raw op refuses a transform with a clear message
    with pytest.raises(RuntimeError, match="call kanext.ops.kan_linear_fused"):
        torch.func.grad(lambda x: K_OPS.kan_linear_fused(x, grid, k, 2, Wb, coef, scale).sum())(x)


@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_fused_opcheck(dtype, device):
    k = 3
    x, grid, Wb, coef, scale, gy = _case(dtype, k, 4, "nonuniform", 3, 2, 7, seed_of("fused-opc", dtype))
    x, grid, Wb, coef, scale, gy = (t.to(device) for t in (x, grid, Wb, coef, scale, gy))
    rg = lambda t: t.clone().requires_grad_()  # noqa: E731
    for base in (0, 1, 2):
        torch.library.opcheck(K_OPS.kan_linear_fused.default, (rg(x), grid, k, base, rg(Wb), rg(coef), rg(scale)))
    for need_x, need_w in ((True, True), (True, False), (False, True)):
        torch.library.opcheck(K_OPS.kan_linear_fused_backward.default,
                              (gy, x, grid, k, 2, Wb, coef, scale, need_x, need_w))


@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_fused_compile_fullgraph_matches_eager(dtype):
    k = 3
    x, grid, Wb, coef, scale, gy = _case(dtype, k, 5, "nonuniform", 5, 4, 37, seed_of("fused-compile", dtype))

    def f(x, Wb, coef, scale):
        return ops.kan_linear_fused(torch.tanh(x), grid, k, "silu", Wb, coef, scale)

    def run(fn):
        leaves = [t.clone().requires_grad_() for t in (x, Wb, coef, scale)]
        y = fn(*leaves)
        y.backward(gy)
        return [y.detach()] + [t.grad for t in leaves]

    torch._dynamo.reset()
    eager, compiled = run(f), run(torch.compile(f, fullgraph=True, backend="aot_eager"))
    for a, b in zip(eager, compiled):
        assert_close(b, a, TOL[dtype], msg="compiled vs eager")


ERRORS = [
    ("coef_shape", lambda a: a.update(coef=a["coef"][:, :, :-1]),
     r"kan_linear_fused: expected coef of shape \(in, out, G\+k\) = \(3, 2, 8\), got \[3, 2, 7\]"),
    ("coef_out", lambda a: a.update(coef=a["coef"][:, :1]), r"expected coef of shape \(in, out, G\+k\)"),
    ("scale_shape", lambda a: a.update(scale=a["scale"].t()),
     r"expected scale of shape \(in, out\) = \(3, 2\), got \[2, 3\]"),
    ("Wb_shape", lambda a: a.update(Wb=a["Wb"][:2]), r"expected Wb of shape \(in=3, out\), got \[2, 2\]"),
    ("coef_dtype", lambda a: a.update(coef=a["coef"].float()), r"coef dtype Float differs from x dtype Double"),
    ("scale_dtype", lambda a: a.update(scale=a["scale"].float()), r"scale dtype Float differs from x dtype Double"),
    ("k", lambda a: a.update(k=6), r"spline order k must be in \[0, 5\], got k=6"),
    ("grid", lambda a: a["grid"][1, 3].copy_(a["grid"][1, 2]), r"knots must be strictly increasing, but grid row 1"),
]


@pytest.mark.parametrize("case", ERRORS, ids=[e[0] for e in ERRORS])
def test_fused_bad_input_raises(case):
    _, modify, match = case
    x, grid, Wb, coef, scale, gy = _case(torch.float64, 3, 5, "uniform", 3, 2, 4, seed_of("fused-err"))
    a = dict(x=x, grid=grid.clone(), k=3, Wb=Wb, coef=coef, scale=scale)
    modify(a)
    with pytest.raises(RuntimeError, match=match):
        K_OPS.kan_linear_fused(a["x"], a["grid"], a["k"], 2, a["Wb"], a["coef"], a["scale"])
    with pytest.raises(RuntimeError, match=match.replace("kan_linear_fused:", "kan_linear_fused_backward:")):
        K_OPS.kan_linear_fused_backward(gy, a["x"], a["grid"], a["k"], 2, a["Wb"], a["coef"], a["scale"], True, True)


def test_kanlinear_uses_the_fused_op_and_equals_the_unfused_layer():
    """KANLinear's forward on the CPU goes through kan_linear_fused (one
    autograd node, no folded Wc saved), and equals the unfused computation
    bit for bit, masked edges included; so do its parameter gradients."""
    import kanext

    torch.manual_seed(0)
    layer = kanext.KANLinear(6, 5, grid=7, dtype=torch.float64)
    layer.mask[2, 3] = 0.0
    x = torch.rand(50, 6, dtype=torch.float64) * 2.4 - 1.2
    y = layer(x)
    assert "KanLinearFused" in y.grad_fn.name(), y.grad_fn.name()
    y.square().sum().backward()
    got = [p.grad.clone() for p in (layer.coef, layer.scale_base, layer.scale_sp)]
    layer.zero_grad()
    Wb, Wc = layer.folded_weights()
    y2 = ops.kan_linear(x, layer.grid, layer.k, "silu", Wb, Wc)
    assert_bitwise_equal(y.detach(), y2.detach(), "KANLinear vs unfused")
    y2.square().sum().backward()
    for g, p in zip(got, (layer.coef, layer.scale_base, layer.scale_sp)):
        assert_bitwise_equal(g, p.grad, "parameter gradients")


def test_fused_backward_op_is_differentiable():
    """The raw backward op has an Autograd kernel too (the unfused composition):
    gradcheck of its four outputs in every differentiable input."""
    dtype, k = torch.float64, 3
    x, grid, Wb, coef, scale, gy = _case(dtype, k, 3, "nonuniform", 2, 3, 5, seed_of("fused-bwd-ad"))
    x, gy = sample_x(5, grid, seed=seed_of("fused-bwd-ad-x")), gy[:5]
    args = [t.clone().requires_grad_() for t in (gy, x, Wb, coef, scale)]

    def fn(gy, x, Wb, coef, scale):
        return K_OPS.kan_linear_fused_backward(gy, x, grid, k, 2, Wb, coef, scale, True, True)

    assert torch.autograd.gradcheck(fn, args)
    # without a gradient asked for, the fused kernel runs directly (no graph)
    plain = fn(*(a.detach() for a in args))
    assert all(t.grad_fn is None for t in plain)


@pytest.mark.parametrize("G", (20, 60, 100))
def test_fused_backward_long_batches_match_reference(G):
    """Batches longer than the backward's row spans (256 to 1024 rows, more at
    larger G), with out a multiple of the vector width and not: the weight
    gradients summed over groups of rows agree with the float64 reference."""
    dtype, k, in_f, N = torch.float32, 3, 2, 2300
    for out in (16, 21):
        s = seed_of("fused-long", G, out)
        x, grid, Wb, coef, scale, gy = _case(dtype, k, G, "nonuniform", in_f, out, N, s)
        got = K_OPS.kan_linear_fused_backward(gy, x, grid, k, 2, Wb, coef, scale, True, True)
        leaves = [t.double().requires_grad_() for t in (Wb, coef, scale)]
        y = ref.kan_linear(x.double(), grid.double(), k, "silu", leaves[0],
                           ref.fold_spline_weights(leaves[1], leaves[2]))
        exp = torch.autograd.grad(y, leaves, gy.double())
        for name, g, e in zip(("gWb", "gcoef", "gscale"), got[1:], exp):
            assert_close(g, e, TOL[dtype], msg=f"{name} G={G} out={out}")


@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_backward_input_columns_match_reference(dtype, restore_threads):
    """Wide layers at large G give each backward chunk fewer inputs than a
    cache line of x holds, and the backward then copies a line's worth of x's
    columns into a buffer and writes grad x's there (InputColumns). Both ops'
    backwards against the float64 reference: grad x copied back, weight
    gradients, at 1 and 3 threads (groups cut by line boundaries and by task
    boundaries, 37 inputs), a strided x, and a NaN input that must make only
    its own grad x element NaN."""
    k, G, in_f, out, N = 3, 60, 37, 130, 301
    x, grid, Wb, coef, scale, gy = _case(dtype, k, G, "nonuniform", in_f, out, N, seed_of("columns", dtype))
    x = sample_x(N, grid, seed=seed_of("columns-x", dtype))  # off the knots, a third outside the grid
    gy = gy[:N]
    leaves = [t.double().requires_grad_() for t in (x, Wb, coef, scale)]
    y = ref.kan_linear(leaves[0], grid.double(), k, "silu", leaves[1], ref.fold_spline_weights(*leaves[2:]))
    exp = torch.autograd.grad(y, leaves, gy.double())
    Wc = K_OPS.fold_spline_weights(coef, scale)
    xs = torch.empty(N, 2 * in_f, dtype=dtype)[:, ::2]  # strided: the ops copy it contiguous first
    xs.copy_(x)
    results = []
    for threads in (1, 3):
        torch.set_num_threads(threads)
        fused = K_OPS.kan_linear_fused_backward(gy, xs, grid, k, 2, Wb, coef, scale, True, True)
        gx, gWb, gWc = K_OPS.kan_linear_backward(gy, x, grid, k, 2, Wb, Wc, True, True)
        unfused = (gx, gWb, *K_OPS.fold_spline_weights_backward(gWc, coef, scale))
        for name, g, e in zip(("gx", "gWb", "gcoef", "gscale"), fused, exp):
            assert_close(g, e, TOL[dtype], msg=f"fused {name} threads={threads}")
        for name, g, e in zip(("gx", "gWb", "gcoef", "gscale"), unfused, exp):
            assert_close(g, e, TOL[dtype], msg=f"unfused {name} threads={threads}")
        results.append(fused + unfused)
    for a, b in zip(*results):
        assert_bitwise_equal(a, b, "thread count")
    xn = x.clone()
    xn[7, 20] = float("nan")
    gx_nan = K_OPS.kan_linear_fused_backward(gy, xn, grid, k, 2, Wb, coef, scale, True, False)[0]
    assert torch.isnan(gx_nan[7, 20]) and torch.isnan(gx_nan).sum() == 1
    assert_bitwise_equal(gx_nan[8:], results[0][0][8:], "rows after the NaN row")


def test_backward_input_columns_long_batch_falls_back():
    """Past 65536 rows (with grad x) the backward keeps x strided instead of
    copying its columns (InputColumns::kMaxBytes): grad x of the first rows
    equals, bit for bit, grad x of those rows alone (which copy), and the
    weight gradients agree with the same op in float64."""
    k, G, in_f, out, N = 3, 60, 17, 130, 70000
    x, grid, Wb, coef, scale, _ = _case(torch.float32, k, G, "uniform", in_f, out, 8, seed_of("columns-long"))
    x = sample_x(N, grid, seed=seed_of("columns-long-x"))
    gy = randn(N, out, seed=seed_of("columns-long-gy"), dtype=torch.float32)
    got = K_OPS.kan_linear_fused_backward(gy, x, grid, k, 2, Wb, coef, scale, True, True)
    head = K_OPS.kan_linear_fused_backward(gy[:500], x[:500], grid, k, 2, Wb, coef, scale, True, False)[0]
    assert_bitwise_equal(got[0][:500], head, "grad x of the first rows")
    exp = K_OPS.kan_linear_fused_backward(gy.double(), x.double(), grid.double(), k, 2, Wb.double(),
                                          coef.double(), scale.double(), False, True)
    for name, g, e in zip(("gWb", "gcoef", "gscale"), got[1:], exp[1:]):
        assert_close(g, e, 1e-4, msg=name)


# (dtype, k, G, out, N): shapes whose backward, with both grad x and the
# weight gradients, forms grad x inside the grouped weight-gradient pass on
# AVX-512 builds (cpu::fuse_grad_x: whole 4-vector column blocks, grad y
# rows of 2 KiB or more, an input's Wc rows of 32 KiB or more); N = 1100
# takes two 1024-row spans at G=100. Builds without AVX-512 take the
# batch-order path for them.
GROUPED_GRAD_X_CASES = [(torch.float32, 3, 100, 512, 1100), (torch.float32, 1, 30, 768, 300),
                        (torch.float32, 5, 20, 512, 300), (torch.float64, 3, 40, 256, 300),
                        (torch.float32, 3, 5, 1024, 300), (torch.float32, 0, 50, 512, 300)]


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("case", GROUPED_GRAD_X_CASES, ids=str)
def test_backward_grouped_grad_x_bitwise(case, base, restore_threads):
    """grad x formed with the weight gradients (need_x and need_w) equals, bit
    for bit, grad x alone (need_w false: row by row in batch order), and the
    weight gradients equal those without grad x, in both ops, at 1 and 3
    threads; grad x matches the float64 reference. Rows on knots, outside the
    grid, NaN (its own grad x element NaN, no other) and inf, on non-uniform
    knots."""
    dtype, k, G, out, N = case
    in_f = 5
    s = seed_of("grouped-grad-x", dtype, k, G, out, base)
    _, grid, Wb, coef, scale, _ = _case(dtype, k, G, "nonuniform", in_f, out, 8, s)
    x = torch.cat([sample_x(N, grid, seed=s + 6, widen=0.1), knot_x(grid)])
    x[3, 1] = float("nan")
    x[5, 2] = float("inf")
    gy = randn(x.shape[0], out, seed=s + 7, dtype=dtype)
    bid = ops.BASE_IDS[base]
    Wc = K_OPS.fold_spline_weights(coef, scale)
    runs = []
    for threads in (1, 3):
        torch.set_num_threads(threads)
        both = K_OPS.kan_linear_fused_backward(gy, x, grid, k, bid, Wb, coef, scale, True, True)
        gx_only = K_OPS.kan_linear_fused_backward(gy, x, grid, k, bid, Wb, coef, scale, True, False)[0]
        w_only = K_OPS.kan_linear_fused_backward(gy, x, grid, k, bid, Wb, coef, scale, False, True)[1:]
        assert_bitwise_equal(both[0], gx_only, f"fused grad x, threads={threads}")
        for name, a, b in zip(("gWb", "gcoef", "gscale"), both[1:], w_only):
            assert_bitwise_equal(a, b, f"fused {name}, threads={threads}")
        ub = K_OPS.kan_linear_backward(gy, x, grid, k, bid, Wb, Wc, True, True)
        assert_bitwise_equal(ub[0], K_OPS.kan_linear_backward(gy, x, grid, k, bid, Wb, Wc, True, False)[0],
                             f"unfused grad x, threads={threads}")
        for name, a, b in zip(("gWb", "gWc"), ub[1:], K_OPS.kan_linear_backward(gy, x, grid, k, bid, Wb, Wc,
                                                                                 False, True)[1:]):
            assert_bitwise_equal(a, b, f"unfused {name}, threads={threads}")
        assert_bitwise_equal(ub[0], both[0], f"unfused vs fused grad x, threads={threads}")
        runs.append(both)
    for a, b in zip(*runs):
        assert_bitwise_equal(a, b, "thread count")
    gx = runs[0][0]
    nan = torch.isnan(gx)
    assert nan[3, 1]  # the NaN input's own element; the inf input's may be NaN too (silu' at inf)
    nan[3, 1] = nan[5, 2] = False
    assert not nan.any()
    finite = torch.isfinite(x).all(1)
    xr = x[finite].double().requires_grad_()
    y = ref.kan_linear(xr, grid.double(), k, base, Wb.double(), ref.fold_spline_weights(coef.double(),
                                                                                          scale.double()))
    # (k = 0 without a base: y is piecewise constant in x and grad x is 0)
    exp = torch.autograd.grad(y, xr, gy[finite].double())[0] if y.requires_grad else torch.zeros_like(xr)
    assert_close(gx[finite], exp, TOL[dtype], msg="grad x vs reference")


def _grad_y_layouts(gy):
    """grad_y in the layouts autograd hands a backward, each with its
    contiguous twin: y.sum()'s scalar expanded to (N, out) (stride 0), one row
    expanded over the batch, rows of a wider tensor, every other row, and
    column-major (which the ops copy)."""
    N, out = gy.shape
    wide = torch.zeros(N, out + 5, dtype=gy.dtype)[:, 2:out + 2].copy_(gy)
    every_other = torch.zeros(2 * N, out, dtype=gy.dtype)[::2].copy_(gy)
    row = gy[N // 2].clone()
    return {
        "sum": torch.full((), 0.75, dtype=gy.dtype).expand(N, out),
        "row": row.expand(N, out),
        "wide_rows": wide,
        "every_other_row": every_other,
        "column_major": gy.t().contiguous().t(),
    }


@pytest.mark.parametrize("out", (1, 3, 5, 7, 16, 40, 130))
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_backward_grad_y_layouts_bitwise(dtype, out, restore_threads):
    """Both backward ops read grad_y's rows where they lie (a row stride,
    0 for y.sum()'s expanded scalar) instead of copying it contiguous: every
    layout gives, bit for bit, what its contiguous copy gives, for each
    need_x / need_w, at 1 and 3 threads, on the widths of every weight-gradient
    form (row by row below one vector, sorted groups above, dense blocks on
    AVX2 builds) and grad x form (unrolled 1-5 outputs, any width), with an
    inf in the expanded row reaching only what it reaches contiguous."""
    k, G, in_f, N = 3, 7, 6, 157
    x, grid, Wb, coef, scale, gy = _case(dtype, k, G, "nonuniform", in_f, out, N, seed_of("gy-layouts", dtype, out))
    N = x.shape[0]
    gy = gy[:N]
    Wc = K_OPS.fold_spline_weights(coef, scale)
    layouts = _grad_y_layouts(gy)
    inf_row = gy[0].clone()
    inf_row[out // 2] = float("inf")
    layouts["row_with_inf"] = inf_row.expand(N, out)
    for threads in (1, 3):
        torch.set_num_threads(threads)
        for name, g in layouts.items():
            # (at out = 1 a column-major (N, 1) tensor is contiguous)
            assert g.shape == (N, out) and (not g.is_contiguous() or (out == 1 and name == "column_major"))
            for need_x, need_w in ((True, True), (True, False), (False, True)):
                tag = f"{name} need_x={need_x} need_w={need_w} threads={threads}"
                fused = K_OPS.kan_linear_fused_backward(g, x, grid, k, 2, Wb, coef, scale, need_x, need_w)
                fused_c = K_OPS.kan_linear_fused_backward(g.contiguous(), x, grid, k, 2, Wb, coef, scale,
                                                          need_x, need_w)
                for a, b in zip(fused, fused_c):
                    assert_bitwise_equal(a, b, "fused " + tag)
                unfused = K_OPS.kan_linear_backward(g, x, grid, k, 2, Wb, Wc, need_x, need_w)
                unfused_c = K_OPS.kan_linear_backward(g.contiguous(), x, grid, k, 2, Wb, Wc, need_x, need_w)
                for a, b in zip(unfused, unfused_c):
                    assert_bitwise_equal(a, b, "unfused " + tag)
    # the gradients were not all zero or all NaN: the sum layout against the reference
    leaves = [t.double().requires_grad_() for t in (x, Wb, coef, scale)]
    y = ref.kan_linear(leaves[0], grid.double(), k, "silu", leaves[1], ref.fold_spline_weights(*leaves[2:]))
    exp = torch.autograd.grad(y, leaves, layouts["sum"].double())
    got = K_OPS.kan_linear_fused_backward(layouts["sum"], x, grid, k, 2, Wb, coef, scale, True, True)
    for name, g, e in zip(("gx", "gWb", "gcoef", "gscale"), got, exp):
        assert_close(g, e, TOL[dtype], msg=f"sum layout {name}")


@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_kanlinear_sum_backward_equals_dense_ones(dtype):
    """KANLinear's y.sum().backward() (grad_y a stride-0 expansion, read as
    one row) gives, bit for bit, the gradients of y.backward(ones) (a dense
    grad_y), on a layer wide and long enough for several backward chunks and
    x column groups, and on (..., in) input."""
    import kanext
    torch.manual_seed(seed_of("sum-vs-ones", dtype))
    lay = kanext.KANLinear(40, 70, grid=30, dtype=dtype)
    for shape in ((513, 40), (3, 171, 40)):
        x = (torch.rand(*shape, dtype=dtype) * 2.4 - 1.2).requires_grad_()
        grads = []
        for dense in (False, True):
            lay.zero_grad(set_to_none=True)
            x.grad = None
            y = lay(x)
            (y.backward(torch.ones_like(y)) if dense else y.sum().backward())
            grads.append([x.grad.clone()] + [p.grad.clone() for p in lay.parameters() if p.grad is not None])
        assert len(grads[0]) == len(grads[1]) >= 4
        for a, b in zip(*grads):
            assert_bitwise_equal(a, b, f"y.sum() vs ones {shape}")


def test_backward_skipped_outputs_are_stride0_zeros():
    """Outputs not asked for (need_x / need_w false) are zeros of their
    tensors' shapes that take no memory on the CPU: a stride-0 expansion of
    one zero, not a view, as the fake kernels say (opcheck and
    torch.compile compare the two). An in-place write raises; .contiguous()
    gives writable zeros. The outputs asked for are contiguous and filled.
    Empty batches too."""
    dtype, k, G, in_f, out, N = torch.float32, 3, 5, 64, 64, 4200
    x, grid, Wb, coef, scale, gy = _case(dtype, k, G, "uniform", in_f, out, N, seed_of("skipped-zeros"))
    N = x.shape[0]
    gy = gy[:N]
    Wc = K_OPS.fold_spline_weights(coef, scale)
    for rows in (N, 0):
        for need_x, need_w in ((False, True), (True, False), (False, False)):
            args = (gy[:rows], x[:rows], grid, k, 2, Wb)
            fused = K_OPS.kan_linear_fused_backward(*args, coef, scale, need_x, need_w)
            unfused = K_OPS.kan_linear_backward(*args, Wc, need_x, need_w)
            for got, like in ((fused, (x[:rows], Wb, coef, scale)), (unfused, (x[:rows], Wb, Wc))):
                for j, (t, ref_t) in enumerate(zip(got, like)):
                    need = need_x if j == 0 else need_w
                    assert t.shape == ref_t.shape and t._base is None
                    if need:
                        assert t.is_contiguous()
                        if rows:
                            assert int(torch.count_nonzero(t)) > 0
                    else:
                        assert t.stride() == (0,) * t.dim(), (j, t.stride())
                        assert t.untyped_storage().nbytes() <= t.element_size()
                        assert int(torch.count_nonzero(t)) == 0 and t.contiguous().is_contiguous()
    skipped = K_OPS.kan_linear_fused_backward(gy, x, grid, k, 2, Wb, coef, scale, False, True)[0]
    with pytest.raises(RuntimeError, match="single memory location"):
        skipped.add_(1.0)
    writable = skipped.contiguous()
    writable.add_(1.0)
    assert bool((writable == 1).all())


@pytest.mark.parametrize("frozen", ("x", "weights"))
def test_compiled_backward_with_skipped_outputs_matches_eager(frozen):
    """torch.compile of a KANLinear step whose backward skips an output (x
    without grad, as a first layer's data; or frozen weights, as when only
    grad x is wanted): the compiled backward calls the op with need_x or
    need_w false, whose stride-0 zeros must match the fake kernel's strides,
    and its gradients equal eager's bit for bit."""
    import kanext
    torch.manual_seed(seed_of("compiled-skipped", frozen))
    lay = kanext.KANLinear(9, 13, grid=6, dtype=torch.float64)
    if frozen == "weights":
        lay.requires_grad_(False)
    x = torch.rand(47, 9, dtype=torch.float64) * 2.4 - 1.2
    x.requires_grad_(frozen == "weights")
    g = torch.randn(47, 13, dtype=torch.float64)

    targets = [x] if frozen == "weights" else list(lay.parameters())
    eager = torch.autograd.grad(lay(x), targets, g)
    torch._dynamo.reset()
    compiled = torch.autograd.grad(torch.compile(lay, fullgraph=True)(x), targets, g)
    assert len(eager) == len(compiled) >= 1
    for a, b in zip(eager, compiled):
        assert_bitwise_equal(b, a, f"compiled vs eager, frozen {frozen}")
