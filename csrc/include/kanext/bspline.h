// B-spline math shared by the CPU and CUDA kernels.
//
// Everything here is plain C++ on raw pointers (no ATen types), marked
// __host__ __device__ so that nvcc compiles the same code for the GPU.
//
// Conventions (see DESIGN.md): one input's knot vector t has M = G + 2k + 1
// strictly increasing knots; there are G + k order-k bases, basis b being
// non-zero on [t_b, t_{b+k+1}). Order-0 bases are the half-open indicators
// t_g <= x < t_{g+1}, so outside [t_0, t_{M-1}) every basis is 0.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__) || defined(__HIPCC__)
#define KANEXT_HD __host__ __device__ __forceinline__
#else
#define KANEXT_HD inline
#endif

namespace kanext {

constexpr int kMaxOrder = 5;  // k in [0, kMaxOrder]

// Residual base functions computed inside the kernels. Any other function is
// evaluated in PyTorch by the caller, which then passes kBaseZero.
enum BaseFn : int64_t { kBaseZero = 0, kBaseIdentity = 1, kBaseSilu = 2 };

template <typename T>
KANEXT_HD T base_value(int64_t fn, T x) {
  if (fn == kBaseSilu) return x / (T(1) + exp(-x));
  if (fn == kBaseIdentity) return x;
  return T(0);
}

template <typename T>
KANEXT_HD T base_derivative(int64_t fn, T x) {
  if (fn == kBaseSilu) {
    T s = T(1) / (T(1) + exp(-x));
    return s * (T(1) + x * (T(1) - s));
  }
  if (fn == kBaseIdentity) return T(1);
  return T(0);
}

// Derivatives of any order are computed for the silu base up to this order
// (the bindings refuse more); B-spline derivatives beyond k are 0 at any order.
constexpr int kMaxBaseDerivOrder = 10;

// m-th derivative of the base function, m >= 0 (m <= kMaxBaseDerivOrder for
// silu). silu(x) = x sigma(x), so silu^(m) = x sigma^(m) + m sigma^(m-1) for
// m >= 1, and sigma^(j) = P_j(sigma) with P_0(s) = s and
// P_{j+1}(s) = P_j'(s) s (1 - s): integer polynomials of degree j + 1 in s.
// The polynomials are evaluated at s = sigma(-|x|) <= 1/2, where they do not
// cancel, using sigma^(j)(x) = (-1)^(j+1) sigma^(j)(-x) for j >= 1 when x > 0.
template <typename T>
KANEXT_HD T base_derivative_n(int64_t fn, T x, int m) {
  if (m == 0) return base_value<T>(fn, x);
  if (fn == kBaseIdentity) return m == 1 ? T(1) : T(0);
  if (fn != kBaseSilu) return T(0);
  if (m == 1) return base_derivative<T>(fn, x);
  const bool pos = x > T(0);
  const T s = T(1) / (T(1) + exp(pos ? x : -x));  // sigma(-|x|)
  T c[kMaxBaseDerivOrder + 2];  // coefficients of P_j in s, degree 0..j+1
  for (int d = 0; d < kMaxBaseDerivOrder + 2; ++d) c[d] = T(0);
  c[1] = T(1);
  T prev = T(0);  // P_{m-1}(s)
  const int mm = m < kMaxBaseDerivOrder ? m : kMaxBaseDerivOrder;
  for (int j = 0; j < mm; ++j) {
    // P_{j+1}(s) = sum_d d c_d (s^d - s^(d+1)): coefficient d c_d - (d-1) c_(d-1) of s^d,
    // computed from the top so that c[d-1] is still P_j's when c[d] is written.
    for (int d = j + 2; d >= 1; --d) c[d] = T(d) * (d <= j + 1 ? c[d] : T(0)) - T(d - 1) * c[d - 1];
    c[0] = T(0);
    if (j == mm - 2) {
      T v = T(0);
      for (int d = j + 2; d >= 0; --d) v = v * s + c[d];
      prev = v;
    }
  }
  T cur = T(0);
  for (int d = mm + 1; d >= 0; --d) cur = cur * s + c[d];
  // sigma^(m)(x) and sigma^(m-1)(x) from their values at -|x|
  if (pos) {  // m >= 2 here, so both orders are >= 1: sigma^(j)(x) = (-1)^(j+1) sigma^(j)(-x)
    if (mm % 2 == 0) cur = -cur;
    if ((mm - 1) % 2 == 0) prev = -prev;
  }
  return x * cur + T(mm) * prev;
}

// Interval g with t[g] <= x < t[g+1], g in [0, M-2]; -1 when x is outside
// [t[0], t[M-1]) or NaN. O(1) on a uniform grid (the guess is exact up to
// rounding, which the two correction steps absorb); a binary search otherwise.
// Never reads outside t[0..M-1], whatever x is.
template <typename T>
KANEXT_HD int64_t find_interval(const T* t, int64_t M, T x) {
  const T lo = t[0], hi = t[M - 1];
  if (!(x >= lo && x < hi)) return -1;  // also catches NaN
  const int64_t last = M - 2;
  T pos = (x - lo) / (hi - lo) * T(M - 1);
  int64_t g = static_cast<int64_t>(pos);
  g = g < 0 ? 0 : (g > last ? last : g);
  for (int step = 0; step < 2; ++step) {
    if (t[g] > x) --g;
    else if (t[g + 1] <= x) ++g;
    else return g;
  }
  if (t[g] <= x && x < t[g + 1]) return g;
  int64_t a = 0, b = last;  // invariant: t[a] <= x < t[b + 1]
  while (a < b) {
    int64_t m = (a + b + 1) / 2;
    if (t[m] <= x) a = m; else b = m - 1;
  }
  return a;
}

// Knot idx of the knot vector t (M knots) for any idx: t[idx] inside
// [0, M-1]; past either end a stand-in spaced like the end interval. Only
// bases that do not exist (beyond the G + k of the grid) read stand-ins, and
// their values are dropped, so any finite value would do; this is the one rule
// every kernel uses (local_bases here, the CPU kernels' padded knots and the
// activation kernel's basis polynomials), which keeps them bit-identical.
template <typename T>
KANEXT_HD T extended_knot(const T* t, int64_t M, int64_t idx) {
  if (idx < 0) return t[0] - T(-idx) * (t[1] - t[0]);
  if (idx > M - 1) return t[M - 1] + T(idx - (M - 1)) * (t[M - 1] - t[M - 2]);
  return t[idx];
}

// The first basis index of the window of interval g (knot vector of M knots,
// G + k bases): clamp(g - k, 0, G - 1). local_bases and local_bases_deriv
// return it; the CUDA grad W sort (kan_linear_backward.cuh) keys on it alone.
KANEXT_HD int64_t window_start(int64_t M, int k, int64_t g) {
  const int64_t G = M - 2 * int64_t(k) - 1;
  int64_t start = g - k;
  if (start < 0) start = 0;
  if (start > G - 1) start = G - 1;
  return start;
}

// One order of the Cox-de Boor triangle on the local knots u of an interval
// g (u[q] = t[g - k + q], q in [0, 2k+1]): N[0..j-1], bases g - j + 1 + r of
// order j - 1, become N[0..j], bases g - j + r of order j. local_bases,
// local_bases_deriv and the CUDA producer's builder (tc2::general_window)
// share it, so they give the same bits.
template <typename T>
KANEXT_HD void cox_de_boor_step(const T* u, int k, int j, T x, T* N) {
  T saved = T(0);
  for (int r = 0; r < j; ++r) {
    // bases (g - j + 1 + r) of order j-1 -> (g - j + r) and (g - j + 1 + r) of order j
    const T tl = u[k + 1 + r - j];  // t_{g-j+1+r}
    const T tr = u[k + 1 + r];      // t_{g+1+r}
    const T temp = N[r] / (tr - tl);
    N[r] = saved + (tr - x) * temp;
    saved = (x - tl) * temp;
  }
  N[j] = saved;
}

// The k+1 bases that can be non-zero on interval g of knot vector t (M knots,
// G + k bases), as a window of k+1 consecutive basis indices starting at
// `start` = clamp(g - k, 0, G - 1). val[r] is basis start + r; dval[r] its
// derivative in x (if dval != nullptr). Bases of the window that are zero on
// interval g get exact zeros. Knots beyond either end of t are never read:
// the triangle only needs them for bases that do not exist, which get
// arbitrary finite stand-in knots and are then dropped.
template <typename T>
KANEXT_HD int64_t local_bases(const T* t, int64_t M, int k, int64_t g, T x,
                              T* val, T* dval) {
  // Local knots u[q] = t[g - k + q], q in [0, 2k+1]; stand-ins past the ends.
  T u[2 * kMaxOrder + 2];
  for (int q = 0; q <= 2 * k + 1; ++q) u[q] = extended_knot(t, M, g - k + q);
  // Cox-de Boor triangle: N[r] holds basis (g - j + r) of order j.
  T N[kMaxOrder + 1];
  T dN[kMaxOrder + 1];
  N[0] = T(1);
  for (int j = 1; j <= k; ++j) {
    if (j == k && dval != nullptr) {
      // d/dx B_{b,k} = k (B_{b,k-1} / (t_{b+k} - t_b) - B_{b+1,k-1} / (t_{b+k+1} - t_{b+1}))
      // with the order-(k-1) values in N[0..k-1] (basis g-k+1+r).
      for (int r = 0; r <= k; ++r) {
        // basis b = g - k + r; local index of t_b is r.
        T left = r >= 1 ? N[r - 1] / (u[r + k] - u[r]) : T(0);
        T right = r <= k - 1 ? N[r] / (u[r + k + 1] - u[r + 1]) : T(0);
        dN[r] = T(k) * (left - right);
      }
    }
    cox_de_boor_step(u, k, j, x, N);
  }
  if (k == 0 && dval != nullptr) dN[0] = T(0);
  const int64_t start = window_start(M, k, g);
  // val[q] is basis start + q = triangle entry q - shift (basis g - k + r is
  // N[r]); entries outside the triangle are 0. Written as selects over static
  // indices (no array indexed by a runtime value), so that on the GPU val,
  // dval, N and dN stay in registers when k is a compile-time constant.
  const int64_t shift = g - k - start;
  for (int q = 0; q <= k; ++q) {
    T v = T(0), d = T(0);
    for (int r = 0; r <= k; ++r) {
      if (r == q - shift) {
        v = N[r];
        if (dval) d = dN[r];
      }
    }
    val[q] = v;
    if (dval) dval[q] = d;
  }
  return start;
}

// The m-th derivatives (m >= 0; m = 0 gives the values) of the k+1 bases of
// local_bases' window on interval g: the Cox-de Boor triangle up to order
// k - m, then m steps of the derivative recursion
//   d/dx B_{b,p} = p (B_{b,p-1} / (t_{b+p} - t_b) - B_{b+1,p-1} / (t_{b+p+1} - t_{b+1})),
// each step applied to the previous step's derivatives. m > k gives zeros
// (a degree-k polynomial on each interval). Same window and knot rules as
// local_bases, so m = 0 and m = 1 agree with its val and dval.
template <typename T>
KANEXT_HD int64_t local_bases_deriv(const T* t, int64_t M, int k, int m, int64_t g, T x, T* val) {
  T u[2 * kMaxOrder + 2];
  for (int q = 0; q <= 2 * k + 1; ++q) u[q] = extended_knot(t, M, g - k + q);
  T N[kMaxOrder + 1];
  for (int r = 0; r <= kMaxOrder; ++r) N[r] = T(0);
  if (m <= k) {
    N[0] = T(1);
    for (int j = 1; j <= k - m; ++j) cox_de_boor_step(u, k, j, x, N);
    // N[r] now holds basis g - p + r (derivative of the order reached so far).
    for (int p = k - m + 1; p <= k; ++p) {
      T nn[kMaxOrder + 1];
      for (int r = 0; r <= p; ++r) {
        // basis b = g - p + r; local index of t_b is k - p + r.
        const T left = r >= 1 ? N[r - 1] / (u[k + r] - u[k - p + r]) : T(0);
        const T right = r <= p - 1 ? N[r] / (u[k + r + 1] - u[k - p + r + 1]) : T(0);
        nn[r] = T(p) * (left - right);
      }
      for (int r = 0; r <= p; ++r) N[r] = nn[r];
    }
  }
  const int64_t start = window_start(M, k, g);
  const int64_t shift = g - k - start;
  for (int q = 0; q <= k; ++q) {
    T v = T(0);
    for (int r = 0; r <= k; ++r)
      if (r == q - shift) v = N[r];
    val[q] = v;
  }
  return start;
}

// One edge's order-m terms at x: the window start of its k+1 basis
// derivatives val (or -1 when x is outside the grid: val not written, -2 when
// x is NaN) and, in *bm, the base function's m-th derivative (0 for NaN and
// for base 'zero').
template <typename T>
KANEXT_HD int64_t edge_terms(const T* t, int64_t M, int k, int m, int64_t base, T x, T* val, T* bm) {
  if (x != x) {
    *bm = T(0);
    return -2;
  }
  *bm = base == kBaseZero ? T(0) : base_derivative_n<T>(base, x, m);
  const int64_t g = find_interval<T>(t, M, x);
  if (g < 0) return -1;
  return local_bases_deriv<T>(t, M, k, m, g, x, val);
}

}  // namespace kanext
