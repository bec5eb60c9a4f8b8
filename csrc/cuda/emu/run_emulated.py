"""Runs kanext's CUDA kernels in host emulation and checks them against
kanext.reference (and the CPU ops), on a machine without a GPU.

    python csrc/cuda/emu/run_emulated.py          # or: pytest csrc/cuda/emu/run_emulated.py -q

The real .cu files (kernels and launchers, unchanged) are compiled with g++
and -DKANEXT_CUDA_EMULATION (see emu.h: every block runs on blockDim real
threads with real barriers, so indexing, tiling, barrier placement, the
warp reductions, the batch-slice partials and the NaN policy are exercised).
What this cannot show: speed, fast-math rounding, register/shared-memory
limits, or anything about the real memory model; tests/test_cuda.py checks
the real thing on a GPU.

EMU_SM_COUNT (default 132) sets the SM count the launchers plan for;
EMU_MAX_GRID caps the grid so that the kernels' grid-stride loops run.
"""
from __future__ import annotations

import ctypes
import hashlib
import math
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from conftest import TOL, assert_bitwise_equal, assert_close, grid_of_kind, knot_x, randn, sample_x  # noqa: E402

from kanext import ops  # noqa: E402
from kanext import reference as ref  # noqa: E402

SOURCES = sorted((ROOT / "csrc" / "cuda").glob("*.cu")) + sorted((ROOT / "csrc" / "cuda" / "emu").glob("*.cpp"))
HEADERS = (sorted((ROOT / "csrc" / "cuda").glob("*.cuh")) + sorted((ROOT / "csrc" / "cuda" / "emu").glob("*.h"))
           + sorted((ROOT / "csrc" / "include" / "kanext").glob("*.h")))
BASES = {"zero": 0, "identity": 1, "silu": 2}


def build() -> Path:
    h = hashlib.sha256()
    for p in SOURCES + HEADERS:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    out = ROOT / "build" / f"emu_{h.hexdigest()[:16]}"
    lib = out / "libkanext_emu.so"
    if lib.exists():
        return lib
    out.mkdir(parents=True, exist_ok=True)
    flags = ["-std=c++17", "-O2", "-g", "-fPIC", "-DKANEXT_CUDA_EMULATION", "-Wall",
             "-Wno-unknown-pragmas", f"-I{ROOT / 'csrc' / 'include'}", f"-I{ROOT / 'csrc' / 'cuda'}"]

    def compile_one(src):
        obj = out / (src.name + ".o")
        subprocess.run(["g++", "-x", "c++", *flags, "-c", str(src), "-o", str(obj)], check=True)
        return obj

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as ex:
        objs = list(ex.map(compile_one, SOURCES))
    subprocess.run(["g++", "-shared", *map(str, objs), "-o", str(lib)], check=True)
    return lib


_LIB = None


def lib():
    global _LIB
    if _LIB is None:
        L = ctypes.CDLL(str(build()))
        i64, i32, vp, sz = ctypes.c_int64, ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t
        L.emu_spline_basis.argtypes = [i32, vp, vp, i64, i64, i64, i32, i32, vp]
        L.emu_forward.argtypes = [i32, vp, vp, i64, i64, i64, i32, i32, vp, vp, i64, vp]
        L.emu_workspace_bytes.argtypes = [i64, i64, i64, i32, i64, sz, i32]
        L.emu_workspace_bytes.restype = sz
        L.emu_backward.argtypes = [i32, vp, vp, vp, i64, i64, i64, i32, i32, vp, vp, i64, i32, i32, vp, vp, vp, vp, sz]
        L.emu_fold.argtypes = [i32, vp, vp, i64, i64, i64, vp]
        L.emu_fold_backward.argtypes = [i32, vp, vp, vp, i64, i64, i64, vp, vp]
        _LIB = L
    return _LIB


def p(t):
    return ctypes.c_void_p(t.data_ptr())


def poisoned(shape, dtype):
    """Outputs start as NaN: an element the kernel fails to write shows up."""
    return torch.full(shape, math.nan, dtype=dtype)


# ---------------------------------------------------------------- emulated ops
def emu_basis(x, grid, k, deriv):
    x, grid = x.contiguous(), grid.contiguous()
    N, inf = x.shape
    M = grid.shape[1]
    out = poisoned((N, inf, M - k - 1), x.dtype)
    assert lib().emu_spline_basis(int(x.dtype == torch.float64), p(x), p(grid), N, inf, M, k, int(deriv), p(out)) == 0
    return out


