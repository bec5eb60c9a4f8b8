"""Tests of kanext.ops.spline_activation (per-channel spline activation, the
LAN node activations) and its fused backward, against the pure-PyTorch twin
kanext.reference.spline_activation (full basis tensor, Cox-de Boor over the
whole knot vector) on fresh random inputs, including out-of-grid values,
non-uniform and skewed knots, odd sizes, N = 0 and non-contiguous inputs.

float64 is compared with the float64 reference at ~1e-12; float32 with the
float64 reference on the exactly upcast inputs at ~1e-5.
"""
from __future__ import annotations

import pytest
import torch

from kanext import ops
from kanext import reference as ref

from helpers import (
    off_knot_x,
    DTYPES,
    TOL,
    assert_close,
    assert_deterministic,
    dname,
    grid_of_kind,
    randn,
    sample_x,
    seed_of,
)

BASES = ("zero", "identity", "silu")


def params(C, G, k, dtype, seed):
    return (randn(C, G + k, seed=seed, dtype=dtype), randn(C, seed=seed + 1, dtype=dtype),
            randn(C, seed=seed + 2, dtype=dtype))


def ref64(z, grid, k, base, coef, sb, sp):
    return ref.spline_activation(z.double(), grid.double(), k, base, coef.double(), sb.double(), sp.double())


def ref_grads(gy, z, grid, k, base, coef, sb, sp):
    ts = [t.detach().double().requires_grad_() for t in (z, coef, sb, sp)]
    y = ref.spline_activation(ts[0], grid.double(), k, base, *ts[1:])
    return torch.autograd.grad(y, ts, gy.double(), allow_unused=True, materialize_grads=True)


@pytest.mark.parametrize("G", (6, 20))
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
@pytest.mark.parametrize("k", range(6))
@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("kind", ("uniform", "nonuniform", "skewed"))
def test_forward_and_backward_match_reference(dtype, k, base, kind, G):
    s = seed_of(dname(dtype), k, base, kind, G)
    C, N = 7, 203
    grid = grid_of_kind(kind, C, G, k, dtype, seed=s)
    z = sample_x(N, grid, seed=s + 3)  # about half outside the grid
    coef, sb, sp = params(C, G, k, dtype, s + 4)
    y = ops.spline_activation(z, grid, k, base, coef, sb, sp)
    assert y.dtype == dtype and y.shape == (N, C)
    assert_close(y, ref64(z, grid, k, base, coef, sb, sp), TOL[dtype], msg="forward")
    gy = randn(N, C, seed=s + 5, dtype=dtype)
    got = ops.spline_activation_backward(gy, z, grid, k, base, coef, sb, sp)
    exp = ref_grads(gy, z, grid, k, base, coef, sb, sp)
    for name, g, e in zip(("grad_z", "grad_coef", "grad_scale_base", "grad_scale_sp"), got, exp):
        # sums over N rows: tolerance relative to the sum of |terms|
        scale = float(gy.abs().sum(0).max()) * max(1.0, float(coef.abs().max()) * float(sp.abs().max()))
        assert_close(g, e, TOL[dtype], scale=scale if name != "grad_z" else None, msg=name)


@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
@pytest.mark.parametrize("N,C", [(0, 5), (1, 1), (3, 300), (517, 3)])
def test_sizes_including_empty_and_multi_block(dtype, N, C):
    k, G = 3, 5
    grid = grid_of_kind("nonuniform", C, G, k, dtype, seed=N + C)
    z = sample_x(N, grid, seed=1)
    coef, sb, sp = params(C, G, k, dtype, 7)
    y = ops.spline_activation(z, grid, k, "silu", coef, sb, sp)
    assert y.shape == (N, C)
    assert_close(y, ref64(z, grid, k, "silu", coef, sb, sp), TOL[dtype], msg="forward")
    z.requires_grad_()
    ts = [t.clone().requires_grad_() for t in (coef, sb, sp)]
    ops.spline_activation(z, grid, k, "silu", *ts).sum().backward()
    exp = ref_grads(torch.ones(N, C, dtype=dtype), z, grid, k, "silu", coef, sb, sp)
    for g, e in zip([z.grad] + [t.grad for t in ts], exp):
        assert_close(g, e, TOL[dtype], scale=max(1.0, N * 10.0), msg="grads")


