// CPU kernel bodies of the derivative ops (schemas in csrc/ops.cpp; bindings in
// kan_linear_deriv_cpu.cpp and spline_activation_deriv_cpu.cpp). Raw pointers
// and sizes only. Every term is an order-m derivative of the edge (or channel)
// activation phi(t) = b(t) Wb + sum_g B_g(t) Wc, evaluated on the k+1 bases of
// the input's knot interval (bspline.h's edge_terms), so the cost is
// O(N in out (k+2)) at every order and no (N, in, G+k) or (N, in, out) tensor
// is formed. These serve the higher-order terms (second derivatives and up,
// torch.func); the first-order pass keeps its tuned kernels
// (kan_linear_kernels.h).
//
// edge_product / edge_product_wgrad serve edge_stats' second and higher
// derivatives the same way: products of two edge-activation derivatives (or
// of one with sign(phi)), summed over j or over n, O(N in out (k+2)).
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>

#include "kan_linear_kernels.h"
#include "kanext/bspline.h"

namespace kanext {
namespace cpu {

// kan_linear_eval over rows [n0, n1):
// y[n, :] = sum_i v[n, i] (b^(m)(x[n, i]) Wb[i, :] + sum_q B^(m)_{s+q}(x[n, i]) Wc[i, s+q, :]).
// v == nullptr means v = 1. A NaN x[n, i] makes row n NaN (as the forward).
template <typename T, int K>
void kan_linear_eval_rows(const T* __restrict x, const T* __restrict v, const T* __restrict grid, int64_t in,
                          int64_t M, int m, int64_t base, const T* __restrict Wb, const T* __restrict Wc, int64_t out,
                          T* __restrict y, int64_t n0, int64_t n1) {
  constexpr int K1 = K + 1;
  const int64_t nb = M - K - 1;
  for (int64_t n = n0; n < n1; ++n) {
    T* __restrict yr = y + n * out;
    std::fill(yr, yr + out, T(0));
    bool nan = false;
    for (int64_t i = 0; i < in; ++i) {
      T val[K1], bm;
      const int64_t s = edge_terms<T>(grid + i * M, M, K, m, base, x[n * in + i], val, &bm);
      if (s == -2) {
        nan = true;
        break;
      }
      const T w = v ? v[n * in + i] : T(1);
      T c[K1 + 1];
      const T* rows[K1 + 1];
      c[0] = w * bm;
      rows[0] = Wb + i * out;
      if (s < 0) {
        if (base != kBaseZero) axpy_rows<T, 1>(yr, rows, c, out);
        continue;
      }
      for (int q = 0; q < K1; ++q) {
        c[q + 1] = w * val[q];
        rows[q + 1] = Wc + (i * nb + s + q) * out;
      }
      if (base != kBaseZero) axpy_rows<T, K1 + 1>(yr, rows, c, out);
      else axpy_rows<T, K1>(yr, rows + 1, c + 1, out);
    }
    if (nan) std::fill(yr, yr + out, std::numeric_limits<T>::quiet_NaN());
  }
}

// kan_linear_transpose over rows [n0, n1):
// gx[n, i] = sum_j dy[n, j] (b^(m)(x[n, i]) Wb[i, j] + sum_q B^(m)_{s+q}(x[n, i]) Wc[i, s+q, j]).
// NaN x[n, i] gives NaN (as the backward's grad_x).
template <typename T, int K>
void kan_linear_transpose_rows(const T* __restrict dy, const T* __restrict x, const T* __restrict grid, int64_t in,
                               int64_t M, int m, int64_t base, const T* __restrict Wb, const T* __restrict Wc,
                               int64_t out, T* __restrict gx, int64_t n0, int64_t n1) {
  constexpr int K1 = K + 1;
  const int64_t nb = M - K - 1;
  for (int64_t n = n0; n < n1; ++n) {
    const T* __restrict d = dy + n * out;
    for (int64_t i = 0; i < in; ++i) {
      T val[K1], bm;
      const int64_t s = edge_terms<T>(grid + i * M, M, K, m, base, x[n * in + i], val, &bm);
      if (s == -2) {
        gx[n * in + i] = std::numeric_limits<T>::quiet_NaN();
        continue;
      }
      const T* rows[K1 + 1];
      rows[0] = Wb + i * out;
      T dots[K1 + 1];
      T acc = T(0);
      if (s < 0) {
        if (base != kBaseZero) {
          dot_rows<T, 1>(rows, d, out, dots);
          acc = bm * dots[0];
        }
      } else {
        for (int q = 0; q < K1; ++q) rows[q + 1] = Wc + (i * nb + s + q) * out;
        if (base != kBaseZero) {
          dot_rows<T, K1 + 1>(rows, d, out, dots);
          acc = bm * dots[0];
        } else {
          dot_rows<T, K1>(rows + 1, d, out, dots + 1);
        }
        for (int q = 0; q < K1; ++q) acc += val[q] * dots[q + 1];
      }
      gx[n * in + i] = acc;
    }
  }
}

// kan_linear_wgrad for inputs [i0, i1) (each input owned by one thread, the
// batch walked in order: deterministic, no atomics):
// gWb[i, :] = sum_n v[n, i] b^(m)(x[n, i]) dy[n, :],
// gWc[i, g, :] = sum_n v[n, i] B^(m)_g(x[n, i]) dy[n, :]. NaN x[n, i] add nothing.
template <typename T, int K>
void kan_linear_wgrad_inputs(const T* __restrict dy, const T* __restrict x, const T* __restrict v,
                             const T* __restrict grid, int64_t N, int64_t in, int64_t M, int m, int64_t base,
                             int64_t out, T* __restrict gWb, T* __restrict gWc, int64_t i0, int64_t i1) {
  constexpr int K1 = K + 1;
  const int64_t nb = M - K - 1;
  std::fill(gWb + i0 * out, gWb + i1 * out, T(0));
  std::fill(gWc + i0 * nb * out, gWc + i1 * nb * out, T(0));
  for (int64_t i = i0; i < i1; ++i) {
    for (int64_t n = 0; n < N; ++n) {
      T val[K1], bm;
      const int64_t s = edge_terms<T>(grid + i * M, M, K, m, base, x[n * in + i], val, &bm);
      if (s == -2) continue;
      const T w = v ? v[n * in + i] : T(1);
      const T* __restrict d = dy + n * out;
      T* rows[K1 + 1];
      T c[K1 + 1];
      rows[0] = gWb + i * out;
      c[0] = w * bm;
      if (s < 0) {
        if (base != kBaseZero) rank1_rows<T, 1>(rows, c, d, out);
        continue;
      }
      for (int q = 0; q < K1; ++q) {
        rows[q + 1] = gWc + (i * nb + s + q) * out;
        c[q + 1] = w * val[q];
      }
      if (base != kBaseZero) rank1_rows<T, K1 + 1>(rows, c, d, out);
      else rank1_rows<T, K1>(rows + 1, c + 1, d, out);
    }
  }
}

// spline_activation_eval for rows [n0, n1):
// y[n, c] = scale_base[c] b^(m)(z[n, c]) + scale_sp[c] sum_q coef[c, s+q] B^(m)_{s+q}(z[n, c]).
// NaN z gives NaN.
template <typename T, int K>
void spline_activation_eval_rows(const T* __restrict z, const T* __restrict grid, int64_t C, int64_t M, int m,
                                 int64_t base, const T* __restrict coef, const T* __restrict sb,
                                 const T* __restrict sp, T* __restrict y, int64_t n0, int64_t n1) {
  constexpr int K1 = K + 1;
  const int64_t nb = M - K - 1;
  for (int64_t n = n0; n < n1; ++n)
    for (int64_t c = 0; c < C; ++c) {
      T val[K1], bm;
      const int64_t s = edge_terms<T>(grid + c * M, M, K, m, base, z[n * C + c], val, &bm);
      if (s == -2) {
        y[n * C + c] = std::numeric_limits<T>::quiet_NaN();
        continue;
      }
      T spl = T(0);
      if (s >= 0)
        for (int q = 0; q < K1; ++q) spl += coef[c * nb + s + q] * val[q];
      y[n * C + c] = (base != kBaseZero ? sb[c] * bm : T(0)) + sp[c] * spl;
    }
}

// spline_activation_wgrad for channels [c0, c1) (each channel owned by one
// thread): SB[c, g] = sum_n gy[n, c] B^(m)_g(z[n, c]), Sb[c] = sum_n gy[n, c] b^(m)(z[n, c]).
// NaN z add nothing.
template <typename T, int K>
void spline_activation_wgrad_channels(const T* __restrict gy, const T* __restrict z, const T* __restrict grid,
                                      int64_t N, int64_t C, int64_t M, int m, int64_t base, T* __restrict SB,
                                      T* __restrict Sb, int64_t c0, int64_t c1) {
  constexpr int K1 = K + 1;
  const int64_t nb = M - K - 1;
  for (int64_t c = c0; c < c1; ++c) {
    T* sc = SB + c * nb;
    std::fill(sc, sc + nb, T(0));
    T acc_b = T(0);
    for (int64_t n = 0; n < N; ++n) {
      T val[K1], bm;
      const int64_t s = edge_terms<T>(grid + c * M, M, K, m, base, z[n * C + c], val, &bm);
      if (s == -2) continue;
      const T g = gy[n * C + c];
      acc_b += g * bm;
      if (s >= 0)
        for (int q = 0; q < K1; ++q) sc[s + q] += g * val[q];
    }
    Sb[c] = acc_b;
  }
}

// ---- edge_product and edge_product_wgrad (edge_stats' higher derivatives).
// For one entry x = x[n, i], row i of the weights and a tile of kEdgeJ
// columns from j0: w[jj] = the weight factor of edge (i, j0 + jj) (sign(phi)
// in mode 0, phi^(c) in mode 1) from the order-c terms (vw, bw, window s).
constexpr int kEdgeJ = 64;

template <typename T, int K>
inline void edge_weight_tile(const T* __restrict Wb, const T* __restrict Wc, int64_t i, int64_t nb, int64_t out,
                             int64_t s, const T* vw, T bw, bool has_base, int mode, int64_t j0, int64_t nj,
                             T* __restrict w) {
  for (int64_t jj = 0; jj < nj; ++jj) w[jj] = has_base ? bw * Wb[i * out + j0 + jj] : T(0);
  if (s >= 0)
    for (int q = 0; q <= K; ++q) {
      const T* __restrict r = Wc + (i * nb + s + q) * out + j0;
      const T c = vw[q];
      for (int64_t jj = 0; jj < nj; ++jj) w[jj] += c * r[jj];
    }
  if (mode == 0)
    for (int64_t jj = 0; jj < nj; ++jj) w[jj] = T(w[jj] > T(0)) - T(w[jj] < T(0));
}

// edge_product over rows [n0, n1): P[n, i] = sum_j w_ij psi^(a)_ij (csrc/ops.cpp).
template <typename T, int K>
void edge_product_rows(const T* __restrict x, const T* __restrict grid, int64_t in, int64_t M, int64_t base,
                       const T* __restrict Wb, const T* __restrict Wc, const T* __restrict Vb,
                       const T* __restrict Vc, int64_t out, int mode, int c, int a, T* __restrict P, int64_t n0,
                       int64_t n1) {
  constexpr int K1 = K + 1;
  const int64_t nb = M - K - 1;
  const bool hb = base != kBaseZero;
  for (int64_t n = n0; n < n1; ++n)
    for (int64_t i = 0; i < in; ++i) {
      const T xv = x[n * in + i];
      T vw[K1], bw, va[K1], ba;
      const int64_t s = edge_terms<T>(grid + i * M, M, K, mode == 0 ? 0 : c, base, xv, vw, &bw);
      if (s == -2) {
        P[n * in + i] = T(0);
        continue;
      }
      edge_terms<T>(grid + i * M, M, K, a, base, xv, va, &ba);
      T acc = T(0);
      for (int64_t j0 = 0; j0 < out; j0 += kEdgeJ) {
        const int64_t nj = std::min<int64_t>(kEdgeJ, out - j0);
        T w[kEdgeJ], p[kEdgeJ];
        edge_weight_tile<T, K>(Wb, Wc, i, nb, out, s, vw, bw, hb, mode, j0, nj, w);
        edge_weight_tile<T, K>(Vb, Vc, i, nb, out, s, va, ba, hb, 1, j0, nj, p);
        for (int64_t jj = 0; jj < nj; ++jj) acc += w[jj] * p[jj];
      }
      P[n * in + i] = acc;
    }
}

// edge_product_wgrad for inputs [i0, i1) (each input owned by one thread, the
// batch walked in order): Sb[i, j] = sum_n u w_ij b^(a), SB[i, g, j] = sum_n u w_ij B_g^(a).
template <typename T, int K>
void edge_product_wgrad_inputs(const T* __restrict x, const T* __restrict u, const T* __restrict grid, int64_t N,
                               int64_t in, int64_t M, int64_t base, const T* __restrict Wb, const T* __restrict Wc,
                               int64_t out, int mode, int c, int a, T* __restrict Sb, T* __restrict SB, int64_t i0,
                               int64_t i1) {
  constexpr int K1 = K + 1;
  const int64_t nb = M - K - 1;
  const bool hb = base != kBaseZero;
  std::fill(Sb + i0 * out, Sb + i1 * out, T(0));
  std::fill(SB + i0 * nb * out, SB + i1 * nb * out, T(0));
  for (int64_t i = i0; i < i1; ++i)
    for (int64_t n = 0; n < N; ++n) {
      const T xv = x[n * in + i];
      T vw[K1], bw, va[K1], ba;
      const int64_t s = edge_terms<T>(grid + i * M, M, K, mode == 0 ? 0 : c, base, xv, vw, &bw);
      if (s == -2) continue;
      edge_terms<T>(grid + i * M, M, K, a, base, xv, va, &ba);
      const T un = u ? u[n * in + i] : T(1);
      for (int64_t j0 = 0; j0 < out; j0 += kEdgeJ) {
        const int64_t nj = std::min<int64_t>(kEdgeJ, out - j0);
        T w[kEdgeJ];
        edge_weight_tile<T, K>(Wb, Wc, i, nb, out, s, vw, bw, hb, mode, j0, nj, w);
        for (int64_t jj = 0; jj < nj; ++jj) w[jj] *= un;
        if (hb) {
          T* __restrict r = Sb + i * out + j0;
          for (int64_t jj = 0; jj < nj; ++jj) r[jj] += ba * w[jj];
        }
        if (s >= 0)
          for (int q = 0; q <= K; ++q) {
            T* __restrict r = SB + (i * nb + s + q) * out + j0;
            const T cq = va[q];
            for (int64_t jj = 0; jj < nj; ++jj) r[jj] += cq * w[jj];
          }
      }
    }
}

// spline_basis_deriv of order m for rows [n0, n1) into out (N, in, G+k), zeroed.
template <typename T>
void spline_basis_deriv_rows(const T* __restrict x, const T* __restrict grid, int64_t in, int64_t M, int k, int m,
                             T* __restrict outp, int64_t n0, int64_t n1) {
  const int64_t nb = M - k - 1;
  for (int64_t n = n0; n < n1; ++n)
    for (int64_t i = 0; i < in; ++i) {
      const T xv = x[n * in + i];
      const T* t = grid + i * M;
      const int64_t g = find_interval<T>(t, M, xv);
      if (g < 0) continue;
      T v[kMaxOrder + 1];
      const int64_t s = local_bases_deriv<T>(t, M, k, m, g, xv, v);
      T* o = outp + (n * in + i) * nb + s;
      for (int q = 0; q <= k; ++q) o[q] = v[q];
    }
}

}  // namespace cpu
}  // namespace kanext
