"""CUDA kernels of the kanext ops (csrc/cuda/), against kanext.reference and
the CPU kernels. Skipped without a CUDA device.

Inputs are generated on the CPU with fixed-seed generators (helpers.py) and
moved to the GPU, so every case is reproducible and the CPU and CUDA results
are comparable. float64 results are held to ~1e-12 and float32 to ~1e-5 of the
float64 reference (relative, and absolute relative to the largest expected
magnitude); failures report the max abs / relative error.

Also (gradcheck and opcheck on CUDA are the shared bodies of tests/test_ops.py):
torch.compile(fullgraph=True) and mode="reduce-overhead" against eager, CUDA
graph capture and replay, bit-for-bit determinism, the knot check behind
KANEXT_CHECK_GRID, and a batch with N * in > 2^31 elements (64-bit indexing).
"""
from __future__ import annotations

import math

import pytest
import torch

from kanext import ops
from kanext import reference as ref

from helpers import (
    dname,
    seed_of,
    DTYPES,
    TOL,
    assert_bitwise_equal,
    assert_close,
    knot_x,
    make_grid,
    randn,
    sample_x,
)

if not torch.cuda.is_available():
    pytest.skip("needs a CUDA device (run scripts/gpu_check.sh on a GPU machine)", allow_module_level=True)

BASES = ("zero", "identity", "silu")
GS = (1, 5, 20, 100)
KS = tuple(range(6))
K_OPS = torch.ops.kanext
DEV = "cuda"






def cu(*ts):
    return tuple(t.to(DEV) for t in ts)


def up(*ts):
    return tuple(t.detach().double().cpu() for t in ts)


def ref_grads(gy, x, grid, k, base, Wb, Wc):
    """(gx, gWb, gWc) of the float64 reference on the CPU, for finite x: weight
    gradients by autograd through reference.kan_linear, grad_x as the base
    term's autograd plus the derivative twin contracted with Wc grad_y."""
    x64, g64, gy64, Wb64, Wc64 = up(x, grid, gy, Wb, Wc)
    Wb64.requires_grad_()
    Wc64.requires_grad_()
    y = ref.kan_linear(x64, g64, k, base, Wb64, Wc64)
    gWb, gWc = torch.autograd.grad(y, (Wb64, Wc64), gy64)
    xr = x64.clone().requires_grad_()
    yb = ref.base_function(base, xr) @ Wb64.detach()
    gx = torch.autograd.grad(yb, xr, gy64)[0] if yb.requires_grad else torch.zeros_like(x64)
    gx = gx + torch.einsum("nig,igj,nj->ni", ref.spline_basis_deriv(x64, g64, k), Wc64.detach(), gy64)
    return gx, gWb, gWc


def weights(in_f, G, k, out, dtype, seed):
    return randn(in_f, out, seed=seed, dtype=dtype), randn(in_f, G + k, out, seed=seed + 1, dtype=dtype)


def test_cuda_kernels_are_registered():
    for name in ("spline_basis", "spline_basis_deriv", "kan_linear_forward", "kan_linear_backward",
                 "fold_spline_weights", "fold_spline_weights_backward"):
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"kanext::{name}", "CUDA"), (
            f"kanext::{name} has no CUDA kernel: was kanext built with CUDA (KANEXT_FORCE_CUDA=1)?")


# =============================================================== 1. spline bases
# (the comparison with the reference over every k, G and grid kind is the shared
# body in tests/test_ops.py, run on CUDA through its `device` parameter)
@pytest.mark.parametrize("N", [0, 1, 255, 257])
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_spline_basis_sizes_and_noncontiguous(dtype, N):
    in_f, G, k = 5, 6, 3
    grid = make_grid(in_f, G, k, dtype, uniform=False, seed=N)
    x = sample_x(N, grid, seed=N + 1)
    xc, gc = cu(x, grid)
    for fn in (ops.spline_basis, ops.spline_basis_deriv):
        got = fn(xc, gc, k)
        assert got.shape == (N, in_f, G + k)
        assert_close(got.cpu(), fn(x, grid, k), TOL[dtype], msg=f"{fn.__name__} N={N}")
        if N > 0:
            xt = xc.t().contiguous().t()
            assert not xt.is_contiguous()
            assert_bitwise_equal(fn(xt, gc.t().contiguous().t(), k), got, "non-contiguous x and grid")


