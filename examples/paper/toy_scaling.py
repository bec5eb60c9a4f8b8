"""Scaling of test RMSE with parameters on toy functions (KAN paper, Section 3.1, Fig. 3.1), reduced.

    python examples/paper/toy_scaling.py            # full run (docs/paper.md)
    python examples/paper/toy_scaling.py --quick    # CI size, a few seconds

Targets (1000 train (exp_sin4: 3000) and 1000 test points, uniform on [-1, 1]^n, data seed 0, float64):

- ``exp_sin``: f(x, y) = exp(sin(pi x) + y^2), KAN [2, 1, 1]
- ``xy``:      f(x, y) = x y, KAN [2, 2, 1]
- ``j0``:      f(x) = J0(20 x) (torch.special.bessel_j0), KAN [1, 1]
- ``exp_sin4``: f(x1..x4) = exp(0.5 (sin(pi (x1^2 + x2^2)) + sin(pi (x3^2 + x4^2)))),
  KAN [4, 4, 2, 1], with its own recipe (``TARGET_RECIPE``): 3000 training points, best of
  24 seeds of 50 steps at G = 3, grids G = 3, 5, 10, 20, 50, 100 (quick: 1000 points, 10
  seeds of 30 steps, G = 3, 5, 10)
- ``exp_sin100``: f(x1..x100) = exp(mean_i sin^2(pi x_i / 2)), KAN [100, 1, 1]
  (default grids G = 3, 5, 10, 20: at G = 20 the KAN has already 2525
  parameters for the 1000 training points; quick G = 3, 5)

KANs (k = 3) go through grid extension as in the paper: a fit at G = 3, then
for each next G a new KAN is made and initialised from the previous one with
``initialize_from_another_model`` (on the training inputs) and fitted again
(L-BFGS, ``--steps`` per grid, 100 by default where the paper uses 200, grid updates from the data in the first 30
steps of each stage). The first stage keeps the best of ``--restarts`` seeds
(lowest train RMSE). Parameters are counted as trainable parameters: per
edge G + k spline coefficients plus scale_base and scale_sp.

Baselines: kanext.MLP (silu) of depth 2 and 3 (number of linear layers) and
widths 10 and 40, each trained with L-BFGS for ``--mlp-steps`` steps. (The
paper trains more and bigger MLPs; on 2 shared CPU cores a 500-step fit of a
depth-3 width-50 MLP alone takes about a minute, so the defaults keep the
full run to a few minutes: pass --mlp-depths/--mlp-widths/--mlp-steps for more.)

The script prints, per target, each KAN stage and each MLP with its parameter
count and train/test RMSE, and the fitted slope of log test RMSE against log
parameters for the KAN stages from G = 5 up to the stage with the lowest
test RMSE (the regime before the error stops falling), next to the theory's
-4 = -(k + 1) for k = 3. For each KAN stage it also gives the test RMSE on
the test points that fall inside every layer's grid range (the grids end at
the range of the training data, of the inputs and of the hidden
variables; the few test points beyond are extrapolated by the cubic tails of
the outer B-splines, an error that grows with G) and the slope of that
in-range RMSE (from G = 5 to its own lowest stage). It writes a log-log plot (test RMSE vs parameters,
KAN (all test points and those inside the grids) and MLPs, with an N^-4
guide) to examples/out/toy_scaling.png.
``main`` returns the numbers.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time

import torch

import kanext
from kanext.datasets import create_dataset

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # _common, also when loaded by file path
from _common import pyplot  # noqa: E402

TARGETS = {
    "exp_sin": (2, [2, 1, 1], lambda x: torch.exp(torch.sin(torch.pi * x[:, :1]) + x[:, 1:2] ** 2)),
    "xy": (2, [2, 2, 1], lambda x: x[:, :1] * x[:, 1:2]),
    "j0": (1, [1, 1], lambda x: torch.special.bessel_j0(20 * x[:, :1])),
    "exp_sin4": (4, [4, 4, 2, 1], lambda x: torch.exp(0.5 * (torch.sin(torch.pi * (x[:, :1] ** 2 + x[:, 1:2] ** 2))
                                                           + torch.sin(torch.pi * (x[:, 2:3] ** 2 + x[:, 3:4] ** 2))))),
    "exp_sin100": (100, [100, 1, 1], lambda x: torch.exp(torch.sin(torch.pi * x / 2).pow(2).mean(1, keepdim=True))),
}
# targets whose default grids differ from the others' (full, --quick), when --grids is not given
TARGET_GRIDS = {"exp_sin4": ([3, 5, 10, 20, 50, 100], [3, 5, 10]), "exp_sin100": ([3, 5, 10, 20], [3, 5])}
# targets whose first stage and data differ from the others' defaults (full, --quick), each overridden by its
# flag (--train-num, --restarts, --first-steps): the [4, 4, 2, 1] KAN lands in a good basin (a hidden node that
# is x1^2 + x2^2 and one that is x3^2 + x4^2) from only a few seeds, and a good basin at G=3 is what makes grid
# extension work (docs/paper.md), so exp_sin4 screens many seeds with short fits, on 3000 training points
TARGET_RECIPE = {"exp_sin4": (dict(train_num=3000, restarts=24, first_steps=50),
                              dict(train_num=1000, restarts=10, first_steps=30))}


def n_trainable(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@torch.no_grad()
def inside_rmse(model, x, y):
    """(test RMSE on the points whose input to every layer lies inside that layer's grid range,
    fraction of such points). Outside the grid only the base term and the cubic tails of the
    outermost B-splines remain: the points there are extrapolated, not interpolated."""
    keep = torch.ones(x.shape[0], dtype=torch.bool)
    for xl, layer in zip(model.layer_inputs(x), model.act_fun):
        k = layer.k
        lo, hi = layer.grid[:, k], layer.grid[:, -k - 1]
        keep &= ((xl >= lo) & (xl <= hi)).all(dim=1)
    if not keep.any():
        return float("nan"), 0.0
    return float((model(x[keep]) - y[keep]).pow(2).mean().sqrt()), float(keep.double().mean())


def kan_scaling(width, grids, steps, restarts, ds, log, first_steps=None):
    """Grid extension over grids; the first stage fits restarts seeds (first_steps L-BFGS steps each,
    default steps) and keeps the lowest train RMSE. One row per stage."""
    rows = []
    model = None
    for G in grids:
        t0 = time.perf_counter()
        if model is None:
            best = None
            for seed in range(restarts):
                cand = kanext.KAN(width=width, grid=G, k=3, seed=seed, dtype=torch.float64)
                res = cand.fit(ds, opt="LBFGS", steps=first_steps or steps, stop_grid_update_step=30,
                               progress=False)
                if best is None or res["train_loss"][-1] < best[1]["train_loss"][-1]:
                    best = (cand, res, seed)
            model, res, seed_kept = best
        else:
            new = kanext.KAN(width=width, grid=G, k=3, seed=0, dtype=torch.float64)
            model = new.initialize_from_another_model(model, ds["train_input"])
            res = model.fit(ds, opt="LBFGS", steps=steps, stop_grid_update_step=30, progress=False)
        inside, frac = inside_rmse(model, ds["test_input"], ds["test_label"])
        row = {"G": G, "params": n_trainable(model), "seed": seed_kept, "train": res["train_loss"][-1], "test": res["test_loss"][-1],
               "test_inside": inside, "inside_frac": frac, "secs": time.perf_counter() - t0}
        rows.append(row)
        log(f"  KAN {str(width):10s} G={G:<4d} params {row['params']:6d}  train {row['train']:.3e}  "
            f"test {row['test']:.3e}  (inside the grids: {inside:.3e} on {100 * frac:.1f}% of the test points)"
            f"  ({row['secs']:.1f} s)")
    return rows


def mlp_scaling(n_var, depths, widths, steps, ds, log):
    rows = []
    for d in depths:
        for w in widths:
            t0 = time.perf_counter()
            m = kanext.MLP([n_var] + [w] * (d - 1) + [1], act="silu", seed=0, dtype=torch.float64)
            res = m.fit(ds, opt="LBFGS", steps=steps, progress=False)
            test = min(res["test_loss"][-1], float("inf"))
            row = {"depth": d, "width": w, "params": m.n_params, "train": res["train_loss"][-1], "test": test,
                   "secs": time.perf_counter() - t0}
            if not math.isfinite(row["test"]):
                row["test"] = float("nan")
            rows.append(row)
            log(f"  MLP depth {d} width {w:<3d}   params {row['params']:6d}  train {row['train']:.3e}  "
                f"test {row['test']:.3e}  ({row['secs']:.1f} s)")
    return rows


def fit_slope(xs, ys):
    """Least-squares slope of log y against log x."""
    pts = [(math.log(a), math.log(b)) for a, b in zip(xs, ys) if a > 0 and b > 0]
    if len(pts) < 2:
        return float("nan")
    n = len(pts)
    mx = sum(p[0] for p in pts) / n
    my = sum(p[1] for p in pts) / n
    return sum((a - mx) * (b - my) for a, b in pts) / sum((a - mx) ** 2 for a, _ in pts)


def regime(rows, key="test"):
    """The KAN stages used for the slope: from G = 5 to the stage with the lowest rows[key]
    (at least two stages when there are two with G >= 5)."""
    cand = [r for r in rows if r["G"] >= 5]
    if not cand:
        return []
    best = min(range(len(cand)), key=lambda i: cand[i][key])
    return cand[: max(best + 1, min(2, len(cand)))]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="CI size: exp_sin only, G = 3, 5, 10, 40 steps, one MLP")
    p.add_argument("--targets", default=None, help="comma-separated subset of " + ",".join(TARGETS))
    p.add_argument("--grids", type=int, nargs="+", default=None, help="default 3 5 10 20 50 100")
    p.add_argument("--steps", type=int, default=None, help="L-BFGS steps per grid (default 100; quick 40)")
    p.add_argument("--restarts", type=int, default=None, help="seeds tried for the first stage, the lowest train RMSE kept (default 3; quick 1; exp_sin4 24, quick 10)")
    p.add_argument("--first-steps", type=int, default=None,
                   help="L-BFGS steps of each first-stage seed (default --steps; exp_sin4 50, quick 30)")
    p.add_argument("--mlp-depths", type=int, nargs="+", default=None, help="default 2 3")
    p.add_argument("--mlp-widths", type=int, nargs="+", default=None, help="default 10 40")
    p.add_argument("--mlp-steps", type=int, default=None, help="L-BFGS steps per MLP (default 200; quick 50)")
    p.add_argument("--train-num", type=int, default=None, help="training points (default 1000; exp_sin4 3000, quick 1000)")
    p.add_argument("--out", default="examples/out", help="folder for the plot")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    say = (lambda *a: None) if args.quiet else print
    q = args.quick
    targets = (args.targets or ("exp_sin" if q else ",".join(TARGETS))).split(",")
    all_grids = args.grids or ([3, 5, 10] if q else [3, 5, 10, 20, 50, 100])
    steps = args.steps or (40 if q else 100)
    restarts = 1 if q else 3
    depths = args.mlp_depths or ([2] if q else [2, 3])
    widths = args.mlp_widths or ([10] if q else [10, 40])
    mlp_steps = args.mlp_steps or (50 if q else 200)

    results = {}
    for name in targets:
        n_var, width, f = TARGETS[name]
        grids = all_grids if args.grids or name not in TARGET_GRIDS else TARGET_GRIDS[name][q]
        rec = TARGET_RECIPE[name][q] if name in TARGET_RECIPE else {}
        train_num = args.train_num or rec.get("train_num", 1000)
        n_seeds = args.restarts or rec.get("restarts", restarts)
        first_steps = args.first_steps or rec.get("first_steps", steps)
        ds = create_dataset(f, n_var=n_var, train_num=train_num, test_num=1000, seed=0, dtype=torch.float64)
        say(f"{name}: KAN {width}, {train_num} training points, best of {n_seeds} seeds at G={grids[0]} "
            f"({first_steps} steps each), {steps} L-BFGS steps per grid; MLPs {mlp_steps} steps")
        kan = kan_scaling(width, grids, steps, n_seeds, ds, say, first_steps=first_steps)
        mlp = mlp_scaling(n_var, depths, widths, mlp_steps, ds, say)
        reg = regime(kan)
        s_params = fit_slope([r["params"] for r in reg], [r["test"] for r in reg])
        s_grid = fit_slope([r["G"] for r in reg], [r["test"] for r in reg])
        reg_in = regime(kan, "test_inside")
        s_inside = fit_slope([r["params"] for r in reg_in], [r["test_inside"] for r in reg_in])
        results[name] = {"width": width, "grids": grids, "train_num": train_num, "kan": kan, "mlp": mlp, "slope_params": s_params, "slope_G": s_grid,
                         "slope_inside": s_inside, "regime": [r["G"] for r in reg],
                         "regime_inside": [r["G"] for r in reg_in]}

    cols = sorted({G for r in results.values() for G in r["grids"]})

    def cells(r, key):  # one column per G of any target, blank where this target has no such stage
        by_g = {row["G"]: row[key] for row in r["kan"]}
        return "".join(f"{by_g[G]:10.2e}" if G in by_g else f"{'':10s}" for G in cols)

    say("\nsummary: test RMSE")
    say(f"{'target':10s} {'KAN width':14s} " + "".join(f"{'G=' + str(G):>10s}" for G in cols)
        + "   best MLP (params)        slope vs params (G range)   vs G   theory")
    for name, r in results.items():
        best = min(r["mlp"], key=lambda m: m["test"] if math.isfinite(m["test"]) else float("inf"))
        g = r["regime"]
        rng = f"G={g[0]}..{g[-1]}" if g else "-"
        say(f"{name:10s} {str(r['width']):14s} " + cells(r, "test")
            + f"   {best['test']:.2e} ({best['params']:5d})      {r['slope_params']:6.2f} ({rng:10s})"
              f"     {r['slope_G']:6.2f}  -4")
    say("\ntest RMSE on the test points inside every layer's grid range (the rest are extrapolated)")
    say(f"{'target':10s} {'KAN width':14s} " + "".join(f"{'G=' + str(G):>10s}" for G in cols)
        + "   slope vs params (G range)")
    for name, r in results.items():
        g = r["regime_inside"]
        rng = f"G={g[0]}..{g[-1]}" if g else "-"
        say(f"{name:10s} {str(r['width']):14s} " + cells(r, "test_inside")
            + f"   {r['slope_inside']:6.2f} ({rng})")

    os.makedirs(args.out, exist_ok=True)
    plt = pyplot()

    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 3.8), squeeze=False)
    for ax, (name, r) in zip(axes[0], results.items()):
        kp = [row["params"] for row in r["kan"]]
        ax.loglog(kp, [row["test"] for row in r["kan"]], "o-", label=f"KAN {r['width']} (grid ext.)")
        ax.loglog(kp, [row["test_inside"] for row in r["kan"]], "o:", color="C0", alpha=0.6, mfc="none",
                  label="KAN, test points inside the grids")
        for d in sorted({m["depth"] for m in r["mlp"]}):
            ms = [m for m in r["mlp"] if m["depth"] == d]
            ax.loglog([m["params"] for m in ms], [m["test"] for m in ms], "s--", alpha=0.7, label=f"MLP depth {d}")
        ref = r["kan"][0]["test"]
        ax.loglog(kp, [ref * (n / kp[0]) ** -4 for n in kp], ":", color="gray", label="N^-4")
        ax.set_title(name)
        ax.set_xlabel("parameters")
        ax.set_ylabel("test RMSE")
        lows = [row["test"] for row in r["kan"] + r["mlp"]] + [row["test_inside"] for row in r["kan"]]
        ax.set_ylim(bottom=max(1e-10, 0.3 * min(v for v in lows if v > 0)))
        ax.legend(fontsize=7)
    fig.tight_layout()
    path = os.path.join(args.out, "toy_scaling.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    say(f"plot: {path}")
    results["plot"] = path
    return results


if __name__ == "__main__":
    main()
