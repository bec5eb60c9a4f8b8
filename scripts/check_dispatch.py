#!/usr/bin/env python3
"""What the dispatcher holds for every kanext op, checked against what it should hold.

    python scripts/check_dispatch.py            # the CPU build: CPU, Autograd, fake kernels
    python scripts/check_dispatch.py --cuda     # a CUDA build (no GPU needed): also CUDA kernels

Every ``kanext::`` operator must have a CPU kernel, a CUDA kernel (with
--cuda), an Autograd kernel (C++ in csrc/autograd.cpp, or Python in
kanext/autodiff.py) and a fake (meta) implementation (kanext/ops.py, for
torch.compile and export). AutocastCUDA rules must be exactly AUTOCAST_CUDA:
kan_linear_forward casts x, Wb, Wc to the autocast dtype (the tensor-core
path); every other op keeps its inputs' dtypes under autocast, on purpose:
the backward ops receive the dtypes their forward saw, and the statistics and
evaluation ops (edge_stats, *_eval, spline_activation, edge_product) compute
in the inputs' dtype. An op added without its kernels, or a rule added or
lost, fails here with the op named.

Used by CI (scripts/ci_cuda_build.sh, on the CUDA build) and by
scripts/gpu_check.sh. Exit status 1 on any mismatch.
"""
from __future__ import annotations

import argparse
import sys

import torch

AUTOCAST_CUDA = {"kan_linear_forward"}


def table() -> dict[str, dict[str, bool]]:
    """{op name without the namespace: {dispatch key: has a kernel}}."""
    import kanext  # noqa: F401  (loads the extension and the Python registrations)
    from torch._library import simple_registry

    has = torch._C._dispatch_has_kernel_for_dispatch_key
    out = {}
    for full in sorted(n for n in torch._C._dispatch_get_all_op_names() if n.startswith("kanext::")):
        row = {key: bool(has(full, key)) for key in ("CPU", "CUDA", "Autograd", "AutocastCUDA")}
        row["fake"] = simple_registry.singleton.find(full).fake_impl.kernel is not None
        out[full.split("::", 1)[1]] = row
    return out


def problems(rows: dict[str, dict[str, bool]], cuda: bool) -> list[str]:
    need = ["CPU", "Autograd", "fake"] + (["CUDA"] if cuda else [])
    found = []
    if not rows:
        found.append("no kanext:: operator is registered (was kanext._C built and importable?)")
    for name, row in rows.items():
        missing = [key for key in need if not row[key]]
        if missing:
            found.append(f"kanext::{name} has no {', '.join(missing)} kernel")
        if row["AutocastCUDA"] != (name in AUTOCAST_CUDA):
            found.append(f"kanext::{name}: AutocastCUDA rule {'present' if row['AutocastCUDA'] else 'missing'}, "
                         f"expected {'one' if name in AUTOCAST_CUDA else 'none'} (AUTOCAST_CUDA in {__file__})")
    for name in sorted(AUTOCAST_CUDA - rows.keys()):
        found.append(f"kanext::{name} is listed in AUTOCAST_CUDA but is not registered")
    return found


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cuda", action="store_true", help="require CUDA kernels (a CUDA build)")
    args = ap.parse_args(argv)
    if args.cuda and torch.version.cuda is None:
        print(f"check_dispatch: --cuda, but torch {torch.__version__} is a CPU build", file=sys.stderr)
        return 1
    rows = table()
    keys = ["CPU", "CUDA", "Autograd", "AutocastCUDA", "fake"]
    print(f"{'op':32s} " + " ".join(f"{k:>12s}" for k in keys))
    for name, row in rows.items():
        print(f"{name:32s} " + " ".join(f"{'yes' if row[k] else '-':>12s}" for k in keys))
    found = problems(rows, args.cuda)
    for p in found:
        print("check_dispatch: " + p, file=sys.stderr)
    print(f"check_dispatch: {len(rows)} ops, {'FAILED' if found else 'OK'} ({'CUDA' if args.cuda else 'CPU'} build, "
          f"torch {torch.__version__})")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
