// CUDA forward of the fused KAN layer (local-support formulation):
//
//   y[n, j] = sum_i ( sum_{q<=K} B_{s+q}(x[n,i]) Wc[i, s+q, j] + b(x[n,i]) Wb[i, j] )
//
// with s = s(n, i) the window start of x[n, i]'s k+1 non-zero bases. Cost
// 2 N in out (k+2) flops, independent of G; no basis tensor is written.
//
// Tiling. A block (256 threads) owns a tile of 64 batch rows x BJ output
// columns (BJ = 16 vectors of 16 bytes: 64 fp32 / 32 fp64 columns) and walks
// all inputs; each thread keeps 4 rows x one 16-byte column vector of y in
// registers for the whole walk and writes them once. Inputs are taken in
// chunks of 8: first the block evaluates the bases of the chunk's 64 x 8
// (n, i) entries cooperatively (two per thread) into shared memory, then
// every thread consumes them for its rows and columns. The bases are thus
// computed once per (n, i) per column tile and amortised over BJ columns.
//
// Where Wc comes from. The Wc rows a block needs are data dependent: row n
// of the tile reads rows s(n,i)..s(n,i)+k of Wc[i] (one 16-byte vector per
// thread, 256 contiguous bytes per row across the 16 column threads). Staging
// Wc[i, :, tile] in shared memory would copy all G+k rows of the slab per
// input although the tile's 64 rows use at most 64 (k+1) row reads of it, and
// for large G most rows are never read; the reads are instead issued straight
// to global memory through the read-only path (__ldg), where rows shared by
// several batch rows of the tile, and by the neighbouring row tiles that run
// concurrently on the same column tile (blockIdx.x is the row tile, so
// consecutive blocks share the column tile), hit in L1/L2. Either way this
// path moves one operand per FMA (no register reuse of Wc across rows, since
// each row gathers its own rows), which bounds it at a fraction of the FMA
// peak; the dense tensor-core formulation (DESIGN.md) is the answer for small
// G, this kernel is the G-independent, strict fp32/fp64 path.
//
// Semantics equal the CPU kernel (csrc/cpu/kan_linear_kernels.h): per (n, i)
// the spline terms are added before the base term; a NaN x[n, i] makes the
// whole row y[n, :] NaN; x outside the grid (including +-inf) adds the base
// term only; base == zero adds no base term at all (not 0 * Wb).
#pragma once

#include "common.cuh"

