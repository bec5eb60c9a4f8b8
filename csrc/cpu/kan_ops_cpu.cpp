// CPU implementations of the kanext ops (schemas in csrc/ops.cpp). Kernel
// bodies are in kan_linear_kernels.h, shared binding helpers in op_common.h;
// this file checks, allocates, dispatches on dtype and order k, and
// parallelises with at::parallel_for.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

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

at::Tensor spline_basis_impl(const at::Tensor& x_, const at::Tensor& grid_, int64_t k, bool deriv) {
  const char* op = deriv ? "kanext.spline_basis_deriv" : "kanext.spline_basis";
  const int64_t G = check_spline_args(op, x_, grid_, k);
  const at::Tensor x = x_.contiguous(), grid = grid_.contiguous();
  check_grid_increasing(op, grid);
  const int64_t N = x.size(0), in = x.size(1), M = grid.size(1);
  at::Tensor out = at::zeros({N, in, G + k}, x.options());
  if (N == 0 || in == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "kanext_spline_basis", [&] {
    const scalar_t* xp = x.data_ptr<scalar_t>();
    const scalar_t* tp = grid.data_ptr<scalar_t>();
    scalar_t* op_ = out.data_ptr<scalar_t>();
    at::parallel_for(0, N, grain_for(in * (G + 2 * k) * (k + 1), 1), [&](int64_t n0, int64_t n1) {
      cpu::spline_basis_rows<scalar_t>(xp, tp, in, M, static_cast<int>(k), deriv, op_, n0, n1);
    });
  });
  return out;
}

at::Tensor spline_basis_cpu(const at::Tensor& x, const at::Tensor& grid, int64_t k) {
  return spline_basis_impl(x, grid, k, false);
}

at::Tensor spline_basis_deriv_cpu(const at::Tensor& x, const at::Tensor& grid, int64_t k) {
  return spline_basis_impl(x, grid, k, true);
}

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
  at::Tensor y = at::empty({N, out}, x.options());  // each block zeroes its own rows
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
                xp, tp, pp, in, M, base, wbp, wcp, yp, b, std::min(b + kRowBlock, n1), out, i0,
                std::min(i0 + tile, in));
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
  TORCH_CHECK(gy_.dim() == 2 && gy_.size(0) == x_.size(0) && gy_.size(1) == Wb_.size(1), op,
              ": expected grad_y of shape (N, out) = (", x_.size(0), ", ", Wb_.size(1), "), got ", gy_.sizes());
  TORCH_CHECK(gy_.scalar_type() == x_.scalar_type() && gy_.device() == x_.device(), op,
              ": grad_y must match x in dtype and device");
  const at::Tensor x = x_.contiguous(), grid = grid_.contiguous(), Wb = Wb_.contiguous(), Wc = Wc_.contiguous();
  const at::Tensor gy = gy_.contiguous();
  check_grid_increasing(op, grid);
  const int64_t N = x.size(0), in = x.size(1), M = grid.size(1), out = Wb.size(1);
  if (N == 0 || in == 0 || out == 0 || (!need_x && !need_w))
    return {at::zeros_like(x), at::zeros_like(Wb), at::zeros_like(Wc)};
  // The kernel writes every element of what it is asked for (each thread
  // zeroes its own weight-gradient slices); skipped outputs are zeros.
  at::Tensor gx = need_x ? at::empty_like(x) : at::zeros_like(x);
  at::Tensor gWb = need_w ? at::empty_like(Wb) : at::zeros_like(Wb);
  at::Tensor gWc = need_w ? at::empty_like(Wc) : at::zeros_like(Wc);
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
                                                                      need_x, need_w, gxp, gwbp, gwcp, i0, i1);
      });
    });
  });
  return {gx, gWb, gWc};
}

}  // namespace

TORCH_LIBRARY_IMPL(kanext, CPU, m) {
  m.impl("spline_basis", &spline_basis_cpu);
  m.impl("spline_basis_deriv", &spline_basis_deriv_cpu);
  m.impl("kan_linear_forward", &kan_linear_forward_cpu);
  m.impl("kan_linear_backward", &kan_linear_backward_cpu);
}

}  // namespace kanext
