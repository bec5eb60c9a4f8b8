// CPU kernel bodies of the fused KAN layer (local-support formulation).
// Raw pointers and sizes only; the bindings in csrc/cpu/spline_basis_cpu.cpp and kan_linear_cpu.cpp
// check arguments, allocate outputs and parallelise.
//
// Per (n, i) only the k+1 bases of x[n, i]'s knot interval are non-zero, so
// the forward is k+2 axpys of length `out` per (n, i) (k+1 rows of Wc and the
// base row of Wb) and costs O(N in out (k+2)), independent of G. No (N, in,
// G+k) or (N, in, out) tensor is ever formed.
//
// Work is done per block of kRows batch rows and one input i: first the
// bases of the whole block are computed with the batch row as the innermost
// (vectorised) index, then the rows of Wc are streamed.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__has_include)
#if __has_include(<unistd.h>)
#include <unistd.h>  // sysconf: the L2 size (strip_tile_bytes)
#endif
#endif

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

#include "fast_exp.h"
#include "kanext/bspline.h"

namespace kanext {
namespace cpu {

constexpr int kRows = 32;  // batch rows per block (a multiple of the vector lanes)

// Scratch buffers are 64-byte aligned (a cache line, a zmm vector), as
// torch's CPU tensors are: where a buffer's rows are a multiple of 64 bytes
// long, the kernels' vector loads and stores of them then never straddle two
// lines. malloc aligns to 16 bytes only, and large blocks (mmap) start 16
// bytes past a page: measured on an AVX-512 Xeon (bench/RESULTS.md,
// "eighteenth pass"), the weight gradients' rank-1 updates ran 1.3x slower on
// such rows. scratch_vector value-initialises as std::vector does;
// uninit_scratch does not.
inline constexpr std::size_t kScratchAlign = 64;
template <typename T>
struct AlignedAllocator {
  using value_type = T;
  AlignedAllocator() = default;
  template <typename U>
  AlignedAllocator(const AlignedAllocator<U>&) {}
  T* allocate(std::size_t n) {
    return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(kScratchAlign)));
  }
  void deallocate(T* p, std::size_t) { ::operator delete(p, std::align_val_t(kScratchAlign)); }
  template <typename U>
  bool operator==(const AlignedAllocator<U>&) const { return true; }
  template <typename U>
  bool operator!=(const AlignedAllocator<U>&) const { return false; }
};
template <typename T>
using scratch_vector = std::vector<T, AlignedAllocator<T>>;
struct AlignedDelete {
  void operator()(void* p) const { ::operator delete(p, std::align_val_t(kScratchAlign)); }
};
template <typename T>
using scratch_ptr = std::unique_ptr<T[], AlignedDelete>;
template <typename T>
scratch_ptr<T> uninit_scratch(std::size_t n) {  // (T trivial: every element written before it is read)
  static_assert(std::is_trivially_default_constructible_v<T> && std::is_trivially_destructible_v<T>);
  return scratch_ptr<T>(static_cast<T*>(::operator new(std::max<std::size_t>(n, 1) * sizeof(T),
                                                       std::align_val_t(kScratchAlign))));
}

// One vector register of the target (GCC/Clang vector extensions): 64
// bytes with AVX-512, 32 with AVX, 16 otherwise (SSE2, NEON), and the
// number of such registers, which sizes the register blocks below. (The
// kernels once used 64-byte vectors everywhere. Without AVX-512, GCC split
// every operation on them into halves through the stack, and the layer ran
// 5-10x slower: bench/RESULTS.md, "ninth pass".) Dot products accumulate per
// lane and reduce in a fixed tree, so results are deterministic for a given
// build and independent of thread count; builds for different vector
// widths sum in different orders.
#if defined(__AVX512F__)
#define KANEXT_VEC_BYTES 64
constexpr int kVecRegs = 32;
#elif defined(__AVX__)
#define KANEXT_VEC_BYTES 32
constexpr int kVecRegs = 16;
#elif defined(__aarch64__)
#define KANEXT_VEC_BYTES 16
constexpr int kVecRegs = 32;
#else
#define KANEXT_VEC_BYTES 16
constexpr int kVecRegs = 16;
#endif
template <typename T>
struct VecOf;
template <>
struct VecOf<float> {
  typedef float type __attribute__((vector_size(KANEXT_VEC_BYTES)));
};
template <>
struct VecOf<double> {
  typedef double type __attribute__((vector_size(KANEXT_VEC_BYTES)));
};
template <typename T>
using vec_t = typename VecOf<T>::type;
template <typename T>
constexpr int kLanes = KANEXT_VEC_BYTES / sizeof(T);

template <typename T>
inline vec_t<T> vload(const T* p) {
  vec_t<T> v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
template <typename T>
inline void vstore(T* p, vec_t<T> v) {
  __builtin_memcpy(p, &v, sizeof v);
}
// GCC's two-source permutes of vector types (__builtin_shuffle): the
// register reductions and transposes below use them; other compilers (and
// builds with KANEXT_NO_VECTOR_SHUFFLE, which test that path) take the
// element-by-element forms, with the same operations in the same order.
#if defined(__GNUC__) && !defined(__clang__) && !defined(KANEXT_NO_VECTOR_SHUFFLE)
#define KANEXT_VECTOR_SHUFFLE 1
#endif

// Integer lanes as wide as T's, as a scalar (elem) and as a vector (type):
// permute indices.
template <typename T>
struct IndexVecOf;
template <>
struct IndexVecOf<float> {
  typedef int32_t elem;
  typedef int32_t type __attribute__((vector_size(KANEXT_VEC_BYTES)));
};
template <>
struct IndexVecOf<double> {
  typedef int64_t elem;
  typedef int64_t type __attribute__((vector_size(KANEXT_VEC_BYTES)));
};

// Sum of a vector's lanes by halves (a fixed tree: log2(lanes) dependent
// adds instead of one per lane, which made the dot products of grad_x wait
// on the reduction in narrow layers). Each stage adds lane l + w to lane l
// for l < w, in registers (one permute and one add per stage; through an
// array in memory the reductions cost more than the dot products of 64-wide
// layers).
template <typename T>
struct HalvesIndices {
  typename IndexVecOf<T>::elem idx[4][kLanes<T>];  // stage s: w = L / 2^(s+1), lane l takes l + w (l < w)
};
template <typename T>
constexpr HalvesIndices<T> make_halves_indices() {
  constexpr int L = kLanes<T>;
  HalvesIndices<T> h{};
  for (int s = 0, w = L / 2; w >= 1; ++s, w /= 2)
    for (int l = 0; l < L; ++l) h.idx[s][l] = l < w ? l + w : l;
  return h;
}
template <typename T>
inline constexpr HalvesIndices<T> kHalvesIndices = make_halves_indices<T>();

template <typename T>
inline T hsum(vec_t<T> v) {
#ifdef KANEXT_VECTOR_SHUFFLE
#pragma GCC unroll 4
  for (int s = 0, w = kLanes<T> / 2; w >= 1; ++s, w /= 2) {
    typename IndexVecOf<T>::type idx;
    __builtin_memcpy(&idx, kHalvesIndices<T>.idx[s], sizeof idx);
    v = v + __builtin_shuffle(v, idx);
  }
  return v[0];
#else
  T t[kLanes<T>];
  __builtin_memcpy(t, &v, sizeof v);
  for (int w = kLanes<T> / 2; w >= 1; w /= 2)
    for (int l = 0; l < w; ++l) t[l] += t[l + w];
  return t[0];
#endif
}

static_assert(kRows % kLanes<float> == 0 && kRows % kLanes<double> == 0, "kRows must fill whole vectors");

// silu(x) (and its derivative if DERIV) for kRows values at once: the
// formulas of base_value / base_derivative in kanext/bspline.h, with the
// vector exp.
template <typename T, bool DERIV>
inline void silu_block(const T* __restrict x, T* __restrict bv, T* __restrict dbv) {
  typedef vec_t<T> V;
  for (int r = 0; r < kRows; r += kLanes<T>) {
    const V xv = vload(x + r);
    const V e = fast_exp<T>(-xv);  // vector exp: the libm call per element was the cost
    vstore(bv + r, xv / (T(1) + e));
    if (DERIV) {
      const V s = T(1) / (T(1) + e);
      vstore(dbv + r, s * (T(1) + xv * (T(1) - s)));
    }
  }
}

// dot_rows for a width known at compile time (O < one vector): the same
// sequential sums, unrolled.
template <typename T, int R, int O>
inline void dot_rows_fixed(const T* const* rows, const T* __restrict d, T* res) {
  for (int r = 0; r < R; ++r) {
    T s = T(0);
    for (int j = 0; j < O; ++j) s += rows[r][j] * d[j];
    res[r] = s;
  }
}

// res[r] = dot(rows[r], d) for r < R over `out` elements.
template <typename T, int R>
inline void dot_rows(const T* const* rows, const T* __restrict d, int64_t out, T* res) {
  constexpr int L = kLanes<T>;
  switch (out) {  // tiny layers: no loop control per element
    case 1: return dot_rows_fixed<T, R, 1>(rows, d, res);
    case 2: return dot_rows_fixed<T, R, 2>(rows, d, res);
    case 3: return dot_rows_fixed<T, R, 3>(rows, d, res);
    case 4: return dot_rows_fixed<T, R, 4>(rows, d, res);
    case 5: return dot_rows_fixed<T, R, 5>(rows, d, res);
    default: break;
  }
  vec_t<T> acc[R];
  for (int r = 0; r < R; ++r) acc[r] = vec_t<T>{} ;
  int64_t j = 0;
  for (; j + L <= out; j += L) {
    const vec_t<T> dj = vload(d + j);
#pragma GCC unroll 7
    for (int r = 0; r < R; ++r) acc[r] += vload(rows[r] + j) * dj;
  }
  for (int r = 0; r < R; ++r) {
    T s = j > 0 ? hsum<T>(acc[r]) : T(0);  // narrow layers (out < one vector) skip the reduction
    for (int64_t jj = j; jj < out; ++jj) s += rows[r][jj] * d[jj];
    res[r] = s;
  }
}

// axpy_rows for a width known at compile time (O < one vector): the same
// scalar sums, in the same order, unrolled.
template <typename T, int R, int O>
inline void axpy_rows_fixed(T* __restrict y, const T* const* rows, const T* c) {
  for (int j = 0; j < O; ++j) {
    T acc = y[j];
    for (int q = 0; q < R; ++q) acc += c[q] * rows[q][j];
    y[j] = acc;
  }
}

// y[j] += sum_q c[q] * rows[q][j] for j < out (R rows).
template <typename T, int R>
inline void axpy_rows(T* __restrict y, const T* const* rows, const T* c, int64_t out) {
  constexpr int L = kLanes<T>;
  switch (out) {  // tiny layers (the science models' widths): no loop control per element
    case 1: return axpy_rows_fixed<T, R, 1>(y, rows, c);
    case 2: return axpy_rows_fixed<T, R, 2>(y, rows, c);
    case 3: return axpy_rows_fixed<T, R, 3>(y, rows, c);
    case 4: return axpy_rows_fixed<T, R, 4>(y, rows, c);
    case 5: return axpy_rows_fixed<T, R, 5>(y, rows, c);
    default: break;
  }
  int64_t j = 0;
  for (; j + L <= out; j += L) {
    vec_t<T> acc = vload(y + j);
#pragma GCC unroll 7
    for (int q = 0; q < R; ++q) acc += c[q] * vload(rows[q] + j);
    vstore(y + j, acc);
  }
  for (; j < out; ++j) {
    T acc = y[j];
    for (int q = 0; q < R; ++q) acc += c[q] * rows[q][j];
    y[j] = acc;
  }
}

// rows[q][j] += c[q] * d[j] for j < out (R rank-1 updates).
template <typename T, int R>
inline void rank1_rows(T* const* rows, const T* c, const T* __restrict d, int64_t out) {
  constexpr int L = kLanes<T>;
  int64_t j = 0;
  for (; j + L <= out; j += L) {
    const vec_t<T> dj = vload(d + j);
#pragma GCC unroll 7
    for (int q = 0; q < R; ++q) vstore(rows[q] + j, vload(rows[q] + j) + c[q] * dj);
  }
  for (; j < out; ++j)
    for (int q = 0; q < R; ++q) rows[q][j] += c[q] * d[j];
}

// Knots of one input padded with k+1 stand-in knots on each side (bspline.h's
// extended_knot), so the local triangle needs no bounds checks:
// padded[q + k + 1] = t[q] for q in [-(k+1), M+k].
template <typename T>
inline void pad_knots(const T* t, int64_t M, int k, T* padded) {
  for (int64_t q = -(k + 1); q <= M + k; ++q) padded[q + k + 1] = extended_knot(t, M, q);
}

// Where each row of a block (kRows values xin, the first nr of them real)
// falls: with g = find_interval(t, M, xin[r]) (-1 outside the grid or NaN),
// start[r] = the first of its K+1 bases (g - K clamped into [0, G-1]; -1
// outside, -2 NaN), shift[r] = g - K - start[r] (0 outside, NaN, and for
// the rows past nr), u[q][r] = padded[gg + 1 + q] for q = 1..2K (and q = 0 if K = 0; gg = g, or K
// outside: any window, those values are dropped) and xv[r] = xin[r] inside,
// u[K][r] outside. Returns whether a shift is not 0 (a real row's window
// was clamped at an end of the grid). Portable version: row by row.
template <int K>
constexpr int kFirstKnot = K > 0 ? 1 : 0;  // u[0] is read only as u[K], for K = 0
template <typename T, int K>
inline bool locate_rows(const T* __restrict xin, int nr, const T* __restrict t, const T* __restrict padded,
                        int64_t M, int64_t* __restrict start, T* __restrict shift, T (*__restrict u)[kRows],
                        T* __restrict xv) {
  const int64_t G = M - 2 * K - 1;
  bool clamped = false;
  for (int r = 0; r < kRows; ++r) {
    const T xr = xin[r];
    const int64_t gr = find_interval<T>(t, M, xr);
    start[r] = gr >= 0 ? std::min(std::max<int64_t>(gr - K, 0), G - 1) : (std::isnan(xr) ? -2 : -1);
    shift[r] = r < nr && gr >= 0 ? static_cast<T>(gr - K - start[r]) : T(0);
    clamped |= shift[r] != T(0);
    const int64_t gg = gr >= 0 ? gr : K;
    for (int q = kFirstKnot<K>; q <= 2 * K; ++q) u[q][r] = padded[gg + 1 + q];
    xv[r] = gr >= 0 ? xr : u[K][r];
  }
  return clamped;
}

#if defined(__AVX512F__) && defined(__AVX512DQ__)
// GCC 12 warns "__Y may be used uninitialized" inside its own AVX-512
// intrinsics (the undefined pass-through operand); a known false positive.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// The same with one lane per row, 16 (float) or 8 (double) rows at a time.
// Knot lookups are in-register permutes of the padded knots the search reads
// (t[g] = padded[g + K + 1]; G + 4K - 1 values for K >= 1, KnotTable) when
// they fit in 8 registers (128 float / 64 double values), gathers otherwise.
// The search is a guess like find_interval's, (x - t[0]) (M - 1) / (t[M-1] -
// t[0]) (by a product with the quotient of the last two, formed once), and
// at most two one-knot moves, each checked against t[g] <= x < t[g+1]; a
// lane still unresolved after that takes find_interval itself. The interval
// that holds x is unique (t is non-decreasing, the intervals half-open), so
// every lane gets find_interval's g whatever path it took, and its window is
// the same knots: no bit of the bases changes. (Row by row, the search's
// dependent loads and branches were about half of the bases' time at out <= 5.)
template <typename T>
struct Avx512Lanes;
template <>
struct Avx512Lanes<float> {  // 16 lanes, int32 indices
  typedef __m512 V;
  typedef __m512i I;
  typedef __mmask16 Mask;
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static V load_n(const float* p, int n) { return _mm512_maskz_loadu_ps(lanes_below(n), p); }
  static void store_n(float* p, V v, int n) { _mm512_mask_storeu_ps(p, lanes_below(n), v); }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static V set1(float v) { return _mm512_set1_ps(v); }
  static Mask ge(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ); }
  static Mask lt(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
  static Mask gt(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
  static Mask le(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_LE_OQ); }
  static Mask nan(V a) { return _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q); }
  static V blend(Mask m, V a, V b) { return _mm512_mask_blend_ps(m, a, b); }  // m ? b : a
  static V perm2(V a, I idx, V b) { return _mm512_permutex2var_ps(a, idx, b); }
  static V gather(I idx, const float* base) { return _mm512_i32gather_ps(idx, base, 4); }
  static I trunc(Mask m, V v) { return _mm512_cvttps_epi32(_mm512_maskz_mov_ps(m, v)); }
  static V to_float(Mask m, I v) { return _mm512_maskz_mov_ps(m, _mm512_cvtepi32_ps(v)); }
  static I iset1(int64_t v) { return _mm512_set1_epi32(static_cast<int>(v)); }
  static I imax(I a, I b) { return _mm512_max_epi32(a, b); }
  static I imin(I a, I b) { return _mm512_min_epi32(a, b); }
  static I iadd(I a, I b) { return _mm512_add_epi32(a, b); }
  static I isub(I a, I b) { return _mm512_sub_epi32(a, b); }
  static I imask_add(I a, Mask m, I b) { return _mm512_mask_add_epi32(a, m, a, b); }
  static I imask_sub(I a, Mask m, I b) { return _mm512_mask_sub_epi32(a, m, a, b); }
  static I iblend(Mask m, I a, I b) { return _mm512_mask_blend_epi32(m, a, b); }
  static Mask ine(I a, I b) { return _mm512_cmpneq_epi32_mask(a, b); }
  static Mask ibit(I a, int64_t bit) { return _mm512_test_epi32_mask(a, iset1(bit)); }
  static Mask lanes_below(int n) { return n >= 16 ? Mask(0xFFFF) : Mask((1u << std::max(n, 0)) - 1); }
  static void istore(int32_t* p, I v) { _mm512_storeu_si512(p, v); }
  static I iload(const int32_t* p) { return _mm512_loadu_si512(p); }
  static void store64(int64_t* p, I v) {
    _mm512_storeu_si512(p, _mm512_cvtepi32_epi64(_mm512_castsi512_si256(v)));
    _mm512_storeu_si512(p + 8, _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(v, 1)));
  }
  typedef int32_t Index;
};
template <>
struct Avx512Lanes<double> {  // 8 lanes, int64 indices
  typedef __m512d V;
  typedef __m512i I;
  typedef __mmask8 Mask;
  static V load(const double* p) { return _mm512_loadu_pd(p); }
  static V load_n(const double* p, int n) { return _mm512_maskz_loadu_pd(lanes_below(n), p); }
  static void store_n(double* p, V v, int n) { _mm512_mask_storeu_pd(p, lanes_below(n), v); }
  static void store(double* p, V v) { _mm512_storeu_pd(p, v); }
  static V set1(double v) { return _mm512_set1_pd(v); }
  static Mask ge(V a, V b) { return _mm512_cmp_pd_mask(a, b, _CMP_GE_OQ); }
  static Mask lt(V a, V b) { return _mm512_cmp_pd_mask(a, b, _CMP_LT_OQ); }
  static Mask gt(V a, V b) { return _mm512_cmp_pd_mask(a, b, _CMP_GT_OQ); }
  static Mask le(V a, V b) { return _mm512_cmp_pd_mask(a, b, _CMP_LE_OQ); }
  static Mask nan(V a) { return _mm512_cmp_pd_mask(a, a, _CMP_UNORD_Q); }
  static V blend(Mask m, V a, V b) { return _mm512_mask_blend_pd(m, a, b); }
  static V perm2(V a, I idx, V b) { return _mm512_permutex2var_pd(a, idx, b); }
  static V gather(I idx, const double* base) { return _mm512_i64gather_pd(idx, base, 8); }
  static I trunc(Mask m, V v) { return _mm512_cvttpd_epi64(_mm512_maskz_mov_pd(m, v)); }
  static V to_float(Mask m, I v) { return _mm512_maskz_mov_pd(m, _mm512_cvtepi64_pd(v)); }
  static I iset1(int64_t v) { return _mm512_set1_epi64(v); }
  static I imax(I a, I b) { return _mm512_max_epi64(a, b); }
  static I imin(I a, I b) { return _mm512_min_epi64(a, b); }
  static I iadd(I a, I b) { return _mm512_add_epi64(a, b); }
  static I isub(I a, I b) { return _mm512_sub_epi64(a, b); }
  static I imask_add(I a, Mask m, I b) { return _mm512_mask_add_epi64(a, m, a, b); }
  static I imask_sub(I a, Mask m, I b) { return _mm512_mask_sub_epi64(a, m, a, b); }
  static I iblend(Mask m, I a, I b) { return _mm512_mask_blend_epi64(m, a, b); }
  static Mask ine(I a, I b) { return _mm512_cmpneq_epi64_mask(a, b); }
  static Mask ibit(I a, int64_t bit) { return _mm512_test_epi64_mask(a, iset1(bit)); }
  static Mask lanes_below(int n) { return n >= 8 ? Mask(0xFF) : Mask((1u << std::max(n, 0)) - 1); }
  static void istore(int64_t* p, I v) { _mm512_storeu_si512(p, v); }
  static I iload(const int64_t* p) { return _mm512_loadu_si512(p); }
  static void store64(int64_t* p, I v) { _mm512_storeu_si512(p, v); }
  typedef int64_t Index;
};

