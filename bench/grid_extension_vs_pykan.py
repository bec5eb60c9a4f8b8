#!/usr/bin/env python
"""The paper's grid-extension experiment in kanext and in pykan, over several
data seeds, in one process and on the same data.

    python bench/grid_extension_vs_pykan.py [--seeds 0 1 2 3 4] [--threads 2] [--json out.json]
    # on a loaded machine: one single-threaded process per seed, then the tables of all
    for S in 0 1 2 3 4; do python bench/grid_extension_vs_pykan.py --threads 1 --seeds $S --json s$S.json & done; wait
    python bench/grid_extension_vs_pykan.py --from-json s0.json s1.json s2.json s3.json s4.json

f(x, y) = exp(sin(pi x) + y^2), 1000 train / 1000 test points drawn with
kanext.create_dataset(seed=S) in float64 (bit-identical to pykan's own float64
draw), a [2,1,1] KAN in float64, LBFGS 200 steps per stage, G = 3, 5, 10, 20, 50.

- kanext: exactly examples/grid_extension.py (its run(): first stage with the
  restart rule, then model.refine(G) and fit per stage), imported, not copied.
- pykan 0.2.8: KAN(width, grid=3, k=3, seed=0), fit(dataset, opt='LBFGS',
  steps, stop_grid_update_step=<the example's value>), then model =
  model.refine(G) and fit per stage. pykan writes checkpoints into its cwd, so
  it runs in a temporary directory.

One run of either library on one data seed is a noisy figure: pykan's own
results on the same data move by 5% to 50% between runs (with the thread
count, and even between runs with the same one), a different summation order
amplified by 1000 LBFGS steps. So the comparison is per G over seeds: the
median and the geometric mean of the test RMSE, and their ratios kanext /
pykan (< 1: kanext better); also over the interior test points only (see
interior_rmse), since from G = 20 on a few test points outside the training
range decide the test RMSE. pykan's recipe has no restart rule: on data seed 3
its model seed 0 stalls at G = 3 (test RMSE 0.64), which dominates the
geometric means; bench/RESULTS.md gives the figures with and without it.
A pykan run took 3 to 9 minutes per seed here (2 cores, idle or loaded), kanext 10 to 70 s.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import math
import os
import statistics
import sys
import tempfile
import time

import torch

import kanext

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_example():
    """examples/grid_extension.py as a module (examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location("grid_extension", os.path.join(ROOT, "examples", "grid_extension.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def interior_rmse(model, dataset):
    """Test RMSE over the test points whose every input lies inside the range
    of the training inputs (the grids of the first layer end there; past the
    last knot a B-spline sum is no longer a partition of unity, so the few
    points outside get an error that grows with G). Leaves pykan's cache_data
    (what its refine() fits at) as it was."""
    x, y = dataset["test_input"], dataset["test_label"]
    lo, hi = dataset["train_input"].min(0).values, dataset["train_input"].max(0).values
    inside = ((x >= lo) & (x <= hi)).all(1)
    cache = getattr(model, "cache_data", None)
    with torch.no_grad():
        err = (model(x[inside]) - y[inside]).pow(2).mean()
    model.cache_data = cache
    return float(err.sqrt())


def run_pykan(kan, width, grids, steps, stop_grid_update_step, dataset):
    """pykan's grid extension on dataset; rows (G, train RMSE, test RMSE,
    interior test RMSE, seconds)."""
    rows = []
    old_dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # pykan builds its tensors in the default dtype
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # checkpoints ('./model') and anything else pykan writes
        try:
            model = None
            for G in grids:
                t0 = time.perf_counter()
                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                    model = kan.KAN(width=list(width), grid=G, k=3, seed=0) if model is None else model.refine(G)
                    res = model.fit(dataset, opt="LBFGS", steps=steps, stop_grid_update_step=stop_grid_update_step)
                sec = time.perf_counter() - t0
                rows.append((G, float(res["train_loss"][-1]), float(res["test_loss"][-1]),
                             interior_rmse(model, dataset), sec))
                print(f"  pykan G={G}: test RMSE {rows[-1][2]:.3e} ({sec:.0f} s)", flush=True)
        finally:
            os.chdir(cwd)
            torch.set_default_dtype(old_dtype)
    return rows


def run_kanext(ge, width, grids, steps, restarts, dataset):
    """examples/grid_extension.py's run(); rows (G, train RMSE, test RMSE,
    interior test RMSE, seconds)."""
    interior = {}
    rows = ge.run(list(width), grids, steps, restarts, dataset, log=lambda *_: None,
                  on_stage=lambda G, model: interior.__setitem__(G, interior_rmse(model, dataset)))
    return [(G, tr, te, interior[G], sec) for G, tr, te, sec in rows]


def geomean(vals):
    return math.exp(sum(math.log(v) for v in vals) / len(vals))


def summarise(results, grids, libs):
    """Per G: median and geometric mean over seeds of each library's figure,
    and their ratios kanext / pykan when both ran."""
    out = {}
    for G in grids:
        row = {}
        for lib in libs:
            vals = [results[s][lib][G] for s in results if lib in results[s]]
            if vals:
                row[lib] = {"median": statistics.median(vals), "geomean": geomean(vals), "n": len(vals)}
        if len(row) == 2:
            row["ratio"] = {m: row["kanext"][m] / row["pykan"][m] for m in ("median", "geomean")}
        out[G] = row
    return out


def print_tables(title, results, summary, seeds, grids, libs):
    """Per-seed table and over-seed summary of one figure (test or interior RMSE)."""
    print(f"\n{title} per data seed" + ("" if len(libs) == 1 else " (pykan / kanext)"))
    print("G    " + "".join(f"{'seed ' + str(s):>22s}" for s in seeds))
    for G in grids:
        print(f"{G:<5d}" + "".join(f"{' / '.join(f'{results[s][lib][G]:.2e}' for lib in libs):>22s}"
                                    for s in seeds))
    print(f"{title} over seeds" + ("" if len(libs) == 1 else "; ratio kanext / pykan (< 1: kanext better)"))
    head = "G    " + "".join(f"{lib + ' median':>15s}{lib + ' gmean':>15s}" for lib in libs)
    if len(libs) == 2:
        head += f"{'ratio median':>14s}{'ratio gmean':>13s}"
    print(head)
    for G in grids:
        row = summary[G]
        line = f"{G:<5d}" + "".join(f"{row[lib]['median']:15.3e}{row[lib]['geomean']:15.3e}" for lib in libs)
        if "ratio" in row:
            line += f"{row['ratio']['median']:14.3f}{row['ratio']['geomean']:13.3f}"
        print(line)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="data seeds")
    p.add_argument("--grids", type=int, nargs="+", default=[3, 5, 10, 20, 50])
    p.add_argument("--steps", type=int, default=200, help="LBFGS steps per stage")
    p.add_argument("--width", default="2,1,1")
    p.add_argument("--restarts", type=int, default=3, help="kanext first-stage restarts (the example's rule)")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads for both libraries")
    p.add_argument("--libs", default="pykan,kanext", help="comma-separated subset of pykan,kanext")
    p.add_argument("--json", default=None, help="write the per-seed results and the summary here (after every seed)")
    p.add_argument("--from-json", nargs="+", default=None, metavar="FILE",
                   help="run nothing: print the tables of earlier --json outputs (e.g. one per seed, run in "
                        "parallel), which must share grids, steps, width, restarts and threads")
    args = p.parse_args(argv)
    if args.from_json:
        return _from_json(args)
    libs = [v for v in args.libs.split(",") if v]
    if not libs or any(v not in ("pykan", "kanext") for v in libs):
        p.error(f"--libs must name pykan and/or kanext, got {args.libs!r}")
    width = [int(v) for v in args.width.split(",")]
    torch.set_num_threads(args.threads)
    ge = load_example()
    kan = None
    if "pykan" in libs:
        try:
            import kan
        except ImportError:
            sys.exit("pykan is not installed (pip install -r requirements/test.txt)")
    print(f"grid extension, {width}, float64, G={args.grids}, {args.steps} LBFGS steps per stage, "
          f"stop_grid_update_step={ge.STOP_GRID_UPDATE_STEP}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}, data seeds {args.seeds}", flush=True)

    raw = {}
    for s in args.seeds:
        dataset = kanext.create_dataset(ge.target, n_var=2, train_num=1000, test_num=1000, seed=s,
                                        dtype=torch.float64)
        raw[s] = {}
        for lib in libs:
            if lib == "pykan":
                rows = run_pykan(kan, width, args.grids, args.steps, ge.STOP_GRID_UPDATE_STEP, dataset)
            else:
                rows = run_kanext(ge, width, args.grids, args.steps, args.restarts, dataset)
            raw[s][lib] = rows
            slope = ge.slope([(G, tr, te, sec) for G, tr, te, _, sec in rows])
            print(f"seed {s} {lib:6s} test RMSE " + " ".join(f"{te:.3e}" for _, _, te, _, _ in rows)
                  + "   interior " + " ".join(f"{ti:.3e}" for _, _, _, ti, _ in rows)
                  + f"   slope G=5..50 {slope:.2f}   ({sum(r[4] for r in rows):.0f} s)", flush=True)
        if args.json:
            _write_json(args, libs, raw)
    return report(args, libs, raw)


def report(args, libs, raw):
    """Prints the tables of raw (seed -> lib -> rows) and writes --json;
    returns the per-seed figures and their summaries."""
    seeds = list(raw)
    test = {s: {lib: {r[0]: r[2] for r in rows} for lib, rows in per.items()} for s, per in raw.items()}
    interior = {s: {lib: {r[0]: r[3] for r in rows} for lib, rows in per.items()} for s, per in raw.items()}
    summary = summarise(test, args.grids, libs)
    summary_in = summarise(interior, args.grids, libs)
    print_tables("test RMSE", test, summary, seeds, args.grids, libs)
    print_tables("interior test RMSE", interior, summary_in, seeds, args.grids, libs)
    if args.json:
        _write_json(args, libs, raw)
        print(f"json: {args.json}")
    return test, summary, interior, summary_in


def _from_json(args):
    raw, config = {}, None
    keys = ("grids", "steps", "width", "restarts", "threads")
    for path in args.from_json:
        with open(path) as fh:
            doc = json.load(fh)
        cfg = {k: doc["config"][k] for k in keys}
        if config is not None and cfg != config:
            sys.exit(f"--from-json: {path} has config {cfg}, the earlier files {config}")
        config = cfg
        for s, per in doc["runs"].items():
            if int(s) in raw:
                sys.exit(f"--from-json: data seed {s} appears in more than one file")
            raw[int(s)] = {lib: [(r["G"], r["train_rmse"], r["test_rmse"], r["interior_test_rmse"], r["seconds"])
                                 for r in rows] for lib, rows in per.items()}
    raw = dict(sorted(raw.items()))
    libs = [lib for lib in ("pykan", "kanext") if all(lib in per for per in raw.values())]
    for k in keys:
        setattr(args, k, config[k])
    args.seeds = list(raw)
    print(f"from {len(args.from_json)} file(s): grid extension, [{config['width']}], G={config['grids']}, "
          f"{config['steps']} LBFGS steps per stage, {config['threads']} threads, data seeds {args.seeds}")
    return report(args, libs, raw)


def _write_json(args, libs, raw):
    test = {s: {lib: {r[0]: r[2] for r in rows} for lib, rows in per.items()} for s, per in raw.items()}
    interior = {s: {lib: {r[0]: r[3] for r in rows} for lib, rows in per.items()} for s, per in raw.items()}
    doc = {
        "config": {"seeds": args.seeds, "grids": args.grids, "steps": args.steps, "width": args.width,
                   "restarts": args.restarts, "threads": args.threads, "libs": libs, "torch": torch.__version__},
        "runs": {str(s): {lib: [{"G": G, "train_rmse": tr, "test_rmse": te, "interior_test_rmse": ti,
                                 "seconds": sec} for G, tr, te, ti, sec in rows] for lib, rows in per.items()}
                 for s, per in raw.items()},
        "summary_test_rmse": {str(G): row for G, row in summarise(test, args.grids, libs).items()},
        "summary_interior_test_rmse": {str(G): row for G, row in summarise(interior, args.grids, libs).items()},
    }
    with open(args.json, "w") as fh:
        json.dump(doc, fh, indent=1)


if __name__ == "__main__":
    main()