def emu_forward(x, grid, k, base, Wb, Wc):
    x, grid, Wb, Wc = (t.contiguous() for t in (x, grid, Wb, Wc))
    N, inf = x.shape
    out = Wb.shape[1]
    y = poisoned((N, out), x.dtype)
    rc = lib().emu_forward(int(x.dtype == torch.float64), p(x), p(grid), N, inf, grid.shape[1], k, base, p(Wb), p(Wc),
                           out, p(y))
    assert rc == 0
    return y


def emu_backward(gy, x, grid, k, base, Wb, Wc, need_x=True, need_w=True):
    gy, x, grid, Wb, Wc = (t.contiguous() for t in (gy, x, grid, Wb, Wc))
    N, inf = x.shape
    out, M = Wb.shape[1], grid.shape[1]
    gx = poisoned(x.shape, x.dtype) if need_x else torch.zeros_like(x)
    gWb = poisoned(Wb.shape, x.dtype) if need_w else torch.zeros_like(Wb)
    gWc = poisoned(Wc.shape, x.dtype) if need_w else torch.zeros_like(Wc)
    wsb = lib().emu_workspace_bytes(N, inf, M, k, out, x.element_size(), int(need_w))
    ws = torch.full((max(wsb, 1),), 0xFF, dtype=torch.uint8)  # poisoned too
    rc = lib().emu_backward(int(x.dtype == torch.float64), p(gy), p(x), p(grid), N, inf, M, k, base, p(Wb), p(Wc), out,
                            int(need_x), int(need_w), p(gx), p(gWb), p(gWc), p(ws), wsb)
    assert rc == 0
    return gx, gWb, gWc, wsb


def emu_fold(coef, scale):
    coef, scale = coef.contiguous(), scale.contiguous()
    inf, out, nb = coef.shape
    Wc = poisoned((inf, nb, out), coef.dtype)
    assert lib().emu_fold(int(coef.dtype == torch.float64), p(coef), p(scale), inf, out, nb, p(Wc)) == 0
    return Wc


def emu_fold_backward(gW, coef, scale):
    gW, coef, scale = gW.contiguous(), coef.contiguous(), scale.contiguous()
    inf, out, nb = coef.shape
    gc, gs = poisoned(coef.shape, coef.dtype), poisoned(scale.shape, coef.dtype)
    assert lib().emu_fold_backward(int(coef.dtype == torch.float64), p(gW), p(coef), p(scale), inf, out, nb, p(gc),
                                   p(gs)) == 0
    return gc, gs


# ------------------------------------------------------------------ references
def ref_grads(gy, x, grid, k, base, Wb, Wc):
    """(gx, gWb, gWc) in float64, with the NaN policy: grad_x from the
    derivative twin, NaN where x is NaN; NaN entries add nothing to the weights."""
    x64, g64, gy64, Wb64, Wc64 = (t.double() for t in (x, grid, gy, Wb, Wc))
    nan = torch.isnan(x64)
    xc = torch.where(nan, torch.zeros_like(x64), x64)
    b = ref.base_function(base, xc)
    xr = xc.clone().requires_grad_()
    yb = ref.base_function(base, xr) @ Wb64
    gx = torch.autograd.grad(yb, xr, gy64)[0] if yb.requires_grad else torch.zeros_like(x64)
    gx = gx + torch.einsum("nig,igj,nj->ni", ref.spline_basis_deriv(xc, g64, k), Wc64, gy64)
    gx = torch.where(nan, torch.full_like(gx, math.nan), gx)
    keep = (~nan).to(x64.dtype)
    gWb = (b * keep).T @ gy64
    gWc = torch.einsum("nig,nj->igj", ref.spline_basis(xc, g64, k) * keep[..., None], gy64)
    return gx, gWb, gWc


def case(dtype, k, G, kind, N, inf, out, seed, special=True):
    grid = grid_of_kind(kind, inf, G, k, dtype, seed=seed)
    x = sample_x(N, grid, seed=seed + 1)
    if special:
        x = torch.cat([x, knot_x(grid)])
        if N >= 3 and inf >= 2:
            x[0, 1] = math.nan
            x[2, 0] = math.inf
            x[1, inf - 1] = -math.inf
    Wb = randn(inf, out, seed=seed + 2, dtype=dtype)
    Wc = randn(inf, G + k, out, seed=seed + 3, dtype=dtype)
    gy = randn(x.shape[0], out, seed=seed + 4, dtype=dtype)
    return x, grid, Wb, Wc, gy


