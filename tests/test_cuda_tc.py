"""The tensor-core path of kan_linear on CUDA (csrc/cuda/kan_linear_tc.cuh):
TF32, bfloat16 and float16, the backend choice (kanext.backend), autocast,
opcheck, torch.compile, CUDA graphs and 64-bit indexing. Skipped without a
CUDA device; the same kernels run in host emulation in
tests/emu/test_emu_tc.py.

Tolerances: tests/helpers.py assert_tc_close (TF32 within 5e-3 of the
float64 reference; bfloat16 / float16 within twice PyTorch's own dense
error in that dtype).
"""
from __future__ import annotations

import math

import pytest
import torch

import kanext
from kanext import ops
from kanext import reference as ref

from helpers import (
    assert_bitwise_equal,
    assert_tc_close,
    dense_in_dtype,
    grid_of_kind,
    randn,
    sample_x,
)

if not torch.cuda.is_available():
    pytest.skip("needs a CUDA device (run scripts/gpu_check.sh on a GPU machine)", allow_module_level=True)

from test_cuda import ref_grads  # noqa: E402  (after the skip: test_cuda needs CUDA too)

DEV = "cuda"
K_OPS = torch.ops.kanext
BASE_IDS = ops.BASE_IDS
TC_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


@pytest.fixture
def tensor_cores():
    """TF32 allowed and the tensor-core backend, restored afterwards."""
    old_tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    with kanext.use_backend("tensor_core"):
        yield
    torch.backends.cuda.matmul.allow_tf32 = old_tf32


def make_case(dtype, k, G, kind, N, in_f, out, seed):
    """Inputs rounded to dtype (on the GPU) and the float32 grid."""
    grid = grid_of_kind(kind, in_f, G, k, torch.float32, seed=seed)
    x = sample_x(N, grid, seed=seed + 1).float()
    Wb = randn(in_f, out, seed=seed + 2, dtype=torch.float32)
    Wc = randn(in_f, G + k, out, seed=seed + 3, dtype=torch.float32)
    gy = randn(N, out, seed=seed + 4, dtype=torch.float32)
    return tuple(t.to(dtype).to(DEV) for t in (x, Wb, Wc, gy)) + (grid.to(DEV),)


def exact(x, grid, k, base, Wb, Wc, gy):
    """float64 reference on the CPU from the same rounded values: y, gWb, gWc, gx."""
    gx, gWb, gWc = ref_grads(gy, x, grid, k, base, Wb, Wc)
    y = ref.kan_linear(*(t.detach().double().cpu() for t in (x, grid)), k, base,
                       *(t.detach().double().cpu() for t in (Wb, Wc)))
    return y, gWb, gWc, gx


def dense(x, grid, k, base, Wb, Wc, gy):
    return dense_in_dtype(*(t.cpu() for t in (x, grid)), k, base, *(t.cpu() for t in (Wb, Wc, gy)))


@pytest.mark.parametrize("kind", ("uniform", "nonuniform"))
@pytest.mark.parametrize("G", (1, 5, 20, 60, 100))
@pytest.mark.parametrize("k", (0, 1, 3, 5))
@pytest.mark.parametrize("dtype", TC_DTYPES, ids=str)
def test_matches_reference(tensor_cores, dtype, k, G, kind):
    base = ("zero", "identity", "silu")[(G + k) % 3]
    x, Wb, Wc, gy, grid = make_case(dtype, k, G, kind, 300, 19, 70, seed=G * 7 + k)
    e = exact(x, grid, k, base, Wb, Wc, gy)
    d = dense(x, grid, k, base, Wb, Wc, gy)
    y = K_OPS.kan_linear_forward(x, grid, k, BASE_IDS[base], Wb, Wc)
    assert y.dtype == dtype
    gx, gWb, gWc = K_OPS.kan_linear_backward(gy, x, grid, k, BASE_IDS[base], Wb, Wc, True, True)
    tag = f"{dtype} k={k} G={G} {kind} {base}"
    assert_tc_close(f"y {tag}", y, e[0], d[0], dtype)
    assert_tc_close(f"gx {tag}", gx, e[3], d[3], dtype)
    assert_tc_close(f"gWb {tag}", gWb, e[1], d[1], dtype)
    assert_tc_close(f"gWc {tag}", gWc, e[2], d[2], dtype)


