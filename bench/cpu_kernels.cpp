// Microbenchmark of the CPU kernel bodies (csrc/cpu/kan_linear_kernels.h), one thread, no PyTorch:
// the forward of one layer (by rows on folded weights, and by column strips with the fold, as the
// fused op runs it where cpu::strip_cols says so), its backward (grad x and the weight gradients, and the
// fused backward's weight gradients on coef with their unfold), the B-spline bases of the
// forward and of the backward (with derivatives), and the fold / unfold between pykan's (in, out, G+k)
// layout and the kernels' (in, G+k, out), of the whole layer and one input per call. Arrays are
// 64-byte aligned, as torch's CPU tensors are.
// Timed as the thread's CPU time (steadier than wall time on a shared machine), minimum of 15 runs.
//
//   g++ -O3 -std=c++17 -march=native -fno-math-errno -ffp-contract=fast
//       -Icsrc/include -Icsrc/cpu bench/cpu_kernels.cpp -o /tmp/cpu_kernels      (one command;
//       add -DKANEXT_BENCH_DOUBLE for float64)
//   /tmp/cpu_kernels N IN OUT G [uniform|randn] [dump.bin]
//
// Inputs: x uniform inside the grid [-1, 1] (bench/harness.py's choice) or standard normal (about a
// third of the values then fall outside the grid or in its end intervals); silu base, k = 3, float32.
// With a dump path the forward's y is written there, to compare two builds of the header bit for bit
// (compile against a copy of an older header with -I<dir>).
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "kan_linear_kernels.h"

using namespace kanext;
#ifdef KANEXT_BENCH_DOUBLE
using T = double;
#else
using T = float;
#endif
constexpr int K = 3;
// the arrays 64-byte aligned, as torch's CPU tensors are (malloc's 16 bytes made every vector access of a
// row straddle two cache lines: the weight gradients ran 1.3x slower)
using Buf = cpu::scratch_vector<T>;

static double cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

