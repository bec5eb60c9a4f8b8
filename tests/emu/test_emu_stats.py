"""Runs the CUDA kernels of spline_activation and edge_stats (and their
backwards) in host emulation and checks them against kanext.reference (float64
autograd twins) and the CPU ops, on a machine without a GPU.

    python -m pytest tests/emu/test_emu_stats.py -m emu -q

The library is the one tests/emu/emulator.py builds (every csrc/cuda/*.cu and
emu/*.cpp, compiled with -DKANEXT_CUDA_EMULATION; see emu.h for what the
emulation checks and what it cannot). Outputs and workspaces start poisoned
(NaN / 0xFF), so an element a kernel fails to write shows up. Weight
gradients are batch sums: their tolerance is relative to the sum of the
magnitudes of the terms (as in tests/test_spline_activation.py).
"""
from __future__ import annotations

import ctypes
import math
import sys

import pytest
import torch

from emulator import BASES, DTYPES, case, dn, lib, p, poisoned, samples_with_specials
from helpers import TOL, assert_bitwise_equal, assert_close, grid_of_kind, randn

from kanext import ops
from kanext import reference as ref

_L = None


def slib():
    """The emulation library with this module's ctypes signatures registered."""
    global _L
    if _L is None:
        L = lib()
        i64, i32, vp, sz = ctypes.c_int64, ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t
        L.emu_act_forward.argtypes = [i32, vp, vp, i64, i64, i64, i32, i32, vp, vp, vp, vp]
        L.emu_act_workspace_bytes.argtypes = [i64, i64, i64, i32, sz, i32]
        L.emu_act_workspace_bytes.restype = sz
        L.emu_act_backward.argtypes = [i32, vp, vp, vp, i64, i64, i64, i32, i32, vp, vp, vp, i32, i32, vp, vp, vp, vp,
                                       vp, sz]
        L.emu_es_workspace_bytes.argtypes = [i64, i64, i64, i32, i64, sz]
        L.emu_es_workspace_bytes.restype = sz
        L.emu_es_forward.argtypes = [i32, vp, vp, i64, i64, i64, i32, i32, vp, vp, i64, vp, vp, vp, vp, sz]
        L.emu_es_backward_workspace_bytes.argtypes = [i64, i64, i64, i32, i64, sz, i32]
        L.emu_es_backward_workspace_bytes.restype = sz
        L.emu_es_backward.argtypes = [i32, vp, vp, vp, vp, vp, i64, i64, i64, i32, i32, vp, vp, i64, i32, i32, vp, vp,
                                      vp, vp, sz]
        _L = L
    return _L


def is64(t):
    return int(t.dtype == torch.float64)


def workspace(nbytes):
    return torch.full((max(nbytes, 1),), 0xFF, dtype=torch.uint8)  # poisoned


# ---------------------------------------------------------------- emulated ops
def emu_act(z, grid, k, base, coef, sb, sp):
    z, grid, coef, sb, sp = (t.contiguous() for t in (z, grid, coef, sb, sp))
    N, C = z.shape
    y = poisoned((N, C), z.dtype) if N * C else torch.zeros(N, C, dtype=z.dtype)
    rc = slib().emu_act_forward(is64(z), p(z), p(grid), N, C, grid.shape[1], k, BASES[base], p(coef), p(sb), p(sp),
                                p(y))
    assert rc == 0
    return y


def emu_act_backward(gy, z, grid, k, base, coef, sb, sp, need_z=True, need_w=True):
    """(gz, gcoef, gsb, gsp, workspace bytes); outputs not asked for, and all
    outputs of an empty problem, are zeros (as the binding returns them)."""
    gy, z, grid, coef, sb, sp = (t.contiguous() for t in (gy, z, grid, coef, sb, sp))
    N, C = z.shape
    M = grid.shape[1]
    empty = N * C == 0
    mk = lambda t, need: poisoned(t.shape, z.dtype) if need and not empty else torch.zeros_like(t)  # noqa: E731
    gz, gc, gsb, gsp = mk(z, need_z), mk(coef, need_w), mk(sb, need_w), mk(sp, need_w)
    wsb = slib().emu_act_workspace_bytes(N, C, M, k, z.element_size(), int(need_w))
    ws = workspace(wsb)
    rc = slib().emu_act_backward(is64(z), p(gy), p(z), p(grid), N, C, M, k, BASES[base], p(coef), p(sb), p(sp),
                                 int(need_z), int(need_w), p(gz), p(gc), p(gsb), p(gsp), p(ws), wsb)
    assert rc == 0
    return gz, gc, gsb, gsp, wsb


