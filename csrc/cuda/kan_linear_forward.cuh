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

// v2 (backend "local_v2", design L.2 of docs/roofline.md): the arithmetic
// and order of FMAs of kan_linear_forward_kernel (per output element: inputs
// in order, the k+1 spline terms, then the base term), so the same bits; what
// changes is the addressing of the gathers and the column tile.
//  - The staged entry of (row, input) is packed (LocalEntry: B_0..B_K, b(x),
//    then the byte offset s * out * sizeof(T) of Wc row s within the input's
//    slab instead of s) and read with broadcast vector loads. A gather of row
//    s + q is slab + (off + column bytes) + q * row bytes: 32-bit offsets and
//    one 64-bit add, instead of 64-bit index products per gather.
//  - Each thread holds kVJ = 2 column vectors, 16 threads apart (BJ = 128
//    fp32 / 64 fp64 columns), so the second gather of a row is the first's
//    address plus an immediate, and the staging (about 400 instructions per
//    entry, section 5 of docs/roofline.md) is spread over twice the FMAs.
//  - Column tiles wholly inside `out` (aligned operands) load without column
//    guards; the last, partial one uses the guarded loads of v1.
// The NaN row is written after the row's FMAs instead of branching around them.
constexpr int kVJ = 2;  // column vectors per thread (v2)

template <typename T>
constexpr int kTileColsV2 = kTX * kVec<T> * kVJ;

// One staged chunk of inputs, for the thread's 4 rows and 2 column vectors.
// FULL: the column tile lies inside `out` and the operands are aligned.
template <typename T, int K, bool FULL>
__device__ __forceinline__ void forward_v2_chunk(const LocalEntry<T, K>* __restrict__ ep, int icn, bool has_base,
                                                 const T* __restrict__ wbp, const T* __restrict__ wcp,
                                                 int64_t slab, int64_t out, int64_t j, unsigned row_bytes,
                                                 T (&acc)[kTM][kVJ][kVec<T>]) {
  constexpr int VN = kVec<T>;
  constexpr int VS = kTX * VN;  // columns between the thread's two vectors
  // FULL: wbp, wcp point at the thread's first column; else at the row starts
  const unsigned j_bytes = FULL ? static_cast<unsigned>(j * int64_t(sizeof(T))) : 0u;
  for (int ic = 0; ic < icn; ++ic, wbp += out, wcp += slab, ++ep) {
    T wb[kVJ][VN];
    if (has_base) {
#pragma unroll
      for (int v = 0; v < kVJ; ++v) {
        if constexpr (FULL)
          load_full<T, VN, true>(wbp + VS * v, wb[v]);
        else
          load_cols<T, VN, false>(wbp, j + VS * v, out, wb[v]);
      }
    }
#pragma unroll
    for (int m = 0; m < kTM; ++m) {
      const LocalEntry<T, K> e = ep[kTY * kIC * m];  // s_e[ty + kTY m][ic]: broadcast per half-warp
      if (e.off >= 0) {
        const T* row0 = byte_offset(wcp, static_cast<unsigned>(e.off) + j_bytes);  // row s
        T w[K + 1][kVJ][VN];  // issue all gathers before the FMAs
#pragma unroll
        for (int q = 0; q <= K; ++q) {
          const T* row = byte_offset(row0, unsigned(q) * row_bytes);  // row s + q
#pragma unroll
          for (int v = 0; v < kVJ; ++v) {
            if constexpr (FULL)
              load_full<T, VN, true>(row + VS * v, w[q][v]);
            else
              load_cols<T, VN, false>(row, j + VS * v, out, w[q][v]);
          }
        }
#pragma unroll
        for (int q = 0; q <= K; ++q) {
          const T c = e.v[q];
#pragma unroll
          for (int v = 0; v < kVJ; ++v)
#pragma unroll
            for (int u = 0; u < VN; ++u) acc[m][v][u] = fma(c, w[q][v][u], acc[m][v][u]);
        }
      }
      if (has_base) {
        const T c = e.v[K + 1];
#pragma unroll
        for (int v = 0; v < kVJ; ++v)
#pragma unroll
          for (int u = 0; u < VN; ++u) acc[m][v][u] = fma(c, wb[v][u], acc[m][v][u]);
      }
      // NaN policy: the whole output row becomes NaN. v1 sets NaN and skips the
      // row's FMAs; here the base FMA of a NaN entry runs and is overwritten.
      if (e.off == kNaN) {
#pragma unroll
        for (int v = 0; v < kVJ; ++v)
#pragma unroll
          for (int u = 0; u < VN; ++u) acc[m][v][u] = T(NAN);
      }
    }
  }
}

