// CUDA backward of the fused KAN layer (local-support formulation):
//
//   gx[n,i]    = b'(x) sum_j Wb[i,j] gy[n,j] + sum_q B'_{s+q}(x) sum_j Wc[i,s+q,j] gy[n,j]
//   gWb[i,j]   = sum_n b(x[n,i]) gy[n,j]
//   gWc[i,g,j] = sum_n B_g(x[n,i]) gy[n,j]          (only g in s(n,i)..s(n,i)+k)
//
// Two independent kernels (each launched only if its outputs are asked for),
// plus a small fixed-order reduction. Nothing uses atomics, so every result
// is deterministic: bit-identical from run to run for the same sizes on the
// same GPU model (the batch split below depends on the SM count).
//
// grad_x: a warp owns 2 batch rows x 32 inputs. Each lane first evaluates the
// bases and derivatives of one input for both rows (so the x reads and the
// basis work are spread, not repeated across lanes) into shared memory. Then
// the warp walks `out` in chunks of 32 lanes x 2 vectors: it holds the
// chunk of gy[n, :] for its rows in registers, and for every input of its
// tile gathers the k+1 rows of Wc (and the row of Wb, shared by both rows)
// with lane-contiguous vector loads; each lane forms its partial
// b' <Wb, gy> + sum_q B'_q <Wc_q, gy> (dots first, then weighted, as the CPU
// kernel does), and a 5-step xor-butterfly (all lanes end with the identical
// sum) reduces it; lane ii keeps the sum of input ii, so the final stores of
// gx[n, i0..i0+31] are one coalesced 32-wide write. The chunks add in order.
//
// grad_W: a block (256 threads) owns IC inputs x CT columns (IC * CT = 256, CT
// in {32,...,256} chosen from `out`), a range of GR basis rows, and one slice
// of the batch. Every thread owns one column j of one input i: its
// accumulators gWc[i, g_lo.., j] live in shared memory in a column that only
// this thread touches, and gWb[i, j] in a register, so the rank-1 updates
// B_q gy[n, j] need neither atomics nor barriers. The batch slice is walked in
// chunks of 256 (n, i) entries whose bases the block first stages in shared
// memory (one per thread). A warp shares its input, so the window start is
// uniform within a warp and the guards do not diverge. At the end each
// thread writes its column once: straight into gWc / gWb when one slice covers
// the batch, else into that slice's partial buffer, and a second kernel adds
// the partials of the slices in slice order. The slice count is chosen so
// that the grid fills the GPU (small `in * out` with a large batch), and is
// 1 whenever the (input, column) tiles alone suffice.
//
// grad_W in registers (backend "local_v2", nb = G + k <= kRegRows = 16):
// grad_w_reg_kernel, design L.1 of docs/roofline.md. Same tiles, batch
// slices and slice combine as grad_w_kernel, but every thread keeps the nb
// accumulators of its (i, j) in registers. The staged entry of a (row, input)
// is packed (B_0..B_K, b(x), window start s) so that a warp reads it with a
// broadcast shared load; since the warp shares its input, s is warp-uniform,
// and a `switch (s)` over compile-time register indices selects the k+1
// accumulators to update: no dynamic register indexing, no divergence. Per
// batch row: one coalesced gy load, the packed entry, k+2 FMAs and the
// switch. The FMAs run in the same order as grad_w_kernel's (row by row,
// same slices), so the two agree bit for bit.
//
// grad_W over sorted rows (backend "local_v2", nb > kRegRows; the second half
// of design L.1): sort_rows_kernel groups each (input, batch slice)'s rows by
// window start (stable counting sort into a permutation in the workspace),
// and grad_w_sorted_kernel walks them in that order with grad_w_kernel's
// tiles and slices, keeping only the k+1 accumulators of the current window
// in registers and storing each gWc row once, when the window has passed it.
// Deterministic, but summed in another order than grad_w_kernel (not its
// bits). Beyond kSortMaxKeys - 2 intervals or 2^31 rows: grad_w_kernel.
//
// grad_x v2 (backend "local_v2", design L.2): grad_x_v2_kernel, grad_x_kernel
// with 32-bit offsets for the gathers (see there); the same bits.
//
// Semantics equal the CPU kernel: a NaN x[n, i] gives gx[n, i] = NaN and adds
// nothing to input i's weight gradients; outside the grid only the base term
// contributes; base == zero adds nothing to gWb (which comes out zero) and
// nothing to gx from the base term.
#pragma once

#include "edge_tiles.cuh"

