// CPU kernel bodies of the per-channel spline activation (LAN node
// activations): y[n,c] = sb[c] b(z[n,c]) + sp[c] sum_g coef[c,g] B_g(z[n,c]).
// Raw pointers and sizes only; csrc/cpu/spline_activation_cpu.cpp checks,
// allocates and parallelises.
//
// Piecewise-polynomial formulation. On knot interval g of channel c the
// spline part is a polynomial of degree k in u = z - t_g, so per call the
// binding converts (coef, sp) into P[c][g][0..k] (O(C M k^2), independent of
// N), and per element the kernel only finds g and evaluates one polynomial:
// no Cox-de Boor triangle, no division. The backward accumulates the moments
// sum_n dy u^p per (c, g, p) and turns them into grad coef with the same
// basis polynomials afterwards, again O(C M k^2).
//
// The inner loops run over channels (contiguous in memory) and are written
// branch-free for `omp simd`: per-channel tables are gathered by interval.
// The interval comes from a per-channel bucket table (any strictly
// increasing knots) and a fixed number of forward steps. This is the general
// path: float32 with at most 16 knots on an AVX-512 build takes the row path
// of spline_activation_avx512.h, which reads the same tables with permutes.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "fast_exp.h"
#include "kanext/bspline.h"

namespace kanext {
namespace cpu {

// Basis polynomials of one channel: for every knot interval g in [0, M-2]
// and window slot q in [0, k] (basis g-k+q, zero if it does not exist),
// bp[((g * (k+1)) + q) * (k+1) + p] is the coefficient of u^p, u = x - t_g,
// of that basis on [t_g, t_{g+1}). Exact polynomial Cox-de Boor in double.
inline void basis_polynomials(const double* t, int64_t M, int k, double* bp) {
  const int K1 = k + 1;
  const int64_t nb = M - k - 1;  // G + k bases
  auto knot = [&](int64_t idx) { return extended_knot(t, M, idx); };  // stand-ins past the ends
  std::vector<double> N(K1 * K1), Nn(K1 * K1);
  for (int64_t g = 0; g <= M - 2; ++g) {
    const double tg = t[g];
    // N[r * K1 + p]: basis g - j + r of order j, coefficient of u^p.
    std::fill(N.begin(), N.end(), 0.0);
    N[0] = 1.0;
    for (int j = 1; j <= k; ++j) {
      std::fill(Nn.begin(), Nn.end(), 0.0);
      for (int r = 0; r <= j; ++r) {
        const int64_t a = g - j + r;  // basis index of order j
        // B_{a,j} = (x - t_a)/(t_{a+j} - t_a) B_{a,j-1} + (t_{a+j+1} - x)/(t_{a+j+1} - t_{a+1}) B_{a+1,j-1}
        // B_{a,j-1} is entry r-1 of the previous order, B_{a+1,j-1} entry r.
        if (r >= 1) {
          const double d = knot(a + j) - knot(a), c0 = tg - knot(a);
          for (int p = 0; p < j; ++p) {
            const double v = N[(r - 1) * K1 + p] / d;
            Nn[r * K1 + p] += c0 * v;
            Nn[r * K1 + p + 1] += v;
          }
        }
        if (r <= j - 1) {
          const double d = knot(a + j + 1) - knot(a + 1), c0 = knot(a + j + 1) - tg;
          for (int p = 0; p < j; ++p) {
            const double v = N[r * K1 + p] / d;
            Nn[r * K1 + p] += c0 * v;
            Nn[r * K1 + p + 1] -= v;
          }
        }
      }
      N.swap(Nn);
    }
    for (int q = 0; q <= k; ++q) {
      const int64_t b = g - k + q;
      const bool exists = b >= 0 && b < nb;
      for (int p = 0; p <= k; ++p) bp[(g * K1 + q) * K1 + p] = exists ? N[q * K1 + p] : 0.0;
    }
  }
}

// Per-channel interval lookup: NB buckets over [t_0, t_{M-1}); lut[b] is an
// interval at or below that of every x the bucket can receive (rounding
// included), and `steps` forward steps g += (t[g+1] <= x) always reach the
// interval of x. Returns the steps this channel needs.
template <typename T>
inline int build_lookup(const T* t, int64_t M, int64_t NB, int32_t* lut, T* inv_bw) {
  const double lo = double(t[0]), hi = double(t[M - 1]);
  const double bw = (hi - lo) / double(NB);
  *inv_bw = T(double(NB) / (hi - lo));
  // Largest g in [0, M-2] with t[g] <= x, for non-decreasing x: two
  // pointers sweep the knots once (O(NB + M) per channel).
  int64_t pa = 0, pe = 0;
  auto advance = [&](int64_t& g, double x) {
    while (g < M - 2 && double(t[g + 1]) <= x) ++g;
    return g;
  };
  int steps = 0;
  // The kernels compute the bucket as (x - lo) * ibw in T: three roundings,
  // each relative, of a value up to NB, so the index can be off by up to about
  // 3 NB eps(T) buckets (0.02 of a bucket for float32 at NB = 100k): every
  // bucket is widened by that, plus 1e-3, on each side.
  const double margin = 1e-3 + 4.0 * double(NB) * double(std::numeric_limits<T>::epsilon());
  for (int64_t b = 0; b < NB; ++b) {
    // The bucket's x lie in [lo + b bw, lo + (b+1) bw] up to rounding of the
    // bucket index.
    const double a = lo + (double(b) - margin) * bw, e = lo + (double(b + 1) + margin) * bw;
    const int64_t g0 = advance(pa, a), g1 = advance(pe, e);
    lut[b] = static_cast<int32_t>(g0);
    steps = std::max(steps, static_cast<int>(g1 - g0));
  }
  return steps;
}

// Tables the kernels read, per channel c (all in T):
//   t   (C, M)       knots (the grid)
//   lo, hi, ibw (C)  t_0, t_{M-1}, NB / (hi - lo)
//   lut (C, NB)      bucket -> starting interval
//   P   (C, M, K+1)  sp * spline polynomial on interval g; slot M-1 is zero
//                    (used outside the grid)
//   sb  (C)          scale_base
template <typename T>
struct ActTables {
  const T* t;
  const T* lo;
  const T* hi;
  const T* ibw;
  const int32_t* lut;
  const T* P;
  const T* sb;
  int64_t C, M, NB;
  int steps;
};

template <typename T, int BASE>
inline T act_base(T x) {
  if (BASE == kBaseSilu) return x / (T(1) + fast_exp<T>(-x));
  if (BASE == kBaseIdentity) return x;
  return T(0);
}

template <typename T, int BASE>
inline T act_base_deriv(T x) {
  if (BASE == kBaseSilu) {
    const T s = T(1) / (T(1) + fast_exp<T>(-x));
    return s * (T(1) + x * (T(1) - s));
  }
  if (BASE == kBaseIdentity) return T(1);
  return T(0);
}

constexpr int64_t kChanBlock = 256;  // channels per pass (stack buffers)

// Interval lookup for channels [c0, c0 + nc) of one row x: idx[c] = the
// (c, slot) table row (slot M-1 outside the grid) and u[c] = x - t_g (0
// outside). Three simple loops, each vectorised with gathers.
template <typename T>
inline void lookup_block(const ActTables<T>& tb, const T* __restrict x, int64_t c0, int nc,
                         int32_t* __restrict idx, T* __restrict u) {
  const int32_t M = static_cast<int32_t>(tb.M), NB = static_cast<int32_t>(tb.NB);
  const T* __restrict t = tb.t;
  const T* __restrict lo = tb.lo + c0;
  const T* __restrict hi = tb.hi + c0;
  const T* __restrict ibw = tb.ibw + c0;
  const int32_t* __restrict lut = tb.lut;
  T xl[kChanBlock];
  int32_t g[kChanBlock];
#pragma omp simd
  for (int c = 0; c < nc; ++c) {
    const T xv = x[c];
    const bool inside = xv >= lo[c] && xv < hi[c];
    const T xi = inside ? xv : lo[c];
    int32_t b = static_cast<int32_t>((xi - lo[c]) * ibw[c]);
    b = b < NB - 1 ? b : NB - 1;
    xl[c] = xi;
    g[c] = lut[(static_cast<int32_t>(c0) + c) * NB + b] + (static_cast<int32_t>(c0) + c) * M;
    idx[c] = inside ? 1 : 0;
  }
  for (int s = 0; s < tb.steps; ++s) {
#pragma omp simd
    for (int c = 0; c < nc; ++c) g[c] += (t[g[c] + 1] <= xl[c]) ? 1 : 0;
  }
#pragma omp simd
  for (int c = 0; c < nc; ++c) {
    const bool inside = idx[c] != 0;
    u[c] = inside ? x[c] - t[g[c]] : T(0);
    idx[c] = inside ? g[c] : (static_cast<int32_t>(c0) + c) * M + M - 1;
  }
}

// y rows [n0, n1) of z (N, C) contiguous.
template <typename T, int K, int BASE>
void spline_activation_forward_rows(const ActTables<T>& tb, const T* __restrict z, T* __restrict y, int64_t n0,
                                    int64_t n1) {
  constexpr int K1 = K + 1;
  const int64_t C = tb.C;
  const T* __restrict P = tb.P;
  const T* __restrict sb = tb.sb;
  const T qnan = std::numeric_limits<T>::quiet_NaN();
  int32_t idx[kChanBlock];
  T u[kChanBlock];
  for (int64_t n = n0; n < n1; ++n) {
    for (int64_t c0 = 0; c0 < C; c0 += kChanBlock) {
      const int nc = static_cast<int>(std::min<int64_t>(kChanBlock, C - c0));
      const T* __restrict zr = z + n * C + c0;
      T* __restrict yr = y + n * C + c0;
      lookup_block<T>(tb, zr, c0, nc, idx, u);
#pragma omp simd
      for (int c = 0; c < nc; ++c) {
        const int32_t r = idx[c] * K1;
        T v = P[r + K];
#pragma GCC unroll 6
        for (int p = K - 1; p >= 0; --p) v = v * u[c] + P[r + p];
        const T x = zr[c];
        if (BASE != kBaseZero) v += sb[c0 + c] * act_base<T, BASE>(x);
        yr[c] = x != x ? qnan : v;
      }
    }
  }
}

// Backward over rows [n0, n1): grad z (if NEED_Z) and, if NEED_W, the
// moments mom[(c M + g) K1 + p] += dy u^p (slot M-1 collects the outside
// entries and is ignored) and gsb[c] += dy b(z), into this chunk's buffers
// (zeroed by the caller). NaN z adds nothing to the weight gradients.
template <typename T, int K, int BASE, bool NEED_Z, bool NEED_W>
void spline_activation_backward_rows(const ActTables<T>& tb, const T* __restrict dy, const T* __restrict z,
                                     T* __restrict gz, T* __restrict mom, T* __restrict gsb, int64_t n0,
                                     int64_t n1) {
  constexpr int K1 = K + 1;
  const int64_t C = tb.C;
  const T* __restrict P = tb.P;
  const T* __restrict sb = tb.sb;
  const T qnan = std::numeric_limits<T>::quiet_NaN();
  int32_t idx[kChanBlock];
  T u[kChanBlock];
  for (int64_t n = n0; n < n1; ++n) {
    for (int64_t c0 = 0; c0 < C; c0 += kChanBlock) {
      const int nc = static_cast<int>(std::min<int64_t>(kChanBlock, C - c0));
      const T* __restrict zr = z + n * C + c0;
      const T* __restrict dr = dy + n * C + c0;
      lookup_block<T>(tb, zr, c0, nc, idx, u);
      if (NEED_Z) {
        T* __restrict gr = gz + n * C + c0;
#pragma omp simd
        for (int c = 0; c < nc; ++c) {
          const int32_t r = idx[c] * K1;
          T dv = T(K) * P[r + K];
#pragma GCC unroll 6
          for (int p = K - 1; p >= 1; --p) dv = dv * u[c] + T(p) * P[r + p];
          if (K == 0) dv = T(0);
          const T x = zr[c];
          if (BASE != kBaseZero) dv += sb[c0 + c] * act_base_deriv<T, BASE>(x);
          gr[c] = x != x ? qnan : dr[c] * dv;
        }
      }
      if (NEED_W) {
        // Contributions dy u^p computed vectorised, then added to the moment
        // rows by a plain loop (hardware scatters are slow on the CPUs we
        // measured; distinct channels never share a row).
        T w[K1][kChanBlock];
#pragma omp simd
        for (int c = 0; c < nc; ++c) {
          const T x = zr[c];
          const T dd = x != x ? T(0) : dr[c];
          T up = dd;
#pragma GCC unroll 6
          for (int p = 0; p <= K; ++p) {
            w[p][c] = up;
            up *= u[c];
          }
          if (BASE != kBaseZero) gsb[c0 + c] += x != x ? T(0) : dr[c] * act_base<T, BASE>(x);
        }
        for (int c = 0; c < nc; ++c) {
          T* m = mom + idx[c] * K1;
#pragma GCC unroll 6
          for (int p = 0; p <= K; ++p) m[p] += w[p][c];
        }
      }
    }
  }
}

}  // namespace cpu
}  // namespace kanext
