// AVX-512 row path of the per-channel spline activation (float32, at most 16
// knots per channel, i.e. G + 2k <= 15): the same piecewise-polynomial
// formulation as spline_activation_kernels.h, but with 16 ROWS of one channel
// per register instead of 16 channels of one row. A channel's knots, bucket
// table and polynomial coefficients then each fit in one or two registers,
// so the interval search and the coefficient lookups are in-register
// permutes (vpermps / vpermt2d) instead of gathers, which were most of the
// cycles of the general path.
//
// z is (N, C) channel last, so each 16 x 16 tile (16 rows, 16 channels) is
// transposed in registers before the lookups and the results transposed
// back. Only the table-dependent part (interval g, u = z - t_g, spline value
// or derivative) is computed in the transposed layout; everything
// elementwise (silu, NaN handling, grad_z = dy * (...), the moments dy u^p)
// runs in the original layout, where a register holds 16 channels of one
// row. There the moment accumulators are per channel lane, so the
// per-(channel, interval) sums need no scatter: for each interval s present
// in the tile, a compare and K+1 masked adds.
//
// Everything here is elementwise except the moments, which the caller
// accumulates per fixed row chunk (see spline_activation_cpu.cpp), so results
// do not depend on the thread count. Bit-identical per element to the general
// path is not a goal (the summation order of the moments differs).
#pragma once

#ifdef __AVX512F__

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "fast_exp.h"
#include "kanext/bspline.h"

// GCC 12 warns "__Y may be used uninitialized" inside its own AVX-512
// intrinsics (the undefined pass-through operand); a known false positive.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace kanext {
namespace cpu {
namespace avx512 {

// Per-channel table layout (floats; int32 lut entries stored bit for bit),
// one record of row_stride(K) floats per channel, 16 channels per block:
//   [0, 16)                 knots t_0..t_{M-1}, padded with +inf
//   [16, 48)                bucket -> starting interval (int32), NB <= 32
//   [48 + 16p, ...)         P[p] on slots 0..15 (slot M-1 and above: 0), p = 0..K
//   [48 + 16(K+1) + 16q)    dP[q] = (q+1) P[q+1], q = 0..K-1
//   [48 + 16(2K+1)) + 0,1,2 lo, hi, NB / (hi - lo)
constexpr int kMaxSlots = 16;
constexpr int kMaxBuckets = 32;
inline constexpr int64_t row_stride(int K) { return 48 + 16 * (2 * K + 1) + 16; }
inline constexpr int64_t off_P(int p) { return 48 + 16 * p; }
inline constexpr int64_t off_dP(int K, int q) { return 48 + 16 * (K + 1) + 16 * q; }
inline constexpr int64_t off_scalars(int K) { return 48 + 16 * (2 * K + 1); }

struct RowTables {
  const float* rec;  // (C16, row_stride(K)), C16 = C rounded up to 16
  const float* sb;   // (C16): scale_base, 0 past C
  int64_t C;
  int M, NB, steps;
};

// 16 x 16 transpose of r (r[i] = row i) in registers: afterwards r[j] holds
// column j.
__attribute__((always_inline)) inline void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
    r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
    r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  for (int h = 0; h < 16; h += 8) {
    for (int i = 0; i < 4; ++i) {
      t[h + i] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0x88);
      t[h + i + 4] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0xDD);
    }
  }
  for (int i = 0; i < 8; ++i) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD);
  }
}

// Rows [0, nr) of a tile at p (row stride ld), columns in mask cm; other rows 0.
// Each row of the tile is its own memory stream (16 per array, too many for
// the hardware prefetchers), so the row path prefetches kPrefetch floats
// ahead in every row it reads, into L2: the rows are 4 KiB apart when C is a
// multiple of 1024, so the tile's lines of z, dy and grad_z all fall in one
// L1 set, and lines prefetched into L1 were evicted before their use. For the
// same reason each tile's rows are read from memory once, into small buffers.
constexpr int64_t kPrefetch = 128;

