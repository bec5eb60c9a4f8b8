"""Shared helpers for the kanext tests: knot grids, input samplers, and a
comparison that reports the max abs / relative error when it fails.

Test modules import them with ``from helpers import ...`` (pytest puts this
directory on sys.path: tests/ is not a package and holds a conftest.py).
Fixtures and hooks live in conftest.py.
"""
from __future__ import annotations

import torch

DTYPES = (torch.float32, torch.float64)

#: Comparison tolerance per dtype (relative, and absolute relative to the
#: largest expected magnitude). float32 results are compared against the
#: float64 reference evaluated on the same (exactly upcast) inputs.
TOL = {torch.float32: 1e-5, torch.float64: 1e-12}


def dname(dtype) -> str:
    """Short dtype name for test ids: torch.float32 -> 'float32'."""
    return str(dtype).replace("torch.", "")


def seed_of(*parts) -> int:
    """A stable per-case seed (hash() of str is salted per process)."""
    s = 0
    for p in parts:
        for ch in str(p):
            s = (s * 131 + ord(ch)) % (2**31 - 1)
    return s


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def make_grid(
    in_features: int,
    G: int,
    k: int,
    dtype: torch.dtype = torch.float64,
    uniform: bool = True,
    seed: int = 0,
    grid_range: tuple[float, float] = (-1.0, 1.0),
    max_ratio: float = 7.0,
) -> torch.Tensor:
    """(in_features, G+2k+1) strictly increasing knots.

    uniform=True: pykan-style extended grid, identical for every input: G+1
    knots linspace over grid_range, then k knots of the same spacing added on
    each side (one per side per step, as pykan's extend_grid does).

    uniform=False: an independent random grid per input. Spacings are
    log-uniform in [1, max_ratio] (times a random per-input scale) and each
    row gets a random offset, so rows differ in span, position and spacing.
    Built in float64 and then cast to dtype; strict increase is re-checked
    after the cast.
    """
    M = G + 2 * k + 1
    if uniform:
        lo, hi = grid_range
        g = torch.linspace(lo, hi, G + 1, dtype=torch.float64)
        h = (hi - lo) / G
        for _ in range(k):
            g = torch.cat([g[:1] - h, g, g[-1:] + h])
        grid = g.unsqueeze(0).repeat(in_features, 1)
    else:
        r = gen(seed)
        u = torch.rand(in_features, M - 1, generator=r, dtype=torch.float64)
        steps = torch.exp(u * torch.log(torch.tensor(max_ratio, dtype=torch.float64)))
        span = (grid_range[1] - grid_range[0]) * (0.5 + torch.rand(in_features, 1, generator=r, dtype=torch.float64))
        steps = steps / steps.sum(dim=1, keepdim=True) * span
        start = grid_range[0] + 0.5 * (torch.rand(in_features, 1, generator=r, dtype=torch.float64) - 0.5)
        grid = torch.cat([start, start + torch.cumsum(steps, dim=1)], dim=1)
    grid = grid.to(dtype)
    assert grid.shape == (in_features, M)
    assert bool((grid[:, 1:] > grid[:, :-1]).all()), "make_grid produced non-increasing knots"
    return grid


GRID_KINDS = ("uniform", "nonuniform", "skewed")


def grid_of_kind(kind: str, in_features: int, G: int, k: int, dtype=torch.float64, seed: int = 0) -> torch.Tensor:
    """'uniform' (pykan), 'nonuniform' (spacing ratio <= 7) or 'skewed' (ratio <= 1000)."""
    if kind == "uniform":
        return make_grid(in_features, G, k, dtype, uniform=True)
    if kind == "nonuniform":
        return make_grid(in_features, G, k, dtype, uniform=False, seed=seed)
    if kind == "skewed":
        return make_grid(in_features, G, k, dtype, uniform=False, seed=seed, max_ratio=1000.0)
    raise ValueError(kind)


def sample_x(N: int, grid: torch.Tensor, seed: int, widen: float = 0.5) -> torch.Tensor:
    """(N, in) uniform random x, per input over the grid span widened by
    `widen` spans on each side (so a good share lies outside the grid)."""
    lo, hi = grid[:, 0].double(), grid[:, -1].double()
    span = hi - lo
    u = torch.rand(N, grid.shape[0], generator=gen(seed), dtype=torch.float64)
    x = (lo - widen * span) + u * (1 + 2 * widen) * span
    return x.to(grid.dtype)


