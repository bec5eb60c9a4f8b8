// CUDA implementations of the kanext ops (schemas in csrc/ops.cpp): the thin
// binding. It checks arguments (kanext/checks.h, the CPU messages), makes the
// inputs contiguous, allocates outputs and workspaces with the caching
// allocator, and calls the plain launchers of csrc/cuda/*.cu on the current
// stream under a device guard. No host synchronisation, no .item(): the ops
// are asynchronous and can be captured in CUDA graphs.
//
// Compiled only in CUDA builds (setup.py adds csrc/cuda/*.cpp when torch has
// CUDA): the CPU wheel of torch lacks c10/cuda/impl/cuda_cmake_macros.h,
// which c10/cuda/CUDAGuard.h needs. ATen/cuda/CUDAContext.h is not used (it
// pulls in cusparse.h); the stream comes from c10::cuda directly.
//
// Knot validation. The CPU binding checks on the host that every grid row is
// finite and strictly increasing. Here that check would need a device-to-host
// copy, i.e. a synchronisation on every call (and would break graph capture),
// so it is off by default and runs only when the environment variable
// KANEXT_CHECK_GRID is set to a non-empty value other than "0" (debugging;
// same error messages as on the CPU). Without it an invalid grid cannot cause
// an out-of-bounds access (find_interval / local_bases never index outside the
// knot row, and window starts are clamped), it only gives meaningless values.
// kanext's own grids are strictly increasing by construction (uniform_grid,
// extend_grid, grid_from_samples).
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <tuple>

#include "kanext/backend.h"
#include "kanext/checks.h"
#include "kanext/cuda_launch.h"

