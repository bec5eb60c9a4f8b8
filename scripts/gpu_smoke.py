#!/usr/bin/env python3
"""Smoke run of every kanext op on CUDA against the CPU kernels (step 4 of
scripts/gpu_check.sh): local-support kernels in float32 and float64, then the
tensor-core path in TF32, bfloat16 and float16.

    python scripts/gpu_smoke.py            # needs a GPU and a CUDA build of kanext
    python scripts/gpu_smoke.py --dry-run  # no GPU: checks that every op it calls is registered
"""
import sys

import torch
from kanext import ops

K = torch.ops.kanext
if "--dry-run" in sys.argv[1:]:
    for name in ("spline_basis", "spline_basis_deriv", "kan_linear_forward", "kan_linear_backward",
                 "fold_spline_weights", "fold_spline_weights_backward"):
        getattr(K, name)  # AttributeError names a missing op
    print("smoke dry run OK: every op it calls is registered; nothing ran on a GPU")
    sys.exit(0)
assert torch.cuda.is_available(), "no CUDA device visible to torch"
torch.manual_seed(0)
torch.backends.cuda.matmul.allow_tf32 = False  # strict float32: the local-support kernels
for dtype in (torch.float32, torch.float64):
    N, i, o, G, k = 1000, 64, 96, 5, 3
    h = 2.0 / G
    base = torch.linspace(-1 - k * h, 1 + k * h, G + 2 * k + 1, dtype=torch.float64)
    grid = base.repeat(i, 1).to(dtype)
    x = (torch.rand(N, i, dtype=torch.float64) * 3 - 1.5).to(dtype)
    Wb, Wc = torch.randn(i, o, dtype=dtype), torch.randn(i, G + k, o, dtype=dtype)
    gy = torch.randn(N, o, dtype=dtype)
    coef, scale = torch.randn(i, o, G + k, dtype=dtype), torch.randn(i, o, dtype=dtype)
    c = lambda *ts: [t.cuda() for t in ts]  # noqa: E731
    pairs = {
        "spline_basis": (ops.spline_basis(*c(x, grid), k), ops.spline_basis(x, grid, k)),
        "spline_basis_deriv": (ops.spline_basis_deriv(*c(x, grid), k), ops.spline_basis_deriv(x, grid, k)),
        "kan_linear_forward": (ops.kan_linear(*c(x, grid), k, "silu", *c(Wb, Wc)), ops.kan_linear(x, grid, k, "silu", Wb, Wc)),
        "fold": (ops.fold_spline_weights(*c(coef, scale)), ops.fold_spline_weights(coef, scale)),
    }
    for n, (a, b) in zip(("gx", "gWb", "gWc"), zip(K.kan_linear_backward(*c(gy, x, grid), k, 2, *c(Wb, Wc), True, True),
                                                   K.kan_linear_backward(gy, x, grid, k, 2, Wb, Wc, True, True))):
        pairs["backward_" + n] = (a, b)
    for n, (a, b) in zip(("gcoef", "gscale"), zip(K.fold_spline_weights_backward(*c(Wc, coef, scale)),
                                                 K.fold_spline_weights_backward(Wc, coef, scale))):
        pairs["fold_backward_" + n] = (a, b)
    torch.cuda.synchronize()
    for name, (a, b) in pairs.items():
        assert a.is_cuda and a.shape == b.shape, name
        err = float(((a.cpu() - b).abs().max() / b.abs().max().clamp_min(1)).item())
        print(f"{str(dtype):14s} {name:22s} max rel err vs CPU {err:.2e}")
        assert err < (1e-5 if dtype == torch.float32 else 1e-12), f"{name} {dtype}: {err}"
# the tensor-core path: TF32 and bfloat16 / float16 against the float32 CPU op on the same rounded values
import kanext
kanext.set_backend("tensor_core")
torch.backends.cuda.matmul.allow_tf32 = True
for dtype, tol in ((torch.float32, 5e-3), (torch.bfloat16, 3e-2), (torch.float16, 1e-2)):
    xs, Wbs, Wcs, gys = (t.to(dtype) for t in (x, Wb, Wc, gy))
    xf, Wbf, Wcf, gyf = (t.float() for t in (xs, Wbs, Wcs, gys))
    gridf = grid.float()
    got = [ops.kan_linear(*c(xs, gridf), k, "silu", *c(Wbs, Wcs)),
           *K.kan_linear_backward(*c(gys, xs, gridf), k, 2, *c(Wbs, Wcs), True, True)]
    exp = [ops.kan_linear(xf, gridf, k, "silu", Wbf, Wcf), *K.kan_linear_backward(gyf, xf, gridf, k, 2, Wbf, Wcf, True, True)]
    torch.cuda.synchronize()
    for name, a, b in zip(("y", "gx", "gWb", "gWc"), got, exp):
        err = float(((a.float().cpu() - b).abs().max() / b.abs().max().clamp_min(1)).item())
        print(f"{str(dtype):14s} tensor_core {name:10s} max rel err vs CPU float32 {err:.2e}")
        assert a.dtype == dtype and err < tol, f"tensor_core {name} {dtype}: {err}"
kanext.set_backend("auto")
print("smoke OK")
