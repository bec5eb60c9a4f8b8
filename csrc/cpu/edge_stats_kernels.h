// CPU kernel bodies of edge_stats: per-edge batch reductions of the edge
// activations phi_ij(x) = Wb[i,j] b(x) + sum_g Wc[i,g,j] B_g(x), without ever
// forming the (N, in, out) tensor of activations. Raw pointers and sizes only;
// the bindings in edge_stats_cpu.cpp check, allocate and parallelise.
//
// Both kernels walk inputs [i0, i1): the calling thread owns rows i of every
// output (and grad_x[:, i]), walks the batch in fixed order and needs neither
// atomics nor a second reduction pass, so results are deterministic and
// independent of the thread count. x arrives transposed, (in, N), so that one
// input's batch is contiguous. Per block of kRows batch rows, BlockBases gives
// the k+1 non-zero bases of each row; phi for a row is then formed a few
// vectors of j at a time in registers (k+2 fused multiply-adds per element,
// reading rows of Wc[i] and Wb[i], which stay in L1/L2 for the whole batch)
// and consumed at once, so nothing of size N x out is ever written. Cost
// O(N in out (k+2)), independent of G. The forward keeps the three
// accumulators of a tile of j in registers across a block's rows; the
// backward walks j once per row, forming phi, dphi, the rank-1 updates of the
// k+2 weight-gradient rows and the k+2 dot products for grad_x in one pass.
//
// NaN inputs: a NaN x[n, i] is skipped (it adds nothing to row i of any
// statistic, and its grad_x is 0).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kan_linear_kernels.h"

