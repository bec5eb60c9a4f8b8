"""Interpretability: train with sparsity, look at the network, prune it.

    python examples/pruning.py [--cases sqrt xy sin] [--steps 50] [--out examples/out]

Three of the paper's checks, float64 on the CPU, about half a minute on 2 cores:

- sqrt: f = sqrt((x1 - x2)^2 + (x3 - x4)^2) on a [4, 3, 3, 1] KAN prunes to at
  most [4, 2, 1, 1] (two squared differences, one sum, one sqrt);
- xy:   f = x * y on [2, 5, 1] prunes to [2, 2, 1] (x*y = ((x+y)^2 - (x-y)^2) / 4);
- sin:  f = x0^2 + sin(pi x1) with two irrelevant inputs on [4, 5, 1]: prune,
  drop the irrelevant inputs, extend the grid and re-fit.

Pruning drops the (nearly constant) outputs of the removed nodes, as pykan
does, so the pruned model's error is larger until the re-fit: the pruned
model is trained on its own grid, then refined and trained again (retraining
straight after the refine can stall far from the minimum: with pykan's L-BFGS
line search the sqrt case did, at test RMSE 0.34).

For each case it writes <out>/pruning_<case>_trained.png and
<out>/pruning_<case>_pruned.png (model.plot) and prints the widths and test RMSEs.
"""
import argparse
import os
import time

import torch

import kanext

HERE = os.path.dirname(os.path.abspath(__file__))

CASES = {
    # name: (function, n_var, width, seed, input names, grid of the re-fit)
    "sqrt": (lambda x: torch.sqrt((x[:, [0]] - x[:, [1]]) ** 2 + (x[:, [2]] - x[:, [3]]) ** 2), 4, [4, 3, 3, 1], 1,
             ["x1", "x2", "x3", "x4"], 5),  # sqrt's kink at 0 does not favour fine grids
    "xy": (lambda x: x[:, [0]] * x[:, [1]], 2, [2, 5, 1], 0, ["x", "y"], 10),
    "sin": (lambda x: x[:, [0]] ** 2 + torch.sin(torch.pi * x[:, [1]]), 4, [4, 5, 1], 1, ["x0", "x1", "x2", "x3"], 10),
}


def rmse(model, x, y):
    with torch.no_grad():
        return float(torch.sqrt(torch.mean((model(x) - y) ** 2)))


def run_case(name, steps, out, lamb=1e-3):
    f, n_var, width, seed, names, refit_grid = CASES[name]
    ds = kanext.create_dataset(f, n_var=n_var, train_num=1000, test_num=1000, seed=0, dtype=torch.float64)
    model = kanext.KAN(width, grid=3, k=3, seed=seed, dtype=torch.float64)
    t0 = time.perf_counter()
    model.fit(ds, steps=steps, lamb=lamb, progress=False)
    row = {"trained_rmse": rmse(model, ds["test_input"], ds["test_label"])}
    model.plot(in_vars=names, out_vars=["f"], title=f"{name}: trained").savefig(
        os.path.join(out, f"pruning_{name}_trained.png"), dpi=100)
    pruned = model.prune()
    inputs = list(range(n_var))
    if name == "sin":
        pruned = pruned.prune_input()
        inputs = pruned.input_id.tolist()
    ds2 = {k: (v[:, inputs] if k.endswith("input") else v) for k, v in ds.items()}
    row["width"] = pruned.width
    row["inputs"] = inputs
    row["pruned_rmse"] = rmse(pruned, ds2["test_input"], ds2["test_label"])
    pruned.plot(in_vars=[names[i] for i in inputs], out_vars=["f"], title=f"{name}: pruned").savefig(
        os.path.join(out, f"pruning_{name}_pruned.png"), dpi=100)
    # as in the paper: retrain the pruned model on its own grid first (pruning leaves it far from a
    # minimum: its removed edges carried part of the function), then refine the grid and fit again
    pruned.fit(ds2, steps=steps, progress=False)
    refit = pruned.refine(refit_grid)
    refit.fit(ds2, steps=steps, progress=False)
    row["refit_rmse"] = rmse(refit, ds2["test_input"], ds2["test_label"])
    row["seconds"] = time.perf_counter() - t0
    print(f"{name:5s} {width} -> {pruned.width} (inputs {inputs}); test RMSE trained {row['trained_rmse']:.2e}, "
          f"pruned {row['pruned_rmse']:.2e}, pruned + G={refit_grid} re-fit {row['refit_rmse']:.2e}  ({row['seconds']:.1f} s)")
    return row


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--steps", type=int, default=50, help="L-BFGS steps for the sparse fit and for the re-fit")
    p.add_argument("--out", default=os.path.join(HERE, "out"))
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    return {name: run_case(name, args.steps, args.out) for name in args.cases}


if __name__ == "__main__":
    main()