# ======================================================= 2. kan_linear forward
# (reference comparisons over k, G, bases, grid kinds: tests/test_ops.py, `device`)
@pytest.mark.parametrize("N", [0, 1, 63, 65, 1000])
@pytest.mark.parametrize("in_out", [(1, 1), (7, 5), (3, 130), (33, 64), (70, 3)])
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_forward_backward_sizes(dtype, in_out, N):
    in_f, out = in_out
    for k, base, G in ((0, "silu", 3), (3, "identity", 20), (5, "zero", 1)):
        s = seed_of("csz", dtype, in_f, out, N, k)
        grid = make_grid(in_f, G, k, dtype, uniform=(k != 3), seed=s)
        x = sample_x(N, grid, seed=s + 1)
        Wb, Wc = weights(in_f, G, k, out, dtype, s + 2)
        gy = randn(N, out, seed=s + 3, dtype=dtype)
        y = ops.kan_linear(*cu(x, grid), k, base, *cu(Wb, Wc))
        assert y.shape == (N, out)
        assert_close(y.cpu(), ref.kan_linear(*up(x, grid), k, base, *up(Wb, Wc)), TOL[dtype], msg=f"y N={N}")
        got = K_OPS.kan_linear_backward(*cu(gy, x, grid), k, ops.BASE_IDS[base], *cu(Wb, Wc), True, True)
        for name, a, e in zip(("gx", "gWb", "gWc"), got, ref_grads(gy, x, grid, k, base, Wb, Wc)):
            assert a.shape == e.shape
            assert_close(a.cpu(), e, TOL[dtype], msg=f"{name} in={in_f} out={out} N={N} k={k}")


def test_forward_misaligned_weights_equal_aligned():
    """Weights at an offset that breaks 16-byte alignment take the guarded
    (scalar) path; it computes the same values bit for bit."""
    dtype, in_f, G, k, out, N = torch.float32, 6, 5, 3, 64, 100
    grid = make_grid(in_f, G, k, dtype, uniform=False, seed=1)
    x = sample_x(N, grid, seed=2)
    Wb, Wc = cu(*weights(in_f, G, k, out, dtype, 3))
    xc, gc = cu(x, grid)
    buf_b = torch.empty(Wb.numel() + 1, dtype=dtype, device=DEV)
    buf_c = torch.empty(Wc.numel() + 1, dtype=dtype, device=DEV)
    Wb_m = buf_b[1:].view_as(Wb).copy_(Wb)
    Wc_m = buf_c[1:].view_as(Wc).copy_(Wc)
    assert Wb_m.is_contiguous() and Wb_m.data_ptr() % 16 != 0
    assert_bitwise_equal(ops.kan_linear(xc, gc, k, "silu", Wb_m, Wc_m), ops.kan_linear(xc, gc, k, "silu", Wb, Wc),
                         "misaligned vs aligned forward")
    gy = randn(N, out, seed=4, dtype=dtype).to(DEV)
    buf_g = torch.empty(gy.numel() + 1, dtype=dtype, device=DEV)
    gy_m = buf_g[1:].view_as(gy).copy_(gy)
    a = K_OPS.kan_linear_backward(gy_m, xc, gc, k, 2, Wb_m, Wc_m, True, True)
    b = K_OPS.kan_linear_backward(gy, xc, gc, k, 2, Wb, Wc, True, True)
    for name, u, v in zip(("gx", "gWb", "gWc"), a, b):
        assert_bitwise_equal(u, v, f"misaligned vs aligned {name}")


