// Helpers shared by the CUDA kernels of kanext (csrc/cuda/*.cu).
//
// No torch header may be included here or in any .cu file (see DESIGN.md:
// the CPU build of torch lacks CUDA headers, and every .cu must compile with
// nvcc alone). The B-spline math itself is the __host__ __device__ code of
// kanext/bspline.h, shared with the CPU kernels.
#pragma once

#ifdef KANEXT_CUDA_EMULATION
// Host emulation of the CUDA kernels (csrc/cuda/emu/): the kernels compile
// as plain C++ and run as CPU fibers, so their logic is testable without a
// GPU (csrc/cuda/emu/run_emulated.py). Never defined in real builds.
#include "emu/emu.h"
#define KANEXT_LAUNCH(grid, block, smem, stream, ...) ::kanext::emu::launcher(grid, block, smem, __VA_ARGS__)
#define KANEXT_DYNAMIC_SMEM(name) unsigned char* name = ::kanext::emu::dynamic_smem()
#else
#include <cuda_runtime.h>
// kernel<<<grid, block, smem, stream>>>, spelled as a macro so that the host
// emulation can replace it; the kernel (which may contain commas) comes last.
#define KANEXT_LAUNCH(grid, block, smem, stream, ...) __VA_ARGS__<<<grid, block, smem, stream>>>
#define KANEXT_DYNAMIC_SMEM(name) extern __shared__ unsigned char name[]
#endif

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kanext/bspline.h"
#include "cuda_launch.h"

