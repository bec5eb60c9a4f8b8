// CUDA kernels of kanext.spline_activation and its backward (schemas in
// csrc/ops.cpp, launchers declared in cuda_launch_stats.h):
//
//   y[n,c]      = sb[c] b(z) + sp[c] sum_q coef[c, s+q] B_{s+q}(z)       (z = z[n,c])
//   gz[n,c]     = gy[n,c] (sb[c] b'(z) + sp[c] sum_q coef[c, s+q] B'_{s+q}(z))
//   S[c,g]      = sum_n gy[n,c] B_g(z[n,c])
//   gcoef[c,g]  = sp[c] S[c,g];   gsp[c] = sum_g coef[c,g] S[c,g];   gsb[c] = sum_n gy[n,c] b(z[n,c])
//
// Forward and grad_z are elementwise and memory-bound: one thread per
// element of the flat (N*C) array, a grid-stride loop, so every warp reads z
// (and gy) and writes y (or gz) as 32 consecutive elements: one read of each
// input, one write of the output, coalesced, for any C. The channel index
// c = e mod C is computed once and then advanced by (stride mod C) per step
// (no 64-bit division in the loop). The per-channel knots and coefficients
// (C * (M + G + k + 2) values) are gathered through the read-only cache;
// they are shared by every row, so they stay cached. Each element evaluates
// its k+1 local bases (kanext/bspline.h, the same code as the other kernels),
// so the cost is independent of G.
//
// Weight gradients: reductions over the batch, no atomics. A block (256
// threads) owns CT channels (CT a power of two, the smallest >= C, at most
// 256) x R = 256 / CT row lanes, a range of GR basis rows (the whole
// 0..G+k-1 unless G is large), and one slice of the batch. Thread (r, cl)
// walks rows n = r, r + R, ... of the slice for channel c0 + cl and adds
// gy B_q(z) to its own accumulators acc[g][tid] in shared memory (a column
// that only this thread touches: no atomics, no barriers in the loop; the
// column layout keeps the accesses of a warp on distinct banks), and
// gy b(z) to a register. Small C thus still fills the block (C = 1: 256 row
// lanes), and a warp's loads of z[n, c0..] / gy[n, c0..] are contiguous.
// After the walk, one barrier, then the R row lanes of each (channel, basis)
// are added in lane order and the slice's partial sums are written to the
// workspace, laid out [slice][g][c] (coalesced writes). A combine kernel (one
// thread per channel) adds the slices in slice order and forms gcoef, gsb and
// gsp. The slice count depends only on the sizes and the SM count, so the
// results are bit-identical run to run on one GPU model.
//
// The backward reads z and gy twice when both gz and the weight gradients are
// asked for (the two kernels are independent); fusing grad_z into the
// weight kernel would save one read of each when GR covers all bases.
//
// Semantics equal the CPU kernel: a NaN z gives NaN y and NaN gz, and adds
// nothing to its channel's weight gradients; outside the grid (+-inf
// included) only the base term remains; base 0 adds nothing to gsb (zero).
#include "common.cuh"
#include "cuda_launch_stats.h"

