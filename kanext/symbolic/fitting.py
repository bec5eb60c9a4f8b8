"""Batched fitting of c * f(a * x + b) + d: every unit (a KAN edge or a LAN
node) against every library function in one pass, and pykan's ranking."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from . import library

__all__ = ["fit_params", "fit_one", "scores", "rank_candidates"]


def fit_params(x: Tensor, y: Tensor, names: Sequence[str], a_range=(-10.0, 10.0), b_range=(-10.0, 10.0),
               grid_number: int = 21, iteration: int = 7, search_points: int = 256, zoom_number: int = 11,
               chunk_elems: int = 1 << 18) -> tuple[Tensor, Tensor]:
    """Fits y ~ c * f(a * x + b) + d for every edge and every function at once.

    Args:
        x, y: (E, P) inputs and outputs of E edges (or (P,) for one edge).
        names: C library names; or, as pykan's ``fit_params(x, y, fun)``,
            one name or one callable, and then the function axis is dropped
            from the results ((E, 4) and (E,), or (4,) and () for one edge).
        a_range, b_range: the first grid's spans of a and b, in units where
            each edge's inputs are standardised (mean 0, std 1), so that the
            search does not depend on the input scale; the returned (a, b)
            act on x itself.
        grid_number, zoom_number, iteration: ``iteration`` passes of a grid
            search over (a, b): a grid_number x grid_number grid over the
            ranges, then zoom_number x zoom_number grids over +-1 step of the
            previous pass around its best point (the defaults end with a step
            of 6.4e-5 of the initial span / 20, as fine as pykan's 101 x 101 x 3).
        search_points: the grid search uses at most this many points per edge
            (evenly spaced in sorted x, extremes included); c, d and the
            returned r2 use all points.
    Returns:
        params (E, C, 4) holding (a, b, c, d) and r2 (E, C), float64, always finite.

    r2 of (a, b) is corr(f(a x + b), y)^2 from closed-form sums; (a, b) for which
    f is not finite on some point get r2 = 0, and so do constant f or y.
    """
    x = torch.as_tensor(x)
    y = torch.as_tensor(y)
    if x.shape != y.shape or x.dim() not in (1, 2) or x.shape[-1] < 1:
        raise ValueError(f"fit_params: x and y must have the same shape (P,) or (E, P), got {tuple(x.shape)} and {tuple(y.shape)}")
    if grid_number < 3 or zoom_number < 3 or iteration < 1:
        raise ValueError(f"fit_params: need grid_number >= 3, zoom_number >= 3 and iteration >= 1, "
                         f"got {grid_number}, {zoom_number}, {iteration}")
    one = isinstance(names, str) or callable(names)  # pykan's fit_params(x, y, fun): one function
    names = [names] if one else list(names)
    entries = [library.SymbolicFunction(getattr(n, "__name__", "fun"), n, None, 0, lambda t, y_th, f=n: f(t))
               if callable(n) and not isinstance(n, str) else library.entry(n) for n in names]
    single = x.dim() == 1
    x = x.detach().to(torch.float64).reshape(-1, x.shape[-1])
    y = y.detach().to(torch.float64).reshape(-1, y.shape[-1])
    E, P = x.shape
    C = len(entries)
    dev = x.device
    # Search in standardised units, u = (x - mu) / sd, so that the grid's
    # resolution does not depend on the edge's input scale; then map back.
    mu = x.mean(1, keepdim=True)
    sd = x.std(1, keepdim=True, correction=0)
    sd = torch.where(sd > 0, sd, torch.ones_like(sd))
    x = (x - mu) / sd
    if P > search_points:
        sel = torch.linspace(0, P - 1, search_points, device=dev).round().long()
        order = torch.argsort(x, dim=1)[:, sel]
        xs, ys = torch.gather(x, 1, order), torch.gather(y, 1, order)
    else:
        xs, ys = x, y
    yc = ys - ys.mean(1, keepdim=True)
    syy = (yc * yc).sum(1)  # (E,)
    W = torch.stack([torch.ones_like(yc), yc], dim=2)  # (E, S, 2): one GEMM gives sum f and sum f yc
    a_mid = torch.full((E, C), (a_range[0] + a_range[1]) / 2, dtype=torch.float64, device=dev)
    b_mid = torch.full((E, C), (b_range[0] + b_range[1]) / 2, dtype=torch.float64, device=dev)
    a_half = torch.full((E, C), (a_range[1] - a_range[0]) / 2, dtype=torch.float64, device=dev)
    b_half = torch.full((E, C), (b_range[1] - b_range[0]) / 2, dtype=torch.float64, device=dev)
    S = xs.shape[1]
    # functions that are the same torch callable (sqrt and x^0.5, ...) are searched once
    first_of: dict[int, int] = {}
    for c, entry in enumerate(entries):
        first_of.setdefault(id(entry.torch_fn), c)
    for it in range(iteration):
        G = grid_number if it == 0 else zoom_number
        t = torch.linspace(-1, 1, G, dtype=torch.float64, device=dev)
        A = a_mid[..., None] + a_half[..., None] * t  # (E, C, G)
        B = b_mid[..., None] + b_half[..., None] * t
        best = torch.empty(E, C, dtype=torch.long, device=dev)
        step = max(1, chunk_elems // (G * G * S))
        for c, entry in enumerate(entries):
            c0 = first_of[id(entry.torch_fn)]
            if c0 != c:
                best[:, c] = best[:, c0]
                continue
            for e0 in range(0, E, step):
                sl = slice(e0, e0 + step)
                z = torch.addcmul(B[sl, c, None, :, None], A[sl, c, :, None, None], xs[sl, None, None, :])  # (e, G, G, S)
                r2 = _r2(entry.torch_fn(z).reshape(z.shape[0], G * G, S), W[sl], syy[sl, None])
                best[sl, c] = r2.argmax(1)
        ia, ib = best // G, best % G
        a_mid = torch.gather(A, 2, ia[..., None])[..., 0]
        b_mid = torch.gather(B, 2, ib[..., None])[..., 0]
        a_half = a_half * 2 / (G - 1)
        b_half = b_half * 2 / (G - 1)
    # c, d and r2 on all points
    params = torch.zeros(E, C, 4, dtype=torch.float64, device=dev)
    r2_all = torch.zeros(E, C, dtype=torch.float64, device=dev)
    ym = y.mean(1)
    yca = y - ym[:, None]
    syya = (yca * yca).sum(1)
    for c, entry in enumerate(entries):
        f = entry.torch_fn(a_mid[:, c, None] * x + b_mid[:, c, None])  # (E, P)
        ok = torch.isfinite(f).all(1)
        f = torch.where(torch.isfinite(f), f, torch.zeros_like(f))
        fm = f.mean(1)
        fc = f - fm[:, None]
        sff = (fc * fc).sum(1)
        sfy = (fc * yca).sum(1)
        good = ok & (sff > _flat_tol(fm, P)) & torch.isfinite(sff) & torch.isfinite(sfy)
        cc = torch.where(good, sfy / torch.where(good, sff, torch.ones_like(sff)), torch.zeros_like(sff))
        dd = torch.where(good, ym - cc * fm, ym)
        r2 = torch.where(good & (syya > 0), sfy * sfy / torch.where(good, sff, torch.ones_like(sff)) / syya.clamp_min(1e-300),
                         torch.zeros_like(sff))
        a_x = a_mid[:, c] / sd[:, 0]  # a u + b = a_x x + b_x
        b_x = b_mid[:, c] - a_mid[:, c] * mu[:, 0] / sd[:, 0]
        params[:, c] = torch.stack([a_x, b_x, cc, dd], dim=1)
        r2_all[:, c] = r2.clamp(0, 1)
    params = torch.nan_to_num(params, nan=0.0, posinf=0.0, neginf=0.0)
    r2_all = torch.nan_to_num(r2_all, nan=0.0)
    if single:
        params, r2_all = params[0], r2_all[0]
    if one:
        return params[..., 0, :], r2_all[..., 0]
    return params, r2_all


def fit_one(x: Tensor, y: Tensor, name: str, a_range, b_range, verbose, what: str) -> tuple[list[float], float]:
    """(a, b, c, d) and r2 of c * name(a x + b) + d fitted to the samples y(x);
    prints r2 (and a warning below 0.9) when verbose. `what` names the fitted
    thing in the warning ('edge', 'node'). Shared by the KAN and LAN fix_symbolic."""
    p, r = fit_params(x, y, [name], a_range, b_range)
    params, r2 = p[0].tolist(), float(r[0])
    if verbose:
        print(f"r2 is {r2:.6g}")
        if r2 < 0.9:
            print(f"r2 is not very high; check that the symbolic function fits this {what}")
    return params, r2


def _flat_tol(fm: Tensor, n: int) -> Tensor:
    # f constant up to rounding: its centred sum of squares is rounding noise
    return n * (1e-10 * fm) ** 2 + 1e-300


def _r2(f: Tensor, W: Tensor, syy: Tensor) -> Tensor:
    """corr(f, y)^2 over the last axis of f (e, K, S), with W (e, S, 2) =
    [1, y - mean(y)] and syy (e, 1) = sum (y - mean y)^2. 0 where f is not
    finite somewhere (the sums then are not finite), or f or y is constant."""
    n = f.shape[-1]
    # shift by one sample of f: the variance is unchanged and the one-pass
    # sum of squares below does not cancel catastrophically
    ref = f[..., n // 2: n // 2 + 1]
    fr = f - ref
    sums = torch.bmm(fr, W)  # (e, K, 2)
    sf, sfy = sums[..., 0], sums[..., 1]
    sff = torch.linalg.vector_norm(fr, dim=-1) ** 2 - sf * sf / n
    fm = ref[..., 0] + sf / n
    good = torch.isfinite(sff) & torch.isfinite(sfy) & (sff > _flat_tol(fm, n)) & (syy > 0)
    r2 = sfy * sfy / (torch.where(good, sff, torch.ones_like(sff)) * torch.where(syy > 0, syy, torch.ones_like(syy)))
    return torch.where(good, torch.nan_to_num(r2, nan=0.0, posinf=0.0), torch.zeros_like(r2))


def scores(r2: Tensor, names: list[str], weight_simple: float, r2_loss_fun=None, c_loss_fun=None) -> Tensor:
    """pykan's ranking loss (lower is better): weight_simple * c_loss(complexity)
    + (1 - weight_simple) * r2_loss(r2), by default c_loss(c) = c and
    r2_loss(r2) = log2(1 + 1e-5 - r2). Custom losses get numpy arrays, as in pykan."""
    comp = torch.tensor([float(library.entry(n).complexity) for n in names], dtype=torch.float64, device=r2.device)
    if c_loss_fun is not None:
        comp = _np_apply(c_loss_fun, comp, "c_loss_fun")
    r2_loss = torch.log2(1 + 1e-5 - r2) if r2_loss_fun is None else _np_apply(r2_loss_fun, r2, "r2_loss_fun")
    return weight_simple * comp + (1 - weight_simple) * r2_loss


def _np_apply(fn, t: Tensor, what: str) -> Tensor:
    out = torch.as_tensor(fn(t.detach().cpu().double().numpy()), dtype=torch.float64)
    if out.shape != t.shape:
        raise ValueError(f"{what} must map an array elementwise (shape {tuple(t.shape)}), got shape {tuple(out.shape)}")
    return out.to(t.device)


def rank_candidates(x: Tensor, y: Tensor, names: list[str], a_range, b_range, weight_simple: float, topk: int,
                    verbose, r2_loss_fun=None, c_loss_fun=None) -> list[tuple[str, float, float, float]]:
    """Fits every candidate function to the samples y(x) (one batched fit) and
    returns the topk rows (name, r2, complexity, score), best (lowest score)
    first; prints them as a table when verbose. Shared by the KAN edge and the
    LAN node versions of suggest_symbolic."""
    _, r2 = fit_params(x, y, names, a_range, b_range)
    score = scores(r2, names, weight_simple, r2_loss_fun, c_loss_fun)
    order = torch.argsort(score, stable=True)[: max(1, int(topk))].tolist()
    rows = [(names[c], float(r2[c]), library.entry(names[c]).complexity, float(score[c])) for c in order]
    if verbose:
        print(f"{'function':>12} {'r2':>12} {'complexity':>10} {'score':>10}")
        for n, r, c, s in rows:
            print(f"{n:>12} {r:12.6f} {c:10g} {s:10.4f}")
    return rows