namespace kanext {
namespace cuda {
namespace bwd {

// ------------------------------------------------------------------- grad_x
constexpr int kGxWarps = 8;
constexpr int kGxThreads = 32 * kGxWarps;
constexpr int kGxRW = 2;                     // batch rows per warp
constexpr int kGxBN = kGxWarps * kGxRW;      // 16 batch rows per block
constexpr int kGxBI = 32;                    // inputs per block (one per lane)
constexpr int kGxMJ = 2;                     // 16-byte vectors per lane per chunk

template <typename T, int K, bool ALIGNED>
__global__ void __launch_bounds__(kGxThreads)
grad_x_kernel(const T* __restrict__ gy, const T* __restrict__ x, const T* __restrict__ grid, int64_t N, int64_t in,
              int64_t M, int base, const T* __restrict__ Wb, const T* __restrict__ Wc, int64_t out,
              T* __restrict__ gx) {
  constexpr int VN = kVec<T>;
  constexpr int64_t CH = 32 * VN * kGxMJ;  // columns per chunk
  const int64_t nb = M - K - 1;
  __shared__ int s_start[kGxWarps][kGxRW][kGxBI];
  __shared__ T s_dv[kGxWarps][kGxRW][K + 2][kGxBI];  // B'_0..B'_K, then b'(x)

  const int lane = threadIdx.x % 32, w = threadIdx.x / 32;
  const bool has_base = base != kBaseZero;
  const int64_t row_tiles = ceil_div(N, kGxBN), in_tiles = ceil_div(in, kGxBI);

  for (int64_t it = blockIdx.y; it < in_tiles; it += gridDim.y) {
    const int64_t i0 = it * kGxBI;
    const int icn = static_cast<int>(in - i0 < kGxBI ? in - i0 : kGxBI);
    for (int64_t rt = blockIdx.x; rt < row_tiles; rt += gridDim.x) {
      const int64_t nw = rt * kGxBN + int64_t(w) * kGxRW;  // this warp's first row

#pragma unroll
      for (int r = 0; r < kGxRW; ++r) {
        const int64_t n = nw + r, i = i0 + lane;
        int s = kOutside;
        T v[K + 1], dv[K + 1], db = T(0);
        if (n < N && i < in) {
          const T xv = x[n * in + i];
          s = basis_window<T, K, true>(grid + i * M, M, xv, v, dv);
          db = base_derivative<T>(base, xv);
        }
        s_start[w][r][lane] = s;
#pragma unroll
        for (int q = 0; q <= K; ++q) s_dv[w][r][q][lane] = s >= 0 ? dv[q] : T(0);
        s_dv[w][r][K + 1][lane] = db;
      }
      __syncwarp();

      T mine[kGxRW];
#pragma unroll
      for (int r = 0; r < kGxRW; ++r) mine[r] = T(0);

      for (int64_t c0 = 0; c0 < out; c0 += CH) {
        T d[kGxRW][kGxMJ][VN];
#pragma unroll
        for (int r = 0; r < kGxRW; ++r)
#pragma unroll
          for (int mj = 0; mj < kGxMJ; ++mj) {
            const int64_t j = c0 + int64_t(lane + 32 * mj) * VN;
            if (nw + r < N) {
              load_cols<T, VN, ALIGNED>(gy + (nw + r) * out, j, out, d[r][mj]);
            } else {
#pragma unroll
              for (int e = 0; e < VN; ++e) d[r][mj][e] = T(0);
            }
          }

        for (int ii = 0; ii < icn; ++ii) {
          const int64_t i = i0 + ii;
          T wb[kGxMJ][VN];
          if (has_base) {
#pragma unroll
            for (int mj = 0; mj < kGxMJ; ++mj)
              load_cols<T, VN, ALIGNED>(Wb + i * out, c0 + int64_t(lane + 32 * mj) * VN, out, wb[mj]);
          }
          const T* wci = Wc + i * nb * out;
#pragma unroll
          for (int r = 0; r < kGxRW; ++r) {
            const int s = s_start[w][r][ii];  // uniform across the warp
            if (s == kNaN || (s < 0 && !has_base)) continue;
            T p = T(0);
            if (has_base) {
              T pb = T(0);
#pragma unroll
              for (int mj = 0; mj < kGxMJ; ++mj)
#pragma unroll
                for (int e = 0; e < VN; ++e) pb = fma(wb[mj][e], d[r][mj][e], pb);
              p = s_dv[w][r][K + 1][ii] * pb;
            }
            if (s >= 0) {
              T pq[K + 1];
#pragma unroll
              for (int q = 0; q <= K; ++q) {
                pq[q] = T(0);
#pragma unroll
                for (int mj = 0; mj < kGxMJ; ++mj) {
                  T wq[VN];
                  load_cols<T, VN, ALIGNED>(wci + (s + q) * out, c0 + int64_t(lane + 32 * mj) * VN, out, wq);
#pragma unroll
                  for (int e = 0; e < VN; ++e) pq[q] = fma(wq[e], d[r][mj][e], pq[q]);
                }
              }
#pragma unroll
              for (int q = 0; q <= K; ++q) p = fma(s_dv[w][r][q][ii], pq[q], p);
            }
#pragma unroll
            for (int off = 16; off > 0; off >>= 1) p += __shfl_xor_sync(0xffffffffu, p, off);
            if (lane == ii) mine[r] += p;
          }
        }
      }

#pragma unroll
      for (int r = 0; r < kGxRW; ++r) {
        const int64_t n = nw + r;
        if (n < N && lane < icn) gx[n * in + i0 + lane] = s_start[w][r][lane] == kNaN ? T(NAN) : mine[r];
      }
      __syncwarp();  // the next tile overwrites this warp's staged bases
    }
  }
}

// grad_x v2 (backend "local_v2", design L.2 of docs/roofline.md): the tiles,
// staging, dots, butterfly and chunk order of grad_x_kernel, so the same bits;
// only the addressing changes. The staged entry of (row, input) is packed
// (LocalEntry: B'_0..B'_K, b'(x), then the byte offset s * out * sizeof(T) of
// Wc row s in the input's slab) and read with broadcast vector loads; per
// input the lane forms its slab pointer once, so a gather is pointer + off +
// q * row bytes (+ an immediate for the second vector). Chunks that lie
// wholly inside `out` (all but at most the last) load without column guards;
// the last one runs the guarded loads of grad_x_kernel. Aligned operands only
// (out % VN == 0, 16-byte aligned rows): the launcher runs grad_x_kernel
// otherwise (the scalar-load variant spilled more than v1's).
template <typename T, int K, bool FULL>
__device__ __forceinline__ void grad_x_v2_chunk(const T* __restrict__ gy, const T* __restrict__ Wb,
                                                const T* __restrict__ Wc, int64_t N, int64_t out, int64_t nb,
                                                bool has_base, int64_t nw, int64_t i0, int icn, int64_t c0,
                                                const LocalEntry<T, K> (&se)[kGxRW][kGxBI], int lane,
                                                T (&mine)[kGxRW]) {
  constexpr int VN = kVec<T>;
  const unsigned row_bytes = static_cast<unsigned>(out * int64_t(sizeof(T)));  // the slab is < 2^31 B (launcher)
  const int64_t jl = c0 + int64_t(lane) * VN;  // this lane's first column; the second is jl + 32 VN
  T d[kGxRW][kGxMJ][VN];
#pragma unroll
  for (int r = 0; r < kGxRW; ++r)
#pragma unroll
    for (int mj = 0; mj < kGxMJ; ++mj) {
      if (nw + r < N) {
        if constexpr (FULL)
          load_full<T, VN, true>(gy + (nw + r) * out + jl + 32 * VN * mj, d[r][mj]);
        else
          load_cols<T, VN, true>(gy + (nw + r) * out, jl + 32 * VN * mj, out, d[r][mj]);
      } else {
#pragma unroll
        for (int e = 0; e < VN; ++e) d[r][mj][e] = T(0);
      }
    }

  // the lane's column in bytes (full chunks; guarded ones index from the row start)
  const unsigned jl_bytes = FULL ? static_cast<unsigned>(jl * int64_t(sizeof(T))) : 0u;
  // running pointers, one step per input: Wb row i (at the lane's column in
  // full chunks), Wc slab i
  const T* wbp = Wb + i0 * out + (FULL ? jl : 0);
  const T* wcp = Wc + i0 * nb * out;
  for (int ii = 0; ii < icn; ++ii, wbp += out, wcp += nb * out) {
    T wb[kGxMJ][VN];
    if (has_base) {
#pragma unroll
      for (int mj = 0; mj < kGxMJ; ++mj) {
        if constexpr (FULL)
          load_full<T, VN, true>(wbp + 32 * VN * mj, wb[mj]);
        else
          load_cols<T, VN, true>(wbp, jl + 32 * VN * mj, out, wb[mj]);
      }
    }
#pragma unroll
    for (int r = 0; r < kGxRW; ++r) {
      const LocalEntry<T, K> e = se[r][ii];  // uniform across the warp
      if (e.off == kNaN || (e.off < 0 && !has_base)) continue;
      T p = T(0);
      if (has_base) {
        T pb = T(0);
#pragma unroll
        for (int mj = 0; mj < kGxMJ; ++mj)
#pragma unroll
          for (int u = 0; u < VN; ++u) pb = fma(wb[mj][u], d[r][mj][u], pb);
        p = e.v[K + 1] * pb;
      }
      if (e.off >= 0) {
        T pq[K + 1];
        const T* row0 = byte_offset(wcp, static_cast<unsigned>(e.off) + jl_bytes);  // row s
#pragma unroll
        for (int q = 0; q <= K; ++q) {
          pq[q] = T(0);
          const T* row = byte_offset(row0, unsigned(q) * row_bytes);  // row s + q
#pragma unroll
          for (int mj = 0; mj < kGxMJ; ++mj) {
            T wq[VN];
            if constexpr (FULL)
              load_full<T, VN, true>(row + 32 * VN * mj, wq);
            else
              load_cols<T, VN, true>(row, jl + 32 * VN * mj, out, wq);
#pragma unroll
            for (int u = 0; u < VN; ++u) pq[q] = fma(wq[u], d[r][mj][u], pq[q]);
          }
        }
#pragma unroll
        for (int q = 0; q <= K; ++q) p = fma(e.v[q], pq[q], p);
      }
#pragma unroll
      for (int off = 16; off > 0; off >>= 1) p += __shfl_xor_sync(0xffffffffu, p, off);
      if (lane == ii) mine[r] += p;
    }
  }
}

template <typename T, int K>
__global__ void __launch_bounds__(kGxThreads)
grad_x_v2_kernel(const T* __restrict__ gy, const T* __restrict__ x, const T* __restrict__ grid, int64_t N,
                 int64_t in, int64_t M, int base, const T* __restrict__ Wb, const T* __restrict__ Wc, int64_t out,
                 T* __restrict__ gx) {
  constexpr int VN = kVec<T>;
  constexpr int64_t CH = 32 * VN * kGxMJ;  // columns per chunk
  const int64_t nb = M - K - 1;
  __shared__ LocalEntry<T, K> s_e[kGxWarps][kGxRW][kGxBI];

  const int lane = threadIdx.x % 32, w = threadIdx.x / 32;
  const bool has_base = base != kBaseZero;
  const int64_t row_tiles = ceil_div(N, kGxBN), in_tiles = ceil_div(in, kGxBI);
  const unsigned row_bytes = static_cast<unsigned>(out * int64_t(sizeof(T)));  // the slab is < 2^31 B (launcher)

  for (int64_t it = blockIdx.y; it < in_tiles; it += gridDim.y) {
    const int64_t i0 = it * kGxBI;
    const int icn = static_cast<int>(in - i0 < kGxBI ? in - i0 : kGxBI);
    for (int64_t rt = blockIdx.x; rt < row_tiles; rt += gridDim.x) {
      const int64_t nw = rt * kGxBN + int64_t(w) * kGxRW;  // this warp's first row

#pragma unroll
      for (int r = 0; r < kGxRW; ++r) {
        const int64_t n = nw + r, i = i0 + lane;
        int s = kOutside;
        T v[K + 1], dv[K + 1], db = T(0);
        if (n < N && i < in) {
          const T xv = x[n * in + i];
          s = basis_window<T, K, true>(grid + i * M, M, xv, v, dv);
          db = base_derivative<T>(base, xv);
        }
        LocalEntry<T, K> e;
#pragma unroll
        for (int q = 0; q <= K; ++q) e.v[q] = s >= 0 ? dv[q] : T(0);
        e.v[K + 1] = db;
        e.off = s >= 0 ? static_cast<int>(static_cast<unsigned>(s) * row_bytes) : s;
        s_e[w][r][lane] = e;
      }
      __syncwarp();

      T mine[kGxRW];
#pragma unroll
      for (int r = 0; r < kGxRW; ++r) mine[r] = T(0);

      for (int64_t c0 = 0; c0 < out; c0 += CH) {
        if (c0 + CH <= out)  // unguarded loads: the chunk lies inside `out`
          grad_x_v2_chunk<T, K, true>(gy, Wb, Wc, N, out, nb, has_base, nw, i0, icn, c0, s_e[w], lane, mine);
        else
          grad_x_v2_chunk<T, K, false>(gy, Wb, Wc, N, out, nb, has_base, nw, i0, icn, c0, s_e[w], lane, mine);
      }

#pragma unroll
      for (int r = 0; r < kGxRW; ++r) {
        const int64_t n = nw + r;
        if (n < N && lane < icn) gx[n * in + i0 + lane] = s_e[w][r][lane].off == kNaN ? T(NAN) : mine[r];
      }
      __syncwarp();  // the next tile overwrites this warp's staged entries
    }
  }
}

// ------------------------------------------------------------------- grad_W
constexpr int kWThreads = tiles::kThreads;
using WPlan = tiles::Plan;

inline WPlan plan_weights(int64_t N, int64_t in, int64_t M, int k, int64_t out, size_t elem) {
  return tiles::plan(N, in, M, k, out, elem, /*basis_rows=*/true);
}

inline size_t workspace_bytes(const WPlan& p, size_t elem) { return tiles::basis_rows_ws_bytes(p, elem); }

template <typename T, int K>
__global__ void __launch_bounds__(kWThreads)
grad_w_kernel(const T* __restrict__ gy, const T* __restrict__ x, const T* __restrict__ grid, int64_t N, int64_t in,
              int64_t M, int base, int64_t out, int ct, int gr, int64_t n_gr, int64_t col_tiles, int64_t in_tiles,
              int64_t slices, int64_t slice_rows, T* __restrict__ gWc, T* __restrict__ gWb, int64_t stride_c,
              int64_t stride_b) {
  KANEXT_DYNAMIC_SMEM(s_raw);
  T* s_acc = reinterpret_cast<T*>(s_raw);  // [ic][gr][ct]
  __shared__ int s_start[kWThreads];
  __shared__ T s_val[K + 2][kWThreads];    // B_0..B_K, then b(x)

  const int64_t nb = M - K - 1;
  const int tid = threadIdx.x;
  const int icb = kWThreads / ct;              // inputs per block
  const int my_ic = tid / ct, c = tid % ct;    // this thread's input and column
  const int st_r = tid / icb, st_ic = tid % icb;  // the (row, input) entry it stages
  const int rows_per_chunk = kWThreads / icb;  // = ct
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

      for (int64_t nc = nbeg; nc < nend; nc += rows_per_chunk) {
        tiles::stage_entry<T, K>(x, grid, in, M, base, nc + st_r, nend, itile * icb + st_ic, s_start, s_val, tid);
        __syncthreads();
        const int rcnt = static_cast<int>(nend - nc < rows_per_chunk ? nend - nc : rows_per_chunk);
        for (int r = 0; r < rcnt; ++r) {
          const int e = r * icb + my_ic;
          const int s = s_start[e];
          if (s == kNaN) continue;  // NaN x adds nothing to the weight gradients
          const T d = mine_ok ? __ldg(gy + (nc + r) * out + j) : T(0);
          if (do_base) accb = fma(s_val[K + 1][e], d, accb);
          if (s >= 0) {
#pragma unroll
            for (int q = 0; q <= K; ++q) {
              const int64_t g = s + q - g_lo;
              if (g >= 0 && g < g_cnt) acc[g * ct] = fma(s_val[q][e], d, acc[g * ct]);
            }
          }
        }
        __syncthreads();  // the next chunk overwrites the staged bases
      }

      if (mine_ok) {
        T* oc = gWc + sl * stride_c + (i * nb + g_lo) * out + j;
        for (int g = 0; g < g_cnt; ++g) oc[int64_t(g) * out] = acc[int64_t(g) * ct];
        if (g_lo == 0) gWb[sl * stride_b + i * out + j] = accb;
      }
    }
  }
}

// --------------------------------------------------- grad_W in registers
constexpr int kRegRows = 16;  // most basis rows (nb = G + k) kept in registers

// The staged (row, input) entry of grad_w_reg_kernel: B_0..B_K, then b(x),
// then the window start (or kOutside / kNaN). 16-byte aligned, so a warp reads
// it with a few broadcast vector loads.
template <typename T, int K>
struct alignas(16) RegEntry {
  T v[K + 2];
  int s;
};

// Stages entry (n, si) into e.v (B_0..B_K, then b(x)) and e.s (the window
// start, or kOutside / kNaN); ok false: kOutside with zero coefficients (a
// row past the slice or an input past `in`). E: RegEntry or SortedEntry.
template <typename T, int K, typename E>
__device__ __forceinline__ void stage_packed(const T* __restrict__ x, const T* __restrict__ grid, int64_t in,
                                             int64_t M, int base, bool ok, int64_t n, int64_t si, E& e) {
  // The bases are stored before b(x) is computed: SiLU's division may call
  // the IEEE slow path, and bases kept live across that call were spilled.
  const T xv = ok ? x[n * in + si] : T(0);
  int s = kOutside;
  T v[K + 1], dv[K + 1];
  if (ok) s = basis_window<T, K, false>(grid + si * M, M, xv, v, dv);
#pragma unroll
  for (int q = 0; q <= K; ++q) e.v[q] = s >= 0 ? v[q] : T(0);
  e.s = s;
  e.v[K + 1] = ok ? base_value<T>(base, xv) : T(0);
}

// acc[C + q] += B_q d for q = 0..K, at compile-time register indices (nothing
// for a window that cannot start at C: C + K >= kRegRows).
template <typename T, int K, int C>
__device__ __forceinline__ void window_fma(T (&acc)[kRegRows], const T (&v)[K + 2], T d) {
  if constexpr (C + K < kRegRows) {
#pragma unroll
    for (int q = 0; q <= K; ++q) acc[C + q] = fma(v[q], d, acc[C + q]);
  }
}

// threadIdx.x, read afresh (volatile: the compiler can neither hoist nor
// keep it, so what derives from it is recomputed instead of kept live).
__device__ __forceinline__ unsigned fresh_tid() {
#ifdef __CUDA_ARCH__
  unsigned t;
  asm volatile("mov.u32 %0, %%tid.x;" : "=r"(t));
  return t;
#else
  return threadIdx.x;
#endif
}

// v, as a value the compiler cannot see through (so it recomputes what
// derives from v instead of keeping it live).
__device__ __forceinline__ int opaque(int v) {
#ifdef __CUDA_ARCH__
  asm volatile("mov.b32 %0, %0;" : "+r"(v));
#endif
  return v;
}
__device__ __forceinline__ int64_t opaque(int64_t v) {
#ifdef __CUDA_ARCH__
  asm volatile("mov.b64 %0, %0;" : "+l"(v));
#endif
  return v;
}
template <typename T>
__device__ __forceinline__ const T* opaque(const T* p) {
  return reinterpret_cast<const T*>(opaque(static_cast<int64_t>(reinterpret_cast<intptr_t>(p))));
}

// The resident blocks per SM that grad_w_reg_kernel is compiled for (its
// __launch_bounds__ minimum; at 256 threads, 5 blocks cap the registers at 48,
// 4 at 64, 3 at 80, 2 at 128). With no minimum, under the build's
// --use_fast_math, ptxas aimed at 40 registers (6 blocks) for fp32 k <= 2 and
// spilled 4 to 12 bytes around the basis staging to get there (the bases
// across the SiLU code, the reciprocal of the tile-count division across the
// staging). These minimums are the occupancies it chose where it did not
// spill, and 5 for fp32 k <= 2: every instantiation spill-free, the per-row
// loop unchanged (docs/roofline.md section 6, L.1).
template <typename T, int K>
constexpr int reg_min_blocks() {
  if constexpr (sizeof(T) == 4) return K <= 4 ? 5 : 4;
  return K <= 1 ? 4 : (K == 2 ? 3 : 2);
}

template <typename T, int K>
__global__ void __launch_bounds__(kWThreads, reg_min_blocks<T, K>())
grad_w_reg_kernel(const T* __restrict__ gy, const T* __restrict__ x, const T* __restrict__ grid, int64_t N,
                  int64_t in, int64_t M, int base, int64_t out, int ct, int64_t col_tiles, int64_t in_tiles,
                  int64_t slices, int64_t slice_rows, T* __restrict__ gWc, T* __restrict__ gWb, int64_t stride_c,
                  int64_t stride_b) {
  static_assert(K + 1 <= kRegRows, "the window must fit the register accumulators");
  static_assert(kWThreads == 256, "the shifts below assume 256 threads");
  __shared__ RegEntry<T, K> s_e[kWThreads];

  // ct is 32, 64, 128 or 256 (tiles::plan), so the thread's coordinates are
  // shifts and masks of threadIdx.x, recomputed where they are needed from a
  // fresh read (fresh_tid): kept live across the chunk loop, whose staging
  // calls the IEEE division slow path, ptxas spilled them.
  const int lg_ct = ct == 32 ? 5 : ct == 64 ? 6 : ct == 128 ? 7 : 8;
  const int lg_icb = 8 - lg_ct, icb = 1 << lg_icb;  // inputs per block (kWThreads = 256)
  const int rows_per_chunk = ct;
  const bool has_base = base != kBaseZero;
  // 32-bit tile indices (the launcher's condition: in_tiles * col_tiles < 2^31):
  // a 64-bit division is a subroutine call, around which ptxas spilled.
  const int tiles = static_cast<int>(in_tiles * col_tiles), ctiles = static_cast<int>(col_tiles);

  for (int64_t sl = blockIdx.y; sl < slices; sl += gridDim.y) {
    const int64_t nbeg = sl * slice_rows;
    const int64_t nend = nbeg + slice_rows < N ? nbeg + slice_rows : N;
    for (int tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
      T acc[kRegRows];
#pragma unroll
      for (int g = 0; g < kRegRows; ++g) acc[g] = T(0);
      T accb = T(0);

      for (int64_t nc = nbeg; nc < nend; nc += rows_per_chunk) {
        // the tile's coordinates, recomputed per chunk for the same reason, each
        // where it is used (two 32-bit divisions per chunk of >= 32 rows)
        const int itile = opaque(tile) / ctiles;
        {  // the (row, input) entry this thread stages: row tid / icb, input tid % icb
          const unsigned t = fresh_tid();
          // (M opaque too: what the basis code derives from it is not hoisted
          // out of the chunk loop and kept across the slow-path calls)
          const int64_t n = nc + (t >> lg_icb), si = int64_t(itile) * icb + (t & unsigned(icb - 1));
          stage_packed<T, K>(x, grid, in, opaque(M), base, n < nend && si < in, n, si, s_e[t]);
        }
        __syncthreads();
        const int ctile = opaque(tile) % ctiles;
        const unsigned t = fresh_tid(), my_ic = t >> lg_ct;  // this thread's input (warp-uniform)
        const int64_t j = int64_t(ctile) * ct + (t & unsigned(ct - 1));
        const int rcnt = static_cast<int>(nend - nc < rows_per_chunk ? nend - nc : rows_per_chunk);
        const RegEntry<T, K>* ep = s_e + my_ic;
        // Unconditional loads: a thread past `out` reads column out-1 (and one
        // past `in` a valid column too); such threads never store, so what
        // they accumulate does not matter.
        const T* gyp = gy + nc * out + (j < out ? j : out - 1);
        for (int r = 0; r < rcnt; ++r, ep += icb, gyp += out) {
          const RegEntry<T, K> e = *ep;  // broadcast: the warp reads one entry
          const T d = __ldg(gyp);
          // NaN x adds nothing to the weight gradients (a predicated FMA, no branch)
          if (has_base && e.s != kNaN) accb = fma(e.v[K + 1], d, accb);
          // Warp-uniform, dense from kNaN = -2 to 15. (nvcc 13 still lowers it
          // to a compare tree with 3-entry BRX tables: about 9 instructions per
          // row, docs/roofline.md section 6, L.1.)
          switch (e.s) {
            case kNaN: break;
            case kOutside: break;  // only the base term
#define KANEXT_WCASE(C) \
  case C: window_fma<T, K, C>(acc, e.v, d); break;
            KANEXT_WCASE(0) KANEXT_WCASE(1) KANEXT_WCASE(2) KANEXT_WCASE(3)
            KANEXT_WCASE(4) KANEXT_WCASE(5) KANEXT_WCASE(6) KANEXT_WCASE(7)
            KANEXT_WCASE(8) KANEXT_WCASE(9) KANEXT_WCASE(10) KANEXT_WCASE(11)
            KANEXT_WCASE(12) KANEXT_WCASE(13) KANEXT_WCASE(14) KANEXT_WCASE(15)
#undef KANEXT_WCASE
            default: break;
          }
        }
        __syncthreads();  // the next chunk overwrites the staged entries
      }

      const unsigned t = fresh_tid();
      const int ctile = opaque(tile) % ctiles, itile = opaque(tile) / ctiles;
      const int64_t i = int64_t(itile) * icb + (t >> lg_ct), j = int64_t(ctile) * ct + (t & unsigned(ct - 1));
      if (i < in && j < out) {
        const int nb = opaque(static_cast<int>(M)) - K - 1;  // <= kRegRows (the launcher's condition)
        T* oc = gWc + sl * stride_c + i * nb * out + j;
#pragma unroll
        for (int g = 0; g < kRegRows; ++g)
          if (g < nb) oc[int64_t(g) * out] = acc[g];
        gWb[sl * stride_b + i * out + j] = accb;
      }
    }
  }
}

// ------------------------------------- grad_W over rows sorted by interval
// Backend "local_v2", nb = G + k > kRegRows (design L.1 of docs/roofline.md,
// second half): too many rows for grad_w_reg_kernel's register file, so the
// batch rows of every (input, batch slice) are first grouped by window start
// s(n, i) (sort_rows_kernel, a stable counting sort into a permutation in the
// workspace), and grad_w_sorted_kernel walks them in that order, keeping only
// the k+1 accumulators of the current window in registers.

// Sort keys: window codes kNaN (-2), kOutside (-1), 0..G-1 -> 0..G+1. NaN rows
// come first, then the rows outside the grid, then the windows in order.
constexpr int kSortMaxKeys = 360;     // G + 2 at most (else grad_w_kernel)
constexpr int kSortHistStride = 33;   // a key's 32 per-lane counts, padded (bank spread)
constexpr int kSortWarpsMax = 8;
constexpr size_t kSortSmemMax = 48 * 1024;

__host__ __device__ __forceinline__ int sort_keys(int64_t M, int k) {
  return static_cast<int>(M - 2 * int64_t(k) - 1) + 2;
}
// shared memory of one warp: per-lane counts [key][33] and the key bases [key]
inline size_t sort_warp_bytes(int keys) { return size_t(keys) * (kSortHistStride + 1) * sizeof(int); }
inline int sort_warps_per_block(int keys) {
  const size_t w = kSortSmemMax / sort_warp_bytes(keys);
  return static_cast<int>(w < kSortWarpsMax ? w : kSortWarpsMax);
}

// perm[i * N + p], p in [nbeg, nend) of slice sl: the slice's rows n of
// input i ordered by (key of x[n, i], n). A warp sorts one (input, slice)
// item: lane l counts the keys of its own contiguous run of rows into column
// l of the histogram, the warp turns the counts (key-major, lane-minor) into
// exclusive offsets, and each lane scatters its run in row order. Stable and
// free of atomics and of any dependence on the grid: the same permutation for
// every launch (and the same windows as the staging of grad_w_sorted_kernel,
// which recomputes them with the same find_interval and window_start).
template <typename T, int K>
__global__ void __launch_bounds__(32 * kSortWarpsMax)
sort_rows_kernel(const T* __restrict__ x, const T* __restrict__ grid, int64_t N, int64_t in, int64_t M,
                 int64_t slices, int64_t slice_rows, int* __restrict__ perm) {
  KANEXT_DYNAMIC_SMEM(s_raw);
  const int keys = sort_keys(M, K);
  const int lane = threadIdx.x % 32, w = threadIdx.x / 32, wpb = blockDim.x / 32;
  int* hist = reinterpret_cast<int*>(s_raw) + int64_t(w) * keys * (kSortHistStride + 1);
  int* kbase = hist + int64_t(keys) * kSortHistStride;
  const int64_t items = in * slices;
  for (int64_t it = int64_t(blockIdx.x) * wpb + w; it < items; it += int64_t(gridDim.x) * wpb) {
    const int64_t i = it % in, sl = it / in;
    const int64_t nbeg = sl * slice_rows, nend = nbeg + slice_rows < N ? nbeg + slice_rows : N;
    const int64_t run = ceil_div(nend - nbeg, 32);
    const int64_t r0 = nbeg + lane * run < nend ? nbeg + lane * run : nend;
    const int64_t r1 = r0 + run < nend ? r0 + run : nend;
    const T* t = grid + i * M;
    int* mine = hist + lane;  // mine[key * kSortHistStride]: this lane's column
    for (int b = 0; b < keys; ++b) mine[b * kSortHistStride] = 0;
    for (int64_t n = r0; n < r1; ++n) ++mine[(window_code<T, K>(t, M, x[n * in + i]) - kNaN) * kSortHistStride];
    __syncwarp();
    for (int b = lane; b < keys; b += 32) {  // key totals
      int c = 0;
      for (int l = 0; l < 32; ++l) c += hist[b * kSortHistStride + l];
      kbase[b] = c;
    }
    __syncwarp();
    if (lane == 0) {  // exclusive scan of the totals, from the slice's first position
      int at = static_cast<int>(nbeg);  // N < 2^31 (the launcher's condition)
      for (int b = 0; b < keys; ++b) {
        const int c = kbase[b];
        kbase[b] = at;
        at += c;
      }
    }
    __syncwarp();
    for (int b = lane; b < keys; b += 32) {  // per-lane offsets within each key
      int at = kbase[b];
      for (int l = 0; l < 32; ++l) {
        const int c = hist[b * kSortHistStride + l];
        hist[b * kSortHistStride + l] = at;
        at += c;
      }
    }
    __syncwarp();
    int* pi = perm + i * N;
    for (int64_t n = r0; n < r1; ++n)
      pi[mine[(window_code<T, K>(t, M, x[n * in + i]) - kNaN) * kSortHistStride]++] = static_cast<int>(n);
    __syncwarp();  // the next item overwrites the counts
  }
}

// The staged (sorted position, input) entry of grad_w_sorted_kernel: B_0..B_K,
// b(x), the window start (or kOutside / kNaN) and the row's offset n * out in gy.
template <typename T, int K>
struct alignas(16) SortedEntry {
  T v[K + 2];
  int s;
  int64_t off;
};

// Moves the accumulator window (rows cur..cur+K of gWc[i, :, j], oc at row
// cur) up to start `to`, one row at a time: while cur < to, row cur is final
// (every later row of the walk has a window start >= to > cur), so it is
// stored (when `store`) and the window shifts down by one, a zero entering
// at the top. Static register indices only.
template <typename T, int K>
__device__ __forceinline__ void advance_window(T (&acc)[K + 1], int& cur, int to, T*& oc, int64_t out, bool store) {
  for (; cur < to; ++cur, oc += out) {
    if (store) *oc = acc[0];
#pragma unroll
    for (int q = 0; q < K; ++q) acc[q] = acc[q + 1];
    acc[K] = T(0);
  }
}

// grad_w_kernel's tiles (IC inputs x CT columns per block, a thread per (i, j)),
// batch slices and slice combine, walking each slice in perm's order: per
// chunk of CT sorted positions the block stages the entries (row n from perm,
// its bases, window start and gy offset; one per thread), then every thread
// runs through them for its (i, j): one gy load at the staged row offset, k+1
// FMAs into acc[0..k] (the rows cur..cur+k of gWc[i, :, j]) and one into
// gWb's accumulator. The window start is warp-uniform (the warp shares i) and
// non-decreasing along the walk, so when it moves past cur the rows below are
// final: they are stored (once each, in row order) and the window shifts.
// Rows before the first window and after the last come out zero. Each
// element of gWc is the sum of its rows' contributions in walk order, so
// the result is deterministic (not the bits of grad_w_kernel: another order).
// The resident blocks per SM that grad_w_sorted_kernel is compiled for (its
// __launch_bounds__ minimum), as for grad_w_reg_kernel: with none, ptxas aimed
// at 48 registers for fp32 k = 1, 2 and 64 for k = 4, 5, and spilled 8 to 20
// bytes to get there. fp64: the tiers that fit the registers it took; k = 5
// still spills 24 bytes at 128, outside the row loops (KNOWN_SPILLS).
template <typename T, int K>
constexpr int sorted_min_blocks() {
  if constexpr (sizeof(T) == 4) return K <= 3 ? 4 : 3;
  return K <= 1 ? 3 : 2;
}

template <typename T, int K>
__global__ void __launch_bounds__(kWThreads, sorted_min_blocks<T, K>())
grad_w_sorted_kernel(const T* __restrict__ gy, const T* __restrict__ x, const T* __restrict__ grid,
                     const int* __restrict__ perm, int64_t N, int64_t in, int64_t M, int base, int64_t out, int ct,
                     int64_t col_tiles, int64_t in_tiles, int64_t slices, int64_t slice_rows, T* __restrict__ gWc,
                     T* __restrict__ gWb, int64_t stride_c, int64_t stride_b) {
  __shared__ SortedEntry<T, K> s_e[kWThreads];
  const int nb = static_cast<int>(M - K - 1);
  const int tid = threadIdx.x;
  const int icb = kWThreads / ct;              // inputs per block
  const int my_ic = tid / ct, c = tid % ct;    // this thread's input and column
  const int st_r = tid / icb, st_ic = tid % icb;  // the (position, input) entry it stages
  const int rows_per_chunk = ct;
  const bool has_base = base != kBaseZero;

  tiles::for_each_slice_tile(N, slices, slice_rows, in_tiles, col_tiles, icb, ct, my_ic, c,
                             [&](int64_t sl, int64_t nbeg, int64_t nend, int64_t itile, int64_t i, int64_t j) {
    const bool mine_ok = i < in && j < out;
    T acc[K + 1];
#pragma unroll
    for (int q = 0; q <= K; ++q) acc[q] = T(0);
    T accb = T(0);
    int cur = 0;  // the window's first row
    T* oc = gWc + sl * stride_c + (mine_ok ? (i * nb * out + j) : 0);  // row cur of gWc[i, :, j]
    // a thread past `out` reads column out-1 (it never stores); opaque, so
    // that the row loop adds the staged offset to it instead of redoing
    // the clamp for every row
    const T* gyj = opaque(gy + (j < out ? j : out - 1));

    for (int64_t nc = nbeg; nc < nend; nc += rows_per_chunk) {
      {
        const int64_t pos = nc + st_r, si = itile * icb + st_ic;
        const bool ok = pos < nend && si < in;
        const int64_t n = ok ? perm[si * N + pos] : 0;
        SortedEntry<T, K>& e = s_e[tid];
        stage_packed<T, K>(x, grid, in, M, base, ok, n, si, e);
        e.off = n * out;
      }
      __syncthreads();
      const int rcnt = static_cast<int>(nend - nc < rows_per_chunk ? nend - nc : rows_per_chunk);
      const SortedEntry<T, K>* ep = s_e + my_ic;
      // Runs of equal window start (warp-uniform): the window moves between
      // runs, so the per-row loops keep the accumulators in fixed registers.
      for (int r = 0; r < rcnt;) {
        const int s = ep->s;
        if (s >= 0) {
          if (s > cur) advance_window<T, K>(acc, cur, s, oc, out, mine_ok);
          do {
            const SortedEntry<T, K> e = *ep;  // broadcast: the warp reads one entry
            const T d = __ldg(gyj + e.off);
#pragma unroll
            for (int q = 0; q <= K; ++q) acc[q] = fma(e.v[q], d, acc[q]);
            if (has_base) accb = fma(e.v[K + 1], d, accb);
            ++r;
            ep += icb;
          } while (r < rcnt && ep->s == s);
        } else {  // outside the grid: the base term only; NaN x adds nothing
          const bool base_only = has_base && s == kOutside;
          do {
            if (base_only) accb = fma(ep->v[K + 1], __ldg(gyj + ep->off), accb);
            ++r;
            ep += icb;
          } while (r < rcnt && ep->s == s);
        }
      }
      __syncthreads();  // the next chunk overwrites the staged entries
    }
    advance_window<T, K>(acc, cur, nb, oc, out, mine_ok);  // the last window and the rows above it
    if (mine_ok) gWb[sl * stride_b + i * out + j] = accb;
  });
}

// dst[e] = sum_{s < slices} part[s * n + e], in slice order.
template <typename T>
__global__ void __launch_bounds__(256)
sum_slices_kernel(const T* __restrict__ part, int64_t n, int64_t slices, T* __restrict__ dst) {
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    T acc = part[e];
    for (int64_t s = 1; s < slices; ++s) acc += part[s * n + e];
    dst[e] = acc;
  }
}