__attribute__((always_inline)) inline void load_tile(const float* p, int64_t ld, int nr, __mmask16 cm,
                                                     __m512 r[16]) {
  for (int i = 0; i < 16; ++i) r[i] = i < nr ? _mm512_maskz_loadu_ps(cm, p + i * ld) : _mm512_setzero_ps();
}

__attribute__((always_inline)) inline void prefetch_tile(const float* p, int64_t ld, int nr) {
  for (int i = 0; i < nr; ++i) _mm_prefetch(reinterpret_cast<const char*>(p + i * ld + kPrefetch), _MM_HINT_T1);
}

// The same for rows the tile will write (prefetchw: fetch for ownership).
__attribute__((always_inline)) inline void prefetch_tile_w(float* p, int64_t ld, int nr) {
  for (int i = 0; i < nr; ++i) _mm_prefetch(reinterpret_cast<const char*>(p + i * ld + kPrefetch), _MM_HINT_ET0);
}

// Interval lookup of one channel for 16 values x (one register):
// g = the table slot (interval, or M-1 outside the grid or NaN),
// u = x - t_g (0 outside). The same bucket table and forward steps as the
// general path (cpu::build_lookup), read with permutes.
struct Lookup {
  __m512i g;
  __m512 u;
};

template <int K>
inline Lookup lookup_k(const float* rec, const RowTables& tb, __m512 x) {
  const float* sc = rec + off_scalars(K);
  const __m512 lo = _mm512_set1_ps(sc[0]), hi = _mm512_set1_ps(sc[1]), ibw = _mm512_set1_ps(sc[2]);
  const __mmask16 in = _mm512_cmp_ps_mask(x, lo, _CMP_GE_OQ) & _mm512_cmp_ps_mask(x, hi, _CMP_LT_OQ);
  const __m512 xi = _mm512_mask_blend_ps(in, lo, x);
  __m512i b = _mm512_cvttps_epi32(_mm512_mul_ps(_mm512_sub_ps(xi, lo), ibw));
  b = _mm512_min_epi32(b, _mm512_set1_epi32(tb.NB - 1));
  const int32_t* lut = reinterpret_cast<const int32_t*>(rec + 16);
  __m512i g = _mm512_permutex2var_epi32(_mm512_loadu_si512(lut), b, _mm512_loadu_si512(lut + 16));
  const __m512 t = _mm512_loadu_ps(rec);
  const __m512i one = _mm512_set1_epi32(1);
  for (int s = 0; s < tb.steps; ++s) {
    const __m512 tn = _mm512_permutexvar_ps(_mm512_add_epi32(g, one), t);
    g = _mm512_mask_add_epi32(g, _mm512_cmp_ps_mask(tn, xi, _CMP_LE_OQ), g, one);
  }
  Lookup r;
  r.u = _mm512_maskz_sub_ps(in, xi, _mm512_permutexvar_ps(g, t));
  r.g = _mm512_mask_blend_epi32(in, _mm512_set1_epi32(tb.M - 1), g);
  return r;
}

// Spline value (DERIV = false) or its derivative in z (DERIV = true) on slot
// g at u, by Horner on the slot's coefficients (0 on slot M-1).
template <int K, bool DERIV>
inline __m512 spline_poly(const float* rec, const Lookup& l) {
  if (DERIV) {
    if (K == 0) return _mm512_setzero_ps();
    __m512 v = _mm512_permutexvar_ps(l.g, _mm512_loadu_ps(rec + off_dP(K, K > 0 ? K - 1 : 0)));
    for (int q = K - 2; q >= 0; --q)
      v = _mm512_fmadd_ps(v, l.u, _mm512_permutexvar_ps(l.g, _mm512_loadu_ps(rec + off_dP(K, q))));
    return v;
  }
  __m512 v = _mm512_permutexvar_ps(l.g, _mm512_loadu_ps(rec + off_P(K)));
  for (int p = K - 1; p >= 0; --p)
    v = _mm512_fmadd_ps(v, l.u, _mm512_permutexvar_ps(l.g, _mm512_loadu_ps(rec + off_P(p))));
  return v;
}

