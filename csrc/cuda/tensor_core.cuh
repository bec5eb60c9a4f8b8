// Tensor-core helpers of the kanext CUDA kernels: the 16-bit float types, the
// WMMA fragment shapes per storage type, and float conversions.
//
// Storage type T (what x, Wb, Wc, y and the gradients hold) -> operand type
// Op (what the shared-memory tiles hold and the fragments load):
//   float          -> float rounded to TF32 (m16n16k8, wmma::precision::tf32)
//   __nv_bfloat16  -> __nv_bfloat16         (m16n16k16)
//   __half         -> __half                (m16n16k16)
// Accumulators are float32 in every case. Bases are evaluated in float32
// from the float32 grid and x converted to float32, then rounded once to Op.
#pragma once

#include "common.cuh"

#ifdef KANEXT_CUDA_EMULATION
#include "emu/emu_mma.h"
#else
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>
#endif

namespace kanext {
namespace cuda {

namespace wmma = nvcuda::wmma;

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half from_float<__half>(float v) { return __float2half(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16(v); }

template <typename T>
struct Mma;

template <>
struct Mma<float> {
  using Op = float;
  using FragT = wmma::precision::tf32;
  static constexpr int kK = 8;
  __device__ __forceinline__ static Op op(float v) { return wmma::__float_to_tf32(v); }
};

template <>
struct Mma<__nv_bfloat16> {
  using Op = __nv_bfloat16;
  using FragT = __nv_bfloat16;
  static constexpr int kK = 16;
  __device__ __forceinline__ static Op op(float v) { return __float2bfloat16(v); }
};

template <>
struct Mma<__half> {
  using Op = __half;
  using FragT = __half;
  static constexpr int kK = 16;
  __device__ __forceinline__ static Op op(float v) { return __float2half(v); }
};

// Fragments of a 16 x 16 output tile.
template <typename T, typename Layout>
using FragA = wmma::fragment<wmma::matrix_a, 16, 16, Mma<T>::kK, typename Mma<T>::FragT, Layout>;
template <typename T, typename Layout>
using FragB = wmma::fragment<wmma::matrix_b, 16, 16, Mma<T>::kK, typename Mma<T>::FragT, Layout>;
template <typename T>
using FragC = wmma::fragment<wmma::accumulator, 16, 16, Mma<T>::kK, float>;

// Row stride (elements) of a shared-memory operand tile with `cols` columns:
// 16 bytes of padding against bank conflicts; keeps every 16-row, kK-column
// fragment start 32-byte aligned, as load_matrix_sync requires.
template <typename Op>
__host__ __device__ constexpr int padded_ld(int cols) {
  return cols + static_cast<int>(16 / sizeof(Op));
}

}  // namespace cuda
}  // namespace kanext
