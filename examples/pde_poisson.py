"""The KAN paper's PDE example (Liu et al. 2024, Section 3.4): a physics-informed KAN.

Solves u_xx + u_yy = f on [-1, 1]^2 with u = 0 on the boundary, where
f = -pi^2 (1 + 4 y^2) sin(pi x) sin(pi y^2) + 2 pi sin(pi x) cos(pi y^2),
whose exact solution is u = sin(pi x) sin(pi y^2). A [2, 10, 1] KAN is trained
on the physics-informed loss alpha * mean(residual^2) + mean(u_boundary^2)
(alpha = 0.01, as in pykan's tutorial) with L-BFGS, its grid adapted to the
samples during the first stage and extended between stages (G = 5 -> 10 -> 20).
The Laplacian is two nested torch.autograd.grad calls through the fused
kernels (second-order derivatives of kan_linear, kanext.autodiff). An MLP
(tanh, two hidden layers, about as many parameters as the final KAN) is
trained on the same loss for the same number of L-BFGS steps.

Reports per stage the L2 and H1 errors against the exact solution on a
101 x 101 test mesh, and writes examples/out/pde_poisson.png.

    python examples/pde_poisson.py            # full run (a few minutes on 2 cores)
    python examples/pde_poisson.py --quick    # G = 5, 10 and fewer steps (CI)
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
from torch import nn

import kanext

PI = math.pi


def exact(x: torch.Tensor) -> torch.Tensor:
    return torch.sin(PI * x[:, 0]) * torch.sin(PI * x[:, 1] ** 2)


def exact_grad(x: torch.Tensor) -> torch.Tensor:
    a, b = x[:, 0], x[:, 1]
    return torch.stack([PI * torch.cos(PI * a) * torch.sin(PI * b ** 2),
                        2 * PI * b * torch.sin(PI * a) * torch.cos(PI * b ** 2)], 1)


def source(x: torch.Tensor) -> torch.Tensor:
    a, b = x[:, 0], x[:, 1]
    return (-PI ** 2 * (1 + 4 * b ** 2) * torch.sin(PI * a) * torch.sin(PI * b ** 2)
            + 2 * PI * torch.sin(PI * a) * torch.cos(PI * b ** 2))


def mesh(n: int, dtype) -> torch.Tensor:
    t = torch.linspace(-1, 1, n, dtype=dtype)
    X, Y = torch.meshgrid(t, t, indexing="ij")
    return torch.stack([X.reshape(-1), Y.reshape(-1)], 1)


def boundary(n: int, dtype) -> torch.Tensor:
    t = torch.linspace(-1, 1, n, dtype=dtype)
    one = torch.ones_like(t)
    return torch.cat([torch.stack([t, -one], 1), torch.stack([t, one], 1),
                      torch.stack([-one, t], 1), torch.stack([one, t], 1)])


def laplacian_and_grad(model, x: torch.Tensor, create_graph: bool = True):
    """(u, grad u, u_xx + u_yy) at x, by nested autograd."""
    x = x.detach().requires_grad_()
    u = model(x).reshape(-1)
    (g,) = torch.autograd.grad(u.sum(), x, create_graph=True)
    lap = 0
    for i in range(x.shape[1]):
        (h,) = torch.autograd.grad(g[:, i].sum(), x, create_graph=create_graph, retain_graph=True)
        lap = lap + h[:, i]
    return u, g, lap


def pinn_loss(model, x_in, x_bd, f_in, alpha):
    _, _, lap = laplacian_and_grad(model, x_in)
    pde = ((lap - f_in) ** 2).mean()
    bc = (model(x_bd).reshape(-1) ** 2).mean()
    return alpha * pde + bc, pde, bc


def errors(model, x_test):
    """(L2, H1) errors against the exact solution (root mean squares on the mesh)."""
    u, g, _ = laplacian_and_grad(model, x_test, create_graph=False)
    e_u = (u.detach() - exact(x_test)).pow(2).mean()
    e_g = (g.detach() - exact_grad(x_test)).pow(2).sum(1).mean()
    return math.sqrt(e_u), math.sqrt(e_u + e_g)


def train(model, steps, x_in, x_bd, f_in, alpha, update_grid_every=0):
    opt = torch.optim.LBFGS(model.parameters(), lr=1, history_size=10, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-32, tolerance_change=1e-32)
    last = {}
    for step in range(steps):
        if update_grid_every and step % update_grid_every == 0 and step < steps // 2:
            model.update_grid(x_in)

        def closure():
            opt.zero_grad()
            loss, pde, bc = pinn_loss(model, x_in, x_bd, f_in, alpha)
            loss.backward()
            last.update(pde=pde.detach().item(), bc=bc.detach().item())
            return loss

        opt.step(closure)
    return last


def mlp(width: int, dtype) -> nn.Module:
    return nn.Sequential(nn.Linear(2, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh(),
                         nn.Linear(width, 1)).to(dtype)


def n_params(m: nn.Module) -> int:
    """Trainable parameters that the forward uses (a KAN's symbolic-branch
    affines are unused while no edge is fixed)."""
    return sum(p.numel() for n, p in m.named_parameters() if p.requires_grad and "symbolic" not in n)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="G = 5, 10 and 20 steps per stage (CI)")
    ap.add_argument("--grids", type=int, nargs="+", default=None, help="grid sizes per stage (default 5 10 20)")
    ap.add_argument("--steps", type=int, default=None, help="L-BFGS steps per stage (default 50; quick 20)")
    ap.add_argument("--points", type=int, default=None,
                    help="points**2 random interior points, points per boundary side (default 31; quick 21)")
    ap.add_argument("--alpha", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out" / "pde_poisson.png")
    ap.add_argument("--no-plot", action="store_true")
    args = ap.parse_args(argv)
    grids = args.grids or ([5, 10] if args.quick else [5, 10, 20])
    steps = args.steps or (20 if args.quick else 50)
    pts = args.points or (21 if args.quick else 31)
    dtype = torch.float64
    torch.manual_seed(args.seed)

    # Interior points at random (seeded), not on a mesh: on a mesh each input takes
    # only `pts` distinct values, and a fine grid's splines are free between them.
    gen = torch.Generator().manual_seed(args.seed)
    x_in = torch.rand(pts * pts, 2, generator=gen, dtype=dtype) * 2 - 1
    x_bd = boundary(pts, dtype)
    f_in = source(x_in)
    x_test = mesh(101, dtype)

    model = kanext.KAN([2, 10, 1], grid=grids[0], k=3, seed=args.seed, dtype=dtype)
    rows = []
    t0 = time.perf_counter()
    for s, G in enumerate(grids):
        if s > 0:
            model = model.refine(G, x_in)
        last = train(model, steps, x_in, x_bd, f_in, args.alpha, update_grid_every=5 if s == 0 else 0)
        l2, h1 = errors(model, x_test)
        rows.append(dict(model="KAN [2,10,1]", G=G, params=n_params(model), pde=last["pde"], bc=last["bc"], l2=l2,
                         h1=h1, seconds=time.perf_counter() - t0))

    # two hidden layers of width w have w^2 + 5w + 1 parameters: match the final KAN
    net = mlp(max(4, int((-5 + math.sqrt(25 + 4 * (n_params(model) - 1))) / 2)), dtype)
    t0 = time.perf_counter()
    last = train(net, steps * len(grids), x_in, x_bd, f_in, args.alpha)
    l2, h1 = errors(net, x_test)
    rows.append(dict(model=f"MLP tanh 2x{net[0].out_features}", G="-", params=n_params(net), pde=last["pde"],
                     bc=last["bc"], l2=l2, h1=h1, seconds=time.perf_counter() - t0))

    print(f"Poisson, {len(x_in)} interior + {len(x_bd)} boundary points, {steps} L-BFGS steps per stage")
    print(f"{'model':<18} {'G':>3} {'params':>6} {'pde loss':>10} {'bc loss':>10} {'L2 err':>10} {'H1 err':>10} "
          f"{'time s':>7}")
    for r in rows:
        print(f"{r['model']:<18} {r['G']!s:>3} {r['params']:>6} {r['pde']:>10.3e} {r['bc']:>10.3e} {r['l2']:>10.3e} "
              f"{r['h1']:>10.3e} {r['seconds']:>7.1f}")

    if not args.no_plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        args.out.parent.mkdir(parents=True, exist_ok=True)
        n = 101
        with torch.no_grad():
            u = model(x_test).reshape(n, n)
            ue = exact(x_test).reshape(n, n)
        fig, ax = plt.subplots(1, 3, figsize=(13, 3.8))
        for a, img, title in zip(ax, (ue, u, (u - ue).abs()), ("exact u", f"KAN, G={grids[-1]}", "|error|")):
            im = a.imshow(img.T.numpy(), origin="lower", extent=(-1, 1, -1, 1), cmap="viridis")
            a.set_title(title)
            fig.colorbar(im, ax=a)
        fig.tight_layout()
        fig.savefig(args.out, dpi=110)
        print(f"wrote {args.out}")
    return {"rows": rows}


if __name__ == "__main__":
    main()
