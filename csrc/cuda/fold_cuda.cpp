// CUDA binding of fold_spline_weights and its backward (schemas in csrc/ops.cpp, kernels in
// fold.cu, CPU twin csrc/cpu/fold_cpu.cpp). See binding.h for what a binding does.
#include "binding.h"
#include "cuda_launch.h"

namespace kanext {
namespace {

void check_fold_cuda(const char* op, const at::Tensor& coef, const at::Tensor& scale) {
  check_fold(op, coef, scale);  // kanext/checks.h: the CPU binding's checks and messages
  check_on_cuda(op, coef, "coef");
}

at::Tensor fold_cuda(const at::Tensor& coef_, const at::Tensor& scale_) {
  const char* op = "kanext.fold_spline_weights";
  check_fold_cuda(op, coef_, scale_);
  const c10::cuda::CUDAGuard guard(coef_.device());
  const at::Tensor coef = coef_.contiguous(), scale = scale_.contiguous();
  const int64_t in = coef.size(0), out = coef.size(1), nb = coef.size(2);
  at::Tensor Wc = at::empty({in, nb, out}, coef.options());
  if (Wc.numel() == 0) return Wc;
  cudaError_t err;
  if (coef.scalar_type() == at::kFloat)
    err = cuda::launch_fold_spline_weights_f32(coef.data_ptr<float>(), scale.data_ptr<float>(), in, out, nb,
                                               Wc.data_ptr<float>(), current_stream());
  else
    err = cuda::launch_fold_spline_weights_f64(coef.data_ptr<double>(), scale.data_ptr<double>(), in, out, nb,
                                               Wc.data_ptr<double>(), current_stream());
  C10_CUDA_CHECK(err);
  return Wc;
}

std::tuple<at::Tensor, at::Tensor> fold_backward_cuda(const at::Tensor& gW_, const at::Tensor& coef_,
                                                      const at::Tensor& scale_) {
  const char* op = "kanext.fold_spline_weights_backward";
  check_fold_cuda(op, coef_, scale_);
  const int64_t in = coef_.size(0), out = coef_.size(1), nb = coef_.size(2);
  TORCH_CHECK(gW_.dim() == 3 && gW_.size(0) == in && gW_.size(1) == nb && gW_.size(2) == out, op,
              ": expected grad_Wc of shape (", in, ", ", nb, ", ", out, "), got ", gW_.sizes());
  TORCH_CHECK(gW_.scalar_type() == coef_.scalar_type(), op, ": grad_Wc dtype differs from coef dtype");
  TORCH_CHECK(gW_.device() == coef_.device(), op, ": grad_Wc is on ", gW_.device(), " but coef is on ",
              coef_.device());
  const c10::cuda::CUDAGuard guard(coef_.device());
  const at::Tensor gW = gW_.contiguous(), coef = coef_.contiguous(), scale = scale_.contiguous();
  at::Tensor gc = at::empty_like(coef), gs = at::empty_like(scale);
  if (gs.numel() == 0) return {gc, gs};
  cudaError_t err;
  if (coef.scalar_type() == at::kFloat)
    err = cuda::launch_fold_spline_weights_backward_f32(gW.data_ptr<float>(), coef.data_ptr<float>(),
                                                        scale.data_ptr<float>(), in, out, nb, gc.data_ptr<float>(),
                                                        gs.data_ptr<float>(), current_stream());
  else
    err = cuda::launch_fold_spline_weights_backward_f64(gW.data_ptr<double>(), coef.data_ptr<double>(),
                                                        scale.data_ptr<double>(), in, out, nb, gc.data_ptr<double>(),
                                                        gs.data_ptr<double>(), current_stream());
  C10_CUDA_CHECK(err);
  // grad_coef keeps coef's layout, as on the CPU (KANLinear keeps coef in the
  // (in, G+k, out) kernel layout); the fake kernel says so too.
  if (gc.strides() != coef_.strides()) gc = at::empty_like(coef_).copy_(gc);
  return {gc, gs};
}

}  // namespace

TORCH_LIBRARY_IMPL(kanext, CUDA, m) {
  m.impl("fold_spline_weights", &fold_cuda);
  m.impl("fold_spline_weights_backward", &fold_backward_cuda);
}

}  // namespace kanext
