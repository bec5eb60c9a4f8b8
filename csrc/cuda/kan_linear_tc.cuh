// Tensor-core (dense) path of the fused KAN layer: forward, and backward as
// two fused GEMMs, with the basis matrix generated tile by tile in shared
// memory and never written to global memory.
//
// The layer as one GEMM. With nb = G + k bases per input and nb1 = nb + 1
// columns per input when there is a base term (nb1 = nb for base == zero),
//   A[n, (i, g)] = B_g(x[n, i]) for g < nb,  b(x[n, i]) for g = nb,
//   W[(i, g), j] = Wc[i, g, j]  for g < nb,  Wb[i, j]     for g = nb,
// y = A W, grad W = A^T dy, grad A = dy W^T and
//   grad x[n, i] = sum_g B'_g(x[n, i]) gradA[n, (i, g)] + b'(x[n, i]) gradA[n, (i, nb)].
// Cost 2 N in out nb1 flops per GEMM, i.e. it grows with G, which is why the
// local-support kernels (kan_linear_forward.cuh / _backward.cuh) take over
// for large G (see kanext/backend.py for the choice).
//
// Chunks. The K dimension is cut into chunks of kBK = 64 columns. When
// nb1 <= 64, a chunk holds `slots` = 64 / nb1 whole inputs (nb1 columns
// each) and zero padding after them (1.6% of the chunk for G=5, k=3); when
// nb1 > 64, each input spans ceil(nb1 / 64) chunks of its own. The same
// layout is used for the rows of W (loaded from Wc and Wb) and of grad W.
//
// Kernels (256 threads = 8 warps, WMMA 16x16 fragments, float32 accumulators):
//   forward:  block tile 128 rows x 128 columns of y; per chunk it builds the
//             A tile (128 x 64) from x and the grid, loads the W tile
//             (64 x 128), and runs the mma; warp tile 64 x 32.
//   grad W:   block tile = one chunk's 64 rows of W x 128 columns; walks the
//             batch rows of its slice 64 at a time (A^T tile from the same
//             builder, read column-major; dy tile), warp tile 32 x 32. When
//             the (chunk, column) tiles are too few to fill the GPU, the batch
//             is split into slices whose float32 partials go to a workspace
//             and a second kernel adds them in slice order (deterministic,
//             no atomics). Otherwise each block writes its tile directly.
//   grad x:   block tile 128 batch rows x one chunk (or, for nb1 > 64, the
//             chunks of one input); walks the output columns 32 at a time
//             (dy tile, W tile read column-major), then contracts the
//             float32 gradA tile with the basis derivatives in the epilogue.
// NaN policy as in the CPU kernels: a NaN x[n, i] fills its A columns with
// NaN in the forward (the whole row y[n, :] becomes NaN), with zeros for
// grad W (it adds nothing to the weights), and gives grad x[n, i] = NaN.
// Simple synchronous tile loads (no cp.async pipeline yet): a first version
// to measure, see bench/RESULTS.md.
#pragma once

#include "tensor_core.cuh"

namespace kanext {
namespace cuda {
namespace tc {

constexpr int kThreads = 256;
constexpr int kBK = 64;    // K columns per chunk
constexpr int kFwdBM = 128, kFwdBN = 128;
constexpr int kGwBR = 64, kGwBN = 128;  // grad W: batch rows per step, output columns per tile
constexpr int kGxBM = 128, kGxBO = 32;  // grad x: batch rows per tile, output columns per step
constexpr int kMaxSlices = 64;

// The chunk layout of the K dimension (see the header comment).
struct ChunkMap {
  int nb;       // spline columns per input (G + k)
  int nb1;      // columns per input, with the base column if any
  int per;      // columns per input slot of a chunk: nb1, or kBK when nb1 > kBK
  int slots;    // input slots per chunk: kBK / nb1, or 1
  int cpi;      // chunks per input: 1, or ceil(nb1 / kBK)
  int64_t chunks;