@pytest.mark.parametrize("dtype", TC_DTYPES, ids=str)
@pytest.mark.parametrize("N,in_f,out", [(0, 3, 4), (1, 1, 1), (129, 7, 129), (20000, 3, 2), (64, 300, 8)])
def test_sizes_and_batch_slices(tensor_cores, dtype, N, in_f, out):
    x, Wb, Wc, gy, grid = make_case(dtype, 3, 5, "nonuniform", max(N, 1), in_f, out, seed=N + in_f)
    x, gy = x[:N], gy[:N]
    y = K_OPS.kan_linear_forward(x, grid, 3, 2, Wb, Wc)
    grads = K_OPS.kan_linear_backward(gy, x, grid, 3, 2, Wb, Wc, True, True)
    e = exact(x, grid, 3, "silu", Wb, Wc, gy)
    d = dense(x, grid, 3, "silu", Wb, Wc, gy)
    for name, a, ee, dd in zip(("y", "gWb", "gWc", "gx"), (y, grads[1], grads[2], grads[0]), e, d):
        assert_tc_close(f"{name} N={N}", a, ee, dd, dtype)
    again = K_OPS.kan_linear_backward(gy, x, grid, 3, 2, Wb, Wc, True, True)
    for a, b in zip(grads, again):
        assert_bitwise_equal(a, b, "two runs")


def test_nan_policy(tensor_cores):
    for dtype in TC_DTYPES:
        x, Wb, Wc, gy, grid = make_case(dtype, 3, 5, "uniform", 40, 6, 9, seed=3)
        x[4, 2] = math.nan
        x[7, 1] = math.inf
        y = K_OPS.kan_linear_forward(x, grid, 3, 2, Wb, Wc)
        cpu = ops.kan_linear(x.float().cpu(), grid.cpu(), 3, "silu", Wb.float().cpu(), Wc.float().cpu())
        assert torch.equal(torch.isnan(y).cpu(), torch.isnan(cpu))
        gx, gWb, gWc = K_OPS.kan_linear_backward(gy, x, grid, 3, 2, Wb, Wc, True, True)
        c = ops.kan_linear_backward(gy.float().cpu(), x.float().cpu(), grid.cpu(), 3, 2, Wb.float().cpu(),
                                    Wc.float().cpu())
        for a, b in zip((gx, gWb, gWc), c):
            assert torch.equal(torch.isnan(a).cpu(), torch.isnan(b))


@pytest.mark.parametrize("shape", [(300, 19, 70), (129, 7, 129), (1, 1, 1)], ids=str)
@pytest.mark.parametrize("G,kind", [(5, "nonuniform"), (60, "uniform")])
@pytest.mark.parametrize("k", (1, 3, 5))
@pytest.mark.parametrize("dtype", TC_DTYPES, ids=str)
def test_tensor_core_v2(tensor_cores, dtype, k, G, kind, shape):
    """Backend 4 (tensor_core_v2): the warp-specialised wgmma forward (design T
    step 3; (300, 19, 70) at G = 5 is 3 K chunks, one more than the ring's 2
    stages), grad x and grad W (kan_linear_tc_v2_gx_ws.cuh / _gw_ws.cuh), in
    float32 (TF32 operands) and bfloat16 / float16 (16-bit operands, k16
    wgmmas), on compute capability 9.0 from an sm_90a build: within the
    dtype's tensor-core tolerance (in host emulation each pass is backend 2's
    bits, except on uniform grids, whose bases the uniform-grid builder
    makes). Elsewhere exactly backend 2."""
    N, in_f, out = shape
    base = ("zero", "identity", "silu")[(G + k) % 3]
    x, Wb, Wc, gy, grid = make_case(dtype, k, G, kind, N, in_f, out, seed=G + k)
    e = exact(x, grid, k, base, Wb, Wc, gy)
    d = dense(x, grid, k, base, Wb, Wc, gy)
    y4 = K_OPS.kan_linear_forward(x, grid, k, BASE_IDS[base], Wb, Wc, 4)
    y2 = K_OPS.kan_linear_forward(x, grid, k, BASE_IDS[base], Wb, Wc, 2)
    assert y4.dtype == dtype
    tag = f"v2 {dtype} k={k} G={G}"
    assert_tc_close(f"y {tag}", y4, e[0], d[0], dtype)
    if torch.cuda.get_device_capability() != (9, 0):
        assert_bitwise_equal(y4, y2, "tensor_core_v2 falls back to tensor_core off compute capability 9.0")
    g4 = K_OPS.kan_linear_backward(gy, x, grid, k, BASE_IDS[base], Wb, Wc, True, True, 4)
    g2 = K_OPS.kan_linear_backward(gy, x, grid, k, BASE_IDS[base], Wb, Wc, True, True, 2)
    assert all(g.dtype == dtype for g in g4)
    assert_tc_close(f"gx {tag}", g4[0], e[3], d[3], dtype)
    assert_tc_close(f"gWc {tag}", g4[2], e[2], d[2], dtype)
    if base != "zero":
        assert_tc_close(f"gWb {tag}", g4[1], e[1], d[1], dtype)
    else:
        assert not g4[1].any(), "base zero: grad Wb is 0"
    if torch.cuda.get_device_capability() != (9, 0):
        for a, b in zip(g4, g2):
            assert_bitwise_equal(a, b, "tensor_core_v2 backward falls back to tensor_core off compute capability 9.0")
    only_x = K_OPS.kan_linear_backward(gy, x, grid, k, BASE_IDS[base], Wb, Wc, True, False, 4)
    only_w = K_OPS.kan_linear_backward(gy, x, grid, k, BASE_IDS[base], Wb, Wc, False, True, 4)
    assert_bitwise_equal(only_x[0], g4[0], "grad x alone = grad x with the weight gradients")
    assert_bitwise_equal(only_w[1], g4[1], "grad Wb alone = with grad x")
    assert_bitwise_equal(only_w[2], g4[2], "grad Wc alone = with grad x")
    assert not only_x[1].any() and not only_x[2].any() and not only_w[0].any()


