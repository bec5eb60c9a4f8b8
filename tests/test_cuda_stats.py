"""CUDA kernels of spline_activation, edge_stats and their backwards
(csrc/cuda/spline_activation.cu, edge_stats.cu, edge_stats_cuda.cpp, spline_activation_cuda.cpp), against
kanext.reference and the CPU kernels. Skipped without a CUDA device.

Inputs are generated on the CPU with fixed-seed generators (helpers.py) and
moved to the GPU, so every case is reproducible and the CPU and CUDA results
are comparable. float64 results are held to ~1e-12 and float32 to ~1e-5 of the
float64 reference; batch sums are compared relative to the sum of the
magnitudes of their terms. Also (gradcheck and opcheck on CUDA are the shared bodies of the CPU test
files): torch.compile(fullgraph=True) (default and reduce-overhead) against
eager, CUDA graph capture and replay, bit-for-bit determinism, the argument
errors (the CPU messages) and the knot check behind KANEXT_CHECK_GRID.
"""
from __future__ import annotations

import math

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
    make_grid,
    randn,
    sample_x,
    seed_of,
)

if not torch.cuda.is_available():
    pytest.skip("needs a CUDA device (run scripts/gpu_check.sh on a GPU machine)", allow_module_level=True)

BASES = ("zero", "identity", "silu")
GS = (1, 5, 20, 100)
K_OPS = torch.ops.kanext
DEV = "cuda"

from test_cuda import check_grid_on_request, cu, up  # noqa: E402  (after the skip: test_cuda needs CUDA too)


def test_cuda_kernels_are_registered():
    for name in ("spline_activation", "spline_activation_backward", "edge_stats", "edge_stats_backward"):
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"kanext::{name}", "CUDA"), (
            f"kanext::{name} has no CUDA kernel: was kanext built with CUDA (KANEXT_FORCE_CUDA=1)?")


# ====================================================== 1. spline_activation
def act_params(C, G, k, dtype, seed):
    return (randn(C, G + k, seed=seed, dtype=dtype), randn(C, seed=seed + 1, dtype=dtype),
            randn(C, seed=seed + 2, dtype=dtype))


def act_ref(z, grid, k, base, coef, sb, sp):
    return ref.spline_activation(*up(z, grid), k, base, *up(coef, sb, sp))


def act_ref_grads(gy, z, grid, k, base, coef, sb, sp):
    """float64 autograd of the reference, on the CPU, for finite z."""
    ts = [t.requires_grad_() for t in up(z, coef, sb, sp)]
    y = ref.spline_activation(ts[0], up(grid)[0], k, base, *ts[1:])
    return torch.autograd.grad(y, ts, up(gy)[0], allow_unused=True, materialize_grads=True)


def amax(t):
    """max |t| (0 for an empty tensor)."""
    return float(t.detach().abs().max()) if t.numel() else 0.0


def act_scale(gy, coef, sp):
    return amax(gy.double().abs().sum(0)) * max(1.0, amax(coef) * amax(sp))


ACT_NAMES = ("grad_z", "grad_coef", "grad_scale_base", "grad_scale_sp")


def check_act_backward(gy, z, grid, k, base, coef, sb, sp, dtype, msg):
    bid = ops.BASE_IDS[base]
    args = (*cu(gy, z, grid), k, bid, *cu(coef, sb, sp))
    full = K_OPS.spline_activation_backward(*args, True, True)
    exp = act_ref_grads(gy, z, grid, k, base, coef, sb, sp)
    cpu = K_OPS.spline_activation_backward(gy, z, grid, k, bid, coef, sb, sp, True, True)
    scale = act_scale(gy, coef, sp)
    for name, a, e, c in zip(ACT_NAMES, full, exp, cpu):
        sc = None if name == "grad_z" else scale
        assert a.device.type == DEV and a.dtype == dtype and a.shape == c.shape
        assert_close(a.cpu(), e, TOL[dtype], scale=sc, msg=f"{name} {msg}")
        assert_close(a.cpu(), c, TOL[dtype], scale=sc, msg=f"{name} CUDA vs CPU {msg}")
    for need_z, need_w in ((True, False), (False, True), (False, False)):
        got = K_OPS.spline_activation_backward(*args, need_z, need_w)
        for name, a, f, needed in zip(ACT_NAMES, got, full, (need_z, need_w, need_w, need_w)):
            assert_bitwise_equal(a, f if needed else torch.zeros_like(f), f"{name} need_z={need_z} need_w={need_w}")
    return full


