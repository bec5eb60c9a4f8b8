// CPU implementation of spline_activation and its backward (schemas in
// csrc/ops.cpp, kernel bodies in spline_activation_kernels.h and
// spline_activation_avx512.h): checks, the per-call tables (O(C M k^2),
// independent of N), dispatch (AVX-512 row path or general path), and
// at::parallel_for over rows. The weight gradients are reduced over fixed
// row chunks whose number depends only on the shapes, then added in a fixed
// order: the result is bit-identical for any thread count.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "kanext/checks.h"
#include "op_common.h"
#include "spline_activation_avx512.h"
#include "spline_activation_kernels.h"

namespace kanext {
namespace {

using cpu::check_grid_increasing;
using cpu::dispatch_bool;
using cpu::dispatch_order;

// Everything the kernels read, owned here (see cpu::ActTables).
template <typename T>
struct Tables {
  at::Tensor lo, hi, ibw, lut, P, bp;
  cpu::ActTables<T> view;
#ifdef __AVX512F__
  at::Tensor rec, sb16;  // the row path's per-channel records (see avx512::RowTables)
  cpu::avx512::RowTables rows{};
#endif
  bool use_rows = false;
};

#ifdef __AVX512F__
// The AVX-512 row path serves float32 with at most 16 knots per channel and
// a bucket table of at most 32 entries (all but very uneven grids). Setting
// KANEXT_SPLINE_ROWS=0 forces the general path (tests compare the two).
bool row_path_wanted() {
  const char* e = std::getenv("KANEXT_SPLINE_ROWS");
  return !(e && std::strcmp(e, "0") == 0);
}

// Packs the general path's tables into one 16-slot record per channel.
template <typename T>
void make_row_tables(Tables<T>& tb, int64_t k, const at::Tensor& sb) {
  namespace ax = cpu::avx512;
  const cpu::ActTables<T>& v = tb.view;
  const int64_t C = v.C, M = v.M, NB = v.NB, K1 = k + 1, C16 = (C + 15) / 16 * 16;
  const int64_t RS = ax::row_stride(static_cast<int>(k));
  tb.rec = at::zeros({C16 * RS}, sb.options().dtype(at::kFloat));
  tb.sb16 = at::zeros({C16}, sb.options().dtype(at::kFloat));
  float* rec = tb.rec.template data_ptr<float>();
  float* sb16 = tb.sb16.template data_ptr<float>();
  const int K = static_cast<int>(k);
  for (int64_t c = 0; c < C; ++c) {
    float* r = rec + c * RS;
    for (int64_t q = 0; q < ax::kMaxSlots; ++q)
      r[q] = q < M ? float(v.t[c * M + q]) : std::numeric_limits<float>::infinity();
    int32_t lut[ax::kMaxBuckets];
    for (int64_t b = 0; b < ax::kMaxBuckets; ++b) lut[b] = b < NB ? v.lut[c * NB + b] : 0;
    std::memcpy(r + 16, lut, sizeof lut);
    for (int64_t p = 0; p < K1; ++p)
      for (int64_t q = 0; q < M; ++q) r[ax::off_P(static_cast<int>(p)) + q] = float(v.P[(c * M + q) * K1 + p]);
    for (int q = 0; q < K; ++q)
      for (int64_t g = 0; g < M; ++g) r[ax::off_dP(K, q) + g] = float(q + 1) * r[ax::off_P(q + 1) + g];
    r[ax::off_scalars(K) + 0] = float(v.lo[c]);
    r[ax::off_scalars(K) + 1] = float(v.hi[c]);
    r[ax::off_scalars(K) + 2] = float(v.ibw[c]);
    sb16[c] = float(v.sb[c]);
  }
  tb.rows = ax::RowTables{rec, sb16, C, static_cast<int>(M), static_cast<int>(NB), v.steps};
}
#endif

template <typename T>
Tables<T> make_tables(const at::Tensor& grid, int64_t k, const at::Tensor& coef, const at::Tensor& sb,
                      const at::Tensor& sp) {
  const int64_t C = grid.size(0), M = grid.size(1), K1 = k + 1, nb = M - k - 1;
  const auto opt = grid.options();
  Tables<T> tb;
  tb.lo = at::empty({C}, opt);
  tb.hi = at::empty({C}, opt);
  tb.ibw = at::empty({C}, opt);
  tb.P = at::empty({C, M, K1}, opt);
  tb.bp = at::empty({C, M - 1, K1, K1}, opt.dtype(at::kDouble));
  const T* t = grid.template data_ptr<T>();
  const T* cf = coef.template data_ptr<T>();
  const T* spp = sp.template data_ptr<T>();
  T *lo = tb.lo.template data_ptr<T>(), *hi = tb.hi.template data_ptr<T>(), *ibw = tb.ibw.template data_ptr<T>(), *P = tb.P.template data_ptr<T>();
  double* bp = tb.bp.template data_ptr<double>();
  // Buckets: 2 per interval, 4x more (at most three times) while some
  // channel needs more than 3 forward steps (very uneven knots); the kernels
  // take however many steps the last table needs. The number depends only on
  // the grid.
  int64_t NB = 2 * (M - 1);
  std::vector<int32_t> lut;
  int steps = 0;
  for (int attempt = 0;; ++attempt) {
    lut.assign(C * NB, 0);
    std::vector<int> st(C, 0);
    at::parallel_for(0, C, std::max<int64_t>(64, cpu::kMinTaskWork / (NB * M)), [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) st[c] = cpu::build_lookup<T>(t + c * M, M, NB, lut.data() + c * NB, ibw + c);
    });
    steps = *std::max_element(st.begin(), st.end());
    if (steps <= 3 || attempt == 3) break;  // (NB must stay the size lut was built with)
    NB *= 4;
  }
  tb.lut = at::empty({C, NB}, opt.dtype(at::kInt));
  std::copy(lut.begin(), lut.end(), tb.lut.template data_ptr<int32_t>());
  at::parallel_for(0, C, std::max<int64_t>(16, cpu::kMinTaskWork / (8 * M * K1 * K1)), [&](int64_t c0, int64_t c1) {
    std::vector<double> td(M);
    for (int64_t c = c0; c < c1; ++c) {
      for (int64_t q = 0; q < M; ++q) td[q] = double(t[c * M + q]);
      lo[c] = t[c * M];
      hi[c] = t[c * M + M - 1];
      double* bpc = bp + c * (M - 1) * K1 * K1;
      cpu::basis_polynomials(td.data(), M, static_cast<int>(k), bpc);
      const double s = double(spp[c]);
      for (int64_t g = 0; g < M - 1; ++g)
        for (int64_t p = 0; p < K1; ++p) {
          double acc = 0.0;
          for (int64_t q = 0; q < K1; ++q) {
            const int64_t b = g - k + q;
            if (b >= 0 && b < nb) acc += double(cf[c * nb + b]) * bpc[(g * K1 + q) * K1 + p];
          }
          P[(c * M + g) * K1 + p] = T(s * acc);
        }
      for (int64_t p = 0; p < K1; ++p) P[(c * M + M - 1) * K1 + p] = T(0);
    }
  });
  tb.view = cpu::ActTables<T>{t,  lo,     hi,   ibw,
                              tb.lut.template data_ptr<int32_t>(), P, sb.template data_ptr<T>(), C, M, NB, steps};
#ifdef __AVX512F__
  if (std::is_same<T, float>::value && M <= cpu::avx512::kMaxSlots && NB <= cpu::avx512::kMaxBuckets &&
      row_path_wanted()) {
    make_row_tables<T>(tb, k, sb);
    tb.use_rows = true;
  }
#endif
  return tb;
}

at::Tensor spline_activation_cpu(const at::Tensor& z_, const at::Tensor& grid_, int64_t k, int64_t base,
                                 const at::Tensor& coef_, const at::Tensor& sb_, const at::Tensor& sp_) {
  const char* op = "kanext.spline_activation";
  check_activation_args(op, z_, grid_, k, base, coef_, sb_, sp_);
  const at::Tensor grid = grid_.contiguous();
  check_grid_increasing(op, grid);
  const int64_t N = z_.size(0), C = z_.size(1);
  if (N == 0 || C == 0) return at::empty({N, C}, z_.options());
  const at::Tensor z = z_.contiguous(), coef = coef_.contiguous(), sb = sb_.contiguous(), sp = sp_.contiguous();
  at::Tensor y = cpu::pooled_empty({N, C}, z.options());
  AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "kanext_spline_activation", [&] {
    const Tables<scalar_t> tb = make_tables<scalar_t>(grid, k, coef, sb, sp);
    const scalar_t* zp = z.template data_ptr<scalar_t>();
    scalar_t* yp = y.template data_ptr<scalar_t>();
    const int64_t grain = std::max<int64_t>(1, cpu::kMinTaskWork / (8 * std::max<int64_t>(C, 1)));
    dispatch_order(k, [&](auto K) {
      auto run = [&](auto B) {
#ifdef __AVX512F__
        if constexpr (std::is_same<scalar_t, float>::value) {
          if (tb.use_rows) {
            at::parallel_for(0, N, grain, [&](int64_t n0, int64_t n1) {
              cpu::avx512::forward_rows<decltype(K)::value, decltype(B)::value>(tb.rows, zp, yp, n0, n1);
            });
            return;
          }
        }
#endif
        at::parallel_for(0, N, grain, [&](int64_t n0, int64_t n1) {
          cpu::spline_activation_forward_rows<scalar_t, decltype(K)::value, decltype(B)::value>(tb.view, zp, yp,
                                                                                                 n0, n1);
        });
      };
      if (base == kBaseSilu) run(std::integral_constant<int, kBaseSilu>{});
      else if (base == kBaseIdentity) run(std::integral_constant<int, kBaseIdentity>{});
      else run(std::integral_constant<int, kBaseZero>{});
    });
  });
  return y;
}