def test_backend_choice():
    """float64 and strict float32 never use tensor cores; 'auto' uses them for
    float32 with TF32 at small G only; 'local' runs bfloat16 through float32."""
    x, Wb, Wc, gy, grid = make_case(torch.float32, 3, 5, "uniform", 500, 16, 32, seed=1)
    xb, Wbb, Wcb = x.to(torch.bfloat16), Wb.to(torch.bfloat16), Wc.to(torch.bfloat16)
    old = torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = False
        with kanext.use_backend("local"):
            strict = K_OPS.kan_linear_forward(x, grid, 3, 2, Wb, Wc)
            local_bf16 = K_OPS.kan_linear_forward(xb, grid, 3, 2, Wbb, Wcb)
        with kanext.use_backend("tensor_core"):
            assert_bitwise_equal(K_OPS.kan_linear_forward(x, grid, 3, 2, Wb, Wc), strict, "strict fp32 stays local")
        torch.backends.cuda.matmul.allow_tf32 = True
        with kanext.use_backend("auto"):
            tf32 = K_OPS.kan_linear_forward(x, grid, 3, 2, Wb, Wc)
        assert not torch.equal(tf32, strict), "auto with TF32 at G=5 should take the tensor cores"
        x50, Wb50, Wc50, _, grid50 = make_case(torch.float32, 3, 50, "uniform", 500, 16, 32, seed=2)
        with kanext.use_backend("auto"):
            auto50 = K_OPS.kan_linear_forward(x50, grid50, 3, 2, Wb50, Wc50)
        with kanext.use_backend("local"):
            assert_bitwise_equal(K_OPS.kan_linear_forward(x50, grid50, 3, 2, Wb50, Wc50), auto50, "auto at G=50")
        x64 = x.double()
        with kanext.use_backend("tensor_core"):
            y64 = K_OPS.kan_linear_forward(x64, grid.double(), 3, 2, Wb.double(), Wc.double())
        with kanext.use_backend("local"):
            assert_bitwise_equal(K_OPS.kan_linear_forward(x64, grid.double(), 3, 2, Wb.double(), Wc.double()), y64,
                                 "float64 stays local")
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old
    expect = K_OPS.kan_linear_forward(xb.float(), grid, 3, 2, Wbb.float(), Wcb.float())
    assert local_bf16.dtype == torch.bfloat16
    assert float((local_bf16.float() - expect).abs().max()) <= 2.0**-8 * float(expect.abs().max())


@pytest.mark.parametrize("backend", ("auto", "tensor_core_v2"))
def test_autocast_layer(backend):
    """KANLinear under autocast(bfloat16): bf16 output, float32 gradients of
    the float32 parameters, within the bf16 bounds of the float64 model; a
    float64 layer is left in float64. tensor_core_v2: the 16-bit wgmma
    kernels on compute capability 9.0 (backend 2's elsewhere)."""
    torch.manual_seed(0)
    layer = kanext.KANLinear(24, 40, grid=5, k=3).to(DEV)
    x = torch.rand(512, 24, device=DEV) * 2 - 1
    with kanext.use_backend(backend):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            y = layer(x)
        assert y.dtype == torch.bfloat16
        y.float().square().sum().backward()
    ref_layer = kanext.KANLinear(24, 40, grid=5, k=3).double()
    ref_layer.load_state_dict({k: v.double().cpu() for k, v in layer.state_dict().items()})
    y64 = ref_layer(x.double().cpu())
    y64.square().sum().backward()
    assert max_err(y, y64) < 1e-2
    for name, p in layer.named_parameters():
        assert p.grad.dtype == torch.float32, name
        p64 = dict(ref_layer.named_parameters())[name]
        assert max_err(p.grad, p64.grad) < 2e-2, name
    layer64 = layer.double()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        assert layer64(x.double()).dtype == torch.float64