namespace kanext {
namespace cuda {

// Window start codes below 0 (see basis_window).
constexpr int kOutside = -1;  // x outside [t_0, t_{M-1}): every basis is 0
constexpr int kNaN = -2;      // x is NaN: NaN policy of kanext/ops.py

// Turns the runtime order k into the compile-time constant K (k was checked
// by the binding; anything else launches nothing and reports an error).
template <typename F>
cudaError_t dispatch_order(int k, F&& f) {
  switch (k) {
    case 0: return f(std::integral_constant<int, 0>{});
    case 1: return f(std::integral_constant<int, 1>{});
    case 2: return f(std::integral_constant<int, 2>{});
    case 3: return f(std::integral_constant<int, 3>{});
    case 4: return f(std::integral_constant<int, 4>{});
    case 5: return f(std::integral_constant<int, 5>{});
    default: return cudaErrorInvalidValue;
  }
}

// Elements per 16-byte vector: 4 fp32, 2 fp64.
template <typename T>
constexpr int kVec = static_cast<int>(16 / sizeof(T));

// The code of an x with no interval (find_interval < 0).
template <typename T>
__device__ __forceinline__ int no_window(T x) {
  return isnan(x) ? kNaN : kOutside;
}

// The k+1 bases (and optionally derivatives) of one (n, i) entry, from the
// same find_interval / local_bases as the CPU reference path. Returns the
// window start (basis index of v[0], in [0, G-1]) or kOutside / kNaN, in
// which case v and dv are not written. K is a compile-time constant, so
// local_bases (forceinline) unrolls and keeps its arrays in registers.
template <typename T, int K, bool DERIV>
__device__ __forceinline__ int basis_window(const T* __restrict__ t, int64_t M, T x, T (&v)[K + 1],
                                            T (&dv)[K + 1]) {
  const int64_t g = find_interval<T>(t, M, x);
  if (g < 0) return no_window(x);
  return static_cast<int>(local_bases<T>(t, M, K, g, x, v, DERIV ? dv : nullptr));
}

// basis_window's return value alone (no bases): the same find_interval and
// the same window_start, so the same integer for the same x.
template <typename T, int K>
__device__ __forceinline__ int window_code(const T* __restrict__ t, int64_t M, T x) {
  const int64_t g = find_interval<T>(t, M, x);
  if (g < 0) return no_window(x);
  return static_cast<int>(window_start(M, K, g));
}

// VN consecutive columns [j, j+VN) of a row, as one 16-byte load when the
// caller guarantees alignment (row base 16-byte aligned, out % VN == 0: then
// j < out implies the whole vector is in range), else VN guarded scalar loads.
// Columns at or past `out` read as 0. Loads go through the read-only cache.
template <typename T, int VN, bool ALIGNED>
__device__ __forceinline__ void load_cols(const T* __restrict__ row, int64_t j, int64_t out, T (&v)[VN]) {
  if constexpr (ALIGNED && VN * sizeof(T) == 16) {
    if (j < out) {
      if constexpr (sizeof(T) == 4) {
        const float4 q = __ldg(reinterpret_cast<const float4*>(row + j));
        v[0] = q.x; v[1] = q.y; v[2] = q.z; v[3] = q.w;
      } else {
        const double2 q = __ldg(reinterpret_cast<const double2*>(row + j));
        v[0] = q.x; v[1] = q.y;
      }
    } else {
#pragma unroll
      for (int e = 0; e < VN; ++e) v[e] = T(0);
    }
  } else {
#pragma unroll
    for (int e = 0; e < VN; ++e) v[e] = (j + e < out) ? __ldg(row + j + e) : T(0);
  }
}

template <typename T, int VN, bool ALIGNED>
__device__ __forceinline__ void store_cols(T* __restrict__ row, int64_t j, int64_t out, const T (&v)[VN]) {
  if constexpr (ALIGNED && VN * sizeof(T) == 16) {
    if (j < out) {
      if constexpr (sizeof(T) == 4) {
        *reinterpret_cast<float4*>(row + j) = make_float4(v[0], v[1], v[2], v[3]);
      } else {
        *reinterpret_cast<double2*>(row + j) = make_double2(v[0], v[1]);
      }
    }
  } else {
#pragma unroll
    for (int e = 0; e < VN; ++e)
      if (j + e < out) row[j + e] = v[e];
  }
}

// The v2 local-support kernels (backend "local_v2", kLocalV2): the staged
// entry of one (batch row, input): K+2 coefficients (the bases, or their
// derivatives, then b(x) or b'(x)) and, instead of the window start s, the
// byte offset of Wc row s inside the input's slab, s * out * sizeof(T) (the
// launchers run v2 only when the slab is below 2^31 bytes), or the negative
// code kOutside / kNaN. 16-byte aligned: a warp reads one with broadcast
// vector loads, and a gather of row s + q is one 16-byte load at
// slab pointer + off + q * row bytes.
template <typename T, int K>
struct alignas(16) LocalEntry {
  T v[K + 2];
  int off;
};

// Largest Wc slab (nb * out elements of one input) that the v2 kernels'
// 32-bit byte offsets address.
template <typename T>
inline bool offsets_fit(int64_t nb, int64_t out) {
  return nb >= 0 && out >= 0 && (out == 0 || nb <= int64_t(0x7fffffff) / int64_t(sizeof(T)) / out);
}

// VN consecutive elements at p, all in range: one 16-byte load when ALIGNED
// (p 16-byte aligned), else VN scalar loads. Read-only path.
template <typename T, int VN, bool ALIGNED>
__device__ __forceinline__ void load_full(const T* __restrict__ p, T (&v)[VN]) {
  if constexpr (ALIGNED && VN * sizeof(T) == 16) {
    if constexpr (sizeof(T) == 4) {
      const float4 q = __ldg(reinterpret_cast<const float4*>(p));
      v[0] = q.x; v[1] = q.y; v[2] = q.z; v[3] = q.w;
    } else {
      const double2 q = __ldg(reinterpret_cast<const double2*>(p));
      v[0] = q.x; v[1] = q.y;
    }
  } else {
#pragma unroll
    for (int e = 0; e < VN; ++e) v[e] = __ldg(p + e);
  }
}

// p advanced by `off` bytes (unsigned 32-bit): a 64-bit add that takes a
// uniform register operand, so a loop-invariant offset costs no move.
template <typename T>
__device__ __forceinline__ const T* byte_offset(const T* p, unsigned off) {
  return reinterpret_cast<const T*>(reinterpret_cast<const unsigned char*>(p) + off);
}

// Workspace sub-buffers start on 256-byte boundaries.
inline size_t align256(size_t b) { return (b + 255) / 256 * 256; }

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

__host__ __device__ __forceinline__ int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Grid dimensions are capped; kernels loop over the tiles a capped grid does
// not reach, so any size works.
constexpr int64_t kMaxGridX = (int64_t(1) << 31) - 1;
constexpr int64_t kMaxGridYZ = 65535;

inline unsigned clamp_grid(int64_t tiles, int64_t cap) {
  return static_cast<unsigned>(tiles < 1 ? 1 : (tiles > cap ? cap : tiles));
}
inline unsigned grid_x(int64_t tiles) { return clamp_grid(tiles, kMaxGridX); }
inline unsigned grid_yz(int64_t tiles) { return clamp_grid(tiles, kMaxGridYZ); }

// Number of SMs of the current device (cudaDeviceGetAttribute does not
// synchronise and is legal during stream capture); cached per device.
int current_sm_count();

}  // namespace cuda
}  // namespace kanext
