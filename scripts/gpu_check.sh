#!/usr/bin/env bash
# One-shot GPU check of kanext's CUDA backend, for a machine with a CUDA
# build of torch and no internet:
#
#   bash scripts/gpu_check.sh OUTDIR
#   bash scripts/gpu_check.sh --dry-run OUTDIR   no GPU needed (CI runs this)
#
# 1. environment (nvidia-smi, torch, nvcc)
# 2. peer wheels from .whl/ if that folder exists (pip --no-index --no-deps)
# 3. in-place build with CUDA (KANEXT_FORCE_CUDA=1, sm_90)
# 3b. the dispatcher table: every op has its CPU, CUDA, Autograd and fake
#    kernels, and kan_linear_forward its AutocastCUDA rule (scripts/check_dispatch.py)
# 4. a smoke run of every op on CUDA against the CPU kernels (scripts/gpu_smoke.py)
# 5. pytest tests/test_cuda_tc.py, test_cuda_stats.py, test_cuda.py (newest first),
#    and the cuda cases of the bodies shared with the CPU (the `device`
#    parameter of test_ops.py, test_edge_stats.py, test_spline_activation.py, test_derivatives.py,
#    test_edge_stats_derivatives.py)
# 6. bench/run.py --device cuda: the issue's shapes and precisions, most
#    important first (later ones are skipped when the deadline comes)
#
# --dry-run does everything that needs no GPU, so that CI proves the script on
# a CPU machine with the CUDA build of torch: the same build, the dispatcher
# table, the smoke script's op lookup, pytest --collect-only of the same test
# selection, and each benchmark's arguments (bench/run.py --dry-run).
#
# Every step runs under `timeout`, sized so that the whole script ends within
# 8 minutes (DEADLINE_S, default 470 s; the build's own budget is BUILD_S,
# default 240 s for the 16 cores of the GPU machine); a step that fails or times out is
# recorded and the script goes on. Logs go to OUTDIR/<step>.log, and a summary
# table is printed last (and saved as OUTDIR/summary.txt). Exit status: 0 when
# the build, the smoke run and the tests passed.
#
# Environment: PYTHON (default python3), DEADLINE_S, PYTEST_ARGS (extra pytest
# arguments), BENCH_ARGS (extra bench/run.py arguments).
set -uo pipefail

DRY=""
if [ "${1:-}" = "--dry-run" ]; then
  DRY=--dry-run
  shift
fi
if [ $# -ne 1 ]; then
  echo "usage: $0 [--dry-run] OUTDIR" >&2
  exit 2
fi
cd "$(dirname "$0")/.."
OUT=$1
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
PY=${PYTHON:-python3}
# the in-place build is what every step imports (scripts/ and bench/ put their own folder first on sys.path)
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
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
run_step build "${BUILD_S:-240}" 1 env TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0a}" MAX_JOBS="$(nproc)" KANEXT_FORCE_CUDA=1 \
  "$PY" setup.py build_ext --inplace
BUILD_OK=$?

# ------------------------------------------------------------------ 4. dispatcher table, smoke
if [ "$BUILD_OK" -eq 0 ]; then
  run_step dispatch 60 1 "$PY" scripts/check_dispatch.py --cuda
  # shellcheck disable=SC2086
  run_step smoke 60 1 "$PY" scripts/gpu_smoke.py $DRY
else
  SUMMARY+=("$(printf '%-14s %-9s %5s  %s' smoke SKIPPED - "build failed")")
  FAILED_CORE=1
fi

# ------------------------------------------------------------------ 5. tests
if [ "$BUILD_OK" -eq 0 ]; then
  PAR=""
  if [ -n "$DRY" ]; then
    PAR="--collect-only"  # the same selection, collected (imports every test module) and not run
  elif "$PY" -c "import xdist" 2>/dev/null; then
    PAR="-n 4"  # 4 processes share the GPU
  fi
  # shellcheck disable=SC2086
  run_step pytest 220 1 "$PY" -m pytest tests/test_cuda_tc.py tests/test_cuda_stats.py tests/test_cuda.py \
    tests/test_ops.py tests/test_edge_stats.py tests/test_spline_activation.py tests/test_derivatives.py tests/test_edge_stats_derivatives.py -k cuda \
    -q -p no:cacheprovider $PAR --maxfail=50 --durations=15 \
    --junitxml="$OUT/pytest_cuda.xml" ${PYTEST_ARGS:-}
fi

# ------------------------------------------------------------------ 6. bench
if [ "$BUILD_OK" -eq 0 ] && [ -f bench/run.py ]; then
  BCORE=0
  [ -n "$DRY" ] && BCORE=1  # a dry run proves the benchmark arguments: a failure counts
  B=(--device cuda --repeat 10 --budget 3 --peers inkan,flashkan,reference,gemm $DRY)
  bench() {  # bench NAME BUDGET ARGS...: one bench/run.py run, JSON to OUT/NAME.json
    local name=$1 budget=$2
    shift 2
    # shellcheck disable=SC2086
    run_step "$name" "$budget" "$BCORE" "$PY" bench/run.py "${B[@]}" "$@" --json "$OUT/$name.json" ${BENCH_ARGS:-}
  }
  bench b_tf32_g5 60 --batch 4096 --in 1024 --out 1024 --grid 5 --k 3 --precision tf32
  bench b_tf32_g50 60 --batch 4096 --in 1024 --out 1024 --grid 50 --k 3 --precision tf32 --no-memory
  bench b_bf16_g5 60 --batch 4096 --in 1024 --out 1024 --grid 5 --k 3 --precision bf16 --no-memory
  # shellcheck disable=SC2086
  run_step b_spline_act 40 "$BCORE" "$PY" bench/spline_activation.py --device cuda --repeat 10 $DRY
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
    echo "pytest: $(grep -E '^(FAILED|ERROR)|[0-9]+ (passed|failed)|tests collected' "$OUT/pytest.log" | tail -1)"
  fi
  [ -n "$DRY" ] && echo "(dry run: nothing ran on a GPU)"
  if [ "$FAILED_CORE" -eq 0 ]; then echo "RESULT: OK"; else echo "RESULT: FAILED"; fi
} | tee "$OUT/summary.txt"
exit "$FAILED_CORE"
