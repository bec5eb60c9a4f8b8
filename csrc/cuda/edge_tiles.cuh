// The edge-tile plan and basis staging shared by the kernels that own edges
// (i, j) and walk the batch: kan_linear's grad_W (kan_linear_backward.cuh)
// and edge_stats / its grad_W (edge_stats.cu).
//
// A block of 256 threads owns IC inputs x CT columns (IC * CT = 256, CT in
// {32, 64, 128, 256} chosen from `out`), one range of GR basis rows when the
// per-thread shared accumulators need it (large G), and one slice of the
// batch. When the (input, column, basis range) tiles alone do not fill about
// two waves of the GPU, the batch is split into slices whose partials go to a
// workspace, added afterwards in slice order. The plan depends only on the
// sizes and the SM count, so results are bit-identical run to run on one GPU.
#pragma once

#include "common.cuh"

namespace kanext {
namespace cuda {
namespace tiles {

constexpr int kThreads = 256;
constexpr size_t kAccBudget = 64 * 1024;  // shared accumulator bytes per block (basis rows)

struct Plan {
  int ct = 32;           // columns per input (threads), multiple of 32
  int ic = 8;            // inputs per block, ic * ct = 256
  int gr = 1;            // basis rows per block (when planned with basis_rows)
  int64_t n_gr = 1;      // basis-row ranges
  int64_t col_tiles = 1, in_tiles = 1;
  int64_t slices = 1, slice_rows = 0;
  size_t acc_bytes = 0;  // dynamic shared memory for the basis-row accumulators
  size_t part = 0;       // elements of one slice's (in, out) partial (0 when slices == 1)
  size_t part_c = 0;     // with basis_rows: elements of one slice's (in, nb, out) partial
};

// basis_rows: each thread accumulates its edge's nb basis rows in shared
// memory (a weight gradient); otherwise only (in, out) sums (`sums` of them
// per slice, for the workspace cap).
inline Plan plan(int64_t N, int64_t in, int64_t M, int k, int64_t out, size_t elem, bool basis_rows, int sums = 1) {
  Plan p;
  const int64_t nb = M - k - 1;
  p.ct = out <= 32 ? 32 : out <= 64 ? 64 : out <= 128 ? 128 : 256;
  p.ic = kThreads / p.ct;
  if (basis_rows) {
    const int64_t max_rows = static_cast<int64_t>(kAccBudget / (kThreads * elem));
    p.n_gr = ceil_div(nb, max_rows);
    p.gr = static_cast<int>(ceil_div(nb, p.n_gr));  // balanced ranges
    p.acc_bytes = size_t(p.gr) * kThreads * elem;
  }
  p.col_tiles = ceil_div(out, p.ct);
  p.in_tiles = ceil_div(in, p.ic);
  const int64_t per_slice = p.in_tiles * p.col_tiles * p.n_gr;
  const int64_t target = 4 * int64_t(current_sm_count());  // ~2 waves of 2 resident blocks per SM
  int64_t slices = ceil_div(target, per_slice);
  const int64_t by_rows = N / 512;  // a slice walks at least ~512 rows
  if (slices > by_rows) slices = by_rows;
  if (slices > 64) slices = 64;
  // keep the partials within ~256 MiB
  const double slice_bytes = double(in) * double(out) * double(elem) * (basis_rows ? double(nb + 1) : double(sums));
  const int64_t by_mem = static_cast<int64_t>(double(256 << 20) / (slice_bytes > 1 ? slice_bytes : 1));
  if (slices > by_mem) slices = by_mem;
  if (slices < 1) slices = 1;
  p.slices = slices;
  p.slice_rows = ceil_div(N, slices);
  if (slices > 1) {
    p.part = size_t(in) * size_t(out);
    p.part_c = basis_rows ? size_t(in) * size_t(nb) * size_t(out) : 0;
  }
  return p;
}

// Bytes of the partials of a basis-row plan: gWc's, then gWb's (256-byte aligned).
inline size_t basis_rows_ws_bytes(const Plan& p, size_t elem) {
  if (p.slices <= 1) return 0;
  return align256(size_t(p.slices) * p.part_c * elem) + align256(size_t(p.slices) * p.part * elem);
}

// Calls f(sl, nbeg, nend, itile, i, j) for every (batch slice, edge tile) of
// this block (grid-stride over blockIdx.y and blockIdx.x): slice sl holds rows
// [nbeg, nend), and thread (my_ic, c) of tile (itile, ctile) owns edge
// (i, j) = (itile * icb + my_ic, ctile * ct + c), which may lie past (in, out).
template <typename F>
__device__ __forceinline__ void for_each_slice_tile(int64_t N, int64_t slices, int64_t slice_rows, int64_t in_tiles,
                                                    int64_t col_tiles, int icb, int ct, int my_ic, int c, F&& f) {
  for (int64_t sl = blockIdx.y; sl < slices; sl += gridDim.y) {
    const int64_t nbeg = sl * slice_rows;
    const int64_t nend = nbeg + slice_rows < N ? nbeg + slice_rows : N;
    for (int64_t tile = blockIdx.x; tile < in_tiles * col_tiles; tile += gridDim.x) {
      const int64_t ctile = tile % col_tiles, itile = tile / col_tiles;
      f(sl, nbeg, nend, itile, itile * icb + my_ic, ctile * ct + c);
    }
  }
}

// Stages the bases (and b(x)) of entry (n, si) into slot `slot` of s_start /
// s_val; s_val[K+1] is b(x). Out-of-range entries are marked kOutside.
template <typename T, int K>
__device__ __forceinline__ void stage_entry(const T* __restrict__ x, const T* __restrict__ grid, int64_t in,
                                            int64_t M, int base, int64_t n, int64_t nend, int64_t si,
                                            int* s_start, T (*s_val)[kThreads], int slot) {
  int s = kOutside;
  T v[K + 1], dv[K + 1], bv = T(0);
  if (n < nend && si < in) {
    const T xv = x[n * in + si];
    s = basis_window<T, K, false>(grid + si * M, M, xv, v, dv);
    bv = base_value<T>(base, xv);
  }
  s_start[slot] = s;
#pragma unroll
  for (int q = 0; q <= K; ++q) s_val[q][slot] = s >= 0 ? v[q] : T(0);
  s_val[K + 1][slot] = bv;
}

}  // namespace tiles
}  // namespace cuda
}  // namespace kanext
