// CUDA kernels of kanext.edge_stats and its backward (schemas in
// csrc/ops.cpp, launchers declared in cuda_launch_stats.h). With
//
//   phi[n,i,j]  = b(x[n,i]) Wb[i,j] + sum_q B_{s+q}(x[n,i]) Wc[i,s+q,j]     (s = window start of (n,i))
//   dphi[n,i,j] = gS[i,j] + 2 gQ[i,j] phi + sign(phi) gA[i,j]
//
// the forward gives S, Q, A = sum_n phi, phi^2, |phi| (in, out) and the
// backward gives
//
//   gWb[i,j]   = sum_n b(x[n,i]) dphi[n,i,j]
//   gWc[i,g,j] = sum_n B_g(x[n,i]) dphi[n,i,j]
//   gx[n,i]    = sum_j dphi[n,i,j] (b'(x) Wb[i,j] + sum_q B'_{s+q}(x) Wc[i,s+q,j])
//
// without ever forming the (N, in, out) phi. Only the k+1 local bases of each
// (n, i) are evaluated (kanext/bspline.h): cost O(N in out (k+2)), flat in G.
//
// Forward and grad_W (the same shape of work as kan_linear's grad_W,
// kan_linear_backward.cuh): a block (256 threads) owns IC inputs x CT columns
// (IC * CT = 256, CT in {32,...,256} chosen from `out`) and one slice of the
// batch; each thread owns one edge (i, j). The slice is walked in chunks of
// 256 (n, i) entries whose bases (and b(x)) the block first stages in shared
// memory, one entry per thread. For every row each thread forms phi from the
// staged values and the k+1 rows of Wc it needs (read through the read-only
// cache; a warp shares its input, so the window start is warp-uniform and the
// 32 loads of a row are one contiguous segment). The forward keeps its three
// sums in registers. grad_W keeps gWb in a register and its gWc rows in a
// shared-memory column that only this thread touches (a range of GR basis
// rows per block when G is large, as in kan_linear's grad_W; phi then needs
// all k+1 rows regardless). Ownership removes atomics and barriers from the
// inner loop. When the (input, column) tiles alone do not fill the GPU (few
// edges, many rows), the batch is split into slices whose partial results go
// to a workspace and a second kernel adds them in slice order. The slice
// count depends only on the sizes and the SM count: bit-identical results
// run to run on one GPU model.
//
// grad_x: one warp owns 32 batch rows of one input. Each lane stages the
// bases, derivatives, b and b' of one row in shared memory; then for each
// row the lanes walk the columns (lane-strided, coalesced), form phi and dphi
// and the k+2 dot products of dphi with the Wc rows and Wb; each lane weights
// its dots by the derivatives (dots first, then weighted, as the CPU kernel
// does), a 5-step xor butterfly adds the lanes (fixed order), and lane r
// keeps row r's sum, so the final store is one per lane. No atomics.
//
// Semantics equal the CPU kernel: a NaN x[n, i] is skipped (it adds nothing
// to row i of any statistic or weight gradient, and its gx is 0); outside the
// grid only the base term remains (and nothing at all for base 0).
#include "edge_tiles.cuh"
#include "cuda_launch_stats.h"