// An input's padded knots, looked up by a vector of indices: PAIRS = 1..4
// two-register permutes (up to 32 float / 16 double values per pair), or
// gathers for PAIRS = 0. The pair count is a template parameter so that a
// lookup has no branch on it (chosen once per block by knot_pairs). The
// table holds only the knots the row search reads (kKnotTableFirst<K> on,
// below): with k = 3, G + 11 of the G + 14 padded knots, so G = 20 takes
// one pair instead of two in float32 and two instead of three in float64,
// and float64 G = 5 one instead of two.
template <typename T>
constexpr int kKnotPair = 2 * kLanes<T>;  // values one two-register permute selects from
template <typename T>
inline int knot_pairs(int64_t P) {
  return P <= 4 * kKnotPair<T> ? static_cast<int>((P + kKnotPair<T> - 1) / kKnotPair<T>) : 0;
}
template <typename T, int PAIRS>
struct KnotTable {
  typedef Avx512Lanes<T> A;
  typename A::V reg[PAIRS > 0 ? 2 * PAIRS : 1];
  const T* knots;

  // table[q] = knots[q] for q < n
  KnotTable(const T* knots_, int64_t n) : knots(knots_) {
    for (int j = 0; j < 2 * PAIRS; ++j) reg[j] = A::load_n(knots_ + j * kLanes<T>, static_cast<int>(n - j * kLanes<T>));
  }
  typename A::V operator()(typename A::I idx) const {
    if constexpr (PAIRS == 0) {
      return A::gather(idx, knots);
    } else {
      const typename A::V p0 = A::perm2(reg[0], idx, reg[1]);
      if constexpr (PAIRS == 1) return p0;
      const typename A::Mask odd = A::ibit(idx, kKnotPair<T>);
      const typename A::V lo = A::blend(odd, p0, A::perm2(reg[2], idx, reg[3]));
      if constexpr (PAIRS == 2) return lo;
      const typename A::V p2 = A::perm2(reg[4], idx, reg[5]);
      const typename A::V hi = PAIRS == 3 ? p2 : A::blend(odd, p2, A::perm2(reg[6], idx, reg[7]));
      return A::blend(A::ibit(idx, 2 * kKnotPair<T>), lo, hi);
    }
  }
};

// The padded knots the search below reads, g in [0, M - 2]: the one-knot
// moves t[g] and t[g + 1] (padded[K + 1] to padded[M + K]), the windows
// padded[g + 1 + q] for q = kFirstKnot..2K (padded[2] to padded[M + 2K - 1];
// from padded[1] for K = 0).
template <int K>
constexpr int kKnotTableFirst = std::min(K + 1, 2);
template <int K>
inline int64_t knot_table_size(int64_t M) {
  return M + std::max(K, 2 * K - 1) + 1 - kKnotTableFirst<K>;
}

template <typename T, int K, int PAIRS>
inline bool locate_rows_avx512_pairs(const T* __restrict xin, int nr, const T* __restrict t, const T* __restrict padded,
                               int64_t M, int64_t* __restrict start, T* __restrict shift,
                               T (*__restrict u)[kRows], T* __restrict xv) {
  typedef Avx512Lanes<T> A;
  typedef typename A::V V;
  typedef typename A::I I;
  typedef typename A::Mask Mask;
  constexpr int L = kLanes<T>;
  const int64_t G = M - 2 * K - 1;
  constexpr int F = kKnotTableFirst<K>;  // knot(q) = padded[q + F]
  const KnotTable<T, PAIRS> knot(padded + F, knot_table_size<K>(M));
  const T lo_s = t[0], hi_s = t[M - 1];
  // (the guess by a product: its division cost a tenth of the float64 bases;
  // the guess only starts the search, whose result does not depend on it)
  const V lo = A::set1(lo_s), hi = A::set1(hi_s), per_knot = A::set1(T(M - 1) / (hi_s - lo_s));
  const I zero = A::iset1(0), one = A::iset1(1), last = A::iset1(M - 2), kk = A::iset1(K);
  bool clamped = false;
  for (int c = 0; c < kRows; c += L) {
    const V x = A::load(xin + c);
    const Mask inside = A::ge(x, lo) & A::lt(x, hi);  // false for NaN
    // the guess, (x - lo) (M - 1) / (hi - lo), clamped to [0, M - 2]
    I gi = A::imin(A::imax(A::trunc(inside, (x - lo) * per_knot), zero), last);
    Mask open = inside;  // lanes whose g is not yet checked
    const I k1 = A::iset1(K + 1 - F);
    for (int step = 0; step < 3 && open; ++step) {
      const I at = A::iadd(gi, k1);  // t[g] = padded[g + K + 1] = knot(g + K + 1 - F)
      const Mask down = open & A::gt(knot(at), x);                         // t[g] > x: g - 1
      const Mask up = open & ~down & A::le(knot(A::iadd(at, one)), x);     // t[g+1] <= x: g + 1
      gi = A::imask_add(A::imask_sub(gi, down, one), up, one);  // stays in [0, M - 2]: x in [lo, hi)
      open = down | up;
    }
    if (open) {  // moved twice and still not home: the scalar search
      alignas(64) typename A::Index gl[L];
      A::istore(gl, gi);
      for (int l = 0; l < L; ++l)
        if ((open >> l) & 1) gl[l] = static_cast<typename A::Index>(find_interval<T>(t, M, xin[c + l]));
      gi = A::iload(gl);
    }
    // padded[g + 1 + q] (an outside row: g = K, any window, dropped)
    const I gg = A::iblend(inside, kk, gi);
    for (int q = kFirstKnot<K>; q <= 2 * K; ++q) A::store(u[q] + c, knot(A::iadd(gg, A::iset1(1 + q - F))));
    A::store(xv + c, A::blend(inside, A::load(u[K] + c), x));
    const I first = A::isub(gi, kk);
    const I s = A::imin(A::imax(first, zero), A::iset1(G - 1));
    const Mask moved = inside & A::lanes_below(nr - c) & A::ine(s, first);
    clamped |= moved != 0;
    A::store(shift + c, A::to_float(moved, A::isub(first, s)));
    A::store64(start + c, A::iblend(inside, A::iblend(A::nan(x), A::iset1(-1), A::iset1(-2)), s));
  }
  return clamped;
}
// locate_rows_avx512_pairs with the knot table's pair count of this input
// (its padded knots: M + 2K + 2 values), chosen once per block.
template <typename T, int K>
inline bool locate_rows_avx512(const T* __restrict xin, int nr, const T* __restrict t, const T* __restrict padded,
                               int64_t M, int64_t* __restrict start, T* __restrict shift,
                               T (*__restrict u)[kRows], T* __restrict xv) {
  switch (knot_pairs<T>(knot_table_size<K>(M))) {
    case 1: return locate_rows_avx512_pairs<T, K, 1>(xin, nr, t, padded, M, start, shift, u, xv);
    case 2: return locate_rows_avx512_pairs<T, K, 2>(xin, nr, t, padded, M, start, shift, u, xv);
    case 3: return locate_rows_avx512_pairs<T, K, 3>(xin, nr, t, padded, M, start, shift, u, xv);
    case 4: return locate_rows_avx512_pairs<T, K, 4>(xin, nr, t, padded, M, start, shift, u, xv);
    default: return locate_rows_avx512_pairs<T, K, 0>(xin, nr, t, padded, M, start, shift, u, xv);
  }
}
#pragma GCC diagnostic pop
#endif

#if defined(__AVX2__) && !(defined(__AVX512F__) && defined(__AVX512DQ__))
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// The row search on AVX2 (8 float or 4 double rows at a time): the same
// guess, the same one-knot moves checked against t[g] <= x < t[g+1] and the
// same fallback to find_interval as locate_rows_avx512, so the same g and
// window; the knots are gathered (AVX2 has no two-register permute), or
// for k = 3 the window's loaded by rows. The bases use it for float (1.2x
// faster bases on Zen 3 with gathers alone) and for double with k = 3. Masks
// are vectors of all-ones lanes: as wide as T's lanes (V) for the float
// compares, as the int32 indices (I) for the integer ones. Row by row, the
// search's data-dependent branches took over half of the bases' time
// (perf, Zen 3).
template <typename T>
struct Avx2Lanes;
template <>
struct Avx2Lanes<float> {  // 8 lanes, int32 indices in one register
  typedef __m256 V;
  typedef __m256i I;
  typedef int32_t Index;
  static constexpr int L = 8;
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static V set1(float v) { return _mm256_set1_ps(v); }
  static V ge(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_GE_OQ); }
  static V lt(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
  static V gt(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
  static V le(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_LE_OQ); }
  static V nan(V a) { return _mm256_cmp_ps(a, a, _CMP_UNORD_Q); }
  static V mand(V a, V b) { return _mm256_and_ps(a, b); }
  static V mandnot(V a, V b) { return _mm256_andnot_ps(b, a); }  // a & ~b
  static V mor(V a, V b) { return _mm256_or_ps(a, b); }
  static bool any(V m) { return _mm256_movemask_ps(m) != 0; }
  static int bits(V m) { return _mm256_movemask_ps(m); }
  static V blend(V m, V a, V b) { return _mm256_blendv_ps(a, b, m); }  // m ? b : a
  static I imask(V m) { return _mm256_castps_si256(m); }
  static V vmask(I m) { return _mm256_castsi256_ps(m); }
  static V gather(I idx, const float* base) { return _mm256_i32gather_ps(base, idx, 4); }
  static I trunc(V v) { return _mm256_cvttps_epi32(v); }
  static V to_float(I v) { return _mm256_cvtepi32_ps(v); }
  static I iset1(int64_t v) { return _mm256_set1_epi32(static_cast<int>(v)); }
  static I imax(I a, I b) { return _mm256_max_epi32(a, b); }
  static I imin(I a, I b) { return _mm256_min_epi32(a, b); }
  static I iadd(I a, I b) { return _mm256_add_epi32(a, b); }
  static I isub(I a, I b) { return _mm256_sub_epi32(a, b); }
  static I iand(I a, I b) { return _mm256_and_si256(a, b); }
  static I iandnot(I a, I b) { return _mm256_andnot_si256(b, a); }  // a & ~b
  static I iblend(I m, I a, I b) { return _mm256_blendv_epi8(a, b, m); }  // m ? b : a
  static I ieq(I a, I b) { return _mm256_cmpeq_epi32(a, b); }
  static bool iany(I m) { return !_mm256_testz_si256(m, m); }
  static I lanes_below(int n) { return _mm256_cmpgt_epi32(iset1(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)); }
  static void istore(int32_t* p, I v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v); }
  static I iload(const int32_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static void store64(int64_t* p, I v) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm256_cvtepi32_epi64(_mm256_castsi256_si128(v)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p + 4), _mm256_cvtepi32_epi64(_mm256_extracti128_si256(v, 1)));
  }
};
template <>
struct Avx2Lanes<double> {  // 4 lanes, int32 indices in half a register
  typedef __m256d V;
  typedef __m128i I;
  typedef int32_t Index;
  static constexpr int L = 4;
  static V load(const double* p) { return _mm256_loadu_pd(p); }
  static void store(double* p, V v) { _mm256_storeu_pd(p, v); }
  static V set1(double v) { return _mm256_set1_pd(v); }
  static V ge(V a, V b) { return _mm256_cmp_pd(a, b, _CMP_GE_OQ); }
  static V lt(V a, V b) { return _mm256_cmp_pd(a, b, _CMP_LT_OQ); }
  static V gt(V a, V b) { return _mm256_cmp_pd(a, b, _CMP_GT_OQ); }
  static V le(V a, V b) { return _mm256_cmp_pd(a, b, _CMP_LE_OQ); }
  static V nan(V a) { return _mm256_cmp_pd(a, a, _CMP_UNORD_Q); }
  static V mand(V a, V b) { return _mm256_and_pd(a, b); }
  static V mandnot(V a, V b) { return _mm256_andnot_pd(b, a); }
  static V mor(V a, V b) { return _mm256_or_pd(a, b); }
  static bool any(V m) { return _mm256_movemask_pd(m) != 0; }
  static int bits(V m) { return _mm256_movemask_pd(m); }
  static V blend(V m, V a, V b) { return _mm256_blendv_pd(a, b, m); }
  static I imask(V m) {  // the low half of each 64-bit lane (all ones or zero)
    return _mm256_castsi256_si128(
        _mm256_permutevar8x32_epi32(_mm256_castpd_si256(m), _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6)));
  }
  static V vmask(I m) { return _mm256_castsi256_pd(_mm256_cvtepi32_epi64(m)); }
  static V gather(I idx, const double* base) { return _mm256_i32gather_pd(base, idx, 8); }
  static I trunc(V v) { return _mm256_cvttpd_epi32(v); }
  static V to_float(I v) { return _mm256_cvtepi32_pd(v); }
  static I iset1(int64_t v) { return _mm_set1_epi32(static_cast<int>(v)); }
  static I imax(I a, I b) { return _mm_max_epi32(a, b); }
  static I imin(I a, I b) { return _mm_min_epi32(a, b); }
  static I iadd(I a, I b) { return _mm_add_epi32(a, b); }
  static I isub(I a, I b) { return _mm_sub_epi32(a, b); }
  static I iand(I a, I b) { return _mm_and_si128(a, b); }
  static I iandnot(I a, I b) { return _mm_andnot_si128(b, a); }
  static I iblend(I m, I a, I b) { return _mm_blendv_epi8(a, b, m); }
  static I ieq(I a, I b) { return _mm_cmpeq_epi32(a, b); }
  static bool iany(I m) { return !_mm_testz_si128(m, m); }
  static I lanes_below(int n) { return _mm_cmpgt_epi32(iset1(n), _mm_setr_epi32(0, 1, 2, 3)); }
  static void istore(int32_t* p, I v) { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), v); }
  static I iload(const int32_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }
  static void store64(int64_t* p, I v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm256_cvtepi32_epi64(v)); }
};

// The window knots u[q] = padded[gg + q], q = 1..6, of 8 float rows for K = 3:
// each row's 8 padded knots from gg on are loaded (gg <= M - 1, so they end
// at or before padded[M + 6], inside the M + 8 padded knots of K = 3) and the
// 8 x 8 tile is transposed in registers, instead of six gathers: the same
// values, bases 1.2x faster on Zen 3 (bench/RESULTS.md, "eleventh pass").
inline void window_knots_k3_avx2(const float* __restrict padded, __m256i gg, float (*__restrict u)[kRows], int c) {
  alignas(32) int32_t gl[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(gl), gg);
  __m256 r[8];
  for (int l = 0; l < 8; ++l) r[l] = _mm256_loadu_ps(padded + gl[l]);
  __m256 a[8], b[8];
  for (int l = 0; l < 8; l += 2) {  // rows l, l+1 interleaved (within 128-bit halves)
    a[l] = _mm256_unpacklo_ps(r[l], r[l + 1]);
    a[l + 1] = _mm256_unpackhi_ps(r[l], r[l + 1]);
  }
  for (int l = 0; l < 8; l += 4) {  // then pairs of pairs: b[l + m] holds knot m (and m + 4) of rows l..l+3
    b[l] = _mm256_shuffle_ps(a[l], a[l + 2], 0x44);
    b[l + 1] = _mm256_shuffle_ps(a[l], a[l + 2], 0xEE);
    b[l + 2] = _mm256_shuffle_ps(a[l + 1], a[l + 3], 0x44);
    b[l + 3] = _mm256_shuffle_ps(a[l + 1], a[l + 3], 0xEE);
  }
  // knot q < 4 from the low halves of rows 0-3 and 4-7, q >= 4 from the high halves
  for (int q = 1; q <= 6; ++q)
    _mm256_storeu_ps(u[q] + c, q < 4 ? _mm256_permute2f128_ps(b[q], b[q + 4], 0x20)
                                     : _mm256_permute2f128_ps(b[q - 4], b[q], 0x31));
}

// The same for 4 double rows: two 4-wide loads per row (knots 0-3 and 4-7)
// and two 4 x 4 transposes. With it the AVX2 search pays for double too
// (bases 1.15x faster on Zen 3 with x inside the grid, 1.4x with a third
// of x outside: bench/RESULTS.md, "eleventh pass").
inline void window_knots_k3_avx2(const double* __restrict padded, __m128i gg, double (*__restrict u)[kRows], int c) {
  alignas(16) int32_t gl[4];
  _mm_store_si128(reinterpret_cast<__m128i*>(gl), gg);
  for (int h = 0; h < 2; ++h) {  // knots 4h .. 4h + 3
    __m256d r[4];
    for (int l = 0; l < 4; ++l) r[l] = _mm256_loadu_pd(padded + gl[l] + 4 * h);
    const __m256d t0 = _mm256_unpacklo_pd(r[0], r[1]), t1 = _mm256_unpackhi_pd(r[0], r[1]);
    const __m256d t2 = _mm256_unpacklo_pd(r[2], r[3]), t3 = _mm256_unpackhi_pd(r[2], r[3]);
    const __m256d k[4] = {_mm256_permute2f128_pd(t0, t2, 0x20), _mm256_permute2f128_pd(t1, t3, 0x20),
                          _mm256_permute2f128_pd(t0, t2, 0x31), _mm256_permute2f128_pd(t1, t3, 0x31)};
    for (int m = 0; m < 4; ++m) {
      const int q = 4 * h + m;
      if (q >= 1 && q <= 6) _mm256_storeu_pd(u[q] + c, k[m]);
    }
  }
}

template <typename T, int K>
inline bool locate_rows_avx2(const T* __restrict xin, int nr, const T* __restrict t, const T* __restrict padded,
                             int64_t M, int64_t* __restrict start, T* __restrict shift, T (*__restrict u)[kRows],
                             T* __restrict xv) {
  typedef Avx2Lanes<T> A;
  typedef typename A::V V;
  typedef typename A::I I;
  constexpr int L = A::L;
  const int64_t G = M - 2 * K - 1;
  const T lo_s = t[0], hi_s = t[M - 1];
  const V lo = A::set1(lo_s), hi = A::set1(hi_s), per_knot = A::set1(T(M - 1) / (hi_s - lo_s));  // (as on AVX-512)
  const I zero = A::iset1(0), one = A::iset1(1), last = A::iset1(M - 2), kk = A::iset1(K), k1 = A::iset1(K + 1);
  bool clamped = false;
  for (int c = 0; c < kRows; c += L) {
    const V x = A::load(xin + c);
    const V inside = A::mand(A::ge(x, lo), A::lt(x, hi));  // false for NaN
    // the guess, (x - lo) (M - 1) / (hi - lo), clamped to [0, M - 2] (0 outside)
    I gi = A::imin(A::imax(A::trunc(A::mand(inside, (x - lo) * per_knot)), zero), last);
    V open = inside;  // lanes whose g is not yet checked
    const I in_i = A::imask(inside);
    bool have_window = false;
    if constexpr (K == 3) {
      // The guess's window first: it holds t[g] = u[3] and t[g+1] = u[4], so
      // the check needs no gather, and where every lane's guess is home (a
      // uniform grid) the window is already loaded. Bases 1.2-1.3x faster on
      // uniform grids, 1.03-1.07x with non-uniform ones (bench/RESULTS.md,
      // "eleventh pass").
      window_knots_k3_avx2(padded, A::iadd(A::iblend(in_i, kk, gi), one), u, c);
      open = A::mandnot(inside, A::mand(A::le(A::load(u[3] + c), x), A::lt(x, A::load(u[4] + c))));
      have_window = !A::any(open);
    }
    for (int step = 0; step < 3 && A::any(open); ++step) {
      const I at = A::iadd(gi, k1);  // t[g] = padded[g + K + 1]
      const V down = A::mand(open, A::gt(A::gather(at, padded), x));                               // t[g] > x: g - 1
      const V up = A::mandnot(A::mand(open, A::le(A::gather(A::iadd(at, one), padded), x)), down);  // t[g+1] <= x
      gi = A::isub(A::iadd(gi, A::imask(down)), A::imask(up));  // (a true mask lane is -1)
      open = A::mor(down, up);
    }
    if (A::any(open)) {  // moved twice and still not home: the scalar search
      alignas(32) typename A::Index gl[L];
      A::istore(gl, gi);
      const int ob = A::bits(open);
      for (int l = 0; l < L; ++l)
        if ((ob >> l) & 1) gl[l] = static_cast<typename A::Index>(find_interval<T>(t, M, xin[c + l]));
      gi = A::iload(gl);
    }
    const I gg = A::iadd(A::iblend(in_i, kk, gi), one);  // window of an outside row: any, dropped
    if constexpr (K == 3) {
      if (!have_window) window_knots_k3_avx2(padded, gg, u, c);
    } else
      for (int q = kFirstKnot<K>; q <= 2 * K; ++q) A::store(u[q] + c, A::gather(A::iadd(gg, A::iset1(q)), padded));
    A::store(xv + c, A::blend(inside, A::load(u[K] + c), x));
    const I first = A::isub(gi, kk);
    const I s = A::imin(A::imax(first, zero), A::iset1(G - 1));
    const I moved = A::iandnot(A::iand(in_i, A::lanes_below(nr - c)), A::ieq(s, first));
    clamped |= A::iany(moved);
    A::store(shift + c, A::mand(A::vmask(moved), A::to_float(A::isub(first, s))));
    A::store64(start + c, A::iblend(in_i, A::iblend(A::imask(A::nan(x)), A::iset1(-1), A::iset1(-2)), s));
  }
  return clamped;
}
#pragma GCC diagnostic pop
#endif

