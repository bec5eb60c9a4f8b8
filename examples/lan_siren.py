"""Appendix B.3 of the KAN paper at laptop scale: a LAN initialised from a
SIREN and fine-tuned fits an image better than the SIREN trained as long.

1. Fit a grayscale image (matplotlib's sample photo grace_hopper.jpg,
   resized to --size x --size) with a SIREN: Linear -> sin(w0 .) -> ... ->
   Linear, Adam, --steps steps.
2. Build a LAN computing the same function (kanext.LAN.from_mlp, node grids
   from the pixel coordinates' pre-activations) and fine-tune it --steps more
   steps; in parallel continue training a copy of the SIREN --steps steps.
3. Print the PSNR table and write the three reconstructions (and the target)
   to --out (default examples/out/).

    python examples/lan_siren.py            # 128 x 128, 2 x 64 hidden, 400 + 400 steps
    python examples/lan_siren.py --quick    # 32 x 32, a few seconds
"""
from __future__ import annotations

import argparse
import copy
import math
import os
import time

import torch
from torch import nn

import kanext


def load_image(size: int) -> torch.Tensor:
    """(size, size) grayscale in [0, 1] from matplotlib's sample data (area-averaged)."""
    import matplotlib.cbook as cbook
    import matplotlib.image as mimage

    img = torch.from_numpy(mimage.imread(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).copy())
    img = img.double().mean(-1) / 255.0  # (600, 512)
    side = min(img.shape)
    top, left = (img.shape[0] - side) // 2, (img.shape[1] - side) // 2
    img = img[top:top + side, left:left + side]
    return torch.nn.functional.interpolate(img[None, None], size=(size, size), mode="area")[0, 0].float()


def siren(hidden: int, layers: int, w0: float, seed: int) -> nn.Sequential:
    """SIREN (Sitzmann et al. 2020) with its initialisation."""
    g = torch.Generator().manual_seed(seed)
    mods, fan_in = [], 2
    for l in range(layers):
        lin = nn.Linear(fan_in, hidden)
        bound = 1.0 / fan_in if l == 0 else math.sqrt(6.0 / fan_in) / w0
        with torch.no_grad():
            lin.weight.copy_((torch.rand(lin.weight.shape, generator=g) * 2 - 1) * bound)
            lin.bias.copy_((torch.rand(lin.bias.shape, generator=g) * 2 - 1) / math.sqrt(fan_in))
        mods += [lin, kanext.Sine(w0)]
        fan_in = hidden
    last = nn.Linear(hidden, 1)
    with torch.no_grad():
        b = math.sqrt(6.0 / hidden) / w0
        last.weight.copy_((torch.rand(last.weight.shape, generator=g) * 2 - 1) * b)
        last.bias.zero_()
    return nn.Sequential(*mods, last)


def psnr(model, coords, target) -> float:
    with torch.no_grad():
        mse = float(((model(coords).clamp(0, 1) - target) ** 2).mean())
    return 10 * math.log10(1.0 / mse)


def train(model, coords, target, steps, lr):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        loss = ((model(coords) - target) ** 2).mean()
        loss.backward()
        opt.step()
    return model


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="32x32 image, 24 hidden, 150 + 150 steps")
    ap.add_argument("--size", type=int, default=None, help="image side (default 128; 32 with --quick)")
    ap.add_argument("--hidden", type=int, default=None, help="hidden width (default 64; 24 with --quick)")
    ap.add_argument("--layers", type=int, default=2, help="hidden sine layers")
    ap.add_argument("--w0", type=float, default=30.0)
    ap.add_argument("--steps", type=int, default=None, help="steps of each stage (default 400; 150 with --quick)")
    ap.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (SIREN and LAN linear weights)")
    ap.add_argument("--lan-lr", type=float, default=1e-3, help="Adam learning rate of the LAN activations")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "out"))
    args = ap.parse_args(argv)
    for name, full, quick in (("size", 128, 32), ("hidden", 64, 24), ("steps", 400, 150)):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    torch.manual_seed(args.seed)
    img = load_image(args.size)
    s = torch.linspace(-1, 1, args.size)
    coords = torch.stack(torch.meshgrid(s, s, indexing="ij"), -1).reshape(-1, 2)
    target = img.reshape(-1, 1)

    t0 = time.perf_counter()
    net = train(siren(args.hidden, args.layers, args.w0, args.seed), coords, target, args.steps, args.lr)
    p_start = psnr(net, coords, target)
    t1 = time.perf_counter()

    lan = kanext.LAN.from_mlp(net, samples=coords, tol=1e-7)
    with torch.no_grad():
        ref = net(coords)
        start_err = float((lan(coords) - ref).abs().max() / ref.abs().max())
    t2 = time.perf_counter()
    act_params = [p for n, p in lan.named_parameters() if ".act." in n]
    lin_params = [p for n, p in lan.named_parameters() if ".act." not in n]
    opt = torch.optim.Adam([{"params": lin_params, "lr": args.lr}, {"params": act_params, "lr": args.lan_lr}])
    for _ in range(args.steps):
        opt.zero_grad()
        ((lan(coords) - target) ** 2).mean().backward()
        opt.step()
    p_lan = psnr(lan, coords, target)
    t3 = time.perf_counter()
    cont = train(copy.deepcopy(net), coords, target, args.steps, args.lr)
    p_cont = psnr(cont, coords, target)
    t4 = time.perf_counter()

    n_siren = sum(p.numel() for p in net.parameters())
    n_lan = sum(p.numel() for p in lan.parameters())
    print(f"image {args.size}x{args.size}, SIREN {args.layers} x {args.hidden} hidden (w0={args.w0}), "
          f"{args.steps} steps per stage, LAN grids {lan.grid}, k={lan.k[0]}")
    print(f"LAN start: max relative difference from the SIREN {start_err:.2e} (float32)")
    print("| model | steps | params | PSNR dB | s |")
    print("|---|---:|---:|---:|---:|")
    print(f"| SIREN | {args.steps} | {n_siren} | {p_start:.2f} | {t1 - t0:.1f} |")
    print(f"| SIREN continued | {2 * args.steps} | {n_siren} | {p_cont:.2f} | {t4 - t3:.1f} |")
    print(f"| LAN from SIREN, fine-tuned | {args.steps} + {args.steps} | {n_lan} | {p_lan:.2f} | {t3 - t2:.1f} |")

    os.makedirs(args.out, exist_ok=True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with torch.no_grad():
        imgs = {"target": img, "siren": net(coords), "siren_continued": cont(coords), "lan": lan(coords)}
    for name, im in imgs.items():
        plt.imsave(os.path.join(args.out, f"lan_siren_{name}.png"),
                   im.reshape(args.size, args.size).clamp(0, 1).numpy(), cmap="gray", vmin=0, vmax=1)
    return {"siren": p_start, "siren_continued": p_cont, "lan": p_lan, "start_err": start_err}


if __name__ == "__main__":
    main()