namespace kanext {
namespace {

cudaStream_t current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

// The strategy of kan_linear_forward / _backward (documented in
// kanext/backend.py):
//   float64                  local support (tensor cores would lower its precision)
//   float32, TF32 not allowed local support (strict float32, as cuBLAS)
//   float32, TF32 allowed    tensor cores when G + k + 1 <= kAutoTcMaxColumns
//                            ("auto"), or as the backend argument says
//   bfloat16 / float16       tensor cores, unless backend is local: then the
//                            local-support kernels on float32 copies
// kAutoTcMaxColumns is a first estimate from flop counts, not yet measured:
// the dense path costs G + k + 1 tensor-core MACs per (n, i, j), the local
// one k + 2 CUDA-core MACs at several times lower throughput.
constexpr int64_t kAutoTcMaxColumns = 32;

bool use_tensor_cores(at::ScalarType dt, int64_t G, int64_t k, int64_t mode) {
  if (dt == at::kDouble) return false;
  if (is_half(dt)) return mode != kBackendLocal;
  if (!at::globalContext().allowTF32CuBLAS()) return false;
  if (mode != kBackendAuto) return mode == kBackendTensorCore;
  return G + k + 1 <= kAutoTcMaxColumns;
}

int tc_dtype(at::ScalarType dt) {
  return dt == at::kFloat ? cuda::kTcFloat32 : (dt == at::kBFloat16 ? cuda::kTcBFloat16 : cuda::kTcFloat16);
}

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

at::Tensor kan_linear_forward_cuda(const at::Tensor& x_, const at::Tensor& grid_, int64_t k, int64_t base,
                                   const at::Tensor& Wb_, const at::Tensor& Wc_, int64_t backend) {
  const char* op = "kanext.kan_linear_forward";
  check_backend(op, backend);
  const int64_t G = check_spline_args(op, x_, grid_, k, /*allow_half=*/true);
  check_weights(op, x_, G, k, Wb_, Wc_);
  check_base(op, base);
  check_on_cuda(op, x_, "x");
  check_knot_count(op, grid_);
  const c10::cuda::CUDAGuard guard(x_.device());
  const at::ScalarType dt = x_.scalar_type();
  const bool tc = use_tensor_cores(dt, G, k, backend);
  if (is_half(dt) && !tc)  // the local-support kernels are float32 / float64
    return kan_linear_forward_cuda(x_.to(at::kFloat), grid_.to(at::kFloat), k, base, Wb_.to(at::kFloat),
                                   Wc_.to(at::kFloat), backend)
        .to(dt);
  const at::Tensor x = x_.contiguous(), grid = grid_.contiguous(), Wb = Wb_.contiguous(), Wc = Wc_.contiguous();
  maybe_check_grid_on_host(op, grid);
  const int64_t N = x.size(0), in = x.size(1), M = grid.size(1), out = Wb.size(1);
  if (N == 0 || in == 0 || out == 0) return at::zeros({N, out}, x.options());
  at::Tensor y = at::empty({N, out}, x.options());  // every element is written
  cudaError_t err;
  if (tc) {
    const at::Tensor gridf = grid.to(at::kFloat).contiguous();
    err = cuda::launch_kan_linear_tc_forward(tc_dtype(dt), x.data_ptr(), gridf.data_ptr<float>(), N, in, M,
                                             static_cast<int>(k), static_cast<int>(base), Wb.data_ptr(),
                                             Wc.data_ptr(), out, y.data_ptr(), current_stream());
  } else if (x.scalar_type() == at::kFloat)
    err = cuda::launch_kan_linear_forward_f32(x.data_ptr<float>(), grid.data_ptr<float>(), N, in, M,
                                              static_cast<int>(k), static_cast<int>(base), Wb.data_ptr<float>(),
                                              Wc.data_ptr<float>(), out, y.data_ptr<float>(), current_stream());
  else
    err = cuda::launch_kan_linear_forward_f64(x.data_ptr<double>(), grid.data_ptr<double>(), N, in, M,
                                              static_cast<int>(k), static_cast<int>(base), Wb.data_ptr<double>(),
                                              Wc.data_ptr<double>(), out, y.data_ptr<double>(), current_stream());
  C10_CUDA_CHECK(err);
  return y;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> kan_linear_backward_cuda(
    const at::Tensor& gy_, const at::Tensor& x_, const at::Tensor& grid_, int64_t k, int64_t base,
    const at::Tensor& Wb_, const at::Tensor& Wc_, bool need_x, bool need_w, int64_t backend) {
  const char* op = "kanext.kan_linear_backward";
  check_backend(op, backend);
  const int64_t G = check_spline_args(op, x_, grid_, k, /*allow_half=*/true);
  check_weights(op, x_, G, k, Wb_, Wc_);
  check_base(op, base);
  TORCH_CHECK(gy_.dim() == 2 && gy_.size(0) == x_.size(0) && gy_.size(1) == Wb_.size(1), op,
              ": expected grad_y of shape (N, out) = (", x_.size(0), ", ", Wb_.size(1), "), got ", gy_.sizes());
  TORCH_CHECK(gy_.scalar_type() == x_.scalar_type() && gy_.device() == x_.device(), op,
              ": grad_y must match x in dtype and device");
  check_on_cuda(op, x_, "x");
  check_knot_count(op, grid_);
  const c10::cuda::CUDAGuard guard(x_.device());
  const at::ScalarType dt = x_.scalar_type();
  const bool tc = use_tensor_cores(dt, G, k, backend);
  if (is_half(dt) && !tc) {  // the local-support kernels are float32 / float64
    const auto f = [](const at::Tensor& t) { return t.to(at::kFloat); };
    auto [gx, gWb, gWc] =
        kan_linear_backward_cuda(f(gy_), f(x_), f(grid_), k, base, f(Wb_), f(Wc_), need_x, need_w, backend);
    return {gx.to(dt), gWb.to(dt), gWc.to(dt)};
  }
  const at::Tensor x = x_.contiguous(), grid = grid_.contiguous(), Wb = Wb_.contiguous(), Wc = Wc_.contiguous();
  const at::Tensor gy = gy_.contiguous();
  maybe_check_grid_on_host(op, grid);
  const int64_t N = x.size(0), in = x.size(1), M = grid.size(1), out = Wb.size(1);
  if (N == 0 || in == 0 || out == 0 || (!need_x && !need_w))
    return {at::zeros_like(x), at::zeros_like(Wb), at::zeros_like(Wc)};
  // The kernels write every element of what they are asked for; skipped
  // outputs are zeros.
  at::Tensor gx = need_x ? at::empty_like(x) : at::zeros_like(x);
  at::Tensor gWb = need_w ? at::empty_like(Wb) : at::zeros_like(Wb);
  at::Tensor gWc = need_w ? at::empty_like(Wc) : at::zeros_like(Wc);
  const size_t ws_bytes =
      tc ? cuda::kan_linear_tc_backward_workspace_bytes(N, in, M, static_cast<int>(k), static_cast<int>(base), out,
                                                        need_w)
         : cuda::kan_linear_backward_workspace_bytes(N, in, M, static_cast<int>(k), out, x.element_size(), need_w);
  at::Tensor ws;
  if (ws_bytes > 0) ws = at::empty({static_cast<int64_t>(ws_bytes)}, x.options().dtype(at::kByte));
  void* ws_ptr = ws_bytes > 0 ? ws.data_ptr() : nullptr;
  cudaError_t err;
  if (tc) {
    const at::Tensor gridf = grid.to(at::kFloat).contiguous();
    err = cuda::launch_kan_linear_tc_backward(tc_dtype(dt), gy.data_ptr(), x.data_ptr(), gridf.data_ptr<float>(), N,
                                              in, M, static_cast<int>(k), static_cast<int>(base), Wb.data_ptr(),
                                              Wc.data_ptr(), out, need_x, need_w, gx.data_ptr(), gWb.data_ptr(),
                                              gWc.data_ptr(), ws_ptr, ws_bytes, current_stream());
  } else if (x.scalar_type() == at::kFloat)
    err = cuda::launch_kan_linear_backward_f32(
        gy.data_ptr<float>(), x.data_ptr<float>(), grid.data_ptr<float>(), N, in, M, static_cast<int>(k),
        static_cast<int>(base), Wb.data_ptr<float>(), Wc.data_ptr<float>(), out, need_x, need_w,
        gx.data_ptr<float>(), gWb.data_ptr<float>(), gWc.data_ptr<float>(), ws_ptr, ws_bytes, current_stream());
  else
    err = cuda::launch_kan_linear_backward_f64(
        gy.data_ptr<double>(), x.data_ptr<double>(), grid.data_ptr<double>(), N, in, M, static_cast<int>(k),
        static_cast<int>(base), Wb.data_ptr<double>(), Wc.data_ptr<double>(), out, need_x, need_w,
        gx.data_ptr<double>(), gWb.data_ptr<double>(), gWc.data_ptr<double>(), ws_ptr, ws_bytes, current_stream());
  C10_CUDA_CHECK(err);
  return {gx, gWb, gWc};
}

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
  m.impl("spline_basis", &spline_basis_cuda);
  m.impl("spline_basis_deriv", &spline_basis_deriv_cuda);
  m.impl("kan_linear_forward", &kan_linear_forward_cuda);
  m.impl("kan_linear_backward", &kan_linear_backward_cuda);
  m.impl("fold_spline_weights", &fold_cuda);
  m.impl("fold_spline_weights_backward", &fold_backward_cuda);
}

}  // namespace kanext