def emu_es(x, grid, k, base, Wb, Wc):
    """(S, Q, A, workspace bytes)."""
    x, grid, Wb, Wc = (t.contiguous() for t in (x, grid, Wb, Wc))
    N, inf = x.shape
    out = Wb.shape[1]
    mk = lambda: poisoned((inf, out), x.dtype) if N * inf * out else torch.zeros(inf, out, dtype=x.dtype)  # noqa
    S, Q, A = mk(), mk(), mk()
    wsb = slib().emu_es_workspace_bytes(N, inf, grid.shape[1], k, out, x.element_size())
    ws = workspace(wsb)
    rc = slib().emu_es_forward(is64(x), p(x), p(grid), N, inf, grid.shape[1], k, BASES[base], p(Wb), p(Wc), out, p(S),
                               p(Q), p(A), p(ws), wsb)
    assert rc == 0
    return S, Q, A, wsb


def emu_es_backward(gS, gQ, gA, x, grid, k, base, Wb, Wc, need_x=True, need_w=True):
    """(gx, gWb, gWc, workspace bytes)."""
    gS, gQ, gA, x, grid, Wb, Wc = (t.contiguous() for t in (gS, gQ, gA, x, grid, Wb, Wc))
    N, inf = x.shape
    out, M = Wb.shape[1], grid.shape[1]
    empty = N * inf * out == 0
    mk = lambda t, need: poisoned(t.shape, x.dtype) if need and not empty else torch.zeros_like(t)  # noqa: E731
    gx, gWb, gWc = mk(x, need_x), mk(Wb, need_w), mk(Wc, need_w)
    wsb = slib().emu_es_backward_workspace_bytes(N, inf, M, k, out, x.element_size(), int(need_w))
    ws = workspace(wsb)
    rc = slib().emu_es_backward(is64(x), p(gS), p(gQ), p(gA), p(x), p(grid), N, inf, M, k, BASES[base], p(Wb), p(Wc),
                                out, int(need_x), int(need_w), p(gx), p(gWb), p(gWc), p(ws), wsb)
    assert rc == 0
    return gx, gWb, gWc, wsb


# ------------------------------------------------------------------ references
def act_case(dtype, k, G, kind, N, C, seed, special=True):
    grid = grid_of_kind(kind, C, G, k, dtype, seed=seed)
    z = samples_with_specials(N, grid, seed + 1, special)  # about half outside the grid
    coef = randn(C, G + k, seed=seed + 2, dtype=dtype)
    sb, sp = randn(C, seed=seed + 3, dtype=dtype), randn(C, seed=seed + 4, dtype=dtype)
    gy = randn(z.shape[0], C, seed=seed + 5, dtype=dtype)
    return z, grid, coef, sb, sp, gy


def act_ref_grads(gy, z, grid, k, base, coef, sb, sp):
    """float64 autograd of reference.spline_activation with the NaN policy: NaN
    entries add nothing to the weight gradients and get grad_z NaN."""
    nan = torch.isnan(z)
    zc = torch.where(nan, torch.zeros_like(z), z).double()
    gyc = torch.where(nan, torch.zeros_like(gy), gy).double()
    ts = [t.detach().double().requires_grad_() for t in (zc, coef, sb, sp)]
    y = ref.spline_activation(ts[0], grid.double(), k, base, *ts[1:])
    g = torch.autograd.grad(y, ts, gyc, allow_unused=True, materialize_grads=True)
    gz = torch.autograd.grad(ref.spline_activation(ts[0], grid.double(), k, base, *ts[1:]), ts[0], gy.double(),
                             allow_unused=True, materialize_grads=True)[0]
    return (torch.where(nan, torch.full_like(gz, math.nan), gz), *g[1:])


def act_sum_scale(gy, coef, sp):
    return float(gy.double().abs().sum(0).max()) * max(1.0, float(coef.abs().max()) * float(sp.abs().max()))


def es_case(dtype, k, G, kind, N, inf, out, seed, special=True):
    """emulator.case with the three (in, out) incoming gradients of edge_stats instead of grad_y."""
    x, grid, Wb, Wc, _ = case(dtype, k, G, kind, N, inf, out, seed, special=special)
    gs = tuple(randn(inf, out, seed=seed + 4 + t, dtype=dtype) for t in range(3))
    return x, grid, Wb, Wc, gs