@pytest.mark.parametrize("kind", ("uniform", "nonuniform", "skewed"))
@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("G", GS)
@pytest.mark.parametrize("k", range(6))
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_spline_activation_matches_reference(dtype, k, G, base, kind):
    C = 7
    s = seed_of("cact", dtype, k, G, base, kind)
    grid = grid_of_kind(kind, C, G, k, dtype, seed=s)
    z = torch.cat([sample_x(203, grid, seed=s + 1), knot_x(grid)])  # about half outside the grid, and every knot
    coef, sb, sp = act_params(C, G, k, dtype, s + 2)
    y = ops.spline_activation(*cu(z, grid), k, base, *cu(coef, sb, sp))
    assert y.device.type == DEV and y.dtype == dtype and y.shape == z.shape
    msg = f"k={k} G={G} {base} {kind}"
    assert_close(y.cpu(), act_ref(z, grid, k, base, coef, sb, sp), TOL[dtype], msg=f"y {msg}")
    assert_close(y.cpu(), ops.spline_activation(z, grid, k, base, coef, sb, sp), TOL[dtype], msg=f"y vs CPU {msg}")
    gy = randn(z.shape[0], C, seed=s + 5, dtype=dtype)
    check_act_backward(gy, z, grid, k, base, coef, sb, sp, dtype, msg)


@pytest.mark.parametrize("N,C", [(0, 5), (5, 0), (1, 1), (255, 3), (257, 300), (3, 1000), (30001, 1), (20000, 3)])
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_spline_activation_sizes_and_batch_slices(dtype, N, C):
    """Empty problems, one row, odd sizes, C not a multiple of the channel tile,
    and large N with small C (the weight gradients use batch slices and the
    combine pass)."""
    for k, base, G in ((0, "silu", 3), (3, "identity", 100), (5, "zero", 1)):
        s = seed_of("casz", dtype, N, C, k)
        grid = grid_of_kind("nonuniform", C, G, k, dtype, seed=s)
        z = sample_x(N, grid, seed=s + 1)
        coef, sb, sp = act_params(C, G, k, dtype, s + 2)
        y = ops.spline_activation(*cu(z, grid), k, base, *cu(coef, sb, sp))
        assert y.shape == (N, C)
        assert_close(y.cpu(), act_ref(z, grid, k, base, coef, sb, sp), TOL[dtype], msg=f"y N={N} C={C} k={k}")
        gy = randn(N, C, seed=s + 3, dtype=dtype)
        check_act_backward(gy, z, grid, k, base, coef, sb, sp, dtype, f"N={N} C={C} k={k}")


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_spline_activation_nan_and_inf_policy(dtype, base):
    C, G, k, N = 5, 5, 3, 40
    s = seed_of("canan", dtype, base)
    grid = grid_of_kind("nonuniform", C, G, k, dtype, seed=s)
    z = sample_x(N, grid, seed=s + 1)
    z[1, 0] = z[7, 3] = math.nan
    z[2, 1], z[3, 2], z[4, 3], z[5, 4] = math.inf, -math.inf, 1e30, -1e30
    coef, sb, sp = act_params(C, G, k, dtype, s + 2)
    gy = randn(N, C, seed=s + 3, dtype=dtype)
    y = ops.spline_activation(*cu(z, grid), k, base, *cu(coef, sb, sp)).cpu()
    assert_close(y, ops.spline_activation(z, grid, k, base, coef, sb, sp), TOL[dtype], msg="y vs CPU")
    assert_close(y, act_ref(z, grid, k, base, coef, sb, sp), TOL[dtype], msg="y vs reference")
    assert bool(torch.isnan(y[1, 0])) and bool(torch.isnan(y[7, 3]))
    bid = ops.BASE_IDS[base]
    got = K_OPS.spline_activation_backward(*cu(gy, z, grid), k, bid, *cu(coef, sb, sp), True, True)
    cpu = K_OPS.spline_activation_backward(gy, z, grid, k, bid, coef, sb, sp, True, True)
    scale = act_scale(gy, coef, sp)
    for name, a, c in zip(ACT_NAMES, got, cpu):
        assert_close(a.cpu(), c, TOL[dtype], scale=None if name == "grad_z" else scale, msg=f"{name} vs CPU")
    assert bool(torch.isnan(got[0][1, 0]))
    assert bool(torch.isfinite(got[1]).all()), "a NaN z must add nothing to grad_coef"


