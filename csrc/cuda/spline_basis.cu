// CUDA kernels of kanext.spline_basis / spline_basis_deriv (schemas in
// csrc/ops.cpp), and the device-info helper of common.cuh.
//
// Each thread evaluates the k+1 non-zero bases of one (n, i) entry; the block
// then writes its 256 entries' full rows (G+k values each, zeros included) as
// one contiguous, coalesced range of the output. This writes every output
// element exactly once (no memset pass) and keeps the stores coalesced even
// for large G, where a per-entry scatter of k+1 values would touch one sector
// per entry.
#include "common.cuh"

namespace kanext {
namespace cuda {

int current_sm_count() {
  constexpr int kMaxDevices = 64;
  static int cache[kMaxDevices] = {};  // 0 = unknown; a benign race at worst recomputes
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || dev < 0) return 1;
  if (dev < kMaxDevices && cache[dev] > 0) return cache[dev];
  int sms = 0;
  if (cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess || sms <= 0) sms = 1;
  if (dev < kMaxDevices) cache[dev] = sms;
  return sms;
}

namespace {

constexpr int kBasisThreads = 256;

template <typename T, int K, bool DERIV>
__global__ void __launch_bounds__(kBasisThreads)
spline_basis_kernel(const T* __restrict__ x, const T* __restrict__ grid, int64_t pairs, int64_t in, int64_t M,
                    T* __restrict__ out) {
  const int64_t nb = M - K - 1;
  __shared__ int s_start[kBasisThreads];
  __shared__ T s_val[K + 1][kBasisThreads];
  for (int64_t p0 = int64_t(blockIdx.x) * kBasisThreads; p0 < pairs; p0 += int64_t(gridDim.x) * kBasisThreads) {
    const int cnt = static_cast<int>(pairs - p0 < kBasisThreads ? pairs - p0 : kBasisThreads);
    const int tid = threadIdx.x;
    if (tid < cnt) {
      const int64_t p = p0 + tid;
      const int64_t i = p % in;
      T v[K + 1], dv[K + 1];
      const int s = basis_window<T, K, DERIV>(grid + i * M, M, x[p], v, dv);
      s_start[tid] = s;  // NaN and outside both give all-zero rows
#pragma unroll
      for (int q = 0; q <= K; ++q) s_val[q][tid] = s >= 0 ? (DERIV ? dv[q] : v[q]) : T(0);
    }
    __syncthreads();
    // The block's rows are out[p0 * nb, (p0 + cnt) * nb): one contiguous range.
    T* o = out + p0 * nb;
    const int64_t total = int64_t(cnt) * nb;
    for (int64_t e = tid; e < total; e += kBasisThreads) {
      const int64_t r = e / nb;
      const int64_t c = e - r * nb;
      const int s = s_start[r];
      const int64_t rel = c - s;
      o[e] = (s >= 0 && rel >= 0 && rel <= K) ? s_val[rel][r] : T(0);
    }
    __syncthreads();
  }
}

template <typename T>
cudaError_t launch_spline_basis(const T* x, const T* grid, int64_t N, int64_t in, int64_t M, int k, bool deriv,
                                T* out, cudaStream_t stream) {
  const int64_t pairs = N * in;
  if (pairs == 0 || M - k - 1 <= 0) return cudaSuccess;
  const unsigned blocks = grid_x(ceil_div(pairs, kBasisThreads));
  return dispatch_order(k, [&](auto KC) {
    constexpr int K = decltype(KC)::value;
    if (deriv)
      KANEXT_LAUNCH(blocks, kBasisThreads, 0, stream, spline_basis_kernel<T, K, true>)(x, grid, pairs, in, M, out);
    else
      KANEXT_LAUNCH(blocks, kBasisThreads, 0, stream, spline_basis_kernel<T, K, false>)(x, grid, pairs, in, M, out);
    return cudaGetLastError();
  });
}

}  // namespace

cudaError_t launch_spline_basis_f32(const float* x, const float* grid, int64_t N, int64_t in, int64_t M, int k,
                                    bool deriv, float* out, cudaStream_t stream) {
  return launch_spline_basis<float>(x, grid, N, in, M, k, deriv, out, stream);
}

cudaError_t launch_spline_basis_f64(const double* x, const double* grid, int64_t N, int64_t in, int64_t M, int k,
                                    bool deriv, double* out, cudaStream_t stream) {
  return launch_spline_basis<double>(x, grid, N, in, M, k, deriv, out, stream);
}

}  // namespace cuda
}  // namespace kanext