namespace kanext {
namespace cuda {
namespace estats {

constexpr int kThreads = tiles::kThreads;
using tiles::Plan;
using tiles::stage_entry;

inline Plan plan(int64_t N, int64_t in, int64_t M, int k, int64_t out, size_t elem, bool grad_w) {
  return tiles::plan(N, in, M, k, out, elem, grad_w, /*sums=*/3);
}

// Forward: three partial arrays [slice][in][out]; grad_W: partial gWc, then gWb.
inline size_t forward_ws_bytes(const Plan& p, size_t elem) {
  return p.slices <= 1 ? 0 : 3 * align256(size_t(p.slices) * p.part * elem);
}
inline size_t grad_w_ws_bytes(const Plan& p, size_t elem) { return tiles::basis_rows_ws_bytes(p, elem); }

template <typename T>
__device__ __forceinline__ T abs_value(T v) { return v < T(0) ? -v : v; }

// phi of staged entry e for this thread's edge: b(x) Wb[i,j] + the k+1
// spline terms (wc points at Wc[i, 0, j]; s is the entry's window start).
template <typename T, int K>
__device__ __forceinline__ T staged_phi(const int* s_start, const T (*s_val)[kThreads], int e, bool has_base, T wb,
                                        const T* __restrict__ wc, int64_t out) {
  const int s = s_start[e];
  T phi = has_base ? s_val[K + 1][e] * wb : T(0);
  if (s >= 0) {
#pragma unroll
    for (int q = 0; q <= K; ++q) phi = fma(s_val[q][e], __ldg(wc + int64_t(s + q) * out), phi);
  }
  return phi;
}

// ------------------------------------------------------------------ forward
template <typename T, int K>
__global__ void __launch_bounds__(kThreads)
forward_kernel(const T* __restrict__ x, const T* __restrict__ grid, int64_t N, int64_t in, int64_t M, int base,
               const T* __restrict__ Wb, const T* __restrict__ Wc, int64_t out, int ct, int64_t col_tiles,
               int64_t in_tiles, int64_t slices, int64_t slice_rows, T* __restrict__ S, T* __restrict__ Q,
               T* __restrict__ A, int64_t stride) {
  __shared__ int s_start[kThreads];
  __shared__ T s_val[K + 2][kThreads];  // B_0..B_K, then b(x)

  const int64_t nb = M - K - 1;
  const int tid = threadIdx.x;
  const int icb = kThreads / ct;
  const int my_ic = tid / ct, c = tid % ct;
  const int st_r = tid / icb, st_ic = tid % icb;
  const int rows_per_chunk = kThreads / icb;  // = ct
  const bool has_base = base != kBaseZero;
  const int64_t tiles = in_tiles * col_tiles;

  for (int64_t sl = blockIdx.y; sl < slices; sl += gridDim.y) {
    const int64_t nbeg = sl * slice_rows;
    const int64_t nend = nbeg + slice_rows < N ? nbeg + slice_rows : N;
    for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
      const int64_t ctile = tile % col_tiles, itile = tile / col_tiles;
      const int64_t i = itile * icb + my_ic, j = ctile * ct + c;
      const bool mine_ok = i < in && j < out;
      const T wb = (mine_ok && has_base) ? __ldg(Wb + i * out + j) : T(0);
      const T* wc = Wc + (i * nb) * out + j;  // dereferenced only when mine_ok
      T as = T(0), aq = T(0), aa = T(0);
      for (int64_t nc = nbeg; nc < nend; nc += rows_per_chunk) {
        stage_entry<T, K>(x, grid, in, M, base, nc + st_r, nend, itile * icb + st_ic, s_start, s_val, tid);
        __syncthreads();
        const int rcnt = static_cast<int>(nend - nc < rows_per_chunk ? nend - nc : rows_per_chunk);
        if (mine_ok) {
          for (int r = 0; r < rcnt; ++r) {
            const int e = r * icb + my_ic;
            const int s = s_start[e];  // uniform across the warp
            if (s == kNaN || (s < 0 && !has_base)) continue;
            const T phi = staged_phi<T, K>(s_start, s_val, e, has_base, wb, wc, out);
            as += phi;
            aq = fma(phi, phi, aq);
            aa += abs_value(phi);
          }
        }
        __syncthreads();  // the next chunk overwrites the staged bases
      }
      if (mine_ok) {
        const int64_t o = sl * stride + i * out + j;
        S[o] = as;
        Q[o] = aq;
        A[o] = aa;
      }
    }
  }
}

// ------------------------------------------------------------------- grad_W
template <typename T, int K>
__global__ void __launch_bounds__(kThreads)
grad_w_kernel(const T* __restrict__ gS, const T* __restrict__ gQ, const T* __restrict__ gA, const T* __restrict__ x,
              const T* __restrict__ grid, int64_t N, int64_t in, int64_t M, int base, const T* __restrict__ Wb,
              const T* __restrict__ Wc, int64_t out, int ct, int gr, int64_t n_gr, int64_t col_tiles,
              int64_t in_tiles, int64_t slices, int64_t slice_rows, T* __restrict__ gWc, T* __restrict__ gWb,
              int64_t stride_c, int64_t stride_b) {
  KANEXT_DYNAMIC_SMEM(s_raw);
  T* s_acc = reinterpret_cast<T*>(s_raw);  // [ic][gr][ct]
  __shared__ int s_start[kThreads];
  __shared__ T s_val[K + 2][kThreads];

  const int64_t nb = M - K - 1;
  const int tid = threadIdx.x;
  const int icb = kThreads / ct;
  const int my_ic = tid / ct, c = tid % ct;
  const int st_r = tid / icb, st_ic = tid % icb;
  const int rows_per_chunk = kThreads / icb;
  const bool has_base = base != kBaseZero;
  const int64_t tiles = in_tiles * col_tiles * n_gr;

  for (int64_t sl = blockIdx.y; sl < slices; sl += gridDim.y) {
    const int64_t nbeg = sl * slice_rows;
    const int64_t nend = nbeg + slice_rows < N ? nbeg + slice_rows : N;
    for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
      const int64_t grng = tile % n_gr;
      const int64_t rest = tile / n_gr;
      const int64_t ctile = rest % col_tiles, itile = rest / col_tiles;
      const int64_t g_lo = grng * gr;
      const int g_cnt = static_cast<int>(nb - g_lo < gr ? nb - g_lo : gr);
      const int64_t i = itile * icb + my_ic, j = ctile * ct + c;
      const bool mine_ok = i < in && j < out;
      T* acc = s_acc + int64_t(my_ic) * gr * ct + c;  // acc[g * ct]: this thread's column
      for (int g = 0; g < gr; ++g) acc[int64_t(g) * ct] = T(0);
      T accb = T(0);
      const bool do_base = has_base && g_lo == 0;
      T wb = T(0), gs = T(0), gq = T(0), ga = T(0);
      if (mine_ok) {
        const int64_t o = i * out + j;
        if (has_base) wb = __ldg(Wb + o);
        gs = __ldg(gS + o);
        gq = __ldg(gQ + o);
        ga = __ldg(gA + o);
      }
      const T* wc = Wc + (i * nb) * out + j;

      for (int64_t nc = nbeg; nc < nend; nc += rows_per_chunk) {
        stage_entry<T, K>(x, grid, in, M, base, nc + st_r, nend, itile * icb + st_ic, s_start, s_val, tid);
        __syncthreads();
        const int rcnt = static_cast<int>(nend - nc < rows_per_chunk ? nend - nc : rows_per_chunk);
        if (mine_ok) {
          for (int r = 0; r < rcnt; ++r) {
            const int e = r * icb + my_ic;
            const int s = s_start[e];
            if (s == kNaN || (s < 0 && !has_base)) continue;  // no contribution
            const T bv = s_val[K + 1][e];
            const T phi = staged_phi<T, K>(s_start, s_val, e, has_base, wb, wc, out);
            const T sg = phi > T(0) ? ga : (phi < T(0) ? -ga : T(0));
            const T dphi = fma(gq + gq, phi, gs + sg);
            if (do_base) accb = fma(bv, dphi, accb);
            if (s >= 0) {
#pragma unroll
              for (int q = 0; q <= K; ++q) {
                const int64_t g = s + q - g_lo;
                if (g >= 0 && g < g_cnt) acc[g * ct] = fma(s_val[q][e], dphi, acc[g * ct]);
              }
            }
          }
        }
        __syncthreads();
      }

      if (mine_ok) {
        T* oc = gWc + sl * stride_c + (i * nb + g_lo) * out + j;
        for (int g = 0; g < g_cnt; ++g) oc[int64_t(g) * out] = acc[int64_t(g) * ct];
        if (g_lo == 0) gWb[sl * stride_b + i * out + j] = accb;
      }
    }
  }
}

// ------------------------------------------------------------------- grad_x
constexpr int kGxWarps = kThreads / 32;

template <typename T, int K>
__global__ void __launch_bounds__(kThreads)
grad_x_kernel(const T* __restrict__ gS, const T* __restrict__ gQ, const T* __restrict__ gA, const T* __restrict__ x,
              const T* __restrict__ grid, int64_t N, int64_t in, int64_t M, int base, const T* __restrict__ Wb,
              const T* __restrict__ Wc, int64_t out, T* __restrict__ gx) {
  __shared__ int s_start[kGxWarps][32];
  __shared__ T s_v[kGxWarps][K + 2][32];   // B_0..B_K, then b(x)
  __shared__ T s_dv[kGxWarps][K + 2][32];  // B'_0..B'_K, then b'(x)

  const int64_t nb = M - K - 1;
  const int lane = threadIdx.x % 32, w = threadIdx.x / 32;
  const bool has_base = base != kBaseZero;
  const int64_t row_tiles = ceil_div(N, 32);
  const int64_t tasks = row_tiles * in;

  for (int64_t task = int64_t(blockIdx.x) * kGxWarps + w; task < tasks; task += int64_t(gridDim.x) * kGxWarps) {
    const int64_t i = task % in, n0 = (task / in) * 32;
    {
      const int64_t n = n0 + lane;
      int s = kOutside;
      T v[K + 1], dv[K + 1], bv = T(0), db = T(0);
      if (n < N) {
        const T xv = x[n * in + i];
        s = basis_window<T, K, true>(grid + i * M, M, xv, v, dv);
        bv = base_value<T>(base, xv);
        db = base_derivative<T>(base, xv);
      }
      s_start[w][lane] = s;
#pragma unroll
      for (int q = 0; q <= K; ++q) {
        s_v[w][q][lane] = s >= 0 ? v[q] : T(0);
        s_dv[w][q][lane] = s >= 0 ? dv[q] : T(0);
      }
      s_v[w][K + 1][lane] = bv;
      s_dv[w][K + 1][lane] = db;
    }
    __syncwarp();

    const T* wci = Wc + i * nb * out;
    const T* wbi = Wb + i * out;
    const T *gsi = gS + i * out, *gqi = gQ + i * out, *gai = gA + i * out;
    const int rcnt = static_cast<int>(N - n0 < 32 ? N - n0 : 32);
    T mine = T(0);
    for (int r = 0; r < rcnt; ++r) {
      const int s = s_start[w][r];  // uniform across the warp
      if (s == kNaN || (s < 0 && !has_base)) continue;  // gx stays 0
      const T bv = s_v[w][K + 1][r];
      T dq[K + 1], dbt = T(0);
#pragma unroll
      for (int q = 0; q <= K; ++q) dq[q] = T(0);
      for (int64_t j = lane; j < out; j += 32) {
        const T wbj = has_base ? __ldg(wbi + j) : T(0);
        T phi = has_base ? bv * wbj : T(0);
        T wq[K + 1] = {};
        if (s >= 0) {
#pragma unroll
          for (int q = 0; q <= K; ++q) {
            wq[q] = __ldg(wci + int64_t(s + q) * out + j);
            phi = fma(s_v[w][q][r], wq[q], phi);
          }
        }
        const T ga = __ldg(gai + j), gq = __ldg(gqi + j);
        const T sg = phi > T(0) ? ga : (phi < T(0) ? -ga : T(0));
        const T dphi = fma(gq + gq, phi, __ldg(gsi + j) + sg);
        if (s >= 0) {
#pragma unroll
          for (int q = 0; q <= K; ++q) dq[q] = fma(wq[q], dphi, dq[q]);
        }
        if (has_base) dbt = fma(wbj, dphi, dbt);
      }
      T p = has_base ? s_dv[w][K + 1][r] * dbt : T(0);
      if (s >= 0) {
#pragma unroll
        for (int q = 0; q <= K; ++q) p = fma(s_dv[w][q][r], dq[q], p);
      }
#pragma unroll
      for (int off = 16; off > 0; off >>= 1) p += __shfl_xor_sync(0xffffffffu, p, off);
      if (lane == r) mine = p;
    }
    if (n0 + lane < N) gx[(n0 + lane) * in + i] = mine;
    __syncwarp();  // the next task overwrites this warp's staged values
  }
}

// dst[e] = sum_{s < slices} part[s * n + e], in slice order.
template <typename T>
__global__ void __launch_bounds__(kThreads)
sum_slices_kernel(const T* __restrict__ part, int64_t n, int64_t slices, T* __restrict__ dst) {
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    T acc = part[e];
    for (int64_t s = 1; s < slices; ++s) acc += part[s * n + e];
    dst[e] = acc;
  }
}