def test_noncontiguous_inputs():
    k, G, C = 2, 4, 6
    grid_big = grid_of_kind("nonuniform", 2 * C, G, k, torch.float64, seed=3)
    grid = grid_big[::2]  # non-contiguous rows
    z = sample_x(40, grid_big, seed=2).t().contiguous().t()[:, ::2]  # column-major, strided
    coef = randn(C, 2 * (G + k), seed=4)[:, ::2]
    sb, sp = randn(2 * C, seed=5)[::2], randn(2 * C, seed=6)[::2]
    assert not z.is_contiguous() and not coef.is_contiguous()
    y = ops.spline_activation(z, grid, k, "silu", coef, sb, sp)
    assert_close(y, ref64(z, grid, k, "silu", coef, sb, sp), TOL[torch.float64])
    gy = randn(40, C, seed=7).t().contiguous().t()
    got = ops.spline_activation_backward(gy, z, grid, k, "silu", coef, sb, sp)
    for g, e in zip(got, ref_grads(gy, z, grid, k, "silu", coef, sb, sp)):
        assert_close(g, e, TOL[torch.float64], scale=100.0)


@pytest.mark.parametrize("k", (0, 1, 3, 5))
@pytest.mark.parametrize("base", BASES)
def test_gradcheck(k, base, device):
    C, G = 3, 4
    grid = grid_of_kind("nonuniform", C, G, k, torch.float64, seed=k)
    z = off_knot_x(12, grid, seed=k + 1).to(device).requires_grad_()
    coef, sb, sp = (t.to(device).requires_grad_() for t in params(C, G, k, torch.float64, 9))
    grid = grid.to(device)
    assert torch.autograd.gradcheck(lambda *a: ops.spline_activation(a[0], grid, k, base, *a[1:]),
                                    (z, coef, sb, sp))


def test_partial_requires_grad_and_grid_grad_refused():
    C, G, k = 4, 5, 3
    grid = grid_of_kind("uniform", C, G, k)
    z = sample_x(20, grid, seed=1).requires_grad_()
    coef, sb, sp = params(C, G, k, torch.float64, 3)
    ops.spline_activation(z, grid, k, "silu", coef, sb, sp).sum().backward()
    exp = ref_grads(torch.ones(20, C, dtype=torch.float64), z, grid, k, "silu", coef, sb, sp)
    assert_close(z.grad, exp[0], 1e-12)
    g2 = grid.clone().requires_grad_()
    with pytest.raises(RuntimeError, match="gradients with respect to grid"):
        ops.spline_activation(z, g2, k, "silu", coef, sb, sp).sum().backward()


def _opcheck_samples():
    out = []
    for k, kind, base in ((3, "uniform", "silu"), (1, "skewed", "zero"), (0, "nonuniform", "identity")):
        C, G = 5, 4
        grid = grid_of_kind(kind, C, G, k, seed=2)
        z = sample_x(9, grid, seed=3).requires_grad_()
        coef, sb, sp = (t.requires_grad_() for t in params(C, G, k, torch.float64, 4))
        out.append((z, grid, k, ops.BASE_IDS[base], coef, sb, sp))
    return out


@pytest.mark.parametrize("sample", _opcheck_samples(), ids=lambda s: f"k{s[2]}")
def test_opcheck(sample, device):
    sample = tuple(t.detach().to(device).requires_grad_(t.requires_grad) if isinstance(t, torch.Tensor) else t
                   for t in sample)
    torch.library.opcheck(torch.ops.kanext.spline_activation, sample)
    z, grid, k, base, coef, sb, sp = sample
    gy = randn(*z.shape, seed=11).to(device)
    for need_z, need_w in ((True, True), (True, False), (False, True), (False, False)):
        torch.library.opcheck(torch.ops.kanext.spline_activation_backward,
                              (gy, z.detach(), grid, k, base, coef.detach(), sb.detach(), sp.detach(), need_z, need_w))


