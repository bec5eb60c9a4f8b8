"""The paper's grid-extension experiment (Liu et al. 2024, Fig. 2.3).

f(x, y) = exp(sin(pi x) + y^2), 1000 train / 1000 test points, LBFGS for 200
steps per stage, grids G = 3, 5, 10, 20, 50, 100, for a [2,1,1] and a [2,5,1]
KAN in float64. Each stage starts from the previous model refined to the new
grid (model.refine). Prints the table of test RMSEs and saves a log-log plot
of test RMSE against G.

    python examples/grid_extension.py            # full run (a few minutes on 2 cores)
    python examples/grid_extension.py --quick    # G = 3, 5, 10, 20 and 100 steps

Restarts guard against stalls only. The [2,1,1] shape can stall in a poor
minimum from some initialisations, pykan's as well: with data seed 0, model
seeds 1 and 2 stop at train RMSE 0.6 against 0.017 for seed 0. The first stage
tries seeds 0, 1, ... (at most --restarts) and keeps the first whose train
RMSE is below 0.1 * std(train labels); if none is, the one with the lowest
train RMSE. It does not pick the lowest train loss among good seeds: at G = 3
their differences are a few percent and do not carry over. For [2,5,1], seed
2 has a 7% lower G = 3 train RMSE than seed 0, but its run ends at test RMSE
3.0e-4 (G = 20) and 4.4e-3 (G = 50), against 4.1e-5 and 3.2e-5 from seed 0.
(This rule was chosen after seeing that [2,5,1] run, on data seed 0.)

Where refine() refits (--refine-on). When the new grid does not contain the
old knots (3 -> 5, 20 -> 50), refine() fits the new splines to the old ones in
least squares at the last training inputs (--refine-on samples, the default).
pykan's refine() fits at its cache_data, the input of the model's last forward
call, which inside pykan's fit() is the test-loss forward: pykan refits at the
test inputs. kanext's fit() caches the training inputs, so no stage looks at
test data. Refitting kanext at the test inputs instead moved its [2,1,1]
test RMSE medians over data seeds 0..4 by less than 4% at G = 5..20, both
ways, and by -14% at G = 50, where a few extrapolated test points decide
(bench/RESULTS.md): no reason to look at test inputs. --refine-on grid clears
the cache first, so that refine() fits at collocation points spread over
every grid interval, which pins the splines where the samples are sparse.
Measured on data seed 0 (bench/RESULTS.md), 'grid' gives a 3% to 5% lower
[2,1,1] test RMSE at G = 5, 10, 20 but 16% higher at G = 50, and a 26% to
96% higher [2,5,1] test RMSE at G = 5..50; so the default stays the training
inputs. These differences are of the size of the run-to-run spread of the
experiment itself: pykan on the same
data and seed moves by 10% to 25% at G = 5..20 and 2x at G = 50 with its
thread count alone, and between two runs with the same thread count on a
loaded machine (a different summation order, amplified by 1000 LBFGS steps);
bench/grid_extension_vs_pykan.py compares the two libraries over data seeds.

What dominates the test RMSE from G = 20 on. A few test points lie outside the
range of the training inputs, of x or of the hidden variable; the grids end at
the training range, and past the last knot a B-spline sum is no longer a
partition of unity, so those points get an error of order
coef * (distance / knot spacing)^3, which grows with G. On data seed 1 this
makes both pykan and kanext jump to test RMSE 5e-4..9e-4 at G = 20 and ~1e-2 at
G = 50; on the test points inside the training range the error keeps falling.
The same effect is why LBFGS keeps pykan's history of 10 pairs: 30 pairs
reach a lower training loss at every G and a lower test RMSE at G = 5..20,
but on data seeds 0 and 2 a 4x and 30x higher one at G = 50, almost all of
it from a single extrapolated test point.
"""
from __future__ import annotations

import argparse
import math
import os
import time

import torch

import kanext
from kanext.datasets import create_dataset

# pykan 0.2.8, float64, seed 0 (shared/DESIGN.md): test RMSE of [2,1,1] for G = 3, 5, 10, 20, 50
PYKAN_2_1_1 = {3: 1.7e-2, 5: 4.4e-3, 10: 4.3e-4, 20: 4.3e-5, 50: 2.8e-6}
# a first stage whose train RMSE is above STALL * std(train labels) has stalled
STALL = 0.1
# grid updates from the data every STOP_GRID_UPDATE_STEP // 10 steps until this step of each stage
# (the value of pykan's grid-extension tutorial; fit()'s default is 50)
STOP_GRID_UPDATE_STEP = 30


def target(x):
    return torch.exp(torch.sin(torch.pi * x[:, :1]) + x[:, 1:] ** 2)


def extend(model, G, refine_on="samples"):
    """model.refine(G), fitting the new splines at collocation points over the
    grid range (refine_on='grid') or at the last training inputs ('samples':
    refine's default and pykan's)."""
    if refine_on == "samples":
        return model.refine(G)
    if refine_on != "grid":
        raise ValueError(f"refine_on must be 'grid' or 'samples', got {refine_on!r}")
    cache = getattr(model, "cache_data", None)
    model.cache_data = None  # refine() then fits on collocation points
    try:
        return model.refine(G)
    finally:
        model.cache_data = cache


