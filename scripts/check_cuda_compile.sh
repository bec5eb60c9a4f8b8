#!/usr/bin/env bash
# Compile checks of the CUDA sources on a machine without a GPU:
#  1. every .cu file under csrc/cuda/ for sm_90 with nvcc (compile only; the
#     .cu files include no torch header, so nvcc alone is enough), done by
#     scripts/ptxas_report.py --check: the same compile with -Xptxas -v, in
#     parallel (MAX_JOBS, default nproc), which also fails when a kernel of
#     the main paths spills registers (beyond the list of known spills in
#     that script; docs/ptxas_sm90.md is its full report); then
#     tests/emu/hopper_probe.cu for sm_90a (every Hopper primitive's PTX);
#  2. the ATen bindings csrc/cuda/*.cpp with g++ -fsyntax-only against the
#     installed torch headers, when a torch is importable (PYTHON, default
#     .venv/bin/python, else python3). The CPU wheel of torch ships c10/cuda
#     but not the generated c10/cuda/impl/cuda_cmake_macros.h; an empty
#     stand-in is supplied for that one header.
# Skips (exit 0) without nvcc; skips step 2 without torch.
set -euo pipefail
cd "$(dirname "$0")/.."
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
if [ ! -x "$NVCC" ]; then
  echo "check_cuda_compile: nvcc not found, skipped"
  exit 0
fi
shopt -s nullglob
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
PY=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}

files=(csrc/cuda/*.cu)
NVCC="$NVCC" "$PY" scripts/ptxas_report.py --check "${files[@]}"
echo "check_cuda_compile: ${#files[@]} .cu file(s) OK"
# The Hopper primitives' inline PTX, all of it, for sm_90a (kan_linear_tc_v2.cu, compiled above, uses it too).
"$NVCC" -arch=sm_90a -std=c++17 -O3 -Icsrc/include -Icsrc/cuda -cubin tests/emu/hopper_probe.cu -o "$tmp/probe.cubin"
echo "check_cuda_compile: hopper primitives (tests/emu/hopper_probe.cu, sm_90a) OK"

if ! inc=$("$PY" -c 'import sysconfig, torch.utils.cpp_extension as c; print(" ".join(c.include_paths() + [sysconfig.get_paths()["include"]]))' 2>/dev/null); then
  echo "check_cuda_compile: no torch for $PY, bindings not checked"
  exit 0
fi
cuda_inc=$(dirname "$(dirname "$(readlink -f "$NVCC")")")/include
[ -f "$cuda_inc/cuda_runtime.h" ] || cuda_inc=/usr/local/cuda/include
mkdir -p "$tmp/stub/c10/cuda/impl"
echo '#pragma once' >"$tmp/stub/c10/cuda/impl/cuda_cmake_macros.h"
flags=(-std=c++17 -fsyntax-only -Wno-c++20-extensions -DKANEXT_WITH_CUDA "-I$tmp/stub" -Icsrc/include "-I$cuda_inc")
for d in $inc; do flags+=("-I$d"); done
bind=(csrc/cuda/*.cpp)
for f in "${bind[@]}"; do
  echo "g++ -fsyntax-only $f"
  g++ "${flags[@]}" "$f"
done
echo "check_cuda_compile: ${#bind[@]} binding(s) OK"