@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_spline_activation_noncontiguous_inputs(dtype):
    k, G, C, N = 2, 4, 6, 45
    s = seed_of("cacnc", dtype)
    grid = grid_of_kind("nonuniform", C, G, k, dtype, seed=s)
    z, grid, gy = cu(sample_x(N, grid, seed=s + 1), grid, randn(N, C, seed=s + 2, dtype=dtype))
    coef, sb, sp = cu(*act_params(C, G, k, dtype, s + 3))
    y = ops.spline_activation(z, grid, k, "silu", coef, sb, sp)
    g = K_OPS.spline_activation_backward(gy, z, grid, k, 2, coef, sb, sp, True, True)
    zt = z.t().contiguous().t()
    coef_s = torch.zeros(C, 2 * (G + k), dtype=dtype, device=DEV)[:, ::2].copy_(coef)
    sb_s = torch.zeros(2 * C, dtype=dtype, device=DEV)[::2].copy_(sb)
    grid_t = grid.t().contiguous().t()
    assert not (zt.is_contiguous() or coef_s.is_contiguous() or sb_s.is_contiguous() or grid_t.is_contiguous())
    assert_bitwise_equal(ops.spline_activation(zt, grid_t, k, "silu", coef_s, sb_s, sp), y, "forward")
    got = K_OPS.spline_activation_backward(gy.t().contiguous().t(), zt, grid_t, k, 2, coef_s, sb_s, sp, True, True)
    for name, a, b in zip(ACT_NAMES, got, g):
        assert_bitwise_equal(a, b, f"backward {name}")


# ============================================================= 2. edge_stats
def es_weights(in_f, G, k, out, dtype, seed):
    return randn(in_f, out, seed=seed, dtype=dtype), randn(in_f, G + k, out, seed=seed + 1, dtype=dtype)


def es_ref_grads(gs, x, grid, k, base, Wb, Wc):
    """float64 autograd of reference.edge_stats (phi materialised), on the CPU."""
    x64, Wb64, Wc64 = (t.requires_grad_() for t in up(x, Wb, Wc))
    outs = ref.edge_stats(x64, up(grid)[0], k, base, Wb64, Wc64)
    return torch.autograd.grad(outs, (x64, Wb64, Wc64), up(*gs), allow_unused=True, materialize_grads=True)


def es_scale(x, Wb, Wc, gs):
    """A bound on the batch sums' terms (phi^2 and its weight gradients)."""
    w = amax(Wb) + amax(Wc)
    return max(1.0, x.shape[0] * w * w * max(1.0, max(amax(g) for g in gs)))


ES_NAMES = ("grad_x", "grad_Wb", "grad_Wc")


def check_es(x, grid, k, base, Wb, Wc, gs, dtype, msg, vs_reference=True):
    bid = ops.BASE_IDS[base]
    scale = es_scale(x, Wb, Wc, gs)
    got = ops.edge_stats(*cu(x, grid), k, base, *cu(Wb, Wc))
    cpu = ops.edge_stats(x, grid, k, base, Wb, Wc)
    exp = ref.edge_stats(*up(x, grid), k, base, *up(Wb, Wc)) if vs_reference else cpu
    for name, a, e, c in zip(("sum", "sum_sq", "sum_abs"), got, exp, cpu):
        assert a.device.type == DEV and a.dtype == dtype and a.shape == c.shape
        assert_close(a.cpu(), e, TOL[dtype], scale=scale, msg=f"{name} {msg}")
        assert_close(a.cpu(), c, TOL[dtype], scale=scale, msg=f"{name} CUDA vs CPU {msg}")
    args = (*cu(*gs, x, grid), k, bid, *cu(Wb, Wc))
    full = K_OPS.edge_stats_backward(*args, True, True)
    cpu = K_OPS.edge_stats_backward(*gs, x, grid, k, bid, Wb, Wc, True, True)
    exp = es_ref_grads(gs, x, grid, k, base, Wb, Wc) if vs_reference else cpu
    for name, a, e, c in zip(ES_NAMES, full, exp, cpu):
        sc = None if name == "grad_x" else scale
        assert a.shape == c.shape
        assert_close(a.cpu(), e, TOL[dtype], scale=sc, msg=f"{name} {msg}")
        assert_close(a.cpu(), c, TOL[dtype], scale=sc, msg=f"{name} CUDA vs CPU {msg}")
    for need_x, need_w in ((True, False), (False, True), (False, False)):
        part = K_OPS.edge_stats_backward(*args, need_x, need_w)
        for name, a, f, needed in zip(ES_NAMES, part, full, (need_x, need_w, need_w)):
            assert_bitwise_equal(a, f if needed else torch.zeros_like(f), f"{name} need_x={need_x} need_w={need_w}")
    return got, full