// The float64 Cox-de Boor triangle on AVX-512 (BlockBases::compute), in
// explicit FMA intrinsics, and its quotients a / b without a division: b is
// a difference of two strictly increasing finite knots (> 0, finite) and a
// is finite, so the 14-bit reciprocal estimate, two Newton steps (to about 1
// ulp of 1/b), the quotient q = a y and one correction q + (a - b q) y
// (Markstein) give the correctly rounded quotient but for rare cases (none
// of 6e8 random quotients differed from a / b). A 512-bit double division
// issues once per 16 cycles on Intel cores; these 8 operations pipeline:
// the float64 bases 1.3x faster (bench/RESULTS.md, twenty-second pass).
// Intrinsics throughout, so that no product is left for the compiler to
// contract one way in one instantiation and another in the next (a vector
// expression saved + (tr - x) tq, saved being itself a product, came out
// rounded differently in compute<true> and compute<false>). Float keeps the
// division: vdivps costs less per lane, and there the change slowed the
// kernels around the bases (GCC inlined them differently): 65536 x 8 -> 8
// 0.98x end to end, for bases 1.15x faster.
#if defined(__AVX512F__) && KANEXT_VEC_BYTES == 64
#define KANEXT_TRIANGLE_FMA 1
inline __m512d knot_quotient(__m512d a, __m512d b) {
  const __m512d one = _mm512_set1_pd(1.0);
  __m512d y = _mm512_maskz_rcp14_pd(__mmask8(0xFF), b);  // (all lanes; the unmasked form trips GCC 12 -Wuninitialized)
  y = _mm512_fmadd_pd(y, _mm512_fnmadd_pd(b, y, one), y);  // relative error 2^-28
  y = _mm512_fmadd_pd(y, _mm512_fnmadd_pd(b, y, one), y);  // 2^-56
  const __m512d q = _mm512_mul_pd(a, y);
  return _mm512_fmadd_pd(_mm512_fnmadd_pd(b, q, a), y, q);
}
#endif

// Bases of one input for a block of `nr` rows (x strided by `xs`).
template <typename T, int K>
struct BlockBases {
  static constexpr int K1 = K + 1;
  alignas(64) int64_t start[kRows];  // window start basis, -1 outside the grid, -2 for NaN
  alignas(64) T v[K1][kRows];      // values of bases start..start+K
  alignas(64) T dv[K1][kRows];     // their derivatives (if asked)
  alignas(64) T bv[kRows];         // b(x)
  alignas(64) T dbv[kRows];        // b'(x) (if asked)

  template <bool DERIV>
  void compute(const T* __restrict x, int64_t xs, int nr, const T* __restrict t, const T* __restrict padded,
               int64_t M, int64_t base) {
    alignas(64) T shift[kRows];
    alignas(64) T u[2 * K + 1][kRows];  // knots gg + 1 + q of each row's window, q = kFirstKnot..2K
    alignas(64) T xv[kRows];
    alignas(64) T xin[kRows];
    for (int r = 0; r < nr; ++r) xin[r] = x[r * xs];
    for (int r = nr; r < kRows; ++r) xin[r] = T(0);
    bool clamped;
#if defined(__AVX512F__) && defined(__AVX512DQ__)
    if (M <= (int64_t(1) << 30))  // int32 knot indices
      clamped = locate_rows_avx512<T, K>(xin, nr, t, padded, M, start, shift, u, xv);
    else
#elif defined(__AVX2__)
    // float, and double for k = 3: with every knot gathered the double
    // search (4 lanes) was 5-8% slower than row by row (bench/RESULTS.md,
    // "ninth pass"); with the window knots loaded by rows it is faster
    // ("eleventh pass"), which only k = 3 does
    if ((std::is_same<T, float>::value || K == 3) && M <= (int64_t(1) << 30))
      clamped = locate_rows_avx2<T, K>(xin, nr, t, padded, M, start, shift, u, xv);
    else
#endif
      clamped = locate_rows<T, K>(xin, nr, t, padded, M, start, shift, u, xv);
    if (base != kBaseSilu)
      for (int r = 0; r < nr; ++r) {
        bv[r] = base_value<T>(base, xin[r]);
        if (DERIV) dbv[r] = base_derivative<T>(base, xin[r]);
      }
    for (int r = nr; r < kRows; ++r) {  // keep the vector loops on full, finite lanes
      for (int q = kFirstKnot<K>; q <= 2 * K; ++q) u[q][r] = T(q);
      xv[r] = T(K) + T(0.5);
    }
    if (base == kBaseSilu) silu_block<T, DERIV>(xin, bv, dbv);
    // Cox-de Boor triangle, vectorised over the block: N[q] is basis g-j+q of order j.
    alignas(64) T N[K1][kRows];
    for (int r = 0; r < kRows; ++r) N[0][r] = T(1);
    // The last step's quotients N[q] / (t[q+K] - t[q]) are also the terms of
    // the derivative, dv[q] = K (temp[q-1] - temp[q]) (temp[-1] = temp[K] =
    // 0): computed once, they serve both.
    alignas(64) T temp[K1 > 1 ? K : 1][kRows];
#ifdef KANEXT_TRIANGLE_FMA
    if constexpr (sizeof(T) == 8) {
      for (int j = 1; j <= K; ++j)
        for (int r = 0; r < kRows; r += kLanes<T>) {
          const __m512d x = _mm512_load_pd(xv + r);
          __m512d saved = _mm512_setzero_pd();
          for (int q = 0; q < j; ++q) {
            const __m512d tl = _mm512_load_pd(u[K + 1 + q - j] + r), tr = _mm512_load_pd(u[K + 1 + q] + r);
            const __m512d tq = knot_quotient(_mm512_load_pd(N[q] + r), _mm512_sub_pd(tr, tl));
            if constexpr (DERIV) {
              if (j == K) _mm512_store_pd(temp[q] + r, tq);
            }
            _mm512_store_pd(N[q] + r, _mm512_fmadd_pd(_mm512_sub_pd(tr, x), tq, saved));
            saved = _mm512_mul_pd(_mm512_sub_pd(x, tl), tq);
          }
          _mm512_store_pd(N[j] + r, saved);
        }
    } else
#endif
    {  // the division per quotient
      for (int j = 1; j <= K; ++j) {
        alignas(64) T saved[kRows];
        for (int r = 0; r < kRows; ++r) saved[r] = T(0);
        for (int q = 0; q < j; ++q)
          for (int r = 0; r < kRows; ++r) {
            const T tl = u[K + 1 + q - j][r], tr = u[K + 1 + q][r];
            const T tq = N[q][r] / (tr - tl);
            if constexpr (DERIV) {
              if (j == K) temp[q][r] = tq;
            }
            N[q][r] = saved[r] + (tr - xv[r]) * tq;
            saved[r] = (xv[r] - tl) * tq;
          }
        for (int r = 0; r < kRows; ++r) N[j][r] = saved[r];
      }
    }
    if (DERIV && K > 0)
      for (int q = 0; q <= K; ++q)
        for (int r = 0; r < kRows; ++r) {
          const T left = q >= 1 ? temp[q - 1][r] : T(0);
          const T right = q <= K - 1 ? temp[q][r] : T(0);
          dv[q][r] = T(K) * (left - right);
        }
    if (DERIV && K == 0)
      for (int r = 0; r < kRows; ++r) dv[0][r] = T(0);
    for (int q = 0; q <= K; ++q)
      for (int r = 0; r < kRows; ++r) v[q][r] = N[q][r];
    // Near the ends of the grid the window is clamped: shift values into it
    // and drop bases that do not exist. A row whose interval g is within K
    // of an end has window start s = clamp(g - K, 0, G - 1), and its value
    // q (basis g - K + q) moves to slot q + (g - K - s); what lands outside
    // [0, K] does not exist. One lane per row, a select per (slot, shift).
    if (clamped) {
      typedef vec_t<T> V;
      for (int r = 0; r < kRows; r += kLanes<T>) {
        const V sh = vload(shift + r);
        V nv[K1], nd[K1];
        for (int p = 0; p <= K; ++p) {
          nv[p] = nd[p] = V{};
          for (int d = -K; d <= K; ++d) {  // the value in slot p came from slot p - d
            if (p - d < 0 || p - d > K) continue;
            const auto from = sh == T(d);
            nv[p] = from ? vload(v[p - d] + r) : nv[p];
            if (DERIV) nd[p] = from ? vload(dv[p - d] + r) : nd[p];
          }
        }
        for (int p = 0; p <= K; ++p) {
          vstore(v[p] + r, nv[p]);
          if (DERIV) vstore(dv[p] + r, nd[p]);
        }
      }
    }
  }
};

// Vectors per column block of grouped_axpy (R weight vectors and one
// accumulator per column vector stay in registers) and of grouped_rank1 (R
// accumulators and one gradient vector per column vector). With 32
// registers (AVX-512) as measured there. With 16 (AVX2), measured on Zen 3
// (bench/RESULTS.md, "ninth pass"): grouped_axpy keeps the 32-register
// blocks, which then spill the weights to the stack but still beat smaller
// blocks at 256-1024 outputs; the strip forward takes one 16-column strip
// per block; grouped_rank1 takes 2 vectors (1.1x faster than 4 at 256
// outputs, 1.4x faster than 8).
template <int R>
constexpr int kAxpyBlock = R <= 5 ? 4 : 3;
template <int R>
constexpr int kRank1Block = kVecRegs >= 32 ? 4 : (R <= 6 ? 2 : 1);

// y[rows[m], j] += sum_q coef[rows[m]][off + q] * w[q][j] for the cnt rows
// of a group that share the same R weight rows w: each block of JB vectors
// of the weight rows is loaded once into registers and applied to every row
// of the group. Per y element the terms are added in q order, as axpy_rows
// does, so grouping the rows changes no bit of y.
template <typename T, int R, int W, int JB = kAxpyBlock<R>>
inline void grouped_axpy(T* __restrict y, const int* rows, int cnt, const T (*coef)[W], int off,
                         const T* const* w, int64_t out) {
  constexpr int L = kLanes<T>;  // JB: vectors per column block (kAxpyBlock)
  int64_t j = 0;
  for (; j + JB * L <= out; j += JB * L) {
    vec_t<T> wv[R][JB];
    for (int q = 0; q < R; ++q)
      for (int b = 0; b < JB; ++b) wv[q][b] = vload(w[q] + j + b * L);
    for (int m = 0; m < cnt; ++m) {
      T* __restrict yr = y + rows[m] * out + j;
      const T* cr = coef[rows[m]] + off;
      for (int b = 0; b < JB; ++b) {
        vec_t<T> acc = vload(yr + b * L);
#pragma GCC unroll 7
        for (int q = 0; q < R; ++q) acc += cr[q] * wv[q][b];
        vstore(yr + b * L, acc);
      }
    }
  }
  for (; j + L <= out; j += L) {
    vec_t<T> wv[R];
    for (int q = 0; q < R; ++q) wv[q] = vload(w[q] + j);
    for (int m = 0; m < cnt; ++m) {
      T* __restrict yr = y + rows[m] * out + j;
      const T* cr = coef[rows[m]] + off;
      vec_t<T> acc = vload(yr);
      for (int q = 0; q < R; ++q) acc += cr[q] * wv[q];
      vstore(yr, acc);
    }
  }
  for (int m = 0; m < cnt && j < out; ++m) {
    T* __restrict yr = y + rows[m] * out;
    const T* cr = coef[rows[m]] + off;
    for (int64_t jj = j; jj < out; ++jj) {
      T acc = yr[jj];
      for (int q = 0; q < R; ++q) acc += cr[q] * w[q][jj];
      yr[jj] = acc;
    }
  }
}

// Whether the forward groups a block's rows by knot interval for one input:
// a group's weight rows are then read once instead of once per row, which
// pays when rows are wide and groups deep (measured, 1 thread, uniform data:
// 1.2x at out=64 and G=5, 1.5x at out=256 and G<=12, 1.13x at out=256 and
// G=20; slower below out=64 and with groups under ~2 rows at out=64).
inline bool group_rows(int64_t out, int rows, int groups, int lanes) {
  if (out >= 8 * lanes) return 8 * groups <= 5 * rows;  // groups of 1.6 rows or more
  if (out >= 4 * lanes) return 3 * groups <= rows;      // 3 rows or more
  return false;
}

// The widest layers whose rows the forward adds with a width fixed at
// compile time (axpy_rows_vectors): up to 8 vectors of outputs.
constexpr int kMaxFixedVectors = 8;
// The compile-time widths (the forward's rows, grad x's dot products) are
// built for spline order k = 3 only, pykan's default: built for all six
// orders they added 30 s to the compile of kan_linear_cpu.cpp (57 -> 86 s),
// which CI compiles twice. Other orders take the run-time widths.
template <int K>
constexpr bool kFixedWidths = K == 3;

// axpy_rows for out = V vectors, over the nr rows of a block for one input:
// y[r, :] += sum_q v[q][r] Wc[start_r + q, :] (+ bv[r] Wb) for every row of
// `bb`, the same terms in the same order as the per-row axpy_rows (so the
// same bits), with V accumulators in registers and the width, the pointers
// and the coefficients known to the compiler. Measured against axpy_rows
// (bench/cpu_kernels.cpp "forward", 1 thread, AVX-512, float32): 4096 x 64
// -> 64 at G=20 14.3 -> 9.9-10.8 ns per (n, i), 4096 x 32 -> 32 at G=5 9.3
// -> 6.3: per row, axpy_rows' pointer and coefficient arrays and its loop
// over a run-time width cost about as much as the 20 multiply-adds of a
// 64-wide row (bench/RESULTS.md, "twenty-first pass").
template <typename T, int K, int V>
inline void axpy_rows_vectors(T* __restrict y, const BlockBases<T, K>& bb, int nr, const T* __restrict wc,
                              const T* __restrict wb, bool has_base) {
  constexpr int L = kLanes<T>, K1 = K + 1, out = V * L;
  for (int r = 0; r < nr; ++r) {
    T* __restrict yr = y + r * out;
    const int64_t s = bb.start[r];
    vec_t<T> acc[V];
    if (s == -2) {  // NaN policy: the whole output row becomes NaN
      for (int j = 0; j < out; ++j) yr[j] = std::numeric_limits<T>::quiet_NaN();
      continue;
    }
    for (int v = 0; v < V; ++v) acc[v] = vload(yr + v * L);
    if (s >= 0) {
      const T* __restrict w = wc + s * out;
#pragma GCC unroll 8
      for (int q = 0; q < K1; ++q) {
        const T c = bb.v[q][r];
#pragma GCC unroll 8
        for (int v = 0; v < V; ++v) acc[v] += c * vload(w + q * out + v * L);
      }
    }
    if (has_base) {
      const T c = bb.bv[r];
#pragma GCC unroll 8
      for (int v = 0; v < V; ++v) acc[v] += c * vload(wb + v * L);
    }
    for (int v = 0; v < V; ++v) vstore(yr + v * L, acc[v]);
  }
}

// f(std::integral_constant<int, out>) if Lo <= out <= Hi (a run-time width
// turned into a compile-time one); whether it was.
template <int Lo, int Hi, typename F>
inline bool with_width(int64_t out, F&& f) {
  if constexpr (Lo > Hi) {
    return false;
  } else {
    if (out == Lo) {
      f(std::integral_constant<int, Lo>{});
      return true;
    }
    return with_width<Lo + 1, Hi>(out, std::forward<F>(f));
  }
}

// A row of O values held as one vector where they fill a 16- or 32-byte
// vector exactly (float O = 4 or 8, double O = 2 or 4; no wider than the
// target's vectors), else as an array of O scalars: the accumulators of
// axpy_rows_narrow's y row and of narrow_grad_w's grad_Wb row. The same
// multiply-add per value either way. As arrays, GCC kept grad_Wb's row in O
// scalar registers (O scalar multiply-adds per batch row) and loaded each
// forward coefficient as a vector to broadcast one lane of it (65536 x 8 ->
// 8, G=5, float32, 1 thread: the weight gradients 3.3-3.5 -> 3.0 ms, the
// forward 2.84-2.93 -> 2.61-2.72; bench/RESULTS.md, "twenty-third pass").
template <typename T, int O>
constexpr bool kNarrowRowVector = (O * sizeof(T) == 16 || O * sizeof(T) == 32) && O * sizeof(T) <= KANEXT_VEC_BYTES;
template <typename T, int O, bool VEC = kNarrowRowVector<T, O>>
struct NarrowRow {
  T v[O];
  void load(const T* p) { std::copy(p, p + O, v); }
  void store(T* p) const { std::copy(v, v + O, p); }
  void add_scaled(T c, const T* __restrict d) {
    for (int j = 0; j < O; ++j) v[j] += c * d[j];
  }
};
template <typename T, int O>
struct NarrowRow<T, O, true> {
  typedef T V __attribute__((vector_size(O * sizeof(T))));
  V v;
  static V at(const T* p) {  // an unaligned load of O values
    V r;
    std::memcpy(&r, p, sizeof(V));
    return r;
  }
  void load(const T* p) { v = at(p); }
  void store(T* p) const { std::memcpy(p, &v, sizeof(V)); }
  void add_scaled(T c, const T* __restrict d) { v += c * at(d); }
  void scaled(T c, const T* __restrict d) { v = c * at(d); }
  // sum_j v[j] d[j]: the products, then halves added in a fixed tree
  T dot(const T* __restrict d) const {
    T p[O];
    const V prod = v * at(d);
    std::memcpy(p, &prod, sizeof(V));
    for (int w = O / 2; w >= 1; w /= 2)
      for (int l = 0; l < w; ++l) p[l] += p[l + w];
    return p[0];
  }
};

// axpy_rows_vectors for layers of kMinNarrowFixed to kMaxNarrowFixed
// outputs that are not whole vectors (out = O known at compile time): the
// same terms in the same order as axpy_rows, each row's O accumulators in
// registers (GCC turns them into partial vectors), where axpy_rows walked
// them one by one with a run-time count. bench/cpu_kernels.cpp "forward",
// 1 thread, float32: 65536 x 8 -> 8 G=5 9.2 -> 5.5 ns per (n, i), 4096 x 12
// -> 12 12.2 -> 6.7 on AVX-512; 1.2-1.5x on AVX2 at 10-15 outputs. Widths
// up to 5 keep axpy_rows' own unrolled forms (as fast).
constexpr int kMinNarrowFixed = 6, kMaxNarrowFixed = 15;
template <typename T, int K, int O>
inline void axpy_rows_narrow(T* __restrict y, const BlockBases<T, K>& bb, int nr, const T* __restrict wc,
                             const T* __restrict wb, bool has_base) {
  constexpr int K1 = K + 1;
  for (int r = 0; r < nr; ++r) {
    T* __restrict yr = y + r * O;
    const int64_t s = bb.start[r];
    if (s == -2) {  // NaN policy: the whole output row becomes NaN
      for (int j = 0; j < O; ++j) yr[j] = std::numeric_limits<T>::quiet_NaN();
      continue;
    }
    NarrowRow<T, O> acc;
    acc.load(yr);
    if (s >= 0) {
      const T* __restrict w = wc + s * O;
#pragma GCC unroll 8
      for (int q = 0; q < K1; ++q) acc.add_scaled(bb.v[q][r], w + q * O);
    }
    if (has_base) acc.add_scaled(bb.bv[r], wb);
    acc.store(yr);
  }
}

// Whether the forward adds rows of `out` outputs with a compile-time width:
// 1 to kMaxFixedVectors whole vectors (axpy_rows_vectors), or
// kMinNarrowFixed to kMaxNarrowFixed outputs that are not (axpy_rows_narrow).
template <typename T, int K>
inline bool fixed_width_rows(int64_t out) {
  constexpr int L = kLanes<T>;
  if constexpr (!kFixedWidths<K>) return false;
  return out % L == 0 ? out / L <= kMaxFixedVectors : out >= kMinNarrowFixed && out <= kMaxNarrowFixed;
}

// kan_linear_forward_block for a width where fixed_width_rows holds: per
// input, the block's bases, then every row with the width known at compile
// time (the same terms in the same order as axpy_rows, so the same bits).
// Out of line, and called once per block: with the width dispatch inside
// kan_linear_forward_block's input loop, GCC 12 compiled that loop's grouped
// rows 1.2-1.3x slower (1024 x 256 -> 256 G=5), and inlined there it split
// the narrow rows' base term into scalar multiply-adds and lane shuffles
// (65536 x 8 -> 8 G=5: 2.5 ms of the forward's 4.5 at 1 thread, against 1.4
// ms out of line).
template <typename T, int K>
__attribute__((noinline)) void forward_block_fixed_width(const T* __restrict x, const T* __restrict grid,
                                                         const T* __restrict padded, int64_t in, int64_t M,
                                                         int64_t base, const T* __restrict Wb,
                                                         const T* __restrict Wc, T* __restrict y, int64_t n0,
                                                         int64_t n1, int64_t out, int64_t i0, int64_t i1) {
  constexpr int L = kLanes<T>;
  const int64_t nb = M - K - 1;
  const int nr = static_cast<int>(n1 - n0);
  const bool has_base = base != kBaseZero;
  BlockBases<T, K> bb;
  const auto walk = [&](auto row) {
    for (int64_t i = i0; i < i1; ++i) {
      bb.template compute<false>(x + n0 * in + i, in, nr, grid + i * M, padded + i * (M + 2 * K + 2), M, base);
      row(Wc + (i - i0) * nb * out, Wb + i * out);
    }
  };
  if (out % L != 0) {
    with_width<kMinNarrowFixed, kMaxNarrowFixed>(out, [&](auto O) {
      walk([&](const T* wc, const T* wb) {
        axpy_rows_narrow<T, K, decltype(O)::value>(y + n0 * out, bb, nr, wc, wb, has_base);
      });
    });
    return;
  }
  with_width<1, kMaxFixedVectors>(out / L, [&](auto V) {
    walk([&](const T* wc, const T* wb) {
      axpy_rows_vectors<T, K, decltype(V)::value>(y + n0 * out, bb, nr, wc, wb, has_base);
    });
  });
}