def knot_x(grid: torch.Tensor) -> torch.Tensor:
    """(3M, in) x on every knot of every input (first and last included), and
    the adjacent representable values just below and just above each knot."""
    t = grid.t().contiguous()  # (M, in)
    below = torch.nextafter(t, torch.full_like(t, -float("inf")))
    above = torch.nextafter(t, torch.full_like(t, float("inf")))
    return torch.cat([t, below, above], dim=0)


def off_knot_x(N: int, grid: torch.Tensor, seed: int, margin: float = 0.1) -> torch.Tensor:
    """(N, in) x kept away from every knot by construction: each entry is in a
    random knot interval at a relative position in [margin, 1-margin], or
    outside the grid (left or right) by 5%..50% of the span. For
    finite-difference checks."""
    r = gen(seed)
    in_f, M = grid.shape
    g64 = grid.double()
    # interval index in [-1, M-1]: -1 = left of the grid, M-1 = right of it.
    idx = torch.randint(-1, M, (N, in_f), generator=r)
    frac = margin + (1 - 2 * margin) * torch.rand(N, in_f, generator=r, dtype=torch.float64)
    cols = torch.arange(in_f).expand(N, in_f)
    inner = idx.clamp(0, M - 2)
    a, b = g64[cols, inner], g64[cols, inner + 1]
    x = a + frac * (b - a)
    span = (g64[:, -1] - g64[:, 0]).expand(N, in_f)
    out_frac = 0.05 + 0.45 * torch.rand(N, in_f, generator=r, dtype=torch.float64)
    x = torch.where(idx < 0, g64[:, 0].expand(N, in_f) - out_frac * span, x)
    x = torch.where(idx > M - 2, g64[:, -1].expand(N, in_f) + out_frac * span, x)
    return x.to(grid.dtype)


def randn(*shape, seed: int, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(*shape, generator=gen(seed), dtype=torch.float64).to(dtype)


def err_summary(got: torch.Tensor, exp: torch.Tensor) -> str:
    """'max abs err A at index I (got g, expected e), max rel err R' over the
    entries that are finite in both."""
    g, e = got.detach().double(), exp.detach().double()
    fin = torch.isfinite(g) & torch.isfinite(e)
    if not bool(fin.any()):
        return "no entries finite in both"
    d = torch.where(fin, (g - e).abs(), torch.zeros_like(g))
    rel = torch.where(fin, d / e.abs().clamp_min(torch.finfo(torch.float64).tiny), torch.zeros_like(g))
    flat = int(d.argmax())
    idx = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), d.shape)) if d.dim() else ()
    return (
        f"max abs err {float(d.max()):.3e} at index {idx} (got {float(g.reshape(-1)[flat]):.17g}, "
        f"expected {float(e.reshape(-1)[flat]):.17g}), max rel err {float(rel.max()):.3e}, "
        f"max |expected| {float(e[fin].abs().max()):.3e}"
    )


def assert_close(got, exp, rtol: float, atol: float = None, msg: str = "", scale: float = None):
    """|got - exp| <= atol + rtol |exp| elementwise, NaN and +-inf where
    expected and only there. atol defaults to rtol * max(1, max |exp|) (or
    rtol * scale). Compares in float64; shapes must match exactly."""
    assert tuple(got.shape) == tuple(exp.shape), f"{msg}: shape {tuple(got.shape)} != expected {tuple(exp.shape)}"
    g, e = got.detach().double(), exp.detach().double()
    nan_g, nan_e = torch.isnan(g), torch.isnan(e)
    assert torch.equal(nan_g, nan_e), (
        f"{msg}: NaN pattern differs: {int((nan_g & ~nan_e).sum())} unexpected NaN(s) (first at "
        f"{(nan_g & ~nan_e).nonzero()[:3].tolist()}), {int((nan_e & ~nan_g).sum())} missing NaN(s) (first at "
        f"{(nan_e & ~nan_g).nonzero()[:3].tolist()}); {err_summary(got, exp)}"
    )
    inf_g, inf_e = torch.isinf(g), torch.isinf(e)
    assert torch.equal(inf_g, inf_e) and torch.equal(g[inf_g], e[inf_e]), (
        f"{msg}: +-inf pattern differs ({int(inf_g.sum())} inf got, {int(inf_e.sum())} expected); "
        f"{err_summary(got, exp)}"
    )
    fin = torch.isfinite(e)
    if atol is None:
        if scale is None:
            scale = max(1.0, float(e[fin].abs().max())) if bool(fin.any()) else 1.0
        atol = rtol * scale
    bad = fin & ((g - e).abs() > atol + rtol * e.abs())
    assert not bool(bad.any()), (
        f"{msg}: {int(bad.sum())}/{bad.numel()} entries outside tolerance (rtol={rtol:.1e}, atol={atol:.3e}); "
        f"{err_summary(got, exp)}"
    )


