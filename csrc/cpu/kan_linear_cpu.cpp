// CPU implementation of kan_linear_forward / _backward (schemas in csrc/ops.cpp; kernel bodies
// in kan_linear_kernels.h, binding helpers in op_common.h; CUDA twin csrc/cuda/kan_linear_cuda.cpp):
// checks, allocates, dispatches on dtype and order k, and parallelises with at::parallel_for.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <type_traits>
#include <vector>

#include "kan_linear_kernels.h"
#include "kanext/backend.h"
#include "kanext/checks.h"
#include "op_common.h"

namespace kanext {
namespace {

using cpu::check_grid_increasing;
using cpu::dispatch_order;
using cpu::grain_for;
using cpu::padded_knots;

constexpr int64_t kRowBlock = cpu::kRows;  // batch rows per forward task: a y block stays in L1

at::Tensor kan_linear_forward_cpu(const at::Tensor& x_, const at::Tensor& grid_, int64_t k, int64_t base,
                                  const at::Tensor& Wb_, const at::Tensor& Wc_, int64_t backend) {
  const char* op = "kanext.kan_linear_forward";
  check_backend(op, backend);  // a CUDA strategy: validated, then ignored (the CPU has one)
  const int64_t G = check_spline_args(op, x_, grid_, k);
  check_weights(op, x_, G, k, Wb_, Wc_);
  check_base(op, base);
  const at::Tensor x = x_.contiguous(), grid = grid_.contiguous(), Wb = Wb_.contiguous(), Wc = Wc_.contiguous();
  check_grid_increasing(op, grid);
  const int64_t N = x.size(0), in = x.size(1), M = grid.size(1), out = Wb.size(1);
  if (N == 0 || in == 0 || out == 0) return at::zeros({N, out}, x.options());
  at::Tensor y = cpu::pooled_empty({N, out}, x.options());  // each block zeroes its own rows
  const at::Tensor padded = padded_knots(grid, k);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "kanext_kan_linear_forward", [&] {
    const scalar_t *xp = x.data_ptr<scalar_t>(), *tp = grid.data_ptr<scalar_t>();
    const scalar_t* pp = padded.data_ptr<scalar_t>();
    const scalar_t *wbp = Wb.data_ptr<scalar_t>(), *wcp = Wc.data_ptr<scalar_t>();
    scalar_t* yp = y.data_ptr<scalar_t>();
    dispatch_order(k, [&](auto K) {
      const int64_t grain = grain_for(in * (out + 8) * (k + 2), kRowBlock);
      // Inputs are walked in tiles whose Wc rows (~256 KiB) stay in L2 while
      // every row block of this thread's range passes over them.
      const int64_t tile = std::max<int64_t>(1, (256 << 10) / std::max<int64_t>(1, (G + k) * out * sizeof(scalar_t)));
      at::parallel_for(0, N, grain, [&](int64_t n0, int64_t n1) {
        std::fill(yp + n0 * out, yp + n1 * out, scalar_t(0));
        for (int64_t i0 = 0; i0 < in; i0 += tile)
          for (int64_t b = n0; b < n1; b += kRowBlock)
            cpu::kan_linear_forward_block<scalar_t, decltype(K)::value>(
                xp, tp, pp, in, M, base, wbp, wcp + i0 * (G + k) * out, yp, b, std::min(b + kRowBlock, n1), out,
                i0, std::min(i0 + tile, in));
      });
    });
  });
  return y;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> kan_linear_backward_cpu(
    const at::Tensor& gy_, const at::Tensor& x_, const at::Tensor& grid_, int64_t k, int64_t base,
    const at::Tensor& Wb_, const at::Tensor& Wc_, bool need_x, bool need_w, int64_t backend) {
  const char* op = "kanext.kan_linear_backward";
  check_backend(op, backend);
  const int64_t G = check_spline_args(op, x_, grid_, k);
  check_weights(op, x_, G, k, Wb_, Wc_);
  check_base(op, base);
  check_linear_grad(op, gy_, x_, Wb_.size(1));
  const at::Tensor x = x_.contiguous(), grid = grid_.contiguous(), Wb = Wb_.contiguous(), Wc = Wc_.contiguous();
  at::Tensor gy;
  int64_t ldg = 0;
  std::tie(gy, ldg) = cpu::grad_rows(gy_);
  check_grid_increasing(op, grid);
  const int64_t N = x.size(0), in = x.size(1), M = grid.size(1), out = Wb.size(1);
  // The kernel writes every element of what it is asked for (each thread
  // zeroes its own weight-gradient slices); skipped outputs are stride-0
  // zeros (cpu::backward_output).
  const bool empty = N == 0 || in == 0 || out == 0;
  at::Tensor gx = cpu::backward_output(need_x, empty, x), gWb = cpu::backward_output(need_w, empty, Wb),
             gWc = cpu::backward_output(need_w, empty, Wc);
  if (empty || (!need_x && !need_w)) return {gx, gWb, gWc};
  const at::Tensor padded = padded_knots(grid, k);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "kanext_kan_linear_backward", [&] {
    const scalar_t *xp = x.data_ptr<scalar_t>(), *tp = grid.data_ptr<scalar_t>();
    const scalar_t *wbp = Wb.data_ptr<scalar_t>(), *wcp = Wc.data_ptr<scalar_t>();
    const scalar_t* gyp = gy.data_ptr<scalar_t>();
    const scalar_t* pp = padded.data_ptr<scalar_t>();
    scalar_t *gxp = gx.data_ptr<scalar_t>(), *gwbp = gWb.data_ptr<scalar_t>(), *gwcp = gWc.data_ptr<scalar_t>();
    dispatch_order(k, [&](auto K) {
      at::parallel_for(0, in, grain_for(N * (out + 8) * (k + 2), 1), [&](int64_t i0, int64_t i1) {
        cpu::kan_linear_backward_inputs<scalar_t, decltype(K)::value>(gyp, xp, tp, pp, N, in, M, base, wbp, wcp, out,
                                                                      need_x, need_w, gxp, gwbp, gwcp, i0, i1,
                                                                      ldg);
      });
    });
  });
  return {gx, gWb, gWc};
}

// Whether the fused forward splits its work by columns instead of rows. A
// task folds the coef of every column it computes, for every input: split
// by rows, each of T tasks folds all in (G+k) out values; split by columns,
// the fold is shared out, but each task computes the bases of all N rows
// and its columns are fewer (shallower row groups, no strips). Measured
// (2 threads, float32, bench/RESULTS.md): by columns is 1.15-2.2x faster
// where (G+k) out >= 30 N (64 x 1024 -> 1024 G=100: 88 -> 42 ms), 1.02-1.05x
// at 23-26 N, and 0.4-0.8x below 7 N, on an AVX-512 machine. On an AVX2
// one (Zen 3) by rows was still 1.03-1.15x faster at 26 N (1024 x 256 ->
// 256 G=100: 12.1-12.7 against 13.6-14.1 ms) and the two tie at 32-41 N
// (bench/RESULTS.md, "eleventh pass"), hence 30 N there. (Measured before
// the wide strips: see kan_linear_fused_cpu for how those change it.) Both
// splits give the same bits.
#if defined(__AVX512F__)
constexpr int64_t kColumnsRatio = 20;
#else
constexpr int64_t kColumnsRatio = 30;
#endif
inline bool forward_by_columns(int64_t N, int64_t in, int64_t nb, int64_t out, int64_t threads) {
  return threads > 1 && out >= 2 * cpu::kFoldCols && in * nb * out >= cpu::kMinTaskWork &&
         kColumnsRatio * N <= nb * out;
}

// kan_linear_fused: the forward on pykan's coef (in, out, G+k) and scale
// (in, out), with the fold done per input tile into a scratch buffer that
// stays in cache (each task folds the tiles it walks), so that no (in, G+k,
// out) tensor is written or read back: kan_linear_forward's cost, without
// the separate fold pass over in (G+k) out values.
at::Tensor kan_linear_fused_cpu(const at::Tensor& x_, const at::Tensor& grid_, int64_t k, int64_t base,
                                const at::Tensor& Wb_, const at::Tensor& coef_, const at::Tensor& scale_,
                                int64_t backend) {
  const char* op = "kanext.kan_linear_fused";
  check_backend(op, backend);
  const int64_t G = check_fused_args(op, x_, grid_, k, base, Wb_, coef_, scale_);
  const at::Tensor x = x_.contiguous(), grid = grid_.contiguous(), Wb = Wb_.contiguous();
  const at::Tensor coef = coef_.contiguous(), scale = scale_.contiguous();
  check_grid_increasing(op, grid);
  const int64_t N = x.size(0), in = x.size(1), M = grid.size(1), out = Wb.size(1), nb = G + k;
  if (N == 0 || in == 0 || out == 0) return at::zeros({N, out}, x.options());
  at::Tensor y = cpu::pooled_empty({N, out}, x.options());
  const at::Tensor padded = padded_knots(grid, k);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "kanext_kan_linear_fused", [&] {
    const scalar_t *xp = x.data_ptr<scalar_t>(), *tp = grid.data_ptr<scalar_t>();
    const scalar_t* pp = padded.data_ptr<scalar_t>();
    const scalar_t *wbp = Wb.data_ptr<scalar_t>(), *cp = coef.data_ptr<scalar_t>(), *sp = scale.data_ptr<scalar_t>();
    scalar_t* yp = y.data_ptr<scalar_t>();
    dispatch_order(k, [&](auto K) {
      const int64_t grain = grain_for(in * (out + 8) * (k + 2), kRowBlock);
      constexpr int K_ = decltype(K)::value;
      const bool far = cpu::stream_grad_coef<scalar_t>(in, out, nb);  // (coef as large as grad coef)
      // Rows [n0, n1) of the columns [o0, o0 + cols) into yd (cols wide, row
      // n at yd + n cols), with wb the (in, cols) base weights of those
      // columns; the fold reads coef's column slice.
      const auto rows = [&](int64_t n0, int64_t n1, int64_t o0, int64_t cols, const scalar_t* wb, scalar_t* yd) {
        const int64_t t = std::min<int64_t>(
            in, std::max<int64_t>(1, (256 << 10) / std::max<int64_t>(1, nb * cols * sizeof(scalar_t))));
        cpu::scratch_vector<scalar_t> wc(static_cast<size_t>(t * nb * cols));
        std::fill(yd + n0 * cols, yd + n1 * cols, scalar_t(0));
        for (int64_t i0 = 0; i0 < in; i0 += t) {
          const int64_t i1 = std::min(i0 + t, in);
          cpu::fold_inputs(cp + o0 * nb, sp + o0, wc.data(), i0, i1, cols, nb, out, in);
          // the next tile's coef into L2 while this one computes, a step per row
          // and input, where coef is past what the caches keep (cpu::TilePrefetch)
          const int64_t next = far ? std::min(i1 + t, in) : i1;
          cpu::TilePrefetch<scalar_t> pf(cp + o0 * nb, i1, next, out, nb, cols, (n1 - n0) * (i1 - i0));
          for (int64_t b = n0; b < n1; b += kRowBlock)
            cpu::kan_linear_forward_block<scalar_t, K_>(xp, tp, pp, in, M, base, wb, wc.data(), yd, b,
                                                        std::min(b + kRowBlock, n1), cols, i0, i1, &pf);
        }
      };
      const int64_t threads = at::get_num_threads();
      // Where the split by rows takes strips, it stays by rows unless each
      // column task gets at least 256 columns (measured, 2 threads, forward
      // alone: 1024 x 256 -> 256 G=100 by rows 10.5 ms, by columns 11.2;
      // 1024 x 1024 -> 1024 G=20 by columns 76.6, by rows 86.7), or, with
      // wide strips, two of those (since the strips' weight window and
      // prefetched fold, forward + backward, 2 threads: 1024 x 256 -> 256
      // G=100 1.04x faster by columns, 64 rows 1.28x, float64 64 x 128 ->
      // 128 1.33x; 64-column tasks of float32 a tie; bench/RESULTS.md,
      // twenty-fifth pass). Column tasks take strips too where they have at
      // least 128 rows (at 64 x 1024 -> 1024 G=100 they were 1.16x slower
      // than the row forward).
      const bool row_strips = cpu::strip_cols<scalar_t, K_>(nb, out) > 0;
      const bool wide_tasks = cpu::kWideStrips && out >= 2 * cpu::kWideStripCols<scalar_t> * threads;
      if (forward_by_columns(N, in, nb, out, threads) && (!row_strips || out >= 256 * threads || wide_tasks)) {
        // Few rows against the weights: split the columns, so that each
        // task folds only its own slice of coef (split by rows, every task
        // folds all of it). Slices start at multiples of kFoldCols (of the
        // strip width where the slices take strips), so each y element gets
        // the same operations in the same order: y is bit-identical to the
        // split by rows.
        const int64_t sc = N >= 128 ? cpu::strip_cols<scalar_t, K_>(nb, (out + threads - 1) / threads) : 0;
        const int64_t width = sc > 0 ? sc : cpu::kFoldCols, blocks = (out + width - 1) / width;
        at::parallel_for(0, blocks, (blocks + threads - 1) / threads, [&](int64_t b0, int64_t b1) {
          const int64_t o0 = b0 * width, cols = std::min(b1 * width, out) - o0;
          cpu::scratch_vector<scalar_t> wb(static_cast<size_t>(in * cols)), yd(static_cast<size_t>(N * cols));
          for (int64_t i = 0; i < in; ++i) std::copy(wbp + i * out + o0, wbp + i * out + o0 + cols, wb.data() + i * cols);
          if (sc > 0)
            cpu::forward_strips<scalar_t, K_>(sc, xp, tp, pp, in, M, base, wb.data(), cp + o0 * nb, sp + o0, out,
                                              yd.data(), 0, N, cols);
          else
            rows(0, N, o0, cols, wb.data(), yd.data());
          for (int64_t n = 0; n < N; ++n) std::copy(yd.data() + n * cols, yd.data() + (n + 1) * cols, yp + n * out + o0);
        });
        return;
      }
      // the forward by column strips where it pays (cpu::strip_cols)
      const int64_t sc = cpu::strip_cols<scalar_t, K_>(nb, out);
      if (sc > 0) {
        at::parallel_for(0, N, grain, [&](int64_t n0, int64_t n1) {
          cpu::forward_strips<scalar_t, K_>(sc, xp, tp, pp, in, M, base, wbp, cp, sp, out, yp, n0, n1, out);
        });
        return;
      }
      at::parallel_for(0, N, grain, [&](int64_t n0, int64_t n1) { rows(n0, n1, 0, out, wbp, yp); });
    });
  });
  return y;
}