// Keys of the forwards' counting sorts by window start, for nb = G + k
// bases: window starts 0..G-1, and -1 (outside the grid) and -2 (NaN), as
// key = start + 2.
template <int K>
constexpr int window_keys(int64_t nb) {
  return static_cast<int>(nb - K + 2);
}

// Inputs [i0, i1) of coef (`out` columns of each: out (G+k) contiguous
// values, inputs ld (G+k) apart) prefetched into L2 a few lines per step,
// spread over `steps` steps of the work that comes before they are read: the
// row forward's next input tile, read by its fold; the fused backward's
// chunk, read by its unfold. The callers take it where coef is past what
// the last-level cache keeps (stream_grad_coef's rule: wide layers at large
// G); there those reads waited on memory while the arithmetic before them
// left it idle (bench/RESULTS.md, "thirtieth pass"). A prefetch never
// faults, and the lines stay within the inputs given.
template <typename T>
class TilePrefetch {
 public:
  TilePrefetch(const T* c, int64_t i0, int64_t i1, int64_t ld, int64_t nb, int64_t out, int64_t steps)
      : c_(c), i_(i0), i1_(i1), ld_(ld), nb_(nb), bytes_(out * nb * int64_t(sizeof(T))) {
    const int64_t lines = (i1 - i0) * ((bytes_ + 63) / 64);
    per_ = steps > 0 && lines > 0 ? static_cast<int>((lines + steps - 1) / steps) : 0;
    open();
  }
  // `times` steps' lines
  inline void step(int times = 1) {
    for (int q = 0, n = per_ * times; q < n && p_; ++q) {
      __builtin_prefetch(p_, 0, 2);
      if ((p_ += 64) >= end_) {
        ++i_;
        open();
      }
    }
  }

 private:
  void open() {
    p_ = i_ < i1_ ? reinterpret_cast<const char*>(c_ + i_ * ld_ * nb_) : nullptr;
    end_ = p_ ? p_ + bytes_ : nullptr;
  }
  const T* c_;
  int64_t i_, i1_, ld_, nb_, bytes_;
  int per_ = 0;  // lines per step
  const char *p_ = nullptr, *end_ = nullptr;  // input i_'s lines left
};

// Forward over rows [n0, n1) (n1 - n0 <= kRows): y[n, :] = sum_i b(x) Wb[i, :]
// + sum_q v_q Wc[i, start+q, :], accumulated into y for inputs [i0, i1) (the
// caller zeroes y and walks input tiles so that the tile's Wc rows stay in
// cache across row blocks). `padded` holds every input's padded knots
// (in, M + 2K + 2). `Wc` holds the tile's rows only: input i's (G+k, out)
// slice starts at Wc + (i - i0) (G+k) out (the whole tensor offset by i0, or
// a tile folded into a scratch buffer by fold_inputs). Per input, the rows
// of the block either go one by one (axpy_rows) or, for wide layers, grouped
// by knot interval (grouped_axpy); both add the same terms in the same order.
// (Adding several inputs' terms to a y row in one pass, with the row count
// known only at run time, measured 1.4-3x slower than these fixed-count
// axpys: the loop then reloads every row pointer and coefficient.) pf, where
// given, takes a step per row and input (TilePrefetch).
template <typename T, int K>
void kan_linear_forward_block(const T* __restrict x, const T* __restrict grid, const T* __restrict padded,
                              int64_t in, int64_t M, int64_t base, const T* __restrict Wb,
                              const T* __restrict Wc, T* __restrict y, int64_t n0, int64_t n1, int64_t out,
                              int64_t i0, int64_t i1, TilePrefetch<T>* pf = nullptr) {
  if constexpr (kFixedWidths<K>) {
    if (fixed_width_rows<T, K>(out)) {
      forward_block_fixed_width<T, K>(x, grid, padded, in, M, base, Wb, Wc, y, n0, n1, out, i0, i1);
      return;
    }
  }
  constexpr int K1 = K + 1;
  const int64_t nb = M - K - 1;  // G + k bases per input
  const int nr = static_cast<int>(n1 - n0);
  const bool has_base = base != kBaseZero;
  const int nkeys = window_keys<K>(nb);
  constexpr int kMaxKeys = 127;  // G <= 125: deeper grids leave groups of ~1 row
  const bool may_group = out >= 4 * kLanes<T> && nkeys <= kMaxKeys;
  int counts[kMaxKeys + 1];
  int order[kRows];
  T coef[kRows][K1 + 1];
  BlockBases<T, K> bb;
  for (int64_t i = i0; i < i1; ++i) {
    bb.template compute<false>(x + n0 * in + i, in, nr, grid + i * M, padded + i * (M + 2 * K + 2), M, base);
    const T* wb = Wb + i * out;
    const T* wc = Wc + (i - i0) * nb * out;
    if (may_group) {
      std::fill(counts, counts + nkeys + 1, 0);
      for (int r = 0; r < nr; ++r) ++counts[bb.start[r] + 3];
      int groups = 0;
      for (int c = 1; c <= nkeys; ++c) groups += counts[c] > 0;
      if (group_rows(out, nr, groups, kLanes<T>)) {
        for (int c = 1; c <= nkeys; ++c) counts[c] += counts[c - 1];
        for (int r = 0; r < nr; ++r) {
          order[counts[bb.start[r] + 2]++] = r;
          for (int q = 0; q < K1; ++q) coef[r][q] = bb.v[q][r];
          coef[r][K1] = bb.bv[r];
        }
        // counts[key] is now the end of group `key` in `order`
        T* yb = y + n0 * out;
        for (int g0 = 0, key = 0; key < nkeys; g0 = counts[key++]) {
          const int cnt = counts[key] - g0;
          if (cnt == 0) continue;
          if (pf) pf->step(cnt);
          if (key == 0) {  // NaN policy: the whole output row becomes NaN
            for (int m = g0; m < g0 + cnt; ++m)
              std::fill(yb + order[m] * out, yb + (order[m] + 1) * out, std::numeric_limits<T>::quiet_NaN());
            continue;
          }
          if (key == 1) {  // outside the grid: the base term only
            if (has_base) grouped_axpy<T, 1, K1 + 1>(yb, order + g0, cnt, coef, K1, &wb, out);
            continue;
          }
          const T* rows[K1 + 1];
          for (int q = 0; q < K1; ++q) rows[q] = wc + (key - 2 + q) * out;
          rows[K1] = wb;
          if (has_base) grouped_axpy<T, K1 + 1, K1 + 1>(yb, order + g0, cnt, coef, 0, rows, out);
          else grouped_axpy<T, K1, K1 + 1>(yb, order + g0, cnt, coef, 0, rows, out);
        }
        continue;
      }
    }
    for (int r = 0; r < nr; ++r) {
      if (pf) pf->step();
      T* __restrict yr = y + (n0 + r) * out;
      const int64_t s = bb.start[r];
      if (s == -2) {  // NaN policy: the whole output row becomes NaN
        for (int64_t j = 0; j < out; ++j) yr[j] = std::numeric_limits<T>::quiet_NaN();
        continue;
      }
      const T bv = bb.bv[r];
      if (s < 0) {
        if (has_base) axpy_rows<T, 1>(yr, &wb, &bv, out);
        continue;
      }
      T c[K1 + 1];
      const T* rows[K1 + 1];
      for (int q = 0; q < K1; ++q) {
        c[q] = bb.v[q][r];
        rows[q] = wc + (s + q) * out;
      }
      c[K1] = bv;
      rows[K1] = wb;
      if (has_base) axpy_rows<T, K1 + 1>(yr, rows, c, out);
      else axpy_rows<T, K1>(yr, rows, c, out);
    }
  }
}

// One batch row's step of a rank-1 column block (grouped_rank1,
// grouped_rank1_grad_x): dj = its JB grad_y vectors at
// d, acc[q][b] += c[q] dj[b].
template <typename T, int R, int JB>
__attribute__((always_inline)) inline void rank1_block_row(vec_t<T> (&acc)[R][JB], vec_t<T> (&dj)[JB],
                                                           const T* __restrict c, const T* __restrict d) {
  constexpr int L = kLanes<T>;
  for (int b = 0; b < JB; ++b) dj[b] = vload(d + b * L);
#pragma GCC unroll 7
  for (int q = 0; q < R; ++q) {
    const T cq = c[q];
    for (int b = 0; b < JB; ++b) acc[q][b] += cq * dj[b];
  }
}

// outs[q][j] += sum_c coef[c][off + q] * d[c][j] for q < R: the rank-1
// updates of `cnt` batch rows that share the same R output rows, accumulated
// in registers and added to memory once per group (a read-modify-write of R
// rows per group instead of per batch row). coef rows are W wide.
template <typename T, int R, int W>
inline void grouped_rank1(T* const* outs, const T (*coef)[W], int off, const T* const* d, int cnt, int64_t out) {
  constexpr int L = kLanes<T>;
  constexpr int JB = kRank1Block<R>;  // vectors per column block: R * JB accumulators stay in registers
  int64_t j = 0;
  for (; j + JB * L <= out; j += JB * L) {
    vec_t<T> acc[R][JB];
    for (int q = 0; q < R; ++q)
      for (int b = 0; b < JB; ++b) acc[q][b] = vec_t<T>{};
    for (int c = 0; c < cnt; ++c) {
      vec_t<T> dj[JB];
      rank1_block_row<T, R, JB>(acc, dj, coef[c] + off, d[c] + j);
    }
    for (int q = 0; q < R; ++q)
      for (int b = 0; b < JB; ++b) vstore(outs[q] + j + b * L, vload(outs[q] + j + b * L) + acc[q][b]);
  }
  for (; j + L <= out; j += L) {
    vec_t<T> acc[R];
    for (int q = 0; q < R; ++q) acc[q] = vec_t<T>{};
    for (int c = 0; c < cnt; ++c) {
      const vec_t<T> dj = vload(d[c] + j);
      for (int q = 0; q < R; ++q) acc[q] += coef[c][off + q] * dj;
    }
    for (int q = 0; q < R; ++q) vstore(outs[q] + j, vload(outs[q] + j) + acc[q]);
  }
  for (; j < out; ++j)
    for (int q = 0; q < R; ++q) {
      T acc = T(0);
      for (int c = 0; c < cnt; ++c) acc += coef[c][off + q] * d[c][j];
      outs[q][j] += acc;
    }
}

// grouped_rank1 of a group inside the grid (R = K1 weight rows, or K1 + 1
// with the base row) that also forms each of its rows' grad x in the same
// pass over their grad_y rows: grad_x = gy[n, :] . (sum_q dc[q] wr[q]), with
// combined_dot's operations in combined_dot's order (per pair of vectors
// comb = dc[0] wr[0] + dc[1] wr[1] + ..., av += comb d, the pair's second
// vector into aw; then hsum(av + aw)), so the result is the same bits. The
// two partial sums of each row are carried in `pairs` from one column block
// to the next. Where the batch-order grad x reads each row's k+2 weight rows
// from L2 (an input's weights past L1), the group's rows here share the
// window, and grad_y is read once for both products. out must be a
// multiple of kGradXBlock vectors; wr holds the group's K1 weight rows of Wc
// and then Wb's row; gx, its rows' grad x (gx[m xs] for the batch row m).
constexpr int kGradXBlock = 4;  // vectors per column block (pairs of them)
template <typename T, int R, int W>
inline void grouped_rank1_grad_x(T* const* outs, const T (*coef)[W], const T (*dcoef)[W], const T* const* wr,
                                 const T* const* d, const int* __restrict rows, int cnt, int64_t out,
                                 T* __restrict pairs, T* __restrict gx, int64_t xs) {
  constexpr int L = kLanes<T>, JB = kGradXBlock;
  static_assert(JB % 2 == 0, "grouped_rank1_grad_x: the column block holds pairs of vectors");
  for (int c = 0; c < 2 * cnt; ++c) vstore(pairs + c * L, vec_t<T>{});
  for (int64_t j = 0; j < out; j += JB * L) {
    vec_t<T> acc[R][JB];
    for (int q = 0; q < R; ++q)
      for (int b = 0; b < JB; ++b) acc[q][b] = vec_t<T>{};
    for (int c = 0; c < cnt; ++c) {
      vec_t<T> dj[JB];
      rank1_block_row<T, R, JB>(acc, dj, coef[c], d[c] + j);
      vec_t<T> av = vload(pairs + 2 * c * L), aw = vload(pairs + (2 * c + 1) * L);
      for (int b = 0; b < JB; b += 2) {
        vec_t<T> comb = dcoef[c][0] * vload(wr[0] + j + b * L), comc = dcoef[c][0] * vload(wr[0] + j + (b + 1) * L);
#pragma GCC unroll 7
        for (int q = 1; q < R; ++q) {
          comb += dcoef[c][q] * vload(wr[q] + j + b * L);
          comc += dcoef[c][q] * vload(wr[q] + j + (b + 1) * L);
        }
        av += comb * dj[b];
        aw += comc * dj[b + 1];
      }
      vstore(pairs + 2 * c * L, av);
      vstore(pairs + (2 * c + 1) * L, aw);
    }
    for (int q = 0; q < R; ++q)
      for (int b = 0; b < JB; ++b) vstore(outs[q] + j + b * L, vload(outs[q] + j + b * L) + acc[q][b]);
  }
  for (int c = 0; c < cnt; ++c) gx[rows[c] * xs] = hsum<T>(vload(pairs + 2 * c * L) + vload(pairs + (2 * c + 1) * L));
}

// Whether the backward with both grad x and the weight gradients forms grad
// x inside the grouped weight-gradient pass (grouped_rank1_grad_x) instead
// of row by row in batch order: on AVX-512 builds (32 registers hold the R x
// 4 accumulators, 4 grad_y vectors and the pair sums), for widths of whole
// column blocks, grad_y rows of at least KANEXT_FUSE_GX_ROW bytes and an
// input's Wc rows of at least KANEXT_FUSE_GX_KIB KiB (where the batch-order
// grad x reads its k+2 weight rows from L2). Measured (bench/RESULTS.md,
// twenty-seventh pass; forward and backward with grad x, 2 threads, old /
// new): float32 1024 x 512 -> 512 G=100 1.09x, 1024 -> 1024 G=20 1.12x,
// float64 256 -> 256 G=100 1.11x; the raw backward (1 thread) 1.06-1.30x on
// rows of 2-4 KiB from 32 KiB of weights (512 x 1024 -> 1024 G=12 1.10-1.21x,
// 1024 x 512 -> 512 G=25 1.06x). Rows of 1 KiB ran 0.95-0.96x (float64 128
// -> 128 G=100) to 1.06x (float32 4096 x 256 -> 256 G=100), and narrower
// ones or smaller weights 0.8-0.97x.
#ifndef KANEXT_FUSE_GX_ROW
#define KANEXT_FUSE_GX_ROW 2048
#endif
#ifndef KANEXT_FUSE_GX_KIB
#define KANEXT_FUSE_GX_KIB 32
#endif
template <typename T>
inline bool fuse_grad_x(int64_t nb, int64_t out) {
  constexpr int64_t kMinRow = KANEXT_FUSE_GX_ROW, kMinWeights = int64_t(KANEXT_FUSE_GX_KIB) << 10;
  const int64_t row = out * int64_t(sizeof(T));
  return kVecRegs >= 32 && out % (kGradXBlock * kLanes<T>) == 0 && row >= kMinRow && nb * row >= kMinWeights;
}

// Backward: the rows of a span of kRows-row blocks are grouped by knot
// interval, so that each group's rank-1 updates of the weight gradient are
// summed in registers and written once. The span grows with the number of
// intervals (8 blocks, 256 rows, up to G+k = 24; up to 32 blocks, 1024 rows,
// from G+k = 96 on), so that groups stay several rows deep at large G, and
// with narrower grad_y rows, up to kSpanGradBytes of them (1024 rows of 64
// float32 outputs, 512 of 128): a chunk's inputs each read the span's grad_y
// rows, which stay in L2 at that size. Measured (bench/cpu_kernels.cpp,
// 1 thread, AVX-512, the fused weight gradients): 4096 x 64 -> 64 G=20 13.8
// -> 12.3 ns per (n, i) with 1024-row spans instead of 256, 4096 x 32 -> 32
// G=20 10.2 -> 9.4; at 1024 x 256 -> 256 G=5, 1024-row spans (1 MiB of
// grad_y) were 1.24x slower (bench/RESULTS.md, "twenty-first pass"). The
// span changes how each weight gradient's sum is associated, not which
// terms it holds; it depends on the shape only, never on the thread count.
constexpr int kMinGroupBlocks = 8, kMaxGroupBlocks = 32;
constexpr int64_t kSpanGradBytes = 256 << 10;

inline int span_blocks(int64_t nb, int64_t out, int64_t elem) {
  const int64_t by_width = kSpanGradBytes / (kRows * std::max<int64_t>(1, out) * elem);
  return static_cast<int>(
      std::min<int64_t>(kMaxGroupBlocks, std::max<int64_t>({kMinGroupBlocks, nb / 3, by_width})));
}

// What one thread's backward needs per span: the bases of its blocks and the
// grouping of its rows by knot interval (heap-allocated once per task).
template <typename T, int K>
struct BackwardScratch {
  const int span;  // rows per span
  std::vector<BlockBases<T, K>> bb;
  std::vector<int> counts;  // keys start + 2 in [0, G + 1], shifted by one
  std::vector<T> coef;      // span rows of K + 2 coefficients
  std::vector<const T*> drows;
  scratch_vector<T> dense;  // dense_grad_w's block of bases, grad_y block and accumulators
  // with grad x in the grouped pass (fuse_grad_x): the sorted rows' batch
  // index and derivative coefficients, and a group's pair sums
  std::vector<int> order;
  std::vector<T> dcoef;
  scratch_vector<T> pairs;
  BackwardScratch(int64_t nb, int64_t out)
      : span(kRows * span_blocks(nb, out, sizeof(T))), bb(static_cast<size_t>(span / kRows)),
        counts(static_cast<size_t>(nb + 3)), coef(static_cast<size_t>(span * (K + 2))),
        drows(static_cast<size_t>(span)) {
    if (fuse_grad_x<T>(nb, out)) {
      order.resize(static_cast<size_t>(span));
      dcoef.resize(static_cast<size_t>(span * (K + 2)));
      pairs.resize(static_cast<size_t>(span * 2 * kLanes<T>));
    }
  }
};

// The weight gradients of one input over a span's rows for layers narrower
// than one vector (out == O, 1 <= O < kLanes<T>, known at compile time):
// rank-1 updates row by row in batch order, loops unrolled.
template <typename T, int K, int O>
__attribute__((noinline)) void narrow_grad_w(const BlockBases<T, K>* bb, const T* __restrict gy, int64_t ldg,
                                             int64_t n0, int rows, bool has_base, T* __restrict gwb,
                                             T* __restrict gwc) {
  static_assert(O >= 1 && O < kLanes<T>, "narrow_grad_w: widths below one vector");
  constexpr int K1 = K + 1;
  // grad_Wb's row is summed in registers (the same additions in the same
  // order): in memory every batch row's update of it waited on the previous
  // row's store (as one vector where it fills one: NarrowRow).
  NarrowRow<T, O> gb;
  gb.load(gwb);
  for (int r = 0; r < rows; ++r) {
    const BlockBases<T, K>& B = bb[r / kRows];
    const int rr = r % kRows;
    const int64_t s = B.start[rr];
    if (s == -2) continue;
    const T* __restrict d = gy + (n0 + r) * ldg;
    if (has_base) gb.add_scaled(B.bv[rr], d);
    if (s < 0) continue;
    T* __restrict w = gwc + s * O;
    if constexpr (kNarrowRowVector<T, O>) {
      // Rows of one 16- or 32-byte vector: each window row loaded, updated
      // and stored as that vector (the same one FMA per value). Consecutive
      // batch rows' windows overlap, so a row's loads read the previous
      // row's stores; the block form below let GCC pack two window rows
      // into a 64-byte vector, and where the window moved by an odd number
      // of rows such a load spans two earlier stores, which a Zen 4 core
      // does not forward. 65536 x 8 -> 8 float32 (1 thread): these weight
      // gradients 1.21-1.36x faster, 4 -> 4 1.45x, float64 4 -> 4 1.09-1.29x
      // (bench/RESULTS.md, "twenty-eighth pass").
      for (int q = 0; q < K1; ++q) {
        NarrowRow<T, O> a;
        a.load(w + q * O);
        a.add_scaled(B.v[q][rr], d);
        a.store(w + q * O);
      }
    } else if constexpr (O >= 6) {
      // The window's K1 x O values loaded, updated and stored as a block
      // (the same one FMA per value): GCC interleaves the row-by-row form's
      // loads and stores, 1.2-1.5x slower at widths 6-15 (bench/RESULTS.md);
      // below 6 the block form is the slower one.
      T dv[O], acc[K1][O];
      for (int j = 0; j < O; ++j) dv[j] = d[j];
      for (int q = 0; q < K1; ++q)
        for (int j = 0; j < O; ++j) acc[q][j] = w[q * O + j];
      for (int q = 0; q < K1; ++q) {
        const T c = B.v[q][rr];
        for (int j = 0; j < O; ++j) acc[q][j] += c * dv[j];
      }
      for (int q = 0; q < K1; ++q)
        for (int j = 0; j < O; ++j) w[q * O + j] = acc[q][j];
    } else {
      for (int q = 0; q < K1; ++q) {
        const T c = B.v[q][rr];
        for (int j = 0; j < O; ++j) w[q * O + j] += c * d[j];
      }
    }
  }
  gb.store(gwb);
}