def assert_bitwise_equal(a: torch.Tensor, b: torch.Tensor, msg: str = ""):
    """Same shape, dtype and bit pattern (so -0.0 != +0.0, NaN == same NaN)."""
    assert a.shape == b.shape and a.dtype == b.dtype, f"{msg}: {a.shape}/{a.dtype} vs {b.shape}/{b.dtype}"
    ity = {torch.float32: torch.int32, torch.float64: torch.int64}.get(a.dtype, a.dtype)  # integers as they are
    ai, bi = a.detach().contiguous().view(ity), b.detach().contiguous().view(ity)
    diff = ai != bi
    assert not bool(diff.any()), f"{msg}: {int(diff.sum())} entries differ bitwise; {err_summary(a, b)}"


def assert_deterministic(make_outputs):
    """make_outputs() -> dict of tensors must be bit-identical across two runs
    on 2 threads and a run on 1 thread (use with the restore_threads fixture)."""
    torch.set_num_threads(2)
    a = make_outputs()
    b = make_outputs()
    torch.set_num_threads(1)
    c = make_outputs()
    for name in a:
        assert_bitwise_equal(a[name], b[name], f"{name}: two runs")
        assert_bitwise_equal(a[name], c[name], f"{name}: 2 threads vs 1 thread")


# ------------------------------------------------ tensor-core path (issue 3)
#: One unit of rounding of each tensor-core storage dtype (float32 runs as TF32).
TC_EPS = {torch.float32: 2.0**-11, torch.bfloat16: 2.0**-8, torch.float16: 2.0**-11}


def dense_in_dtype(x, grid, k, base, Wb, Wc, gy):
    """PyTorch's dense formulation of kan_linear in x's dtype (float32 storage
    means TF32 is not emulated here: use it for bfloat16 / float16): bases in
    float32 rounded to the dtype, one matmul per product in the dtype.
    Returns (y, gWb, gWc, gx), each in x's dtype; the base column of a 'zero'
    base is all zeros."""
    from kanext import reference as ref

    dt = x.dtype
    xf = x.float()
    gf = grid.float()
    A = torch.cat([ref.spline_basis(xf, gf, k), ref.base_function(base, xf).unsqueeze(-1)], -1)
    A = A.to(dt).reshape(x.shape[0], -1)
    W = torch.cat([Wc, Wb.unsqueeze(1)], 1).reshape(-1, Wb.shape[1])
    y = A @ W
    gW = (A.t() @ gy).reshape(x.shape[1], -1, Wb.shape[1])
    gA = (gy @ W.t()).reshape(x.shape[0], x.shape[1], -1).float()
    xr = xf.clone().requires_grad_()
    bsum = ref.base_function(base, xr).sum()
    db = torch.autograd.grad(bsum, xr)[0] if bsum.requires_grad else torch.zeros_like(xf)
    gx = (gA[..., :-1] * ref.spline_basis_deriv(xf, gf, k)).sum(-1) + gA[..., -1] * db
    return y, gW[:, -1], gW[:, :-1], gx.to(dt)


def max_rel_err(got, exp) -> float:
    """max |got - exp| / max(1, max |exp|), in float64."""
    exp = exp.detach().double().cpu()
    if exp.numel() == 0:
        return 0.0
    return float((got.detach().double().cpu() - exp).abs().max()) / max(1.0, float(exp.abs().max()))


def assert_tc_close(name, got, exp, dense, dtype):
    """The tensor-core tolerances of issue 3: TF32 (float32 storage) within
    5e-3 of the float64 reference (relative to its largest magnitude);
    bfloat16 / float16 within twice PyTorch's own dense error in that dtype
    (`dense`), with one rounding unit of the dtype as the floor."""
    err = max_rel_err(got, exp)
    bound = 5e-3 if dtype == torch.float32 else 2 * max(max_rel_err(dense, exp), TC_EPS[dtype])
    assert err <= bound, f"{name}: error {err:.3g} > bound {bound:.3g}"


def magnitude(t: torch.Tensor) -> float:
    """1 + the largest finite |value| of t (1 when it has none): a tolerance scale."""
    fin = t[torch.isfinite(t)]
    return 1.0 + (float(fin.abs().max()) if fin.numel() else 0.0)


def quiet(fn, *a, **kw):
    """fn(*a, **kw) with its prints (pykan's) swallowed."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*a, **kw)