@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_noncontiguous_inputs(dtype):
    in_f, G, k, out, N = 7, 5, 3, 5, 45
    s = seed_of("cnc", dtype)
    grid = make_grid(in_f, G, k, dtype, uniform=False, seed=s)
    x, grid, Wb, Wc, gy = cu(sample_x(N, grid, seed=s + 1), grid, *weights(in_f, G, k, out, dtype, s + 2),
                             randn(N, out, seed=s + 3, dtype=dtype))
    y_c = ops.kan_linear(x, grid, k, "silu", Wb, Wc)
    g_c = K_OPS.kan_linear_backward(gy, x, grid, k, 2, Wb, Wc, True, True)
    variants = {
        "x_T": (x.t().contiguous().t(), grid, Wb, Wc),
        "x_strided": (torch.zeros(2 * N, 2 * in_f, dtype=dtype, device=DEV)[::2, 1::2].copy_(x), grid, Wb, Wc),
        "Wb_T": (x, grid, Wb.t().contiguous().t(), Wc),
        "Wc_perm": (x, grid, Wb, Wc.permute(2, 0, 1).contiguous().permute(1, 2, 0)),
        "grid_T": (x, grid.t().contiguous().t(), Wb, Wc),
    }
    for name, (xv, gv, wbv, wcv) in variants.items():
        assert_bitwise_equal(ops.kan_linear(xv, gv, k, "silu", wbv, wcv), y_c, f"forward {name}")
        got = K_OPS.kan_linear_backward(gy.t().contiguous().t(), xv, gv, k, 2, wbv, wcv, True, True)
        for gname, a, b in zip(("gx", "gWb", "gWc"), got, g_c):
            assert_bitwise_equal(a, b, f"backward {gname} {name}")


# ================================================================= 3. backward
# (reference comparisons with every need_x / need_w: tests/test_ops.py, `device`)
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
@pytest.mark.parametrize("N,in_f,out,G", [(20000, 3, 2, 5), (5000, 16, 40, 100), (3000, 4, 300, 200)])
def test_backward_batch_slices_and_basis_ranges(dtype, N, in_f, out, G):
    """Shapes for which the weight-gradient plan splits the batch into slices
    (small in * out, large N: partial sums added by a second pass) and the
    basis rows into ranges (large G)."""
    k = 3
    s = seed_of("cslice", dtype, N, in_f, out, G)
    grid = make_grid(in_f, G, k, dtype, uniform=False, seed=s)
    x = sample_x(N, grid, seed=s + 1)
    Wb, Wc = weights(in_f, G, k, out, dtype, s + 2)
    gy = randn(N, out, seed=s + 3, dtype=dtype)
    got = K_OPS.kan_linear_backward(*cu(gy, x, grid), k, 2, *cu(Wb, Wc), True, True)
    for name, a, e in zip(("gx", "gWb", "gWc"), got, ref_grads(gy, x, grid, k, "silu", Wb, Wc)):
        assert_close(a.cpu(), e, TOL[dtype], msg=f"{name} N={N} in={in_f} out={out} G={G}")