// The weight gradients of layers with few bases and few outputs: per block
// of rows, the bases are spread into a dense (G+k+1, kRows) block (zero
// outside each row's window, b(x) in the last row, all zero for a NaN row)
// and grad_y is transposed to (out, kRows); then every (basis, output) pair
// is a dot product over the block's rows, vectorised over rows, summed per
// lane through the span and reduced once at its end. More multiplies than
// the windows alone ((G+k+1) against K+2 per row and output), but without
// the row-by-row read-modify-write of the same few gradient values
// (narrow_grad_w) or the sort by interval (grouped_rank1's), which cost more
// in these layers. A block with a grad_y that is not finite goes row by row,
// so that it reaches only its rows' windows, as in the other forms.
//
// Where: measured on AVX2 (Zen 3, bench/cpu_kernels.cpp, backward of N=1000
// rows; bench/RESULTS.md, "twelfth pass"): float32 with 3-5 outputs, float64
// with 4-7, G+k+1 <= 16 (2 -> 5, G=5: float32 23.2 -> 20.4 ns per (n, i),
// float64 32.4 -> 27.9; 4 -> 7, G=5, float64: 42.5 -> 33.5). Elsewhere it was
// as fast or slower (float32 with 2 or 7 outputs, G=20 with 2). AVX-512
// builds, not measured with it, keep the other forms.
template <typename T>
inline bool use_dense_grad_w(int64_t nb, int64_t out) {
#if defined(__AVX512F__)
  (void)nb;
  (void)out;
  return false;
#else
  const bool width = sizeof(T) == 4 ? (out >= 3 && out <= 5) : (out >= 4 && out <= 7);
  return width && nb + 1 <= 16;
#endif
}

template <typename T, int K>
__attribute__((noinline)) void dense_grad_w(BackwardScratch<T, K>& ws, const T* __restrict gy, int64_t ldg,
                                            int64_t n0, int rows, int64_t nb, int64_t out, bool has_base,
                                            T* __restrict gwb, T* __restrict gwc) {
  constexpr int L = kLanes<T>, K1 = K + 1, C = kRows / L;
  typedef vec_t<T> V;
  const int64_t R = nb + 1;  // dense rows: the nb bases, then b(x)
  const size_t need = static_cast<size_t>((R + out) * kRows + R * out * L);
  if (ws.dense.size() < need) ws.dense.resize(need);
  T* __restrict D = ws.dense.data();    // (R, kRows)
  T* __restrict gt = D + R * kRows;     // (out, kRows)
  T* __restrict acc = gt + out * kRows; // (R, out) vectors of per-lane sums
  std::fill(acc, acc + R * out * L, T(0));
  for (int b = 0; b * kRows < rows; ++b) {
    const int nr = std::min(kRows, rows - b * kRows);
    const BlockBases<T, K>& B = ws.bb[b];
    const T* __restrict g = gy + (n0 + b * kRows) * ldg;
    bool finite = true;
    for (int64_t j = 0; j < out; ++j) {
      for (int r = 0; r < nr; ++r) {
        const T v = g[r * ldg + j];
        finite &= v * T(0) == T(0);  // false for inf and NaN
        gt[j * kRows + r] = v;
      }
      for (int r = nr; r < kRows; ++r) gt[j * kRows + r] = T(0);
    }
    if (!finite) {
      // A grad_y that is not finite reaches only its row's window (the
      // NaN/Inf policy of the row-by-row forms): this block row by row.
      for (int r = 0; r < nr; ++r) {
        const int64_t s = B.start[r];
        if (s == -2) continue;
        const T* __restrict d = g + r * ldg;
        if (has_base)
          for (int64_t j = 0; j < out; ++j) gwb[j] += B.bv[r] * d[j];
        if (s < 0) continue;
        for (int q = 0; q < K1; ++q)
          for (int64_t j = 0; j < out; ++j) gwc[(s + q) * out + j] += B.v[q][r] * d[j];
      }
      continue;
    }
    std::fill(D, D + R * kRows, T(0));
    for (int r = 0; r < nr; ++r) {
      const int64_t s = B.start[r];
      if (s >= 0)
        for (int q = 0; q < K1; ++q) D[(s + q) * kRows + r] = B.v[q][r];
      if (has_base && s != -2) D[nb * kRows + r] = B.bv[r];
    }
    for (int64_t j = 0; j < out; ++j) {
      V gv[C];
      for (int c = 0; c < C; ++c) gv[c] = vload(gt + j * kRows + c * L);
      for (int64_t q = 0; q < R; ++q) {
        T* a = acc + (q * out + j) * L;
        V sum = vload(a);
        for (int c = 0; c < C; ++c) sum += vload(D + q * kRows + c * L) * gv[c];
        vstore(a, sum);
      }
    }
  }
  for (int64_t q = 0; q < nb; ++q)
    for (int64_t j = 0; j < out; ++j) gwc[q * out + j] += hsum<T>(vload(acc + (q * out + j) * L));
  if (has_base)
    for (int64_t j = 0; j < out; ++j) gwb[j] += hsum<T>(vload(acc + (nb * out + j) * L));
}

// gy[n, :] . (sum_q B'_q(x) rws[q] + b'(x) rws[K1]) over R = K1 (no base) or
// K1 + 1 rows: the rows combined first, then one dot product and one
// reduction per batch row (the k+2 separate dot products each ended in a
// reduction, which cost more than the products in layers of 16-256 outputs).
template <typename T, int R, int K, int V = 0>
inline T combined_dot(const T* const* rws, const BlockBases<T, K>& B, int rr, const T* __restrict d, int64_t out_) {
  constexpr int L = kLanes<T>, K1 = K + 1;
  const int64_t out = V > 0 ? V * L : out_;
  T c[R];
  for (int q = 0; q < R; ++q) c[q] = q < K1 ? B.dv[q][rr] : B.dbv[rr];
  // two accumulators (even and odd vectors): one chain of FMA latency per
  // vector pair instead of per vector
  vec_t<T> av = vec_t<T>{}, aw = vec_t<T>{};
  int64_t j = 0;
  for (; j + 2 * L <= out; j += 2 * L) {
    vec_t<T> comb = c[0] * vload(rws[0] + j), comc = c[0] * vload(rws[0] + j + L);
#pragma GCC unroll 7
    for (int q = 1; q < R; ++q) {
      comb += c[q] * vload(rws[q] + j);
      comc += c[q] * vload(rws[q] + j + L);
    }
    av += comb * vload(d + j);
    aw += comc * vload(d + j + L);
  }
  for (; j + L <= out; j += L) {
    vec_t<T> comb = c[0] * vload(rws[0] + j);
#pragma GCC unroll 7
    for (int q = 1; q < R; ++q) comb += c[q] * vload(rws[q] + j);
    av += comb * vload(d + j);
  }
  T acc = hsum<T>(av + aw);
  if constexpr (V == 0)  // (with V > 0, j == out here)
    for (; j < out; ++j) {
      T comb = c[0] * rws[0][j];
      for (int q = 1; q < R; ++q) comb += c[q] * rws[q][j];
      acc += comb * d[j];
    }
  return acc;
}

// grad_x[n, i] for the span's rows: sum_q B'_q(x) (Wc[i, s+q, :] . gy[n, :])
// + b'(x) (Wb[i, :] . gy[n, :]), written to gxc[n xs]. O > 0: the width out == O
// known at compile time (the dot products inline and unrolled, as dot_rows
// computes them for that width; rows inside the grid of a width that fills one
// vector combined first, as combined_dot does); O = 0: any width, rows inside
// the grid of layers at least one vector wide by combined_dot (the same sum,
// associated differently), with out = V vectors known at compile time where
// V > 0 (the same operations in the same order as at run time; 1 thread,
// AVX-512, float32: grad_x 1.35x faster at 4096 x 64 -> 64 G=20, the whole
// backward 1.08x at 1024 x 256 -> 256, 1.15x at 192 -> 192; bench/RESULTS.md,
// "twenty-first pass"). Up to kMaxFixedDotVectors vectors.
constexpr int kMaxFixedDotVectors = 16;
template <typename T, int K, int O, int V = 0>
inline void grad_x_rows(const BlockBases<T, K>* bb, const T* __restrict gy, int64_t ldg, int64_t n0, int rows,
                        int64_t out_, T* __restrict gxc, int64_t xs, bool has_base, const T* __restrict wb,
                        const T* __restrict wc, const int* __restrict order = nullptr) {
  constexpr int K1 = K + 1;
  const int64_t out = O > 0 ? O : V > 0 ? V * kLanes<T> : out_;
  auto dots_of = [&](auto R, const T* const* rws, const T* d, T* res) {
    if constexpr (O > 0)
      dot_rows_fixed<T, decltype(R)::value, O>(rws, d, res);
    else
      dot_rows<T, decltype(R)::value>(rws, d, out, res);
  };
  for (int m = 0; m < rows; ++m) {
    const int r = order ? order[m] : m;
    const BlockBases<T, K>& B = bb[r / kRows];
    const int rr = r % kRows;
    const int64_t n = n0 + r, s = B.start[rr];
    if (s == -2) {  // NaN input: NaN gradient, no contribution to the weights
      gxc[n * xs] = std::numeric_limits<T>::quiet_NaN();
      continue;
    }
    const T* __restrict d = gy + n * ldg;
    const T* rws[K1 + 1];
    for (int q = 0; q < K1; ++q) rws[q] = wc + ((s >= 0 ? s : 0) + q) * out;
    rws[K1] = wb;
    T acc = T(0);
    if constexpr (O == 0) {
      if (s >= 0 && out >= kLanes<T>) {
        gxc[n * xs] = has_base ? combined_dot<T, K1 + 1, K, V>(rws, B, rr, d, out)
                                  : combined_dot<T, K1, K, V>(rws, B, rr, d, out);
        continue;
      }
    }
    if constexpr (O > 0 && kNarrowRowVector<T, O>) {
      // a width that fills one vector (NarrowRow): the rows combined first,
      // then one dot product, as combined_dot (65536 x 8 -> 8 float32, G=5,
      // 1 thread: the backward with grad x 7.8 -> 5.4 ms; bench/RESULTS.md,
      // "twenty-third pass")
      if (s >= 0) {
        NarrowRow<T, O> comb;
        comb.scaled(B.dv[0][rr], rws[0]);
        for (int q = 1; q < K1; ++q) comb.add_scaled(B.dv[q][rr], rws[q]);
        if (has_base) comb.add_scaled(B.dbv[rr], wb);
        gxc[n * xs] = comb.dot(d);
        continue;
      }
    }
    if (s >= 0 && has_base) {
      T dots[K1 + 1];
      dots_of(std::integral_constant<int, K1 + 1>{}, rws, d, dots);
      acc = B.dbv[rr] * dots[K1];
      for (int q = 0; q < K1; ++q) acc += B.dv[q][rr] * dots[q];
    } else if (s >= 0) {
      T dots[K1];
      dots_of(std::integral_constant<int, K1>{}, rws, d, dots);
      for (int q = 0; q < K1; ++q) acc += B.dv[q][rr] * dots[q];
    } else if (has_base) {
      T dot;
      dots_of(std::integral_constant<int, 1>{}, &rws[K1], d, &dot);
      acc = B.dbv[rr] * dot;
    }
    gxc[n * xs] = acc;
  }
}

// Backward of one input i over the batch rows [n0, n0 + rows) (rows <=
// ws.span): writes grad_x[n, i] (need_x) and adds the rows' terms to input i's
// weight gradients (need_w). grad_y[n, :] is gy + n ldg (ldg = 0: every row
// the same, as grad_y of y.sum() is). Input i's x[n, i] is xc[n xs] and its
// grad_x[n, i] goes to gxc[n xs] (InputColumns). wb, wc: input i's rows of Wb (out) and Wc
// (G+k, out); gwb, gwc: the same of the gradients. The rows of the span are
// grouped by knot interval (stable order), and each group's rank-1 updates
// are summed in registers; layers narrower than one vector take the rows one
// by one instead (narrow_grad_w, called once per span, out of line). pf,
// where given, takes a step per row of the grouped walk (TilePrefetch).
template <typename T, int K>
void backward_span(BackwardScratch<T, K>& ws, const T* __restrict gy, int64_t ldg, const T* __restrict xc,
                   T* __restrict gxc, int64_t xs, const T* __restrict t, const T* __restrict padded, int64_t n0,
                   int rows, int64_t M, int64_t base, const T* __restrict wb, const T* __restrict wc, int64_t out,
                   bool need_x, bool need_w, T* __restrict gwb, T* __restrict gwc,
                   TilePrefetch<T>* pf = nullptr) {
  constexpr int K1 = K + 1;
  const bool has_base = base != kBaseZero;
  BlockBases<T, K>* bb = ws.bb.data();
  // the derivatives only for grad_x (the weight gradients read v and bv, the
  // same bits either way): a first layer's input, the data, needs none
  for (int b = 0; b * kRows < rows; ++b) {
    const int nr = std::min(kRows, rows - b * kRows);
    const T* xb = xc + (n0 + b * kRows) * xs;
    if (need_x) bb[b].template compute<true>(xb, xs, nr, t, padded, M, base);
    else bb[b].template compute<false>(xb, xs, nr, t, padded, M, base);
  }
  auto start_of = [&](int r) { return bb[r / kRows].start[r % kRows]; };
  const int64_t nb = M - K - 1;
  // grad x with the weight gradients in one grouped pass (fuse_grad_x), or
  // row by row in batch order here
  const bool fused_x = need_x && need_w && fuse_grad_x<T>(nb, out);
  if (need_x && !fused_x) {
    switch (out) {  // the science models' widths get their loops unrolled
      case 1: grad_x_rows<T, K, 1>(bb, gy, ldg, n0, rows, out, gxc, xs, has_base, wb, wc); break;
      case 2: grad_x_rows<T, K, 2>(bb, gy, ldg, n0, rows, out, gxc, xs, has_base, wb, wc); break;
      case 3: grad_x_rows<T, K, 3>(bb, gy, ldg, n0, rows, out, gxc, xs, has_base, wb, wc); break;
      case 4: grad_x_rows<T, K, 4>(bb, gy, ldg, n0, rows, out, gxc, xs, has_base, wb, wc); break;
      case 5: grad_x_rows<T, K, 5>(bb, gy, ldg, n0, rows, out, gxc, xs, has_base, wb, wc); break;
      default:
        // narrower than one vector: the dot products unrolled at compile time
        // (the same terms as dot_rows' run-time loop, which GCC compiles to a
        // different rounding in about half the values; 1.4-1.6x faster grad
        // x at 8-15 outputs, bench/RESULTS.md, "twenty-first pass")
        if constexpr (kFixedWidths<K>) {
          if (out < kLanes<T>) {
            with_width<6, kLanes<T> - 1>(out, [&](auto O) {
              grad_x_rows<T, K, decltype(O)::value>(bb, gy, ldg, n0, rows, out, gxc, xs, has_base, wb, wc);
            });
            break;
          }
          if (out % kLanes<T> == 0 && out / kLanes<T> <= kMaxFixedDotVectors) {
            with_width<1, kMaxFixedDotVectors>(out / kLanes<T>, [&](auto V) {
              grad_x_rows<T, K, 0, decltype(V)::value>(bb, gy, ldg, n0, rows, out, gxc, xs, has_base, wb, wc);
            });
            break;
          }
        }
        grad_x_rows<T, K, 0>(bb, gy, ldg, n0, rows, out, gxc, xs, has_base, wb, wc);
    }
  }
  if (!need_w) return;
  if (use_dense_grad_w<T>(nb, out)) {
    dense_grad_w<T, K>(ws, gy, ldg, n0, rows, nb, out, has_base, gwb, gwc);
    return;
  }
  if (out < kLanes<T>) {
    // Narrow layers (out below one vector): rank-1 updates row by row in
    // batch order. Sorting and grouping the rows cost more than they save
    // here (2 -> 5 layer, N=1000: 2.3x faster weight gradients; 8 outputs:
    // 4x). Every width below one vector gets its loops at compile time, and
    // grad_Wb's row summed in registers (at run time, with 8 outputs, GCC's
    // code for the loop moved by 1.6x with unrelated changes elsewhere).
    with_width<1, kLanes<T> - 1>(out, [&](auto O) {  // (every width here: 1 <= out < one vector)
      narrow_grad_w<T, K, decltype(O)::value>(bb, gy, ldg, n0, rows, has_base, gwb, gwc);
    });
    return;
  }
  // Counting sort (stable) of the span's rows by window start, -2 (NaN:
  // skipped) and -1 (outside the grid: base term only) first.
  // Each row goes straight to its place in the sorted order with its grad_y
  // row and coefficients (read in row order from the blocks' bases); then
  // group key (= start + 2) holds the rows [counts[key - 1], counts[key]).
  // With fused_x also its index in the span and its derivative coefficients.
  std::vector<int>& counts = ws.counts;
  T(*coef)[K1 + 1] = reinterpret_cast<T(*)[K1 + 1]>(ws.coef.data());
  const T** drows = ws.drows.data();
  T(*dcoef)[K1 + 1] = reinterpret_cast<T(*)[K1 + 1]>(ws.dcoef.data());
  std::fill(counts.begin(), counts.end(), 0);
  for (int r = 0; r < rows; ++r) ++counts[start_of(r) + 3];
  for (size_t c = 1; c < counts.size(); ++c) counts[c] += counts[c - 1];
  for (int b = 0; b * kRows < rows; ++b) {
    const BlockBases<T, K>& B = bb[b];
    const int nr = std::min(kRows, rows - b * kRows);
    for (int rr = 0; rr < nr; ++rr) {
      const int pos = counts[B.start[rr] + 2]++;
      drows[pos] = gy + (n0 + b * kRows + rr) * ldg;
      for (int q = 0; q < K1; ++q) coef[pos][q] = B.v[q][rr];
      coef[pos][K1] = B.bv[rr];
      if (fused_x) {
        ws.order[pos] = b * kRows + rr;
        for (int q = 0; q < K1; ++q) dcoef[pos][q] = B.dv[q][rr];
        dcoef[pos][K1] = B.dbv[rr];
      }
    }
  }
  // fused_x: the rows outside the grid and the NaN rows (keys 1 and 0,
  // sorted first) take grad x row by row; the groups inside the grid, below
  if (fused_x && counts[1] > 0)
    grad_x_rows<T, K, 0>(bb, gy, ldg, n0, counts[1], out, gxc, xs, has_base, wb, wc, ws.order.data());
  for (int key = 1; key + 1 < static_cast<int>(counts.size()); ++key) {  // (key 0: NaN rows, skipped)
    const int g0 = counts[key - 1], cnt = counts[key] - g0;
    if (cnt == 0) continue;
    if (pf) pf->step(cnt);
    const int64_t s = key - 2;
    T* outs[K1 + 1];
    for (int q = 0; q < K1; ++q) outs[q] = s >= 0 ? gwc + (s + q) * out : gwc;  // (unused where s = -1)
    outs[K1] = gwb;
    if (s >= 0 && fused_x) {
      const T* wr[K1 + 1];
      for (int q = 0; q < K1; ++q) wr[q] = wc + (s + q) * out;
      wr[K1] = wb;
      T* gx0 = gxc + n0 * xs;
      if (has_base)
        grouped_rank1_grad_x<T, K1 + 1, K1 + 1>(outs, coef + g0, dcoef + g0, wr, drows + g0, ws.order.data() + g0,
                                                cnt, out, ws.pairs.data(), gx0, xs);
      else
        grouped_rank1_grad_x<T, K1, K1 + 1>(outs, coef + g0, dcoef + g0, wr, drows + g0, ws.order.data() + g0, cnt,
                                            out, ws.pairs.data(), gx0, xs);
    } else if (s >= 0 && has_base) {
      grouped_rank1<T, K1 + 1, K1 + 1>(outs, coef + g0, 0, drows + g0, cnt, out);
    } else if (s >= 0) {
      grouped_rank1<T, K1, K1 + 1>(outs, coef + g0, 0, drows + g0, cnt, out);
    } else if (has_base) {
      grouped_rank1<T, 1, K1 + 1>(&outs[K1], coef + g0, K1, drows + g0, cnt, out);
    }
  }
}