  __host__ __device__ ChunkMap(int64_t in, int64_t M, int k, bool has_base) {
    nb = static_cast<int>(M - k - 1);
    nb1 = nb + (has_base ? 1 : 0);
    if (nb1 <= kBK) {
      per = nb1;
      slots = kBK / nb1;
      cpi = 1;
      chunks = (in + slots - 1) / slots;
    } else {
      per = kBK;
      slots = 1;
      cpi = (nb1 + kBK - 1) / kBK;
      chunks = in * cpi;
    }
  }
  // First input of chunk c and the column of that input its slot 0 starts at.
  __host__ __device__ void locate(int64_t c, int64_t& i0, int& g0) const {
    if (cpi == 1) {
      i0 = c * slots;
      g0 = 0;
    } else {
      i0 = c / cpi;
      g0 = static_cast<int>(c % cpi) * kBK;
    }
  }
  // Input and column of chunk-local column q; false for padding.
  __host__ __device__ bool column(int64_t c, int q, int64_t in, int64_t& i, int& g) const {
    int64_t i0;
    int g0;
    locate(c, i0, g0);
    const int ii = q / per;
    i = i0 + ii;
    g = g0 + q % per;
    return ii < slots && i < in && g < nb1;
  }
};

// Builds rows [0, rows) of an A tile for batch rows n0.. and chunk c:
// element (r, q) is row_at(r)[q] (row_at returns a pointer, or an object
// with operator[], so that the tile's layout is the caller's). Every element
// is written: padding, rows past N and inputs past `in` are zeros. NAN_FILL:
// the columns of a NaN x are NaN (forward) or 0. The (row, input) items
// are shared out as tid, tid + nthreads, ... (the WMMA kernels and step 2
// of design T; step 3's producer has its own builder, tc2::build_a_rows).
template <typename T, int K, bool NAN_FILL, typename RowAt>
__device__ __forceinline__ void build_a_tile_with(RowAt row_at, int rows, const T* __restrict__ x,
                                                  const float* __restrict__ grid, int64_t N, int64_t in, int64_t M,
                                                  int base, const ChunkMap& cm, int64_t c, int64_t n0, int tid,
                                                  int nthreads) {
  using Op = typename Mma<T>::Op;
  int64_t i0;
  int g0;
  cm.locate(c, i0, g0);
  const bool has_base = base != kBaseZero;
  const int items = rows * cm.slots;
  const Op zero = Mma<T>::op(0.f);
  for (int p = tid; p < items; p += nthreads) {
    const int r = p / cm.slots, ii = p % cm.slots;
    const int64_t n = n0 + r, i = i0 + ii;
    const auto row = row_at(r);
    const int q0 = ii * cm.per;
    const bool live = n < N && i < in;
    const float xv = live ? to_float(x[n * in + i]) : 0.f;
    if (live) {
      float v[K + 1], dv[K + 1];
      const int s = basis_window<float, K, false>(grid + i * M, M, xv, v, dv);
      const float bv = has_base ? base_value<float>(base, xv) : 0.f;
      for (int q = 0; q < cm.per; ++q) {
        const int g = g0 + q;
        float val = 0.f;
        if (s == kNaN) {
          val = NAN_FILL ? NAN : 0.f;
        } else if (g < cm.nb) {
          const int d = g - s;
#pragma unroll
          for (int t = 0; t <= K; ++t)
            if (s >= 0 && d == t) val = v[t];
        } else if (g == cm.nb && has_base) {
          val = bv;
        }
        row[q0 + q] = Mma<T>::op(val);
      }
    } else {
      for (int q = 0; q < cm.per; ++q) row[q0 + q] = zero;
    }
    if (ii == cm.slots - 1)  // the chunk's tail padding
      for (int q = cm.slots * cm.per; q < kBK; ++q) row[q] = zero;
  }
}

// The same into a row-major tile with row stride lda.
template <typename T, int K, bool NAN_FILL>
__device__ __forceinline__ void build_a_tile(typename Mma<T>::Op* A, int lda, int rows, const T* __restrict__ x,
                                             const float* __restrict__ grid, int64_t N, int64_t in, int64_t M,
                                             int base, const ChunkMap& cm, int64_t c, int64_t n0) {
  build_a_tile_with<T, K, NAN_FILL>([=](int r) { return A + r * lda; }, rows, x, grid, N, in, M, base, cm, c, n0,
                                    static_cast<int>(threadIdx.x), kThreads);
}

// Where the kBK W rows of chunk c come from, computed once per chunk into
// shared memory (so the tile loads need no index division): rows[q] >= 0 is
// the offset of a Wc row, (i nb + g) out; rows[q] <= -2 encodes the Wb row
// offset i out as -(i out) - 2; -1 marks padding. Needs a barrier before use.
__device__ __forceinline__ int64_t w_row_offset(const ChunkMap& cm, int64_t c, int q, int64_t in, int64_t out) {
  int64_t i;
  int g;
  return !cm.column(c, q, in, i, g) ? -1 : (g < cm.nb ? (i * cm.nb + g) * out : -(i * out) - 2);
}
__device__ __forceinline__ void chunk_rows(int64_t* rows, const ChunkMap& cm, int64_t c, int64_t in, int64_t out) {
  for (int q = threadIdx.x; q < kBK; q += kThreads) rows[q] = w_row_offset(cm, c, q, in, out);
}

// W tile (kBK rows of the chunk x COLS columns from j0), element (q, jj)
// through store(q, jj, value): row q holds W[(i, g), j0..] (rows from
// chunk_rows), zeros for padding and columns past `out`.
template <typename T, int COLS, typename Store>
__device__ __forceinline__ void load_w_tile_with(Store store, const T* __restrict__ Wb, const T* __restrict__ Wc,
                                                 const int64_t* rows, int64_t out, int64_t j0) {
  for (int p = threadIdx.x; p < kBK * COLS; p += kThreads) {
    const int q = p / COLS, jj = p % COLS;
    const int64_t j = j0 + jj, r = rows[q];
    float val = 0.f;
    if (j < out && r != -1) val = to_float(r >= 0 ? __ldg(Wc + r + j) : __ldg(Wb + (-r - 2) + j));
    store(q, jj, Mma<T>::op(val));
  }
}

// The same into a row-major tile with row stride ldb.
template <typename T, int COLS>
__device__ __forceinline__ void load_w_tile(typename Mma<T>::Op* B, int ldb, const T* __restrict__ Wb,
                                            const T* __restrict__ Wc, const int64_t* rows, int64_t out, int64_t j0) {
  load_w_tile_with<T, COLS>([=](int q, int jj, typename Mma<T>::Op v) { B[q * ldb + jj] = v; }, Wb, Wc, rows, out,
                            j0);
}

// A (rows x COLS) tile of a row-major (N, out) matrix from (n0, j0), zeros
// outside.
template <typename T, int ROWS, int COLS>
__device__ __forceinline__ void load_rows_tile(typename Mma<T>::Op* D, int ldd, const T* __restrict__ src, int64_t N,
                                               int64_t out, int64_t n0, int64_t j0) {
  for (int p = threadIdx.x; p < ROWS * COLS; p += kThreads) {
    const int r = p / COLS, jj = p % COLS;
    const int64_t n = n0 + r, j = j0 + jj;
    D[r * ldd + jj] = Mma<T>::op(n < N && j < out ? to_float(__ldg(src + n * out + j)) : 0.f);
  }
}

// ------------------------------------------------- warp-tile building blocks
template <typename F, int MI, int NI>
__device__ __forceinline__ void zero_acc(F (&acc)[MI][NI]) {
#pragma unroll
  for (int mi = 0; mi < MI; ++mi)
#pragma unroll
    for (int ni = 0; ni < NI; ++ni) wmma::fill_fragment(acc[mi][ni], 0.f);
}

// acc[mi][ni] += A_mi B_ni for one k-step: fragment mi of A starts at pa(mi),
// fragment ni of B at pb(ni) (shared memory, leading dimensions lda / ldb).
template <typename T, typename LA, typename LB, int MI, int NI, typename PA, typename PB>
__device__ __forceinline__ void warp_mma(FragC<T> (&acc)[MI][NI], PA pa, int lda, PB pb, int ldb) {
  FragA<T, LA> a[MI];
  FragB<T, LB> b[NI];
#pragma unroll
  for (int mi = 0; mi < MI; ++mi) wmma::load_matrix_sync(a[mi], pa(mi), lda);
#pragma unroll
  for (int ni = 0; ni < NI; ++ni) wmma::load_matrix_sync(b[ni], pb(ni), ldb);
#pragma unroll
  for (int mi = 0; mi < MI; ++mi)
#pragma unroll
    for (int ni = 0; ni < NI; ++ni) wmma::mma_sync(acc[mi][ni], a[mi], b[ni], acc[mi][ni]);
}

// Epilogue: each fragment goes through the warp's 16 x 16 float buffer
// `stage`; put(mi, ni, r, c, v) receives element (r, c) of fragment (mi, ni).
template <typename F, int MI, int NI, typename Put>
__device__ __forceinline__ void stage_out(const F (&acc)[MI][NI], float* stage, Put put) {
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int mi = 0; mi < MI; ++mi)
#pragma unroll
    for (int ni = 0; ni < NI; ++ni) {
      wmma::store_matrix_sync(stage, acc[mi][ni], 16, wmma::mem_row_major);
      __syncwarp();
      for (int e = lane; e < 256; e += 32) put(mi, ni, e / 16, e % 16, stage[e]);
      __syncwarp();
    }
}

template <typename T>
constexpr size_t forward_smem_bytes() {
  using Op = typename Mma<T>::Op;
  return sizeof(Op) * (size_t(kFwdBM) * padded_ld<Op>(kBK) + size_t(kBK) * padded_ld<Op>(kFwdBN)) +
         sizeof(float) * 8 * 256;
}

template <typename T, int K>
__global__ void __launch_bounds__(kThreads)
tc_forward_kernel(const T* __restrict__ x, const float* __restrict__ grid, int64_t N, int64_t in, int64_t M, int base,
                  const T* __restrict__ Wb, const T* __restrict__ Wc, int64_t out, T* __restrict__ y) {
  using Op = typename Mma<T>::Op;
  constexpr int lda = padded_ld<Op>(kBK), ldb = padded_ld<Op>(kFwdBN);
  KANEXT_DYNAMIC_SMEM(smem);
  Op* As = reinterpret_cast<Op*>(smem);
  Op* Bs = As + kFwdBM * lda;
  const int warp = threadIdx.x / 32;
  float* stage = reinterpret_cast<float*>(Bs + kBK * ldb) + warp * 256;
  __shared__ int64_t s_rows[kBK];
  const int wr = warp / 4, wc = warp % 4;  // warp tile: rows wr*64.., columns wc*32..
  const ChunkMap cm(in, M, K, base != kBaseZero);
  const int64_t row_tiles = ceil_div(N, kFwdBM), col_tiles = ceil_div(out, kFwdBN);

  for (int64_t ct = blockIdx.y; ct < col_tiles; ct += gridDim.y) {
    const int64_t j0 = ct * kFwdBN;
    for (int64_t rt = blockIdx.x; rt < row_tiles; rt += gridDim.x) {
      const int64_t n0 = rt * kFwdBM;
      FragC<T> acc[4][2];
      zero_acc(acc);
      for (int64_t c = 0; c < cm.chunks; ++c) {
        chunk_rows(s_rows, cm, c, in, out);
        __syncthreads();
        build_a_tile<T, K, true>(As, lda, kFwdBM, x, grid, N, in, M, base, cm, c, n0);
        load_w_tile<T, kFwdBN>(Bs, ldb, Wb, Wc, s_rows, out, j0);
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < kBK; kk += Mma<T>::kK)
          warp_mma<T, wmma::row_major, wmma::row_major>(
              acc, [&](int mi) { return As + (wr * 64 + mi * 16) * lda + kk; }, lda,
              [&](int ni) { return Bs + kk * ldb + wc * 32 + ni * 16; }, ldb);
        __syncthreads();
      }
      stage_out(acc, stage, [&](int mi, int ni, int r, int cc, float v) {
        const int64_t n = n0 + wr * 64 + mi * 16 + r, j = j0 + wc * 32 + ni * 16 + cc;
        if (n < N && j < out) y[n * out + j] = from_float<T>(v);
      });
    }
  }
}

// ------------------------------------------------------------------ grad W
template <typename T>
constexpr size_t grad_w_smem_bytes() {
  using Op = typename Mma<T>::Op;
  return sizeof(Op) * (size_t(kGwBR) * padded_ld<Op>(kBK) + size_t(kGwBR) * padded_ld<Op>(kGwBN)) +
         sizeof(float) * 8 * 256;
}

// Writes value v of W-gradient row q of chunk c, column j: into gWc / gWb
// (slices == 1) or into the float32 partials of slice `slice`.
template <typename T>
__device__ __forceinline__ void put_grad_w(float v, const ChunkMap& cm, int64_t c, int q, int64_t j, int64_t in,
                                           int64_t out, int slices, int slice, T* gWb, T* gWc, float* ws) {
  if (slices > 1) {
    ws[((int64_t(slice) * cm.chunks + c) * kBK + q) * out + j] = v;
    return;
  }
  int64_t i;
  int g;
  if (!cm.column(c, q, in, i, g)) return;
  if (g < cm.nb) gWc[(i * cm.nb + g) * out + j] = from_float<T>(v);
  else gWb[i * out + j] = from_float<T>(v);
}

template <typename T, int K>
__global__ void __launch_bounds__(kThreads)
tc_grad_w_kernel(const T* __restrict__ gy, const T* __restrict__ x, const float* __restrict__ grid, int64_t N,
                 int64_t in, int64_t M, int base, int64_t out, int64_t rows_per_slice, int slices, T* gWb, T* gWc,
                 float* ws) {
  using Op = typename Mma<T>::Op;
  constexpr int lda = padded_ld<Op>(kBK), ldd = padded_ld<Op>(kGwBN);
  KANEXT_DYNAMIC_SMEM(smem);
  Op* As = reinterpret_cast<Op*>(smem);
  Op* Ds = As + kGwBR * lda;
  const int warp = threadIdx.x / 32;
  float* stage = reinterpret_cast<float*>(Ds + kGwBR * ldd) + warp * 256;
  const int wr = warp / 4, wc = warp % 4;  // warp tile: W rows wr*32.., columns wc*32..
  const ChunkMap cm(in, M, K, base != kBaseZero);
  const int64_t col_tiles = ceil_div(out, kGwBN);
  const int slice = static_cast<int>(blockIdx.z);
  const int64_t nbeg = slice * rows_per_slice;
  const int64_t nend = nbeg + rows_per_slice < N ? nbeg + rows_per_slice : N;

  for (int64_t ct = blockIdx.y; ct < col_tiles; ct += gridDim.y) {
    const int64_t j0 = ct * kGwBN;
    for (int64_t c = blockIdx.x; c < cm.chunks; c += gridDim.x) {
      FragC<T> acc[2][2];
      zero_acc(acc);
      for (int64_t n0 = nbeg; n0 < nend; n0 += kGwBR) {
        const int rows = static_cast<int>(nend - n0 < kGwBR ? nend - n0 : kGwBR);
        build_a_tile<T, K, false>(As, lda, kGwBR, x, grid, n0 + rows, in, M, base, cm, c, n0);
        load_rows_tile<T, kGwBR, kGwBN>(Ds, ldd, gy, n0 + rows, out, n0, j0);
        __syncthreads();
        // A^T is read column-major: element (q, n) at As[n * lda + q]
#pragma unroll
        for (int kk = 0; kk < kGwBR; kk += Mma<T>::kK)
          warp_mma<T, wmma::col_major, wmma::row_major>(
              acc, [&](int mi) { return As + kk * lda + wr * 32 + mi * 16; }, lda,
              [&](int ni) { return Ds + kk * ldd + wc * 32 + ni * 16; }, ldd);
        __syncthreads();
      }
      stage_out(acc, stage, [&](int mi, int ni, int r, int cc, float v) {
        const int64_t j = j0 + wc * 32 + ni * 16 + cc;
        if (j < out) put_grad_w<T>(v, cm, c, wr * 32 + mi * 16 + r, j, in, out, slices, slice, gWb, gWc, ws);
      });
    }
  }
}

// Adds the slices' partials in slice order and writes gWb / gWc.
template <typename T>
__global__ void __launch_bounds__(kThreads)
tc_grad_w_combine_kernel(const float* __restrict__ ws, int slices, ChunkMap cm, int64_t in, int64_t out, T* gWb,
                         T* gWc) {
  const int64_t total = cm.chunks * kBK * out;
  for (int64_t e = blockIdx.x * int64_t(kThreads) + threadIdx.x; e < total; e += int64_t(gridDim.x) * kThreads) {
    const int64_t j = e % out, cq = e / out;
    const int64_t c = cq / kBK;
    const int q = static_cast<int>(cq % kBK);
    float s = 0.f;
    for (int sl = 0; sl < slices; ++sl) s += ws[sl * total + e];
    put_grad_w<T>(s, cm, c, q, j, in, out, 1, 0, gWb, gWc, nullptr);
  }
}

// ------------------------------------------------------------------ grad x
// The grad x epilogue's item (n, i) on chunk c: crow[0..cm.per) are the
// float32 gradA columns of input i in that chunk, the first of them the
// input's column g0. The basis derivatives of x (= x[n, i]) are contracted
// with the columns of their bases that lie in this chunk, b'(x) with the
// base column if it does; NaN for a NaN x. (Shared with design T's grad x,
// kan_linear_tc_v2_gx.cuh: the same terms in the same order.)
template <int K>
__device__ __forceinline__ float grad_x_item(const float* crow, float xv, const float* __restrict__ grid_row,
                                             int64_t M, int base, const ChunkMap& cm, int g0) {
  float v[K + 1], dv[K + 1];
  const int s = basis_window<float, K, true>(grid_row, M, xv, v, dv);
  float sum = 0.f;
  if (s >= 0) {
#pragma unroll
    for (int t = 0; t <= K; ++t) {
      const int q = s + t - g0;  // chunk-local column of basis s + t
      if (q >= 0 && q < cm.per) sum += dv[t] * crow[q];
    }
  }
  const int qb = cm.nb - g0;  // the base column
  if (base != kBaseZero && qb >= 0 && qb < cm.per) sum += base_derivative<float>(base, xv) * crow[qb];
  if (s == kNaN) sum = NAN;
  return sum;
}

// The grad x epilogue on chunk c of a float32 gradA tile in shared memory
// (batch row n0 + r, chunk column q at C[r ldc + q]; kGxBM rows): item
// (r, slot) contracts its columns with grad_x_item and writes grad x; for
// an input over several chunks (cpi > 1: one item per thread) it adds the
// chunk's sum to `part` instead and writes that on the input's last chunk.
// Run by `threads` threads (at least kGxBM), this one being number `tid`.
template <typename T, int K>
__device__ __forceinline__ void grad_x_epilogue(const float* C, int ldc, const T* __restrict__ x,
                                                const float* __restrict__ grid, int64_t N, int64_t in, int64_t M,
                                                int base, const ChunkMap& cm, int64_t c, int64_t n0, bool last,
                                                float& part, T* __restrict__ gx, int tid = threadIdx.x,
                                                int threads = kThreads) {
  int64_t i0;
  int g0;
  cm.locate(c, i0, g0);
  for (int p = tid; p < kGxBM * cm.slots; p += threads) {
    const int r = p / cm.slots, ii = p % cm.slots;
    const int64_t n = n0 + r, i = i0 + ii;
    if (n >= N || i >= in) continue;
    const float sum = grad_x_item<K>(C + r * ldc + ii * cm.per, to_float(x[n * in + i]), grid + i * M, M, base, cm, g0);
    if (cm.cpi == 1) {
      gx[n * in + i] = from_float<T>(sum);
    } else {
      part += sum;  // p == tid here: one item per thread
      if (last) gx[n * in + i] = from_float<T>(part);
    }
  }
}

template <typename T>
constexpr size_t grad_x_smem_bytes() {
  using Op = typename Mma<T>::Op;
  return sizeof(Op) * (size_t(kGxBM) * padded_ld<Op>(kGxBO) + size_t(kBK) * padded_ld<Op>(kGxBO)) +
         sizeof(float) * size_t(kGxBM) * padded_ld<float>(kBK);
}

template <typename T, int K>
__global__ void __launch_bounds__(kThreads)
tc_grad_x_kernel(const T* __restrict__ gy, const T* __restrict__ x, const float* __restrict__ grid, int64_t N,
                 int64_t in, int64_t M, int base, const T* __restrict__ Wb, const T* __restrict__ Wc, int64_t out,
                 T* __restrict__ gx) {
  using Op = typename Mma<T>::Op;
  constexpr int ldd = padded_ld<Op>(kGxBO), ldw = padded_ld<Op>(kGxBO), ldc = padded_ld<float>(kBK);
  KANEXT_DYNAMIC_SMEM(smem);
  Op* Ds = reinterpret_cast<Op*>(smem);
  Op* Ws = Ds + kGxBM * ldd;
  float* Cs = reinterpret_cast<float*>(Ws + kBK * ldw);
  __shared__ int64_t s_rows[kBK];
  const int warp = threadIdx.x / 32;
  const int wr = warp / 2, wc = warp % 2;  // warp tile: rows wr*32.., chunk columns wc*32..
  const ChunkMap cm(in, M, K, base != kBaseZero);
  const int64_t row_tiles = ceil_div(N, kGxBM);
  // A group is one chunk (nb1 <= kBK) or the cpi chunks of one input.
  const int64_t groups = cm.cpi == 1 ? cm.chunks : in;

  for (int64_t grp = blockIdx.y; grp < groups; grp += gridDim.y) {
    for (int64_t rt = blockIdx.x; rt < row_tiles; rt += gridDim.x) {
      const int64_t n0 = rt * kGxBM;
      float part = 0.f;  // nb1 > kBK: running sum of item threadIdx.x over the group's chunks
      for (int cc = 0; cc < cm.cpi; ++cc) {
        const int64_t c = grp * cm.cpi + cc;
        FragC<T> acc[2][2];
        zero_acc(acc);
        chunk_rows(s_rows, cm, c, in, out);
        __syncthreads();
        for (int64_t o0 = 0; o0 < out; o0 += kGxBO) {
          load_rows_tile<T, kGxBM, kGxBO>(Ds, ldd, gy, N, out, n0, o0);
          load_w_tile<T, kGxBO>(Ws, ldw, Wb, Wc, s_rows, out, o0);
          __syncthreads();
          // W^T is read column-major: element (o, q) at Ws[q * ldw + o]
#pragma unroll
          for (int kk = 0; kk < kGxBO; kk += Mma<T>::kK)
            warp_mma<T, wmma::row_major, wmma::col_major>(
                acc, [&](int mi) { return Ds + (wr * 32 + mi * 16) * ldd + kk; }, ldd,
                [&](int ni) { return Ws + (wc * 32 + ni * 16) * ldw + kk; }, ldw);
          __syncthreads();
        }
#pragma unroll
        for (int mi = 0; mi < 2; ++mi)
#pragma unroll
          for (int ni = 0; ni < 2; ++ni)
            wmma::store_matrix_sync(Cs + (wr * 32 + mi * 16) * ldc + wc * 32 + ni * 16, acc[mi][ni], ldc,
                                    wmma::mem_row_major);
        __syncthreads();
        grad_x_epilogue<T, K>(Cs, ldc, x, grid, N, in, M, base, cm, c, n0, cc == cm.cpi - 1, part, gx);
        __syncthreads();
      }
    }
  }
}

// ------------------------------------------------------------------ launchers
// Batch slices of grad W: 1 when the (chunk, column) tiles fill about two
// waves of the GPU, else enough slices for that, each at least 4 steps of
// kGwBR rows. Depends only on the sizes and the SM count (reproducible).
inline int plan_slices(int64_t N, const ChunkMap& cm, int64_t out, int64_t& rows_per_slice) {
  const int64_t tiles = cm.chunks * ceil_div(out, kGwBN);
  const int64_t target = 2 * int64_t(current_sm_count());
  int64_t s = tiles >= target ? 1 : ceil_div(target, tiles);
  const int64_t by_rows = ceil_div(N, 4 * kGwBR);
  if (s > by_rows) s = by_rows;
  if (s > kMaxSlices) s = kMaxSlices;
  if (s < 1) s = 1;
  rows_per_slice = ceil_div(ceil_div(N, s), kGwBR) * kGwBR;
  return static_cast<int>(ceil_div(N, rows_per_slice));
}

inline size_t workspace_bytes(int64_t N, int64_t in, int64_t M, int k, int base, int64_t out, bool need_w) {
  if (!need_w || N == 0 || in == 0 || out == 0) return 0;
  const ChunkMap cm(in, M, k, base != kBaseZero);
  int64_t rows_per_slice;
  const int slices = plan_slices(N, cm, out, rows_per_slice);
  return slices > 1 ? size_t(slices) * size_t(cm.chunks) * kBK * size_t(out) * sizeof(float) : 0;
}

template <typename Kernel>
cudaError_t allow_smem(Kernel kernel, size_t bytes) {
  return bytes > 48 * 1024 ? cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                  static_cast<int>(bytes))
                           : cudaSuccess;
}