template <typename T>
cudaError_t sum_slices(const T* part, int64_t n, int64_t slices, T* dst, cudaStream_t stream) {
  const int64_t cap = int64_t(current_sm_count()) * 8;
  const int64_t b = ceil_div(n, kThreads);
  KANEXT_LAUNCH(grid_x(b < cap ? b : cap), kThreads, 0, stream, sum_slices_kernel<T>)(part, n, slices, dst);
  return cudaGetLastError();
}

template <typename T>
T* ws_at(void* ws, size_t offset) {
  return reinterpret_cast<T*>(static_cast<unsigned char*>(ws) + offset);
}

template <typename T>
cudaError_t launch_forward(const T* x, const T* grid, int64_t N, int64_t in, int64_t M, int k, int base, const T* Wb,
                           const T* Wc, int64_t out, T* S, T* Q, T* A, void* workspace, size_t ws_given,
                           cudaStream_t stream) {
  if (N == 0 || in == 0 || out == 0) return cudaSuccess;
  const Plan p = plan(N, in, M, k, out, sizeof(T), false);
  if (ws_given < forward_ws_bytes(p, sizeof(T))) return cudaErrorInvalidValue;
  T *dS = S, *dQ = Q, *dA = A;
  const size_t one = align256(size_t(p.slices) * p.part * sizeof(T));
  if (p.slices > 1) {
    dS = ws_at<T>(workspace, 0);
    dQ = ws_at<T>(workspace, one);
    dA = ws_at<T>(workspace, 2 * one);
  }
  const dim3 blocks(grid_x(p.in_tiles * p.col_tiles), grid_yz(p.slices));
  cudaError_t err = dispatch_order(k, [&](auto KC) {
    constexpr int K = decltype(KC)::value;
    KANEXT_LAUNCH(blocks, kThreads, 0, stream, forward_kernel<T, K>)(x, grid, N, in, M, base, Wb, Wc, out, p.ct,
                                                                     p.col_tiles, p.in_tiles, p.slices,
                                                                     p.slice_rows, dS, dQ, dA,
                                                                     static_cast<int64_t>(p.part));
    return cudaGetLastError();
  });
  if (err != cudaSuccess || p.slices <= 1) return err;
  const int64_t n = static_cast<int64_t>(p.part);
  if ((err = sum_slices<T>(dS, n, p.slices, S, stream)) != cudaSuccess) return err;
  if ((err = sum_slices<T>(dQ, n, p.slices, Q, stream)) != cudaSuccess) return err;
  return sum_slices<T>(dA, n, p.slices, A, stream);
}

