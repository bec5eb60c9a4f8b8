// The CPU kernels' fold and its backward (cpu::fold_inputs, cpu::unfold_gradients in
// csrc/cpu/kan_linear_kernels.h), whichever walk this build has (by L x L tiles, or by kFoldCols-column
// blocks on AVX-512 and without vector shuffles), against plain loops, bit for bit:
//   w[i][g][j] = coef[i][j][g] * scale[i][j],  gc[i][j][g] = gw[i][g][j] * scale[i][j],
//   gs[i][j]   = sum over g = 0, 1, ... of gw[i][g][j] * coef[i][j][g] (in that order; on AVX-512
//                builds where cpu::unfold_by_rows, for the columns in whole vectors: L partial sums,
//                lane l over g = l mod L in order, then added pairwise, as unfold_gradients_rows does),
// for float and double, outputs and G+k that are and are not multiples of the vector width, column
// slices of coef (ld > out: the fused forward split by columns), input ranges of one or several inputs,
// prefetching on and off, grad coef streamed to memory or not, and NaN / inf in coef (they must stay in their own elements). Built with
// -ffp-contract=off, so that neither side fuses a multiply-add the other does not. Run by
// tests/test_build_tools.py.
//
//   g++ -O2 -std=c++17 -ffp-contract=off -march=native -Icsrc/include -Icsrc/cpu tests/native/fold.cpp -o /tmp/fold
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "kan_linear_kernels.h"

using namespace kanext::cpu;

static long checks = 0, mismatches = 0;

template <typename T>
static bool same(T a, T b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

// gs[i][j] as the unfold sums it: over g in order, or by unfold_gradients_rows' L partial sums.
template <typename T>
static T unfold_sum(const std::vector<T>& gw, const std::vector<T>& coef, int64_t i, int64_t j, int64_t out,
                    int64_t nb) {
#ifdef KANEXT_MASKED_TRANSPOSE
  constexpr int L = kLanes<T>;
  if (unfold_by_rows<T>(nb) && j < out / L * L) {
    T p[L] = {};
    for (int64_t g = 0; g < nb; ++g) p[g % L] += gw[(i * nb + g) * out + j] * coef[(i * out + j) * nb + g];
    for (int h = L / 2; h > 0; h /= 2)
      for (int l = 0; l < h; ++l) p[l] += p[l + h];
    return p[0];
  }
#endif
  T sum = 0;
  for (int64_t g = 0; g < nb; ++g) sum += gw[(i * nb + g) * out + j] * coef[(i * out + j) * nb + g];
  return sum;
}

template <typename T>
static void check(int64_t in, int64_t ld, int64_t o0, int64_t out, int64_t nb, int64_t step, bool prefetch,
                  bool stream, std::mt19937& gen) {
  std::normal_distribution<T> nd;
  std::vector<T> coef(in * ld * nb), scale(in * ld), gw(in * nb * out);
  for (auto& v : coef) v = nd(gen);
  for (auto& v : scale) v = nd(gen);
  for (auto& v : gw) v = nd(gen);
  if (coef.size() > 3) {
    coef[1] = std::numeric_limits<T>::infinity();
    coef[coef.size() / 2] = std::numeric_limits<T>::quiet_NaN();
  }
  // the fold of columns [o0, o0 + out) of every input, `step` inputs per call
  std::vector<T> w(in * nb * out, T(-7));
  for (int64_t i0 = 0; i0 < in; i0 += step) {
    const int64_t i1 = std::min(i0 + step, in);
    fold_inputs(coef.data() + o0 * nb, scale.data() + o0, w.data() + i0 * nb * out, i0, i1, out, nb, ld,
                prefetch ? in : i1);
  }
  for (int64_t i = 0; i < in; ++i)
    for (int64_t g = 0; g < nb; ++g)
      for (int64_t j = 0; j < out; ++j) {
        const T want = coef[(i * ld + o0 + j) * nb + g] * scale[i * ld + o0 + j];
        ++checks;
        if (!same(w[(i * nb + g) * out + j], want) && ++mismatches <= 5)
          std::printf("fold mismatch: %s in=%ld out=%ld nb=%ld i=%ld g=%ld j=%ld\n", sizeof(T) == 4 ? "float" : "double",
                      long(in), long(out), long(nb), long(i), long(g), long(j));
      }
  if (ld != out) return;  // the unfold takes whole rows of coef
  std::vector<T> gc(in * out * nb, T(-7)), gs(in * out, T(-7));
  for (int64_t i0 = 0; i0 < in; i0 += step) {
    const int64_t i1 = std::min(i0 + step, in);
    unfold_gradients(gw.data() + i0 * nb * out, coef.data(), scale.data(), gc.data(), gs.data(), i0, i1, out, nb,
                     prefetch ? in : i1, stream);
  }
  for (int64_t i = 0; i < in; ++i)
    for (int64_t j = 0; j < out; ++j) {
      const T sum = unfold_sum(gw, coef, i, j, out, nb);
      for (int64_t g = 0; g < nb; ++g) {
        const T gv = gw[(i * nb + g) * out + j];
        ++checks;
        if (!same(gc[(i * out + j) * nb + g], T(gv * scale[i * out + j])) && ++mismatches <= 5)
          std::printf("unfold (grad coef) mismatch: out=%ld nb=%ld i=%ld j=%ld g=%ld\n", long(out), long(nb), long(i),
                      long(j), long(g));
      }
      ++checks;
      if (!same(gs[i * out + j], sum) && ++mismatches <= 5)
        std::printf("unfold (grad scale) mismatch: out=%ld nb=%ld i=%ld j=%ld: %.9g vs %.9g\n", long(out), long(nb),
                    long(i), long(j), double(gs[i * out + j]), double(sum));
    }
}

template <typename T>
static void run(std::mt19937& gen) {
  const int64_t outs[] = {1, 3, 8, 13, 16, 33, 64, 70};
  const int64_t nbs[] = {1, 4, 7, 8, 9, 16, 23, 47, 48, 53, 103};  // (float32's rows walk from 48 on AVX-512)
  for (int64_t out : outs)
    for (int64_t nb : nbs)
      for (int64_t step : {1, 3})
        for (bool prefetch : {false, true}) {
          check<T>(5, out, 0, out, nb, step, prefetch, !prefetch, gen);  // grad coef streamed or not
          check<T>(4, out + 21, 5, out, nb, step, prefetch, false, gen);  // a column slice
        }
}

int main() {
  std::mt19937 gen(7);
  run<float>(gen);
  run<double>(gen);
  // AVX-512 builds: the fold by column blocks below nb = 2 L and by tiles
  // from there (cpu::fold_by_tiles: nb 23 in double, 47 on in both); the
  // unfold by rows (double; float from nb = 48) or column blocks
#ifdef KANEXT_MASKED_TRANSPOSE
  const char* unfold = "column blocks and rows";
#else
  const char* unfold = kFoldByTiles ? "tiles" : "column blocks";
#endif
  std::printf("fold by %s, unfold by %s: %ld values checked, %ld mismatches\n",
              kFoldByTiles ? "tiles" : (kFoldTilesBuilt ? "column blocks and tiles" : "column blocks"), unfold, checks,
              mismatches);
  return mismatches == 0 ? 0 : 1;
}