// The passes of grad W around its kernel: grad Wb zeroed for base zero
// (no base column), the kernel over (chunks, column tiles of COLS outputs,
// batch slices) by launch(grid, rows_per_slice, slices, workspace), then
// the slices' partials added in slice order. The slices depend on the
// sizes and the SM count only (plan_slices), whatever the kernel's tile.
template <typename T, typename Launch>
cudaError_t grad_w_passes(const ChunkMap& cm, int64_t N, int64_t in, int64_t out, int base, int64_t cols, T* gWb,
                          T* gWc, void* workspace, cudaStream_t stream, Launch launch) {
  cudaError_t e;
  if (base == kBaseZero) {  // no base column: grad Wb is 0
    e = cudaMemsetAsync(gWb, 0, size_t(in) * size_t(out) * sizeof(T), stream);
    if (e != cudaSuccess) return e;
  }
  int64_t rows_per_slice;
  const int slices = plan_slices(N, cm, out, rows_per_slice);
  float* ws = static_cast<float*>(workspace);
  e = launch(dim3(grid_x(cm.chunks), grid_yz(ceil_div(out, cols)), static_cast<unsigned>(slices)), rows_per_slice,
             slices, ws);
  if (e != cudaSuccess || slices == 1) return e;
  const int64_t total = cm.chunks * kBK * out;
  const unsigned blocks = clamp_grid(ceil_div(total, kThreads), int64_t(current_sm_count()) * 16);
  KANEXT_LAUNCH(blocks, kThreads, 0, stream, tc_grad_w_combine_kernel<T>)(ws, slices, cm, in, out, gWb, gWc);
  return cudaGetLastError();
}

