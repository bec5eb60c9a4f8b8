// CUDA binding of spline_basis and spline_basis_deriv (schemas in csrc/ops.cpp, kernels in
// spline_basis.cu and deriv.cu (orders >= 2), CPU twin csrc/cpu/spline_basis_cpu.cpp).
// See binding.h for what a binding does.
#include "binding.h"
#include "cuda_launch.h"

namespace kanext {
namespace {

// order 0: the bases; 1: their derivatives (spline_basis.cu); >= 2: higher
// derivatives (deriv.cu's kernel, which writes only the non-zero window).
at::Tensor spline_basis_impl(const at::Tensor& x_, const at::Tensor& grid_, int64_t k, int64_t order) {
  const char* op = order > 0 ? "kanext.spline_basis_deriv" : "kanext.spline_basis";
  const int64_t G = check_spline_args(op, x_, grid_, k);
  check_deriv_order(op, order, kBaseZero);
  check_on_cuda(op, x_, "x");
  check_knot_count(op, grid_);
  const c10::cuda::CUDAGuard guard(x_.device());
  const at::Tensor x = x_.contiguous(), grid = grid_.contiguous();
  maybe_check_grid_on_host(op, grid);
  const int64_t N = x.size(0), in = x.size(1), M = grid.size(1);
  // spline_basis.cu writes every element; deriv.cu only the window
  at::Tensor out = order <= 1 ? at::empty({N, in, G + k}, x.options()) : at::zeros({N, in, G + k}, x.options());
  if (N == 0 || in == 0) return out;
  const int kk = static_cast<int>(k), m = static_cast<int>(order);
  cudaError_t err;
  if (x.scalar_type() == at::kFloat) {
    const float *xp = x.data_ptr<float>(), *tp = grid.data_ptr<float>();
    err = order <= 1 ? cuda::launch_spline_basis_f32(xp, tp, N, in, M, kk, order == 1, out.data_ptr<float>(),
                                                     current_stream())
                     : cuda::launch_spline_basis_order_f32(xp, tp, N, in, M, kk, m, out.data_ptr<float>(),
                                                           current_stream());
  } else {
    const double *xp = x.data_ptr<double>(), *tp = grid.data_ptr<double>();
    err = order <= 1 ? cuda::launch_spline_basis_f64(xp, tp, N, in, M, kk, order == 1, out.data_ptr<double>(),
                                                     current_stream())
                     : cuda::launch_spline_basis_order_f64(xp, tp, N, in, M, kk, m, out.data_ptr<double>(),
                                                           current_stream());
  }
  C10_CUDA_CHECK(err);
  return out;
}

at::Tensor spline_basis_cuda(const at::Tensor& x, const at::Tensor& grid, int64_t k) {
  return spline_basis_impl(x, grid, k, 0);
}

at::Tensor spline_basis_deriv_cuda(const at::Tensor& x, const at::Tensor& grid, int64_t k, int64_t order) {
  TORCH_CHECK(order >= 1, "kanext.spline_basis_deriv: the derivative order must be >= 1 (spline_basis gives order 0), got ",
              order);
  return spline_basis_impl(x, grid, k, order);
}

}  // namespace

TORCH_LIBRARY_IMPL(kanext, CUDA, m) {
  m.impl("spline_basis", &spline_basis_cuda);
  m.impl("spline_basis_deriv", &spline_basis_deriv_cuda);
}

}  // namespace kanext