template <int BASE>
inline __m512 base_fn(__m512 x) {
  if (BASE == kBaseSilu) {
    const __m512 e = fast_exp<float, __m512>(_mm512_sub_ps(_mm512_setzero_ps(), x));
    return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
  }
  if (BASE == kBaseIdentity) return x;
  return _mm512_setzero_ps();
}

template <int BASE>
inline __m512 base_deriv(__m512 x) {
  if (BASE == kBaseSilu) {
    const __m512 one = _mm512_set1_ps(1.0f);
    const __m512 e = fast_exp<float, __m512>(_mm512_sub_ps(_mm512_setzero_ps(), x));
    const __m512 s = _mm512_div_ps(one, _mm512_add_ps(one, e));
    return _mm512_mul_ps(s, _mm512_fmadd_ps(x, _mm512_sub_ps(one, s), one));
  }
  if (BASE == kBaseIdentity) return _mm512_set1_ps(1.0f);
  return _mm512_setzero_ps();
}

inline __mmask16 col_mask(int64_t c0, int64_t C) {
  const int64_t nc = std::min<int64_t>(16, C - c0);
  return static_cast<__mmask16>((1u << nc) - 1u);
}

// y rows [n0, n1) of z (N, C) contiguous.
template <int K, int BASE>
void forward_rows(const RowTables& tb, const float* __restrict z, float* __restrict y, int64_t n0, int64_t n1) {
  constexpr int64_t RS = row_stride(K);
  const int64_t C = tb.C;
  const __m512 qnan = _mm512_set1_ps(std::numeric_limits<float>::quiet_NaN());
  __m512 r[16];
  alignas(64) float zrow[16][16];  // the tile's rows again: they share one L1 set in memory (rows 4 KiB apart)
  for (int64_t n = n0; n < n1; n += 16) {
    const int nr = static_cast<int>(std::min<int64_t>(16, n1 - n));
    for (int64_t c0 = 0; c0 < C; c0 += 16) {
      const __mmask16 cm = col_mask(c0, C);
      const float* zt = z + n * C + c0;
      prefetch_tile(zt, C, nr);
      prefetch_tile_w(y + n * C + c0, C, nr);
      load_tile(zt, C, nr, cm, r);
      for (int i = 0; i < 16; ++i) _mm512_store_ps(zrow[i], r[i]);
      transpose16(r);
      const float* rec = tb.rec + c0 * RS;
      for (int j = 0; j < 16; ++j) r[j] = spline_poly<K, false>(rec + j * RS, lookup_k<K>(rec + j * RS, tb, r[j]));
      transpose16(r);
      const __m512 sb = _mm512_loadu_ps(tb.sb + c0);
      float* yt = y + n * C + c0;
      for (int i = 0; i < nr; ++i) {
        const __m512 x = _mm512_load_ps(zrow[i]);
        __m512 v = r[i];
        if (BASE != kBaseZero) v = _mm512_fmadd_ps(sb, base_fn<BASE>(x), v);
        v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), v, qnan);
        _mm512_mask_storeu_ps(yt + i * C, cm, v);
      }
    }
  }
}

// Moment slots per channel block in the workspace of backward_rows: the
// M-1 intervals. They are accumulated in groups of at most group_size(K)
// intervals, whose (K+1) accumulators each stay in registers over a tile.
inline constexpr int group_size(int K) { return std::max(1, 24 / (K + 1)); }
inline int64_t ws_slots(int K, int M) { (void)K; return M - 1; }
// Workspace floats for C channels: moments (C16/16, slots, K+1, 16) then gsb (C16).
inline int64_t ws_floats(int K, int M, int64_t C) {
  const int64_t C16 = (C + 15) / 16 * 16;
  return C16 * ws_slots(K, M) * (K + 1) + C16;
}

