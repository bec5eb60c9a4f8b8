// exp(x) with arithmetic and bit operations only, for the silu base function
// of the CPU kernels: one definition for a scalar T (loops that call it
// vectorise under `omp simd`; std::exp does not without -ffast-math) and for
// a GCC vector of T. A libm exp per element was the largest single cost of
// the bases of small layers.
//
// Cody-Waite reduction x = n ln2 + r, |r| <= ln2 / 2, a Taylor polynomial for
// exp(r) (degree 13 in double, 7 in float: truncation below half an ulp),
// then the 2^n scaling in the exponent bits. Within 1 ulp of std::exp on
// [-708, 709] (double) and [-87, 88] (float). Results below 2^-1022 (2^-126)
// are flushed to 0, which silu (x / (1 + exp(-x))) cannot see; +-inf and NaN
// behave as in std::exp.
#pragma once

#include <cstdint>
#include <limits>

namespace kanext {
namespace cpu {

template <typename T>
struct ExpConsts;
template <>
struct ExpConsts<double> {
  typedef int64_t I;
  static constexpr double hi = 709.782712893384, lo = -708.3964185322641;
  static constexpr double magic = 6755399441055744.0;  // 1.5 * 2^52: adding it rounds to an integer
  static constexpr double log2e = 1.4426950408889634;
  static constexpr double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
  static constexpr int bias = 1023, mant = 52, degree = 13;
};
template <>
struct ExpConsts<float> {
  typedef int32_t I;
  static constexpr float hi = 88.72283f, lo = -87.33654f;
  static constexpr float magic = 12582912.0f;  // 1.5 * 2^23
  static constexpr float log2e = 1.44269504088896341f;
  static constexpr float ln2_hi = 0.693145751953125f, ln2_lo = 1.428606765330187045e-06f;
  static constexpr int bias = 127, mant = 23, degree = 7;
};

constexpr int64_t factorial(int m) { return m <= 1 ? 1 : m * factorial(m - 1); }

// The integer type matching V: ExpConsts<T>::I for a scalar, a vector of it
// (same byte size) for a GCC vector of T.
template <typename T, typename V>
struct IntLike {
  typedef typename ExpConsts<T>::I I __attribute__((vector_size(sizeof(V))));
  static I convert(V v) { return __builtin_convertvector(v, I); }
};
template <typename T>
struct IntLike<T, T> {
  typedef typename ExpConsts<T>::I I;
  static I convert(T v) { return static_cast<I>(v); }
};

// V is T or a GCC vector of T (vector_size); T is float or double.
template <typename T, typename V>
inline V fast_exp(V x) {
  typedef ExpConsts<T> C;
  typedef IntLike<T, V> IL;
  const V zero = V{} + T(0), hi = zero + C::hi, lo = zero + C::lo;
  V xc = x > hi ? hi : x;
  xc = xc < lo ? lo : xc;
  xc = x != x ? zero : xc;  // NaN: any finite value, replaced below
  const V n = (xc * C::log2e + C::magic) - C::magic;
  const V r = (xc - n * C::ln2_hi) - n * C::ln2_lo;
  // Horner on the Taylor coefficients 1/m! (constants: m! is exact in T).
  V p = zero + T(1) / T(factorial(C::degree));
#pragma GCC unroll 16
  for (int m = C::degree - 1; m >= 0; --m) p = p * r + T(1) / T(factorial(m));
  const typename IL::I bits = (IL::convert(n) + C::bias) << C::mant;
  V scale;
  __builtin_memcpy(&scale, &bits, sizeof scale);
  V y = p * scale;
  y = x > hi ? zero + std::numeric_limits<T>::infinity() : y;
  y = x < lo ? zero : y;
  return x != x ? x : y;
}

}  // namespace cpu
}  // namespace kanext