template <typename T, int K, bool ALIGNED>
__global__ void __launch_bounds__(kThreads)
kan_linear_forward_v2_kernel(const T* __restrict__ x, const T* __restrict__ grid, int64_t N, int64_t in, int64_t M,
                             int base, const T* __restrict__ Wb, const T* __restrict__ Wc, int64_t out,
                             T* __restrict__ y) {
  constexpr int VN = kVec<T>;
  constexpr int BJ = kTileColsV2<T>;
  constexpr int VS = kTX * VN;
  const int64_t nb = M - K - 1;
  // [row][input]: the staging threads of one row write neighbouring entries
  __shared__ LocalEntry<T, K> s_e[kBN][kIC];

  const int tid = threadIdx.x;
  const int tx = tid % kTX, ty = tid / kTX;
  const bool has_base = base != kBaseZero;
  const int64_t row_tiles = ceil_div(N, kBN), col_tiles = ceil_div(out, BJ);
  const unsigned row_bytes = static_cast<unsigned>(out * int64_t(sizeof(T)));  // the slab is < 2^31 B (launcher)
  const int64_t slab = nb * out;

  for (int64_t ct = blockIdx.y; ct < col_tiles; ct += gridDim.y) {
    const int64_t j = ct * BJ + int64_t(tx) * VN;  // the thread's first column; the second is j + VS
    const bool full = ALIGNED && ct * BJ + BJ <= out;
    for (int64_t rt = blockIdx.x; rt < row_tiles; rt += gridDim.x) {
      const int64_t n0 = rt * kBN;
      T acc[kTM][kVJ][VN];
#pragma unroll
      for (int m = 0; m < kTM; ++m)
#pragma unroll
        for (int v = 0; v < kVJ; ++v)
#pragma unroll
          for (int u = 0; u < VN; ++u) acc[m][v][u] = T(0);

      for (int64_t i0 = 0; i0 < in; i0 += kIC) {
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
          LocalEntry<T, K> e;
#pragma unroll
          for (int q = 0; q <= K; ++q) e.v[q] = s >= 0 ? v[q] : T(0);
          e.v[K + 1] = bv;
          e.off = s >= 0 ? static_cast<int>(static_cast<unsigned>(s) * row_bytes) : s;
          s_e[r][ic] = e;
        }
        __syncthreads();

        const int icn = static_cast<int>(in - i0 < kIC ? in - i0 : kIC);
        if (full)
          forward_v2_chunk<T, K, true>(&s_e[ty][0], icn, has_base, Wb + i0 * out + j, Wc + i0 * slab, slab, out, j,
                                       row_bytes, acc);
        else
          forward_v2_chunk<T, K, false>(&s_e[ty][0], icn, has_base, Wb + i0 * out, Wc + i0 * slab, slab, out, j,
                                        row_bytes, acc);
        __syncthreads();  // the next chunk overwrites the staged entries
      }

#pragma unroll
      for (int m = 0; m < kTM; ++m) {
        const int64_t n = n0 + ty + kTY * m;
        if (n < N) {
#pragma unroll
          for (int v = 0; v < kVJ; ++v) store_cols<T, VN, ALIGNED>(y + n * out, j + VS * v, out, acc[m][v]);
        }
      }
    }
  }
}

// version: kLocalV1 (kan_linear_forward_kernel) or kLocalV2
// (kan_linear_forward_v2_kernel, the same bits; v1 when a Wc slab is 2^31
// bytes or more); anything else is cudaErrorInvalidValue.
template <typename T>
cudaError_t launch(const T* x, const T* grid, int64_t N, int64_t in, int64_t M, int k, int base, const T* Wb,
                   const T* Wc, int64_t out, T* y, int version, cudaStream_t stream) {
  if (version != kLocalV1 && version != kLocalV2) return cudaErrorInvalidValue;
  if (N == 0 || out == 0) return cudaSuccess;
  constexpr int VN = kVec<T>;
  const bool aligned = out % VN == 0 && aligned16(Wb) && aligned16(Wc) && aligned16(y);
  const bool v2 = version == kLocalV2 && offsets_fit<T>(M - k - 1, out);
  const dim3 blocks(grid_x(ceil_div(N, kBN)), grid_yz(ceil_div(out, v2 ? kTileColsV2<T> : kTileCols<T>)));
  return dispatch_order(k, [&](auto KC) {
    constexpr int K = decltype(KC)::value;
    if (v2) {
      if (aligned)
        KANEXT_LAUNCH(blocks, kThreads, 0, stream, kan_linear_forward_v2_kernel<T, K, true>)(x, grid, N, in, M, base,
                                                                                            Wb, Wc, out, y);
      else
        KANEXT_LAUNCH(blocks, kThreads, 0, stream, kan_linear_forward_v2_kernel<T, K, false>)(x, grid, N, in, M, base,
                                                                                             Wb, Wc, out, y);
    } else if (aligned) {
      KANEXT_LAUNCH(blocks, kThreads, 0, stream, kan_linear_forward_kernel<T, K, true>)(x, grid, N, in, M, base, Wb,
                                                                                         Wc, out, y);
    } else {
      KANEXT_LAUNCH(blocks, kThreads, 0, stream, kan_linear_forward_kernel<T, K, false>)(x, grid, N, in, M, base, Wb,
                                                                                          Wc, out, y);
    }
    return cudaGetLastError();
  });
}

}  // namespace fwd
}  // namespace cuda
}  // namespace kanext
