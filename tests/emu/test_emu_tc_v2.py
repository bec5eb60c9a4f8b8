"""The tensor-core v2 path (design T of docs/roofline.md section 6) in host
emulation: first the Hopper primitives of csrc/cuda/hopper.cuh as emulated by
csrc/cuda/emu/emu_hopper.h, against small cases laid out here by the PTX
ISA's rules (an independent Python reading of the accumulator layout and the
descriptor layouts); then the step-2 forward kernel (tc2_forward_kernel, no
longer behind a backend: test_emu_tc_v2_ws.py tests step 3, which backend
tensor_core_v2 runs) against kanext.reference and the present tensor-core
kernel.

    python -m pytest tests/emu/test_emu_tc_v2.py -m emu -q

What this cannot show: that the GPU agrees with this reading of the ISA. No
GPU has run any of it.
"""
from __future__ import annotations

import ctypes
import math

import numpy as np
import pytest
import torch

import emulator as emu
from emulator import BASES, p, poisoned
from helpers import assert_tc_close as check
from helpers import dense_in_dtype as dense_torch
from test_emu_tc import exact, rounded_case, tc_forward

from kanext import ops

pytestmark = pytest.mark.emu


def lib():
    L = emu.lib()
    if not getattr(L, "_hop_ready", False):
        i64, i32, vp, u32 = ctypes.c_int64, ctypes.c_int, ctypes.c_void_p, ctypes.c_uint32
        L.emu_hop_wgmma.argtypes = [vp, i64, i32, vp, vp, i32, i32, vp, vp, i32]
        L.emu_hop_bulk.argtypes = [vp, i32, i32, i32, vp, vp]
        L.emu_hop_make_desc.argtypes = [u32, u32, u32, i32]
        L.emu_hop_make_desc.restype = ctypes.c_uint64
        L.emu_tc_v2_step2_forward.argtypes = [vp, vp, i64, i64, i64, i32, i32, vp, vp, i64, vp]
        L.emu_tc_v2_forward.argtypes = [i32, vp, vp, i64, i64, i64, i32, i32, vp, vp, i64, vp, i32]
        L.emu_tc_v2_uniform_inputs.argtypes = [vp, i64, i64, vp]
        L._hop_ready = True
    return L


def ptr(a: np.ndarray):
    return ctypes.c_void_p(a.ctypes.data)


# ------------------------------------------------- the ISA's layouts, in Python
def acc_row_col(t, e):
    """Row and column of accumulator register e of thread t (0..127) of a
    warpgroup, m64nNk8 with float32 accumulators."""
    warp, lane = divmod(t, 32)
    return 16 * warp + lane // 4 + (8 if e % 4 >= 2 else 0), 8 * (e // 4) + 2 * (lane % 4) + e % 2


