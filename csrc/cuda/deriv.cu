// CUDA kernels of the derivative ops (schemas and math in csrc/ops.cpp;
// bindings kan_linear_deriv_cuda.cpp, spline_activation_deriv_cuda.cpp and
// spline_basis_cuda.cpp; CPU twin csrc/cpu/deriv_kernels.h; autograd in
// kanext/autodiff.py): kan_linear_eval / _transpose / _wgrad,
// spline_activation_eval / _wgrad and spline_basis_deriv of any order.
//
// Local support on CUDA cores, one fused pass each, no (N, in, G+k) or
// (N, in, out) tensor: every term is bspline.h's edge_terms (the k+1 basis
// derivatives of order m and the base's) of one (n, i) entry. These serve the
// second and higher derivatives and torch.func; the first-order pass keeps
// its tuned kernels. Deterministic: every output element has one owner that
// sums in a fixed order (no atomics). Written for correctness first: the
// weight-gradient kernels accumulate in global memory and the activation's
// per-channel sums run one thread per channel (see bench/RESULTS.md).
#include "common.cuh"

namespace kanext {
namespace cuda {
namespace {

constexpr int kThreads = 128;
constexpr int kChunk = 32;  // (n, i) entries whose terms a block stages in shared memory at once

// Terms of one entry into shared slot r: window start (-1 outside, -2 NaN),
// w * B^(m) values and w * b^(m).
template <typename T, int K>
__device__ __forceinline__ void stage_terms(const T* __restrict__ t, int64_t M, int m, int64_t base, T x, T w,
                                            int* s_start, T (*s_val)[K + 1], T* s_b, int r) {
  T val[kMaxOrder + 1], bm;
  const int s = static_cast<int>(edge_terms<T>(t, M, K, m, base, x, val, &bm));
  s_start[r] = s;
  s_b[r] = w * bm;
#pragma unroll
  for (int q = 0; q <= K; ++q) s_val[r][q] = s >= 0 ? w * val[q] : T(0);
}

// y[n, j] = sum_i v[n, i] phi^(m)_ij(x[n, i]); a block owns (row n, 128 columns).
template <typename T, int K>
__global__ void __launch_bounds__(kThreads)
kan_linear_eval_kernel(const T* __restrict__ x, const T* __restrict__ v, const T* __restrict__ grid, int64_t N,
                       int64_t in, int64_t M, int m, int64_t base, const T* __restrict__ Wb,
                       const T* __restrict__ Wc, int64_t out, T* __restrict__ y) {
  __shared__ int s_start[kChunk];
  __shared__ T s_val[kChunk][K + 1];
  __shared__ T s_b[kChunk];
  const int64_t nb = M - K - 1;
  const int64_t jt = ceil_div(out, kThreads);
  const int tid = threadIdx.x;
  for (int64_t tile = blockIdx.x; tile < N * jt; tile += gridDim.x) {
    const int64_t n = tile / jt, j = (tile % jt) * kThreads + tid;
    T acc = T(0);
    bool nan = false;
    for (int64_t i0 = 0; i0 < in; i0 += kChunk) {
      const int cnt = static_cast<int>(in - i0 < kChunk ? in - i0 : kChunk);
      if (tid < cnt) {
        const int64_t i = i0 + tid;
        stage_terms<T, K>(grid + i * M, M, m, base, x[n * in + i], v ? v[n * in + i] : T(1), s_start, s_val, s_b,
                          tid);
      }
      __syncthreads();
      if (j < out) {
        for (int r = 0; r < cnt; ++r) {
          const int s = s_start[r];
          const int64_t i = i0 + r;
          if (s == -2) nan = true;
          if (s < -1) continue;
          if (base != kBaseZero) acc += s_b[r] * Wb[i * out + j];
          if (s < 0) continue;
#pragma unroll
          for (int q = 0; q <= K; ++q) acc += s_val[r][q] * Wc[(i * nb + s + q) * out + j];
        }
      }
      __syncthreads();
    }
    if (j < out) y[n * out + j] = nan ? T(NAN) : acc;
  }
}

// gx[n, i] = sum_j dy[n, j] phi^(m)_ij(x[n, i]); a warp owns one (n, i).
template <typename T, int K>
__global__ void __launch_bounds__(kThreads)
kan_linear_transpose_kernel(const T* __restrict__ dy, const T* __restrict__ x, const T* __restrict__ grid, int64_t N,
                            int64_t in, int64_t M, int m, int64_t base, const T* __restrict__ Wb,
                            const T* __restrict__ Wc, int64_t out, T* __restrict__ gx) {
  const int64_t nb = M - K - 1;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  constexpr int kWarps = kThreads / 32;
  for (int64_t p = int64_t(blockIdx.x) * kWarps + warp; p < N * in; p += int64_t(gridDim.x) * kWarps) {
    const int64_t n = p / in, i = p % in;
    T val[kMaxOrder + 1], bm;
    const int64_t s = edge_terms<T>(grid + i * M, M, K, m, base, x[p], val, &bm);
    T acc = T(0);
    if (s >= -1) {
      for (int64_t j = lane; j < out; j += 32) {
        const T d = dy[n * out + j];
        T phi = base != kBaseZero ? bm * Wb[i * out + j] : T(0);
        if (s >= 0) {
#pragma unroll
          for (int q = 0; q <= K; ++q) phi += val[q] * Wc[(i * nb + s + q) * out + j];
        }
        acc += d * phi;
      }
    }
    for (int off = 16; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
    if (lane == 0) gx[p] = s == -2 ? T(NAN) : acc;
  }
}

// gWb[i, j] = sum_n v b^(m) dy[n, j], gWc[i, g, j] = sum_n v B_g^(m) dy[n, j]; a
// block owns (input i, 128 columns) and walks the batch in order. gWc must be
// zeroed by the caller (it is accumulated in place).
template <typename T, int K>
__global__ void __launch_bounds__(kThreads)
kan_linear_wgrad_kernel(const T* __restrict__ dy, const T* __restrict__ x, const T* __restrict__ v,
                        const T* __restrict__ grid, int64_t N, int64_t in, int64_t M, int m, int64_t base,
                        int64_t out, T* __restrict__ gWb, T* __restrict__ gWc) {
  __shared__ int s_start[kChunk];
  __shared__ T s_val[kChunk][K + 1];
  __shared__ T s_b[kChunk];
  const int64_t nb = M - K - 1;
  const int64_t jt = ceil_div(out, kThreads);
  const int tid = threadIdx.x;
  for (int64_t tile = blockIdx.x; tile < in * jt; tile += gridDim.x) {
    const int64_t i = tile / jt, j = (tile % jt) * kThreads + tid;
    T accb = T(0);
    for (int64_t n0 = 0; n0 < N; n0 += kChunk) {
      const int cnt = static_cast<int>(N - n0 < kChunk ? N - n0 : kChunk);
      if (tid < cnt) {
        const int64_t n = n0 + tid;
        stage_terms<T, K>(grid + i * M, M, m, base, x[n * in + i], v ? v[n * in + i] : T(1), s_start, s_val, s_b,
                          tid);
      }
      __syncthreads();
      if (j < out) {
        for (int r = 0; r < cnt; ++r) {
          const int s = s_start[r];
          if (s < -1) continue;  // NaN input: adds nothing
          const T d = dy[(n0 + r) * out + j];
          accb += s_b[r] * d;
          if (s < 0) continue;
#pragma unroll
          for (int q = 0; q <= K; ++q) gWc[(i * nb + s + q) * out + j] += s_val[r][q] * d;
        }
      }
      __syncthreads();
    }
    if (j < out) gWb[i * out + j] = base != kBaseZero ? accb : T(0);
  }
}

// y[n, c] = sb[c] b^(m)(z) + sp[c] sum_q coef[c, s+q] B^(m)_{s+q}(z); a thread per element.
template <typename T, int K>
__global__ void __launch_bounds__(kThreads)
spline_activation_eval_kernel(const T* __restrict__ z, const T* __restrict__ grid, int64_t N, int64_t C, int64_t M,
                              int m, int64_t base, const T* __restrict__ coef, const T* __restrict__ sb,
                              const T* __restrict__ sp, T* __restrict__ y) {
  const int64_t nb = M - K - 1;
  for (int64_t e = int64_t(blockIdx.x) * kThreads + threadIdx.x; e < N * C; e += int64_t(gridDim.x) * kThreads) {
    const int64_t c = e % C;
    T val[kMaxOrder + 1], bm;
    const int64_t s = edge_terms<T>(grid + c * M, M, K, m, base, z[e], val, &bm);
    if (s == -2) {
      y[e] = T(NAN);
      continue;
    }
    T spl = T(0);
    if (s >= 0) {
#pragma unroll
      for (int q = 0; q <= K; ++q) spl += coef[c * nb + s + q] * val[q];
    }
    y[e] = (base != kBaseZero ? sb[c] * bm : T(0)) + sp[c] * spl;
  }
}

// SB[c, g] = sum_n gy B_g^(m)(z), Sb[c] = sum_n gy b^(m)(z); a thread per channel
// walks the batch in order. SB must be zeroed by the caller.
template <typename T, int K>
__global__ void __launch_bounds__(kThreads)
spline_activation_wgrad_kernel(const T* __restrict__ gy, const T* __restrict__ z, const T* __restrict__ grid,
                               int64_t N, int64_t C, int64_t M, int m, int64_t base, T* __restrict__ SB,
                               T* __restrict__ Sb) {
  const int64_t nb = M - K - 1;
  for (int64_t c = int64_t(blockIdx.x) * kThreads + threadIdx.x; c < C; c += int64_t(gridDim.x) * kThreads) {
    T accb = T(0);
    for (int64_t n = 0; n < N; ++n) {
      T val[kMaxOrder + 1], bm;
      const int64_t s = edge_terms<T>(grid + c * M, M, K, m, base, z[n * C + c], val, &bm);
      if (s == -2) continue;
      const T g = gy[n * C + c];
      accb += g * bm;
      if (s >= 0) {
#pragma unroll
        for (int q = 0; q <= K; ++q) SB[c * nb + s + q] += g * val[q];
      }
    }
    Sb[c] = accb;
  }
}

// The order-m derivatives of the bases; out (N, in, G+k) zeroed by the caller.
template <typename T, int K>
__global__ void __launch_bounds__(kThreads)
spline_basis_order_kernel(const T* __restrict__ x, const T* __restrict__ grid, int64_t N, int64_t in, int64_t M,
                          int m, T* __restrict__ outp) {
  const int64_t nb = M - K - 1;
  for (int64_t p = int64_t(blockIdx.x) * kThreads + threadIdx.x; p < N * in; p += int64_t(gridDim.x) * kThreads) {
    const int64_t i = p % in;
    const T* t = grid + i * M;
    const int64_t g = find_interval<T>(t, M, x[p]);
    if (g < 0) continue;
    T val[kMaxOrder + 1];
    const int64_t s = local_bases_deriv<T>(t, M, K, m, g, x[p], val);
#pragma unroll
    for (int q = 0; q <= K; ++q) outp[p * nb + s + q] = val[q];
  }
}

// ---- edge_product / edge_product_wgrad (edge_stats' higher derivatives).
// The weight factor of edge (i, j): sign(phi) (mode 0) or phi^(c) (mode 1),
// from the order-c terms (vw, bw, window s) of the entry.
template <typename T, int K>
__device__ __forceinline__ T edge_weight(const T* __restrict__ Wb, const T* __restrict__ Wc, int64_t i, int64_t j,
                                         int64_t nb, int64_t out, int64_t s, const T* vw, T bw, bool has_base,
                                         int mode) {
  T w = has_base ? bw * Wb[i * out + j] : T(0);
  if (s >= 0) {
#pragma unroll
    for (int q = 0; q <= K; ++q) w += vw[q] * Wc[(i * nb + s + q) * out + j];
  }
  return mode == 0 ? T(w > T(0)) - T(w < T(0)) : w;
}

// P[n, i] = sum_j w_ij psi^(a)_ij(x[n, i]); a warp owns one (n, i). NaN x: 0.
template <typename T, int K>
__global__ void __launch_bounds__(kThreads)
edge_product_kernel(const T* __restrict__ x, const T* __restrict__ grid, int64_t N, int64_t in, int64_t M,
                    int64_t base, const T* __restrict__ Wb, const T* __restrict__ Wc, const T* __restrict__ Vb,
                    const T* __restrict__ Vc, int64_t out, int mode, int c, int a, T* __restrict__ P) {
  const int64_t nb = M - K - 1;
  const bool hb = base != kBaseZero;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  constexpr int kWarps = kThreads / 32;
  for (int64_t p = int64_t(blockIdx.x) * kWarps + warp; p < N * in; p += int64_t(gridDim.x) * kWarps) {
    const int64_t i = p % in;
    T vw[kMaxOrder + 1], bw, va[kMaxOrder + 1], ba;
    const int64_t s = edge_terms<T>(grid + i * M, M, K, mode == 0 ? 0 : c, base, x[p], vw, &bw);
    edge_terms<T>(grid + i * M, M, K, a, base, x[p], va, &ba);
    T acc = T(0);
    if (s >= -1) {
      for (int64_t j = lane; j < out; j += 32)
        acc += edge_weight<T, K>(Wb, Wc, i, j, nb, out, s, vw, bw, hb, mode) *
               edge_weight<T, K>(Vb, Vc, i, j, nb, out, s, va, ba, hb, 1);
    }
    for (int off = 16; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
    if (lane == 0) P[p] = acc;
  }
}

// Sb[i, j] = sum_n u w_ij b^(a), SB[i, g, j] = sum_n u w_ij B_g^(a); a block owns
// (input i, 128 columns) and walks the batch in order, each thread its own
// column (every output element has one owner: no atomics). SB must be zeroed
// by the caller (accumulated in place).
template <typename T, int K>
__global__ void __launch_bounds__(kThreads)
edge_product_wgrad_kernel(const T* __restrict__ x, const T* __restrict__ u, const T* __restrict__ grid, int64_t N,
                          int64_t in, int64_t M, int64_t base, const T* __restrict__ Wb, const T* __restrict__ Wc,
                          int64_t out, int mode, int c, int a, T* __restrict__ Sb, T* __restrict__ SB) {
  const int64_t nb = M - K - 1;
  const bool hb = base != kBaseZero;
  const int64_t jt = ceil_div(out, kThreads);
  for (int64_t tile = blockIdx.x; tile < in * jt; tile += gridDim.x) {
    const int64_t i = tile / jt, j = (tile % jt) * kThreads + threadIdx.x;
    if (j >= out) continue;
    T accb = T(0);
    for (int64_t n = 0; n < N; ++n) {
      const T xv = x[n * in + i];
      T vw[kMaxOrder + 1], bw, va[kMaxOrder + 1], ba;
      const int64_t s = edge_terms<T>(grid + i * M, M, K, mode == 0 ? 0 : c, base, xv, vw, &bw);
      if (s == -2) continue;
      edge_terms<T>(grid + i * M, M, K, a, base, xv, va, &ba);
      const T w = (u ? u[n * in + i] : T(1)) * edge_weight<T, K>(Wb, Wc, i, j, nb, out, s, vw, bw, hb, mode);
      accb += w * ba;
      if (s >= 0) {
#pragma unroll
        for (int q = 0; q <= K; ++q) SB[(i * nb + s + q) * out + j] += w * va[q];
      }
    }
    Sb[i * out + j] = hb ? accb : T(0);
  }
}

template <typename T>
cudaError_t eval(const T* x, const T* v, const T* grid, int64_t N, int64_t in, int64_t M, int k, int m, int64_t base,
                 const T* Wb, const T* Wc, int64_t out, T* y, cudaStream_t stream) {
  if (N == 0 || out == 0) return cudaSuccess;
  const unsigned blocks = grid_x(N * ceil_div(out, kThreads));
  return dispatch_order(k, [&](auto KC) {
    KANEXT_LAUNCH(blocks, kThreads, 0, stream, kan_linear_eval_kernel<T, decltype(KC)::value>)(
        x, v, grid, N, in, M, m, base, Wb, Wc, out, y);
    return cudaGetLastError();
  });
}

template <typename T>
cudaError_t transpose(const T* dy, const T* x, const T* grid, int64_t N, int64_t in, int64_t M, int k, int m,
                      int64_t base, const T* Wb, const T* Wc, int64_t out, T* gx, cudaStream_t stream) {
  if (N == 0 || in == 0) return cudaSuccess;
  const unsigned blocks = grid_x(ceil_div(N * in, kThreads / 32));
  return dispatch_order(k, [&](auto KC) {
    KANEXT_LAUNCH(blocks, kThreads, 0, stream, kan_linear_transpose_kernel<T, decltype(KC)::value>)(
        dy, x, grid, N, in, M, m, base, Wb, Wc, out, gx);
    return cudaGetLastError();
  });
}

template <typename T>
cudaError_t wgrad(const T* dy, const T* x, const T* v, const T* grid, int64_t N, int64_t in, int64_t M, int k, int m,
                  int64_t base, int64_t out, T* gWb, T* gWc, cudaStream_t stream) {
  if (in == 0 || out == 0) return cudaSuccess;
  const unsigned blocks = grid_x(in * ceil_div(out, kThreads));
  return dispatch_order(k, [&](auto KC) {
    KANEXT_LAUNCH(blocks, kThreads, 0, stream, kan_linear_wgrad_kernel<T, decltype(KC)::value>)(
        dy, x, v, grid, N, in, M, m, base, out, gWb, gWc);
    return cudaGetLastError();
  });
}

template <typename T>
cudaError_t act_eval(const T* z, const T* grid, int64_t N, int64_t C, int64_t M, int k, int m, int64_t base,
                     const T* coef, const T* sb, const T* sp, T* y, cudaStream_t stream) {
  if (N * C == 0) return cudaSuccess;
  const unsigned blocks = grid_x(ceil_div(N * C, kThreads));
  return dispatch_order(k, [&](auto KC) {
    KANEXT_LAUNCH(blocks, kThreads, 0, stream, spline_activation_eval_kernel<T, decltype(KC)::value>)(
        z, grid, N, C, M, m, base, coef, sb, sp, y);
    return cudaGetLastError();
  });
}

template <typename T>
cudaError_t act_wgrad(const T* gy, const T* z, const T* grid, int64_t N, int64_t C, int64_t M, int k, int m,
                      int64_t base, T* SB, T* Sb, cudaStream_t stream) {
  if (C == 0) return cudaSuccess;
  const unsigned blocks = grid_x(ceil_div(C, kThreads));
  return dispatch_order(k, [&](auto KC) {
    KANEXT_LAUNCH(blocks, kThreads, 0, stream, spline_activation_wgrad_kernel<T, decltype(KC)::value>)(
        gy, z, grid, N, C, M, m, base, SB, Sb);
    return cudaGetLastError();
  });
}

template <typename T>
cudaError_t basis_order(const T* x, const T* grid, int64_t N, int64_t in, int64_t M, int k, int m, T* out,
                        cudaStream_t stream) {
  if (N * in == 0) return cudaSuccess;
  const unsigned blocks = grid_x(ceil_div(N * in, kThreads));
  return dispatch_order(k, [&](auto KC) {
    KANEXT_LAUNCH(blocks, kThreads, 0, stream, spline_basis_order_kernel<T, decltype(KC)::value>)(
        x, grid, N, in, M, m, out);
    return cudaGetLastError();
  });
}

template <typename T>
cudaError_t edge_product(const T* x, const T* grid, int64_t N, int64_t in, int64_t M, int k, int64_t base,
                         const T* Wb, const T* Wc, const T* Vb, const T* Vc, int64_t out, int mode, int c, int a,
                         T* P, cudaStream_t stream) {
  if (N * in == 0) return cudaSuccess;
  const unsigned blocks = grid_x(ceil_div(N * in, kThreads / 32));
  return dispatch_order(k, [&](auto KC) {
    KANEXT_LAUNCH(blocks, kThreads, 0, stream, edge_product_kernel<T, decltype(KC)::value>)(
        x, grid, N, in, M, base, Wb, Wc, Vb, Vc, out, mode, c, a, P);
    return cudaGetLastError();
  });
}

template <typename T>
cudaError_t edge_product_wgrad(const T* x, const T* u, const T* grid, int64_t N, int64_t in, int64_t M, int k,
                               int64_t base, const T* Wb, const T* Wc, int64_t out, int mode, int c, int a, T* Sb,
                               T* SB, cudaStream_t stream) {
  if (in == 0 || out == 0) return cudaSuccess;
  const unsigned blocks = grid_x(in * ceil_div(out, kThreads));
  return dispatch_order(k, [&](auto KC) {
    KANEXT_LAUNCH(blocks, kThreads, 0, stream, edge_product_wgrad_kernel<T, decltype(KC)::value>)(
        x, u, grid, N, in, M, base, Wb, Wc, out, mode, c, a, Sb, SB);
    return cudaGetLastError();
  });
}

}  // namespace

#define KANEXT_DERIV_LAUNCHERS(T, SUF)                                                                              \
  cudaError_t launch_kan_linear_eval_##SUF(const T* x, const T* v, const T* grid, int64_t N, int64_t in, int64_t M, \
                                           int k, int m, int64_t base, const T* Wb, const T* Wc, int64_t out, T* y, \
                                           cudaStream_t stream) {                                                   \
    return eval<T>(x, v, grid, N, in, M, k, m, base, Wb, Wc, out, y, stream);                                       \
  }                                                                                                                 \
  cudaError_t launch_kan_linear_transpose_##SUF(const T* dy, const T* x, const T* grid, int64_t N, int64_t in,      \
                                                int64_t M, int k, int m, int64_t base, const T* Wb, const T* Wc,    \
                                                int64_t out, T* gx, cudaStream_t stream) {                          \
    return transpose<T>(dy, x, grid, N, in, M, k, m, base, Wb, Wc, out, gx, stream);                                \
  }                                                                                                                 \
  cudaError_t launch_kan_linear_wgrad_##SUF(const T* dy, const T* x, const T* v, const T* grid, int64_t N,          \
                                            int64_t in, int64_t M, int k, int m, int64_t base, int64_t out, T* gWb, \
                                            T* gWc, cudaStream_t stream) {                                          \
    return wgrad<T>(dy, x, v, grid, N, in, M, k, m, base, out, gWb, gWc, stream);                                   \
  }                                                                                                                 \
  cudaError_t launch_spline_activation_eval_##SUF(const T* z, const T* grid, int64_t N, int64_t C, int64_t M,       \
                                                  int k, int m, int64_t base, const T* coef, const T* sb,           \
                                                  const T* sp, T* y, cudaStream_t stream) {                         \
    return act_eval<T>(z, grid, N, C, M, k, m, base, coef, sb, sp, y, stream);                                      \
  }                                                                                                                 \
  cudaError_t launch_spline_activation_wgrad_##SUF(const T* gy, const T* z, const T* grid, int64_t N, int64_t C,    \
                                                   int64_t M, int k, int m, int64_t base, T* SB, T* Sb,             \
                                                   cudaStream_t stream) {                                           \
    return act_wgrad<T>(gy, z, grid, N, C, M, k, m, base, SB, Sb, stream);                                          \
  }                                                                                                                 \
  cudaError_t launch_spline_basis_order_##SUF(const T* x, const T* grid, int64_t N, int64_t in, int64_t M, int k,   \
                                              int m, T* out, cudaStream_t stream) {                                 \
    return basis_order<T>(x, grid, N, in, M, k, m, out, stream);                                                    \
  }                                                                                                                 \
  cudaError_t launch_edge_product_##SUF(const T* x, const T* grid, int64_t N, int64_t in, int64_t M, int k,         \
                                        int64_t base, const T* Wb, const T* Wc, const T* Vb, const T* Vc,           \
                                        int64_t out, int mode, int c, int a, T* P, cudaStream_t stream) {           \
    return edge_product<T>(x, grid, N, in, M, k, base, Wb, Wc, Vb, Vc, out, mode, c, a, P, stream);                 \
  }                                                                                                                 \
  cudaError_t launch_edge_product_wgrad_##SUF(const T* x, const T* u, const T* grid, int64_t N, int64_t in,         \
                                              int64_t M, int k, int64_t base, const T* Wb, const T* Wc,             \
                                              int64_t out, int mode, int c, int a, T* Sb, T* SB,                    \
                                              cudaStream_t stream) {                                                \
    return edge_product_wgrad<T>(x, u, grid, N, in, M, k, base, Wb, Wc, out, mode, c, a, Sb, SB, stream);           \
  }

KANEXT_DERIV_LAUNCHERS(float, f32)
KANEXT_DERIV_LAUNCHERS(double, f64)

#undef KANEXT_DERIV_LAUNCHERS

}  // namespace cuda
}  // namespace kanext