template <typename T>
cudaError_t launch_backward(const T* gS, const T* gQ, const T* gA, const T* x, const T* grid, int64_t N, int64_t in,
                            int64_t M, int k, int base, const T* Wb, const T* Wc, int64_t out, bool need_x,
                            bool need_w, T* gx, T* gWb, T* gWc, void* workspace, size_t ws_given,
                            cudaStream_t stream) {
  if (N == 0 || in == 0 || out == 0) return cudaSuccess;
  Plan p;
  if (need_w) {
    p = plan(N, in, M, k, out, sizeof(T), true);
    if (ws_given < grad_w_ws_bytes(p, sizeof(T))) return cudaErrorInvalidValue;
  }
  cudaError_t err = cudaSuccess;
  if (need_x) {
    const int64_t tasks = ceil_div(N, 32) * in;
    const unsigned blocks = grid_x(ceil_div(tasks, kGxWarps));
    err = dispatch_order(k, [&](auto KC) {
      constexpr int K = decltype(KC)::value;
      KANEXT_LAUNCH(blocks, kThreads, 0, stream, grad_x_kernel<T, K>)(gS, gQ, gA, x, grid, N, in, M, base, Wb, Wc,
                                                                      out, gx);
      return cudaGetLastError();
    });
    if (err != cudaSuccess) return err;
  }
  if (need_w) {
    T* dst_c = gWc;
    T* dst_b = gWb;
    if (p.slices > 1) {
      dst_c = ws_at<T>(workspace, 0);
      dst_b = ws_at<T>(workspace, align256(size_t(p.slices) * p.part_c * sizeof(T)));
    }
    const dim3 blocks(grid_x(p.in_tiles * p.col_tiles * p.n_gr), grid_yz(p.slices));
    err = dispatch_order(k, [&](auto KC) {
      constexpr int K = decltype(KC)::value;
      auto kernel = grad_w_kernel<T, K>;
      const size_t static_bytes = kThreads * sizeof(int) + size_t(K + 2) * kThreads * sizeof(T);
      if (p.acc_bytes + static_bytes > 48 * 1024) {
        // A function attribute, not a stream operation: legal during capture.
        const cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                   static_cast<int>(p.acc_bytes));
        if (e != cudaSuccess) return e;
      }
      KANEXT_LAUNCH(blocks, kThreads, p.acc_bytes, stream, kernel)(
          gS, gQ, gA, x, grid, N, in, M, base, Wb, Wc, out, p.ct, p.gr, p.n_gr, p.col_tiles, p.in_tiles, p.slices,
          p.slice_rows, dst_c, dst_b, static_cast<int64_t>(p.part_c), static_cast<int64_t>(p.part));
      return cudaGetLastError();
    });
    if (err != cudaSuccess) return err;
    if (p.slices > 1) {
      if ((err = sum_slices<T>(dst_c, static_cast<int64_t>(p.part_c), p.slices, gWc, stream)) != cudaSuccess)
        return err;
      err = sum_slices<T>(dst_b, static_cast<int64_t>(p.part), p.slices, gWb, stream);
    }
  }
  return err;
}

}  // namespace estats