template <typename T>
cudaError_t launch_forward(const T* x, const float* grid, int64_t N, int64_t in, int64_t M, int k, int base,
                           const T* Wb, const T* Wc, int64_t out, T* y, cudaStream_t stream) {
  if (N == 0 || out == 0) return cudaSuccess;
  return dispatch_order(k, [&](auto kc) -> cudaError_t {
    constexpr int K = decltype(kc)::value;
    constexpr size_t smem = forward_smem_bytes<T>();
    const cudaError_t e = allow_smem(tc_forward_kernel<T, K>, smem);
    if (e != cudaSuccess) return e;
    const dim3 grid_dim(grid_x(ceil_div(N, kFwdBM)), grid_yz(ceil_div(out, kFwdBN)));
    KANEXT_LAUNCH(grid_dim, kThreads, smem, stream, tc_forward_kernel<T, K>)(x, grid, N, in, M, base, Wb, Wc, out, y);
    return cudaGetLastError();
  });
}

template <typename T>
cudaError_t launch_backward(const T* gy, const T* x, const float* grid, int64_t N, int64_t in, int64_t M, int k,
                            int base, const T* Wb, const T* Wc, int64_t out, bool need_x, bool need_w, T* gx, T* gWb,
                            T* gWc, void* workspace, size_t ws_bytes, cudaStream_t stream) {
  if (N == 0 || in == 0 || out == 0) return cudaSuccess;
  if (need_w && ws_bytes < workspace_bytes(N, in, M, k, base, out, true)) return cudaErrorInvalidValue;
  return dispatch_order(k, [&](auto kc) -> cudaError_t {
    constexpr int K = decltype(kc)::value;
    const ChunkMap cm(in, M, K, base != kBaseZero);
    if (need_w) {
      constexpr size_t smem = grad_w_smem_bytes<T>();
      const cudaError_t e = allow_smem(tc_grad_w_kernel<T, K>, smem);
      if (e != cudaSuccess) return e;
      const cudaError_t ew = grad_w_passes<T>(
          cm, N, in, out, base, kGwBN, gWb, gWc, workspace, stream,
          [&](dim3 grid_dim, int64_t rows_per_slice, int slices, float* ws) {
            KANEXT_LAUNCH(grid_dim, kThreads, smem, stream, tc_grad_w_kernel<T, K>)(
                gy, x, grid, N, in, M, base, out, rows_per_slice, slices, gWb, gWc, ws);
            return cudaGetLastError();
          });
      if (ew != cudaSuccess) return ew;
    }
    if (need_x) {
      constexpr size_t smem = grad_x_smem_bytes<T>();
      const cudaError_t e = allow_smem(tc_grad_x_kernel<T, K>, smem);
      if (e != cudaSuccess) return e;
      const int64_t groups = cm.cpi == 1 ? cm.chunks : in;
      const dim3 grid_dim(grid_x(ceil_div(N, kGxBM)), grid_yz(groups));
      KANEXT_LAUNCH(grid_dim, kThreads, smem, stream, tc_grad_x_kernel<T, K>)(gy, x, grid, N, in, M, base, Wb, Wc,
                                                                               out, gx);
      return cudaGetLastError();
    }
    return cudaSuccess;
  });
}

}  // namespace tc
}  // namespace cuda
}  // namespace kanext