// Adds w_rows[p][i] into acc slot s (lanes = channels) where g_rows[i] == s,
// for the SZ intervals s0 .. s0+SZ-1, with the accumulators in registers
// across the tile's rows.
template <int K, int SZ>
__attribute__((always_inline)) inline void accumulate_group(float* mb, int s0, int nr, const int32_t (*g_rows)[16],
                                                            const float (*w_rows)[16][16]) {
  constexpr int K1 = K + 1;
  __m512 acc[SZ][K1];
  for (int j = 0; j < SZ; ++j)
    for (int p = 0; p < K1; ++p) acc[j][p] = _mm512_loadu_ps(mb + (j * K1 + p) * 16);
  for (int i = 0; i < nr; ++i) {
    const __m512i g = _mm512_load_si512(g_rows[i]);
    __m512 w[K1];
    for (int p = 0; p < K1; ++p) w[p] = _mm512_load_ps(w_rows[p][i]);
    for (int j = 0; j < SZ; ++j) {
      const __mmask16 m = _mm512_cmpeq_epi32_mask(g, _mm512_set1_epi32(s0 + j));
      for (int p = 0; p < K1; ++p) acc[j][p] = _mm512_mask_add_ps(acc[j][p], m, acc[j][p], w[p]);
    }
  }
  for (int j = 0; j < SZ; ++j)
    for (int p = 0; p < K1; ++p) _mm512_storeu_ps(mb + (j * K1 + p) * 16, acc[j][p]);
}

// Calls f(std::integral_constant<int, sz>) for sz in [1, GS].
template <int GS, int I = 1, typename F>
__attribute__((always_inline)) inline void dispatch_group(int sz, F&& f) {
  if constexpr (I <= GS) {
    if (sz == I) f(std::integral_constant<int, I>{});
    else dispatch_group<GS, I + 1>(sz, f);
  }
}