// Its backward: (grad_x, grad_Wb, grad_coef, grad_scale), parallel over
// inputs as kan_linear_backward, with the fold and its backward done per
// chunk of inputs in cache (cpu::kan_linear_fused_backward_inputs).
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> kan_linear_fused_backward_cpu(
    const at::Tensor& gy_, const at::Tensor& x_, const at::Tensor& grid_, int64_t k, int64_t base,
    const at::Tensor& Wb_, const at::Tensor& coef_, const at::Tensor& scale_, bool need_x, bool need_w,
    int64_t backend) {
  const char* op = "kanext.kan_linear_fused_backward";
  check_backend(op, backend);
  check_fused_args(op, x_, grid_, k, base, Wb_, coef_, scale_);
  check_linear_grad(op, gy_, x_, Wb_.size(1));
  const at::Tensor x = x_.contiguous(), grid = grid_.contiguous(), Wb = Wb_.contiguous();
  const at::Tensor coef = coef_.contiguous(), scale = scale_.contiguous();
  at::Tensor gy;
  int64_t ldg = 0;
  std::tie(gy, ldg) = cpu::grad_rows(gy_);
  check_grid_increasing(op, grid);
  const int64_t N = x.size(0), in = x.size(1), M = grid.size(1), out = Wb.size(1);
  const bool empty = N == 0 || in == 0 || out == 0;  // (skipped outputs: stride-0 zeros)
  at::Tensor gx = cpu::backward_output(need_x, empty, x), gWb = cpu::backward_output(need_w, empty, Wb);
  at::Tensor gc = cpu::backward_output(need_w, empty, coef), gs = cpu::backward_output(need_w, empty, scale);
  if (empty || (!need_x && !need_w)) return {gx, gWb, gc, gs};
  const at::Tensor padded = padded_knots(grid, k);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "kanext_kan_linear_fused_backward", [&] {
    const scalar_t *xp = x.data_ptr<scalar_t>(), *tp = grid.data_ptr<scalar_t>();
    const scalar_t *wbp = Wb.data_ptr<scalar_t>(), *cp = coef.data_ptr<scalar_t>(), *sp = scale.data_ptr<scalar_t>();
    const scalar_t* gyp = gy.data_ptr<scalar_t>();
    const scalar_t* pp = padded.data_ptr<scalar_t>();
    scalar_t *gxp = gx.data_ptr<scalar_t>(), *gwbp = gWb.data_ptr<scalar_t>();
    scalar_t *gcp = gc.data_ptr<scalar_t>(), *gsp = gs.data_ptr<scalar_t>();
    dispatch_order(k, [&](auto K) {
      at::parallel_for(0, in, grain_for(N * (out + 8) * (k + 2), 1), [&](int64_t i0, int64_t i1) {
        cpu::kan_linear_fused_backward_inputs<scalar_t, decltype(K)::value>(
            gyp, xp, tp, pp, N, in, M, base, wbp, cp, sp, out, need_x, need_w, gxp, gwbp, gcp, gsp, i0, i1, ldg);
      });
    });
  });
  return {gx, gWb, gc, gs};
}

}  // namespace

TORCH_LIBRARY_IMPL(kanext, CPU, m) {
  m.impl("kan_linear_forward", &kan_linear_forward_cpu);
  m.impl("kan_linear_backward", &kan_linear_backward_cpu);
  m.impl("kan_linear_fused", &kan_linear_fused_cpu);
  m.impl("kan_linear_fused_backward", &kan_linear_fused_backward_cpu);
}

}  // namespace kanext
