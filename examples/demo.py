"""kanext demo: a KAN learns f(x, y) = exp(sin(pi x) + y^2).

    bash run.sh demo            (or: python examples/demo.py [--steps N] [--grids 5 10 20])

Builds a [2, 5, 1] KAN, trains it with L-BFGS on 1000 points in [-1, 1]^2
(grid updates from the data included), extends its grid 5 -> 10 -> 20
(model.refine) and trains again after each extension, printing the test RMSE
of every stage. float64 on the CPU; well under a minute on 2 cores.
"""
import argparse
import time

import torch

import kanext


def target(x):
    return torch.exp(torch.sin(torch.pi * x[:, :1]) + x[:, 1:] ** 2)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=50, help="L-BFGS steps per grid stage")
    p.add_argument("--grids", type=int, nargs="+", default=[5, 10, 20])
    args = p.parse_args()

    dataset = kanext.create_dataset(target, n_var=2, train_num=1000, test_num=1000, seed=0, dtype=torch.float64)
    model = kanext.KAN(width=[2, 5, 1], grid=args.grids[0], k=3, seed=0, dtype=torch.float64)
    t0 = time.perf_counter()
    for i, G in enumerate(args.grids):
        if i:
            model = model.refine(G)
        res = model.fit(dataset, opt="LBFGS", steps=args.steps, stop_grid_update_step=30, progress=False)
        print(f"G={G:3d}  train RMSE {res['train_loss'][-1]:.3e}  test RMSE {res['test_loss'][-1]:.3e}"
              f"  ({time.perf_counter() - t0:.1f} s)")
    print(f"final test RMSE: {res['test_loss'][-1]:.3e}")


if __name__ == "__main__":
    main()
