// CUDA binding of edge_product and edge_product_wgrad (schemas in csrc/ops.cpp,
// kernels in deriv.cu, CPU twin csrc/cpu/edge_product_cpu.cpp). See binding.h
// for what a binding does.
#include "binding.h"
#include "cuda_launch.h"

namespace kanext {
namespace {

int64_t check_cuda_edge_product(const char* op, const at::Tensor& x, const at::Tensor& grid, int64_t k, int64_t base,
                                const at::Tensor& Wb, const at::Tensor& Wc, const at::Tensor* Vb,
                                const at::Tensor* Vc, int64_t mode, int64_t c, int64_t a) {
  const int64_t G = check_edge_product_args(op, x, grid, k, base, Wb, Wc, Vb, Vc, mode, c, a);
  check_on_cuda(op, x, "x");
  check_knot_count(op, grid);
  maybe_check_grid_on_host(op, grid);
  return G;
}

at::Tensor edge_product_cuda(const at::Tensor& x_, const at::Tensor& grid_, int64_t k, int64_t base,
                             const at::Tensor& Wb_, const at::Tensor& Wc_, const at::Tensor& Vb_,
                             const at::Tensor& Vc_, int64_t mode, int64_t c, int64_t a) {
  const char* op = "kanext.edge_product";
  check_cuda_edge_product(op, x_, grid_, k, base, Wb_, Wc_, &Vb_, &Vc_, mode, c, a);
  const c10::cuda::CUDAGuard guard(x_.device());
  const at::Tensor x = x_.contiguous(), grid = grid_.contiguous(), Wb = Wb_.contiguous(), Wc = Wc_.contiguous();
  const at::Tensor Vb = Vb_.contiguous(), Vc = Vc_.contiguous();
  const int64_t N = x.size(0), in = x.size(1), M = grid.size(1), out = Wb.size(1);
  at::Tensor P = at::zeros_like(x);
  if (N == 0 || in == 0 || out == 0) return P;
  const int kk = static_cast<int>(k), md = static_cast<int>(mode), cc = static_cast<int>(c), aa = static_cast<int>(a);
  cudaError_t err;
  if (x.scalar_type() == at::kFloat)
    err = cuda::launch_edge_product_f32(x.data_ptr<float>(), grid.data_ptr<float>(), N, in, M, kk, base,
                                        Wb.data_ptr<float>(), Wc.data_ptr<float>(), Vb.data_ptr<float>(),
                                        Vc.data_ptr<float>(), out, md, cc, aa, P.data_ptr<float>(), current_stream());
  else
    err = cuda::launch_edge_product_f64(x.data_ptr<double>(), grid.data_ptr<double>(), N, in, M, kk, base,
                                        Wb.data_ptr<double>(), Wc.data_ptr<double>(), Vb.data_ptr<double>(),
                                        Vc.data_ptr<double>(), out, md, cc, aa, P.data_ptr<double>(),
                                        current_stream());
  C10_CUDA_CHECK(err);
  return P;
}

std::tuple<at::Tensor, at::Tensor> edge_product_wgrad_cuda(const at::Tensor& x_, const c10::optional<at::Tensor>& u_,
                                                           const at::Tensor& grid_, int64_t k, int64_t base,
                                                           const at::Tensor& Wb_, const at::Tensor& Wc_, int64_t mode,
                                                           int64_t c, int64_t a) {
  const char* op = "kanext.edge_product_wgrad";
  const int64_t G = check_cuda_edge_product(op, x_, grid_, k, base, Wb_, Wc_, nullptr, nullptr, mode, c, a);
  check_row_weight(op, u_, x_);
  const c10::cuda::CUDAGuard guard(x_.device());
  const at::Tensor x = x_.contiguous(), grid = grid_.contiguous(), Wb = Wb_.contiguous(), Wc = Wc_.contiguous();
  const c10::optional<at::Tensor> u = u_.has_value() ? c10::optional<at::Tensor>(u_->contiguous()) : c10::nullopt;
  const int64_t N = x.size(0), in = x.size(1), M = grid.size(1), out = Wb.size(1);
  at::Tensor Sb = at::zeros({in, out}, x.options());
  at::Tensor SB = at::zeros({in, G + k, out}, x.options());  // accumulated in place
  if (N == 0 || in == 0 || out == 0) return {Sb, SB};
  const int kk = static_cast<int>(k), md = static_cast<int>(mode), cc = static_cast<int>(c), aa = static_cast<int>(a);
  cudaError_t err;
  if (x.scalar_type() == at::kFloat)
    err = cuda::launch_edge_product_wgrad_f32(x.data_ptr<float>(), u.has_value() ? u->data_ptr<float>() : nullptr,
                                              grid.data_ptr<float>(), N, in, M, kk, base, Wb.data_ptr<float>(),
                                              Wc.data_ptr<float>(), out, md, cc, aa, Sb.data_ptr<float>(),
                                              SB.data_ptr<float>(), current_stream());
  else
    err = cuda::launch_edge_product_wgrad_f64(x.data_ptr<double>(), u.has_value() ? u->data_ptr<double>() : nullptr,
                                              grid.data_ptr<double>(), N, in, M, kk, base, Wb.data_ptr<double>(),
                                              Wc.data_ptr<double>(), out, md, cc, aa, Sb.data_ptr<double>(),
                                              SB.data_ptr<double>(), current_stream());
  C10_CUDA_CHECK(err);
  return {Sb, SB};
}

}  // namespace

TORCH_LIBRARY_IMPL(kanext, CUDA, m) {
  m.impl("edge_product", &edge_product_cuda);
  m.impl("edge_product_wgrad", &edge_product_wgrad_cuda);
}

}  // namespace kanext
