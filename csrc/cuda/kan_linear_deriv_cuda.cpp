// CUDA binding of kan_linear_eval, kan_linear_transpose and kan_linear_wgrad
// (schemas in csrc/ops.cpp, kernels in deriv.cu, CPU twin
// csrc/cpu/kan_linear_deriv_cpu.cpp). See binding.h for what a binding does.
#include "binding.h"
#include "cuda_launch.h"

namespace kanext {
namespace {

int64_t check_cuda_deriv(const char* op, const at::Tensor& x, const at::Tensor& grid, int64_t k, int64_t base,
                         int64_t order) {
  const int64_t G = check_spline_args(op, x, grid, k);
  check_base(op, base);
  check_deriv_order(op, order, base);
  check_on_cuda(op, x, "x");
  check_knot_count(op, grid);
  maybe_check_grid_on_host(op, grid);
  return G;
}

template <typename T>
const T* opt(const c10::optional<at::Tensor>& v) {
  return v.has_value() ? v->data_ptr<T>() : nullptr;
}

at::Tensor kan_linear_eval_cuda(const at::Tensor& x_, const c10::optional<at::Tensor>& v_, const at::Tensor& grid_,
                                int64_t k, int64_t base, const at::Tensor& Wb_, const at::Tensor& Wc_, int64_t order) {
  const char* op = "kanext.kan_linear_eval";
  const int64_t G = check_cuda_deriv(op, x_, grid_, k, base, order);
  check_weights(op, x_, G, k, Wb_, Wc_);
  check_row_weight(op, v_, x_);
  const c10::cuda::CUDAGuard guard(x_.device());
  const at::Tensor x = x_.contiguous(), grid = grid_.contiguous(), Wb = Wb_.contiguous(), Wc = Wc_.contiguous();
  const c10::optional<at::Tensor> v = v_.has_value() ? c10::optional<at::Tensor>(v_->contiguous()) : c10::nullopt;
  const int64_t N = x.size(0), in = x.size(1), M = grid.size(1), out = Wb.size(1);
  at::Tensor y = at::zeros({N, out}, x.options());
  if (N == 0 || in == 0 || out == 0) return y;
  const int kk = static_cast<int>(k), m = static_cast<int>(order);
  cudaError_t err;
  if (x.scalar_type() == at::kFloat)
    err = cuda::launch_kan_linear_eval_f32(x.data_ptr<float>(), opt<float>(v), grid.data_ptr<float>(), N, in, M, kk,
                                           m, base, Wb.data_ptr<float>(), Wc.data_ptr<float>(), out,
                                           y.data_ptr<float>(), current_stream());
  else
    err = cuda::launch_kan_linear_eval_f64(x.data_ptr<double>(), opt<double>(v), grid.data_ptr<double>(), N, in, M,
                                           kk, m, base, Wb.data_ptr<double>(), Wc.data_ptr<double>(), out,
                                           y.data_ptr<double>(), current_stream());
  C10_CUDA_CHECK(err);
  return y;
}

at::Tensor kan_linear_transpose_cuda(const at::Tensor& dy_, const at::Tensor& x_, const at::Tensor& grid_, int64_t k,
                                     int64_t base, const at::Tensor& Wb_, const at::Tensor& Wc_, int64_t order) {
  const char* op = "kanext.kan_linear_transpose";
  const int64_t G = check_cuda_deriv(op, x_, grid_, k, base, order);
  check_weights(op, x_, G, k, Wb_, Wc_);
  check_linear_grad(op, dy_, x_, Wb_.size(1));
  const c10::cuda::CUDAGuard guard(x_.device());
  const at::Tensor x = x_.contiguous(), grid = grid_.contiguous(), Wb = Wb_.contiguous(), Wc = Wc_.contiguous();
  const at::Tensor dy = dy_.contiguous();
  const int64_t N = x.size(0), in = x.size(1), M = grid.size(1), out = Wb.size(1);
  at::Tensor gx = at::zeros_like(x);
  if (N == 0 || in == 0) return gx;
  const int kk = static_cast<int>(k), m = static_cast<int>(order);
  cudaError_t err;
  if (x.scalar_type() == at::kFloat)
    err = cuda::launch_kan_linear_transpose_f32(dy.data_ptr<float>(), x.data_ptr<float>(), grid.data_ptr<float>(), N,
                                                in, M, kk, m, base, Wb.data_ptr<float>(), Wc.data_ptr<float>(), out,
                                                gx.data_ptr<float>(), current_stream());
  else
    err = cuda::launch_kan_linear_transpose_f64(dy.data_ptr<double>(), x.data_ptr<double>(), grid.data_ptr<double>(),
                                                N, in, M, kk, m, base, Wb.data_ptr<double>(), Wc.data_ptr<double>(),
                                                out, gx.data_ptr<double>(), current_stream());
  C10_CUDA_CHECK(err);
  return gx;
}

std::tuple<at::Tensor, at::Tensor> kan_linear_wgrad_cuda(const at::Tensor& dy_, const at::Tensor& x_,
                                                         const c10::optional<at::Tensor>& v_, const at::Tensor& grid_,
                                                         int64_t k, int64_t base, int64_t order) {
  const char* op = "kanext.kan_linear_wgrad";
  const int64_t G = check_cuda_deriv(op, x_, grid_, k, base, order);
  TORCH_CHECK(dy_.dim() == 2 && dy_.size(0) == x_.size(0), op, ": expected dy of shape (N, out) with N=", x_.size(0),
              ", got ", dy_.sizes());
  check_linear_grad(op, dy_, x_, dy_.size(1));
  check_row_weight(op, v_, x_);
  const c10::cuda::CUDAGuard guard(x_.device());
  const at::Tensor x = x_.contiguous(), grid = grid_.contiguous(), dy = dy_.contiguous();
  const c10::optional<at::Tensor> v = v_.has_value() ? c10::optional<at::Tensor>(v_->contiguous()) : c10::nullopt;
  const int64_t N = x.size(0), in = x.size(1), M = grid.size(1), out = dy.size(1);
  at::Tensor gWb = at::zeros({in, out}, x.options());
  at::Tensor gWc = at::zeros({in, G + k, out}, x.options());  // accumulated in place
  if (N == 0 || in == 0 || out == 0) return {gWb, gWc};
  const int kk = static_cast<int>(k), m = static_cast<int>(order);
  cudaError_t err;
  if (x.scalar_type() == at::kFloat)
    err = cuda::launch_kan_linear_wgrad_f32(dy.data_ptr<float>(), x.data_ptr<float>(), opt<float>(v),
                                            grid.data_ptr<float>(), N, in, M, kk, m, base, out, gWb.data_ptr<float>(),
                                            gWc.data_ptr<float>(), current_stream());
  else
    err = cuda::launch_kan_linear_wgrad_f64(dy.data_ptr<double>(), x.data_ptr<double>(), opt<double>(v),
                                            grid.data_ptr<double>(), N, in, M, kk, m, base, out,
                                            gWb.data_ptr<double>(), gWc.data_ptr<double>(), current_stream());
  C10_CUDA_CHECK(err);
  return {gWb, gWc};
}

}  // namespace

TORCH_LIBRARY_IMPL(kanext, CUDA, m) {
  m.impl("kan_linear_eval", &kan_linear_eval_cuda);
  m.impl("kan_linear_transpose", &kan_linear_transpose_cuda);
  m.impl("kan_linear_wgrad", &kan_linear_wgrad_cuda);
}

}  // namespace kanext