DTYPES = (torch.float32, torch.float64)
dn = lambda d: str(d).replace("torch.", "")  # noqa: E731


# ------------------------------------------------------------------------ tests
@pytest.mark.parametrize("kind", ("uniform", "nonuniform", "skewed"))
@pytest.mark.parametrize("G", (1, 5, 20, 100))
@pytest.mark.parametrize("k", range(6))
@pytest.mark.parametrize("dtype", DTYPES, ids=dn)
def test_spline_basis(dtype, k, G, kind):
    x, grid, *_ = case(dtype, k, G, kind, 61, 5, 1, seed=7 * G + k)
    for deriv in (False, True):
        got = emu_basis(x, grid, k, deriv)
        fn = ref.spline_basis_deriv if deriv else ref.spline_basis
        assert_close(got, fn(x.double(), grid.double(), k), TOL[dtype], msg=f"basis deriv={deriv}")
        cpu = (ops.spline_basis_deriv if deriv else ops.spline_basis)(x, grid, k)
        assert_close(got, cpu, TOL[dtype], msg="vs CPU op")


@pytest.mark.parametrize("shape", [(1, 1, 1), (70, 7, 5), (130, 9, 64), (65, 17, 37), (3, 40, 130)])
@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("k", range(6))
@pytest.mark.parametrize("dtype", DTYPES, ids=dn)
def test_forward(dtype, k, base, shape):
    N, inf, out = shape
    for G, kind in ((1, "uniform"), (5, "nonuniform"), (100, "skewed")):
        x, grid, Wb, Wc, _ = case(dtype, k, G, kind, N, inf, out, seed=N + 3 * inf + out + 11 * k + G)
        y = emu_forward(x, grid, k, BASES[base], Wb, Wc)
        exp = ref.kan_linear(x.double(), grid.double(), k, base, Wb.double(), Wc.double())
        assert_close(y, exp, TOL[dtype], msg=f"forward G={G} {kind} {shape}")
        assert_close(y, ops.kan_linear(x, grid, k, base, Wb, Wc), TOL[dtype], msg="vs CPU op")


@pytest.mark.parametrize("shape", [(1, 1, 1), (70, 7, 5), (130, 9, 64), (65, 33, 37), (3, 40, 300), (1100, 3, 2)])
@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("k", (0, 1, 3, 5))
@pytest.mark.parametrize("dtype", DTYPES, ids=dn)
def test_backward(dtype, k, base, shape):
    N, inf, out = shape
    for G, kind in ((1, "uniform"), (5, "nonuniform"), (100, "skewed")):
        x, grid, Wb, Wc, gy = case(dtype, k, G, kind, N, inf, out, seed=N + 5 * inf + out + 13 * k + G)
        gx, gWb, gWc, wsb = emu_backward(gy, x, grid, k, BASES[base], Wb, Wc)
        exp = ref_grads(gy, x, grid, k, base, Wb, Wc)
        cpu = ops.kan_linear_backward(gy, x, grid, k, BASES[base], Wb, Wc)
        for name, a, e, c in zip(("gx", "gWb", "gWc"), (gx, gWb, gWc), exp, cpu):
            fin = torch.isfinite(x).all(1) if name == "gx" else slice(None)
            # rows with +-inf x have inf/NaN base derivatives: compare those to the CPU op only
            assert_close(a[fin], e[fin], TOL[dtype], msg=f"{name} G={G} {kind} {shape} ws={wsb}")
            assert_close(a, c, TOL[dtype], msg=f"{name} vs CPU op G={G} {kind} {shape}")
        for need_x, need_w in ((True, False), (False, True)):
            got = emu_backward(gy, x, grid, k, BASES[base], Wb, Wc, need_x, need_w)[:3]
            for name, a, full, needed in zip(("gx", "gWb", "gWc"), got, (gx, gWb, gWc), (need_x, need_w, need_w)):
                assert_bitwise_equal(a, full if needed else torch.zeros_like(full), f"{name} need={need_x},{need_w}")


