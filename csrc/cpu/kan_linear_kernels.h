// CPU kernel bodies of the fused KAN layer (local-support formulation).
// Raw pointers and sizes only; the bindings in csrc/cpu/kan_ops_cpu.cpp
// check arguments, allocate outputs and parallelise.
//
// Per (n, i) only the k+1 bases of x[n, i]'s knot interval are non-zero, so
// the forward is k+2 axpys of length `out` per (n, i) (k+1 rows of Wc and the
// base row of Wb) and costs O(N in out (k+2)), independent of G. No (N, in,
// G+k) or (N, in, out) tensor is ever formed.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#include "kanext/bspline.h"

namespace kanext {
namespace cpu {

// Lanes of one 512-bit vector: accumulators shaped [R][kLanes] let the
// compiler vectorise dot products without reassociating float sums, so
// results are deterministic and independent of compiler flags.
template <typename T>
constexpr int kLanes = 64 / sizeof(T);

// res[r] = dot(rows[r], d) for r < R over `out` elements.
template <typename T, int R>
inline void dot_rows(const T* const* rows, const T* __restrict d, int64_t out, T* res) {
  constexpr int L = kLanes<T>;
  T acc[R][L];
  for (int r = 0; r < R; ++r)
    for (int l = 0; l < L; ++l) acc[r][l] = T(0);
  int64_t j = 0;
  for (; j + L <= out; j += L)
    for (int r = 0; r < R; ++r)
      for (int l = 0; l < L; ++l) acc[r][l] += rows[r][j + l] * d[j + l];
  for (int r = 0; r < R; ++r) {
    T s = T(0);
    for (int l = 0; l < L; ++l) s += acc[r][l];
    for (int64_t jj = j; jj < out; ++jj) s += rows[r][jj] * d[jj];
    res[r] = s;
  }
}

// Forward over rows [n0, n1): y[n, :] = sum_i b(x) Wb[i, :] + sum_r v_r Wc[i, s+r, :].
// y rows must be zeroed.
template <typename T, int K>
void kan_linear_forward_rows(const T* __restrict x, const T* __restrict grid, int64_t in, int64_t M, int64_t base,
                             const T* __restrict Wb, const T* __restrict Wc, T* __restrict y, int64_t n0,
                             int64_t n1, int64_t out) {
  constexpr int K1 = K + 1;
  const int64_t nb = M - K - 1;  // G + k bases per input
  const bool has_base = base != kBaseZero;
  for (int64_t i = 0; i < in; ++i) {
    const T* t = grid + i * M;
    const T* wb = Wb + i * out;
    const T* wc = Wc + i * nb * out;
    for (int64_t n = n0; n < n1; ++n) {
      const T xv = x[n * in + i];
      T* __restrict yr = y + n * out;
      if (std::isnan(xv)) {  // NaN policy: the whole output row becomes NaN
        for (int64_t j = 0; j < out; ++j) yr[j] = std::numeric_limits<T>::quiet_NaN();
        continue;
      }
      const T bv = has_base ? base_value<T>(base, xv) : T(0);
      const int64_t g = find_interval<T>(t, M, xv);
      if (g < 0) {
        if (has_base)
          for (int64_t j = 0; j < out; ++j) yr[j] += bv * wb[j];
        continue;
      }
      T v[K1];
      const int64_t s = local_bases<T>(t, M, K, g, xv, v, nullptr);
      const T* r = wc + s * out;
      if (has_base) {
        for (int64_t j = 0; j < out; ++j) {
          T acc = bv * wb[j];
#pragma GCC unroll 6
          for (int q = 0; q < K1; ++q) acc += v[q] * r[q * out + j];
          yr[j] += acc;
        }
      } else {
        for (int64_t j = 0; j < out; ++j) {
          T acc = T(0);
#pragma GCC unroll 6
          for (int q = 0; q < K1; ++q) acc += v[q] * r[q * out + j];
          yr[j] += acc;
        }
      }
    }
  }
}

// Backward for inputs [i0, i1): the caller gives each input to exactly one
// thread, which owns grad_x[:, i], grad_Wb[i] and grad_Wc[i] and walks the
// batch in order, so there are no atomics and the result is deterministic.
// grad_Wb / grad_Wc must be zeroed.
template <typename T, int K>
void kan_linear_backward_inputs(const T* __restrict gy, const T* __restrict x, const T* __restrict grid,
                                int64_t N, int64_t in, int64_t M, int64_t base, const T* __restrict Wb,
                                const T* __restrict Wc, int64_t out, bool need_x, bool need_w,
                                T* __restrict gx, T* __restrict gWb, T* __restrict gWc, int64_t i0,
                                int64_t i1) {
  constexpr int K1 = K + 1;
  const int64_t nb = M - K - 1;
  const bool has_base = base != kBaseZero;
  for (int64_t i = i0; i < i1; ++i) {
    const T* t = grid + i * M;
    const T* wb = Wb + i * out;
    const T* wc = Wc + i * nb * out;
    T* gwb = gWb + i * out;
    T* gwc = gWc + i * nb * out;
    for (int64_t n = 0; n < N; ++n) {
      const T xv = x[n * in + i];
      const T* __restrict d = gy + n * out;
      if (std::isnan(xv)) {
        if (need_x) gx[n * in + i] = std::numeric_limits<T>::quiet_NaN();
        continue;
      }
      const int64_t g = find_interval<T>(t, M, xv);
      T v[K1], dv[K1];
      int64_t s = 0;
      if (g >= 0) s = local_bases<T>(t, M, K, g, xv, v, dv);
      const T* rows[K1 + 1];
      for (int q = 0; q < K1; ++q) rows[q] = wc + (s + q) * out;
      rows[K1] = wb;
      if (need_w) {
        if (has_base) {
          const T bv = base_value<T>(base, xv);
          for (int64_t j = 0; j < out; ++j) gwb[j] += bv * d[j];
        }
        if (g >= 0) {
          T* __restrict o = gwc + s * out;
          for (int64_t j = 0; j < out; ++j) {
            const T dj = d[j];
#pragma GCC unroll 6
            for (int q = 0; q < K1; ++q) o[q * out + j] += v[q] * dj;
          }
        }
      }
      if (need_x) {
        T acc = T(0);
        if (g >= 0 && has_base) {
          T dots[K1 + 1];
          dot_rows<T, K1 + 1>(rows, d, out, dots);
          acc = base_derivative<T>(base, xv) * dots[K1];
          for (int q = 0; q < K1; ++q) acc += dv[q] * dots[q];
        } else if (g >= 0) {
          T dots[K1];
          dot_rows<T, K1>(rows, d, out, dots);
          for (int q = 0; q < K1; ++q) acc += dv[q] * dots[q];
        } else if (has_base) {
          T dot;
          dot_rows<T, 1>(&rows[K1], d, out, &dot);
          acc = base_derivative<T>(base, xv) * dot;
        }
        gx[n * in + i] = acc;
      }
    }
  }
}

// Bases (or their derivatives) of rows [n0, n1) into out (N, in, G+k), zeroed.
template <typename T>
void spline_basis_rows(const T* __restrict x, const T* __restrict grid, int64_t in, int64_t M, int k, bool deriv,
                       T* __restrict outp, int64_t n0, int64_t n1) {
  const int64_t nb = M - k - 1;
  for (int64_t n = n0; n < n1; ++n) {
    for (int64_t i = 0; i < in; ++i) {
      const T xv = x[n * in + i];
      const T* t = grid + i * M;
      const int64_t g = find_interval<T>(t, M, xv);
      if (g < 0) continue;
      T v[kMaxOrder + 1], dv[kMaxOrder + 1];
      const int64_t s = local_bases<T>(t, M, k, g, xv, v, deriv ? dv : nullptr);
      T* o = outp + (n * in + i) * nb + s;
      for (int q = 0; q <= k; ++q) o[q] = deriv ? dv[q] : v[q];
    }
  }
}

}  // namespace cpu
}  // namespace kanext