namespace kanext {
namespace cuda {
namespace fwd {

constexpr int kThreads = 256;
constexpr int kTX = 16;            // column-vector threads per row group
constexpr int kTY = 16;            // row groups
constexpr int kTM = 4;             // rows per thread
constexpr int kBN = kTY * kTM;     // 64 batch rows per block
constexpr int kIC = 8;             // inputs per basis-staging chunk

template <typename T>
constexpr int kTileCols = kTX * kVec<T>;  // BJ: 64 fp32 / 32 fp64 columns

template <typename T, int K, bool ALIGNED>
__global__ void __launch_bounds__(kThreads)
kan_linear_forward_kernel(const T* __restrict__ x, const T* __restrict__ grid, int64_t N, int64_t in, int64_t M,
                          int base, const T* __restrict__ Wb, const T* __restrict__ Wc, int64_t out,
                          T* __restrict__ y) {
  constexpr int VN = kVec<T>;
  constexpr int BJ = kTileCols<T>;
  const int64_t nb = M - K - 1;
  // Bases of the current input chunk: window start, then v_0..v_K and b(x).
  __shared__ int s_start[kIC][kBN];
  __shared__ T s_val[kIC][K + 2][kBN];

  const int tid = threadIdx.x;
  const int tx = tid % kTX, ty = tid / kTX;
  const bool has_base = base != kBaseZero;
  const int64_t row_tiles = ceil_div(N, kBN), col_tiles = ceil_div(out, BJ);

  for (int64_t ct = blockIdx.y; ct < col_tiles; ct += gridDim.y) {
    const int64_t j = ct * BJ + int64_t(tx) * VN;
    for (int64_t rt = blockIdx.x; rt < row_tiles; rt += gridDim.x) {
      const int64_t n0 = rt * kBN;
      T acc[kTM][VN];
#pragma unroll
      for (int m = 0; m < kTM; ++m)
#pragma unroll
        for (int e = 0; e < VN; ++e) acc[m][e] = T(0);

      for (int64_t i0 = 0; i0 < in; i0 += kIC) {
        // Stage: the bases of (n0 + r, i0 + ic); consecutive threads take
        // consecutive inputs of one row, so the x reads are contiguous.
        for (int p = tid; p < kIC * kBN; p += kThreads) {
          const int r = p / kIC, ic = p % kIC;
          const int64_t n = n0 + r, i = i0 + ic;
          int s = kOutside;
          T v[K + 1], dv[K + 1], bv = T(0);
          if (n < N && i < in) {
            const T xv = x[n * in + i];
            s = basis_window<T, K, false>(grid + i * M, M, xv, v, dv);
            bv = base_value<T>(base, xv);
          }
          s_start[ic][r] = s;
#pragma unroll
          for (int q = 0; q <= K; ++q) s_val[ic][q][r] = s >= 0 ? v[q] : T(0);
          s_val[ic][K + 1][r] = bv;
        }
        __syncthreads();

        const int icn = static_cast<int>(in - i0 < kIC ? in - i0 : kIC);
        for (int ic = 0; ic < icn; ++ic) {
          const int64_t i = i0 + ic;
          T wb[VN];
          if (has_base) load_cols<T, VN, ALIGNED>(Wb + i * out, j, out, wb);
          const T* wci = Wc + i * nb * out;
#pragma unroll
          for (int m = 0; m < kTM; ++m) {
            const int r = ty + kTY * m;
            const int s = s_start[ic][r];
            if (s == kNaN) {  // NaN policy: the whole output row becomes NaN
#pragma unroll
              for (int e = 0; e < VN; ++e) acc[m][e] = T(NAN);
              continue;
            }
            if (s >= 0) {
              T w[K + 1][VN];  // issue all k+1 gathers before the FMAs
#pragma unroll
              for (int q = 0; q <= K; ++q) load_cols<T, VN, ALIGNED>(wci + (s + q) * out, j, out, w[q]);
#pragma unroll
              for (int q = 0; q <= K; ++q) {
                const T c = s_val[ic][q][r];
#pragma unroll
                for (int e = 0; e < VN; ++e) acc[m][e] = fma(c, w[q][e], acc[m][e]);
              }
            }
            if (has_base) {
              const T c = s_val[ic][K + 1][r];
#pragma unroll
              for (int e = 0; e < VN; ++e) acc[m][e] = fma(c, wb[e], acc[m][e]);
            }
          }
        }
        __syncthreads();  // the next chunk overwrites the staged bases
      }

#pragma unroll
      for (int m = 0; m < kTM; ++m) {
        const int64_t n = n0 + ty + kTY * m;
        if (n < N) store_cols<T, VN, ALIGNED>(y + n * out, j, out, acc[m]);
      }
    }
  }
}

template <typename T>
cudaError_t launch(const T* x, const T* grid, int64_t N, int64_t in, int64_t M, int k, int base, const T* Wb,
                   const T* Wc, int64_t out, T* y, cudaStream_t stream) {
  if (N == 0 || out == 0) return cudaSuccess;
  constexpr int VN = kVec<T>;
  const bool aligned = out % VN == 0 && aligned16(Wb) && aligned16(Wc) && aligned16(y);
  const dim3 blocks(grid_x(ceil_div(N, kBN)), grid_yz(ceil_div(out, kTileCols<T>)));
  return dispatch_order(k, [&](auto KC) {
    constexpr int K = decltype(KC)::value;
    if (aligned)
      KANEXT_LAUNCH(blocks, kThreads, 0, stream, kan_linear_forward_kernel<T, K, true>)(x, grid, N, in, M, base, Wb,
                                                                                         Wc, out, y);
    else
      KANEXT_LAUNCH(blocks, kThreads, 0, stream, kan_linear_forward_kernel<T, K, false>)(x, grid, N, in, M, base, Wb,
                                                                                          Wc, out, y);
    return cudaGetLastError();
  });
}

}  // namespace fwd
}  // namespace cuda
}  // namespace kanext