@pytest.mark.parametrize("kind", ("uniform", "nonuniform", "skewed"))
@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("G", GS)
@pytest.mark.parametrize("k", range(6))
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_edge_stats_matches_reference(dtype, k, G, base, kind):
    in_f, out = 5, 37  # out: not a multiple of the 32-wide column tile
    s = seed_of("ces", dtype, k, G, base, kind)
    grid = grid_of_kind(kind, in_f, G, k, dtype, seed=s)
    x = torch.cat([sample_x(150, grid, seed=s + 1), knot_x(grid)])
    Wb, Wc = es_weights(in_f, G, k, out, dtype, s + 2)
    gs = [randn(in_f, out, seed=s + 4 + t, dtype=dtype) for t in range(3)]
    check_es(x, grid, k, base, Wb, Wc, gs, dtype, f"k={k} G={G} {base} {kind}")


@pytest.mark.parametrize("N,in_f,out", [(0, 3, 4), (4, 0, 3), (5, 2, 0), (1, 1, 1), (33, 9, 64), (7, 3, 130),
                                        (65, 4, 300), (20000, 3, 2), (3000, 2, 5)])
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_edge_stats_sizes_and_batch_slices(dtype, N, in_f, out):
    """Empty problems, one row, odd sizes, column tiles of 64/256 and partly
    empty ones, and few edges with many rows (batch slices plus the combine
    pass; with G = 100 also grad_W's basis-row ranges)."""
    for k, base, G in ((0, "silu", 3), (3, "identity", 100), (5, "zero", 1)):
        s = seed_of("cessz", dtype, N, in_f, out, k)
        grid = make_grid(in_f, G, k, dtype, uniform=(k != 3), seed=s)
        x = sample_x(N, grid, seed=s + 1)
        Wb, Wc = es_weights(in_f, G, k, out, dtype, s + 2)
        gs = [randn(in_f, out, seed=s + 4 + t, dtype=dtype) for t in range(3)]
        check_es(x, grid, k, base, Wb, Wc, gs, dtype, f"N={N} in={in_f} out={out} k={k}", vs_reference=N <= 3000)


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_edge_stats_nan_and_inf_policy(dtype, base):
    in_f, G, k, out, N = 6, 5, 3, 4, 40
    s = seed_of("cesnan", dtype, base)
    grid = make_grid(in_f, G, k, dtype, uniform=False, seed=s)
    x = sample_x(N, grid, seed=s + 1)
    x[2, 1] = x[7, 0] = x[7, 5] = math.nan
    x[10, 2], x[11, 3], x[12, 4], x[13, 0] = math.inf, -math.inf, 1e30, -1e30
    Wb, Wc = es_weights(in_f, G, k, out, dtype, s + 2)
    gs = [randn(in_f, out, seed=s + 4 + t, dtype=dtype) for t in range(3)]
    bid = ops.BASE_IDS[base]
    scale = es_scale(x, Wb, Wc, gs)
    got = ops.edge_stats(*cu(x, grid), k, base, *cu(Wb, Wc))
    for name, a, c in zip(("sum", "sum_sq", "sum_abs"), got, ops.edge_stats(x, grid, k, base, Wb, Wc)):
        assert_close(a.cpu(), c, TOL[dtype], scale=scale, msg=f"{name} vs CPU with NaN/inf x")
    g = K_OPS.edge_stats_backward(*cu(*gs, x, grid), k, bid, *cu(Wb, Wc), True, True)
    for name, a, c in zip(ES_NAMES, g, K_OPS.edge_stats_backward(*gs, x, grid, k, bid, Wb, Wc, True, True)):
        assert_close(a.cpu(), c, TOL[dtype], scale=None if name == "grad_x" else scale, msg=f"{name} vs CPU")
    nan = torch.isnan(x).to(DEV)
    assert bool((g[0][nan] == 0).all()), "grad_x must be 0 where x is NaN"