namespace kanext {
namespace cuda {
namespace act {

constexpr int kThreads = 256;
constexpr size_t kAccBudget = 64 * 1024;  // shared accumulator bytes per block

// Elementwise: y (DERIV = false) or gz (DERIV = true, gy given).
template <typename T, int K, bool DERIV>
__global__ void __launch_bounds__(kThreads)
elementwise_kernel(const T* __restrict__ z, const T* __restrict__ gy, const T* __restrict__ grid, int64_t N,
                   int64_t C, int64_t M, int base, const T* __restrict__ coef, const T* __restrict__ sb,
                   const T* __restrict__ sp, T* __restrict__ out) {
  const int64_t nb = M - K - 1;
  const int64_t total = N * C;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= total) return;
  int64_t c = e % C;
  const int64_t step = stride % C;
  const bool has_base = base != kBaseZero;
  for (; e < total; e += stride) {
    const T zv = z[e];
    T v[K + 1], dv[K + 1];
    const int s = basis_window<T, K, DERIV>(grid + c * M, M, zv, v, dv);
    T spl = T(0);
    if (s >= 0) {
      const T* cf = coef + c * nb + s;
#pragma unroll
      for (int q = 0; q <= K; ++q) spl = fma(__ldg(cf + q), DERIV ? dv[q] : v[q], spl);
    }
    T r = __ldg(sp + c) * spl;
    if (has_base) r = fma(__ldg(sb + c), DERIV ? base_derivative<T>(base, zv) : base_value<T>(base, zv), r);
    if (DERIV) r = gy[e] * r;
    out[e] = s == kNaN ? T(NAN) : r;
    c += step;
    if (c >= C) c -= C;
  }
}

struct Plan {
  int ct = 1;            // channels per block (power of two)
  int rl = 256;          // row lanes, ct * rl = 256
  int gr = 1;            // basis rows per block
  int64_t n_gr = 1;      // basis-row ranges
  int64_t col_tiles = 1;
  int64_t slices = 1, slice_rows = 0;
  size_t acc_bytes = 0;  // dynamic shared memory
};


inline Plan plan(int64_t N, int64_t C, int64_t M, int k, size_t elem) {
  Plan p;
  const int64_t nb = M - k - 1;
  p.ct = 1;
  while (p.ct < C && p.ct < kThreads) p.ct *= 2;
  p.rl = kThreads / p.ct;
  const int64_t max_rows = static_cast<int64_t>(kAccBudget / (kThreads * elem));
  p.n_gr = ceil_div(nb, max_rows);
  p.gr = static_cast<int>(ceil_div(nb, p.n_gr));  // balanced ranges
  p.acc_bytes = size_t(p.gr) * kThreads * elem;
  p.col_tiles = ceil_div(C, p.ct);
  const int64_t per_slice = p.col_tiles * p.n_gr;
  const int64_t target = 4 * int64_t(current_sm_count());
  int64_t slices = ceil_div(target, per_slice);
  const int64_t min_rows = 16 * int64_t(p.rl) > 512 ? 16 * int64_t(p.rl) : 512;  // >= 16 rows per thread
  const int64_t by_rows = N / min_rows;
  if (slices > by_rows) slices = by_rows;
  if (slices > 64) slices = 64;
  if (slices < 1) slices = 1;
  p.slices = slices;
  p.slice_rows = ceil_div(N, slices);
  return p;
}

// Workspace: partial basis sums [slice][nb][C], then partial base sums [slice][C].
inline size_t part_s_bytes(const Plan& p, int64_t C, int64_t nb, size_t elem) {
  return align256(size_t(p.slices) * size_t(nb) * size_t(C) * elem);
}
inline size_t workspace_bytes(const Plan& p, int64_t C, int64_t nb, size_t elem) {
  return part_s_bytes(p, C, nb, elem) + align256(size_t(p.slices) * size_t(C) * elem);
}

template <typename T, int K>
__global__ void __launch_bounds__(kThreads)
weights_kernel(const T* __restrict__ gy, const T* __restrict__ z, const T* __restrict__ grid, int64_t N, int64_t C,
               int64_t M, int base, int ct, int gr, int64_t n_gr, int64_t col_tiles, int64_t slices,
               int64_t slice_rows, T* __restrict__ part_s, T* __restrict__ part_b) {
  KANEXT_DYNAMIC_SMEM(s_raw);
  T* s_acc = reinterpret_cast<T*>(s_raw);  // [gr][kThreads]
  __shared__ T s_b[kThreads];

  const int64_t nb = M - K - 1;
  const int tid = threadIdx.x;
  const int rl = kThreads / ct;
  const int r = tid / ct, cl = tid % ct;
  const bool has_base = base != kBaseZero;
  const int64_t tiles = col_tiles * n_gr;

  for (int64_t sl = blockIdx.y; sl < slices; sl += gridDim.y) {
    const int64_t nbeg = sl * slice_rows;
    const int64_t nend = nbeg + slice_rows < N ? nbeg + slice_rows : N;
    for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
      const int64_t grng = tile % n_gr, ctile = tile / n_gr;
      const int64_t g_lo = grng * gr;
      const int g_cnt = static_cast<int>(nb - g_lo < gr ? nb - g_lo : gr);
      const int64_t c = ctile * ct + cl;
      const bool do_base = has_base && g_lo == 0;
      for (int g = 0; g < gr; ++g) s_acc[g * kThreads + tid] = T(0);
      T accb = T(0);
      if (c < C) {
        const T* t = grid + c * M;
        for (int64_t n = nbeg + r; n < nend; n += rl) {
          const T zv = z[n * C + c];
          T v[K + 1], dv[K + 1];
          const int s = basis_window<T, K, false>(t, M, zv, v, dv);
          if (s == kNaN) continue;  // NaN z adds nothing to the weight gradients
          const T d = gy[n * C + c];
          if (do_base) accb = fma(base_value<T>(base, zv), d, accb);
          if (s >= 0) {
#pragma unroll
            for (int q = 0; q <= K; ++q) {
              const int64_t g = s + q - g_lo;
              if (g >= 0 && g < g_cnt) s_acc[g * kThreads + tid] = fma(v[q], d, s_acc[g * kThreads + tid]);
            }
          }
        }
      }
      s_b[tid] = accb;
      __syncthreads();
      // Add the row lanes in lane order; one (basis, channel) entry per step.
      for (int e = tid; e < g_cnt * ct; e += kThreads) {
        const int g = e / ct, ce = e % ct;
        const int64_t cc = ctile * ct + ce;
        T sum = s_acc[g * kThreads + ce];
        for (int rr = 1; rr < rl; ++rr) sum += s_acc[g * kThreads + rr * ct + ce];
        if (cc < C) part_s[(sl * nb + g_lo + g) * C + cc] = sum;
      }
      if (g_lo == 0 && tid < ct) {
        const int64_t cc = ctile * ct + tid;
        T sum = s_b[tid];
        for (int rr = 1; rr < rl; ++rr) sum += s_b[rr * ct + tid];
        if (cc < C) part_b[sl * C + cc] = sum;
      }
      __syncthreads();  // the next tile reuses the accumulators
    }
  }
}

// One thread per channel: slices added in slice order, then gcoef, gsb, gsp.
template <typename T>
__global__ void __launch_bounds__(kThreads)
combine_kernel(const T* __restrict__ part_s, const T* __restrict__ part_b, int64_t C, int64_t nb, int64_t slices,
               const T* __restrict__ coef, const T* __restrict__ sp, T* __restrict__ gcoef, T* __restrict__ gsb,
               T* __restrict__ gsp) {
  for (int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; c < C; c += int64_t(gridDim.x) * blockDim.x) {
    const T spc = sp[c];
    T acc_sp = T(0);
    for (int64_t g = 0; g < nb; ++g) {
      T S = part_s[g * C + c];
      for (int64_t s = 1; s < slices; ++s) S += part_s[(s * nb + g) * C + c];
      gcoef[c * nb + g] = spc * S;
      acc_sp = fma(coef[c * nb + g], S, acc_sp);
    }
    gsp[c] = acc_sp;
    T b = part_b[c];
    for (int64_t s = 1; s < slices; ++s) b += part_b[s * C + c];
    gsb[c] = b;
  }
}

inline unsigned elementwise_blocks(int64_t total) {
  // Enough resident blocks for full occupancy, and the grid-stride loop beyond.
  const int64_t cap = int64_t(current_sm_count()) * 16;
  const int64_t b = ceil_div(total, kThreads);
  return grid_x(b < cap ? b : cap);
}

template <typename T>
cudaError_t launch_forward(const T* z, const T* grid, int64_t N, int64_t C, int64_t M, int k, int base, const T* coef,
                           const T* sb, const T* sp, T* y, cudaStream_t stream) {
  if (N == 0 || C == 0) return cudaSuccess;
  const unsigned blocks = elementwise_blocks(N * C);
  return dispatch_order(k, [&](auto KC) {
    constexpr int K = decltype(KC)::value;
    KANEXT_LAUNCH(blocks, kThreads, 0, stream, elementwise_kernel<T, K, false>)(z, static_cast<const T*>(nullptr),
                                                                                grid, N, C, M, base, coef, sb, sp,
                                                                                y);
    return cudaGetLastError();
  });
}

template <typename T>
cudaError_t launch_backward(const T* gy, const T* z, const T* grid, int64_t N, int64_t C, int64_t M, int k, int base,
                            const T* coef, const T* sb, const T* sp, bool need_z, bool need_w, T* gz, T* gcoef,
                            T* gsb, T* gsp, void* workspace, size_t workspace_bytes_given, cudaStream_t stream) {
  if (N == 0 || C == 0) return cudaSuccess;
  const int64_t nb = M - k - 1;
  Plan p;
  if (need_w) {
    p = plan(N, C, M, k, sizeof(T));
    if (workspace_bytes_given < workspace_bytes(p, C, nb, sizeof(T))) return cudaErrorInvalidValue;
  }
  cudaError_t err = cudaSuccess;
  if (need_z) {
    const unsigned blocks = elementwise_blocks(N * C);
    err = dispatch_order(k, [&](auto KC) {
      constexpr int K = decltype(KC)::value;
      KANEXT_LAUNCH(blocks, kThreads, 0, stream, elementwise_kernel<T, K, true>)(z, gy, grid, N, C, M, base, coef,
                                                                                 sb, sp, gz);
      return cudaGetLastError();
    });
    if (err != cudaSuccess) return err;
  }
  if (need_w) {
    T* part_s = static_cast<T*>(workspace);
    T* part_b = reinterpret_cast<T*>(static_cast<unsigned char*>(workspace) + part_s_bytes(p, C, nb, sizeof(T)));
    const dim3 blocks(grid_x(p.col_tiles * p.n_gr), grid_yz(p.slices));
    err = dispatch_order(k, [&](auto KC) {
      constexpr int K = decltype(KC)::value;
      auto kernel = weights_kernel<T, K>;
      const size_t static_bytes = kThreads * sizeof(T);
      if (p.acc_bytes + static_bytes > 48 * 1024) {
        // A function attribute, not a stream operation: legal during capture.
        const cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                   static_cast<int>(p.acc_bytes));
        if (e != cudaSuccess) return e;
      }
      KANEXT_LAUNCH(blocks, kThreads, p.acc_bytes, stream, kernel)(gy, z, grid, N, C, M, base, p.ct, p.gr, p.n_gr,
                                                                   p.col_tiles, p.slices, p.slice_rows, part_s,
                                                                   part_b);
      return cudaGetLastError();
    });
    if (err != cudaSuccess) return err;
    const unsigned cblocks = grid_x(ceil_div(C, kThreads));
    KANEXT_LAUNCH(cblocks, kThreads, 0, stream, combine_kernel<T>)(part_s, part_b, C, nb, p.slices, coef, sp, gcoef,
                                                                   gsb, gsp);
    err = cudaGetLastError();
  }
  return err;
}

}  // namespace act

