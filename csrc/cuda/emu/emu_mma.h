// Host emulation of the WMMA API and of the 16-bit float types
// (KANEXT_CUDA_EMULATION only; see emu.h and tests/emu/emulator.py).
//
// A fragment holds its whole tile in every thread, in logical row-major
// order (on the GPU the tile is spread over the 32 lanes of a warp). Code
// that treats fragments as the API allows (load, store, fill, mma, and the
// same elementwise operation on every element) computes the same tile either
// way. The threads are fibers on one OS thread, so the identical stores of
// the 32 threads of a warp do not race. mma_sync, a warp-wide operation, is
// computed once per warp: the first lane to reach its c-th call computes the
// product, and the other lanes' c-th calls copy it (checking that their
// operands are the same, which they must be on a converged warp). A product of two tensor-core
// operands is exact in float32, and the sum runs in float32 in k order; the
// hardware's summation order differs, so results agree to float32 rounding
// of the sums, not bit for bit.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <unordered_map>
#include <vector>

// bfloat16: the high half of a float32, rounded to nearest even.
struct __nv_bfloat16 {
  uint16_t bits;
};
inline float __bfloat162float(__nv_bfloat16 h) {
  const uint32_t u = uint32_t(h.bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline __nv_bfloat16 __float2bfloat16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return {uint16_t((u >> 16) | 0x40)};  // NaN stays NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return {uint16_t(u >> 16)};
}

// IEEE half, through the compiler's _Float16 (conversions round to nearest even).
struct __half {
  _Float16 v;
};
inline float __half2float(__half h) { return static_cast<float>(h.v); }
inline __half __float2half(float f) { return {static_cast<_Float16>(f)}; }

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
namespace precision {
struct tf32 {};
}  // namespace precision
enum layout_t { mem_row_major, mem_col_major };

// float -> tf32 (10 explicit mantissa bits), to nearest with ties away from
// zero, as cvt.rna.tf32.f32; inf and NaN pass through.
inline float __float_to_tf32(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;
  std::memcpy(&f, &u, 4);
  return f;
}

namespace detail {
template <class T>
struct storage {
  using type = T;
};
template <>
struct storage<precision::tf32> {
  using type = float;
};
template <class Use, int M, int N, int K>
struct dims;
template <int M, int N, int K>
struct dims<matrix_a, M, N, K> {
  static constexpr int R = M, C = K;
};
template <int M, int N, int K>
struct dims<matrix_b, M, N, K> {
  static constexpr int R = K, C = N;
};
template <int M, int N, int K>
struct dims<accumulator, M, N, K> {
  static constexpr int R = M, C = N;
};
inline float to_f(float v) { return v; }
inline float to_f(__half v) { return __half2float(v); }
inline float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }
}  // namespace detail

template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
  using element_type = typename detail::storage<T>::type;
  static constexpr int R = detail::dims<Use, M, N, K>::R;
  static constexpr int C = detail::dims<Use, M, N, K>::C;
  static constexpr int num_elements = R * C;
  element_type x[R * C];
};

template <class Use, int M, int N, int K, class T, class L, class S>
inline void load_matrix_sync(fragment<Use, M, N, K, T, L>& f, const S* p, unsigned ldm) {
  static_assert(std::is_same<S, typename fragment<Use, M, N, K, T, L>::element_type>::value,
                "emu wmma: operand pointer type must match the fragment's element type");
  using F = fragment<Use, M, N, K, T, L>;
  for (int r = 0; r < F::R; ++r)
    for (int c = 0; c < F::C; ++c)
      f.x[r * F::C + c] = std::is_same<L, row_major>::value ? p[size_t(r) * ldm + c] : p[r + size_t(c) * ldm];
}

template <int M, int N, int K>
inline void store_matrix_sync(float* p, const fragment<accumulator, M, N, K, float>& f, unsigned ldm, layout_t l) {
  for (int r = 0; r < M; ++r)
    for (int c = 0; c < N; ++c) (l == mem_row_major ? p[size_t(r) * ldm + c] : p[r + size_t(c) * ldm]) = f.x[r * N + c];
}

template <class Use, int M, int N, int K, class T, class L, class V>
inline void fill_fragment(fragment<Use, M, N, K, T, L>& f, V v) {
  for (auto& e : f.x) e = static_cast<typename fragment<Use, M, N, K, T, L>::element_type>(v);
}

namespace detail {
// Per-warp memo of mma results, keyed by (warp, call index of the lane).
struct MmaMemo {
  struct Entry {
    std::vector<unsigned char> in;  // the operands, to check the other lanes
    std::vector<float> out;
    int uses = 0;
  };
  kanext::emu::BlockKey block;
  std::vector<uint64_t> calls;  // per thread
  std::unordered_map<uint64_t, Entry> cache;
};
inline MmaMemo& memo() {
  static MmaMemo m;
  const auto& s = *kanext::emu::g_sched;
  if (m.block.renew()) {
    m.calls.assign(s.nt, 0);
    m.cache.clear();
  }
  return m;
}
}  // namespace detail

template <int M, int N, int K, class TA, class LA, class TB, class LB>
inline void mma_sync(fragment<accumulator, M, N, K, float>& d, const fragment<matrix_a, M, N, K, TA, LA>& a,
                     const fragment<matrix_b, M, N, K, TB, LB>& b, const fragment<accumulator, M, N, K, float>& c) {
  auto& m = detail::memo();
  const int tid = kanext::emu::linear_tid();
  const uint64_t key = (uint64_t(tid / 32) << 40) | m.calls[tid]++;
  std::vector<unsigned char> in(sizeof(a.x) + sizeof(b.x) + sizeof(c.x));
  std::memcpy(in.data(), a.x, sizeof(a.x));
  std::memcpy(in.data() + sizeof(a.x), b.x, sizeof(b.x));
  std::memcpy(in.data() + sizeof(a.x) + sizeof(b.x), c.x, sizeof(c.x));
  auto it = m.cache.find(key);
  if (it != m.cache.end()) {
    if (it->second.in != in) {
      std::fprintf(stderr, "emu: mma_sync operands differ between the lanes of warp %d (call %llu)\n", tid / 32,
                   static_cast<unsigned long long>(key & ((uint64_t(1) << 40) - 1)));
      std::abort();
    }
    std::memcpy(d.x, it->second.out.data(), sizeof(d.x));
    if (++it->second.uses == 32) m.cache.erase(it);
    return;
  }
  float out[M * N];
  for (int r = 0; r < M; ++r)
    for (int n = 0; n < N; ++n) {
      float s = c.x[r * N + n];
      for (int k = 0; k < K; ++k) s += detail::to_f(a.x[r * K + k]) * detail::to_f(b.x[k * N + n]);
      out[r * N + n] = s;
    }
  std::memcpy(d.x, out, sizeof(out));
  auto& e = m.cache[key];
  e.in = std::move(in);
  e.out.assign(out, out + M * N);
  e.uses = 1;
}

}  // namespace wmma
}  // namespace nvcuda
