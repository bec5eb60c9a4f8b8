#!/usr/bin/env bash
# The CUDA kernels' logic in host emulation (the emulator in csrc/cuda/emu/,
# its tests in tests/emu/, marked emu), without a GPU:
#   bash scripts/emu_check.sh          a representative subset (CI, a few minutes)
#   bash scripts/emu_check.sh --all    every emulated test (about 20 minutes on 2 cores)
#   bash scripts/emu_check.sh --asan [--all] [pytest args]
#                                      the same with the kernels built with
#                                      AddressSanitizer: a read or write outside
#                                      any buffer (a fault on a GPU) aborts the
#                                      run, and ASan's report is written to
#                                      build/emu_asan.<pid> (several times slower)
# Extra arguments go to pytest. Needs g++ (C++17, _Float16) and the venv that
# run.sh creates (PYTHON overrides).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
files=(tests/emu/test_emu_local.py tests/emu/test_emu_tc.py tests/emu/test_emu_stats.py tests/emu/test_emu_deriv.py
       tests/emu/test_emu_gradw.py tests/emu/test_emu_local_v2.py tests/emu/test_emu_gradw_sorted.py
       tests/emu/test_emu_tc_v2.py tests/emu/test_emu_tc_v2_ws.py tests/emu/test_emu_tc_v2_backward.py)
if [ "${1:-}" = "--asan" ]; then
  shift
  mkdir -p build
  export EMU_SANITIZE=address ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:log_path=$PWD/build/emu_asan}
  LD_PRELOAD="$(g++ -print-file-name=libasan.so)"
  export LD_PRELOAD
fi
if [ "${1:-}" = "--all" ]; then
  shift
  exec "$PY" -m pytest "${files[@]}" -m emu -q -p no:cacheprovider "$@"
fi
# Per file: the NaN/Inf policy, capped grids (grid-stride loops), batch slices
# and determinism, empty sizes, and one full comparison per dtype and op;
# the derivative kernels (test_emu_deriv, about 25 s) and the register grad W
# kernel (test_emu_gradw, about 3 s) and the v2 forward / grad x kernels
# (test_emu_local_v2, about 11 s) in full; of the sorted grad W kernels
# (test_emu_gradw_sorted, about 25 s in full) all but the size grid, and its
# sizes at k = 3; of test_emu_tc_v2 the Hopper primitives, the NaN/inf,
# grid-stride and empty-size cases (above) and k = 0 / outside the grid; of
# test_emu_tc_v2_ws (step 3, what backend tensor_core_v2 runs) all but the
# k x shape grid (ring wrap-around, grid stride, outside the grid, NaN/inf,
# empty sizes, the race and deadlock checks, the uniform-grid builder's
# decision, knots, ulp-nudged grids and mixed chunks: about 30 s, the
# uniform-grid cases about 1 s of it); test_emu_tc_v2_backward (grad x and
# grad W on wgmma) but for the float32 k x shape grids at k = 1 and 5; of
# the 16-bit cases (bf16 / f16, all three files) all but the k x shape
# grids (*_16bit_shapes), of which k = 3 at the largest shape (33, 17, ...).
sel="test_emu_deriv or test_emu_gradw and not test_emu_gradw_sorted or test_emu_local_v2 \
or test_emu_gradw_sorted and (not test_sizes or -3-) \
or (test_emu_tc_v2 and not test_forward and not 16bit_shapes \
    and not ((test_grad_x[ or test_grad_w[) and (-1] or -5]))) \
or (16bit_shapes and 33 and -3-) or test_forward_k0 \
or (test_emu_tc_v2_ws and not test_forward) \
or nan or stride or slices or empty or sizes and (0 or 1-1) \
or (test_forward_and_backward and 70 and 3) \
or (test_forward and float32-3-silu) or (test_backward and float64-3-silu) \
or (test_spline_activation and 3-silu) or (test_edge_stats and 3-silu)"
exec "$PY" -m pytest "${files[@]}" -m emu -q -p no:cacheprovider -k "$sel" "$@"