def es_ref_grads(gs, x, grid, k, base, Wb, Wc):
    x64, Wb64, Wc64 = (t.detach().double().requires_grad_() for t in (x, Wb, Wc))
    outs = ref.edge_stats(x64, grid.double(), k, base, Wb64, Wc64)
    return torch.autograd.grad(outs, (x64, Wb64, Wc64), tuple(g.double() for g in gs), allow_unused=True,
                               materialize_grads=True)


def es_scale(x, Wb, Wc, gs):
    """A bound on the magnitude of the batch sums (phi^2 and its gradient)."""
    w = float(Wb.abs().max()) + float(Wc.abs().max())
    return max(1.0, x.shape[0] * w * w * max(1.0, float(max(g.abs().max() for g in gs))))


# ------------------------------------------------------------------------ tests
ACT_GS = ((1, "uniform"), (5, "nonuniform"), (20, "skewed"), (100, "nonuniform"))


def check_act(dtype, k, base, G, kind, N, C, seed, special=True):
    z, grid, coef, sb, sp, gy = act_case(dtype, k, G, kind, N, C, seed, special)
    msg = f"{dn(dtype)} k={k} {base} G={G} {kind} N={N} C={C}"
    y = emu_act(z, grid, k, base, coef, sb, sp)
    exp = ref.spline_activation(*(t.double() for t in (z, grid)), k, base, *(t.double() for t in (coef, sb, sp)))
    assert_close(y, exp, TOL[dtype], msg=f"y {msg}")
    assert_close(y, ops.spline_activation(z, grid, k, base, coef, sb, sp), TOL[dtype], msg=f"y vs CPU {msg}")
    got = emu_act_backward(gy, z, grid, k, base, coef, sb, sp)
    exp = act_ref_grads(gy, z, grid, k, base, coef, sb, sp)
    cpu = ops.spline_activation_backward(gy, z, grid, k, base, coef, sb, sp)
    scale = act_sum_scale(gy, coef, sp)
    fin = torch.isfinite(z)
    for name, a, e, c in zip(("gz", "gcoef", "gsb", "gsp"), got[:4], exp, cpu):
        sc = None if name == "gz" else scale
        if name == "gz":  # +-inf z: compared with the CPU op only
            assert_close(a[fin], e[fin], TOL[dtype], msg=f"{name} {msg}")
        else:
            assert_close(a, e, TOL[dtype], scale=sc, msg=f"{name} {msg} ws={got[4]}")
        assert_close(a, c, TOL[dtype], scale=sc, msg=f"{name} vs CPU {msg}")
    for need_z, need_w in ((True, False), (False, True), (False, False)):
        part = emu_act_backward(gy, z, grid, k, base, coef, sb, sp, need_z, need_w)
        for name, a, full, needed in zip(("gz", "gcoef", "gsb", "gsp"), part[:4], got[:4],
                                         (need_z, need_w, need_w, need_w)):
            assert_bitwise_equal(a, full if needed else torch.zeros_like(full), f"{name} need={need_z},{need_w}")
    return got


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("k", range(6))
@pytest.mark.parametrize("dtype", DTYPES, ids=dn)
def test_spline_activation(dtype, k, base):
    # two (G, knots) cases per k, so that every one meets several orders
    for G, kind in (ACT_GS[k % 4], ACT_GS[(k + 2) % 4]):
        check_act(dtype, k, base, G, kind, 41, 5, seed=17 * k + G + len(base))


@pytest.mark.parametrize("N,C", [(0, 4), (3, 0), (1, 1), (7, 3), (5, 300), (33, 257)])
@pytest.mark.parametrize("dtype", DTYPES, ids=dn)
def test_spline_activation_sizes(dtype, N, C):
    """Empty problems, single rows, odd sizes, C not a multiple of the block's
    channel tile (257, 300: two tiles, the second partly empty)."""
    if N * C == 0:
        z, grid, coef, sb, sp, gy = act_case(dtype, 3, 5, "nonuniform", N, max(C, 1), 1, special=False)
        z, gy = z[:, :C], gy[:, :C]
        grid, coef, sb, sp = grid[:C], coef[:C], sb[:C], sp[:C]
        assert emu_act(z, grid, 3, "silu", coef, sb, sp).shape == (N, C)
        got = emu_act_backward(gy, z, grid, 3, "silu", coef, sb, sp)
        assert got[4] == 0 and all(bool((t == 0).all()) for t in got[:4])
        return
    check_act(dtype, 3, "silu", 5, "nonuniform", N, C, seed=N + C, special=False)