// Where the backward reads input i's column of x and writes its column of
// grad_x. A task walks its inputs in chunks (backward_chunk), each over every
// span of the batch. Where a chunk has fewer inputs than a 64-byte line of x
// holds, each line of x (and of grad_x) was fetched once per chunk instead
// of once: float32 at 256 outputs has fewer than 16 inputs per chunk from
// G+k = 12 and one from G+k = 96, and the lines then came from L3. Such
// tasks go by groups of a line's inputs: the group's columns of x are copied
// into a buffer (one contiguous column per input), grad_x's columns are
// written there and copied back at the group's end. The values are the same
// either way. Measured (bench/RESULTS.md, "nineteenth pass"; 1 thread): the
// fused backward 1.04-1.15x faster at 1024 x 256 -> 256 G=50-100 and at
// 1024-wide layers, unchanged where chunks hold 16 inputs or more. The
// buffer (a line's columns of x, and of grad_x: 64 or 128 bytes per batch
// row) is per task, so batches whose buffer would pass kMaxBytes go strided
// as before: a many-core machine would otherwise hold several times x.
template <typename T>
class InputColumns {
 public:
  static constexpr int64_t kGroup = 64 / int64_t(sizeof(T));  // inputs per 64-byte line of x
  static constexpr int64_t kMaxBytes = int64_t(8) << 20;     // 65536 rows with grad_x
  // For a task's inputs [i0, i1) walked in chunks of `chunk` inputs.
  InputColumns(const T* x, T* gx, int64_t N, int64_t in, bool need_x, int64_t chunk, int64_t i0, int64_t i1)
      : x_(x), gx_(gx), N_(N), in_(in), pitch_((N + kGroup - 1) / kGroup * kGroup + kGroup),
        i0_(i0), i1_(i1), chunk_(chunk),
        copy_(chunk < std::min(kGroup, i1 - i0) && (need_x ? 128 : 64) * N <= kMaxBytes), need_x_(need_x),
        buf_(copy_ ? uninit_scratch<T>(static_cast<size_t>((need_x ? 2 : 1) * kGroup * pitch_)) : nullptr) {}
  // f(c0, c1) for every chunk in order, each group's columns copied in
  // before its chunks and grad x's copied back after them.
  template <typename F>
  void walk(F&& f) {
    for (int64_t g0 = i0_; g0 < i1_;) {
      const int64_t g1 = copy_ ? std::min(i1_, (g0 / kGroup + 1) * kGroup) : i1_;
      load(g0, g1);
      for (int64_t c0 = g0; c0 < g1; c0 += chunk_) f(c0, std::min(c0 + chunk_, g1));
      store();
      g0 = g1;
    }
  }
  // Input i's x[n, i] at x(i)[n stride()], its grad_x[n, i] at gx(i)[n stride()].
  const T* x(int64_t i) const { return copy_ ? buf_.get() + (i - g0_) * pitch_ : x_ + i; }
  T* gx(int64_t i) const { return copy_ && need_x_ ? buf_.get() + (kGroup + i - g0_) * pitch_ : gx_ + i; }
  int64_t stride() const { return copy_ ? 1 : in_; }

 private:
  void load(int64_t g0, int64_t g1) {
    g0_ = g0;
    g1_ = g1;
    if (!copy_) return;
    T* __restrict xt = buf_.get();
    for (int64_t n = 0; n < N_; ++n)
      for (int64_t c = 0; c < g1 - g0; ++c) xt[c * pitch_ + n] = x_[n * in_ + g0 + c];
  }
  void store() const {
    if (!copy_ || !need_x_) return;
    const T* __restrict gt = buf_.get() + kGroup * pitch_;
    for (int64_t n = 0; n < N_; ++n)
      for (int64_t c = 0; c < g1_ - g0_; ++c) gx_[n * in_ + g0_ + c] = gt[c * pitch_ + n];
  }

  const T* x_;
  T* gx_;
  int64_t N_, in_, pitch_;  // pitch: a column's values, padded so that columns start in different L1 sets
  int64_t i0_, i1_, chunk_;
  bool copy_, need_x_;
  scratch_ptr<T> buf_;
  int64_t g0_ = 0, g1_ = 0;
};

// Inputs per chunk of the backward: the chunk's gradient rows (and, fused,
// its folded weights) stay in L2 (~192 KiB) while each 256-row span of
// grad_y is read once for the whole chunk.
template <typename T>
inline int64_t backward_chunk(int64_t rows_per_input, int64_t out) {
  return std::max<int64_t>(1, (192 << 10) / std::max<int64_t>(1, rows_per_input * out * int64_t(sizeof(T))));
}

// Backward for inputs [i0, i1): the caller gives each input to exactly one
// thread, which owns grad_x[:, i], grad_Wb[i] and grad_Wc[i] and walks the
// batch in order, so there are no atomics and the result is deterministic
// (and independent of the thread count). Each chunk of inputs zeroes its
// slices of grad_Wb / grad_Wc (need_w) just before it fills them, and every
// grad_x[:, i] is written (need_x). grad_y's rows are ldg apart (-1: out; 0:
// one row for the whole batch).
template <typename T, int K>
void kan_linear_backward_inputs(const T* __restrict gy, const T* __restrict x, const T* __restrict grid,
                                const T* __restrict padded, int64_t N, int64_t in, int64_t M, int64_t base,
                                const T* __restrict Wb, const T* __restrict Wc, int64_t out, bool need_x,
                                bool need_w, T* __restrict gx, T* __restrict gWb, T* __restrict gWc, int64_t i0,
                                int64_t i1, int64_t ldg = -1) {
  const int64_t nb = M - K - 1, P = M + 2 * K + 2;
  if (ldg < 0) ldg = out;
  BackwardScratch<T, K> ws(nb, out);
  const int span = ws.span;
  const int64_t chunk = backward_chunk<T>(nb + 1, out);
  InputColumns<T> cols(x, gx, N, in, need_x, chunk, i0, i1);
  cols.walk([&](int64_t c0, int64_t c1) {
    if (need_w) {
      std::fill(gWb + c0 * out, gWb + c1 * out, T(0));
      std::fill(gWc + c0 * nb * out, gWc + c1 * nb * out, T(0));
    }
    for (int64_t n0 = 0; n0 < N; n0 += span) {
      const int rows = static_cast<int>(std::min<int64_t>(span, N - n0));
      for (int64_t i = c0; i < c1; ++i)
        backward_span<T, K>(ws, gy, ldg, cols.x(i), cols.gx(i), cols.stride(), grid + i * M, padded + i * P, n0, rows,
                            M, base, Wb + i * out, Wc + i * nb * out, out, need_x, need_w, gWb + i * out,
                            gWc + i * nb * out);
    }
  });
}

// Both folds below exchange the (out, G+k) and (G+k, out) layouts of one
// input, in column blocks of kFoldCols outputs: the block's (kFoldCols, G+k)
// slice of coef is transposed through a small buffer in L1, so that every
// product is a vector operation over outputs with contiguous loads and
// stores (a strided loop costs a load per element and, for the sums over g,
// an FMA latency per element).
constexpr int64_t kFoldCols = 16;

// Transpose of an L x L tile held in L vectors (L = kLanes<T>): r[i][l]
// becomes r[l][i]. Each of the log2(L) stages swaps one bit of the row index
// with the same bit of the lane index (one two-source permute per vector).
#ifdef KANEXT_VECTOR_SHUFFLE
// The two-source permute indices of each stage (bit b = 2^s): compile-time
// tables, loaded as vectors (built lane by lane inside the tile loop, they
// cost more than the permutes themselves).
template <typename T>
struct TransposeIndices {
  typename IndexVecOf<T>::elem lo[4][kLanes<T>], hi[4][kLanes<T>];
};
template <typename T>
constexpr TransposeIndices<T> make_transpose_indices() {
  constexpr int L = kLanes<T>;
  TransposeIndices<T> t{};
  for (int s = 0, b = 1; b < L; ++s, b *= 2)
    for (int l = 0; l < L; ++l) {
      t.lo[s][l] = (l & b) ? L + l - b : l;
      t.hi[s][l] = (l & b) ? L + l : l + b;
    }
  return t;
}
template <typename T>
inline constexpr TransposeIndices<T> kTransposeIndices = make_transpose_indices<T>();

template <typename T>
inline void transpose_tile(vec_t<T>* r) {
  constexpr int L = kLanes<T>;
  using I = typename IndexVecOf<T>::type;
#pragma GCC unroll 4
  for (int s = 0, b = 1; b < L; ++s, b *= 2) {
    I lo, hi;
    __builtin_memcpy(&lo, kTransposeIndices<T>.lo[s], sizeof lo);
    __builtin_memcpy(&hi, kTransposeIndices<T>.hi[s], sizeof hi);
#pragma GCC unroll 16
    for (int i = 0; i < L; ++i)
      if (!(i & b)) {
        const vec_t<T> a = r[i], c = r[i + b];
        r[i] = __builtin_shuffle(a, c, lo);
        r[i + b] = __builtin_shuffle(a, c, hi);
      }
  }
}
#endif

// dst[g][j] = src[j * ld + g] for j < cols, g < nb (dst rows kFoldCols wide,
// columns past cols zeroed). Full blocks of kFoldCols columns go by L x L
// tiles through registers, the last g tile with masked loads / stores where
// AVX-512 has them; the rest element by element.
#if defined(KANEXT_VECTOR_SHUFFLE) && defined(__AVX512F__) && defined(__AVX512DQ__)
#define KANEXT_MASKED_TRANSPOSE 1
#endif
template <typename T>
inline void load_block_transposed(const T* __restrict src, int64_t nb, int64_t cols, T (*__restrict dst)[kFoldCols],
                                  int64_t ld) {
  int64_t g0 = 0;
#ifdef KANEXT_VECTOR_SHUFFLE
  constexpr int L = kLanes<T>;
  if (cols == kFoldCols) {
    for (; g0 + L <= nb; g0 += L)
      for (int64_t j0 = 0; j0 < kFoldCols; j0 += L) {
        vec_t<T> r[L];
        for (int l = 0; l < L; ++l) r[l] = vload(src + (j0 + l) * ld + g0);
        transpose_tile<T>(r);
        for (int l = 0; l < L; ++l) vstore(&dst[g0 + l][j0], r[l]);
      }
#ifdef KANEXT_MASKED_TRANSPOSE
    if (g0 < nb) {  // the last nb - g0 < L rows of dst
      const int rem = static_cast<int>(nb - g0);
      for (int64_t j0 = 0; j0 < kFoldCols; j0 += L) {
        vec_t<T> r[L];
        for (int l = 0; l < L; ++l) r[l] = Avx512Lanes<T>::load_n(src + (j0 + l) * ld + g0, rem);
        transpose_tile<T>(r);
        for (int l = 0; l < rem; ++l) vstore(&dst[g0 + l][j0], r[l]);
      }
      g0 = nb;
    }
#endif
  }
#endif
  for (int64_t j = 0; j < cols; ++j)
    for (int64_t g = g0; g < nb; ++g) dst[g][j] = src[j * ld + g];
  for (int64_t j = cols; j < kFoldCols; ++j)  // keep the vector loops on defined values
    for (int64_t g = 0; g < nb; ++g) dst[g][j] = T(0);
}

// The inverse: dst[j * ld + g] = src[g][j] for j < cols, g < nb.
template <typename T>
inline void store_block_transposed(const T (*__restrict src)[kFoldCols], int64_t nb, int64_t cols, T* __restrict dst,
                                   int64_t ld) {
  int64_t g0 = 0;
#ifdef KANEXT_VECTOR_SHUFFLE
  constexpr int L = kLanes<T>;
  if (cols == kFoldCols) {
    for (; g0 + L <= nb; g0 += L)
      for (int64_t j0 = 0; j0 < kFoldCols; j0 += L) {
        vec_t<T> r[L];
        for (int l = 0; l < L; ++l) r[l] = vload(&src[g0 + l][j0]);
        transpose_tile<T>(r);
        for (int l = 0; l < L; ++l) vstore(dst + (j0 + l) * ld + g0, r[l]);
      }
#ifdef KANEXT_MASKED_TRANSPOSE
    if (g0 < nb) {  // the last nb - g0 < L columns of dst
      const int rem = static_cast<int>(nb - g0);
      for (int64_t j0 = 0; j0 < kFoldCols; j0 += L) {
        vec_t<T> r[L];
        for (int l = 0; l < L; ++l) r[l] = l < rem ? vload(&src[g0 + l][j0]) : vec_t<T>{};
        transpose_tile<T>(r);
        for (int l = 0; l < L; ++l) Avx512Lanes<T>::store_n(dst + (j0 + l) * ld + g0, r[l], rem);
      }
      g0 = nb;
    }
#endif
  }
#endif
  for (int64_t j = 0; j < cols; ++j)
    for (int64_t g = g0; g < nb; ++g) dst[j * ld + g] = src[g][j];
}

// Whether fold_inputs / unfold_gradients walk an input by L x L tiles, g
// outermost (below), instead of by kFoldCols-column blocks. By tiles, one
// g tile reads the same L values of every coef row: the rows' cache lines
// are fetched once and stay in L1 for the next g tile, and the folded rows
// are written in order. Measured on AVX2 (bench/RESULTS.md, "tenth pass";
// 1 thread): the fold 1.3-2.4x faster than by blocks, the unfold 0.95-1.8x,
// with the next input's coef prefetched (below). AVX-512 builds keep the
// blocks, whose last g tile uses masked loads (the tiles' g tail is scalar,
// L = 16 there), except for the fold of inputs with at least 2 L basis rows
// (fold_by_tiles).
#if defined(KANEXT_VECTOR_SHUFFLE) && !defined(KANEXT_MASKED_TRANSPOSE)
constexpr bool kFoldByTiles = true;
#else
constexpr bool kFoldByTiles = false;
#endif
#ifdef KANEXT_VECTOR_SHUFFLE
constexpr bool kFoldTilesBuilt = true;  // fold_inputs_tiles has its vector body
#else
constexpr bool kFoldTilesBuilt = false;
#endif

// Whether fold_inputs walks by tiles: always where kFoldByTiles; in AVX-512
// builds when nb >= 2 L (the scalar g tail then at most a third of the
// rows). Measured on an AVX-512 Xeon (bench/RESULTS.md, "fifteenth pass";
// 1 thread, one input per call, 1024 x 256 -> 256), blocks -> tiles:
// float32 G = 20 (nb 23 < 32) 0.35 -> 0.44 ms (blocks kept), G = 40 0.99 ->
// 0.85, G = 100 3.1-3.4 -> 1.96; float64 G = 20 0.90 -> 0.85, G = 100
// 8.45 -> 4.92. The same values either way (one product per element). The
// unfold does not walk by tiles there (0.95-1.6x slower than the blocks at G
// <= 20, a tie at G = 100) but by blocks or rows (unfold_by_rows).
template <typename T>
inline bool fold_by_tiles(int64_t nb) {
  return kFoldByTiles || (kFoldTilesBuilt && nb >= 2 * kLanes<T>);
}

// Whether unfold_gradients takes unfold_gradients_rows (AVX-512 builds):
// float64 always, float32 from nb >= KANEXT_UNFOLD_ROWS_MIN basis rows; the
// blocks elsewhere. Measured (bench/RESULTS.md, "twenty-fifth pass").
#ifndef KANEXT_UNFOLD_ROWS_MIN
#define KANEXT_UNFOLD_ROWS_MIN 48
#endif
template <typename T>
inline bool unfold_by_rows(int64_t nb) {
  return sizeof(T) == 8 || nb >= KANEXT_UNFOLD_ROWS_MIN;
}

// Values of T per 64-byte line, the step of the unfold's prefetches.
template <typename T>
constexpr int64_t kPrefetchStep = 64 / sizeof(T);

// While input i's coef rows [c, c + n) are transposed, the next input's are
// prefetched a few lines per tile (the hardware does not follow out rows read
// L values at a time): kFoldPrefetch<T> lines cover the L x L tile's share.
template <typename T>
constexpr int kFoldPrefetch = int(kLanes<T> * kLanes<T> * sizeof(T) / 64) + 2;
struct FoldPrefetch {
  const char *p, *end;
  FoldPrefetch(const void* next, int64_t bytes)
      : p(static_cast<const char*>(next)), end(static_cast<const char*>(next) + bytes) {}
  template <int LINES>
  inline void step() {
    for (int q = 0; q < LINES && p < end; ++q, p += 64) __builtin_prefetch(p, 0, 2);
  }
};

// fold_inputs by tiles (fold_by_tiles): same products, same values.
template <typename T>
void fold_inputs_tiles(const T* __restrict c, const T* __restrict s, T* __restrict w, int64_t i0, int64_t i1,
                       int64_t out, int64_t nb, int64_t ld, int64_t prefetch_end) {
#ifdef KANEXT_VECTOR_SHUFFLE
  constexpr int L = kLanes<T>;
  const int64_t jv = out / L * L;  // columns in whole tiles
  for (int64_t i = i0; i < i1; ++i) {
    T* __restrict wi = w + (i - i0) * nb * out;
    const T* ci = c + i * ld * nb;
    const T* si = s + i * ld;
    FoldPrefetch pf(ci + ld * nb, i + 1 < prefetch_end ? out * nb * int64_t(sizeof(T)) : 0);
    int64_t g0 = 0;
    for (; g0 + L <= nb; g0 += L)
      for (int64_t j0 = 0; j0 < jv; j0 += L) {
        pf.step<kFoldPrefetch<T>>();
        vec_t<T> r[L];
        for (int l = 0; l < L; ++l) r[l] = vload(ci + (j0 + l) * nb + g0);
        transpose_tile<T>(r);
        const vec_t<T> sv = vload(si + j0);
        for (int l = 0; l < L; ++l) vstore(wi + (g0 + l) * out + j0, r[l] * sv);
      }
    for (int64_t g = g0; g < nb; ++g)
      for (int64_t j = 0; j < jv; ++j) wi[g * out + j] = ci[j * nb + g] * si[j];
    for (int64_t j = jv; j < out; ++j)
      for (int64_t g = 0; g < nb; ++g) wi[g * out + j] = ci[j * nb + g] * si[j];
  }
#else
  (void)c, (void)s, (void)w, (void)i0, (void)i1, (void)out, (void)nb, (void)ld, (void)prefetch_end;
#endif
}

// One kFoldCols-column block of a fold by blocks: dst[g ld_dst + j] =
// ct[g][j] sv[j] (g < nb, j < kFoldCols), while the next block's coef
// (c[next ..], never past c[last]) is prefetched a 64-byte line per step:
// the hardware does not follow coef's rows read 16 values at a time. From
// beyond L2 (bench/RESULTS.md, twenty-fifth pass; 1 thread): one input per
// call 1.1-1.3x faster, the strip forward at G=100 1.03-1.05x. Into L2, not
// L1 (as the unfold's, unfold_gradients_rows): on a Zen 4 core (32 KiB L1d)
// the strip forward at G=100 ran 1.00-1.07x faster with it, a tie at G <= 20
// (twenty-eighth pass).
template <typename T>
inline void scale_block_prefetching(const T (*__restrict ct)[kFoldCols], const T* __restrict sv, int64_t nb,
                                    T* __restrict dst, int64_t ld_dst, const T* c, int64_t next, int64_t last) {
  for (int64_t g = 0; g < nb; ++g) {
    for (int64_t b = 0; b < kFoldCols; b += kPrefetchStep<T>)
      __builtin_prefetch(c + std::min(next + g * kFoldCols + b, last), 0, 2);
    for (int64_t j = 0; j < kFoldCols; ++j) dst[g * ld_dst + j] = ct[g][j] * sv[j];
  }
}

// The fold of pykan's parameters for inputs [i0, i1) into the kernel layout:
// w[((i - i0)(G+k) + g) out + j] = coef[i, j, g] scale[i, j], with coef a
// contiguous (in, ld, G+k) and scale an (in, ld) array of which the first
// `out` columns are folded (ld = out unless given: a column slice starts at
// c + o0 (G+k), s + o0). Both walks prefetch coef ahead, never past input
// prefetch_end - 1's (default i1): by tiles the next input while one is
// folded, by blocks the next column block (scale_block_prefetching). A
// caller that folds one input per call passes its last input + 1.
template <typename T>
void fold_inputs(const T* __restrict c, const T* __restrict s, T* __restrict w, int64_t i0, int64_t i1, int64_t out,
                 int64_t nb, int64_t ld = -1, int64_t prefetch_end = -1) {
  if (ld < 0) ld = out;
  if (prefetch_end < 0) prefetch_end = i1;
  if (fold_by_tiles<T>(nb)) {
    fold_inputs_tiles(c, s, w, i0, i1, out, nb, ld, prefetch_end);
    return;
  }
  scratch_vector<T> buf(static_cast<size_t>(nb * kFoldCols));
  T(*ct)[kFoldCols] = reinterpret_cast<T(*)[kFoldCols]>(buf.data());
  const int64_t pf_end = (prefetch_end * ld - ld + out) * nb - 1;  // (the last folded value)
  for (int64_t i = i0; i < i1; ++i) {
    T* wi = w + (i - i0) * nb * out;
    for (int64_t j0 = 0; j0 < out; j0 += kFoldCols) {
      const int64_t cols = std::min(kFoldCols, out - j0);
      const T* sj = s + i * ld + j0;
      load_block_transposed(c + (i * ld + j0) * nb, nb, cols, ct, nb);
      if (cols == kFoldCols) {
        T sv[kFoldCols];
        for (int64_t j = 0; j < kFoldCols; ++j) sv[j] = sj[j];
        scale_block_prefetching(ct, sv, nb, wi + j0, out, c, (i * ld + j0 + kFoldCols) * nb, pf_end);
      } else {
        for (int64_t g = 0; g < nb; ++g)
          for (int64_t j = 0; j < cols; ++j) wi[g * out + j0 + j] = ct[g][j] * sj[j];
      }
    }
  }
}