@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_edge_stats_noncontiguous_inputs(dtype):
    in_f, G, k, out, N = 7, 5, 3, 5, 45
    s = seed_of("cesnc", dtype)
    grid = make_grid(in_f, G, k, dtype, uniform=False, seed=s)
    x, grid, Wb, Wc = cu(sample_x(N, grid, seed=s + 1), grid, *es_weights(in_f, G, k, out, dtype, s + 2))
    gs = [randn(in_f, out, seed=s + 4 + t, dtype=dtype).to(DEV) for t in range(3)]
    st = ops.edge_stats(x, grid, k, "silu", Wb, Wc)
    g = K_OPS.edge_stats_backward(*gs, x, grid, k, 2, Wb, Wc, True, True)
    xt, gt = x.t().contiguous().t(), grid.t().contiguous().t()
    Wbt, Wcp = Wb.t().contiguous().t(), Wc.permute(2, 0, 1).contiguous().permute(1, 2, 0)
    gst = [t.t().contiguous().t() for t in gs]
    for a, b in zip(ops.edge_stats(xt, gt, k, "silu", Wbt, Wcp), st):
        assert_bitwise_equal(a, b, "forward with non-contiguous inputs")
    for name, a, b in zip(ES_NAMES, K_OPS.edge_stats_backward(*gst, xt, gt, k, 2, Wbt, Wcp, True, True), g):
        assert_bitwise_equal(a, b, f"backward {name} with non-contiguous inputs")


# gradcheck and opcheck of edge_stats and spline_activation on CUDA are the
# shared bodies of tests/test_edge_stats.py and tests/test_spline_activation.py
# (their `device` parameter).


# ============================================================ 5. torch.compile
def _compile_case(dtype):
    in_f, mid, N = 5, 4, 37
    s = seed_of("cstcompile", dtype)
    g1 = make_grid(in_f, 5, 3, dtype, uniform=False, seed=s).to(DEV)
    g2 = make_grid(in_f, 7, 1, dtype).to(DEV)
    x = sample_x(N, g1.cpu(), seed=s + 1).to(DEV)
    Wb, Wc = cu(*es_weights(in_f, 5, 3, mid, dtype, s + 2))
    coef, sb, sp = cu(*act_params(in_f, 7, 1, dtype, s + 4))

    def f(x, Wb, Wc, coef, sb, sp):
        S, Q, A = ops.edge_stats(x, g1, 3, "silu", Wb, Wc)
        z = ops.spline_activation(torch.tanh(x), g2, 1, "identity", coef, sb, sp)
        return (Q - S * S / N).sum() + 0.5 * A.sum() + (z * z).sum()

    return f, [x, Wb, Wc, coef, sb, sp]


def _run(fn, args):
    leaves = [a.detach().clone().requires_grad_() for a in args]
    y = fn(*leaves)
    y.backward()
    return y.detach(), [t.grad for t in leaves]


@pytest.mark.parametrize("mode", ["default", "reduce-overhead"])
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_torch_compile_matches_eager(dtype, mode):
    torch._dynamo.reset()
    f, args = _compile_case(dtype)
    y_e, g_e = _run(f, args)
    cf = torch.compile(f, fullgraph=True, mode=mode)
    for _ in range(3):  # reduce-overhead records a CUDA graph on a later call
        y_c, g_c = _run(cf, args)
    scale = max(1.0, float(y_e.abs()))
    assert_close(y_c.cpu(), y_e.cpu(), TOL[dtype], scale=scale, msg=f"compiled ({mode}) value")
    for i, (a, b) in enumerate(zip(g_c, g_e)):
        assert_close(a.cpu(), b.cpu(), TOL[dtype], msg=f"compiled ({mode}) grad of arg {i}")