def test_spline_activation_batch_slices_and_determinism():
    """Large N, small C: the weight gradients are split into batch slices whose
    partials a combine pass adds; G = 100 also splits the basis rows. Two runs
    agree bit for bit."""
    L = slib()
    for dtype, N, C, G in ((torch.float64, 10000, 1, 100), (torch.float32, 9000, 3, 5)):
        one = L.emu_act_workspace_bytes(1, C, G + 7, 3, torch.finfo(dtype).bits // 8, 1)
        assert L.emu_act_workspace_bytes(N, C, G + 7, 3, torch.finfo(dtype).bits // 8, 1) > one, "expected slices"
        z, grid, coef, sb, sp, gy = act_case(dtype, 3, G, "nonuniform", N, C, seed=N + G, special=False)
        z[5, 0] = math.nan
        a = emu_act_backward(gy, z, grid, 3, "silu", coef, sb, sp)
        exp = act_ref_grads(gy, z, grid, 3, "silu", coef, sb, sp)
        scale = act_sum_scale(gy, coef, sp)
        for name, got, e in zip(("gz", "gcoef", "gsb", "gsp"), a[:4], exp):
            assert_close(got, e, TOL[dtype], scale=None if name == "gz" else scale, msg=f"{name} N={N} ws={a[4]}")
        b = emu_act_backward(gy, z, grid, 3, "silu", coef, sb, sp)
        for name, u, v in zip(("gz", "gcoef", "gsb", "gsp"), a[:4], b[:4]):
            assert_bitwise_equal(u, v, f"{name}: two runs")


def check_es(dtype, k, base, G, kind, N, inf, out, seed, special=True):
    x, grid, Wb, Wc, gs = es_case(dtype, k, G, kind, N, inf, out, seed, special)
    msg = f"{dn(dtype)} k={k} {base} G={G} {kind} N={N} in={inf} out={out}"
    got = emu_es(x, grid, k, base, Wb, Wc)
    exp = ref.edge_stats(*(t.double() for t in (x, grid)), k, base, Wb.double(), Wc.double())
    cpu = ops.edge_stats(x, grid, k, base, Wb, Wc)
    scale = es_scale(x, Wb, Wc, gs)
    for name, a, e, c in zip(("S", "Q", "A"), got[:3], exp, cpu):
        assert_close(a, e, TOL[dtype], scale=scale, msg=f"{name} {msg} ws={got[3]}")
        assert_close(a, c, TOL[dtype], scale=scale, msg=f"{name} vs CPU {msg}")
    g = emu_es_backward(*gs, x, grid, k, base, Wb, Wc)
    exp = es_ref_grads(gs, x, grid, k, base, Wb, Wc)
    cpu = ops.edge_stats_backward(*gs, x, grid, k, base, Wb, Wc)
    for name, a, e, c in zip(("gx", "gWb", "gWc"), g[:3], exp, cpu):
        # +-inf x makes phi infinite: there the reference is compared where both
        # are finite, and the CPU op everywhere (NaN / inf pattern included)
        sc = None if name == "gx" else scale
        fin = torch.isfinite(x) if name == "gx" else (torch.isfinite(a) & torch.isfinite(e))
        assert_close(a[fin], e[fin], TOL[dtype], scale=sc, msg=f"{name} {msg} ws={g[3]}")
        assert_close(a, c, TOL[dtype], scale=sc, msg=f"{name} vs CPU {msg}")
    for need_x, need_w in ((True, False), (False, True), (False, False)):
        part = emu_es_backward(*gs, x, grid, k, base, Wb, Wc, need_x, need_w)
        for name, a, full, needed in zip(("gx", "gWb", "gWc"), part[:3], g[:3], (need_x, need_w, need_w)):
            assert_bitwise_equal(a, full if needed else torch.zeros_like(full), f"{name} need={need_x},{need_w}")
    return got, g


ES_GS = ((1, "uniform"), (5, "nonuniform"), (20, "skewed"), (100, "uniform"))


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("k", range(6))
@pytest.mark.parametrize("dtype", DTYPES, ids=dn)
def test_edge_stats(dtype, k, base):
    for G, kind in (ES_GS[k % 4], ES_GS[(k + 2) % 4]):
        check_es(dtype, k, base, G, kind, 21, 3, 37, seed=31 * k + G + len(base))


@pytest.mark.parametrize("shape", [(0, 3, 4), (4, 0, 3), (5, 2, 0), (1, 1, 1), (7, 3, 70), (33, 9, 130),
                                   (9, 2, 300)])
@pytest.mark.parametrize("dtype", DTYPES, ids=dn)
def test_edge_stats_sizes(dtype, shape):
    """Empty problems, one row, odd sizes, out not a multiple of the column
    tile (70, 130: partly empty tiles; 300: two 256-wide tiles)."""
    N, inf, out = shape
    if N * inf * out == 0:
        x, grid, Wb, Wc, gs = es_case(dtype, 3, 5, "nonuniform", N, max(inf, 1), max(out, 1), 3, special=False)
        x, grid, Wb, Wc = x[:, :inf], grid[:inf], Wb[:inf, :out], Wc[:inf, :, :out]
        gs = tuple(g[:inf, :out] for g in gs)
        got = emu_es(x, grid, 3, "silu", Wb, Wc)
        assert got[3] == 0 and all(bool((t == 0).all()) and t.shape == (inf, out) for t in got[:3])
        g = emu_es_backward(*gs, x, grid, 3, "silu", Wb, Wc)
        assert g[3] == 0 and all(bool((t == 0).all()) for t in g[:3])
        return
    check_es(dtype, 3, "silu", 5, "nonuniform", N, inf, out, seed=sum(shape), special=False)


def test_edge_stats_batch_slices_ranges_and_determinism():
    """Few edges and many rows: the forward and grad_W split the batch into
    slices (partials added by a second pass); G = 100 in float64 also splits
    grad_W's basis rows. Two runs agree bit for bit."""
    L = slib()
    for dtype, N, inf, out, G in ((torch.float64, 2500, 2, 3, 100), (torch.float32, 3000, 3, 2, 5)):
        el = torch.finfo(dtype).bits // 8
        assert L.emu_es_workspace_bytes(N, inf, G + 7, 3, out, el) > 0, "expected forward slices"
        assert L.emu_es_backward_workspace_bytes(N, inf, G + 7, 3, out, el, 1) > 0, "expected grad_W slices"
        x, grid, Wb, Wc, gs = es_case(dtype, 3, G, "nonuniform", N, inf, out, seed=N + G, special=False)
        x[7, 1] = math.nan
        a, ga = emu_es(x, grid, 3, "silu", Wb, Wc), emu_es_backward(*gs, x, grid, 3, "silu", Wb, Wc)
        scale = es_scale(x, Wb, Wc, gs)
        exp = ref.edge_stats(*(t.double() for t in (x, grid)), 3, "silu", Wb.double(), Wc.double())
        for name, got, e in zip(("S", "Q", "A"), a[:3], exp):
            assert_close(got, e, TOL[dtype], scale=scale, msg=f"{name} N={N} G={G}")
        for name, got, e in zip(("gx", "gWb", "gWc"), ga[:3], es_ref_grads(gs, x, grid, 3, "silu", Wb, Wc)):
            assert_close(got, e, TOL[dtype], scale=scale, msg=f"{name} N={N} G={G}")
        b, gb = emu_es(x, grid, 3, "silu", Wb, Wc), emu_es_backward(*gs, x, grid, 3, "silu", Wb, Wc)
        for i, (u, v) in enumerate(zip(a[:3] + ga[:3], b[:3] + gb[:3])):
            assert_bitwise_equal(u, v, f"output {i}: two runs")


def test_grid_stride_loops(monkeypatch):
    """With the grid capped at 2 blocks per dimension, every kernel must loop
    (over elements, channel/edge tiles, basis ranges, slices and warp tasks)."""
    monkeypatch.setenv("EMU_MAX_GRID", "2")
    for dtype in DTYPES:
        check_act(dtype, 2, "silu", 100, "nonuniform", 30, 300, seed=5, special=False)  # tiles x basis ranges
        z, grid, coef, sb, sp, gy = act_case(dtype, 2, 6, "uniform", 20000, 3, seed=6, special=False)  # slices
        got = emu_act_backward(gy, z, grid, 2, "identity", coef, sb, sp)
        exp = act_ref_grads(gy, z, grid, 2, "identity", coef, sb, sp)
        for name, a, e in zip(("gz", "gcoef", "gsb", "gsp"), got[:4], exp):
            assert_close(a, e, TOL[dtype], scale=None if name == "gz" else act_sum_scale(gy, coef, sp), msg=name)
        check_es(dtype, 2, "silu", 6, "nonuniform", 40, 10, 40, seed=7, special=False)  # tiles, warp tasks
        check_es(dtype, 1, "identity", 4, "nonuniform", 3000, 3, 2, seed=8, special=False)  # slices


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider", *sys.argv[1:]]))