// Whether the weight gradient runs the sorted path (grad_w_sorted_kernel):
// backend local_v2, more basis rows than kRegRows, at most kSortMaxKeys sort
// keys, positions and tile indices that fit 32 bits. Otherwise grad_w_kernel.
inline bool sorted_rows(int version, int64_t N, int64_t M, int k, const WPlan& p) {
  return version == kLocalV2 && M - k - 1 > kRegRows && sort_keys(M, k) <= kSortMaxKeys &&
         N <= int64_t(0x7fffffff) && p.in_tiles * p.col_tiles < (int64_t(1) << 31);
}

// The workspace: the slices' partials (workspace_bytes), then, on the sorted
// path, the permutation (in * N ints).
inline size_t backward_workspace_bytes(int64_t N, int64_t in, int64_t M, int k, int version, const WPlan& p,
                                       size_t elem) {
  const size_t partials = workspace_bytes(p, elem);
  return partials + (sorted_rows(version, N, M, k, p) ? align256(size_t(in) * size_t(N) * sizeof(int)) : 0);
}

template <typename T>
cudaError_t launch(const T* gy, const T* x, const T* grid, int64_t N, int64_t in, int64_t M, int k, int base,
                   const T* Wb, const T* Wc, int64_t out, bool need_x, bool need_w, int version, T* gx, T* gWb,
                   T* gWc, void* workspace, size_t workspace_bytes_given, cudaStream_t stream) {
  if (version != kLocalV1 && version != kLocalV2) return cudaErrorInvalidValue;
  if (N == 0 || in == 0 || out == 0) return cudaSuccess;  // the binding returns zeros
  cudaError_t err = cudaSuccess;
  if (need_x) {
    constexpr int VN = kVec<T>;
    const bool aligned = out % VN == 0 && aligned16(gy) && aligned16(Wb) && aligned16(Wc);
    const dim3 blocks(grid_x(ceil_div(N, kGxBN)), grid_yz(ceil_div(in, kGxBI)));
    // v2 for aligned operands whose slab fits 32-bit offsets; else v1 (the same bits)
    const bool v2 = version == kLocalV2 && aligned && offsets_fit<T>(M - k - 1, out);
    err = dispatch_order(k, [&](auto KC) {
      constexpr int K = decltype(KC)::value;
      if (v2) {
        KANEXT_LAUNCH(blocks, kGxThreads, 0, stream, grad_x_v2_kernel<T, K>)(gy, x, grid, N, in, M, base, Wb, Wc, out,
                                                                              gx);
      } else if (aligned)
        KANEXT_LAUNCH(blocks, kGxThreads, 0, stream, grad_x_kernel<T, K, true>)(gy, x, grid, N, in, M, base, Wb, Wc,
                                                                                 out, gx);
      else
        KANEXT_LAUNCH(blocks, kGxThreads, 0, stream, grad_x_kernel<T, K, false>)(gy, x, grid, N, in, M, base, Wb, Wc,
                                                                                  out, gx);
      return cudaGetLastError();
    });
    if (err != cudaSuccess) return err;
  }
  if (need_w) {
    const WPlan p = plan_weights(N, in, M, k, out, sizeof(T));
    if (workspace_bytes_given < backward_workspace_bytes(N, in, M, k, version, p, sizeof(T)))
      return cudaErrorInvalidValue;
    T* dst_c = gWc;
    T* dst_b = gWb;
    if (p.slices > 1) {
      dst_c = static_cast<T*>(workspace);
      dst_b = reinterpret_cast<T*>(static_cast<unsigned char*>(workspace) +
                                   align256(size_t(p.slices) * p.part_c * sizeof(T)));
    }
    // v2: registers for <= 16 basis rows (the same bits as the tiled kernel),
    // else rows sorted by interval (sorted_rows); else, and for v2 with (not
    // in practice) 2^31 or more (input, column) tiles, 2^31 or more rows or
    // over kSortMaxKeys - 2 intervals, the tiled kernel.
    const bool regs =
        version == kLocalV2 && M - k - 1 <= kRegRows && p.in_tiles * p.col_tiles < (int64_t(1) << 31);
    const bool sorted = sorted_rows(version, N, M, k, p);
    if (regs && p.n_gr != 1) return cudaErrorInvalidValue;  // cannot happen: <= 16 rows fit one range
    const dim3 blocks(grid_x(p.in_tiles * p.col_tiles * p.n_gr), grid_yz(p.slices));
    if (sorted) {
      int* perm = reinterpret_cast<int*>(static_cast<unsigned char*>(workspace) + workspace_bytes(p, sizeof(T)));
      const int keys = sort_keys(M, k), wpb = sort_warps_per_block(keys);
      const dim3 sort_blocks(grid_x(ceil_div(in * p.slices, wpb)));
      const dim3 walk_blocks(grid_x(p.in_tiles * p.col_tiles), grid_yz(p.slices));  // no basis-row ranges
      err = dispatch_order(k, [&](auto KC) {
        constexpr int K = decltype(KC)::value;
        KANEXT_LAUNCH(sort_blocks, 32 * wpb, size_t(wpb) * sort_warp_bytes(keys), stream, sort_rows_kernel<T, K>)(
            x, grid, N, in, M, p.slices, p.slice_rows, perm);
        KANEXT_LAUNCH(walk_blocks, kWThreads, 0, stream, grad_w_sorted_kernel<T, K>)(
            gy, x, grid, perm, N, in, M, base, out, p.ct, p.col_tiles, p.in_tiles, p.slices, p.slice_rows, dst_c,
            dst_b, static_cast<int64_t>(p.part_c), static_cast<int64_t>(p.part));
        return cudaGetLastError();
      });
    } else if (regs) {
      err = dispatch_order(k, [&](auto KC) {
        constexpr int K = decltype(KC)::value;
        KANEXT_LAUNCH(blocks, kWThreads, 0, stream, grad_w_reg_kernel<T, K>)(
            gy, x, grid, N, in, M, base, out, p.ct, p.col_tiles, p.in_tiles, p.slices, p.slice_rows, dst_c, dst_b,
            static_cast<int64_t>(p.part_c), static_cast<int64_t>(p.part));
        return cudaGetLastError();
      });
    } else {
      err = dispatch_order(k, [&](auto KC) {
        constexpr int K = decltype(KC)::value;
        auto kernel = grad_w_kernel<T, K>;
        const size_t static_bytes = kWThreads * sizeof(int) + size_t(K + 2) * kWThreads * sizeof(T);
        if (p.acc_bytes + static_bytes > 48 * 1024) {
          // Opt in to more than 48 KiB (a function attribute, not a stream
          // operation: legal during graph capture).
          const cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                     static_cast<int>(p.acc_bytes));
          if (e != cudaSuccess) return e;
        }
        KANEXT_LAUNCH(blocks, kWThreads, p.acc_bytes, stream, kernel)(
            gy, x, grid, N, in, M, base, out, p.ct, p.gr, p.n_gr, p.col_tiles, p.in_tiles, p.slices, p.slice_rows,
            dst_c, dst_b, static_cast<int64_t>(p.part_c), static_cast<int64_t>(p.part));
        return cudaGetLastError();
      });
    }
    if (err != cudaSuccess) return err;
    if (p.slices > 1) {
      const int64_t nc = static_cast<int64_t>(p.part_c), nbb = static_cast<int64_t>(p.part);
      const unsigned sms = static_cast<unsigned>(current_sm_count());
      auto blocks_for = [&](int64_t n) {
        const int64_t b = ceil_div(n, 256);
        return static_cast<unsigned>(b < int64_t(sms) * 8 ? (b < 1 ? 1 : b) : int64_t(sms) * 8);
      };
      KANEXT_LAUNCH(blocks_for(nc), 256, 0, stream, sum_slices_kernel<T>)(dst_c, nc, p.slices, gWc);
      KANEXT_LAUNCH(blocks_for(nbb), 256, 0, stream, sum_slices_kernel<T>)(dst_b, nbb, p.slices, gWb);
      err = cudaGetLastError();
    }
  }
  return err;
}

}  // namespace bwd
}  // namespace cuda
}  // namespace kanext