namespace kanext {
namespace cpu {

// Integer vector that a comparison of two vec_t<T> yields (same lane count).
template <typename T>
using vmask_t = decltype(vec_t<T>{} < vec_t<T>{});

template <typename T>
inline vec_t<T> vabs(vec_t<T> v) {
  vec_t<T> sign_bit;  // -0.0 is the sign bit alone
  for (int l = 0; l < kLanes<T>; ++l) sign_bit[l] = T(-0.0);
  return (vec_t<T>)((vmask_t<T>)v & ~(vmask_t<T>)sign_bit);
}

// sign(v) * g lane-wise, with sign(0) = 0 and sign(NaN) = 0 (exact: g, -g or 0).
template <typename T>
inline vec_t<T> vsign_times(vec_t<T> v, vec_t<T> g) {
  const vec_t<T> z{};
  return (vec_t<T>)((vmask_t<T>)g & (v > z)) - (vec_t<T>)((vmask_t<T>)g & (v < z));
}

// Rows of one block that share a formula: phi = sum_{q<NT} cs[r][q] w0[r][q*out + j]
// (+ cb[r] wb[j] when BASE).
template <typename T>
struct RowSet {
  int n = 0;
  const T* w0[kRows];
  T cs[kRows][kMaxOrder + 1];
  T cb[kRows];
};

// Adds phi, phi^2 and |phi| of every row of `rows` to S, Q, A over
// [j, j + NV lanes-vectors); accumulators live in registers across the rows.
template <typename T, int NT, bool BASE, int NV>
inline void stats_tile(const RowSet<T>& rows, const T* __restrict wb, int64_t out, int64_t j, T* __restrict S,
                       T* __restrict Q, T* __restrict A) {
  static_assert(NT > 0 || BASE, "a row needs at least one term");
  constexpr int L = kLanes<T>;
  using V = vec_t<T>;
  V s[NV], q2[NV], a[NV], wbv[NV];
  for (int v = 0; v < NV; ++v) {
    s[v] = vload(S + j + v * L);
    q2[v] = vload(Q + j + v * L);
    a[v] = vload(A + j + v * L);
    if (BASE) wbv[v] = vload(wb + j + v * L);
  }
  for (int r = 0; r < rows.n; ++r) {
    const T* w = rows.w0[r] + j;
    V phi[NV];
    if (BASE) {
      for (int v = 0; v < NV; ++v) phi[v] = rows.cb[r] * wbv[v];
    } else {
      for (int v = 0; v < NV; ++v) phi[v] = rows.cs[r][0] * vload(w + v * L);
    }
#pragma GCC unroll 6
    for (int q = BASE ? 0 : 1; q < NT; ++q) {
      const T c = rows.cs[r][q];
      for (int v = 0; v < NV; ++v) phi[v] += c * vload(w + q * out + v * L);
    }
    for (int v = 0; v < NV; ++v) {
      s[v] += phi[v];
      q2[v] += phi[v] * phi[v];
      a[v] += vabs<T>(phi[v]);
    }
  }
  for (int v = 0; v < NV; ++v) {
    vstore(S + j + v * L, s[v]);
    vstore(Q + j + v * L, q2[v]);
    vstore(A + j + v * L, a[v]);
  }
}

// The same over all of [0, out): two-vector tiles, then one vector, then scalars.
template <typename T, int NT, bool BASE>
inline void stats_rows(const RowSet<T>& rows, const T* __restrict wb, int64_t out, T* __restrict S,
                       T* __restrict Q, T* __restrict A) {
  if (rows.n == 0) return;
  constexpr int L = kLanes<T>;
  int64_t j = 0;
  for (; j + 2 * L <= out; j += 2 * L) stats_tile<T, NT, BASE, 2>(rows, wb, out, j, S, Q, A);
  for (; j + L <= out; j += L) stats_tile<T, NT, BASE, 1>(rows, wb, out, j, S, Q, A);
  for (; j < out; ++j) {
    T s = S[j], q2 = Q[j], a = A[j];
    for (int r = 0; r < rows.n; ++r) {
      const T* w = rows.w0[r] + j;
      T phi = BASE ? rows.cb[r] * wb[j] : rows.cs[r][0] * w[0];
      for (int q = BASE ? 0 : 1; q < NT; ++q) phi += rows.cs[r][q] * w[q * out];
      s += phi;
      q2 += phi * phi;
      a += std::fabs(phi);
    }
    S[j] = s;
    Q[j] = q2;
    A[j] = a;
  }
}

// Forward for inputs [i0, i1): S/Q/A[i, :] = sum_n phi, phi^2, |phi| (rows
// overwritten). xT is (in, N); padded holds every input's padded knots.
// Within a block, the rows inside the grid are summed first (in batch order),
// then the rows outside it (base term only).
template <typename T, int K, bool HAS_BASE>
void edge_stats_forward_inputs(const T* __restrict xT, const T* __restrict grid, const T* __restrict padded,
                               int64_t N, int64_t M, int64_t base, const T* __restrict Wb, const T* __restrict Wc,
                               int64_t out, T* __restrict S, T* __restrict Q, T* __restrict A, int64_t i0,
                               int64_t i1) {
  constexpr int K1 = K + 1;
  const int64_t nb = M - K - 1;
  BlockBases<T, K> bb;
  RowSet<T> inside, outside;
  for (int64_t i = i0; i < i1; ++i) {
    const T* wb = Wb + i * out;
    const T* wc = Wc + i * nb * out;
    T *s = S + i * out, *q = Q + i * out, *a = A + i * out;
    std::fill(s, s + out, T(0));
    std::fill(q, q + out, T(0));
    std::fill(a, a + out, T(0));
    for (int64_t n0 = 0; n0 < N; n0 += kRows) {
      const int nr = static_cast<int>(std::min<int64_t>(kRows, N - n0));
      bb.template compute<false>(xT + i * N + n0, 1, nr, grid + i * M, padded + i * (M + 2 * K + 2), M, base);
      inside.n = outside.n = 0;
      for (int r = 0; r < nr; ++r) {
        const int64_t st = bb.start[r];
        if (st >= 0) {
          const int m = inside.n++;
          inside.w0[m] = wc + st * out;
          for (int t = 0; t < K1; ++t) inside.cs[m][t] = bb.v[t][r];
          inside.cb[m] = bb.bv[r];
        } else if (st == -1 && HAS_BASE) {  // outside the grid: b(x) Wb only; NaN (-2): skipped
          const int m = outside.n++;
          outside.w0[m] = wb;
          outside.cb[m] = bb.bv[r];
        }
      }
      stats_rows<T, K1, HAS_BASE>(inside, wb, out, s, q, a);
      if (HAS_BASE) stats_rows<T, 0, true>(outside, wb, out, s, q, a);
    }
  }
}

// One vector of edge_grad_row: columns [j, j + L).
template <typename T, int NT, bool BASE, bool NEED_X, bool NEED_W>
inline void edge_grad_vec(const T* __restrict w0, const T* cs, T b, const T* __restrict wb, const T* __restrict gS,
                          const T* __restrict gQ, const T* __restrict gA, T* __restrict gw0, T* __restrict gwb,
                          int64_t out, int64_t j, vec_t<T>* acc) {
  using V = vec_t<T>;
  V w[NT > 0 ? NT : 1];
  for (int t = 0; t < NT; ++t) w[t] = vload(w0 + t * out + j);
  const V wbv = BASE ? vload(wb + j) : V{};
  V phi = BASE ? b * wbv : cs[0] * w[0];
#pragma GCC unroll 6
  for (int t = BASE ? 0 : 1; t < NT; ++t) phi += cs[t] * w[t];
  const V gq = vload(gQ + j);
  const V dphi = (vload(gS + j) + vsign_times<T>(phi, vload(gA + j))) + (gq + gq) * phi;
  if (NEED_W) {
    if (BASE) vstore(gwb + j, vload(gwb + j) + b * dphi);
#pragma GCC unroll 6
    for (int t = 0; t < NT; ++t) vstore(gw0 + t * out + j, vload(gw0 + t * out + j) + cs[t] * dphi);
  }
  if (NEED_X) {
    for (int t = 0; t < NT; ++t) acc[t] += w[t] * dphi;
    if (BASE) acc[NT] += wbv * dphi;
  }
}

// Backward of one batch row of input i: dphi[j] = gS[j] + 2 gQ[j] phi[j] + sign(phi[j]) gA[j];
// adds c_q dphi to gw0 rows q (and b dphi to gwb) when NEED_W; returns
// sum_j dphi[j] (b' Wb[j] + sum_q d_q w0[q][j]) when NEED_X. The scalar tail
// spells every multiply-add as std::fma, so that no variant (NEED_X /
// NEED_W) can be contracted or vectorised differently from another: they
// agree bit for bit.
template <typename T, int NT, bool BASE, bool NEED_X, bool NEED_W>
inline T edge_grad_row(const T* __restrict w0, const T* cs, const T* ds, T b, T db, const T* __restrict wb,
                       const T* __restrict gS, const T* __restrict gQ, const T* __restrict gA, T* __restrict gw0,
                       T* __restrict gwb, int64_t out) {
  constexpr int L = kLanes<T>;
  constexpr int ND = NT + (BASE ? 1 : 0);
  vec_t<T> acc[ND > 0 ? ND : 1];
  for (int t = 0; t < ND; ++t) acc[t] = vec_t<T>{};
  int64_t j = 0;
  for (; j + L <= out; j += L)
    edge_grad_vec<T, NT, BASE, NEED_X, NEED_W>(w0, cs, b, wb, gS, gQ, gA, gw0, gwb, out, j, acc);
  T dots[ND > 0 ? ND : 1];
  for (int t = 0; t < ND; ++t) dots[t] = NEED_X ? hsum<T>(acc[t]) : T(0);
  for (; j < out; ++j) {
    T phi = BASE ? b * wb[j] : cs[0] * w0[j];
    for (int t = BASE ? 0 : 1; t < NT; ++t) phi = std::fma(cs[t], w0[t * out + j], phi);
    const T sg = phi > T(0) ? gA[j] : (phi < T(0) ? -gA[j] : T(0));
    const T dphi = std::fma(gQ[j] + gQ[j], phi, gS[j] + sg);
    if (NEED_W) {
      if (BASE) gwb[j] = std::fma(b, dphi, gwb[j]);
      for (int t = 0; t < NT; ++t) gw0[t * out + j] = std::fma(cs[t], dphi, gw0[t * out + j]);
    }
    if (NEED_X) {
      for (int t = 0; t < NT; ++t) dots[t] = std::fma(w0[t * out + j], dphi, dots[t]);
      if (BASE) dots[ND - 1] = std::fma(wb[j], dphi, dots[ND - 1]);
    }
  }
  if (!NEED_X) return T(0);
  T g = BASE ? db * dots[NT] : T(0);
  for (int t = 0; t < NT; ++t) g = std::fma(ds[t], dots[t], g);
  return g;
}

// Backward for inputs [i0, i1): the thread owns grad_Wb[i], grad_Wc[i]
// (zeroed here when NEED_W) and gxT[i, :] (every entry written when NEED_X).
// gS/gQ/gA are the (in, out) incoming gradients of the three statistics.
template <typename T, int K, bool HAS_BASE, bool NEED_X, bool NEED_W>
void edge_stats_backward_inputs(const T* __restrict gS, const T* __restrict gQ, const T* __restrict gA,
                                const T* __restrict xT, const T* __restrict grid, const T* __restrict padded,
                                int64_t N, int64_t M, int64_t base, const T* __restrict Wb, const T* __restrict Wc,
                                int64_t out, T* __restrict gxT, T* __restrict gWb, T* __restrict gWc, int64_t i0,
                                int64_t i1) {
  constexpr int K1 = K + 1;
  const int64_t nb = M - K - 1;
  BlockBases<T, K> bb;
  for (int64_t i = i0; i < i1; ++i) {
    const T* wb = Wb + i * out;
    const T* wc = Wc + i * nb * out;
    const T *gs = gS + i * out, *gq = gQ + i * out, *ga = gA + i * out;
    T* gwb = gWb + i * out;
    T* gwc = gWc + i * nb * out;
    if (NEED_W) {
      std::fill(gwb, gwb + out, T(0));
      std::fill(gwc, gwc + nb * out, T(0));
    }
    for (int64_t n0 = 0; n0 < N; n0 += kRows) {
      const int nr = static_cast<int>(std::min<int64_t>(kRows, N - n0));
      bb.template compute<NEED_X>(xT + i * N + n0, 1, nr, grid + i * M, padded + i * (M + 2 * K + 2), M, base);
      for (int r = 0; r < nr; ++r) {
        const int64_t st = bb.start[r];
        T g = T(0);
        if (st >= 0) {
          T v[K1], dv[K1];
          for (int t = 0; t < K1; ++t) {
            v[t] = bb.v[t][r];
            dv[t] = NEED_X ? bb.dv[t][r] : T(0);
          }
          g = edge_grad_row<T, K1, HAS_BASE, NEED_X, NEED_W>(wc + st * out, v, dv, bb.bv[r],
                                                             NEED_X ? bb.dbv[r] : T(0), wb, gs, gq, ga,
                                                             gwc + st * out, gwb, out);
        } else if (st == -1 && HAS_BASE) {
          g = edge_grad_row<T, 0, true, NEED_X, NEED_W>(wc, nullptr, nullptr, bb.bv[r],
                                                        NEED_X ? bb.dbv[r] : T(0), wb, gs, gq, ga, gwc, gwb, out);
        }
        // st == -2 (NaN) or outside the grid without a base term: no contribution, grad_x 0.
        if (NEED_X) gxT[i * N + n0 + r] = g;
      }
    }
  }
}

}  // namespace cpu
}  // namespace kanext