template <typename F>
static double best_of(F&& f, int runs = 15) {
  double best = 1e30;
  for (int r = 0; r < runs; ++r) {
    const double t0 = cpu_seconds();
    f();
    best = std::min(best, cpu_seconds() - t0);
  }
  return best;
}

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: %s N IN OUT G [uniform|randn] [dump.bin]\n", argv[0]);
    return 2;
  }
  const int64_t N = std::atol(argv[1]), in = std::atol(argv[2]), out = std::atol(argv[3]), G = std::atol(argv[4]);
  const bool randn = argc > 5 && std::strcmp(argv[5], "randn") == 0;
  const int64_t M = G + 2 * K + 1, nb = G + K, P = M + 2 * K + 2;
  const int64_t base = kBaseSilu;
  std::mt19937 gen(0);
  std::normal_distribution<T> nd;
  std::uniform_real_distribution<T> ud(-0.999f, 0.999f);
  Buf x(N * in), grid(in * M), Wb(in * out), Wc(in * nb * out), y(N * out), padded(in * P);
  for (auto& v : x) v = randn ? nd(gen) : ud(gen);
  for (auto& v : Wb) v = 0.1f * nd(gen);
  for (auto& v : Wc) v = 0.1f * nd(gen);
  const T h = T(2) / T(G);
  for (int64_t i = 0; i < in; ++i) {
    for (int64_t q = 0; q < M; ++q) grid[i * M + q] = T(-1) + T(q - K) * h;
    cpu::pad_knots(grid.data() + i * M, M, K, padded.data() + i * P);
  }
  const double pairs = double(N) * double(in);
  T sink = 0;

  // forward, walked as the binding does (input tiles of ~256 KiB of Wc, 32-row blocks)
  const int64_t tile = std::max<int64_t>(1, (256 << 10) / std::max<int64_t>(1, nb * out * int64_t(sizeof(T))));
  const double t_fwd = best_of([&] {
    std::fill(y.begin(), y.end(), T(0));
    for (int64_t i0 = 0; i0 < in; i0 += tile)
      for (int64_t b = 0; b < N; b += cpu::kRows)
        cpu::kan_linear_forward_block<T, K>(x.data(), grid.data(), padded.data(), in, M, base, Wb.data(),
                                            Wc.data() + i0 * nb * out, y.data(), b, std::min(b + cpu::kRows, N), out,
                                            i0, std::min(i0 + tile, in));
    sink += y[0];
  });
  auto bases = [&](auto deriv) {
    return best_of([&] {
      cpu::BlockBases<T, K> bb;
      for (int64_t b = 0; b + cpu::kRows <= N; b += cpu::kRows)
        for (int64_t i = 0; i < in; ++i) {
          bb.template compute<decltype(deriv)::value>(x.data() + b * in + i, in, cpu::kRows, grid.data() + i * M,
                                                      padded.data() + i * P, M, base);
          sink += bb.v[1][3] + bb.bv[5] + T(bb.start[2]);
          if (decltype(deriv)::value) sink += bb.dv[0][7] + bb.dv[K][9] + bb.dbv[4];  // keeps the derivatives
        }
    });
  };
  const double t_bases = bases(std::false_type{}), t_dbases = bases(std::true_type{});
  // backward, all inputs in one call (the binding splits the inputs among threads)
  Buf gy(N * out), gx(N * in), gWb(in * out), gWc(in * nb * out);
  for (auto& v : gy) v = nd(gen);
  const double t_bwd = best_of([&] {
    cpu::kan_linear_backward_inputs<T, K>(gy.data(), x.data(), grid.data(), padded.data(), N, in, M, base, Wb.data(),
                                          Wc.data(), out, true, true, gx.data(), gWb.data(), gWc.data(), 0, in);
    sink += gx[0] + gWc[0];
  });
  // the weight gradients alone (x needs no gradient: a first layer, whose input is the data)
  const double t_bwd_w = best_of([&] {
    cpu::kan_linear_backward_inputs<T, K>(gy.data(), x.data(), grid.data(), padded.data(), N, in, M, base, Wb.data(),
                                          Wc.data(), out, false, true, gx.data(), gWb.data(), gWc.data(), 0, in);
    sink += gWb[0] + gWc[0];
  });
  Buf coef(in * out * nb), scale(in * out), gw(in * nb * out), w(in * nb * out), gc(in * out * nb),
      gs(in * out);
  for (auto& v : coef) v = nd(gen);
  for (auto& v : scale) v = nd(gen);
  for (auto& v : gw) v = nd(gen);
  const double t_fold = best_of([&] { cpu::fold_inputs(coef.data(), scale.data(), w.data(), 0, in, out, nb); }, 7);
  const double t_unfold = best_of(
      [&] { cpu::unfold_gradients(gw.data(), coef.data(), scale.data(), gc.data(), gs.data(), 0, in, out, nb); }, 7);
  // as the fused ops run them at large G+k: one input per call, into (from) a buffer that stays in L2, with
  // the next input's coef prefetched
  const double t_fold1 = best_of(
      [&] {
        for (int64_t i = 0; i < in; ++i) cpu::fold_inputs(coef.data(), scale.data(), w.data(), i, i + 1, out, nb, out, in);
      },
      7);
  const auto unfold1 = [&](bool stream) {
    return best_of(
        [&] {
          for (int64_t i = 0; i < in; ++i)
            cpu::unfold_gradients(gw.data(), coef.data(), scale.data(), gc.data(), gs.data(), i, i + 1, out, nb, in,
                                  stream);
        },
        7);
  };
  const double t_unfold1 = unfold1(false), t_unfold1s = unfold1(true);
  // the fused backward's weight gradients (what kan_linear_fused's backward runs without grad x): per chunk of
  // inputs, the gradient of the folded weights summed over the batch, then unfolded into grad coef / grad scale.
  // Its results must equal, bit for bit, the unfold of the weight gradients of the backward above (gWc, gWb).
  Buf gWbf(in * out), gc2(in * out * nb), gs2(in * out);
  const double t_bwd_fused = best_of([&] {
    cpu::kan_linear_fused_backward_inputs<T, K>(gy.data(), x.data(), grid.data(), padded.data(), N, in, M, base,
                                                Wb.data(), coef.data(), scale.data(), out, false, true, gx.data(),
                                                gWbf.data(), gc.data(), gs.data(), 0, in);
    sink += gc[0] + gs[0];
  });
  cpu::unfold_gradients(gWc.data(), coef.data(), scale.data(), gc2.data(), gs2.data(), 0, in, out, nb);
  const bool fused_same = std::memcmp(gc.data(), gc2.data(), gc.size() * sizeof(T)) == 0 &&
                          std::memcmp(gs.data(), gs2.data(), gs.size() * sizeof(T)) == 0 &&
                          std::memcmp(gWbf.data(), gWb.data(), gWb.size() * sizeof(T)) == 0;
  // the fused forward by column strips (what kan_linear_fused runs where cpu::strip_cols says so; elsewhere
  // the widest strips this build has, for comparison): fold into strips per input tile, passes of strip_pass_rows
  // rows; its y must equal the row forward's bit for bit
  double t_strips = -1;
  bool strips_same = false;
  const int64_t sc = cpu::strip_cols<T>(nb, out) > 0  ? cpu::strip_cols<T>(nb, out)
                     : cpu::kWideStrips && out >= cpu::kWideStripCols<T> ? cpu::kWideStripCols<T>
                     : sizeof(T) == 4 && out >= cpu::kFoldCols          ? cpu::kFoldCols
                                                                        : 0;
  if (sc > 0 && nb < cpu::kMaxStripKeys - 2) {
    Buf ys(N * out), yr(N * out), wt(in * nb * out);
    auto strips = [&] {
      cpu::forward_strips<T, K>(sc, x.data(), grid.data(), padded.data(), in, M, base, Wb.data(), coef.data(),
                                scale.data(), out, ys.data(), 0, N, out);
    };
    t_strips = best_of(strips);
    // the row forward on the same folded weights, for the bit comparison
    cpu::fold_inputs(coef.data(), scale.data(), wt.data(), 0, in, out, nb);
    std::fill(yr.begin(), yr.end(), T(0));
    for (int64_t b = 0; b < N; b += cpu::kRows)
      cpu::kan_linear_forward_block<T, K>(x.data(), grid.data(), padded.data(), in, M, base, Wb.data(), wt.data(),
                                          yr.data(), b, std::min(b + cpu::kRows, N), out, 0, in);
    strips_same = std::memcmp(ys.data(), yr.data(), ys.size() * sizeof(T)) == 0;
  }
  const double vals = double(in) * double(out) * double(nb);
  std::printf("N=%ld in=%ld out=%ld G=%ld x=%s (%s, k=3, silu, 1 thread, CPU time)\n", long(N), long(in),
              long(out), long(G), randn ? "randn" : "uniform", sizeof(T) == 4 ? "float32" : "float64");
  std::printf("  forward          %9.3f ms  %6.2f ns per (n, i)\n", t_fwd * 1e3, t_fwd * 1e9 / pairs);
  if (t_strips >= 0)
    std::printf("  forward, strips  %9.3f ms  %6.2f ns per (n, i)  (%ld columns, fold included; y %s the row forward's)%s\n",
                t_strips * 1e3, t_strips * 1e9 / pairs, long(sc), strips_same ? "bit-identical to" : "DIFFERS from",
                cpu::strip_cols<T>(nb, out) > 0 ? "" : "  [not used by the binding here]");
  std::printf("  backward         %9.3f ms  %6.2f ns per (n, i)\n", t_bwd * 1e3, t_bwd * 1e9 / pairs);
  std::printf("  backward, weights %8.3f ms  %6.2f ns per (n, i)  (no grad x)\n", t_bwd_w * 1e3, t_bwd_w * 1e9 / pairs);
  std::printf("  ..., fused       %9.3f ms  %6.2f ns per (n, i)  (on coef, the unfold included; grad coef, grad scale and grad Wb\n"
              "                                                %s the unfolded weight gradients')\n",
              t_bwd_fused * 1e3, t_bwd_fused * 1e9 / pairs, fused_same ? "bit-identical to" : "DIFFER from");
  std::printf("  bases            %9.3f ms  %6.2f ns per (n, i)\n", t_bases * 1e3, t_bases * 1e9 / pairs);
  std::printf("  bases + deriv    %9.3f ms  %6.2f ns per (n, i)\n", t_dbases * 1e3, t_dbases * 1e9 / pairs);
  std::printf("  fold             %9.3f ms  %6.2f ns per value\n", t_fold * 1e3, t_fold * 1e9 / vals);
  std::printf("  unfold           %9.3f ms  %6.2f ns per value\n", t_unfold * 1e3, t_unfold * 1e9 / vals);
  std::printf("  fold, 1 input    %9.3f ms  %6.2f ns per value  (one input per call, as the fused ops)\n",
              t_fold1 * 1e3, t_fold1 * 1e9 / vals);
  std::printf("  unfold, 1 input  %9.3f ms  %6.2f ns per value\n", t_unfold1 * 1e3, t_unfold1 * 1e9 / vals);
  std::printf("  ..., streamed    %9.3f ms  %6.2f ns per value  (grad coef written around the caches; the fused\n"
              "                                                backward does so from %d MiB of grad coef)\n",
              t_unfold1s * 1e3, t_unfold1s * 1e9 / vals, KANEXT_STREAM_MIB);
  if (argc > 6) {
    FILE* f = std::fopen(argv[6], "wb");
    bool ok = f != nullptr;
    for (const Buf* v : {&y, &gx, &gWb, &gWc})
      ok = ok && std::fwrite(v->data(), sizeof(T), v->size(), f) == v->size();
    if (!ok) {
      std::fprintf(stderr, "cannot write %s\n", argv[6]);
      return 1;
    }
    std::fclose(f);
  }
  return sink == T(12345.678f) ? 3 : 0;  // keeps the work observable
}
