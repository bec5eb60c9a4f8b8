"""Hello, KAN: from data to the formula f(x_1, x_2) = exp(sin(pi x_1) + x_2^2).

    bash run.sh demo                (or: python examples/hello_kan.py [--seed S] [--quiet])

The KAN paper's first example, step by step, in float64 on the CPU:

1. a [2, 5, 1] KAN with G=3 is fitted with L-BFGS and a small sparsity penalty
   (lamb=1e-3), so that unneeded edges fade;
2. ``prune()`` cuts it down to the nodes that matter (expected: [2, 1, 1]) and
   a short re-fit recovers the accuracy;
3. ``refine(10)`` extends the grid to G=10 and the model is fitted again;
4. ``auto_symbolic`` replaces every edge by its best match from a small
   library (x, x^2, x^3, x^4, exp, log, sqrt, tanh, sin, abs), and a last
   fit tunes the constants of the symbolic edges;
5. ``symbolic_formula()`` prints the formula, which should read
   exp(x_2^2 + sin(3.1416 x_1)) up to the rounding of its constants.

Prints every stage's test RMSE and the formula; exits with status 1 if the
final test RMSE is not below 1e-6 or the formula (with unrounded constants)
does not evaluate to the target within 1e-6 on the test points, so the
README's demo command doubles as a check. About 10 s on 2 cores.
"""
from __future__ import annotations

import argparse
import time

import torch

import kanext

LIB = ["x", "x^2", "x^3", "x^4", "exp", "log", "sqrt", "tanh", "sin", "abs"]


def target(x):
    return torch.exp(torch.sin(torch.pi * x[:, :1]) + x[:, 1:] ** 2)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=0, help="seed of the initial KAN")
    p.add_argument("--steps", type=int, default=50, help="L-BFGS steps per stage")
    p.add_argument("--quiet", action="store_true", help="print only the summary")
    args = p.parse_args(argv)
    say = (lambda *a: None) if args.quiet else print

    dataset = kanext.create_dataset(target, n_var=2, train_num=1000, test_num=1000, seed=0, dtype=torch.float64)
    t0 = time.perf_counter()
    stages = []

    def fit(model, what, **kw):
        res = model.fit(dataset, opt="LBFGS", steps=args.steps, progress=False, **kw)
        stages.append((what, list(model.width), res["test_loss"][-1]))
        say(f"{what:28s} width {str(model.width):10s} test RMSE {res['test_loss'][-1]:.3e}"
            f"  ({time.perf_counter() - t0:.1f} s)")
        return res

    model = kanext.KAN(width=[2, 5, 1], grid=3, k=3, seed=args.seed, dtype=torch.float64)
    fit(model, "1. fit, lamb=1e-3", lamb=1e-3)
    model = model.prune()
    fit(model, "2. prune + fit")
    model = model.refine(10)
    fit(model, "3. refine to G=10 + fit")
    model.auto_symbolic(lib=LIB, verbose=0 if args.quiet else 1)
    fit(model, "4. auto_symbolic + fit", update_grid=False)

    formula = model.symbolic_formula(floating_digits=4)[0][0]
    print(f"formula: {formula}")
    x = dataset["test_input"]
    exact = model.symbolic_formula(floating_digits=None)[0][0]  # unrounded constants: equals the model
    f = kanext.symbolic.to_torch(exact, [f"x_{i + 1}" for i in range(2)])
    formula_rmse = float(torch.sqrt(torch.mean((f(x).reshape(-1, 1) - dataset["test_label"]) ** 2)))
    final = stages[-1][2]
    print(f"final test RMSE: {final:.3e} (formula vs target on the test points: {formula_rmse:.3e})")
    ok = final < 1e-6 and formula_rmse < 1e-6
    return {"stages": stages, "formula": formula, "final_rmse": final, "formula_rmse": formula_rmse, "ok": ok}


if __name__ == "__main__":
    raise SystemExit(0 if main()["ok"] else 1)