// Row chunks of the weight reduction: a function of the shapes only (never of
// the thread count), at least 256 rows each, at most 64, and at most ~64 MiB
// of partial moments in all.
int64_t num_chunks(int64_t N, int64_t per_chunk_bytes) {
  int64_t n = std::min<int64_t>(64, (N + 255) / 256);
  n = std::min<int64_t>(n, std::max<int64_t>(1, (int64_t(64) << 20) / std::max<int64_t>(1, per_chunk_bytes)));
  return std::max<int64_t>(1, n);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> spline_activation_backward_cpu(
    const at::Tensor& gy_, const at::Tensor& z_, const at::Tensor& grid_, int64_t k, int64_t base,
    const at::Tensor& coef_, const at::Tensor& sb_, const at::Tensor& sp_, bool need_z, bool need_w) {
  const char* op = "kanext.spline_activation_backward";
  check_activation_args(op, z_, grid_, k, base, coef_, sb_, sp_);
  check_activation_grad(op, gy_, z_);
  const at::Tensor grid = grid_.contiguous();
  check_grid_increasing(op, grid);
  const int64_t N = z_.size(0), C = z_.size(1), M = grid.size(1), K1 = k + 1, nb = M - k - 1;
  const at::Tensor coef = coef_.contiguous(), sb = sb_.contiguous(), sp = sp_.contiguous();
  at::Tensor gz = (need_z ? cpu::pooled_empty : cpu::pooled_zeros)({N, C}, z_.options());
  at::Tensor gcoef = at::zeros({C, nb}, z_.options()), gsb = at::zeros({C}, z_.options()),
             gsp = at::zeros({C}, z_.options());
  if (N == 0 || C == 0 || (!need_z && !need_w)) return {gz.zero_(), gcoef, gsb, gsp};
  const at::Tensor z = z_.contiguous(), gy = cpu::pooled_contiguous(gy_);
  AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "kanext_spline_activation_backward", [&] {
    using T = scalar_t;
    const Tables<T> tb = make_tables<T>(grid, k, coef, sb, sp);
    const T *zp = z.template data_ptr<T>(), *gyp = gy.template data_ptr<T>();
    T* gzp = gz.template data_ptr<T>();
    const int64_t per = C * M * K1 + C;  // one chunk's moments and base sums
    const int64_t chunks = need_w ? num_chunks(N, per * int64_t(sizeof(T))) : 1;
    const int64_t rows = (N + chunks - 1) / chunks;
    at::Tensor part = need_w ? at::zeros({chunks, per}, z.options()) : at::Tensor();
    T* partp = need_w ? part.template data_ptr<T>() : nullptr;
    dispatch_order(k, [&](auto K) {
      dispatch_bool(need_z, [&](auto NZ) {
        dispatch_bool(need_w, [&](auto NW) {
          auto run = [&](auto B) {
            constexpr int KK = decltype(K)::value, BB = decltype(B)::value;
            constexpr bool NZZ = decltype(NZ)::value, NWW = decltype(NW)::value;
#ifdef __AVX512F__
            if constexpr (std::is_same<T, float>::value) {
              if (tb.use_rows) {
                if (!NWW) {
                  const int64_t grain = std::max<int64_t>(1, cpu::kMinTaskWork / (8 * C));
                  at::parallel_for(0, N, grain, [&](int64_t n0, int64_t n1) {
                    cpu::avx512::backward_rows<KK, BB, NZZ, false>(tb.rows, gyp, zp, gzp, nullptr, n0, n1);
                  });
                  return;
                }
                // Per chunk: moments in the row path's blocked workspace, then
                // copied into the chunk's (C, M, K+1) partial in the general layout.
                const int64_t cgrain = std::max<int64_t>(1, cpu::kMinTaskWork / std::max<int64_t>(1, 8 * rows * C));
                at::parallel_for(0, chunks, cgrain, [&](int64_t a, int64_t e) {
                  namespace ax = cpu::avx512;
                  const int64_t SL = ax::ws_slots(KK, static_cast<int>(M)), C16 = (C + 15) / 16 * 16;
                  std::vector<float> ws(ax::ws_floats(KK, static_cast<int>(M), C));
                  for (int64_t ch = a; ch < e; ++ch) {
                    const int64_t n0 = ch * rows, n1 = std::min(N, n0 + rows);
                    if (n0 >= n1) continue;
                    std::fill(ws.begin(), ws.end(), 0.0f);
                    ax::backward_rows<KK, BB, NZZ, true>(tb.rows, gyp, zp, gzp, ws.data(), n0, n1);
                    T* mom = partp + ch * per;
                    for (int64_t c = 0; c < C; ++c) {
                      const float* wb = ws.data() + (c / 16) * SL * K1 * 16 + c % 16;
                      for (int64_t g = 0; g < M - 1; ++g)
                        for (int64_t p = 0; p < K1; ++p) mom[(c * M + g) * K1 + p] = wb[(g * K1 + p) * 16];
                      mom[C * M * K1 + c] = ws[C16 * SL * K1 + c];
                    }
                  }
                });
                return;
              }
            }
#endif
            if (!NWW) {  // no reduction: any row split will do
              const int64_t grain = std::max<int64_t>(1, cpu::kMinTaskWork / (8 * C));
              at::parallel_for(0, N, grain, [&](int64_t n0, int64_t n1) {
                cpu::spline_activation_backward_rows<T, KK, BB, NZZ, false>(tb.view, gyp, zp, gzp, nullptr,
                                                                            nullptr, n0, n1);
              });
              return;
            }
            // Small problems stay on the calling thread (waking workers costs more).
            const int64_t cgrain = std::max<int64_t>(1, cpu::kMinTaskWork / std::max<int64_t>(1, 8 * rows * C));
            at::parallel_for(0, chunks, cgrain, [&](int64_t a, int64_t e) {
              for (int64_t ch = a; ch < e; ++ch) {
                const int64_t n0 = ch * rows, n1 = std::min(N, n0 + rows);
                if (n0 >= n1) continue;
                T* mom = partp + ch * per;
                cpu::spline_activation_backward_rows<T, KK, BB, NZZ, NWW>(tb.view, gyp, zp, gzp, mom,
                                                                          mom + C * M * K1, n0, n1);
              }
            });
          };
          if (base == kBaseSilu) run(std::integral_constant<int, kBaseSilu>{});
          else if (base == kBaseIdentity) run(std::integral_constant<int, kBaseIdentity>{});
          else run(std::integral_constant<int, kBaseZero>{});
        });
      });
    });
    if (need_w) {
      // Fixed-order combine in double, then the moments -> basis sums S[c, b].
      const double* bp = tb.bp.template data_ptr<double>();
      const T *cf = coef.template data_ptr<T>(), *spp = sp.template data_ptr<T>();
      T *gcp = gcoef.template data_ptr<T>(), *gsbp = gsb.template data_ptr<T>(), *gspp = gsp.template data_ptr<T>();
      const int64_t wgrain = std::max<int64_t>(16, cpu::kMinTaskWork / ((chunks + 2 * K1) * M * K1));
      at::parallel_for(0, C, wgrain, [&](int64_t c0, int64_t c1) {
        std::vector<double> mom(M * K1);
        for (int64_t c = c0; c < c1; ++c) {
          std::fill(mom.begin(), mom.end(), 0.0);
          double s_b = 0.0;
          for (int64_t ch = 0; ch < chunks; ++ch) {
            const T* pm = partp + ch * per + c * M * K1;
            for (int64_t q = 0; q < (M - 1) * K1; ++q) mom[q] += double(pm[q]);
            s_b += double(partp[ch * per + C * M * K1 + c]);
          }
          gsbp[c] = T(s_b);
          const double* bpc = bp + c * (M - 1) * K1 * K1;
          double s_sp = 0.0;
          for (int64_t b = 0; b < nb; ++b) {
            double S = 0.0;
            for (int64_t q = 0; q < K1; ++q) {
              const int64_t g = b + k - q;
              if (g < 0 || g > M - 2) continue;
              for (int64_t p = 0; p < K1; ++p) S += bpc[(g * K1 + q) * K1 + p] * mom[g * K1 + p];
            }
            gcp[c * nb + b] = T(double(spp[c]) * S);
            s_sp += double(cf[c * nb + b]) * S;
          }
          gspp[c] = T(s_sp);
        }
      });
    }
  });
  return {gz, gcoef, gsb, gsp};
}

}  // namespace

TORCH_LIBRARY_IMPL(kanext, CPU, m) {
  m.impl("spline_activation", &spline_activation_cpu);
  m.impl("spline_activation_backward", &spline_activation_backward_cpu);
}

}  // namespace kanext