# ================================================================== 4. NaN / inf
@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_nan_and_inf_policy(dtype, base):
    in_f, G, k, out, N = 6, 5, 3, 4, 40
    s = seed_of("cnan", dtype, base)
    grid = make_grid(in_f, G, k, dtype, uniform=False, seed=s)
    x = sample_x(N, grid, seed=s + 1)
    x[2, 1] = x[7, 0] = x[7, 5] = math.nan
    x[10, 2], x[11, 3], x[12, 4], x[13, 0] = math.inf, -math.inf, 1e30, -1e30
    Wb, Wc = weights(in_f, G, k, out, dtype, s + 2)
    gy = randn(N, out, seed=s + 3, dtype=dtype)
    y = ops.kan_linear(*cu(x, grid), k, base, *cu(Wb, Wc)).cpu()
    assert_close(y, ops.kan_linear(x, grid, k, base, Wb, Wc), TOL[dtype], msg="forward vs CPU")
    assert_close(y, ref.kan_linear(*up(x, grid), k, base, *up(Wb, Wc)), TOL[dtype], msg="forward vs reference")
    got = K_OPS.kan_linear_backward(*cu(gy, x, grid), k, ops.BASE_IDS[base], *cu(Wb, Wc), True, True)
    cpu = K_OPS.kan_linear_backward(gy, x, grid, k, ops.BASE_IDS[base], Wb, Wc, True, True)
    for name, a, b in zip(("gx", "gWb", "gWc"), got, cpu):
        assert_close(a.cpu(), b, TOL[dtype], msg=f"{name} vs CPU with NaN/inf inputs")
    for fn in (ops.spline_basis, ops.spline_basis_deriv):
        assert_close(fn(*cu(x, grid), k).cpu(), fn(x, grid, k), TOL[dtype], msg=f"{fn.__name__} NaN/inf")


# ===================================================================== 5. fold
@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 5, 8), (7, 33, 40), (2, 70, 1), (64, 1024, 8), (4, 3, 103)])
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_fold_and_backward(dtype, shape):
    in_f, out, nb = shape
    coef, scale = randn(in_f, out, nb, seed=sum(shape), dtype=dtype), randn(in_f, out, seed=7, dtype=dtype)
    gW = randn(in_f, nb, out, seed=9, dtype=dtype)
    Wc = ops.fold_spline_weights(*cu(coef, scale))
    assert_bitwise_equal(Wc.cpu(), ops.fold_spline_weights(coef, scale), "fold CUDA vs CPU")
    gc, gs = K_OPS.fold_spline_weights_backward(*cu(gW, coef, scale))
    cc, cs = K_OPS.fold_spline_weights_backward(gW, coef, scale)
    assert_bitwise_equal(gc.cpu(), cc, "grad_coef CUDA vs CPU")
    assert_close(gs.cpu(), cs, TOL[dtype], msg="grad_scale CUDA vs CPU")
    c64, s64 = (t.double().requires_grad_() for t in (coef, scale))
    e = torch.autograd.grad(ref.fold_spline_weights(c64, s64), (c64, s64), gW.double())
    assert_close(gs.cpu(), e[1], TOL[dtype], msg="grad_scale vs reference")
    # non-contiguous inputs
    assert_bitwise_equal(ops.fold_spline_weights(*cu(coef.transpose(0, 1).contiguous().transpose(0, 1), scale)), Wc,
                         "non-contiguous coef")


# gradcheck (kan_linear, spline_basis, fold) and opcheck of every op run on
# CUDA from the shared bodies in tests/test_ops.py (their `device` parameter).


# ============================================================ 8. torch.compile
def _compile_case(dtype):
    in_f, out, N = 5, 4, 37
    s = seed_of("ccompile", dtype)
    g1 = make_grid(in_f, 5, 3, dtype).to(DEV)
    g2 = make_grid(in_f, 7, 1, dtype, uniform=False, seed=s).to(DEV)
    x = sample_x(N, g2.cpu(), seed=s + 2).to(DEV)
    W = [cu(*weights(in_f, G, k, out, dtype, s + 3 + i)) for i, (G, k) in enumerate(((5, 3), (7, 1)))]
    coef = randn(in_f, out, 8, seed=s + 8, dtype=dtype).to(DEV)
    scale = randn(in_f, out, seed=s + 9, dtype=dtype).to(DEV)
    P = randn(in_f, 8, out, seed=s + 10, dtype=dtype).to(DEV)

    def f(x, Wb1, Wc1, Wb2, Wc2, coef, scale):
        y = ops.kan_linear(x, g1, 3, "silu", Wb1, Wc1)
        y = y + ops.kan_linear(torch.tanh(x), g2, 1, "identity", Wb2, Wc2) * 0.5
        y = y + ops.kan_linear(x, g1, 3, "zero", Wb1, ops.fold_spline_weights(coef, scale))
        return y + torch.einsum("nig,igj->nj", ops.spline_basis(x, g1, 3), P)

    args = [x, *W[0], *W[1], coef, scale]
    gy = randn(N, out, seed=s + 11, dtype=dtype).to(DEV)
    return f, args, gy


