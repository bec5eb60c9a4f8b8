// CPU implementation of the derivative ops of the per-channel activation:
// spline_activation_eval and spline_activation_wgrad (schemas and math in
// csrc/ops.cpp; kernel bodies in deriv_kernels.h; CUDA twin
// csrc/cuda/spline_activation_deriv_cuda.cpp; autograd in kanext/autodiff.py).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "deriv_kernels.h"
#include "kanext/checks.h"
#include "op_common.h"

namespace kanext {
namespace {

using cpu::dispatch_order;
using cpu::grain_for;

at::Tensor spline_activation_eval_cpu(const at::Tensor& z_, const at::Tensor& grid_, int64_t k, int64_t base,
                                      const at::Tensor& coef_, const at::Tensor& sb_, const at::Tensor& sp_,
                                      int64_t order) {
  const char* op = "kanext.spline_activation_eval";
  check_activation_args(op, z_, grid_, k, base, coef_, sb_, sp_);
  check_deriv_order(op, order, base);
  const at::Tensor z = z_.contiguous(), grid = grid_.contiguous(), coef = coef_.contiguous();
  const at::Tensor sb = sb_.contiguous(), sp = sp_.contiguous();
  cpu::check_grid_increasing(op, grid);
  const int64_t N = z.size(0), C = z.size(1), M = grid.size(1);
  at::Tensor y = at::zeros_like(z);
  if (N == 0 || C == 0) return y;
  AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "kanext_spline_activation_eval", [&] {
    dispatch_order(k, [&](auto K) {
      at::parallel_for(0, N, grain_for(C * 16 * (k + 2), 1), [&](int64_t n0, int64_t n1) {
        cpu::spline_activation_eval_rows<scalar_t, decltype(K)::value>(
            z.data_ptr<scalar_t>(), grid.data_ptr<scalar_t>(), C, M, static_cast<int>(order), base,
            coef.data_ptr<scalar_t>(), sb.data_ptr<scalar_t>(), sp.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(),
            n0, n1);
      });
    });
  });
  return y;
}

std::tuple<at::Tensor, at::Tensor> spline_activation_wgrad_cpu(const at::Tensor& gy_, const at::Tensor& z_,
                                                               const at::Tensor& grid_, int64_t k, int64_t base,
                                                               int64_t order) {
  const char* op = "kanext.spline_activation_wgrad";
  TORCH_CHECK(z_.dim() == 2, op, ": expected z of shape (N, C), got shape ", z_.sizes());
  const int64_t G = check_spline_args(op, z_, grid_, k);
  check_base(op, base);
  check_deriv_order(op, order, base);
  check_activation_grad(op, gy_, z_);
  const at::Tensor z = z_.contiguous(), grid = grid_.contiguous(), gy = gy_.contiguous();
  cpu::check_grid_increasing(op, grid);
  const int64_t N = z.size(0), C = z.size(1), M = grid.size(1);
  at::Tensor SB = at::zeros({C, G + k}, z.options());
  at::Tensor Sb = at::zeros({C}, z.options());
  if (N == 0 || C == 0) return {SB, Sb};
  AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "kanext_spline_activation_wgrad", [&] {
    dispatch_order(k, [&](auto K) {
      at::parallel_for(0, C, grain_for(N * 16 * (k + 2), 1), [&](int64_t c0, int64_t c1) {
        cpu::spline_activation_wgrad_channels<scalar_t, decltype(K)::value>(
            gy.data_ptr<scalar_t>(), z.data_ptr<scalar_t>(), grid.data_ptr<scalar_t>(), N, C, M,
            static_cast<int>(order), base, SB.data_ptr<scalar_t>(), Sb.data_ptr<scalar_t>(), c0, c1);
      });
    });
  });
  return {SB, Sb};
}

}  // namespace

TORCH_LIBRARY_IMPL(kanext, CPU, m) {
  m.impl("spline_activation_eval", &spline_activation_eval_cpu);
  m.impl("spline_activation_wgrad", &spline_activation_wgrad_cpu);
}

}  // namespace kanext
