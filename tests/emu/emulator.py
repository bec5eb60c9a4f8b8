"""The host-emulation driver of kanext's CUDA kernels: builds the real .cu
files with the emulator (csrc/cuda/emu/) into a shared library and calls
their launchers from Python, so that tests/emu/ checks them against
kanext.reference (and the CPU ops) on a machine without a GPU.

    bash scripts/emu_check.sh          # or: python -m pytest tests/emu -m emu -q

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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from helpers import TOL, assert_bitwise_equal, assert_close, grid_of_kind, knot_x, randn, sample_x  # noqa: F401

from kanext import ops  # noqa: F401
from kanext import reference as ref

ROOT = Path(__file__).resolve().parents[2]

SOURCES = sorted((ROOT / "csrc" / "cuda").glob("*.cu")) + sorted((ROOT / "csrc" / "cuda" / "emu").glob("*.cpp"))
HEADERS = (sorted((ROOT / "csrc" / "cuda").glob("*.cuh")) + sorted((ROOT / "csrc" / "cuda" / "emu").glob("*.h"))
           + sorted((ROOT / "csrc" / "cuda").glob("*.h")) + sorted((ROOT / "csrc" / "include" / "kanext").glob("*.h")))
BASES = {"zero": 0, "identity": 1, "silu": 2}


def build() -> Path:
    # EMU_SANITIZE=address builds the kernels with AddressSanitizer (run with
    # libasan preloaded: scripts/emu_check.sh --asan), so that a read or write
    # outside any buffer fails the test as it would fault on a GPU
    sanitize = os.environ.get("EMU_SANITIZE", "")
    h = hashlib.sha256(sanitize.encode())
    for p in SOURCES + HEADERS:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    out = ROOT / "build" / f"emu_{h.hexdigest()[:16]}"
    lib = out / "libkanext_emu.so"
    if lib.exists():
        return lib
    out.mkdir(parents=True, exist_ok=True)
    san = [f"-fsanitize={sanitize}", "-fno-omit-frame-pointer"] if sanitize else []
    flags = ["-std=c++17", "-O2", "-g", "-fPIC", "-DKANEXT_CUDA_EMULATION", "-Wall",
             "-Wno-unknown-pragmas", f"-I{ROOT / 'csrc' / 'include'}", f"-I{ROOT / 'csrc' / 'cuda'}", *san]

    def compile_one(src):
        obj = out / (src.name + ".o")
        subprocess.run(["g++", "-x", "c++", *flags, "-c", str(src), "-o", str(obj)], check=True)
        return obj

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as ex:
        objs = list(ex.map(compile_one, SOURCES))
    subprocess.run(["g++", "-shared", *san, *map(str, objs), "-o", str(lib)], check=True)
    return lib


_LIB = None


def lib():
    global _LIB
    if _LIB is None:
        L = ctypes.CDLL(str(build()))
        i64, i32, vp, sz = ctypes.c_int64, ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t
        L.emu_spline_basis.argtypes = [i32, vp, vp, i64, i64, i64, i32, i32, vp]
        L.emu_forward.argtypes = [i32, vp, vp, i64, i64, i64, i32, i32, vp, vp, i64, vp]
        L.emu_forward_version.argtypes = [i32, vp, vp, i64, i64, i64, i32, i32, vp, vp, i64, vp, i32]
        L.emu_workspace_bytes.argtypes = [i64, i64, i64, i32, i64, sz, i32]
        L.emu_workspace_bytes.restype = sz
        L.emu_workspace_bytes_version.argtypes = [i64, i64, i64, i32, i64, sz, i32, i32]
        L.emu_workspace_bytes_version.restype = sz
        L.emu_backward.argtypes = [i32, vp, vp, vp, i64, i64, i64, i32, i32, vp, vp, i64, i32, i32, vp, vp, vp, vp, sz]
        L.emu_backward_wgrad.argtypes = [i32, vp, vp, vp, i64, i64, i64, i32, i32, vp, vp, i64, i32, i32, i32, vp, vp,
                                         vp, vp, sz]
        L.emu_fold.argtypes = [i32, vp, vp, i64, i64, i64, vp]
        L.emu_fold_backward.argtypes = [i32, vp, vp, vp, i64, i64, i64, vp, vp]
        L.emu_deriv_eval.argtypes = [i32, vp, vp, vp, i64, i64, i64, i32, i32, i32, vp, vp, i64, vp]
        L.emu_deriv_transpose.argtypes = [i32, vp, vp, vp, i64, i64, i64, i32, i32, i32, vp, vp, i64, vp]
        L.emu_deriv_wgrad.argtypes = [i32, vp, vp, vp, vp, i64, i64, i64, i32, i32, i32, i64, vp, vp]
        L.emu_deriv_act_eval.argtypes = [i32, vp, vp, i64, i64, i64, i32, i32, i32, vp, vp, vp, vp]
        L.emu_deriv_act_wgrad.argtypes = [i32, vp, vp, vp, i64, i64, i64, i32, i32, i32, vp, vp]
        L.emu_deriv_basis.argtypes = [i32, vp, vp, i64, i64, i64, i32, i32, vp]
        L.emu_edge_product.argtypes = [i32, vp, vp, i64, i64, i64, i32, i32, vp, vp, vp, vp, i64, i32, i32, i32, vp]
        L.emu_edge_product_wgrad.argtypes = [i32, vp, vp, vp, i64, i64, i64, i32, i32, vp, vp, i64, i32, i32, i32, vp,
                                             vp]
        _LIB = L
    return _LIB


def p(t):
    return ctypes.c_void_p(t.data_ptr())


def poisoned(shape, dtype):
    """Outputs start as NaN: an element the kernel fails to write shows up."""
    return torch.full(shape, math.nan, dtype=dtype)


def lazy_zeros(shape, dtype):
    """Zeros whose pages are mapped on first touch (numpy's zeros: calloc),
    unlike torch.zeros, which writes them: for buffers of several GB that a
    test allocates but only partly reads or writes."""
    return torch.from_numpy(np.zeros(tuple(shape), dtype=torch.empty((), dtype=dtype).numpy().dtype))


# ---------------------------------------------------------------- emulated ops
def emu_basis(x, grid, k, deriv):
    x, grid = x.contiguous(), grid.contiguous()
    N, inf = x.shape
    M = grid.shape[1]
    out = poisoned((N, inf, M - k - 1), x.dtype)
    assert lib().emu_spline_basis(int(x.dtype == torch.float64), p(x), p(grid), N, inf, M, k, int(deriv), p(out)) == 0
    return out


VERSION = {"v1": 0, "v2": 1}  # cuda_launch.h LocalKernels (v2: backend local_v2)


def emu_forward(x, grid, k, base, Wb, Wc, version="v1"):
    x, grid, Wb, Wc = (t.contiguous() for t in (x, grid, Wb, Wc))
    N, inf = x.shape
    out = Wb.shape[1]
    y = poisoned((N, out), x.dtype)
    rc = lib().emu_forward_version(int(x.dtype == torch.float64), p(x), p(grid), N, inf, grid.shape[1], k, base,
                                   p(Wb), p(Wc), out, p(y), VERSION[version])
    assert rc == 0
    return y


# The backward's kernel set, named after its weight gradient: "tiles" is v1
# (grad_w_kernel), "registers" v2 (grad_w_reg_kernel, and the v2 grad x);
# "sorted" v2 too (its grad W for G + k > 16: sort_rows_kernel, grad_w_sorted_kernel).
WGRAD = {"tiles": 0, "registers": 1, "sorted": 1, "v1": 0, "v2": 1}


def emu_backward(gy, x, grid, k, base, Wb, Wc, need_x=True, need_w=True, wgrad="tiles"):
    """The fused backward, (gx, gWb, gWc, workspace bytes); wgrad chooses the
    kernel set: "tiles" / "v1" (grad_x_kernel, grad_w_kernel: backends local /
    auto) or "registers" / "v2" (backend local_v2: grad_x_v2_kernel, and
    grad_w_reg_kernel for G + k <= 16; "sorted" is the same v2 set, named
    after its grad W for G + k > 16: sort_rows_kernel and grad_w_sorted_kernel)."""
    return emu_backward_ws(gy, x, grid, k, base, Wb, Wc, need_x, need_w, wgrad)[:4]


def emu_backward_ws(gy, x, grid, k, base, Wb, Wc, need_x=True, need_w=True, wgrad="tiles"):
    """emu_backward, and the workspace as the kernels left it (uint8)."""
    gy, x, grid, Wb, Wc = (t.contiguous() for t in (gy, x, grid, Wb, Wc))
    N, inf = x.shape
    out, M = Wb.shape[1], grid.shape[1]
    gx = poisoned(x.shape, x.dtype) if need_x else torch.zeros_like(x)
    # without need_w the weight gradients must stay 0 (unwritten); numpy's
    # zeros map their pages on first touch, so a multi-GB Wc costs nothing here
    gWb = poisoned(Wb.shape, x.dtype) if need_w else lazy_zeros(Wb.shape, x.dtype)
    gWc = poisoned(Wc.shape, x.dtype) if need_w else lazy_zeros(Wc.shape, x.dtype)
    wsb = lib().emu_workspace_bytes_version(N, inf, M, k, out, x.element_size(), int(need_w), WGRAD[wgrad])
    ws = torch.full((max(wsb, 1),), 0xFF, dtype=torch.uint8)  # poisoned too
    rc = lib().emu_backward_wgrad(int(x.dtype == torch.float64), p(gy), p(x), p(grid), N, inf, M, k, base, p(Wb),
                                  p(Wc), out, int(need_x), int(need_w), WGRAD[wgrad], p(gx), p(gWb), p(gWc), p(ws), wsb)
    assert rc == 0
    return gx, gWb, gWc, wsb, ws


def assert_weights_close(gWb, gWc, gy, x, grid, k, base, Wb, Wc, tag):
    """gWb, gWc within TOL of kanext.reference and of the CPU op (base: a name of BASES)."""
    tol = TOL[x.dtype]
    _, eb, ec = ref_grads(gy, x, grid, k, base, Wb, Wc)
    assert_close(gWb, eb, tol, msg=f"gWb vs reference {tag}")
    assert_close(gWc, ec, tol, msg=f"gWc vs reference {tag}")
    _, cb, cc = ops.kan_linear_backward(gy, x, grid, k, BASES[base], Wb, Wc)
    assert_close(gWb, cb, tol, msg=f"gWb vs CPU op {tag}")
    assert_close(gWc, cc, tol, msg=f"gWc vs CPU op {tag}")


def check_nan_inf_weights(G, wgrad, same_bits):
    """The weight gradients of k=3 cases with NaN, +-inf and every knot in x
    (case(special=True)) plus NaN and inf in gy, for both dtypes and every
    base, by the emulated kernel set `wgrad`: close to the CPU op, and to
    grad_w_kernel ("tiles"): bit for bit if same_bits, else with NaN in the
    same places (and some NaN) and close elsewhere. With base "zero" gWb is
    exactly zero whatever gy holds."""
    for dtype in DTYPES:
        for base in BASES:
            x, grid, Wb, Wc, gy = case(dtype, 3, G, "nonuniform", 50, 4, 7, seed=21)
            x[5, 2] = math.nan
            x[6, 3] = math.inf
            gy[7, 1] = math.inf
            gy[8, 4] = math.nan
            got = emu_backward(gy, x, grid, 3, BASES[base], Wb, Wc, need_x=False, wgrad=wgrad)[1:3]
            tiles = emu_backward(gy, x, grid, 3, BASES[base], Wb, Wc, need_x=False, wgrad="tiles")[1:3]
            cpu = ops.kan_linear_backward(gy, x, grid, 3, BASES[base], Wb, Wc)[1:]
            for name, a, t, c in zip(("gWb", "gWc"), got, tiles, cpu):
                tag = f"{name} {dn(dtype)} {base}"
                if same_bits:
                    assert_bitwise_equal(a, t, tag)
                else:
                    assert bool((torch.isnan(a) == torch.isnan(t)).all()), f"NaN pattern {tag}"
                    if name == "gWc" or base != "zero":
                        assert bool(torch.isnan(a).any()), f"{tag}: expected NaN from the NaN / inf gy rows"
                    assert_close(a, t, TOL[dtype], msg=f"vs grad_w_kernel {tag}")
                assert_close(a, c, TOL[dtype], msg=f"vs CPU op {tag}")
            if base == "zero":
                assert not bool(got[0].any())


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


def samples_with_specials(N, grid, seed, special=True):
    """N samples per input around the grid (about half outside) and, with
    special, every knot plus a NaN, a +inf and a -inf (rows 0-2)."""
    x = sample_x(N, grid, seed=seed)
    if special:
        x = torch.cat([x, knot_x(grid)])
        n_in = grid.shape[0]
        if N >= 3 and n_in >= 2:
            x[0, 1] = math.nan
            x[2, 0] = math.inf
            x[1, n_in - 1] = -math.inf
    return x


def case(dtype, k, G, kind, N, inf, out, seed, special=True):
    grid = grid_of_kind(kind, inf, G, k, dtype, seed=seed)
    x = samples_with_specials(N, grid, seed + 1, special)
    Wb = randn(inf, out, seed=seed + 2, dtype=dtype)
    Wc = randn(inf, G + k, out, seed=seed + 3, dtype=dtype)
    gy = randn(x.shape[0], out, seed=seed + 4, dtype=dtype)
    return x, grid, Wb, Wc, gy


DTYPES = (torch.float32, torch.float64)

# (N, in, out) of the weight-gradient tests: N not a multiple of the 32..256-row
# chunks, in and out odd, out over each column-tile width (32, 64, 128, 256
# threads per input).
GRADW_SHAPES = [(1, 1, 1), (70, 7, 5), (65, 3, 37), (97, 5, 67), (33, 2, 131), (41, 1, 257)]
dn = lambda d: str(d).replace("torch.", "")  # noqa: E731


# ------------------------------------------------- derivative ops (deriv.cu)
def _dbl(t):
    return int(t.dtype == torch.float64)


def _opt(t):
    return None if t is None else p(t)


def emu_deriv_eval(x, v, grid, k, base, Wb, Wc, m):
    x, grid, Wb, Wc = (t.contiguous() for t in (x, grid, Wb, Wc))
    v = None if v is None else v.contiguous()
    y = poisoned((x.shape[0], Wb.shape[1]), x.dtype)
    assert lib().emu_deriv_eval(_dbl(x), p(x), _opt(v), p(grid), x.shape[0], x.shape[1], grid.shape[1], k, m, base,
                                p(Wb), p(Wc), Wb.shape[1], p(y)) == 0
    return y


def emu_deriv_transpose(dy, x, grid, k, base, Wb, Wc, m):
    dy, x, grid, Wb, Wc = (t.contiguous() for t in (dy, x, grid, Wb, Wc))
    gx = poisoned(x.shape, x.dtype)
    assert lib().emu_deriv_transpose(_dbl(x), p(dy), p(x), p(grid), x.shape[0], x.shape[1], grid.shape[1], k, m, base,
                                     p(Wb), p(Wc), Wb.shape[1], p(gx)) == 0
    return gx


def emu_deriv_wgrad(dy, x, v, grid, k, base, m):
    dy, x, grid = (t.contiguous() for t in (dy, x, grid))
    v = None if v is None else v.contiguous()
    inf, out, nb = x.shape[1], dy.shape[1], grid.shape[1] - k - 1
    gWb = poisoned((inf, out), x.dtype)
    gWc = torch.zeros((inf, nb, out), dtype=x.dtype)  # accumulated in place (launcher contract)
    assert lib().emu_deriv_wgrad(_dbl(x), p(dy), p(x), _opt(v), p(grid), x.shape[0], inf, grid.shape[1], k, m, base,
                                 out, p(gWb), p(gWc)) == 0
    return gWb, gWc


def emu_deriv_act_eval(z, grid, k, base, coef, sb, sp, m):
    z, grid, coef, sb, sp = (t.contiguous() for t in (z, grid, coef, sb, sp))
    y = poisoned(z.shape, z.dtype)
    assert lib().emu_deriv_act_eval(_dbl(z), p(z), p(grid), z.shape[0], z.shape[1], grid.shape[1], k, m, base,
                                    p(coef), p(sb), p(sp), p(y)) == 0
    return y


def emu_deriv_act_wgrad(gy, z, grid, k, base, m):
    gy, z, grid = (t.contiguous() for t in (gy, z, grid))
    C, nb = z.shape[1], grid.shape[1] - k - 1
    SB = torch.zeros((C, nb), dtype=z.dtype)  # accumulated in place
    Sb = poisoned((C,), z.dtype)
    assert lib().emu_deriv_act_wgrad(_dbl(z), p(gy), p(z), p(grid), z.shape[0], C, grid.shape[1], k, m, base, p(SB),
                                     p(Sb)) == 0
    return SB, Sb


def emu_deriv_basis(x, grid, k, m):
    x, grid = x.contiguous(), grid.contiguous()
    out = torch.zeros((x.shape[0], x.shape[1], grid.shape[1] - k - 1), dtype=x.dtype)  # written sparsely
    assert lib().emu_deriv_basis(_dbl(x), p(x), p(grid), x.shape[0], x.shape[1], grid.shape[1], k, m, p(out)) == 0
    return out


def emu_edge_product(x, grid, k, base, Wb, Wc, Vb, Vc, mode, c, a):
    x, grid, Wb, Wc, Vb, Vc = (t.contiguous() for t in (x, grid, Wb, Wc, Vb, Vc))
    P = poisoned(x.shape, x.dtype)
    assert lib().emu_edge_product(_dbl(x), p(x), p(grid), x.shape[0], x.shape[1], grid.shape[1], k, base, p(Wb), p(Wc),
                                  p(Vb), p(Vc), Wb.shape[1], mode, c, a, p(P)) == 0
    return P


def emu_edge_product_wgrad(x, u, grid, k, base, Wb, Wc, mode, c, a):
    x, grid, Wb, Wc = (t.contiguous() for t in (x, grid, Wb, Wc))
    u = None if u is None else u.contiguous()
    Sb = poisoned(Wb.shape, x.dtype)
    SB = torch.zeros(Wc.shape, dtype=x.dtype)  # accumulated in place (launcher contract)
    assert lib().emu_edge_product_wgrad(_dbl(x), p(x), _opt(u), p(grid), x.shape[0], x.shape[1], grid.shape[1], k,
                                        base, p(Wb), p(Wc), Wb.shape[1], mode, c, a, p(Sb), p(SB)) == 0
    return Sb, SB