def _run(fn, args, gy):
    leaves = [a.detach().clone().requires_grad_() for a in args]
    y = fn(*leaves)
    y.backward(gy)
    return y.detach(), [t.grad for t in leaves]


@pytest.mark.parametrize("mode", ["default", "reduce-overhead"])
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_torch_compile_matches_eager(dtype, mode):
    torch._dynamo.reset()
    f, args, gy = _compile_case(dtype)
    y_e, g_e = _run(f, args, gy)
    cf = torch.compile(f, fullgraph=True, mode=mode)
    for _ in range(3):  # reduce-overhead records a CUDA graph on a later call
        y_c, g_c = _run(cf, args, gy)
    assert_close(y_c.cpu(), y_e.cpu(), TOL[dtype], msg=f"compiled ({mode}) forward")
    for i, (a, b) in enumerate(zip(g_c, g_e)):
        assert_close(a.cpu(), b.cpu(), TOL[dtype], msg=f"compiled ({mode}) grad of arg {i}")


# =============================================================== 9. CUDA graphs
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_cuda_graph_capture_and_replay(dtype):
    """Every op captures into a CUDA graph (no host synchronisation, no
    allocation outside the caching allocator), and replay equals eager, also
    after the static inputs change in place. The second layer has a shape
    whose weight gradients need a multi-slice workspace."""
    k, G = 3, 5
    grid = make_grid(6, G, k, dtype, uniform=False, seed=1).to(DEV)
    grid2 = make_grid(3, 50, k, dtype, uniform=False, seed=2).to(DEV)
    x = sample_x(256, grid.cpu(), seed=3).to(DEV)
    x2 = sample_x(20000, grid2.cpu(), seed=4).to(DEV)
    Wb, Wc = cu(*weights(6, G, k, 40, dtype, 5))
    Wb2, Wc2 = cu(*weights(3, 50, k, 2, dtype, 6))
    gy, gy2 = randn(256, 40, seed=7, dtype=dtype).to(DEV), randn(20000, 2, seed=8, dtype=dtype).to(DEV)
    coef = randn(6, 40, G + k, seed=9, dtype=dtype).to(DEV)
    scale = randn(6, 40, seed=10, dtype=dtype).to(DEV)

    def step():
        Wf = ops.fold_spline_weights(coef, scale)
        return (ops.kan_linear(x, grid, k, "silu", Wb, Wf),
                *K_OPS.kan_linear_backward(gy, x, grid, k, 2, Wb, Wc, True, True),
                *K_OPS.kan_linear_backward(gy2, x2, grid2, k, 1, Wb2, Wc2, True, True),
                *K_OPS.fold_spline_weights_backward(Wc, coef, scale),
                ops.spline_basis(x, grid, k), ops.spline_basis_deriv(x, grid, k))

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
            x.copy_(sample_x(256, grid.cpu(), seed=11).to(DEV))
            gy2.copy_(randn(20000, 2, seed=12, dtype=dtype).to(DEV))
            scale.mul_(0.5)
        g.replay()
        torch.cuda.synchronize()
        eager = step()
        for i, (a, b) in enumerate(zip(static_out, eager)):
            assert_bitwise_equal(a, b, f"graph replay output {i} (trial {trial})")


