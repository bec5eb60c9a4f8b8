// CUDA binding of edge_stats and its backward (schemas in csrc/ops.cpp, kernels in
// edge_stats.cu, CPU twin csrc/cpu/edge_stats_cpu.cpp). See binding.h for what a binding does.
#include "binding.h"
#include "cuda_launch_stats.h"

namespace kanext {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor> edge_stats_cuda(const at::Tensor& x_, const at::Tensor& grid_,
                                                               int64_t k, int64_t base, const at::Tensor& Wb_,
                                                               const at::Tensor& Wc_) {
  const char* op = "kanext.edge_stats";
  const int64_t G = check_spline_args(op, x_, grid_, k);
  check_weights(op, x_, G, k, Wb_, Wc_);
  check_base(op, base);
  check_on_cuda(op, x_, "x");
  check_knot_count(op, grid_);
  const c10::cuda::CUDAGuard guard(x_.device());
  const at::Tensor grid = grid_.contiguous();
  maybe_check_grid_on_host(op, grid);
  const int64_t N = x_.size(0), in = x_.size(1), M = grid.size(1), out = Wb_.size(1);
  const auto opt = x_.options();
  if (N == 0 || in == 0 || out == 0) return {at::zeros({in, out}, opt), at::zeros({in, out}, opt),
                                             at::zeros({in, out}, opt)};
  const at::Tensor x = x_.contiguous(), Wb = Wb_.contiguous(), Wc = Wc_.contiguous();
  at::Tensor S = at::empty({in, out}, opt), Q = at::empty({in, out}, opt), A = at::empty({in, out}, opt);
  const int kk = static_cast<int>(k), bb = static_cast<int>(base);
  const size_t ws_bytes = cuda::edge_stats_workspace_bytes(N, in, M, kk, out, x.element_size());
  const at::Tensor ws = workspace(ws_bytes, x);
  cudaError_t err;
  if (x.scalar_type() == at::kFloat)
    err = cuda::launch_edge_stats_f32(x.data_ptr<float>(), grid.data_ptr<float>(), N, in, M, kk, bb,
                                      Wb.data_ptr<float>(), Wc.data_ptr<float>(), out, S.data_ptr<float>(),
                                      Q.data_ptr<float>(), A.data_ptr<float>(), ws_ptr(ws), ws_bytes,
                                      current_stream());
  else
    err = cuda::launch_edge_stats_f64(x.data_ptr<double>(), grid.data_ptr<double>(), N, in, M, kk, bb,
                                      Wb.data_ptr<double>(), Wc.data_ptr<double>(), out, S.data_ptr<double>(),
                                      Q.data_ptr<double>(), A.data_ptr<double>(), ws_ptr(ws), ws_bytes,
                                      current_stream());
  C10_CUDA_CHECK(err);
  return {S, Q, A};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> edge_stats_backward_cuda(
    const at::Tensor& gS_, const at::Tensor& gQ_, const at::Tensor& gA_, const at::Tensor& x_,
    const at::Tensor& grid_, int64_t k, int64_t base, const at::Tensor& Wb_, const at::Tensor& Wc_, bool need_x,
    bool need_w) {
  const char* op = "kanext.edge_stats_backward";
  const int64_t G = check_spline_args(op, x_, grid_, k);
  check_weights(op, x_, G, k, Wb_, Wc_);
  check_base(op, base);
  check_edge_stats_grads(op, gS_, gQ_, gA_, x_, Wb_.size(1));
  check_on_cuda(op, x_, "x");
  check_knot_count(op, grid_);
  const c10::cuda::CUDAGuard guard(x_.device());
  const at::Tensor grid = grid_.contiguous();
  maybe_check_grid_on_host(op, grid);
  const int64_t N = x_.size(0), in = x_.size(1), M = grid.size(1), out = Wb_.size(1), nb = M - k - 1;
  const auto opt = x_.options();
  if (N == 0 || in == 0 || out == 0 || (!need_x && !need_w))
    return {at::zeros({N, in}, opt), at::zeros({in, out}, opt), at::zeros({in, nb, out}, opt)};
  const at::Tensor x = x_.contiguous(), Wb = Wb_.contiguous(), Wc = Wc_.contiguous();
  const at::Tensor gS = gS_.contiguous(), gQ = gQ_.contiguous(), gA = gA_.contiguous();
  // The kernels write every element of what they are asked for; skipped outputs are zeros.
  at::Tensor gx = need_x ? at::empty({N, in}, opt) : at::zeros({N, in}, opt);
  at::Tensor gWb = need_w ? at::empty({in, out}, opt) : at::zeros({in, out}, opt);
  at::Tensor gWc = need_w ? at::empty({in, nb, out}, opt) : at::zeros({in, nb, out}, opt);
  const int kk = static_cast<int>(k), bb = static_cast<int>(base);
  const size_t ws_bytes = cuda::edge_stats_backward_workspace_bytes(N, in, M, kk, out, x.element_size(), need_w);
  const at::Tensor ws = workspace(ws_bytes, x);
  cudaError_t err;
  if (x.scalar_type() == at::kFloat)
    err = cuda::launch_edge_stats_backward_f32(
        gS.data_ptr<float>(), gQ.data_ptr<float>(), gA.data_ptr<float>(), x.data_ptr<float>(),
        grid.data_ptr<float>(), N, in, M, kk, bb, Wb.data_ptr<float>(), Wc.data_ptr<float>(), out, need_x, need_w,
        gx.data_ptr<float>(), gWb.data_ptr<float>(), gWc.data_ptr<float>(), ws_ptr(ws), ws_bytes, current_stream());
  else
    err = cuda::launch_edge_stats_backward_f64(
        gS.data_ptr<double>(), gQ.data_ptr<double>(), gA.data_ptr<double>(), x.data_ptr<double>(),
        grid.data_ptr<double>(), N, in, M, kk, bb, Wb.data_ptr<double>(), Wc.data_ptr<double>(), out, need_x,
        need_w, gx.data_ptr<double>(), gWb.data_ptr<double>(), gWc.data_ptr<double>(), ws_ptr(ws), ws_bytes,
        current_stream());
  C10_CUDA_CHECK(err);
  return {gx, gWb, gWc};
}

}  // namespace

TORCH_LIBRARY_IMPL(kanext, CUDA, m) {
  m.impl("edge_stats", &edge_stats_cuda);
  m.impl("edge_stats_backward", &edge_stats_backward_cuda);
}

}  // namespace kanext