// Backward over rows [n0, n1): grad z (if NEED_Z) and, if NEED_W, adds the
// moments dy u^p per (channel, interval, p) and dy b(z) per channel into ws
// (layout of ws_floats, zeroed by the caller). NaN z adds nothing.
template <int K, int BASE, bool NEED_Z, bool NEED_W>
void backward_rows(const RowTables& tb, const float* __restrict dy, const float* __restrict z, float* __restrict gz,
                   float* __restrict ws, int64_t n0, int64_t n1) {
  constexpr int K1 = K + 1;
  constexpr int64_t RS = row_stride(K);
  constexpr int GS = group_size(K);
  const int64_t C = tb.C, C16 = (C + 15) / 16 * 16;
  const int M = tb.M;
  const int64_t SL = ws_slots(K, M);
  const __m512 qnan = _mm512_set1_ps(std::numeric_limits<float>::quiet_NaN());
  float* gsb_ws = NEED_W ? ws + C16 * SL * K1 : nullptr;
  __m512 r[16];
  alignas(64) float ds_rows[16][16];
  alignas(64) float w_rows[K1][16][16];
  alignas(64) int32_t g_rows[16][16];
  alignas(64) float zrow[16][16], drow[16][16];  // the tile's rows (4 KiB apart in memory: one L1 set)
  __m512i gcol[16];
  for (int64_t n = n0; n < n1; n += 16) {
    const int nr = static_cast<int>(std::min<int64_t>(16, n1 - n));
    for (int64_t c0 = 0; c0 < C; c0 += 16) {
      const __mmask16 cm = col_mask(c0, C);
      const float* zt = z + n * C + c0;
      const float* dt = dy + n * C + c0;
      prefetch_tile(zt, C, nr);
      prefetch_tile(dt, C, nr);
      if (NEED_Z) prefetch_tile_w(gz + n * C + c0, C, nr);
      load_tile(zt, C, nr, cm, r);
      for (int i = 0; i < 16; ++i) _mm512_store_ps(zrow[i], r[i]);
      for (int i = 0; i < nr; ++i) _mm512_store_ps(drow[i], _mm512_maskz_loadu_ps(cm, dt + i * C));
      transpose16(r);
      const float* rec = tb.rec + c0 * RS;
      __m512 ucol[16];
      for (int j = 0; j < 16; ++j) {
        const Lookup l = lookup_k<K>(rec + j * RS, tb, r[j]);
        gcol[j] = l.g;
        ucol[j] = l.u;
        if (NEED_Z) r[j] = spline_poly<K, true>(rec + j * RS, l);
      }
      if (NEED_Z) {
        transpose16(r);
        for (int i = 0; i < 16; ++i) _mm512_store_ps(ds_rows[i], r[i]);
      }
      const __m512 sb = _mm512_loadu_ps(tb.sb + c0);
      __m512 gsb_acc = _mm512_setzero_ps();
      if (NEED_W) {
        transpose16(ucol);
        for (int j = 0; j < 16; ++j) r[j] = _mm512_castsi512_ps(gcol[j]);
        transpose16(r);
        for (int i = 0; i < 16; ++i) _mm512_store_si512(g_rows[i], _mm512_castps_si512(r[i]));
      }
      for (int i = 0; i < nr; ++i) {
        const __m512 x = _mm512_load_ps(zrow[i]);
        const __m512 d = _mm512_load_ps(drow[i]);
        const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
        if (NEED_Z) {
          __m512 dv = _mm512_load_ps(ds_rows[i]);
          if (BASE != kBaseZero) dv = _mm512_fmadd_ps(sb, base_deriv<BASE>(x), dv);
          _mm512_mask_storeu_ps(gz + (n + i) * C + c0, cm, _mm512_mask_blend_ps(nan, _mm512_mul_ps(d, dv), qnan));
        }
        if (NEED_W) {
          const __m512 dd = _mm512_mask_blend_ps(nan, d, _mm512_setzero_ps());
          __m512 up = dd;
          for (int p = 0; p <= K; ++p) {
            _mm512_store_ps(w_rows[p][i], up);
            up = _mm512_mul_ps(up, ucol[i]);
          }
          if (BASE != kBaseZero)
            gsb_acc = _mm512_add_ps(gsb_acc, _mm512_maskz_mul_ps(static_cast<__mmask16>(~nan), d, base_fn<BASE>(x)));
        }
      }
      if (NEED_W) {
        float* gp = gsb_ws + c0;
        _mm512_storeu_ps(gp, _mm512_add_ps(_mm512_loadu_ps(gp), gsb_acc));
        // Interval range present in this tile (slot M-1, outside, is skipped;
        // padded rows have g = 0 and zero weights).
        __m512i gmin = _mm512_set1_epi32(M - 1), gmax = _mm512_set1_epi32(-1);
        const __m512i outside = _mm512_set1_epi32(M - 1);
        for (int i = 0; i < nr; ++i) {
          const __m512i g = _mm512_load_si512(g_rows[i]);
          const __mmask16 ins = _mm512_cmpneq_epi32_mask(g, outside) & cm;
          gmin = _mm512_mask_min_epi32(gmin, ins, gmin, g);
          gmax = _mm512_mask_max_epi32(gmax, ins, gmax, g);
        }
        const int smin = _mm512_reduce_min_epi32(gmin), smax = _mm512_reduce_max_epi32(gmax);
        float* mb = ws + (c0 / 16) * SL * K1 * 16;
        // Groups of at most GS intervals, sized evenly (7 intervals: 4 + 3,
        // not 6 + 6 with five idle).
        const int R = smax - smin + 1;
        if (R > 0) {
          const int ng = (R + GS - 1) / GS;
          for (int q = 0, s0 = smin; q < ng; ++q) {
            const int sz = (R - (s0 - smin) + (ng - q) - 1) / (ng - q);
            dispatch_group<GS>(sz, [&](auto SZ) {
              accumulate_group<K, decltype(SZ)::value>(mb + s0 * K1 * 16, s0, nr, g_rows, w_rows);
            });
            s0 += sz;
          }
        }
      }
    }
  }
}

}  // namespace avx512
}  // namespace cpu
}  // namespace kanext

#pragma GCC diagnostic pop

#endif  // __AVX512F__