# =============================================================== 6. CUDA graphs
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_cuda_graph_capture_and_replay(dtype):
    """Both ops and their backwards capture into a CUDA graph (no host
    synchronisation, workspaces from the caching allocator), and replay equals
    eager, also after the static inputs change in place. The large-N shapes
    use multi-slice workspaces."""
    k = 3
    grid = make_grid(6, 5, k, dtype, uniform=False, seed=1).to(DEV)
    grid2 = make_grid(3, 50, k, dtype, uniform=False, seed=2).to(DEV)
    x = sample_x(256, grid.cpu(), seed=3).to(DEV)
    x2 = sample_x(20000, grid2.cpu(), seed=4).to(DEV)
    Wb, Wc = cu(*es_weights(6, 5, k, 40, dtype, 5))
    Wb2, Wc2 = cu(*es_weights(3, 50, k, 2, dtype, 6))
    gs = [randn(6, 40, seed=7 + t, dtype=dtype).to(DEV) for t in range(3)]
    gs2 = [randn(3, 2, seed=10 + t, dtype=dtype).to(DEV) for t in range(3)]
    coef, sb, sp = cu(*act_params(3, 50, k, dtype, 13))
    gy2 = randn(20000, 3, seed=16, dtype=dtype).to(DEV)

    def step():
        return (*ops.edge_stats(x, grid, k, "silu", Wb, Wc),
                *K_OPS.edge_stats_backward(*gs, x, grid, k, 2, Wb, Wc, True, True),
                *ops.edge_stats(x2, grid2, k, "identity", Wb2, Wc2),
                *K_OPS.edge_stats_backward(*gs2, x2, grid2, k, 1, Wb2, Wc2, True, True),
                ops.spline_activation(x2, grid2, k, "silu", coef, sb, sp),
                *K_OPS.spline_activation_backward(gy2, x2, grid2, k, 2, coef, sb, sp, True, True))

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            step()  # warm-up: first launches set kernel attributes, the allocator caches blocks
    torch.cuda.current_stream().wait_stream(side)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        static_out = step()
    for trial in range(2):
        if trial == 1:  # new values in the static inputs
            x.copy_(sample_x(256, grid.cpu(), seed=17).to(DEV))
            gy2.copy_(randn(20000, 3, seed=18, dtype=dtype).to(DEV))
            sp.mul_(0.5)
            Wc2.mul_(-1.5)
        g.replay()
        torch.cuda.synchronize()
        eager = step()
        for i, (a, b) in enumerate(zip(static_out, eager)):
            assert_bitwise_equal(a, b, f"graph replay output {i} (trial {trial})")


# ============================================================= 7. determinism
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_deterministic(dtype):
    cases = [(9, 20, 3, 19, 301), (3, 5, 3, 2, 30000), (4, 100, 5, 40, 3000)]  # the last two: slices, ranges
    for in_f, G, k, out, N in cases:
        s = seed_of("cstdet", dtype, N)
        grid = make_grid(in_f, G, k, dtype, uniform=False, seed=s)
        x = torch.cat([sample_x(N, grid, seed=s + 1), knot_x(grid)])
        Wb, Wc = es_weights(in_f, G, k, out, dtype, s + 2)
        gs = [randn(in_f, out, seed=s + 4 + t, dtype=dtype) for t in range(3)]
        coef, sb, sp = act_params(in_f, G, k, dtype, s + 7)
        gy = randn(x.shape[0], in_f, seed=s + 10, dtype=dtype)
        args = cu(x, grid, Wb, Wc, coef, sb, sp, gy, *gs)

        def run(x, grid, Wb, Wc, coef, sb, sp, gy, *gs):
            return (*ops.edge_stats(x, grid, k, "silu", Wb, Wc),
                    *K_OPS.edge_stats_backward(*gs, x, grid, k, 2, Wb, Wc, True, True),
                    ops.spline_activation(x, grid, k, "silu", coef, sb, sp),
                    *K_OPS.spline_activation_backward(gy, x, grid, k, 2, coef, sb, sp, True, True))

        a, b = run(*args), run(*args)
        for i, (u, v) in enumerate(zip(a, b)):
            assert_bitwise_equal(u, v, f"output {i}: two runs (in={in_f} G={G} N={N})")