def test_backward_uses_slices_and_basis_ranges():
    """The plan splits the batch (small in*out, large N) and the basis rows
    (large G): both paths are exercised, and they are deterministic."""
    L = lib()
    assert L.emu_workspace_bytes(5000, 3, 5 + 7, 3, 2, 8, 1) > 0, "expected a multi-slice plan"
    for dtype, G in ((torch.float64, 100), (torch.float32, 200)):
        x, grid, Wb, Wc, gy = case(dtype, 3, G, "nonuniform", 3000, 4, 3, seed=G)
        a = emu_backward(gy, x, grid, 3, 2, Wb, Wc)
        exp = ref_grads(gy, x, grid, 3, "silu", Wb, Wc)
        for name, got, e in zip(("gWb", "gWc"), a[1:3], exp[1:]):
            assert_close(got, e, TOL[dtype], msg=f"{name} G={G} ws={a[3]}")
        b = emu_backward(gy, x, grid, 3, 2, Wb, Wc)
        for got, again in zip(a[:3], b[:3]):
            assert_bitwise_equal(got, again, "two runs")


def test_grid_stride_loops(monkeypatch):
    """With the grid capped at 2 blocks per dimension, every kernel must loop."""
    monkeypatch.setenv("EMU_MAX_GRID", "2")
    for dtype in DTYPES:
        x, grid, Wb, Wc, gy = case(dtype, 2, 6, "nonuniform", 300, 70, 70, seed=5)
        assert_close(emu_forward(x, grid, 2, 2, Wb, Wc), ref.kan_linear(*(t.double() for t in (x, grid)), 2, "silu",
                                                                           Wb.double(), Wc.double()), TOL[dtype])
        got = emu_backward(gy, x, grid, 2, 2, Wb, Wc)
        for a, e in zip(got[:3], ref_grads(gy, x, grid, 2, "silu", Wb, Wc)):
            fin = torch.isfinite(a) & torch.isfinite(e)
            assert_close(a[fin], e[fin], TOL[dtype], msg="capped grid backward")
        assert_close(emu_basis(x, grid, 2, True), ref.spline_basis_deriv(x.double(), grid.double(), 2), TOL[dtype])
        coef, scale = randn(70, 70, 8, seed=1, dtype=dtype), randn(70, 70, seed=2, dtype=dtype)
        assert_close(emu_fold(coef, scale), ref.fold_spline_weights(coef.double(), scale.double()), TOL[dtype])


@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 5, 8), (7, 33, 40), (2, 70, 1), (4, 3, 103)])
@pytest.mark.parametrize("dtype", DTYPES, ids=dn)
def test_fold(dtype, shape):
    inf, out, nb = shape
    coef, scale = randn(inf, out, nb, seed=sum(shape), dtype=dtype), randn(inf, out, seed=7, dtype=dtype)
    assert_bitwise_equal(emu_fold(coef, scale), ops.fold_spline_weights(coef, scale), "fold vs CPU")
    gW = randn(inf, nb, out, seed=9, dtype=dtype)
    gc, gs = emu_fold_backward(gW, coef, scale)
    cc, cs = torch.ops.kanext.fold_spline_weights_backward(gW, coef, scale)
    assert_bitwise_equal(gc, cc, "grad_coef vs CPU")
    assert_close(gs, cs, TOL[dtype], msg="grad_scale vs CPU")
    c64, s64 = coef.double().requires_grad_(), scale.double().requires_grad_()
    e = torch.autograd.grad(ref.fold_spline_weights(c64, s64), (c64, s64), gW.double())
    assert_close(gc, e[0], TOL[dtype], msg="grad_coef")
    assert_close(gs, e[1], TOL[dtype], msg="grad_scale")


def test_nan_policy():
    for dtype in DTYPES:
        x, grid, Wb, Wc, gy = case(dtype, 3, 5, "nonuniform", 40, 6, 9, seed=3, special=False)
        x[4, 2] = math.nan
        x[9, 0] = math.nan
        x[9, 5] = math.nan
        y = emu_forward(x, grid, 3, 2, Wb, Wc)
        rows = torch.isnan(x).any(1)
        assert bool(torch.isnan(y[rows]).all()) and not bool(torch.isnan(y[~rows]).any())
        gx, gWb, gWc, _ = emu_backward(gy, x, grid, 3, 2, Wb, Wc)
        assert torch.equal(torch.isnan(gx), torch.isnan(x))
        assert not bool(torch.isnan(gWb).any() | torch.isnan(gWc).any())
        assert_close(emu_basis(x, grid, 3, False), ref.spline_basis(x.double(), grid.double(), 3), TOL[dtype])


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider", *sys.argv[1:]]))
