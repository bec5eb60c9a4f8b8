// CUDA binding of spline_activation_eval and spline_activation_wgrad (schemas in
// csrc/ops.cpp, kernels in deriv.cu, CPU twin csrc/cpu/spline_activation_deriv_cpu.cpp).
// See binding.h for what a binding does.
#include "binding.h"
#include "cuda_launch.h"

namespace kanext {
namespace {

at::Tensor spline_activation_eval_cuda(const at::Tensor& z_, const at::Tensor& grid_, int64_t k, int64_t base,
                                       const at::Tensor& coef_, const at::Tensor& sb_, const at::Tensor& sp_,
                                       int64_t order) {
  const char* op = "kanext.spline_activation_eval";
  check_activation_args(op, z_, grid_, k, base, coef_, sb_, sp_);
  check_deriv_order(op, order, base);
  check_on_cuda(op, z_, "z");
  check_knot_count(op, grid_);
  maybe_check_grid_on_host(op, grid_);
  const c10::cuda::CUDAGuard guard(z_.device());
  const at::Tensor z = z_.contiguous(), grid = grid_.contiguous(), coef = coef_.contiguous();
  const at::Tensor sb = sb_.contiguous(), sp = sp_.contiguous();
  const int64_t N = z.size(0), C = z.size(1), M = grid.size(1);
  at::Tensor y = at::zeros_like(z);
  if (N == 0 || C == 0) return y;
  const int kk = static_cast<int>(k), m = static_cast<int>(order);
  cudaError_t err;
  if (z.scalar_type() == at::kFloat)
    err = cuda::launch_spline_activation_eval_f32(z.data_ptr<float>(), grid.data_ptr<float>(), N, C, M, kk, m, base,
                                                  coef.data_ptr<float>(), sb.data_ptr<float>(), sp.data_ptr<float>(),
                                                  y.data_ptr<float>(), current_stream());
  else
    err = cuda::launch_spline_activation_eval_f64(z.data_ptr<double>(), grid.data_ptr<double>(), N, C, M, kk, m, base,
                                                  coef.data_ptr<double>(), sb.data_ptr<double>(),
                                                  sp.data_ptr<double>(), y.data_ptr<double>(), current_stream());
  C10_CUDA_CHECK(err);
  return y;
}

std::tuple<at::Tensor, at::Tensor> spline_activation_wgrad_cuda(const at::Tensor& gy_, const at::Tensor& z_,
                                                                const at::Tensor& grid_, int64_t k, int64_t base,
                                                                int64_t order) {
  const char* op = "kanext.spline_activation_wgrad";
  TORCH_CHECK(z_.dim() == 2, op, ": expected z of shape (N, C), got shape ", z_.sizes());
  const int64_t G = check_spline_args(op, z_, grid_, k);
  check_base(op, base);
  check_deriv_order(op, order, base);
  check_activation_grad(op, gy_, z_);
  check_on_cuda(op, z_, "z");
  check_knot_count(op, grid_);
  maybe_check_grid_on_host(op, grid_);
  const c10::cuda::CUDAGuard guard(z_.device());
  const at::Tensor z = z_.contiguous(), grid = grid_.contiguous(), gy = gy_.contiguous();
  const int64_t N = z.size(0), C = z.size(1), M = grid.size(1);
  at::Tensor SB = at::zeros({C, G + k}, z.options());  // accumulated in place
  at::Tensor Sb = at::zeros({C}, z.options());
  if (N == 0 || C == 0) return {SB, Sb};
  const int kk = static_cast<int>(k), m = static_cast<int>(order);
  cudaError_t err;
  if (z.scalar_type() == at::kFloat)
    err = cuda::launch_spline_activation_wgrad_f32(gy.data_ptr<float>(), z.data_ptr<float>(), grid.data_ptr<float>(),
                                                   N, C, M, kk, m, base, SB.data_ptr<float>(), Sb.data_ptr<float>(),
                                                   current_stream());
  else
    err = cuda::launch_spline_activation_wgrad_f64(gy.data_ptr<double>(), z.data_ptr<double>(),
                                                   grid.data_ptr<double>(), N, C, M, kk, m, base,
                                                   SB.data_ptr<double>(), Sb.data_ptr<double>(), current_stream());
  C10_CUDA_CHECK(err);
  return {SB, Sb};
}

}  // namespace

TORCH_LIBRARY_IMPL(kanext, CUDA, m) {
  m.impl("spline_activation_eval", &spline_activation_eval_cuda);
  m.impl("spline_activation_wgrad", &spline_activation_wgrad_cuda);
}

}  // namespace kanext