# ============================================================= 10. determinism
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_deterministic(dtype):
    cases = [(9, 20, 3, 19, 301), (4, 5, 3, 3, 30000), (16, 100, 5, 40, 3000)]  # the last two: slices, ranges
    for in_f, G, k, out, N in cases:
        s = seed_of("cdet", dtype, N)
        grid = make_grid(in_f, G, k, dtype, uniform=False, seed=s)
        x = torch.cat([sample_x(N, grid, seed=s + 1), knot_x(grid)])
        Wb, Wc = weights(in_f, G, k, out, dtype, s + 2)
        gy = randn(x.shape[0], out, seed=s + 3, dtype=dtype)
        args = cu(x, grid, Wb, Wc, gy)

        def run(x, grid, Wb, Wc, gy):
            return (ops.spline_basis(x, grid, k), ops.spline_basis_deriv(x, grid, k),
                    ops.kan_linear(x, grid, k, "silu", Wb, Wc),
                    *K_OPS.kan_linear_backward(gy, x, grid, k, 2, Wb, Wc, True, True))

        a, b = run(*args), run(*args)
        for i, (u, v) in enumerate(zip(a, b)):
            assert_bitwise_equal(u, v, f"output {i}: two runs (in={in_f} G={G} N={N})")


# ================================================================ 11. errors
def _err_inputs(dtype=torch.float64, in_f=4, G=3, k=2, out=2, N=5):
    grid = make_grid(in_f, G, k, dtype)
    Wb, Wc = weights(in_f, G, k, out, dtype, 12)
    return dict(x=sample_x(N, grid, seed=11).to(DEV), grid=grid.to(DEV), k=k, base=2, Wb=Wb.to(DEV), Wc=Wc.to(DEV),
                gy=randn(N, out, seed=13, dtype=dtype).to(DEV))


def _call(op, a):
    if op == "spline_basis":
        return ops.spline_basis(a["x"], a["grid"], a["k"])
    if op == "kan_linear":
        return ops.kan_linear(a["x"], a["grid"], a["k"], a["base"], a["Wb"], a["Wc"])
    return ops.kan_linear_backward(a["gy"], a["x"], a["grid"], a["k"], a["base"], a["Wb"], a["Wc"])


@pytest.mark.parametrize("op", ("spline_basis", "kan_linear", "kan_linear_backward"))
def test_argument_errors_match_cpu_messages(op):
    cases = [
        (lambda a: a.update(x=a["x"][0]), r"expected x of shape \(N, in\), got a 1-D tensor"),
        (lambda a: a.update(k=6), r"spline order k must be in \[0, 5\], got k=6"),
        (lambda a: a.update(grid=a["grid"][:3]), r"grid has 3 rows but x has 4 input features"),
        (lambda a: a.update(x=a["x"].float(), gy=a["gy"].float()), r"grid dtype Double differs from x dtype Float"),
        (lambda a: a.update(grid=a["grid"].cpu()), r"grid is on cpu but x is on cuda"),
    ]
    if op != "spline_basis":
        cases += [
            (lambda a: a.update(Wb=a["Wb"][:3]), r"expected Wb of shape \(in=4, out\), got \[3, 2\]"),
            (lambda a: a.update(base=3), r"base must be 0 \(zero\), 1 \(identity\) or 2 \(silu\), got 3"),
        ]
    for modify, match in cases:
        a = _err_inputs()
        _call(op, dict(a))
        modify(a)
        with pytest.raises(RuntimeError, match=match):
            _call(op, a)