def max_err(got, exp):
    exp = exp.detach().double().cpu()
    return float((got.detach().double().cpu() - exp).abs().max()) / max(1.0, float(exp.abs().max()))


@pytest.mark.parametrize("dtype", (torch.bfloat16, torch.float16), ids=str)
def test_opcheck_half(dtype):
    x, Wb, Wc, gy, grid = make_case(dtype, 3, 5, "nonuniform", 37, 5, 6, seed=4)
    torch.library.opcheck(K_OPS.kan_linear_forward.default, (x, grid, 3, 2, Wb, Wc))
    torch.library.opcheck(K_OPS.kan_linear_backward.default, (gy, x, grid, 3, 2, Wb, Wc, True, True))


def test_compile_autocast_matches_eager():
    torch._dynamo.reset()
    x, Wb, Wc, gy, grid = make_case(torch.float32, 3, 5, "nonuniform", 256, 8, 16, seed=6)

    def f(x, Wb, Wc):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            return ops.kan_linear(torch.tanh(x), grid, 3, "silu", Wb, Wc) * 2

    leaves_e = [t.clone().requires_grad_() for t in (x, Wb, Wc)]
    leaves_c = [t.clone().requires_grad_() for t in (x, Wb, Wc)]
    eager = f(*leaves_e)
    compiled = torch.compile(f, fullgraph=True)(*leaves_c)
    assert compiled.dtype == eager.dtype == torch.bfloat16
    assert max_err(compiled, eager) <= 2.0**-8
    eager.float().sum().backward()
    compiled.float().sum().backward()
    for a, b in zip(leaves_c, leaves_e):
        assert a.grad.dtype == torch.float32
        assert max_err(a.grad, b.grad) <= 2.0**-7


def test_cuda_graph_tensor_cores(tensor_cores):
    for dtype in TC_DTYPES:
        x, Wb, Wc, gy, grid = make_case(dtype, 3, 5, "nonuniform", 20000, 3, 2, seed=5)  # multi-slice grad W

        def step():
            return (K_OPS.kan_linear_forward(x, grid, 3, 2, Wb, Wc),
                    *K_OPS.kan_linear_backward(gy, x, grid, 3, 2, Wb, Wc, True, True))

        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                step()
        torch.cuda.current_stream().wait_stream(side)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            static = step()
        x.mul_(0.5)
        g.replay()
        torch.cuda.synchronize()
        for i, (a, b) in enumerate(zip(static, step())):
            assert_bitwise_equal(a, b, f"{dtype} graph output {i}")


def test_64bit_indexing(tensor_cores):
    """N * in > 2^31 elements in bfloat16 (about 4.3 GB per (N, in) tensor)."""
    N, in_f, out = 2**31 // 2 + 3, 2, 1
    grid = grid_of_kind("uniform", in_f, 5, 3, torch.float32).to(DEV)
    x = (torch.rand(N, in_f, device=DEV) * 2 - 1).to(torch.bfloat16)
    Wb = torch.randn(in_f, out, device=DEV).to(torch.bfloat16)
    Wc = torch.randn(in_f, 8, out, device=DEV).to(torch.bfloat16)
    y = K_OPS.kan_linear_forward(x, grid, 3, 2, Wb, Wc)
    tail = slice(N - 5, N)
    e = ref.kan_linear(x[tail].double().cpu(), grid.double().cpu(), 3, "silu", Wb.double().cpu(), Wc.double().cpu())
    assert max_err(y[tail], e) < 3 * 2.0**-8
    gy = torch.ones(N, out, device=DEV, dtype=torch.bfloat16)
    gx, gWb, gWc = K_OPS.kan_linear_backward(gy, x, grid, 3, 2, Wb, Wc, True, False)
    ex = exact(x[tail], grid, 3, "silu", Wb, Wc, gy[tail])[3]
    assert max_err(gx[tail], ex) < 3 * 2.0**-8