def kmajor_addr(start, r, k, lbo, sbo, swizzle, size=4):
    """Byte address of element (r, k) of a K-major operand of `size`-byte
    elements (4: TF32, 2: bf16 / f16): a core matrix is 8 rows of 16 bytes."""
    per = 16 // size
    if swizzle == 0:
        return start + (r // 8) * sbo + (k // per) * lbo + (r % 8) * 16 + (k % per) * size
    a = start + (r // 8) * sbo + (r % 8) * 128 + k * size
    return a ^ (((a >> 7) & 7) << 4)


def place(image, mat, start, lbo, sbo, swizzle):
    """Writes mat (rows x 8, float32) into the byte image as a K-major operand."""
    view = image.view(np.float32)
    for r in range(mat.shape[0]):
        for k in range(mat.shape[1]):
            view[kmajor_addr(start, r, k, lbo, sbo, swizzle) // 4] = mat[r, k]


def run_wgmma(image, descs_a, descs_b, scale_d, c_init, wgs=1, wtype=0):
    steps = len(descs_a) // wgs
    da = np.array(descs_a, dtype=np.uint64)
    db = np.array(descs_b, dtype=np.uint64)
    out = np.full(128 * wgs * 64, np.nan, dtype=np.float32)
    c = np.ascontiguousarray(c_init, dtype=np.float32)
    assert lib().emu_hop_wgmma(ptr(image), image.nbytes, wgs, ptr(da), ptr(db), steps, scale_d, ptr(c), ptr(out),
                               wtype) == 0
    return out.reshape(128 * wgs, 64)


def gather(regs, wg=0):
    """The 64 x 128 accumulator tile of warpgroup wg from the per-thread registers."""
    D = np.full((64, 128), np.nan, dtype=np.float32)
    for t in range(128):
        for e in range(64):
            r, c = acc_row_col(t, e)
            D[r, c] = regs[128 * wg + t, e]
    return D


def desc(addr, lbo, sbo, swizzle):
    return int(lib().emu_hop_make_desc(addr, lbo, sbo, swizzle))


# ------------------------------------------------------------------ primitives
def test_descriptor_bits():
    # start 0x400 -> 0x40, LBO 128 -> 8 (bits 16-29), SBO 2048 -> 128 (bits 32-45), 128B swizzle = 1 (bits 62-63)
    assert desc(0x400, 128, 2048, 1) == 0x40 | (8 << 16) | (128 << 32) | (1 << 62)
    assert desc(0x3FFF0, 16, 16, 0) == 0x3FFF | (1 << 16) | (1 << 32)


@pytest.mark.parametrize("swizzle", (0, 1), ids=("noswizzle", "swizzle128"))
def test_wgmma_hand_case(swizzle):
    """A[r, :] = (r+1, 1, 0...), B[n, :] = (n+1, 2, 0...) (B stored N x K,
    K-major): D[r, n] = (r+1)(n+1) + 2. Thread 37 (warp 1, lane 5), register
    6 holds row 16 + 1 + 8 = 25, column 8 + 2 = 10: 26 * 11 + 2 = 288."""
    A = np.zeros((64, 8), np.float32)
    A[:, 0] = np.arange(1, 65)
    A[:, 1] = 1
    B = np.zeros((128, 8), np.float32)
    B[:, 0] = np.arange(1, 129)
    B[:, 1] = 2
    image = np.full(64 * 1024, 0xFF, dtype=np.uint8)  # unused bytes NaN
    if swizzle == 0:
        a0, b0, lbo, sbo = 0, 8192, 128, 256  # core matrices: K pair 128 B apart, 8-row groups 256 B apart
    else:
        a0, b0, lbo, sbo = 0, 16384, 16, 1024  # 128-byte rows, 8-row groups 1,024 B apart
    place(image, A, a0, lbo, sbo, swizzle)
    place(image, B, b0, lbo, sbo, swizzle)
    regs = run_wgmma(image, [desc(a0, lbo, sbo, swizzle)], [desc(b0, lbo, sbo, swizzle)], 0,
                     np.full((128, 64), 5.0))
    assert regs[37, 6] == 288.0
    assert regs[0, 0] == 1 * 1 + 2 and regs[0, 1] == 1 * 2 + 2  # row 0, columns 0 and 1
    assert regs[127, 63] == 64 * 128 + 2  # warp 3 lane 31: row 16*3+7+8 = 63, column 120+6+1 = 127
    D = gather(regs)
    np.testing.assert_array_equal(D, (np.arange(1, 65)[:, None] * np.arange(1, 129)[None, :] + 2).astype(np.float32))


@pytest.mark.parametrize("swizzle", (0, 1), ids=("noswizzle", "swizzle128"))
def test_wgmma_chain_scale_and_tf32(swizzle):
    """Two warpgroups, four k-steps each (K = 32) at different rows of one
    tile, accumulating onto c_init (scale_d = 1): D = C + A B with the
    operands' 13 low mantissa bits ignored."""
    rng = np.random.default_rng(0)
    K = 32
    A = rng.standard_normal((128, K)).astype(np.float32)
    B = rng.standard_normal((128, K)).astype(np.float32)
    C = rng.standard_normal((256, 64)).astype(np.float32)
    image = np.full(96 * 1024, 0xFF, dtype=np.uint8)
    da, db = [], []
    if swizzle == 0:
        lbo, sbo = 128, 8 * 128  # K = 32: 8 core matrices along K, 128 B apart; 8-row groups 1,024 B apart
        a0, b0 = 0, 32768
        for M, base in ((A, a0), (B, b0)):
            for r in range(M.shape[0]):
                for k in range(K):
                    image.view(np.float32)[kmajor_addr(base, r, k, lbo, sbo, 0) // 4] = M[r, k]
        for g in range(2):
            for s in range(K // 8):
                da.append(desc(a0 + g * 8 * sbo + s * 2 * lbo, lbo, sbo, 0))  # rows 64 g.., K pair 2 s
                db.append(desc(b0 + s * 2 * lbo, lbo, sbo, 0))
    else:
        sbo = 1024  # K = 32 fills a 128-byte row: one swizzle atom along K
        a0, b0 = 0, 32768
        for M, base in ((A, a0), (B, b0)):
            for r in range(M.shape[0]):
                for k in range(K):
                    image.view(np.float32)[kmajor_addr(base, r, k, 16, sbo, 1) // 4] = M[r, k]
        for g in range(2):
            for s in range(K // 8):
                da.append(desc(a0 + g * 8 * sbo + 32 * s, 16, sbo, 1))  # k-step: start + 32 bytes
                db.append(desc(b0 + 32 * s, 16, sbo, 1))
    regs = run_wgmma(image, da, db, 1, C, wgs=2)

    def trunc(m):
        return (m.view(np.uint32) & np.uint32(0xFFFFE000)).view(np.float32).astype(np.float64)

    for g in range(2):
        D = gather(regs, g)
        Cg = gather(C, g)
        expect = Cg + trunc(A[64 * g:64 * g + 64]) @ trunc(B).T
        np.testing.assert_allclose(D, expect, rtol=0, atol=1e-4)
    # The truncation is visible: the exact float32 product differs.
    D0 = gather(regs, 0)
    exact = gather(C, 0) + A[:64].astype(np.float64) @ B.astype(np.float64).T
    assert np.abs(D0 - exact).max() > 1e-4


@pytest.mark.parametrize("swizzle", (0, 1), ids=("noswizzle", "swizzle128"))
@pytest.mark.parametrize("dtype", (torch.bfloat16, torch.float16), ids=("bf16", "f16"))
def test_wgmma_k16_16bit(dtype, swizzle):
    """m64n128k16 with bf16 / f16 operands (what the 16-bit v2 forward
    issues): two warpgroups, two k-steps each (K = 32), accumulating onto
    c_init. A 16-bit core matrix row holds 8 elements, so a k-step of 16
    spans two core matrices (no swizzle: start + 2 LBO; 128-byte swizzle:
    start + 32 bytes). D = C + A B, the products exact, the sums float32."""
    rng = np.random.default_rng(1)
    K = 32
    A = torch.from_numpy(rng.standard_normal((128, K))).to(dtype)
    B = torch.from_numpy(rng.standard_normal((128, K))).to(dtype)
    C = rng.standard_normal((256, 64)).astype(np.float32)
    image = np.full(64 * 1024, 0xFF, dtype=np.uint8)  # unused bytes: NaN in either type
    lbo, sbo = (128, 4 * 128) if swizzle == 0 else (16, 1024)
    a0, b0 = 0, 32768
    view = image.view(np.uint16)
    for M, base in ((A, a0), (B, b0)):
        bits = M.view(torch.int16).numpy().view(np.uint16)
        for r in range(M.shape[0]):
            for k in range(K):
                view[kmajor_addr(base, r, k, lbo, sbo, swizzle, size=2) // 2] = bits[r, k]
    da, db = [], []
    for g in range(2):
        for s in range(K // 16):
            step = s * 2 * lbo if swizzle == 0 else 32 * s
            da.append(desc(a0 + g * 8 * sbo + step, lbo, sbo, swizzle))
            db.append(desc(b0 + step, lbo, sbo, swizzle))
    regs = run_wgmma(image, da, db, 1, C, wgs=2, wtype=1 if dtype == torch.bfloat16 else 2)
    A64, B64 = A.double().numpy(), B.double().numpy()
    for g in range(2):
        expect = gather(C, g) + A64[64 * g:64 * g + 64] @ B64.T
        np.testing.assert_allclose(gather(regs, g), expect, rtol=0, atol=1e-4)


def test_wgmma_scale_d_zero_ignores_accumulator():
    A = np.ones((64, 8), np.float32)
    B = np.ones((128, 8), np.float32)
    image = np.full(64 * 1024, 0xFF, dtype=np.uint8)
    place(image, A, 0, 128, 256, 0)
    place(image, B, 8192, 128, 256, 0)
    regs = run_wgmma(image, [desc(0, 128, 256, 0)], [desc(8192, 128, 256, 0)], 0, np.full((128, 64), np.nan))
    assert np.all(regs == 8.0)
    regs = run_wgmma(image, [desc(0, 128, 256, 0)], [desc(8192, 128, 256, 0)], 1, np.full((128, 64), 1.0))
    assert np.all(regs == 9.0)


def bulk(src, n, phases, skip_wait):
    out = np.full(phases * n, np.nan, dtype=np.float32)
    flags = np.full(4, -1, dtype=np.int32)
    assert lib().emu_hop_bulk(ptr(src), n, phases, skip_wait, ptr(out), ptr(flags)) == 0
    return out.reshape(phases, n), flags


def test_mbarrier_bulk_copy_phases():
    """Three phases of 128 arrivals + one bulk copy each, waited by parity."""
    n, phases = 256, 3
    src = np.arange(phases * n, dtype=np.float32) * 0.5 + 1
    out, flags = bulk(src, n, phases, skip_wait=0)
    np.testing.assert_array_equal(out, src.reshape(phases, n))
    # After init (phase 0 running): parity 0 not complete, parity 1 (the
    # phase "before" it) reads as complete. After phase 0: the reverse.
    assert list(flags) == [0, 1, 1, 0]


def test_bulk_copy_is_asynchronous():
    """Without the mbarrier wait a reader sees the poisoned buffer (the copy
    lands in a later scheduling round): the emulation can catch a missing wait."""
    n = 256
    src = np.arange(n, dtype=np.float32)
    out, _ = bulk(src, n, 1, skip_wait=1)
    assert np.isnan(out).any()


# ------------------------------------- the step-2 forward kernel (tc2_forward_kernel)
def v2_forward(x, grid, k, base, Wb, Wc):
    x, Wb, Wc = (t.float().contiguous() for t in (x, Wb, Wc))
    grid = grid.float().contiguous()
    N, inf = x.shape
    out = Wb.shape[1]
    y = poisoned((N, out), torch.float32)
    assert lib().emu_tc_v2_step2_forward(p(x), p(grid), N, inf, grid.shape[1], k, base, p(Wb), p(Wc), out, p(y)) == 0
    return y


def same_bits_as_v1(y2, y1):
    """In emulation both kernels add the same TF32 products in the same order
    (chunks in order, k-steps of 8 in order, k within a step in order), so
    they agree bit for bit here; on the GPU the orders inside an MMA differ
    and only the TF32 tolerance holds."""
    assert torch.equal(torch.isnan(y2), torch.isnan(y1))
    fin = ~torch.isnan(y1)
    assert torch.equal(y2[fin], y1[fin])


# (N, in, out): single elements, partial row and column tiles, more than one
# tile each way (128 x 128 tiles), chunk tails.
SHAPES = [(1, 1, 1), (70, 7, 5), (130, 9, 40), (33, 17, 130), (257, 3, 129)]
GRIDS = [(1, "uniform"), (5, "nonuniform"), (60, "skewed")]  # nb1 <= 64, = 64 (k = 3, base), > 64


def grid_cases(k, shape):
    """The cases of one (k, shape): one per grid of GRIDS, the basis function
    rotating with k: (tag, x, grid, base name, Wb, Wc, gy)."""
    N, inf, out = shape
    for gi, (G, kind) in enumerate(GRIDS):
        base = list(BASES)[(gi + k) % 3]
        x, grid, Wb, Wc, gy = rounded_case(torch.float32, k, G, kind, N, inf, out, seed=N + inf + out + 7 * k + G)
        yield f"y k={k} G={G} {kind} base={base}", x, grid, base, Wb, Wc, gy


@pytest.mark.parametrize("k", (1, 2, 3, 4, 5))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_forward(k, shape):
    for tag, x, grid, base, Wb, Wc, gy in grid_cases(k, shape):
        e_y = exact(x, grid, k, base, Wb, Wc, gy)[0]
        d_y = dense_torch(x, grid, k, base, Wb, Wc, gy)[0]
        y2 = v2_forward(x, grid, k, BASES[base], Wb, Wc)
        check(tag, y2, e_y, d_y, torch.float32)
        same_bits_as_v1(y2, tc_forward(x, grid, k, BASES[base], Wb, Wc))


def test_forward_k0_and_outside_grid():
    """k = 0 (also in the present path) and x well outside the grid (only
    the base term, zero bases)."""
    for k in (0, 3):
        x, grid, Wb, Wc, gy = rounded_case(torch.float32, k, 5, "nonuniform", 50, 6, 20, seed=21 + k)
        x[::3] = x[::3] * 40.0 + 7.0
        e_y = exact(x, grid, k, "silu", Wb, Wc, gy)[0]
        d_y = dense_torch(x, grid, k, "silu", Wb, Wc, gy)[0]
        y2 = v2_forward(x, grid, k, BASES["silu"], Wb, Wc)
        check(f"y k={k}", y2, e_y, d_y, torch.float32)
        same_bits_as_v1(y2, tc_forward(x, grid, k, BASES["silu"], Wb, Wc))


def check_nan_inf_policy(forward, same=None):
    """As the present tensor-core forward: a NaN x makes its whole output row
    NaN; +-inf x contributes only its base term (as the CPU op). forward has
    v2_forward's signature (also used for step 3, test_emu_tc_v2_ws.py);
    same(y, y_wmma, x, grid, Wb, Wc) compares with the WMMA forward (default:
    bit for bit; step 3's uniform-grid builder passes its own bound)."""
    x, grid, Wb, Wc, gy = rounded_case(torch.float32, 3, 5, "uniform", 40, 6, 9, seed=3)
    x[4, 2] = math.nan
    x[9, 0] = math.nan
    x[7, 1] = math.inf
    x[8, 3] = -math.inf
    y = forward(x, grid, 3, 2, Wb, Wc)
    cpu = ops.kan_linear(x, grid, 3, "silu", Wb, Wc)
    assert torch.isnan(y[4]).all() and torch.isnan(y[9]).all()
    assert torch.equal(torch.isnan(y), torch.isnan(cpu))
    assert torch.equal(torch.isinf(y), torch.isinf(cpu))
    if same is None:
        same_bits_as_v1(y, tc_forward(x, grid, 3, 2, Wb, Wc))
    else:
        same(y, tc_forward(x, grid, 3, 2, Wb, Wc), x, grid, Wb, Wc)
    fin = torch.isfinite(x).all(1)
    clean = exact(x[fin], grid, 3, "silu", Wb, Wc, gy[fin])[0]
    dense = dense_torch(x[fin], grid, 3, "silu", Wb, Wc, gy[fin])[0]
    check("y finite rows", y[fin], clean, dense, torch.float32)


def test_forward_nan_inf_policy():
    check_nan_inf_policy(v2_forward)


def test_forward_grid_stride(monkeypatch):
    """At most 2 blocks per grid dimension: the kernel's tile loops run."""
    monkeypatch.setenv("EMU_MAX_GRID", "2")
    x, grid, Wb, Wc, gy = rounded_case(torch.float32, 2, 6, "nonuniform", 300, 5, 300, seed=5)
    e_y = exact(x, grid, 2, "identity", Wb, Wc, gy)[0]
    d_y = dense_torch(x, grid, 2, "identity", Wb, Wc, gy)[0]
    check("y", v2_forward(x, grid, 2, BASES["identity"], Wb, Wc), e_y, d_y, torch.float32)


def check_empty_sizes(forward):
    """Empty batch, out or in: the right shape, y = 0 without inputs."""
    for N, inf, out in ((0, 3, 4), (5, 3, 0), (5, 0, 4)):
        x, grid, Wb, Wc, gy = rounded_case(torch.float32, 3, 5, "uniform", max(N, 1), max(inf, 1), max(out, 1),
                                           seed=1)
        x, Wb, Wc, grid = x[:N, :inf], Wb[:inf, :out], Wc[:inf, :, :out], grid[:max(inf, 1)]
        y = forward(x, grid, 3, 2, Wb, Wc)
        assert y.shape == (N, out)
        if N and out:  # no input: y = 0
            assert torch.equal(y, torch.zeros(N, out))


def test_forward_empty_sizes():
    check_empty_sizes(v2_forward)