def run(width, grids, steps, restarts, dataset, log=print, refine_on="samples", on_stage=None):
    """Trains a width KAN through the grids (first stage with restarts, then
    extend + fit per stage); returns rows (G, train RMSE, test RMSE, seconds).
    on_stage(G, model), if given, is called after each stage's fit."""
    rows = []
    model = None
    for G in grids:
        t0 = time.perf_counter()
        if model is None:
            best = None
            stalled = STALL * float(dataset["train_label"].std())
            for seed in range(restarts):
                cand = kanext.KAN(width=width, grid=G, k=3, seed=seed, dtype=torch.float64)
                res = cand.fit(dataset, opt="LBFGS", steps=steps, stop_grid_update_step=STOP_GRID_UPDATE_STEP,
                               progress=False)
                if best is None or res["train_loss"][-1] < best[1]["train_loss"][-1]:
                    best = (cand, res)
                if res["train_loss"][-1] < stalled:
                    best = (cand, res)  # the first seed that did not stall
                    break
            model, res = best
        else:
            model = extend(model, G, refine_on)
            res = model.fit(dataset, opt="LBFGS", steps=steps, stop_grid_update_step=STOP_GRID_UPDATE_STEP,
                            progress=False)
        rows.append((G, res["train_loss"][-1], res["test_loss"][-1], time.perf_counter() - t0))
        if on_stage is not None:
            on_stage(G, model)
        log(f"  {str(width):9s} G={G:4d}  train RMSE {rows[-1][1]:.3e}  test RMSE {rows[-1][2]:.3e}  ({rows[-1][3]:.1f} s)")
    return rows


def slope(rows, lo=5, hi=50):
    """Least-squares slope of log test RMSE against log G over lo <= G <= hi."""
    pts = [(math.log(G), math.log(te)) for G, _, te, _ in rows if lo <= G <= hi]
    if len(pts) < 2:
        return float("nan")
    n = len(pts)
    mx = sum(p[0] for p in pts) / n
    my = sum(p[1] for p in pts) / n
    return sum((a - mx) * (b - my) for a, b in pts) / sum((a - mx) ** 2 for a, _ in pts)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="G = 3, 5, 10, 20 and 100 LBFGS steps per stage")
    p.add_argument("--grids", type=int, nargs="+", default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--restarts", type=int, default=3)
    p.add_argument("--refine-on", choices=["samples", "grid"], default="samples",
                   help="where refine() fits the new splines to the old: the last training inputs "
                        "(default, pykan's way) or collocation points over the grid")
    p.add_argument("--data-seed", type=int, default=0, help="seed of the train/test draw")
    p.add_argument("--widths", default="2,1,1;2,5,1", help="semicolon-separated widths")
    p.add_argument("--out", default="examples/out", help="folder for the plot")
    args = p.parse_args(argv)
    grids = args.grids or ([3, 5, 10, 20] if args.quick else [3, 5, 10, 20, 50, 100])
    steps = args.steps or (100 if args.quick else 200)
    widths = [[int(v) for v in w.split(",")] for w in args.widths.split(";")]

    dataset = create_dataset(target, n_var=2, train_num=1000, test_num=1000, seed=args.data_seed, dtype=torch.float64)
    results = {}
    for width in widths:
        results[str(width)] = run(width, grids, steps, args.restarts, dataset, refine_on=args.refine_on)

    print("\ntest RMSE")
    header = "G      " + "".join(f"{w:>14s}" for w in results) + "   pykan [2,1,1]"
    print(header)
    for i, G in enumerate(grids):
        ref = PYKAN_2_1_1.get(G)
        print(f"{G:<7d}" + "".join(f"{rows[i][2]:14.3e}" for rows in results.values())
              + (f"   {ref:.1e}" if ref else ""))
    for name, rows in results.items():
        print(f"fitted slope of log test RMSE vs log G, G=5..50, {name}: {slope(rows):.2f}")

    os.makedirs(args.out, exist_ok=True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    for name, rows in results.items():
        ax.loglog([r[0] for r in rows], [r[2] for r in rows], "o-", label=f"kanext {name}")
    ref = sorted(PYKAN_2_1_1.items())
    ax.loglog([g for g, _ in ref], [v for _, v in ref], "k--", alpha=0.5, label="pykan [2,1,1]")
    gs = torch.tensor(grids, dtype=torch.float64)
    ax.loglog(gs, 1e-1 * (gs / gs[0]) ** -4, ":", color="gray", label="G^-4")
    ax.set_xlabel("grid size G")
    ax.set_ylabel("test RMSE")
    ax.legend()
    fig.tight_layout()
    path = os.path.join(args.out, "grid_extension.png")
    fig.savefig(path, dpi=120)
    print(f"plot: {path}")
    return results


if __name__ == "__main__":
    main()