def check_grid_on_request(call, a, monkeypatch):
    """Knots are validated on CUDA only with KANEXT_CHECK_GRID set (the check
    synchronises); without it a bad grid gives garbage values but never an
    illegal memory access. call(a) runs the op on the inputs dict a."""
    a["grid"] = a["grid"].clone()
    a["grid"][2, 4] = a["grid"][2, 3]
    a["grid"][1, 0] = math.nan
    monkeypatch.delenv("KANEXT_CHECK_GRID", raising=False)
    call(a)
    torch.cuda.synchronize()  # any illegal access would surface here
    monkeypatch.setenv("KANEXT_CHECK_GRID", "1")
    with pytest.raises(RuntimeError, match=r"grid row 1 has a non-finite knot nan"):
        call(a)
    a["grid"][1, 0] = a["grid"][1, 1] - 1
    with pytest.raises(RuntimeError, match=r"knots must be strictly increasing, but grid row 2 has t\[3\]="):
        call(a)


@pytest.mark.parametrize("op", ("spline_basis", "kan_linear", "kan_linear_backward"))
def test_grid_check_on_request(op, monkeypatch):
    check_grid_on_request(lambda a: _call(op, a), _err_inputs(), monkeypatch)


# ========================================================= 12. > 2^31 elements
def test_forward_backward_beyond_int32_indexing():
    """N * in > 2^31 (x alone is 8.6 GB in float32): 64-bit index math. Rows
    on both sides of flat index 2^31, and the last rows, are checked against
    the float64 reference; the weight gradients against the sum of the same
    op over batch chunks that each stay below 2^31 elements."""
    N, in_f, out, G, k = 2**21 + 3, 1024, 4, 5, 3
    dtype = torch.float32
    need = N * in_f * 4 * 2 + (2 << 30)  # x and grad_x, plus slack
    free, _ = torch.cuda.mem_get_info()
    if free < need:
        pytest.skip(f"needs {need / 2**30:.1f} GiB free on the GPU, {free / 2**30:.1f} available")
    grid = make_grid(in_f, G, k, dtype).to(DEV)
    gen = torch.Generator(device=DEV).manual_seed(0)
    x = torch.empty(N, in_f, dtype=dtype, device=DEV).uniform_(-1.5, 1.5, generator=gen)
    x[N - 1, in_f - 1] = math.nan
    Wb, Wc = cu(*weights(in_f, G, k, out, dtype, 1))
    gy = torch.randn(N, out, dtype=dtype, device=DEV, generator=gen)
    y = ops.kan_linear(x, grid, k, "silu", Wb, Wc)
    cross = 2**31 // in_f
    rows = torch.tensor([0, 1, cross - 2, cross - 1, cross, cross + 1, N - 3, N - 2, N - 1], device=DEV)
    exp_y = ref.kan_linear(*up(x[rows], grid), k, "silu", *up(Wb, Wc))
    assert_close(y[rows].cpu(), exp_y, TOL[dtype], msg="forward rows around 2^31 and at the end")
    gx, gWb, gWc = K_OPS.kan_linear_backward(gy, x, grid, k, 2, Wb, Wc, True, True)
    finite = rows[:-1]  # the last row holds a NaN
    exp = ref_grads(gy[finite], x[finite], grid, k, "silu", Wb, Wc)
    assert_close(gx[finite].cpu(), exp[0], TOL[dtype], msg="grad_x rows around 2^31")
    assert bool(torch.isnan(gx[N - 1, in_f - 1]))
    del gx
    acc_b = torch.zeros(in_f, out, dtype=torch.float64, device=DEV)
    acc_c = torch.zeros(in_f, G + k, out, dtype=torch.float64, device=DEV)
    chunk = 2**19
    for n0 in range(0, N, chunk):
        _, b, c = K_OPS.kan_linear_backward(gy[n0:n0 + chunk], x[n0:n0 + chunk], grid, k, 2, Wb, Wc, False, True)
        acc_b += b.double()
        acc_c += c.double()
    # float32 sums over 2M rows: compare at a tolerance scaled by sqrt(N)
    tol = 2e-4
    assert_close(gWb.cpu(), acc_b.cpu(), tol, msg="grad_Wb vs chunked")
    assert_close(gWc.cpu(), acc_c.cpu(), tol, msg="grad_Wc vs chunked")
