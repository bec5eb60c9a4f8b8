// CUDA binding of spline_basis and spline_basis_deriv (schemas in csrc/ops.cpp, kernel in
// spline_basis.cu, CPU twin csrc/cpu/spline_basis_cpu.cpp). See binding.h for what a binding does.
#include "binding.h"
#include "cuda_launch.h"

namespace kanext {
namespace {

at::Tensor spline_basis_impl(const at::Tensor& x_, const at::Tensor& grid_, int64_t k, bool deriv) {
  const char* op = deriv ? "kanext.spline_basis_deriv" : "kanext.spline_basis";
  const int64_t G = check_spline_args(op, x_, grid_, k);
  check_on_cuda(op, x_, "x");
  check_knot_count(op, grid_);
  const c10::cuda::CUDAGuard guard(x_.device());
  const at::Tensor x = x_.contiguous(), grid = grid_.contiguous();
  maybe_check_grid_on_host(op, grid);
  const int64_t N = x.size(0), in = x.size(1), M = grid.size(1);
  at::Tensor out = at::empty({N, in, G + k}, x.options());  // every element is written
  if (N == 0 || in == 0) return out;
  cudaError_t err;
  if (x.scalar_type() == at::kFloat)
    err = cuda::launch_spline_basis_f32(x.data_ptr<float>(), grid.data_ptr<float>(), N, in, M, static_cast<int>(k),
                                        deriv, out.data_ptr<float>(), current_stream());
  else
    err = cuda::launch_spline_basis_f64(x.data_ptr<double>(), grid.data_ptr<double>(), N, in, M,
                                        static_cast<int>(k), deriv, out.data_ptr<double>(), current_stream());
  C10_CUDA_CHECK(err);
  return out;
}

at::Tensor spline_basis_cuda(const at::Tensor& x, const at::Tensor& grid, int64_t k) {
  return spline_basis_impl(x, grid, k, false);
}

at::Tensor spline_basis_deriv_cuda(const at::Tensor& x, const at::Tensor& grid, int64_t k) {
  return spline_basis_impl(x, grid, k, true);
}

}  // namespace

TORCH_LIBRARY_IMPL(kanext, CUDA, m) {
  m.impl("spline_basis", &spline_basis_cuda);
  m.impl("spline_basis_deriv", &spline_basis_deriv_cuda);
}

}  // namespace kanext