size_t spline_activation_backward_workspace_bytes(int64_t N, int64_t C, int64_t M, int k, size_t elem_size,
                                                  bool need_w) {
  if (!need_w || N == 0 || C == 0) return 0;
  const act::Plan p = act::plan(N, C, M, k, elem_size);
  return act::workspace_bytes(p, C, M - k - 1, elem_size);
}

cudaError_t launch_spline_activation_f32(const float* z, const float* grid, int64_t N, int64_t C, int64_t M, int k,
                                         int base, const float* coef, const float* sb, const float* sp, float* y,
                                         cudaStream_t stream) {
  return act::launch_forward<float>(z, grid, N, C, M, k, base, coef, sb, sp, y, stream);
}

cudaError_t launch_spline_activation_f64(const double* z, const double* grid, int64_t N, int64_t C, int64_t M,
                                         int k, int base, const double* coef, const double* sb, const double* sp,
                                         double* y, cudaStream_t stream) {
  return act::launch_forward<double>(z, grid, N, C, M, k, base, coef, sb, sp, y, stream);
}

cudaError_t launch_spline_activation_backward_f32(const float* gy, const float* z, const float* grid, int64_t N,
                                                  int64_t C, int64_t M, int k, int base, const float* coef,
                                                  const float* sb, const float* sp, bool need_z, bool need_w,
                                                  float* gz, float* gcoef, float* gsb, float* gsp, void* workspace,
                                                  size_t workspace_bytes, cudaStream_t stream) {
  return act::launch_backward<float>(gy, z, grid, N, C, M, k, base, coef, sb, sp, need_z, need_w, gz, gcoef, gsb,
                                     gsp, workspace, workspace_bytes, stream);
}

cudaError_t launch_spline_activation_backward_f64(const double* gy, const double* z, const double* grid, int64_t N,
                                                  int64_t C, int64_t M, int k, int base, const double* coef,
                                                  const double* sb, const double* sp, bool need_z, bool need_w,
                                                  double* gz, double* gcoef, double* gsb, double* gsp,
                                                  void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  return act::launch_backward<double>(gy, z, grid, N, C, M, k, base, coef, sb, sp, need_z, need_w, gz, gcoef, gsb,
                                      gsp, workspace, workspace_bytes, stream);
}

}  // namespace cuda
}  // namespace kanext
