// CUDA implementations of spline_activation, edge_stats and their backwards
// (schemas in csrc/ops.cpp, kernels in spline_activation.cu / edge_stats.cu):
// the thin binding, built like kan_ops_cuda.cpp (read its header comment). It
// checks arguments with the CPU binding's helpers and messages
// (kanext/checks.h), makes inputs contiguous, allocates outputs and
// workspaces with the caching allocator, and calls the plain launchers of
// kanext/cuda_launch_stats.h on the current stream under a device guard. No
// host synchronisation, no .item(): the ops are asynchronous and can be
// captured in CUDA graphs. A second TORCH_LIBRARY_IMPL(kanext, CUDA, m)
// block next to kan_ops_cuda.cpp's (allowed: each registers other ops).
//
// Compiled only in CUDA builds (setup.py adds csrc/cuda/*.cpp when torch has
// CUDA). Knot validation, as in kan_ops_cuda.cpp, runs only when the
// environment variable KANEXT_CHECK_GRID is set to a non-empty value other
// than "0" (it copies the grid to the host, i.e. synchronises); it is then
// the CPU binding's check with the same messages. Without it an invalid grid
// cannot cause an out-of-bounds access, only meaningless values.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cstdlib>
#include <cstring>
#include <limits>
#include <tuple>

#include "kanext/checks.h"
#include "kanext/cuda_launch_stats.h"

namespace kanext {
namespace {


cudaStream_t current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

at::Tensor workspace(size_t bytes, const at::Tensor& like) {
  return bytes > 0 ? at::empty({static_cast<int64_t>(bytes)}, like.options().dtype(at::kByte)) : at::Tensor();
}

void* ws_ptr(const at::Tensor& ws) { return ws.defined() ? ws.data_ptr() : nullptr; }

// ------------------------------------------------------ spline_activation
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

// ------------------------------------------------------------- edge_stats
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
  m.impl("spline_activation", &spline_activation_cuda);
  m.impl("spline_activation_backward", &spline_activation_backward_cuda);
  m.impl("edge_stats", &edge_stats_cuda);
  m.impl("edge_stats_backward", &edge_stats_backward_cuda);
}

}  // namespace kanext
