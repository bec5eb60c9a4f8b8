// CPU implementation of spline_basis and spline_basis_deriv (schemas in csrc/ops.cpp; kernel
// bodies in kan_linear_kernels.h, binding helpers in op_common.h; CUDA twin
// csrc/cuda/spline_basis_cuda.cpp).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "deriv_kernels.h"
#include "kan_linear_kernels.h"
#include "kanext/checks.h"
#include "op_common.h"

namespace kanext {
namespace {

using cpu::check_grid_increasing;
using cpu::grain_for;

// order 0: the bases (spline_basis); order m >= 1: their m-th derivatives.
at::Tensor spline_basis_impl(const at::Tensor& x_, const at::Tensor& grid_, int64_t k, int64_t order) {
  const char* op = order > 0 ? "kanext.spline_basis_deriv" : "kanext.spline_basis";
  const int64_t G = check_spline_args(op, x_, grid_, k);
  check_deriv_order(op, order, kBaseZero);
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
      if (order <= 1)
        cpu::spline_basis_rows<scalar_t>(xp, tp, in, M, static_cast<int>(k), order == 1, op_, n0, n1);
      else
        cpu::spline_basis_deriv_rows<scalar_t>(xp, tp, in, M, static_cast<int>(k), static_cast<int>(order), op_,
                                               n0, n1);
    });
  });
  return out;
}

at::Tensor spline_basis_cpu(const at::Tensor& x, const at::Tensor& grid, int64_t k) {
  return spline_basis_impl(x, grid, k, 0);
}

at::Tensor spline_basis_deriv_cpu(const at::Tensor& x, const at::Tensor& grid, int64_t k, int64_t order) {
  TORCH_CHECK(order >= 1, "kanext.spline_basis_deriv: the derivative order must be >= 1 (spline_basis gives order 0), got ",
              order);
  return spline_basis_impl(x, grid, k, order);
}

}  // namespace

TORCH_LIBRARY_IMPL(kanext, CPU, m) {
  m.impl("spline_basis", &spline_basis_cpu);
  m.impl("spline_basis_deriv", &spline_basis_deriv_cpu);
}

}  // namespace kanext