# ================================================================ 8. errors
def _err_inputs(dtype=torch.float64, C=4, G=3, k=2, out=2, N=5):
    grid = make_grid(C, G, k, dtype)
    Wb, Wc = es_weights(C, G, k, out, dtype, 12)
    coef, sb, sp = act_params(C, G, k, dtype, 14)
    gs = [randn(C, out, seed=20 + t, dtype=dtype).to(DEV) for t in range(3)]
    return dict(x=sample_x(N, grid, seed=11).to(DEV), grid=grid.to(DEV), k=k, base=2, Wb=Wb.to(DEV), Wc=Wc.to(DEV),
                coef=coef.to(DEV), sb=sb.to(DEV), sp=sp.to(DEV), gy=randn(N, C, seed=13, dtype=dtype).to(DEV), gs=gs)


def _call(op, a):
    if op == "spline_activation":
        return ops.spline_activation(a["x"], a["grid"], a["k"], a["base"], a["coef"], a["sb"], a["sp"])
    if op == "spline_activation_backward":
        return ops.spline_activation_backward(a["gy"], a["x"], a["grid"], a["k"], a["base"], a["coef"], a["sb"],
                                              a["sp"])
    if op == "edge_stats":
        return ops.edge_stats(a["x"], a["grid"], a["k"], a["base"], a["Wb"], a["Wc"])
    return ops.edge_stats_backward(*a["gs"], a["x"], a["grid"], a["k"], a["base"], a["Wb"], a["Wc"])


OPS = ("spline_activation", "spline_activation_backward", "edge_stats", "edge_stats_backward")


@pytest.mark.parametrize("op", OPS)
def test_argument_errors_match_cpu_messages(op):
    cases = [
        (lambda a: a.update(k=6), r"spline order k must be in \[0, 5\], got k=6"),
        (lambda a: a.update(grid=a["grid"][:3]), r"grid has 3 rows but x has 4 input features"),
        (lambda a: a.update(grid=a["grid"].cpu()), r"grid is on cpu but x is on cuda"),
        (lambda a: a.update(base=3), r"base must be 0 \(zero\), 1 \(identity\) or 2 \(silu\), got 3"),
    ]
    if op.startswith("spline_activation"):
        cases += [
            (lambda a: a.update(x=a["x"][0]), r"expected z of shape \(N, C\), got a 1-D tensor"),
            (lambda a: a.update(coef=a["coef"][:, 1:]), r"expected coef of shape \(C, G\+k\) = \(4, 5\), got \[4, 4\]"),
            (lambda a: a.update(sb=a["sb"][:3]), r"expected scale_base of shape \(C,\) = \(4,\), got \[3\]"),
        ]
    else:
        cases += [
            (lambda a: a.update(x=a["x"][0]), r"expected x of shape \(N, in\), got a 1-D tensor"),
            (lambda a: a.update(Wb=a["Wb"][:3]), r"expected Wb of shape \(in=4, out\), got \[3, 2\]"),
        ]
    if op == "spline_activation_backward":
        cases.append((lambda a: a.update(gy=a["gy"][:, :3]), r"expected grad_y of z's shape \[5, 4\], got \[5, 3\]"))
    if op == "edge_stats_backward":
        cases.append((lambda a: a.update(gs=[a["gs"][0][:, :1], *a["gs"][1:]]),
                      r"expected g_sum of shape \(in, out\) = \(4, 2\), got \[4, 1\]"))
    for modify, match in cases:
        a = _err_inputs()
        _call(op, dict(a))
        modify(a)
        with pytest.raises(RuntimeError, match=match):
            _call(op, a)
        # the same call on the CPU gives the same message
        cpu = {key: ([t.cpu() for t in v] if isinstance(v, list) else (v.cpu() if torch.is_tensor(v) else v))
               for key, v in a.items()}
        if not (torch.is_tensor(a["grid"]) and a["grid"].device.type == "cpu"):
            with pytest.raises(RuntimeError, match=match):
                _call(op, cpu)


@pytest.mark.parametrize("op", OPS)
def test_grid_check_on_request(op, monkeypatch):
    check_grid_on_request(lambda a: _call(op, a), _err_inputs(), monkeypatch)
