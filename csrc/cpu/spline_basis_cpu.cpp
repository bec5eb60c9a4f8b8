// CPU implementation of spline_basis and spline_basis_deriv (schemas in csrc/ops.cpp; kernel
// bodies in kan_linear_kernels.h, binding helpers in op_common.h; CUDA twin
// csrc/cuda/spline_basis_cuda.cpp).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "kan_linear_kernels.h"
#include "kanext/checks.h"
#include "op_common.h"

namespace kanext {
namespace {

using cpu::check_grid_increasing;
using cpu::grain_for;

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

}  // namespace

TORCH_LIBRARY_IMPL(kanext, CPU, m) {
  m.impl("spline_basis", &spline_basis_cpu);
  m.impl("spline_basis_deriv", &spline_basis_deriv_cpu);
}

}  // namespace kanext
