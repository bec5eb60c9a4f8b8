#!/usr/bin/env bash
# Compiles every .cu file under csrc/ for sm_90 (compile only), so that CUDA
# code cannot break silently on machines without a GPU. The .cu files include
# no torch header, so nvcc alone is enough. Skips (exit 0) without nvcc.
set -euo pipefail
cd "$(dirname "$0")/.."
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
if [ ! -x "$NVCC" ]; then
  echo "check_cuda_compile: nvcc not found, skipped"
  exit 0
fi
shopt -s nullglob
files=(csrc/cuda/*.cu)
if [ ${#files[@]} -eq 0 ]; then
  echo "check_cuda_compile: no .cu files"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for f in "${files[@]}"; do
  echo "nvcc -arch=sm_90 -c $f"
  "$NVCC" -arch=sm_90 -std=c++17 -O3 -Icsrc/include -c "$f" -o "$tmp/$(basename "$f").o"
done
echo "check_cuda_compile: ${#files[@]} file(s) OK"
