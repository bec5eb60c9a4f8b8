#!/usr/bin/env bash
# The full CUDA build of kanext on a machine without a GPU (CI runs this):
#
#   bash scripts/ci_cuda_build.sh [--no-tests | --tests-only | --all-tests]
#
# 1. .venv-cuda: Python 3.11 with the CUDA build of torch (KANEXT_CUDA_TORCH,
#    default torch==2.13.0, i.e. 2.13.0+cu130, the CUDA of the installed
#    nvcc; `pip --isolated` skips this machine's local CPU wheel) and the
#    requirements, installed once per pin and requirements hash as run.sh does
#    for .venv (about 70 s and 4.7 GB);
# 2. a copy of the source tree in build/cuda-tree (mtimes kept, so a local
#    rerun rebuilds only what changed), so that the CPU build in kanext/ is
#    left alone;
# 3. there, scripts/gpu_check.sh --dry-run: the build for sm_90 exactly as on
#    the GPU machine (KANEXT_FORCE_CUDA=1, setup.py build_ext --inplace), the
#    import, the dispatcher table (every op has a CPU, a CUDA, an Autograd and
#    a fake kernel, and kan_linear_forward its AutocastCUDA rule), the smoke
#    script's op lookup, pytest --collect-only of the GPU test selection, and
#    every benchmark's arguments. The build runs with KANEXT_NVCC_EXTRA="-Xptxas
#    -v", and scripts/ptxas_report.py --check --from-log reads the kernels'
#    registers and spills off its log (CI fails when a hot kernel starts
#    spilling); each .cu file is also preprocessed by nvcc without torch's
#    headers, which proves that the kernels compile with nvcc alone;
# 4. the CPU tests of the compiled ops and modules on that build (a user with
#    CUDA torch runs CPU tensors too): TESTS below, the op and module tests
#    (every op against its reference, opcheck, gradcheck, compile), about
#    1.5 minutes: what fits CI's 25 minutes; --all-tests runs the whole suite
#    (about 10 minutes more; it passed on this build on 2026-12-04: 4547
#    passed, 2613 CUDA-only skipped). --no-tests stops after step 3, --tests-only runs
#    only step 4 (CI overlaps steps 1-3 with the CPU build's tests).
# Skips (exit 0) without nvcc. Logs of step 3 go to build/cuda-check/.
set -euo pipefail
cd "$(dirname "$0")/.."
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
if [ ! -x "$NVCC" ]; then
  echo "ci_cuda_build: nvcc not found, skipped"
  exit 0
fi
# (not test_build_tools.py, whose fake toolkits do not depend on the torch build, 46 s, nor
# test_compile_states.py, the model-state logic above the ops, whose torch.compile test_ops.py
# still runs here, 20 s: both run in the README's tests; CI stays near its 25 minutes)
TESTS=(tests/test_ops.py tests/test_backend.py tests/test_modules.py tests/test_edge_stats.py
  tests/test_spline_activation.py)
MODE=${1:-}
T=build/cuda-tree
V=.venv-cuda
t0=$(date +%s)
if [ "$MODE" = --all-tests ]; then TESTS=(tests); fi
if [ "$MODE" = --tests-only ]; then
  [ -f $T/kanext/__init__.py ] && ls $T/kanext/_C*.so >/dev/null 2>&1 || {
    echo "ci_cuda_build: --tests-only, but $T holds no build: run it without --tests-only first" >&2
    exit 1
  }
fi
if [ "$MODE" != --tests-only ]; then
PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
TORCH_PIN=${KANEXT_CUDA_TORCH:-torch==2.13.0}
[ -x $V/bin/python ] || "$PY" -m venv $V
stamp=$V/.kanext-requirements
want="$TORCH_PIN $(cat requirements/build.txt requirements/run.txt requirements/test.txt | md5sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  $V/bin/python -m pip install -q --upgrade pip
  $V/bin/python -m pip install -q --isolated "$TORCH_PIN"
  $V/bin/python -m pip install -q -r requirements/build.txt -r requirements/run.txt -r requirements/test.txt
  echo "$want" >"$stamp"
fi
if ! $V/bin/python -c 'import sys, torch; sys.exit(torch.version.cuda is None)'; then
  echo "ci_cuda_build: $V has torch $($V/bin/python -c 'import torch; print(torch.__version__)'), a CPU build;" \
    "expected the CUDA build of $TORCH_PIN (pip install --isolated)" >&2
  exit 1
fi
echo "ci_cuda_build: $($V/bin/python -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda)')" \
  "in $V ($(($(date +%s) - t0)) s)"

# the tree: tracked and untracked-but-not-ignored files, mtimes kept
mkdir -p $T
find $T -mindepth 1 -maxdepth 1 ! -name build -exec rm -rf {} +  # keep only ninja's objects
git ls-files -co --exclude-standard -z | tar --null -cf - -T - | tar -xf - -C $T

OUT=$PWD/build/cuda-check
rm -rf "$OUT"
(cd $T && PYTHON="$PWD/../../$V/bin/python" BUILD_S=${BUILD_S:-1500} DEADLINE_S=${DEADLINE_S:-1800} \
  KANEXT_NVCC_EXTRA="-Xptxas -v" bash scripts/gpu_check.sh --dry-run "$OUT")
(cd $T && python3 scripts/ptxas_report.py --check --from-log "$OUT/build.log")
cuda_inc=$(dirname "$(dirname "$(readlink -f "$NVCC")")")/include
for f in csrc/cuda/*.cu; do  # torch's headers are not on the path: the kernels need nvcc alone
  "$NVCC" -E -arch=sm_90 -std=c++17 -Icsrc/include "-I$cuda_inc" "$f" -o /dev/null
done
echo "ci_cuda_build: CUDA build, ptxas check and gpu_check dry run OK; $(ls csrc/cuda/*.cu | wc -l) .cu files" \
  "preprocess without torch ($(($(date +%s) - t0)) s)"
fi

if [ "$MODE" != --no-tests ]; then
  (cd $T && OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} "$PWD/../../$V/bin/python" -m pytest "${TESTS[@]}" -q \
    -p no:cacheprovider -x)
  echo "ci_cuda_build: CPU tests on the CUDA build OK (${TESTS[*]}; $(($(date +%s) - t0)) s)"
fi
