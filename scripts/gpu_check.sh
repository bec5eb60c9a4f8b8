#!/usr/bin/env bash
# One-shot GPU check of kanext's CUDA backend, for a machine with a CUDA
# build of torch and no internet:
#
#   bash scripts/gpu_check.sh OUTDIR
#
# 1. environment (nvidia-smi, torch, nvcc)
# 2. peer wheels from .whl/ if that folder exists (pip --no-index --no-deps)
# 3. in-place build with CUDA (KANEXT_FORCE_CUDA=1, sm_90)
# 4. a smoke run of every op on CUDA against the CPU kernels
# 5. pytest tests/test_cuda_tc.py, test_cuda_stats.py, test_cuda.py (newest first),
#    and the cuda cases of the bodies shared with the CPU (the `device`
#    parameter of test_ops.py, test_edge_stats.py, test_spline_activation.py, test_derivatives.py,
#    test_edge_stats_derivatives.py)
# 6. bench/run.py --device cuda: the issue's shapes and precisions, most
#    important first (later ones are skipped when the deadline comes)
#
# Every step runs under `timeout`, sized so that the whole script ends within
# 8 minutes (DEADLINE_S, default 470 s); a step that fails or times out is
# recorded and the script goes on. Logs go to OUTDIR/<step>.log, and a summary
# table is printed last (and saved as OUTDIR/summary.txt). Exit status: 0 when
# the build, the smoke run and the tests passed.
#
# Environment: PYTHON (default python3), DEADLINE_S, PYTEST_ARGS (extra pytest
# arguments), BENCH_ARGS (extra bench/run.py arguments).
set -uo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 OUTDIR" >&2
  exit 2
fi
cd "$(dirname "$0")/.."
OUT=$1
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
PY=${PYTHON:-python3}
START=$(date +%s)
DEADLINE=$((START + ${DEADLINE_S:-470}))
SUMMARY=()
FAILED_CORE=0

# run_step NAME BUDGET_S CORE(1/0) COMMAND...: runs COMMAND under timeout
# min(BUDGET_S, time left), tees its output to OUT/NAME.log, records the result.
run_step() {
  local name=$1 budget=$2 core=$3
  shift 3
  local now left t0 rc status
  now=$(date +%s)
  left=$((DEADLINE - now))
  if [ "$left" -lt 10 ]; then
    SUMMARY+=("$(printf '%-14s %-9s %5s  %s' "$name" "SKIPPED" "-" "no time left")")
    [ "$core" = 1 ] && FAILED_CORE=1
    return 1
  fi
  [ "$budget" -gt "$left" ] && budget=$left
  echo "=== [$name] (timeout ${budget}s): $*"
  t0=$(date +%s)
  timeout --kill-after=10 "$budget" "$@" 2>&1 | tee "$OUT/$name.log"
  rc=${PIPESTATUS[0]}
  case $rc in
    0) status=OK ;;
    124 | 137) status=TIMEOUT ;;
    *) status="FAIL($rc)" ;;
  esac
  SUMMARY+=("$(printf '%-14s %-9s %5ss  %s' "$name" "$status" "$(($(date +%s) - t0))" "$OUT/$name.log")")
  if [ "$rc" -ne 0 ] && [ "$core" = 1 ]; then FAILED_CORE=1; fi
  return "$rc"
}

# ------------------------------------------------------------------ 1. environment
run_step env 30 0 bash -c "
  nvidia-smi || true
  command -v nvcc && nvcc --version | tail -2 || echo 'nvcc not on PATH (CUDA_HOME=${CUDA_HOME:-unset})'
  $PY -c 'import sys, torch; print(sys.version); print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda, \"available\", torch.cuda.is_available()); print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else \"no device\")'
  $PY -c 'import ninja' 2>/dev/null && echo 'ninja: yes' || echo 'ninja: NOT installed (serial build)'
  nproc; free -g | head -2
"

