// CUDA binding of spline_activation and its backward (schemas in csrc/ops.cpp, kernels in
// spline_activation.cu, CPU twin csrc/cpu/spline_activation_cpu.cpp). See binding.h for what a
// binding does.
#include "binding.h"
#include "cuda_launch_stats.h"

namespace kanext {
namespace {

at::Tensor spline_activation_cuda(const at::Tensor& z_, const at::Tensor& grid_, int64_t k, int64_t base,
                                  const at::Tensor& coef_, const at::Tensor& sb_, const at::Tensor& sp_) {
  const char* op = "kanext.spline_activation";
  check_activation_args(op, z_, grid_, k, base, coef_, sb_, sp_);
  check_on_cuda(op, z_, "z");
  check_knot_count(op, grid_);
  const c10::cuda::CUDAGuard guard(z_.device());
  const at::Tensor grid = grid_.contiguous();
  maybe_check_grid_on_host(op, grid);
  const int64_t N = z_.size(0), C = z_.size(1), M = grid.size(1);
  if (N == 0 || C == 0) return at::empty({N, C}, z_.options());
  const at::Tensor z = z_.contiguous(), coef = coef_.contiguous(), sb = sb_.contiguous(), sp = sp_.contiguous();
  at::Tensor y = at::empty({N, C}, z.options());  // every element is written
  const int kk = static_cast<int>(k), bb = static_cast<int>(base);
  cudaError_t err;
  if (z.scalar_type() == at::kFloat)
    err = cuda::launch_spline_activation_f32(z.data_ptr<float>(), grid.data_ptr<float>(), N, C, M, kk, bb,
                                             coef.data_ptr<float>(), sb.data_ptr<float>(), sp.data_ptr<float>(),
                                             y.data_ptr<float>(), current_stream());
  else
    err = cuda::launch_spline_activation_f64(z.data_ptr<double>(), grid.data_ptr<double>(), N, C, M, kk, bb,
                                             coef.data_ptr<double>(), sb.data_ptr<double>(), sp.data_ptr<double>(),
                                             y.data_ptr<double>(), current_stream());
  C10_CUDA_CHECK(err);
  return y;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> spline_activation_backward_cuda(
    const at::Tensor& gy_, const at::Tensor& z_, const at::Tensor& grid_, int64_t k, int64_t base,
    const at::Tensor& coef_, const at::Tensor& sb_, const at::Tensor& sp_, bool need_z, bool need_w) {
  const char* op = "kanext.spline_activation_backward";
  check_activation_args(op, z_, grid_, k, base, coef_, sb_, sp_);
  check_activation_grad(op, gy_, z_);
  check_on_cuda(op, z_, "z");
  check_knot_count(op, grid_);
  const c10::cuda::CUDAGuard guard(z_.device());
  const at::Tensor grid = grid_.contiguous();
  maybe_check_grid_on_host(op, grid);
  const int64_t N = z_.size(0), C = z_.size(1), M = grid.size(1), nb = M - k - 1;
  const auto opt = z_.options();
  if (N == 0 || C == 0 || (!need_z && !need_w))
    return {at::zeros({N, C}, opt), at::zeros({C, nb}, opt), at::zeros({C}, opt), at::zeros({C}, opt)};
  const at::Tensor z = z_.contiguous(), gy = gy_.contiguous(), coef = coef_.contiguous(), sb = sb_.contiguous(),
                   sp = sp_.contiguous();
  // The kernels write every element of what they are asked for; skipped outputs are zeros.
  at::Tensor gz = need_z ? at::empty({N, C}, opt) : at::zeros({N, C}, opt);
  at::Tensor gc = need_w ? at::empty({C, nb}, opt) : at::zeros({C, nb}, opt);
  at::Tensor gsb = need_w ? at::empty({C}, opt) : at::zeros({C}, opt);
  at::Tensor gsp = need_w ? at::empty({C}, opt) : at::zeros({C}, opt);
  const int kk = static_cast<int>(k), bb = static_cast<int>(base);
  const size_t ws_bytes = cuda::spline_activation_backward_workspace_bytes(N, C, M, kk, z.element_size(), need_w);
  const at::Tensor ws = workspace(ws_bytes, z);
  cudaError_t err;
  if (z.scalar_type() == at::kFloat)
    err = cuda::launch_spline_activation_backward_f32(
        gy.data_ptr<float>(), z.data_ptr<float>(), grid.data_ptr<float>(), N, C, M, kk, bb, coef.data_ptr<float>(),
        sb.data_ptr<float>(), sp.data_ptr<float>(), need_z, need_w, gz.data_ptr<float>(), gc.data_ptr<float>(),
        gsb.data_ptr<float>(), gsp.data_ptr<float>(), ws_ptr(ws), ws_bytes, current_stream());
  else
    err = cuda::launch_spline_activation_backward_f64(
        gy.data_ptr<double>(), z.data_ptr<double>(), grid.data_ptr<double>(), N, C, M, kk, bb,
        coef.data_ptr<double>(), sb.data_ptr<double>(), sp.data_ptr<double>(), need_z, need_w,
        gz.data_ptr<double>(), gc.data_ptr<double>(), gsb.data_ptr<double>(), gsp.data_ptr<double>(), ws_ptr(ws),
        ws_bytes, current_stream());
  C10_CUDA_CHECK(err);
  return {gz, gc, gsb, gsp};
}

}  // namespace

TORCH_LIBRARY_IMPL(kanext, CUDA, m) {
  m.impl("spline_activation", &spline_activation_cuda);
  m.impl("spline_activation_backward", &spline_activation_backward_cuda);
}

}  // namespace kanext
