// The vector row search of the CPU kernels that this build has
// (locate_rows_avx512 with AVX-512 F and DQ, locate_rows_avx2 with AVX2, in
// csrc/cpu/kan_linear_kernels.h) against the portable one (locate_rows), bit
// for bit: the window start, its shift at the grid's ends, the window's
// knots, x, and the clamped flag, for float and double, k = 0..5, uniform and random
// non-uniform knots, G from 1 to 300 (in-register tables and gathers), x
// inside, outside, on knots, just below the last knot, NaN and +-inf, and
// blocks with fewer than kRows real rows (for float and k = 3 on AVX2 the window
// knots come from whole-row loads, so the padded knots are sized exactly:
// out-of-bounds reads show under -fsanitize=address). Run by
// tests/test_build_tools.py.
//
//   g++ -O2 -std=c++17 -march=native -Icsrc/include -Icsrc/cpu tests/native/locate_rows.cpp -o /tmp/locate_rows
//   (and -march=x86-64-v3 for the AVX2 search on a machine with AVX-512)
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "kan_linear_kernels.h"

using namespace kanext::cpu;

#if defined(__AVX512F__) && defined(__AVX512DQ__)
#define VECTOR_SEARCH locate_rows_avx512
#define VECTOR_NAME "AVX-512"
#elif defined(__AVX2__)
#define VECTOR_SEARCH locate_rows_avx2
#define VECTOR_NAME "AVX2"
#endif

#ifdef VECTOR_SEARCH
static long checked = 0, failures = 0;

template <typename T, int K>
static void check(const std::vector<T>& t, std::mt19937& gen, const char* what) {
  const int64_t M = static_cast<int64_t>(t.size());
  std::vector<T> padded(M + 2 * K + 2);
  pad_knots(t.data(), M, K, padded.data());
  std::uniform_real_distribution<T> in(t[0], t[M - 1]), wide(t[0] - (t[M - 1] - t[0]), t[M - 1] + (t[M - 1] - t[0]));
  std::uniform_int_distribution<int> pick(0, 9), knot(0, static_cast<int>(M - 1)), rows(1, kRows);
  for (int block = 0; block < 40; ++block) {
    alignas(64) T xin[kRows];
    const int nr = block % 4 == 3 ? rows(gen) : kRows;
    for (int r = 0; r < kRows; ++r) {
      const int p = pick(gen);
      if (r >= nr) xin[r] = T(0);
      else if (p < 4) xin[r] = in(gen);
      else if (p < 6) xin[r] = wide(gen);
      else if (p == 6) xin[r] = t[knot(gen)];
      else if (p == 7) xin[r] = std::nextafter(t[M - 1], t[0]);
      else if (p == 8) xin[r] = std::numeric_limits<T>::quiet_NaN();
      else xin[r] = (r % 2 ? T(1) : T(-1)) * std::numeric_limits<T>::infinity();
    }
    int64_t s0[kRows], s1[kRows];
    alignas(64) T h0[kRows], h1[kRows];  // the shifts g - K - start
    alignas(64) T u0[2 * K + 1][kRows], u1[2 * K + 1][kRows], xv0[kRows], xv1[kRows];
    const bool c0 = locate_rows<T, K>(xin, nr, t.data(), padded.data(), M, s0, h0, u0, xv0);
    const bool c1 = VECTOR_SEARCH<T, K>(xin, nr, t.data(), padded.data(), M, s1, h1, u1, xv1);
    bool same = c0 == c1;
    int bad = -1;
    for (int r = 0; r < kRows; ++r) {
      bool row = std::memcmp(&h0[r], &h1[r], sizeof(T)) == 0 && s0[r] == s1[r] && std::memcmp(&xv0[r], &xv1[r], sizeof(T)) == 0;
      for (int q = kFirstKnot<K>; q <= 2 * K; ++q) row &= std::memcmp(&u0[q][r], &u1[q][r], sizeof(T)) == 0;
      if (!row && bad < 0) bad = r;
      same &= row;
    }
    ++checked;
    if (!same && ++failures <= 10) {
      std::printf("MISMATCH %s sizeof(T)=%zu K=%d M=%ld block=%d nr=%d clamped %d/%d", what, sizeof(T), K, long(M),
                  block, nr, c0, c1);
      if (bad >= 0)
        std::printf(" row %d x=%.9g shift %g/%g start %ld/%ld xv %.9g/%.9g", bad, double(xin[bad]), double(h0[bad]),
                    double(h1[bad]), long(s0[bad]), long(s1[bad]), double(xv0[bad]), double(xv1[bad]));
      std::printf("\n");
    }
  }
}

template <typename T, int K>
static void run_k(std::mt19937& gen) {
  for (int G : {1, 2, 3, 5, 7, 13, 20, 26, 50, 58, 100, 117, 200, 300}) {
    const int64_t M = G + 2 * K + 1;
    std::vector<T> t(M);
    const T h = T(2) / T(G);
    for (int64_t q = 0; q < M; ++q) t[q] = T(-1) + T(q - K) * h;
    check<T, K>(t, gen, "uniform");
    std::exponential_distribution<T> gap(1);
    T acc = T(-3);
    for (int64_t q = 0; q < M; ++q) t[q] = acc += T(0.01) + gap(gen);  // strictly increasing, uneven
    check<T, K>(t, gen, "non-uniform");
  }
}

template <typename T>
static void run_type(std::mt19937& gen) {
  run_k<T, 0>(gen);
  run_k<T, 1>(gen);
  run_k<T, 2>(gen);
  run_k<T, 3>(gen);
  run_k<T, 4>(gen);
  run_k<T, 5>(gen);
}

int main() {
  std::mt19937 gen(12345);
  run_type<float>(gen);
  run_type<double>(gen);
  std::printf("%s search: %ld blocks checked, %ld mismatches\n", VECTOR_NAME, checked, failures);
  return failures == 0 ? 0 : 1;
}
#else
int main() {
  std::printf("no AVX-512 (F and DQ) or AVX2 in this build: nothing to compare\n");
  return 77;
}
#endif