# ------------------------------------------------------------------ 2. peer wheels
if compgen -G ".whl/*.whl" > /dev/null; then
  run_step wheels 60 0 "$PY" -m pip install --no-index --no-deps .whl/*.whl
fi

# ------------------------------------------------------------------ 3. build
run_step build 240 1 env TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}" MAX_JOBS="$(nproc)" KANEXT_FORCE_CUDA=1 \
  "$PY" setup.py build_ext --inplace
BUILD_OK=$?

# ------------------------------------------------------------------ 4. smoke
if [ "$BUILD_OK" -eq 0 ]; then
  run_step smoke 60 1 "$PY" - <<'EOF'
import torch
from kanext import ops
assert torch.cuda.is_available(), "no CUDA device visible to torch"
K = torch.ops.kanext
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
EOF
else
  SUMMARY+=("$(printf '%-14s %-9s %5s  %s' smoke SKIPPED - "build failed")")
  FAILED_CORE=1
fi

# ------------------------------------------------------------------ 5. tests
if [ "$BUILD_OK" -eq 0 ]; then
  PAR=""
  if "$PY" -c "import xdist" 2>/dev/null; then PAR="-n 4"; fi  # 4 processes share the GPU
  # shellcheck disable=SC2086
  run_step pytest 220 1 "$PY" -m pytest tests/test_cuda_tc.py tests/test_cuda_stats.py tests/test_cuda.py \
    tests/test_ops.py tests/test_edge_stats.py tests/test_spline_activation.py tests/test_derivatives.py tests/test_edge_stats_derivatives.py -k cuda \
    -q -p no:cacheprovider $PAR --maxfail=50 --durations=15 \
    --junitxml="$OUT/pytest_cuda.xml" ${PYTEST_ARGS:-}
fi

# ------------------------------------------------------------------ 6. bench
if [ "$BUILD_OK" -eq 0 ] && [ -f bench/run.py ]; then
  B=(--device cuda --repeat 10 --budget 3 --peers inkan,flashkan,reference,gemm)
  bench() {  # bench NAME BUDGET ARGS...: one bench/run.py run, JSON to OUT/NAME.json
    local name=$1 budget=$2
    shift 2
    # shellcheck disable=SC2086
    run_step "$name" "$budget" 0 "$PY" bench/run.py "${B[@]}" "$@" --json "$OUT/$name.json" ${BENCH_ARGS:-}
  }
  bench b_tf32_g5 60 --batch 4096 --in 1024 --out 1024 --grid 5 --k 3 --precision tf32
  bench b_tf32_g50 60 --batch 4096 --in 1024 --out 1024 --grid 50 --k 3 --precision tf32 --no-memory
  bench b_bf16_g5 60 --batch 4096 --in 1024 --out 1024 --grid 5 --k 3 --precision bf16 --no-memory
  run_step b_spline_act 40 0 "$PY" bench/spline_activation.py --device cuda --repeat 10
  bench b_strict_g5 60 --batch 4096 --in 1024 --out 1024 --grid 5 --k 3 --precision strict --no-memory
  bench b_tf32_g5_local 40 --batch 4096 --in 1024 --out 1024 --grid 5 --k 3 --precision tf32 --backend local \
    --peers gemm --no-memory
  bench b_tf32_8192 60 --batch 8192 --in 4096 --out 4096 --grid 5 --k 3 --precision tf32 --no-memory
elif [ ! -f bench/run.py ]; then
  SUMMARY+=("$(printf '%-14s %-9s %5s  %s' bench SKIPPED - "bench/run.py absent")")
fi

# ------------------------------------------------------------------ summary
{
  echo
  echo "==================== gpu_check summary ($(($(date +%s) - START)) s) ===================="
  printf '%-14s %-9s %6s  %s\n' step status time log
  for line in "${SUMMARY[@]}"; do echo "$line"; done
  if [ -f "$OUT/pytest.log" ]; then
    echo "pytest: $(grep -E '^(FAILED|ERROR)|[0-9]+ (passed|failed)' "$OUT/pytest.log" | tail -1)"
  fi
  if [ "$FAILED_CORE" -eq 0 ]; then echo "RESULT: OK"; else echo "RESULT: FAILED"; fi
} | tee "$OUT/summary.txt"
exit "$FAILED_CORE"
