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
  const int64_t G = M - 2 * k - 1;
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
    T saved = T(0);
    for (int r = 0; r < j; ++r) {
      // bases (g - j + 1 + r) of order j-1 -> (g - j + r) and (g - j + 1 + r) of order j
      const T tl = u[k + 1 + r - j + 0];  // t_{g-j+1+r}
      const T tr = u[k + 1 + r];          // t_{g+1+r}
      const T temp = N[r] / (tr - tl);
      N[r] = saved + (tr - x) * temp;
      saved = (x - tl) * temp;
    }
    N[j] = saved;
  }
  if (k == 0 && dval != nullptr) dN[0] = T(0);
  int64_t start = g - k;
  if (start < 0) start = 0;
  if (start > G - 1) start = G - 1;
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

}  // namespace kanext