// Forward by column strips. An input's weights are cut into strips of SC
// columns (each strip's G+k rows of SC values contiguous, folded once per
// input tile), and a pass of up to kStripRows<T, SC> batch rows keeps its
// partial y (rows x SC) in a local buffer across the input tile. Per input,
// the pass's rows are grouped by knot interval: with 128-256 rows instead of
// kan_linear_forward_block's 32 the groups are 4-8x deeper, so each group's
// k+2 weight vectors are loaded once for several rows (grouped_axpy). Per y
// element the terms are added as kan_linear_forward_block adds them (inputs
// in order; per input the k+1 spline terms in order, then the base term, by
// the same grouped_axpy), so y is bit-identical to it.
//
// Two geometries:
// - narrow: SC = kFoldCols (16) columns, passes of 16 KiB of y (256 float
//   rows), input tiles of 256 KiB of strips; float32 only. Every build.
// - wide, on builds with 64-byte vectors and 32 registers (AVX-512): SC = 4
//   vectors (64 float, 32 double columns), so that a group's k+2 weight rows
//   of the strip (20 registers at k = 3) and one row's 4 accumulators fill
//   the register file, and each basis value loaded serves 4 vectors instead
//   of 1; passes of 32 KiB of y (128 rows; L1d is 48 KiB there), or of 64
//   KiB (256 rows) from G+k = KANEXT_STRIP_LONG_PASS_MIN basis rows (below);
//   input tiles of half the L2 (at most 1 MiB), since every input tile costs
//   one pass of y through the caches. Float32 and float64. (bench/RESULTS.md,
//   "seventeenth pass".)
constexpr bool kWideStrips = kVecRegs >= 32 && KANEXT_VEC_BYTES == 64;
template <typename T>
constexpr int kWideStripCols = 4 * kLanes<T>;
// Rows of the longest pass (the buffers' size).
template <typename T, int SC>
constexpr int kStripRows = static_cast<int>((SC == kFoldCols ? (16 << 10) : (64 << 10)) / (SC * sizeof(T)));

// Rows per pass of the strip forward with nb = G+k basis rows: the narrow
// strips' 256; the wide strips' 128 (y in L1), or 256 from nb =
// KANEXT_STRIP_LONG_PASS_MIN. A pass walks all nb window keys of each input
// and strip, whatever rows they hold; at G=100 128 rows leave about 1.2 rows
// per key, and the walk and the window's slide cost about as much as the
// rows. Passes of 256 rows halve the walks, but their y tile (64 KiB) is
// larger than L1: taken at every G (1 thread, forward alone) they took
// 0.90-0.96x the time at G=100 (one run of 256 float32 outputs 1.01x), but
// 1.07-1.14x at G = 5-12 and float64 G = 20. In the module at G=100 (2
// threads) the forward is 1.05-1.08x faster from 2048 rows in float32 and
// from 1024 in float64, a tie with fewer; a step moves 0.98-1.01x
// (bench/RESULTS.md, twenty-sixth pass).
#ifndef KANEXT_STRIP_LONG_PASS_MIN
#define KANEXT_STRIP_LONG_PASS_MIN 96
#endif
template <typename T, int SC>
inline int strip_pass_rows(int64_t nb) {
  return SC == kFoldCols || nb >= KANEXT_STRIP_LONG_PASS_MIN ? kStripRows<T, SC> : kStripRows<T, SC> / 2;
}
// The strip forward takes G + k < kMaxStripKeys - 2; larger grids take the
// row forward. (The bound dates from pass records with room for this many
// keys; they are now sized to the grid.)
constexpr int kMaxStripKeys = 1 << 11;

// Bytes of one input tile's strips: 256 KiB for the narrow strips; for the
// wide ones half of this machine's L2, between 256 KiB and 1 MiB (1 MiB
// where sysconf does not say).
inline int64_t strip_tile_bytes(int64_t sc) {
  if (sc == kFoldCols) return 256 << 10;
  static const int64_t wide = [] {
    int64_t l2 = 0;
#if defined(_SC_LEVEL2_CACHE_SIZE)
    l2 = static_cast<int64_t>(sysconf(_SC_LEVEL2_CACHE_SIZE));
#endif
    return l2 > 0 ? std::min<int64_t>(1 << 20, std::max<int64_t>(256 << 10, l2 / 2)) : int64_t(1 << 20);
  }();
  return wide;
}

// Inputs per tile of the strip forward with sc-column strips. The wide
// strips' tiles hold at most kMaxWideTileInputs inputs: each input of a tile
// keeps a StripPass for the pass (11 KiB each when this was measured), and
// 512 of them (1024 -> 64, G=5: 2 KiB of weights per input) left L2 (15.4
// ns per (n, i) against 13.5 with 64 inputs, the row forward's 12.7).
constexpr int64_t kMaxWideTileInputs = 64;
inline int64_t strip_tile(int64_t in, int64_t nb, int64_t out, int64_t sc, int64_t elem) {
  const int64_t per_input = (out + sc - 1) / sc * sc * nb * elem;
  const int64_t cap = sc == kFoldCols ? in : kMaxWideTileInputs;
  return std::min<int64_t>(std::min(in, cap), std::max<int64_t>(1, strip_tile_bytes(sc) / std::max<int64_t>(1, per_input)));
}

// The strip width the forward takes (0: the row forward), as measured
// (bench/RESULTS.md, fifth and seventeenth passes; one thread, forward
// alone). Narrow strips: float32 layers of 16 to 256 outputs whose weights
// per input fit 64 KiB (1.15-1.45x at G = 10..50 on AVX2); slower there with
// 1024 outputs (0.5x: the y tile is reloaded per input tile of two), G+k
// rows of 256 outputs past 64 KiB (0.88x at G=100), and float64
// (0.75-1.2x). Wide strips: at least 4 vectors of outputs and at least 4
// inputs per tile (1024 -> 1024 at G=100, two inputs per tile, is 1.1x
// slower than the row forward). On builds with wide strips, neither where an
// input's weights take at most 4 KiB (64 float32 outputs at G <= 10, 128 at
// G = 5): the row forward was 1.04-1.15x faster there on an AVX-512 core,
// where an AVX2 build of the same code was 0.91-1.05x (bench/RESULTS.md,
// twentieth pass). Nor on layers of at most kMaxFixedVectors whole vectors
// of outputs, which the row forward adds with a fixed width
// (axpy_rows_vectors): 1.1-1.7x faster than the strips on AVX-512 (float32,
// 16 to 128 outputs, G = 5..100) and 1.1-1.4x on AVX2 (16 to 64 outputs);
// float64 ties to 1.3x (bench/RESULTS.md, twenty-first pass); for spline
// order K = 3, the one those are built for (kFixedWidths).
constexpr int64_t kRowForwardBytes = 4 << 10;
template <typename T, int K = 3>
inline int64_t strip_cols(int64_t nb, int64_t out) {
  if (nb >= kMaxStripKeys - 2) return 0;
  if (fixed_width_rows<T, K>(out)) return 0;  // (6-15 outputs had no strips either)
  const int64_t per_input = nb * out * int64_t(sizeof(T));
  if (kWideStrips && per_input <= kRowForwardBytes) return 0;
  if (kWideStrips && out >= kWideStripCols<T> && 4 * per_input <= strip_tile_bytes(kWideStripCols<T>))
    return kWideStripCols<T>;
  if (sizeof(T) == 4 && out >= kFoldCols && out <= 256 && per_input <= (64 << 10)) return kFoldCols;
  return 0;
}

// The fold into sc-column strips for inputs [i0, i1): w[(((i - i0) nt + t)
// (G+k) + g) sc + j] = coef[i, t sc + j, g] scale[i, t sc + j] for the nt =
// ceil(out / sc) strips (columns past out zero), the same products as
// fold_inputs, by kFoldCols-column blocks. c and s may be a column slice of
// wider tensors: input i's rows start at c + i ld (G+k) and s + i ld. The
// next block's coef (up to the tile's last input) is prefetched while a
// block is scaled into its strip (scale_block_prefetching).
template <typename T>
void fold_inputs_strips(const T* __restrict c, const T* __restrict s, T* __restrict w, int64_t i0, int64_t i1,
                        int64_t out, int64_t nb, int64_t sc, int64_t ld) {
  const int64_t nt = (out + sc - 1) / sc;
  scratch_vector<T> buf(static_cast<size_t>(nb * kFoldCols));
  T(*ct)[kFoldCols] = reinterpret_cast<T(*)[kFoldCols]>(buf.data());
  const int64_t pf_end = ((i1 - 1) * ld + out) * nb - 1;  // (the tile's last folded value)
  for (int64_t i = i0; i < i1; ++i)
    for (int64_t t = 0; t < nt; ++t) {
      T* wt = w + ((i - i0) * nt + t) * nb * sc;
      for (int64_t u = 0; u < sc; u += kFoldCols) {
        const int64_t j0 = t * sc + u, cols = std::min(kFoldCols, out - j0);
        if (cols <= 0) {
          for (int64_t g = 0; g < nb; ++g) std::fill(wt + g * sc + u, wt + g * sc + u + kFoldCols, T(0));
          continue;
        }
        T sv[kFoldCols] = {};
        for (int64_t j = 0; j < cols; ++j) sv[j] = s[i * ld + j0 + j];
        load_block_transposed(c + (i * ld + j0) * nb, nb, cols, ct, nb);  // (zero past cols)
        scale_block_prefetching(ct, sv, nb, wt + u, sc, c, (i * ld + j0 + kFoldCols) * nb, pf_end);
      }
    }
}

// What the strip forward keeps per input of a pass: the pass's rows grouped
// by knot interval (counting sort on the window start), and per row its k+1
// basis values and b(x). A view into StripPasses.
template <typename T, int K>
struct StripPass {
  int* ends;         // ends[key]: end of group `key` in order (key = start + 2), nkeys + 1 of them
  int* order;        // the pass's rows, group by group
  T (*coef)[K + 2];  // per row of the pass
};

// The StripPass of each input of a tile: one block per input, its ends, order
// and coef each 64-byte aligned and as long as the G and the pass at hand
// need (uninitialised: every value is written before it is read; zeroing
// them was 4% of the forward at 1024 -> 64, G=5). With fixed-size blocks
// (14 KiB per input with 256-row buffers, most of it ends for kMaxStripKeys
// keys) 4096 x 64 -> 64, G=50 ran 1.13-1.27x slower on the same 128-row
// passes (the suspected cause: at that stride 64 inputs' ends share a few
// L1 sets; bench/RESULTS.md, twenty-sixth pass).
template <typename T, int K>
class StripPasses {
 public:
  StripPasses(int64_t inputs, int64_t nkeys, int64_t rows)
      : ends_(aligned((nkeys + 1) * int64_t(sizeof(int)))), order_(aligned(rows * int64_t(sizeof(int)))),
        block_(ends_ + order_ + aligned(rows * (K + 2) * int64_t(sizeof(T)))),
        buf_(uninit_scratch<char>(static_cast<size_t>(inputs * block_))) {}
  StripPass<T, K> operator[](int64_t i) const {
    char* b = buf_.get() + i * block_;
    return {reinterpret_cast<int*>(b), reinterpret_cast<int*>(b + ends_),
            reinterpret_cast<T(*)[K + 2]>(b + ends_ + order_)};
  }

 private:
  static int64_t aligned(int64_t bytes) { return (bytes + 63) / 64 * 64; }
  int64_t ends_, order_, block_;
  scratch_ptr<char> buf_;
};

// grouped_axpy's column block in the strip forward: kAxpyBlock with 32
// registers (the whole wide strip at k <= 3); with 16 registers one
// 16-column strip per block (measured 1.1-1.3x faster than kAxpyBlock's
// blocks, which are wider than a strip).
template <typename T, int R, int SC>
constexpr int kStripBlock = kVecRegs >= 32 ? kAxpyBlock<R> : static_cast<int>(SC / kLanes<T>);

// Whether a wide strip's groups take strip_window_axpy: spline order 3 (the
// window's 4 x 4 vectors, the base row's 4 and a row's 4 accumulators fit
// the 32 registers; the order the compile-time widths are built for too).
template <typename T, int K, int SC>
constexpr bool kStripWindow = kWideStrips && K == 3 && SC == kWideStripCols<T>;

// The groups of window starts 0..nkeys-3 (keys 2..nkeys-1) of one input on a
// wide strip (4 vectors): yt[r] += sum_q coef[r][q] st[key - 2 + q] (+
// coef[r][4] wb with BASE) for the rows r of each group, in q order as
// grouped_axpy adds them (y bit-identical). The 4 weight rows of the window
// stay in registers from one key to the next, which share 3 of them: each
// key loads one strip row instead of its group's 4 (20 vectors with the base
// row). At G=100 a pass of 128 rows has groups of about one row, for which
// grouped_axpy loaded 20 vectors per row.
template <typename T, bool BASE>
inline void strip_window_axpy(T* __restrict yt, const int* __restrict order, const int* __restrict ends, int nkeys,
                              const T (*__restrict coef)[5], const T* __restrict st, const T* __restrict wb) {
  constexpr int L = kLanes<T>, SC = 4 * L;
  vec_t<T> w0[4], w1[4], w2[4], w3[4], b[4];
  for (int v = 0; v < 4; ++v) {
    w0[v] = vload(st + v * L);
    w1[v] = vload(st + SC + v * L);
    w2[v] = vload(st + 2 * SC + v * L);
    w3[v] = vload(st + 3 * SC + v * L);
    b[v] = BASE ? vload(wb + v * L) : vec_t<T>{};
  }
  int g0 = ends[1];
  for (int key = 2; key < nkeys; ++key) {
    const int g1 = ends[key];
    for (int m = g0; m < g1; ++m) {
      T* __restrict yr = yt + order[m] * SC;
      const T* c = coef[order[m]];
      for (int v = 0; v < 4; ++v) {
        vec_t<T> acc = vload(yr + v * L);
        acc += c[0] * w0[v];
        acc += c[1] * w1[v];
        acc += c[2] * w2[v];
        acc += c[3] * w3[v];
        if (BASE) acc += c[4] * b[v];
        vstore(yr + v * L, acc);
      }
    }
    g0 = g1;
    if (key + 1 < nkeys) {  // the next window: rows key - 1 .. key + 2
      const T* nr = st + (key + 2) * SC;
      for (int v = 0; v < 4; ++v) {
        w0[v] = w1[v];
        w1[v] = w2[v];
        w2[v] = w3[v];
        w3[v] = vload(nr + v * L);
      }
    }
  }
}

// y[n0:n1] += the terms of inputs [i0, i1) (n1 - n0 <= kStripRows<T, SC>), with the
// inputs' weights in strips `ws` (fold_inputs_strips).
// Per input, the pass's rows are grouped by window start, and each group's
// k+2 weight vectors are loaded once per strip for all its rows (grouped_axpy
// on the local y tile). `sp` holds a StripPass for each input from i0 (of
// at least n1 - n0 rows).
template <typename T, int K, int SC>
void kan_linear_forward_strips(const T* __restrict x, const T* __restrict grid, const T* __restrict padded,
                               int64_t in, int64_t M, int64_t base, const T* __restrict Wb,
                               const T* __restrict ws, T* __restrict y, int64_t n0, int64_t n1, int64_t out,
                               int64_t i0, int64_t i1, const StripPasses<T, K>& sp) {
  constexpr int L = kLanes<T>, V = SC / L, K1 = K + 1;
  const int64_t nb = M - K - 1, P = M + 2 * K + 2, nt = (out + SC - 1) / SC;
  const int rows = static_cast<int>(n1 - n0);
  const int nkeys = window_keys<K>(nb);
  const bool has_base = base != kBaseZero;
  BlockBases<T, K> bb;
  for (int64_t i = i0; i < i1; ++i) {
    const StripPass<T, K> p = sp[i - i0];
    int key[kStripRows<T, SC>];
    for (int b0 = 0; b0 < rows; b0 += kRows) {
      const int nr = std::min(kRows, rows - b0);
      bb.template compute<false>(x + (n0 + b0) * in + i, in, nr, grid + i * M, padded + i * P, M, base);
      for (int r = 0; r < nr; ++r) {
        key[b0 + r] = static_cast<int>(bb.start[r]) + 2;
        for (int q = 0; q < K1; ++q) p.coef[b0 + r][q] = bb.v[q][r];
        p.coef[b0 + r][K1] = bb.bv[r];
      }
    }
    int* ends = p.ends;
    std::fill(ends, ends + nkeys + 1, 0);
    for (int r = 0; r < rows; ++r) ++ends[key[r] + 1];
    for (int c = 1; c <= nkeys; ++c) ends[c] += ends[c - 1];
    for (int r = 0; r < rows; ++r) p.order[ends[key[r]]++] = r;
  }
  alignas(64) T yt[kStripRows<T, SC>][SC];
  for (int64_t t = 0; t < nt; ++t) {
    const int64_t j0 = t * SC, cols = std::min<int64_t>(SC, out - j0);
    for (int r = 0; r < rows; ++r) {
      const T* yr = y + (n0 + r) * out + j0;
      if (cols == SC)
        for (int v = 0; v < V; ++v) vstore(&yt[r][v * L], vload(yr + v * L));
      else
        for (int64_t j = 0; j < SC; ++j) yt[r][j] = j < cols ? yr[j] : T(0);
    }
    for (int64_t i = i0; i < i1; ++i) {
      const StripPass<T, K> p = sp[i - i0];
      const T* st = ws + ((i - i0) * nt + t) * nb * SC;
      alignas(64) T wbt[SC] = {};
      for (int64_t j = 0; j < cols; ++j) wbt[j] = Wb[i * out + j0 + j];
      const T* wb = wbt;
      if constexpr (kStripWindow<T, K, SC>) {
        for (int m = 0; m < p.ends[0]; ++m)  // key 0, NaN: the whole output row becomes NaN
          std::fill(yt[p.order[m]], yt[p.order[m]] + SC, std::numeric_limits<T>::quiet_NaN());
        const int g0 = p.ends[0], cnt = p.ends[1] - g0;
        if (has_base && cnt > 0)  // key 1, outside the grid: the base term only
          grouped_axpy<T, 1, K1 + 1, kStripBlock<T, 1, SC>>(&yt[0][0], p.order + g0, cnt, p.coef, K1, &wb, SC);
        if (has_base)
          strip_window_axpy<T, true>(&yt[0][0], p.order, p.ends, nkeys, p.coef, st, wb);
        else
          strip_window_axpy<T, false>(&yt[0][0], p.order, p.ends, nkeys, p.coef, st, wb);
        continue;
      }
      for (int g0 = 0, key = 0; key < nkeys; g0 = p.ends[key++]) {
        const int cnt = p.ends[key] - g0;
        if (cnt == 0) continue;
        if (key == 0) {  // NaN policy: the whole output row becomes NaN
          for (int m = g0; m < g0 + cnt; ++m)
            std::fill(yt[p.order[m]], yt[p.order[m]] + SC, std::numeric_limits<T>::quiet_NaN());
          continue;
        }
        if (key == 1) {  // outside the grid: the base term only
          if (has_base)
            grouped_axpy<T, 1, K1 + 1, kStripBlock<T, 1, SC>>(&yt[0][0], p.order + g0, cnt, p.coef, K1, &wb, SC);
          continue;
        }
        const T* wrows[K1 + 1];
        for (int q = 0; q < K1; ++q) wrows[q] = st + (key - 2 + q) * SC;
        wrows[K1] = wb;
        T* yt0 = &yt[0][0];
        if (has_base)
          grouped_axpy<T, K1 + 1, K1 + 1, kStripBlock<T, K1 + 1, SC>>(yt0, p.order + g0, cnt, p.coef, 0, wrows, SC);
        else
          grouped_axpy<T, K1, K1 + 1, kStripBlock<T, K1, SC>>(yt0, p.order + g0, cnt, p.coef, 0, wrows, SC);
      }
    }
    for (int r = 0; r < rows; ++r) {
      T* yr = y + (n0 + r) * out + j0;
      if (cols == SC)
        for (int v = 0; v < V; ++v) vstore(yr + v * L, vload(&yt[r][v * L]));
      else
        for (int64_t j = 0; j < cols; ++j) yr[j] = yt[r][j];
    }
  }
}

// The strip forward of the batch rows [n0, n1) (one task's share) on pykan's
// coef (in, out, G+k) and scale (in, out): y's rows zeroed, then per input
// tile the fold into strips and passes of strip_pass_rows rows. y (N, out) and
// Wb (in, out) are contiguous; coef and scale may be a column slice of
// tensors ld wide (fold_inputs_strips).
template <typename T, int K, int SC>
void forward_strips_rows(const T* __restrict x, const T* __restrict grid, const T* __restrict padded, int64_t in,
                         int64_t M, int64_t base, const T* __restrict Wb, const T* __restrict coef,
                         const T* __restrict scale, int64_t ld, T* __restrict y, int64_t n0, int64_t n1,
                         int64_t out) {
  const int64_t nb = M - K - 1, nt = (out + SC - 1) / SC, tile = strip_tile(in, nb, out, SC, sizeof(T));
  scratch_vector<T> ws(static_cast<size_t>(tile * nt * nb * SC));
  const int pass = strip_pass_rows<T, SC>(nb);
  const StripPasses<T, K> passes(tile, window_keys<K>(nb), pass);
  std::fill(y + n0 * out, y + n1 * out, T(0));
  for (int64_t i0 = 0; i0 < in; i0 += tile) {
    const int64_t i1 = std::min(i0 + tile, in);
    fold_inputs_strips(coef, scale, ws.data(), i0, i1, out, nb, SC, ld);
    for (int64_t b = n0; b < n1; b += pass)
      kan_linear_forward_strips<T, K, SC>(x, grid, padded, in, M, base, Wb, ws.data(), y, b,
                                          std::min<int64_t>(b + pass, n1), out, i0, i1, passes);
  }
}

