"""Fitting special functions: KAN and MLP Pareto frontiers (KAN paper, Section 3.2, Fig. 3.2 and the
special-functions table), reduced.

    python examples/paper/special_functions.py --jobs 2   # full run (docs/paper.md), 2 processes
    python examples/paper/special_functions.py --quick    # CI size, well under a minute
    python examples/paper/special_functions.py --pykan    # also times pykan on one grid extension

The targets are 2-input special functions from ``scipy.special``. scipy is not a
dependency of kanext: it is installed as a dependency of scikit-learn, which
requirements/test.txt pins. Each model sees inputs t = (t1, t2) uniform on
[-1, 1]^2 (1000 train and 1000 test points, data seed 0, float64), mapped
affinely onto the function's arguments, in ranges where the function is
finite and smooth (the paper does not state its ranges):

- ``ellipj``:    sn(u | m) (ellipj's first output), u in [-1, 1], m in [0, 1]
- ``ellipkinc``: F(phi | m), incomplete elliptic integral of the 1st kind, phi in [-1, 1], m in [0, 1]
- ``ellipeinc``: E(phi | m), 2nd kind, phi in [-1, 1], m in [0, 1]
- ``jv``:        J_v(x), v in [0, 2], x in [1, 5]
- ``yv``:        Y_v(x), v in [0, 2], x in [1, 5]
- ``kv``:        K_v(x), v in [0, 2], x in [0.5, 2.5]
- ``lpmv0``:     P_v^0(x) (lpmv(0, v, x)), v in [0, 3], x in [-0.9, 0.9]
- ``lpmv1``:     P_v^1(x) (lpmv(1, v, x)), v in [0, 3], x in [-0.9, 0.9]

The default (full) run fits the first six; yv and lpmv1 on request
(``--functions``). For each function it trains KANs of fixed shapes (default
[2,1], [2,1,1], [2,2,1], [2,2,1,1], [2,3,1]) through grid extension (G = 3, 5,
10, 20, 50, 100, 200 by default, the paper's range; L-BFGS, ``--steps`` per grid, 50 by default; the
grid-extension code is toy_scaling.py's ``kan_scaling``, imported), every (shape, G) stage being one
point, and MLPs (kanext.MLP, silu) of depth 2 to 6 and width 5 and 100 (100
L-BFGS steps), and reports:

- the Pareto frontier of each family in the (parameters, test RMSE) plane;
- the smallest KAN shape (fewest edges) whose test RMSE gets below 1e-2,
  the paper's criterion for its "minimal KAN shape", and the smallest
  shape that reaches the paper's best KAN test RMSE for that function;
- the best KAN and the best MLP, next to the paper's figures (PAPER below).

The paper trains each KAN from G = 3 to 200 (200 L-BFGS steps per grid), 3
seeds per setting, with and without pruning, and MLPs of width 5 or 100 and
depth 2 to 6; here only fixed shapes, one seed, 50 steps per grid and 100 per MLP (time).
Parameters are trainable parameters (KAN: per edge G + k coefficients and 2
scales). Prints the tables, times each fit, writes a log-log plot (test RMSE
vs parameters, one panel per function) to examples/out/special_functions.png.
``main`` returns the numbers.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # toy_scaling, _common
from _common import pykan_sandbox, pyplot  # noqa: E402
from toy_scaling import kan_scaling, mlp_scaling  # noqa: E402  (the grid extension and MLP loops, shared)

from kanext.datasets import create_dataset  # noqa: E402



def _affine(t, lo, hi):
    return lo + (hi - lo) * (t + 1) / 2


def _scipy(fun, r1, r2):
    """A dataset function: (N, 2) inputs in [-1, 1]^2 -> (N, 1) fun(arg1, arg2), args mapped onto r1 x r2."""
    def f(x):
        import scipy.special  # noqa: F401  (imported here so that the module loads without scipy)

        a = _affine(x[:, 0], *r1).detach().cpu().double().numpy()
        b = _affine(x[:, 1], *r2).detach().cpu().double().numpy()
        return torch.as_tensor(fun(a, b), dtype=x.dtype, device=x.device)[:, None]
    return f


def _sp(name):
    def call(*args):
        import scipy.special as sp

        return getattr(sp, name)(*args)
    return call


# name: (scipy call, label, range of the 1st argument, range of the 2nd)
FUNCTIONS = {
    "ellipj": (lambda a, b: _sp("ellipj")(a, b)[0], "sn(u|m)", (-1.0, 1.0), (0.0, 1.0)),
    "ellipkinc": (_sp("ellipkinc"), "F(phi|m)", (-1.0, 1.0), (0.0, 1.0)),
    "ellipeinc": (_sp("ellipeinc"), "E(phi|m)", (-1.0, 1.0), (0.0, 1.0)),
    "jv": (_sp("jv"), "J_v(x)", (0.0, 2.0), (1.0, 5.0)),
    "yv": (_sp("yv"), "Y_v(x)", (0.0, 2.0), (1.0, 5.0)),
    "kv": (_sp("kv"), "K_v(x)", (0.0, 2.0), (0.5, 2.5)),
    "lpmv0": (lambda a, b: _sp("lpmv")(0, a, b), "P_v^0(x)", (0.0, 3.0), (-0.9, 0.9)),
    "lpmv1": (lambda a, b: _sp("lpmv")(1, a, b), "P_v^1(x)", (0.0, 3.0), (-0.9, 0.9)),
}

# The paper's special-functions table (arXiv 2404.19756; captioned "Table 1: Special functions" in
# the text of the paper consulted, which issue 17 calls Table 2): minimal KAN shape with test RMSE < 1e-2
# and its RMSE, best KAN shape and its RMSE, best MLP RMSE. Its ranges and data sizes are not stated.
PAPER = {
    "ellipj": ("[2,2,1]", 7.29e-3, "[2,3,2,1,1]", 1.33e-4, 6.48e-4),
    "ellipkinc": ("[2,2,1,1]", 1.00e-3, "[2,2,1,1,1]", 1.24e-4, 5.52e-4),
    "ellipeinc": ("[2,2,1,1]", 8.36e-5, "[2,2,1,1]", 8.26e-5, 3.04e-4),
    "jv": ("[2,2,1]", 4.93e-3, "[2,3,1,1,1]", 1.64e-3, 5.52e-3),
    "yv": ("[2,3,1]", 1.89e-3, "[2,2,2,1]", 1.49e-5, 3.45e-4),
    "kv": ("[2,1,1]", 4.89e-3, "[2,2,1]", 2.52e-5, 1.67e-4),
    "lpmv0": ("[2,2,1]", 5.25e-5, "[2,2,1]", 5.25e-5, 1.74e-2),
    "lpmv1": ("[2,4,1]", 6.90e-4, "[2,4,1]", 6.90e-4, 1.50e-3),
}

SHAPES = ([2, 1], [2, 1, 1], [2, 2, 1], [2, 2, 1, 1], [2, 3, 1])
# the functions of the default (full) run; yv and lpmv1 on request (--functions)
FULL = ("ellipj", "ellipkinc", "ellipeinc", "jv", "kv", "lpmv0")
# the full run's grids (the paper's range, G = 3 to 200) and MLPs (the paper's depths 2 to 6 and widths 5 and 100)
FULL_GRIDS = (3, 5, 10, 20, 50, 100, 200)
MLP_DEPTHS = (2, 3, 4, 5, 6)
MLP_WIDTHS = (5, 100)


def n_edges(width):
    return sum(a * b for a, b in zip(width[:-1], width[1:]))


def make_dataset(name, train_num=1000, test_num=1000, seed=0):
    fun, _, r1, r2 = FUNCTIONS[name]
    return create_dataset(_scipy(fun, r1, r2), n_var=2, train_num=train_num, test_num=test_num, seed=seed,
                          dtype=torch.float64)


def pareto(points):
    """The points (params, rmse, ...) not beaten by a point with at most as many parameters, by params."""
    front = []
    for p in sorted(points, key=lambda p: (p[0], p[1])):
        if math.isfinite(p[1]) and (not front or p[1] < front[-1][1]):
            front.append(p)
    return front


def smallest_reaching(kan, target):
    """(shape, G, params, test RMSE) of the first stage at or below target, shapes by number of edges, then G;
    None if no stage gets there."""
    for key in sorted(kan, key=lambda k: (n_edges(kan[k]["width"]), len(kan[k]["width"]))):
        for row in kan[key]["rows"]:
            if row["test"] <= target:
                return kan[key]["width"], row["G"], row["params"], row["test"]
    return None


def run_pykan(width, grids, steps, ds):
    """pykan 0.2.8's grid extension of width on ds (KAN(grid=3, seed=0), fit, then refine(G) and fit,
    stop_grid_update_step=30 as kan_scaling) in a temporary working directory (pykan writes checkpoints
    into its cwd) and float64 default dtype. Returns (rows (G, test RMSE, seconds), total seconds) or
    None when pykan is not installed."""
    try:
        import kan as pykan
    except Exception:
        return None
    rows = []
    with pykan_sandbox():
        model = None
        for G in grids:
            t0 = time.perf_counter()
            model = pykan.KAN(width=list(width), grid=G, k=3, seed=0) if model is None else model.refine(G)
            res = model.fit(ds, opt="LBFGS", steps=steps, stop_grid_update_step=30, log=10**9)
            rows.append((G, float(res["test_loss"][-1]), time.perf_counter() - t0))
    return rows, sum(r[2] for r in rows)


def run_function(name, shapes, grids, steps, restarts, depths, widths, mlp_steps, train_num, log=None):
    """KAN grid extensions of each shape and the MLPs on one function; (result dict, log lines).
    log: print each line as it comes (else they are only returned, e.g. from a worker process)."""
    lines = []

    def say(*a):
        lines.append(" ".join(str(v) for v in a))
        if log is not None:
            log(*a)

    ds = make_dataset(name, train_num=train_num)
    fun, label, r1, r2 = FUNCTIONS[name]
    say(f"{name}: {label}, arg1 in {list(r1)}, arg2 in {list(r2)}; KANs {steps} L-BFGS steps per grid, "
        f"MLPs {mlp_steps}")
    kan = {}
    for width in shapes:
        t0 = time.perf_counter()
        rows = kan_scaling(width, grids, steps, restarts, ds, say)
        kan[str(width)] = {"width": width, "rows": rows, "secs": time.perf_counter() - t0}
    t0 = time.perf_counter()
    mlp = mlp_scaling(2, depths, widths, mlp_steps, ds, say)
    mlp_secs = time.perf_counter() - t0
    kan_pts = [(r["params"], r["test"], v["width"], r["G"]) for v in kan.values() for r in v["rows"]]
    mlp_pts = [(m["params"], m["test"], m["depth"], m["width"]) for m in mlp]
    paper = PAPER[name]
    r = {
        "kan": kan, "mlp": mlp, "kan_front": pareto(kan_pts), "mlp_front": pareto(mlp_pts),
        "best_kan": min(kan_pts, key=lambda t: t[1]),
        "best_mlp": min((m for m in mlp_pts if math.isfinite(m[1])), key=lambda t: t[1], default=(0, float("nan"))),
        "min_shape": smallest_reaching(kan, 1e-2), "paper_shape": smallest_reaching(kan, paper[3]), "paper": paper,
        "kan_secs": sum(v["secs"] for v in kan.values()), "mlp_secs": mlp_secs,
    }
    say("  KAN frontier: " + ", ".join(f"{str(w).replace(' ', '')} G={G} ({n}) {t:.2e}" for n, t, w, G in r["kan_front"]))
    say("  MLP frontier: " + ", ".join(f"depth {d} width {w} ({n}) {t:.2e}" for n, t, d, w in r["mlp_front"]))
    say(f"  KAN fits {r['kan_secs']:.1f} s, MLP fits {r['mlp_secs']:.1f} s")
    return r, lines


def _in_worker(name, cfg):
    torch.set_num_threads(1)  # --jobs processes, one core each
    return run_function(name, **cfg)


def _fmt_hit(hit):
    if hit is None:
        return "none"
    w, G, n, t = hit
    return f"{str(w).replace(' ', '')} G={G} ({n}) {t:.2e}"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="CI size: lpmv0, ellipeinc and jv; shapes [2,1] [2,2,1]; G = 3, 5, 10; 30 steps; 2 seeds; "
                        "2 MLPs")
    p.add_argument("--functions", default=None, help="comma-separated subset of " + ",".join(FUNCTIONS))
    p.add_argument("--shapes", default=None, help="KAN shapes, e.g. '2,1 2,2,1 2,3,2,1'")
    p.add_argument("--grids", type=int, nargs="+", default=None, help="default 3 5 10 20 50 100 200 (the paper's range)")
    p.add_argument("--steps", type=int, default=None, help="L-BFGS steps per grid (default 50; quick 30)")
    p.add_argument("--restarts", type=int, default=None,
                   help="seeds tried at G=3, the lowest train RMSE kept (default 1; quick 2: with one seed, whether "
                        "[2,2,1] fits lpmv0 at quick size hangs on the kernels' last bits)")
    p.add_argument("--mlp-depths", type=int, nargs="+", default=None, help="default 2 3 4 5 6 (the paper's)")
    p.add_argument("--mlp-widths", type=int, nargs="+", default=None, help="default 5 100 (the paper's)")
    p.add_argument("--mlp-steps", type=int, default=None, help="L-BFGS steps per MLP (default 100; quick 50)")
    p.add_argument("--train-num", type=int, default=1000)
    p.add_argument("--jobs", type=int, default=1, help="worker processes, one function each (one thread each)")
    p.add_argument("--pykan", action="store_true",
                   help="also run pykan's grid extension of --pykan-shape on the first function and time both")
    p.add_argument("--pykan-shape", default="2,2,1")
    p.add_argument("--out", default="examples/out", help="folder for the plot")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    say = (lambda *a: None) if args.quiet else print
    q = args.quick
    names = (args.functions or ("lpmv0,ellipeinc,jv" if q else ",".join(FULL))).split(",")
    shapes = ([[int(v) for v in s.split(",")] for s in args.shapes.split()] if args.shapes
              else ([[2, 1], [2, 2, 1]] if q else [list(s) for s in SHAPES]))
    grids = args.grids or ([3, 5, 10] if q else list(FULL_GRIDS))
    steps = args.steps or (30 if q else 50)
    depths = args.mlp_depths or ([2, 3] if q else list(MLP_DEPTHS))
    widths = args.mlp_widths or ([5] if q else list(MLP_WIDTHS))
    mlp_steps = args.mlp_steps or (50 if q else 100)
    quiet_log = lambda *a: None  # noqa: E731

    restarts = args.restarts or (2 if q else 1)
    cfg = dict(shapes=shapes, grids=grids, steps=steps, restarts=restarts, depths=depths, widths=widths,
               mlp_steps=mlp_steps, train_num=args.train_num)
    results = {}
    t_all = time.perf_counter()
    if args.jobs > 1 and len(names) > 1:
        import concurrent.futures as cf
        import multiprocessing as mp

        with cf.ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("spawn")) as pool:
            futs = {name: pool.submit(_in_worker, name, cfg) for name in names}
            for name in names:  # in order, as they finish
                results[name], lines = futs[name].result()
                for line in lines:
                    say(line)
    else:
        for name in names:
            results[name], lines = run_function(name, log=say, **cfg)
    total = time.perf_counter() - t_all

    say("\ntest RMSE per KAN shape (best over G; in brackets the G) and per MLP")
    say(f"{'function':10s} " + "".join(f"{str(w).replace(' ', ''):>18s}" for w in shapes))
    for name, r in results.items():
        cells = []
        for width in shapes:
            rows = r["kan"][str(width)]["rows"]
            b = min(rows, key=lambda x: x["test"])
            cells.append(f"{b['test']:.2e} (G={b['G']})")
        say(f"{name:10s} " + "".join(f"{c:>18s}" for c in cells))

    say("\nsummary (params in brackets; 'paper' = the paper's table)")
    say(f"{'function':10s} {'smallest KAN < 1e-2':30s} {'paper':22s} {'smallest KAN <= paper best':30s} "
        f"{'best KAN':30s} {'paper best KAN':22s} {'best MLP':16s} {'paper MLP':9s}")
    for name, r in results.items():
        pp = r["paper"]
        w, G = r["best_kan"][2], r["best_kan"][3]
        say(f"{name:10s} {_fmt_hit(r['min_shape']):30s} {pp[0] + ' ' + format(pp[1], '.2e'):22s} "
            f"{_fmt_hit(r['paper_shape']):30s} "
            f"{str(w).replace(' ', '') + ' G=' + str(G) + ' (' + str(r['best_kan'][0]) + ') ' + format(r['best_kan'][1], '.2e'):30s} "
            f"{pp[2] + ' ' + format(pp[3], '.2e'):22s} {format(r['best_mlp'][1], '.2e') + ' (' + str(r['best_mlp'][0]) + ')':16s} "
            f"{pp[4]:.2e}")
    say(f"total {total:.1f} s (KAN fits {sum(r['kan_secs'] for r in results.values()):.1f} s, "
        f"MLP fits {sum(r['mlp_secs'] for r in results.values()):.1f} s)")
    out = {"functions": results, "secs": total, "shapes": shapes, "grids": grids}

    if args.pykan:
        name = names[0]
        width = [int(v) for v in args.pykan_shape.split(",")]
        ds = make_dataset(name, train_num=args.train_num)
        t0 = time.perf_counter()
        ours = kan_scaling(width, grids, steps, 1, ds, quiet_log)
        ours_secs = time.perf_counter() - t0
        pk = run_pykan(width, grids, steps, ds)
        if pk is None:
            say("pykan not installed: skipped")
        else:
            rows, secs = pk
            out["pykan"] = {"function": name, "width": width, "rows": rows, "secs": secs,
                            "kanext": [(r["G"], r["test"], r["secs"]) for r in ours], "kanext_secs": ours_secs}
            say(f"\npykan MultKAN vs kanext, {name}, KAN {width}, G = {grids}, {steps} steps per grid, seed 0:")
            say(f"  pykan : {secs:.2f} s, test RMSE " + " ".join(f"{t:.2e}" for _, t, _ in rows))
            say(f"  kanext: {ours_secs:.2f} s, test RMSE " + " ".join(f"{r['test']:.2e}" for r in ours)
                + f"  (pykan / kanext time {secs / ours_secs:.1f}x)")

    os.makedirs(args.out, exist_ok=True)
    plt = pyplot()

    n = len(results)
    cols = min(n, 4)
    rws = (n + cols - 1) // cols
    fig, axes = plt.subplots(rws, cols, figsize=(4.0 * cols, 3.5 * rws), squeeze=False)
    for ax, (name, r) in zip(axes.flat, results.items()):
        kp = [(a, b) for v in r["kan"].values() for a, b in ((row["params"], row["test"]) for row in v["rows"])]
        ax.loglog([a for a, _ in kp], [b for _, b in kp], "o", color="C0", alpha=0.25, ms=3)
        ax.loglog([a for a, *_ in r["kan_front"]], [b for _, b, *_ in r["kan_front"]], "o-", color="C0",
                  label="KAN frontier")
        mp = [(m["params"], m["test"]) for m in r["mlp"] if math.isfinite(m["test"])]
        ax.loglog([a for a, _ in mp], [b for _, b in mp], "s", color="C3", alpha=0.25, ms=3)
        ax.loglog([a for a, *_ in r["mlp_front"]], [b for _, b, *_ in r["mlp_front"]], "s--", color="C3",
                  label="MLP frontier")
        ax.axhline(r["paper"][3], color="C0", ls=":", lw=1, label="paper: best KAN")
        ax.axhline(r["paper"][4], color="C3", ls=":", lw=1, label="paper: best MLP")
        ax.set_title(f"{name}: {FUNCTIONS[name][1]}")
        ax.set_xlabel("parameters")
        ax.set_ylabel("test RMSE")
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    path = os.path.join(args.out, "special_functions.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    say(f"plot: {path}")
    out["plot"] = path
    return out


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