size_t edge_stats_workspace_bytes(int64_t N, int64_t in, int64_t M, int k, int64_t out, size_t elem_size) {
  if (N == 0 || in == 0 || out == 0) return 0;
  return estats::forward_ws_bytes(estats::plan(N, in, M, k, out, elem_size, false), elem_size);
}

size_t edge_stats_backward_workspace_bytes(int64_t N, int64_t in, int64_t M, int k, int64_t out, size_t elem_size,
                                           bool need_w) {
  if (!need_w || N == 0 || in == 0 || out == 0) return 0;
  return estats::grad_w_ws_bytes(estats::plan(N, in, M, k, out, elem_size, true), elem_size);
}

cudaError_t launch_edge_stats_f32(const float* x, const float* grid, int64_t N, int64_t in, int64_t M, int k,
                                  int base, const float* Wb, const float* Wc, int64_t out, float* S, float* Q,
                                  float* A, void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  return estats::launch_forward<float>(x, grid, N, in, M, k, base, Wb, Wc, out, S, Q, A, workspace, workspace_bytes,
                                       stream);
}

cudaError_t launch_edge_stats_f64(const double* x, const double* grid, int64_t N, int64_t in, int64_t M, int k,
                                  int base, const double* Wb, const double* Wc, int64_t out, double* S, double* Q,
                                  double* A, void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  return estats::launch_forward<double>(x, grid, N, in, M, k, base, Wb, Wc, out, S, Q, A, workspace,
                                        workspace_bytes, stream);
}