// forward_strips_rows with sc columns, a width strip_cols gives (others
// throw std::logic_error: a bug, not bad input).
template <typename T, int K>
void forward_strips(int64_t sc, const T* x, const T* grid, const T* padded, int64_t in, int64_t M, int64_t base,
                    const T* Wb, const T* coef, const T* scale, int64_t ld, T* y, int64_t n0, int64_t n1,
                    int64_t out) {
  if constexpr (sizeof(T) == 4) {
    if (sc == kFoldCols) {
      forward_strips_rows<T, K, static_cast<int>(kFoldCols)>(x, grid, padded, in, M, base, Wb, coef, scale, ld, y,
                                                             n0, n1, out);
      return;
    }
  }
  if constexpr (kWideStrips) {
    if (sc == kWideStripCols<T>) {
      forward_strips_rows<T, K, kWideStripCols<T>>(x, grid, padded, in, M, base, Wb, coef, scale, ld, y, n0, n1,
                                                   out);
      return;
    }
  }
  throw std::logic_error("kanext: no strip forward of this width in this build");
}

// dst[0, n) = src[0, n) with non-temporal stores where dst is 32-byte
// aligned (AVX): written around the caches, without reading dst's lines
// first. The caller ends its writes with stream_fence().
template <typename T>
inline void stream_copy(T* __restrict dst, const T* __restrict src, int64_t n) {
  int64_t a = 0;
#ifdef __AVX__
  for (; a < n && (reinterpret_cast<uintptr_t>(dst + a) & 31); ++a) dst[a] = src[a];
  constexpr int64_t L = 32 / sizeof(T);
  for (; a + L <= n; a += L) {
    if constexpr (sizeof(T) == 4)
      _mm256_stream_ps(reinterpret_cast<float*>(dst + a), _mm256_loadu_ps(reinterpret_cast<const float*>(src + a)));
    else
      _mm256_stream_pd(reinterpret_cast<double*>(dst + a), _mm256_loadu_pd(reinterpret_cast<const double*>(src + a)));
  }
#endif
  std::copy(src + a, src + n, dst + a);
}
inline void stream_fence() {
#ifdef __AVX__
  _mm_sfence();
#endif
}

#ifndef KANEXT_STREAM_MIB
#define KANEXT_STREAM_MIB 16
#endif
// Whether the unfold streams grad coef to memory (stream_copy): where it is
// larger than a last-level cache would keep (in (G+k) out values). Measured
// on Zen 3, 32 MiB L3 (bench/RESULTS.md, "tenth pass"; unfold, one input per
// call): 1.2-1.35x faster at 27-55 MB of grad coef, 0.75x at 6 MB. Both
// walks stream. On an AVX-512 Xeon (block walk; "eighteenth pass"; the fused
// backward's weight gradients, 1 thread, 1024 x 256 -> 256): G = 100 27.2 ->
// 20.6 ms, where the block walk's 64-byte stores straddle the lines of grad
// coef's 412-byte rows; a tie at 32-92 MB with nb = 8 and 23.
template <typename T>
inline bool stream_grad_coef(int64_t in, int64_t out, int64_t nb) {
  return in * out * nb * int64_t(sizeof(T)) >= (int64_t(KANEXT_STREAM_MIB) << 20);
}

// Where the unfold by tiles and by blocks forms input i's grad coef (out
// (G+k) contiguous values): in place, or, with stream (stream_grad_coef), in
// a buffer that stays in L2 and is streamed to gc once the input is done.
// (The unfold by rows streams each column block from L1 instead.)
template <typename T>
class GradCoefRows {
 public:
  GradCoefRows(T* gc, int64_t per_input, bool stream)
      : gc_(gc), per_(per_input), stage_(stream ? uninit_scratch<T>(static_cast<size_t>(per_input)) : nullptr) {}
  GradCoefRows(const GradCoefRows&) = delete;
  GradCoefRows& operator=(const GradCoefRows&) = delete;
  ~GradCoefRows() {
    if (stage_) stream_fence();
  }
  T* rows(int64_t i) const { return stage_ ? stage_.get() : gc_ + i * per_; }
  void done(int64_t i) const {
    if (stage_) stream_copy(gc_ + i * per_, stage_.get(), per_);
  }

 private:
  T* gc_;
  int64_t per_;
  scratch_ptr<T> stage_;
};

// Input i's rows in an unfold walk: its gradient of the folded weights
// (gw holds inputs i0..), coef, scale and grad coef (GradCoefRows).
template <typename T>
struct UnfoldInput {
  const T *gw, *c, *s;
  T* gc;
  UnfoldInput(const T* gw_, const T* c_, const T* s_, const GradCoefRows<T>& gcr, int64_t i, int64_t i0,
              int64_t out, int64_t nb)
      : gw(gw_ + (i - i0) * nb * out), c(c_ + i * out * nb), s(s_ + i * out), gc(gcr.rows(i)) {}
};

// The unfold of columns [j0, out) of one input element by element: grad coef,
// and gs's sums over g in order added to sums[j] (zero on entry).
template <typename T>
inline void unfold_scalar_columns(const UnfoldInput<T>& u, T* __restrict sums, int64_t j0, int64_t out, int64_t nb) {
  for (int64_t j = j0; j < out; ++j)
    for (int64_t g = 0; g < nb; ++g) {
      u.gc[j * nb + g] = u.gw[g * out + j] * u.s[j];
      sums[j] += u.gw[g * out + j] * u.c[j * nb + g];
    }
}

// unfold_gradients by tiles (kFoldByTiles): per g tile and L columns, the
// tile of gw scaled and transposed into grad coef, and gs's L sums carried
// on in a row of accumulators, so each sum still runs over g in order.
// With stream, each input's grad coef (out (G+k) contiguous values) is
// formed in a buffer that stays in L2 and streamed to gc.
template <typename T>
void unfold_gradients_tiles(const T* __restrict gw, const T* __restrict c, const T* __restrict s, T* __restrict gc,
                            T* __restrict gs, int64_t i0, int64_t i1, int64_t out, int64_t nb, int64_t prefetch_end,
                            bool stream) {
#ifdef KANEXT_VECTOR_SHUFFLE
  constexpr int L = kLanes<T>;
  const int64_t jv = out / L * L;
  scratch_vector<T> acc(static_cast<size_t>(out));  // gs per column, summed over g in order
  // (left uninitialised: every value is written before it is streamed; a
  // zeroed std::vector cost the streamed unfold about 7%, one input per call)
  const GradCoefRows<T> gcr(gc, out * nb, stream);
  for (int64_t i = i0; i < i1; ++i) {
    const UnfoldInput<T> u(gw, c, s, gcr, i, i0, out, nb);
    const T *gwi = u.gw, *ci = u.c, *si = u.s;
    T* __restrict gci = u.gc;
    FoldPrefetch pf(ci + out * nb, i + 1 < prefetch_end ? out * nb * int64_t(sizeof(T)) : 0);
    std::fill(acc.begin(), acc.end(), T(0));
    int64_t g0 = 0;
    for (; g0 + L <= nb; g0 += L)
      for (int64_t j0 = 0; j0 < jv; j0 += L) {
        pf.step<kFoldPrefetch<T>>();
        const vec_t<T> sv = vload(si + j0);
        vec_t<T> gv[L], ct[L];
        for (int l = 0; l < L; ++l) {
          gv[l] = vload(gwi + (g0 + l) * out + j0);
          ct[l] = vload(ci + (j0 + l) * nb + g0);
        }
        transpose_tile<T>(ct);  // ct[l] = coef[j0 .. j0 + L, g0 + l]
        vec_t<T> a = vload(acc.data() + j0);
        for (int l = 0; l < L; ++l) {
          a += gv[l] * ct[l];
          gv[l] *= sv;
        }
        vstore(acc.data() + j0, a);
        transpose_tile<T>(gv);  // gv[l] = grad coef[j0 + l, g0 .. g0 + L]
        for (int l = 0; l < L; ++l) vstore(gci + (j0 + l) * nb + g0, gv[l]);
      }
    for (int64_t g = g0; g < nb; ++g)
      for (int64_t j = 0; j < jv; ++j) {
        gci[j * nb + g] = gwi[g * out + j] * si[j];
        acc[j] += gwi[g * out + j] * ci[j * nb + g];
      }
    unfold_scalar_columns(u, acc.data(), jv, out, nb);
    std::copy(acc.begin(), acc.end(), gs + i * out);
    gcr.done(i);
  }
#else
  (void)gw, (void)c, (void)s, (void)gc, (void)gs, (void)i0, (void)i1, (void)out, (void)nb, (void)prefetch_end,
      (void)stream;
#endif
}

#ifdef KANEXT_MASKED_TRANSPOSE
// unfold_gradients on AVX-512 builds: per input and L columns j0.., per g
// tile of gw (the last one masked), one transpose turns the tile into L rows
// of grad coef's layout (r[m] = gw[g0 .. g0 + L, j0 + m]): grad coef's row
// j0 + m is r[m] scale[j0 + m], stored in place, and gs's column j0 + m adds
// r[m] coef[j0 + m, g0 ..] into a vector of L partial sums (lane l sums the
// g = l mod L, in g order), added pairwise (a fixed tree) at the block's end:
// deterministic, but not the blocks' sum over g in order. The blocks
// transpose twice per tile (coef in, grad coef out); this walk once.
// Columns past whole vectors go as the scalar loop below.
template <typename T>
void unfold_gradients_rows(const T* __restrict gw, const T* __restrict c, const T* __restrict s, T* __restrict gc,
                           T* __restrict gs, int64_t i0, int64_t i1, int64_t out, int64_t nb, int64_t prefetch_end,
                           bool stream) {
  constexpr int L = kLanes<T>;
  using A = Avx512Lanes<T>;
  const int64_t jv = out / L * L;
  const int64_t gv = nb / L * L;
  const int rem = static_cast<int>(nb - gv);
  // With stream, each column block's grad coef (L (G+k) contiguous values,
  // 64 (G+k) bytes) is formed in an L1 buffer and streamed to gc. Staged per
  // input in L2 (GradCoefRows), a wide input's grad coef (421 KB at 1024
  // outputs, G=100) shared L2 with its gradient rows and coef: the unfold
  // there took 65-70 ms against 72-79 (1 thread, 256 x 1024 -> 1024;
  // bench/RESULTS.md, "thirtieth pass").
  const GradCoefRows<T> in_place(gc, out * nb, false);
  scratch_vector<T> blk(static_cast<size_t>(stream ? L * nb : 1));
  for (int64_t i = i0; i < i1; ++i) {
    const UnfoldInput<T> u(gw, c, s, in_place, i, i0, out, nb);
    const T *gwi = u.gw, *ci = u.c, *si = u.s;
    T* __restrict gci = u.gc;
    // (the next column block's coef and grad coef prefetched while this one
    // is formed: from beyond L2 the unfold of one input per call was 1.3-3x
    // faster at G = 50-100; coef on into the next input's where it is one of
    // prefetch_end's. Coef goes to L2, not L1: on a Zen 4 core (32 KiB L1d)
    // the block ahead of coef and of grad coef, beside this block's gw, coef
    // and grad coef, overflowed L1; the fused backward without grad x ran
    // 1.11-1.12x faster at G = 100, 1024 rows, in float32 and float64;
    // bench/RESULTS.md, "twenty-eighth pass")
    const int64_t gpf_end = out * nb - 1, cpf_end = (i + 1 < prefetch_end ? 2 : 1) * out * nb - 1;
    for (int64_t j0 = 0; j0 < jv; j0 += L) {
      T* __restrict gb = stream ? blk.data() : gci + j0 * nb;  // the block's grad coef rows
      vec_t<T> acc[L];
      for (int m = 0; m < L; ++m) acc[m] = vec_t<T>{};
      for (int64_t g0 = 0; g0 < gv; g0 += L) {
        vec_t<T> r[L];
        for (int l = 0; l < L; ++l) r[l] = vload(gwi + (g0 + l) * out + j0);
        transpose_tile<T>(r);
        for (int m = 0; m < L; ++m) {
          const int64_t o = (j0 + m) * nb + g0;
          __builtin_prefetch(ci + std::min(o + L * nb, cpf_end), 0, 2);
          if (!stream) __builtin_prefetch(gci + std::min(o + L * nb, gpf_end), 1, 3);
          acc[m] += r[m] * vec_t<T>(A::load(ci + o));
          A::store(gb + (o - j0 * nb), r[m] * si[j0 + m]);
        }
      }
      if (rem > 0) {
        vec_t<T> r[L];
        for (int l = 0; l < L; ++l) r[l] = l < rem ? vload(gwi + (gv + l) * out + j0) : vec_t<T>{};
        transpose_tile<T>(r);
        for (int m = 0; m < L; ++m) {
          const int64_t o = (j0 + m) * nb + gv;
          acc[m] += r[m] * vec_t<T>(A::load_n(ci + o, rem));
          A::store_n(gb + (o - j0 * nb), r[m] * si[j0 + m], rem);
        }
      }
      if (stream) stream_copy(gci + j0 * nb, gb, L * nb);
      transpose_tile<T>(acc);  // acc[l] lane m: column j0 + m's partial sum l
      for (int h = L / 2; h > 0; h /= 2)  // pairwise: acc[l] += acc[l + h]
        for (int l = 0; l < h; ++l) acc[l] += acc[l + h];
      vstore(gs + i * out + j0, acc[0]);
    }
    std::fill(gs + i * out + jv, gs + (i + 1) * out, T(0));
    unfold_scalar_columns(u, gs + i * out, jv, out, nb);
  }
  if (stream) stream_fence();
}
#endif

// The fold's backward for inputs [i0, i1), from the gradient of the folded
// weights gw (laid out as fold_inputs writes w): gc[i, j, g] = gw[i, g, j]
// scale[i, j] (contiguous (in, out, G+k), coef's layout) and gs[i, j] =
// sum_g gw[i, g, j] coef[i, j, g]. Three walks, each deterministic for any
// split of the inputs:
// - by tiles where kFoldByTiles, with prefetch_end as in fold_inputs;
// - by rows (unfold_gradients_rows) on AVX-512 builds where unfold_by_rows;
// - by kFoldCols-column blocks elsewhere.
// Tiles and blocks sum gs over g in order (independent sums per output j,
// side by side in vectors); rows by L partial sums. grad coef is the same
// product in all three. Under -ffp-contract=fast the compiler may fuse gs's
// multiply-adds in the vector code and not in the scalar tails (columns past
// whole vectors or blocks), so gs can differ in the last bits between an
// AVX-512 and another build. The blocks and rows prefetch the next column
// block's coef and grad coef (on into input prefetch_end - 1's coef).
template <typename T>
void unfold_gradients(const T* __restrict gw, const T* __restrict c, const T* __restrict s, T* __restrict gc,
                      T* __restrict gs, int64_t i0, int64_t i1, int64_t out, int64_t nb, int64_t prefetch_end = -1,
                      bool stream = false) {
  if (prefetch_end < 0) prefetch_end = i1;
  if constexpr (kFoldByTiles) {
    unfold_gradients_tiles(gw, c, s, gc, gs, i0, i1, out, nb, prefetch_end, stream);
    return;
  }
#ifdef KANEXT_MASKED_TRANSPOSE
  if (unfold_by_rows<T>(nb)) {
    unfold_gradients_rows(gw, c, s, gc, gs, i0, i1, out, nb, prefetch_end, stream);
    return;
  }
#endif
  constexpr int L = kLanes<T>;
  constexpr int V = kFoldCols / L;  // vectors per column block
  scratch_vector<T> buf(static_cast<size_t>(2 * nb * kFoldCols));
  T(*ct)[kFoldCols] = reinterpret_cast<T(*)[kFoldCols]>(buf.data());
  T(*gt)[kFoldCols] = reinterpret_cast<T(*)[kFoldCols]>(buf.data() + nb * kFoldCols);
  const GradCoefRows<T> gcr(gc, out * nb, stream);
  for (int64_t i = i0; i < i1; ++i) {
    const UnfoldInput<T> u(gw, c, s, gcr, i, i0, out, nb);
    const T *gwi = u.gw, *ci = u.c;
    T* __restrict gci = u.gc;  // input i's grad coef (out, G+k)
    // (the next block's coef and grad coef prefetched while this one is
    // formed, as in unfold_gradients_rows)
    const int64_t gpf_end = out * nb - 1, cpf_end = (i + 1 < prefetch_end ? 2 : 1) * out * nb - 1;
    for (int64_t j0 = 0; j0 < out; j0 += kFoldCols) {
      const int64_t cols = std::min(kFoldCols, out - j0);
      const T* sj = s + i * out + j0;
      T* gsj = gs + i * out + j0;
      load_block_transposed(c + (i * out + j0) * nb, nb, cols, ct, nb);
      if (cols == kFoldCols) {  // whole vectors (the loop below as vector code, same terms in the same order)
        vec_t<T> sv[V], acc[V];
        for (int v = 0; v < V; ++v) {
          sv[v] = vload(sj + v * L);
          acc[v] = vec_t<T>{};
        }
        for (int64_t g = 0; g < nb; ++g) {
          const T* gr = gwi + g * out + j0;
          for (int64_t b = 0; b < kFoldCols; b += kPrefetchStep<T>) {  // the next block, a 64-byte line per step
            __builtin_prefetch(ci + std::min((j0 + kFoldCols) * nb + g * kFoldCols + b, cpf_end), 0, 3);
            __builtin_prefetch(gci + std::min((j0 + kFoldCols) * nb + g * kFoldCols + b, gpf_end), 1, 3);
          }
          for (int v = 0; v < V; ++v) {
            const vec_t<T> gv = vload(gr + v * L);
            vstore(&gt[g][v * L], gv * sv[v]);
            acc[v] += gv * vload(&ct[g][v * L]);
          }
        }
        for (int v = 0; v < V; ++v) vstore(gsj + v * L, acc[v]);
      } else {
        T acc[kFoldCols] = {};
        for (int64_t g = 0; g < nb; ++g) {
          const T* gr = gwi + g * out + j0;
          for (int64_t j = 0; j < cols; ++j) {
            gt[g][j] = gr[j] * sj[j];
            acc[j] += gr[j] * ct[g][j];
          }
        }
        for (int64_t j = 0; j < cols; ++j) gsj[j] = acc[j];
      }
      store_block_transposed(gt, nb, cols, gci + j0 * nb, nb);
    }
    gcr.done(i);
  }
}

// The fused layer's backward (kan_linear_fused_backward) for inputs [i0,
// i1): as kan_linear_backward_inputs, on pykan's coef (in, out, G+k) and
// scale (in, out) instead of the folded Wc. Per chunk of inputs, the chunk's
// Wc is folded into a scratch buffer (need_x), the gradient of Wc summed in
// another (need_w) and unfolded into grad_coef / grad_scale while it is still
// in cache: no (in, G+k, out) tensor is formed, grad_coef is written once.
template <typename T, int K>
void kan_linear_fused_backward_inputs(const T* __restrict gy, const T* __restrict x, const T* __restrict grid,
                                      const T* __restrict padded, int64_t N, int64_t in, int64_t M, int64_t base,
                                      const T* __restrict Wb, const T* __restrict coef, const T* __restrict scale,
                                      int64_t out, bool need_x, bool need_w, T* __restrict gx, T* __restrict gWb,
                                      T* __restrict gcoef, T* __restrict gscale, int64_t i0, int64_t i1,
                                      int64_t ldg = -1) {
  const int64_t nb = M - K - 1, P = M + 2 * K + 2;
  if (ldg < 0) ldg = out;
  BackwardScratch<T, K> ws(nb, out);
  const int span = ws.span;
  // (the folded Wc only for grad_x; capped at the task's inputs: small layers
  // would otherwise allocate and zero scratch for ~100 KiB per call)
  const int64_t chunk = std::min(backward_chunk<T>(need_x ? 2 * nb + 1 : nb + 1, out), i1 - i0);
  const bool stream = stream_grad_coef<T>(in, out, nb);
  scratch_vector<T> wc(static_cast<size_t>(need_x ? chunk * nb * out : 1));
  scratch_vector<T> gwc(static_cast<size_t>(need_w ? chunk * nb * out : 1));
  InputColumns<T> cols(x, gx, N, in, need_x, chunk, i0, i1);
  cols.walk([&](int64_t c0, int64_t c1) {
    if (need_x) fold_inputs(coef, scale, wc.data(), c0, c1, out, nb, out, i1);
    if (need_w) {
      std::fill(gWb + c0 * out, gWb + c1 * out, T(0));
      std::fill(gwc.begin(), gwc.begin() + (c1 - c0) * nb * out, T(0));
    }
    // the chunk's coef into L2 while its weight gradients are summed, for the
    // unfold below, where coef is past what the caches keep (as grad coef)
    TilePrefetch<T> pf(coef, c0, need_w && stream ? c1 : c0, out, nb, out, N * (c1 - c0));
    for (int64_t n0 = 0; n0 < N; n0 += span) {
      const int rows = static_cast<int>(std::min<int64_t>(span, N - n0));
      for (int64_t i = c0; i < c1; ++i)  // (a pointer unused without need_x / need_w points at the stub)
        backward_span<T, K>(ws, gy, ldg, cols.x(i), cols.gx(i), cols.stride(), grid + i * M, padded + i * P, n0, rows,
                            M, base, Wb + i * out, need_x ? wc.data() + (i - c0) * nb * out : wc.data(), out,
                            need_x, need_w, gWb + i * out, need_w ? gwc.data() + (i - c0) * nb * out : gwc.data(),
                            &pf);
    }
    if (need_w) unfold_gradients(gwc.data(), coef, scale, gcoef, gscale, c0, c1, out, nb, i1, stream);
  });
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
