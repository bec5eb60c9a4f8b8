"""Continual learning without forgetting (KAN paper, Section 3.5, Fig. 3.4).

    python examples/paper/continual_learning.py            # full run (docs/paper.md)
    python examples/paper/continual_learning.py --quick    # CI size, a few seconds
    python examples/paper/continual_learning.py --pykan    # also times pykan on the KAN part

The target on [-1, 1] is a sum of five narrow Gaussian peaks,
y = sum_c exp(-300 (x - c)^2) with c = -0.8, -0.4, 0, 0.4, 0.8. Training runs
in five phases; phase p sees only the samples of the p-th region
[c_p - 0.2, c_p + 0.2] (the setup of pykan's continual-learning tutorial).
After each phase we measure the RMSE of each model on every region seen so
far (and on the whole interval).

- KAN [1, 1] with a fine grid (G=200 by default, k=3), base function 'zero'
  and the scales frozen, as in the paper/tutorial: the model is a single
  cubic B-spline whose basis functions are local, so fitting region p only
  moves the coefficients of the splines that overlap region p.
- MLP (kanext.MLP, silu) with a comparable number of parameters: every
  weight affects every x, so fitting the new region overwrites the old ones.

Both are trained with L-BFGS, the same number of steps per phase. Prints the
per-phase table and writes examples/out/continual_learning.png (both models'
predictions after each phase). ``main`` returns the numbers.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch

import kanext

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # _common, also when loaded by file path
from _common import pykan_sandbox, pyplot  # noqa: E402

N_PEAK = 5


def peaks(x, centers):
    return sum(torch.exp(-300.0 * (x - c) ** 2) for c in centers)


def make_data(n_per_peak, dtype=torch.float64):
    centers = [2.0 / N_PEAK * (i - N_PEAK / 2 + 0.5) for i in range(N_PEAK)]
    half = 1.0 / N_PEAK
    xs = [torch.linspace(c - half, c + half, n_per_peak, dtype=dtype)[:, None] for c in centers]
    ys = [peaks(x, centers) for x in xs]
    return centers, xs, ys


def rmse(model, x, y):
    with torch.no_grad():
        return float((model(x) - y).pow(2).mean().sqrt())


def make_kan(G, seed=0):
    return kanext.KAN(width=[1, 1], grid=G, k=3, base_fun="zero", noise_scale=0.1, sp_trainable=False,
                      sb_trainable=False, seed=seed, dtype=torch.float64)


def run_sequence(model, xs, ys, steps, x_all, y_all, kind):
    """Fits model on each region in turn; returns (err[p][r] for r <= p, whole-interval RMSE per
    phase, predictions on x_all per phase, seconds)."""
    err, whole, preds = [], [], []
    t0 = time.perf_counter()
    for p in range(len(xs)):
        ds = {"train_input": xs[p], "train_label": ys[p], "test_input": xs[p], "test_label": ys[p]}
        kw = {"update_grid": False} if kind == "kan" else {}
        model.fit(ds, opt="LBFGS", steps=steps, progress=False, **kw)
        err.append([rmse(model, xs[r], ys[r]) for r in range(p + 1)])
        whole.append(rmse(model, x_all, y_all))
        with torch.no_grad():
            preds.append(model(x_all).squeeze(1).clone())
    return err, whole, preds, time.perf_counter() - t0


def run_pykan(G, xs, ys, steps):
    """The same KAN sequence in pykan 0.2.8 (no checkpoint folder: auto_save=False, in a temporary
    working directory). Returns (err, seconds) or None when pykan is not installed."""
    try:
        from kan import MultKAN
    except Exception:
        return None
    with pykan_sandbox():
        m = MultKAN(width=[1, 1], grid=G, k=3, base_fun="zero", noise_scale=0.1, sp_trainable=False,
                    sb_trainable=False, seed=0, auto_save=False)
        err = []
        t0 = time.perf_counter()
        for p in range(len(xs)):
            ds = {"train_input": xs[p], "train_label": ys[p], "test_input": xs[p], "test_label": ys[p]}
            m.fit(ds, opt="LBFGS", steps=steps, update_grid=False, log=10**9)
            err.append([rmse(m, xs[r], ys[r]) for r in range(p + 1)])
        secs = time.perf_counter() - t0
    return err, secs


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="CI size: 40 points per peak, 20 steps per phase")
    p.add_argument("--grid", type=int, default=200, help="KAN grid size G")
    p.add_argument("--mlp", default="1,16,16,1", help="MLP widths")
    p.add_argument("--steps", type=int, default=None, help="L-BFGS steps per phase (default 100; quick 20)")
    p.add_argument("--points", type=int, default=None, help="samples per peak (default 100; quick 40)")
    p.add_argument("--pykan", action="store_true", help="also run the KAN sequence in pykan and time it")
    p.add_argument("--out", default="examples/out", help="folder for the plot")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    say = (lambda *a: None) if args.quiet else print
    steps = args.steps or (20 if args.quick else 100)
    n_pp = args.points or (40 if args.quick else 100)

    centers, xs, ys = make_data(n_pp)
    x_all = torch.linspace(-1, 1, 1000, dtype=torch.float64)[:, None]
    y_all = peaks(x_all, centers)

    kan = make_kan(args.grid)
    mlp = kanext.MLP([int(v) for v in args.mlp.split(",")], act="silu", seed=0, dtype=torch.float64)
    n_kan = sum(q.numel() for q in kan.parameters() if q.requires_grad)
    res = {}
    for name, model, kind in (("KAN", kan, "kan"), ("MLP", mlp, "mlp")):
        res[name] = dict(zip(("err", "whole", "preds", "secs"), run_sequence(model, xs, ys, steps, x_all, y_all, kind)))
    res["KAN"]["params"], res["MLP"]["params"] = n_kan, mlp.n_params

    say(f"KAN [1,1] G={args.grid} k=3 ({n_kan} trainable parameters), MLP {mlp.width} ({mlp.n_params}); "
        f"{steps} L-BFGS steps per phase, {n_pp} points per peak")
    say("RMSE on each region after each phase (region r = peak at c_r; '-' not seen yet)")
    head = "phase  model " + "".join(f"  region {r + 1}" for r in range(N_PEAK)) + "   mean old   whole [-1,1]"
    say(head)
    for ph in range(N_PEAK):
        for name in ("KAN", "MLP"):
            e = res[name]["err"][ph]
            old = sum(e[:-1]) / len(e[:-1]) if ph else float("nan")
            cells = "".join(f"{v:10.2e}" for v in e) + "          -" * (N_PEAK - ph - 1)
            say(f"{ph + 1:<6d} {name:5s} {cells}  {old:9.2e}   {res[name]['whole'][ph]:9.2e}")
    # forgetting: the mean RMSE on the earlier regions after the last phase
    for name in ("KAN", "MLP"):
        e = res[name]["err"][-1]
        res[name]["old_final"] = sum(e[:-1]) / (N_PEAK - 1)
        say(f"{name}: mean RMSE on regions 1-4 after phase 5: {res[name]['old_final']:.3e}; "
            f"whole interval {res[name]['whole'][-1]:.3e}; fit time {res[name]['secs']:.2f} s")

    if args.pykan:
        pk = run_pykan(args.grid, xs, ys, steps)
        if pk is None:
            say("pykan not installed: skipped")
        else:
            res["pykan"] = {"err": pk[0], "secs": pk[1]}
            e = pk[0][-1]
            say(f"pykan MultKAN, same KAN sequence: {pk[1]:.2f} s (kanext {res['KAN']['secs']:.2f} s, "
                f"{pk[1] / res['KAN']['secs']:.1f}x); mean RMSE on regions 1-4 after phase 5: "
                f"{sum(e[:-1]) / (N_PEAK - 1):.3e}")

    os.makedirs(args.out, exist_ok=True)
    plt = pyplot()

    fig, axes = plt.subplots(3, N_PEAK, figsize=(3 * N_PEAK, 6.5), sharex=True, sharey=True)
    xa = x_all.squeeze(1)
    for ph in range(N_PEAK):
        ax = axes[0, ph]
        ax.plot(xa, y_all.squeeze(1), color="0.8")
        ax.plot(xs[ph].squeeze(1), ys[ph].squeeze(1), "k.", ms=2)
        ax.set_title(f"phase {ph + 1}: data")
        for row, name, col in ((1, "KAN", "C0"), (2, "MLP", "C3")):
            ax = axes[row, ph]
            ax.plot(xa, y_all.squeeze(1), color="0.8")
            ax.plot(xa, res[name]["preds"][ph], color=col)
            if ph == 0:
                ax.set_ylabel(name)
    axes[0, 0].set_ylim(-0.5, 1.5)
    fig.tight_layout()
    path = os.path.join(args.out, "continual_learning.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    say(f"plot: {path}")
    res["plot"] = path
    return res


if __name__ == "__main__":
    main()