cudaError_t launch_edge_stats_backward_f32(const float* gS, const float* gQ, const float* gA, const float* x,
                                           const float* grid, int64_t N, int64_t in, int64_t M, int k, int base,
                                           const float* Wb, const float* Wc, int64_t out, bool need_x, bool need_w,
                                           float* gx, float* gWb, float* gWc, void* workspace,
                                           size_t workspace_bytes, cudaStream_t stream) {
  return estats::launch_backward<float>(gS, gQ, gA, x, grid, N, in, M, k, base, Wb, Wc, out, need_x, need_w, gx, gWb,
                                        gWc, workspace, workspace_bytes, stream);
}

cudaError_t launch_edge_stats_backward_f64(const double* gS, const double* gQ, const double* gA, const double* x,
                                           const double* grid, int64_t N, int64_t in, int64_t M, int k, int base,
                                           const double* Wb, const double* Wc, int64_t out, bool need_x,
                                           bool need_w, double* gx, double* gWb, double* gWc, void* workspace,
                                           size_t workspace_bytes, cudaStream_t stream) {
  return estats::launch_backward<double>(gS, gQ, gA, x, grid, N, in, M, k, base, Wb, Wc, out, need_x, need_w, gx,
                                         gWb, gWc, workspace, workspace_bytes, stream);
}

}  // namespace cuda
}  // namespace kanext