@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_torch_compile_fullgraph_matches_eager(dtype):
    torch._dynamo.reset()
    C, G, k = 6, 5, 3
    grid = grid_of_kind("nonuniform", C, G, k, dtype, seed=1)
    coef, sb, sp = (t.requires_grad_() for t in params(C, G, k, dtype, 2))
    z = sample_x(33, grid, seed=3)

    def f(z, coef, sb, sp):
        return (ops.spline_activation(z, grid, k, "silu", coef, sb, sp) ** 2).sum()

    cf = torch.compile(f, fullgraph=True, backend="aot_eager")
    a, b = f(z, coef, sb, sp), cf(z, coef, sb, sp)
    ga = torch.autograd.grad(a, (coef, sb, sp))
    gb = torch.autograd.grad(b, (coef, sb, sp))
    assert_close(b, a, TOL[dtype])
    for x, y in zip(gb, ga):
        assert_close(x, y, TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
def test_deterministic_and_thread_count_independent(dtype, restore_threads):
    C, G, k, N = 37, 7, 3, 3000
    grid = grid_of_kind("nonuniform", C, G, k, dtype, seed=5)
    z = sample_x(N, grid, seed=6)
    coef, sb, sp = params(C, G, k, dtype, 7)
    gy = randn(N, C, seed=8, dtype=dtype)

    def run():
        y = ops.spline_activation(z, grid, k, "silu", coef, sb, sp)
        gz, gc, gsb, gsp = ops.spline_activation_backward(gy, z, grid, k, "silu", coef, sb, sp)
        return {"y": y, "gz": gz, "gc": gc, "gsb": gsb, "gsp": gsp}

    assert_deterministic(run)


def test_nan_and_inf_policy():
    C, G, k = 3, 4, 3
    grid = grid_of_kind("uniform", C, G, k)
    coef, sb, sp = params(C, G, k, torch.float64, 1)
    z = sample_x(6, grid, seed=2)
    z[1, 0] = float("nan")
    z[2, 1] = float("inf")
    z[3, 2] = -float("inf")
    for base in BASES:
        y = ops.spline_activation(z, grid, k, base, coef, sb, sp)
        assert_close(y, ref64(z, grid, k, base, coef, sb, sp), 1e-12, msg=base)
        assert torch.isnan(y[1, 0]) and int(torch.isnan(y).sum()) == 1 + (base == "silu")  # silu(-inf) = nan
        gz, gc, gsb, gsp = ops.spline_activation_backward(torch.ones_like(z), z, grid, k, base, coef, sb, sp)
        assert torch.isnan(gz[1, 0])
        assert bool(torch.isfinite(gc).all())  # the NaN entry adds nothing to the weight gradients
        # weight gradients equal those without the NaN row entry
        z2 = z.clone()
        z2[1, 0] = 100.0  # outside the grid: no spline contribution
        _, gc2, _, _ = ops.spline_activation_backward(torch.ones_like(z), z2, grid, k, base, coef, sb, sp)
        assert torch.equal(gc, gc2)


@pytest.mark.parametrize(
    "case",
    ["z3d", "grid_rows", "coef_shape", "sb_shape", "dtype", "k_big", "base", "decreasing", "few_knots"],
)
def test_bad_input_raises(case):
    C, G, k = 4, 5, 3
    grid = grid_of_kind("uniform", C, G, k)
    z = sample_x(5, grid, seed=1)
    coef, sb, sp = params(C, G, k, torch.float64, 2)
    args = dict(z=z, grid=grid, k=k, base=2, coef=coef, sb=sb, sp=sp)
    match = {
        "z3d": ("z", z[None], "expected z of shape"),
        "grid_rows": ("grid", grid[:3], "grid has 3 rows"),
        "coef_shape": ("coef", coef[:, :-1], "expected coef of shape"),
        "sb_shape": ("sb", sb[:2], "expected scale_base of shape"),
        "dtype": ("coef", coef.float(), "dtype"),
        "k_big": ("k", 6, "spline order k must be in"),
        "base": ("base", 7, "base must be 0"),
        "decreasing": ("grid", grid.flip(1), "strictly increasing"),
        "few_knots": ("grid", grid[:, :7], "needs at least"),
    }[case]
    args[match[0]] = match[1]
    with pytest.raises(RuntimeError, match=match[2]):
        torch.ops.kanext.spline_activation(args["z"], args["grid"], args["k"], args["base"], args["coef"], args["sb"],
                                           args["sp"])


# The AVX-512 row path (float32, G + 2k + 1 <= 16 knots, bucket table <= 32
# entries; csrc/cpu/spline_activation_avx512.h) against the general path
# (forced with KANEXT_SPLINE_ROWS=0) and the float64 reference. On a build
# without AVX-512 both runs take the general path.
@pytest.mark.parametrize(
    "G,k,kind",
    [(5, 3, "uniform"), (5, 3, "nonuniform"), (9, 3, "nonuniform"), (3, 5, "uniform"), (1, 0, "nonuniform"),
     (4, 1, "skewed"), (10, 3, "uniform"), (12, 2, "nonuniform")],
)  # 12, 16, 14, 2, 7, 17 and 17 knots; 'skewed' may need more than 32 buckets
@pytest.mark.parametrize("N,C", [(37, 21), (203, 35), (16, 16)])
def test_row_path_matches_general_path_and_reference(G, k, kind, N, C, monkeypatch):
    s = seed_of("rows", G, k, kind, N, C)
    grid = grid_of_kind(kind, C, G, k, torch.float32, seed=s)
    z = sample_x(N, grid, seed=s + 1)  # about half outside the grid
    z[1, 2] = float("nan")
    z[2, 3] = float("inf")
    z[3, 4] = -float("inf")
    z[4, 5] = grid[5, 0]  # first and last knot
    z[5, 6] = grid[6, -1]
    coef, sb, sp = params(C, G, k, torch.float32, s + 2)
    gy = randn(N, C, seed=s + 3, dtype=torch.float32)
    fast = {base: (ops.spline_activation(z, grid, k, base, coef, sb, sp),
                   ops.spline_activation_backward(gy, z, grid, k, base, coef, sb, sp)) for base in BASES}
    monkeypatch.setenv("KANEXT_SPLINE_ROWS", "0")
    for base in BASES:
        y_gen = ops.spline_activation(z, grid, k, base, coef, sb, sp)
        g_gen = ops.spline_activation_backward(gy, z, grid, k, base, coef, sb, sp)
        y, g = fast[base]
        assert_close(y, y_gen, 1e-6, msg=f"{base}: forward, row vs general path")
        assert_close(y, ref64(z, grid, k, base, coef, sb, sp), TOL[torch.float32], msg=f"{base}: forward")
        exp = ref_grads(gy, z, grid, k, base, coef, sb, sp)
        scale = float(gy.abs().sum(0).max()) * max(1.0, float(coef.abs().max()) * float(sp.abs().max()))
        for name, a, b, e in zip(("grad_z", "grad_coef", "grad_scale_base", "grad_scale_sp"), g, g_gen, exp):
            sc = None if name == "grad_z" else scale
            assert_close(a, b, 1e-6, scale=sc, msg=f"{base}: {name}, row vs general path")
            # against the reference only where it has the same NaN/inf policy: its autograd gives NaN
            # (or 0) for grad_z at non-finite z, and NaN weight gradients for channels with a NaN z
            if name == "grad_z":
                a, e = a[torch.isfinite(z)], e[torch.isfinite(z)]
            else:
                finite = torch.isfinite(z).all(0)
                a, e = a[finite], e[finite]
            assert_close(a, e, TOL[torch.float32], scale=sc, msg=f"{base}: {name}")
        assert torch.isnan(y[1, 2]) and torch.isnan(g[0][1, 2])
        assert bool(torch.isfinite(g[1]).all())  # the NaN and inf entries add nothing to grad_coef


@pytest.mark.parametrize("need_z,need_w", [(True, False), (False, True)])
def test_row_path_partial_backward(need_z, need_w):
    C, G, k, N = 19, 5, 3, 45
    grid = grid_of_kind("nonuniform", C, G, k, torch.float32, seed=3)
    z = sample_x(N, grid, seed=4)
    coef, sb, sp = params(C, G, k, torch.float32, 5)
    gy = randn(N, C, seed=6, dtype=torch.float32)
    got = ops.spline_activation_backward(gy, z, grid, k, "silu", coef, sb, sp, need_z, need_w)
    full = ops.spline_activation_backward(gy, z, grid, k, "silu", coef, sb, sp)
    if need_z:
        assert torch.equal(got[0], full[0])
    if need_w:
        for a, b in zip(got[1:], full[1:]):
            assert torch.equal(a, b)


def extreme_grid(C, G, k, dtype, seed):
    """Knot spacings from 1e-3 to 1e3: one interval of 1000, then four of
    1e-3 (at 0, where float32 resolves them), then random ones in 1e-2 ..
    300. Some channel still needs more than 3 lookup steps after the bucket
    table has grown to its largest size (2 (M-1) 64 buckets)."""
    g = torch.Generator().manual_seed(seed)
    M = G + 2 * k + 1
    h = 10.0 ** (torch.rand(C, M - 1, generator=g, dtype=torch.float64) * 4.5 - 2)
    h[:, 0] = 1e3
    h[:, 1:5] = 1e-3
    t = torch.cat([torch.zeros(C, 1, dtype=torch.float64), h.cumsum(1)], 1) - 1e3
    return t.to(dtype)


def x_in_every_interval(grid, N, seed):
    """(N, C): per channel, a random interval (or outside the grid, 1 in 8),
    then a uniform point in it: the tiny intervals get samples too."""
    g = torch.Generator().manual_seed(seed)
    t = grid.double()
    C, M = t.shape
    idx = torch.randint(0, M - 1, (N, C), generator=g)
    lo, hi = t.T.gather(0, idx), t.T.gather(0, idx + 1)
    x = lo + (hi - lo) * torch.rand(N, C, generator=g, dtype=torch.float64)
    out = torch.rand(N, C, generator=g) < 0.125
    x[out] = (t[:, -1] + 10.0).expand(N, C)[out]
    return x.to(grid.dtype)


# Regression: on grids this uneven the bucket table was sized 4x larger than
# built (reads past it, wrong intervals or a crash).
@pytest.mark.parametrize("dtype", DTYPES, ids=dname)
@pytest.mark.parametrize("k", (1, 3, 5))
@pytest.mark.parametrize("base", ("zero", "silu"))
def test_extremely_uneven_knots(dtype, k, base):
    C, G, N = 9, 5, 300
    s = seed_of("extreme", dname(dtype), k)
    grid = extreme_grid(C, G, k, dtype, s)
    z = x_in_every_interval(grid, N, s + 1)
    coef, sb, sp = params(C, G, k, dtype, s + 2)
    gy = randn(N, C, seed=s + 3, dtype=dtype)
    y = ops.spline_activation(z, grid, k, base, coef, sb, sp)
    assert_close(y, ref64(z, grid, k, base, coef, sb, sp), TOL[dtype], msg="forward")
    got = ops.spline_activation_backward(gy, z, grid, k, base, coef, sb, sp)
    exp = ref_grads(gy, z, grid, k, base, coef, sb, sp)
    scale = float(gy.abs().sum(0).max()) * max(1.0, float(coef.abs().max()) * float(sp.abs().max()))
    for name, a, e in zip(("grad_z", "grad_coef", "grad_scale_base", "grad_scale_sp"), got, exp):
        assert_close(a, e, TOL[dtype], scale=None if name == "grad_z" else scale, msg=name)


def _cluster_grid():
    """1043 float32 knots: 1000 evenly from -1000 to -1, then 0, 40 knots 1e-6
    apart around a bucket boundary near 0.5 of the largest bucket table
    (2 (M-1) 64 buckets), then 2 and 3."""
    L, nleft, ncl, cl = 1e3, 1000, 40, 1e-6
    M = nleft + 1 + ncl + 2
    bw = (3.0 + L) / (2 * (M - 1) * 64)
    B = -L + round((0.5 + L) / bw) * bw
    left = torch.linspace(-L, -L / nleft, nleft, dtype=torch.float64)
    cluster = B + (torch.arange(ncl, dtype=torch.float64) - ncl // 2) * cl
    t = torch.cat([left, torch.zeros(1, dtype=torch.float64), cluster, torch.tensor([2.0, 3.0], dtype=torch.float64)])
    z = torch.linspace(float(cluster[0]) - 3 * cl, float(cluster[-1]) + 3 * cl, 2001, dtype=torch.float64)
    return t.float().reshape(1, -1), z.float().reshape(-1, 1)


def _large_uniformish_grid():
    """G = 20000, k = 0, spacings in [1, 7) (2 (M-1) buckets, over 16k), z on
    every knot and its float32 neighbours."""
    g = torch.Generator().manual_seed(5)
    h = 1.0 + 6.0 * torch.rand(20000, generator=g, dtype=torch.float64)
    t = torch.cat([torch.zeros(1, dtype=torch.float64), h.cumsum(0)])
    t = ((t - t[-1] / 2) * (70.0 / float(t[-1]))).float()
    z = torch.cat([t, torch.nextafter(t, torch.tensor(-1e9)), torch.nextafter(t, torch.tensor(1e9))])
    return t.reshape(1, -1), z.reshape(-1, 1)


# Regression: the bucket index is computed in float32 and was off by more than
# the table's margin once the table held over ~16k buckets: z near a bucket
# boundary got the neighbouring interval (wrong values, no error).
@pytest.mark.parametrize("k", (0, 1, 3))
def test_bucket_index_rounding_clustered_knots(k):
    grid, z = _cluster_grid()
    coef = (torch.arange(grid.shape[1] - k - 1, dtype=torch.float32) % 7).reshape(1, -1)
    one = torch.ones(1)
    y = ops.spline_activation(z, grid, k, "zero", coef, one, one)
    assert_close(y, ref64(z, grid, k, "zero", coef, one, one), TOL[torch.float32], msg="forward")
    gy = randn(*z.shape, seed=7, dtype=torch.float32)
    got = ops.spline_activation_backward(gy, z, grid, k, "zero", coef, one, one)
    exp = ref_grads(gy, z, grid, k, "zero", coef, one, one)
    assert_close(got[1], exp[1], TOL[torch.float32], scale=float(gy.abs().sum()), msg="grad_coef")


def test_bucket_index_rounding_large_grid():
    # k = 0 on 20001 knots: the value is the coefficient of z's interval (searchsorted
    # here; the reference's full basis tensor would need 10 GB)
    grid, z = _large_uniformish_grid()
    t = grid[0].double()
    coef = (torch.arange(grid.shape[1] - 1, dtype=torch.float32) % 7).reshape(1, -1)
    one = torch.ones(1)
    y = ops.spline_activation(z, grid, 0, "zero", coef, one, one)
    g = torch.searchsorted(t, z[:, 0].double(), right=True) - 1
    inside = (g >= 0) & (g < t.numel() - 1)
    exp = torch.where(inside, coef[0, g.clamp(0, t.numel() - 2)], torch.zeros(()))
    assert torch.equal(y[:, 0], exp)
    gy = randn(*z.shape, seed=8, dtype=torch.float32)
    gcoef = ops.spline_activation_backward(gy, z, grid, 0, "zero", coef, one, one)[1]
    exp_g = torch.zeros(t.numel() - 1, dtype=torch.float64).index_add_(0, g[inside], gy[inside, 0].double())
    assert_close(gcoef[0], exp_g, TOL[torch.float32], scale=float(gy.abs().max()), msg="grad_coef")
