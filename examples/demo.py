"""kanext demo: a [2, 5, 1] KAN learns f(x, y) = exp(sin(pi x) + y^2).

    bash run.sh demo            (or: python examples/demo.py [--steps N])

Builds the KAN, trains it with LBFGS on 1000 points in [-1, 1]^2, extends
the grid 5 -> 10 -> 20 by refitting a finer KAN to the coarse one, and prints
the test RMSE after each stage (float64, CPU, well under a minute).
"""
import argparse
import time

import torch

import kanext


def target(x):
    return torch.exp(torch.sin(torch.pi * x[:, :1]) + x[:, 1:] ** 2)


def lbfgs(model, x, y, steps):
    opt = torch.optim.LBFGS(model.parameters(), lr=1.0, history_size=10, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-32, tolerance_change=1e-32)

    def closure():
        opt.zero_grad()
        loss = torch.mean((model(x) - y) ** 2)
        loss.backward()
        return loss

    for _ in range(steps):
        opt.step(closure)


def rmse(model, x, y):
    with torch.no_grad():
        return torch.sqrt(torch.mean((model(x) - y) ** 2)).item()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=50, help="LBFGS steps per grid stage")
    p.add_argument("--grids", type=int, nargs="+", default=[5, 10, 20])
    args = p.parse_args()

    dtype = torch.float64
    g = torch.Generator().manual_seed(0)
    x_train = torch.rand(1000, 2, generator=g, dtype=dtype) * 2 - 1
    x_test = torch.rand(1000, 2, generator=g, dtype=dtype) * 2 - 1
    y_train, y_test = target(x_train), target(x_test)

    model = None
    t0 = time.perf_counter()
    for G in args.grids:
        new = kanext.KAN(width=[2, 5, 1], grid=G, k=3, seed=0, dtype=dtype)
        if model is not None:  # grid extension: start the finer KAN from the coarse one's function
            with torch.no_grad():
                new.load_state_dict({k: v for k, v in model.state_dict().items() if "act_fun" not in k}, strict=False)
            lbfgs_fit_to(new, model, x_train, args.steps)
        lbfgs(new, x_train, y_train, args.steps)
        model = new
        print(f"G={G:3d}  train RMSE {rmse(model, x_train, y_train):.3e}  test RMSE {rmse(model, x_test, y_test):.3e}"
              f"  ({time.perf_counter() - t0:.1f} s)")
    print(f"final test RMSE: {rmse(model, x_test, y_test):.3e}")


def lbfgs_fit_to(new, old, x, steps):
    with torch.no_grad():
        y = old(x)
    lbfgs(new, x, y, steps)


if __name__ == "__main__":
    main()
