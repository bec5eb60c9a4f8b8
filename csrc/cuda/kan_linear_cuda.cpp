// CUDA binding of kan_linear_forward / _backward (schemas in csrc/ops.cpp; kernels in
// kan_linear_forward.cuh / _backward.cuh (local support) and kan_linear_tc.cuh (tensor cores);
// CPU twin csrc/cpu/kan_linear_cpu.cpp). See binding.h for what a binding does.
#include <ATen/core/dispatch/Dispatcher.h>

#include <algorithm>

#include "binding.h"
#include "kanext/backend.h"
#include "cuda_launch.h"

namespace kanext {
namespace {

// The strategy of kan_linear_forward / _backward (documented in
// kanext/backend.py):
//   float64                  local support (tensor cores would lower its precision)
//   float32, TF32 not allowed local support (strict float32, as cuBLAS)
//   float32, TF32 allowed    tensor cores when G + k + 1 <= kAutoTcMaxColumns
//                            ("auto"), or as the backend argument says
//   bfloat16 / float16       tensor cores, unless backend is local or local_v2:
//                            then the local-support kernels on float32 copies
// tensor_core_v2 is tensor_core, except on a compute-capability 9.0 device
// from a build with sm_90a code (cuda::tc_v2_available): there the forward
// runs on wgmma with the kernel of kan_linear_tc_v2_ws.cuh (design T step 3:
// W folded into the operand layout in a workspace, warp-specialised), for
// float32 (TF32), bfloat16 and float16 storage; for float32 so do grad x,
// with kan_linear_tc_v2_gx_ws.cuh, and grad W, with
// kan_linear_tc_v2_gw_ws.cuh (items 6 and 5, step 2: the operands folded
// into their layout by a pre-pass, warp-specialised like the forward); the
// 16-bit backward is tensor_core's.
// Unmeasured on a GPU.
// local_v2 is local support everywhere, with the v2 kernels (cuda_launch.h
// LocalKernels: byte-offset gathers in the forward and grad x, register
// accumulators for the weight gradient when G + k <= 16); the same bits.
// kAutoTcMaxColumns is a first estimate from flop counts, not yet measured:
// the dense path costs G + k + 1 tensor-core MACs per (n, i, j), the local
// one k + 2 CUDA-core MACs at several times lower throughput.
constexpr int64_t kAutoTcMaxColumns = 32;

bool use_tensor_cores(at::ScalarType dt, int64_t G, int64_t k, int64_t mode) {
  if (dt == at::kDouble) return false;
  if (mode == kBackendLocalV2) return false;
  if (is_half(dt)) return mode != kBackendLocal;
  if (!at::globalContext().allowTF32CuBLAS()) return false;
  if (mode != kBackendAuto) return mode == kBackendTensorCore || mode == kBackendTensorCoreV2;
  return G + k + 1 <= kAutoTcMaxColumns;
}

int tc_dtype(at::ScalarType dt) {
  return dt == at::kFloat ? cuda::kTcFloat32 : (dt == at::kBFloat16 ? cuda::kTcBFloat16 : cuda::kTcFloat16);
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
  const int version = backend == kBackendLocalV2 ? cuda::kLocalV2 : cuda::kLocalV1;
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
    if (backend == kBackendTensorCoreV2 && cuda::tc_v2_available()) {
      const size_t ws_bytes = cuda::kan_linear_tc_v2_forward_workspace_bytes(tc_dtype(dt), in, M, static_cast<int>(k),
                                                                              static_cast<int>(base), out);
      // W folded (the caching allocator's blocks are 512-byte aligned)
      at::Tensor ws = at::empty({static_cast<int64_t>(ws_bytes)}, x.options().dtype(at::kByte));
      err = cuda::launch_kan_linear_tc_v2_forward(tc_dtype(dt), x.data_ptr(), gridf.data_ptr<float>(), N, in, M,
                                                  static_cast<int>(k), static_cast<int>(base), Wb.data_ptr(),
                                                  Wc.data_ptr(), out, ws.data_ptr(), y.data_ptr(), current_stream());
    } else
      err = cuda::launch_kan_linear_tc_forward(tc_dtype(dt), x.data_ptr(), gridf.data_ptr<float>(), N, in, M,
                                             static_cast<int>(k), static_cast<int>(base), Wb.data_ptr(),
                                             Wc.data_ptr(), out, y.data_ptr(), current_stream());
  } else if (x.scalar_type() == at::kFloat)
    err = cuda::launch_kan_linear_forward_f32(x.data_ptr<float>(), grid.data_ptr<float>(), N, in, M,
                                              static_cast<int>(k), static_cast<int>(base), Wb.data_ptr<float>(),
                                              Wc.data_ptr<float>(), out, y.data_ptr<float>(), version,
                                              current_stream());
  else
    err = cuda::launch_kan_linear_forward_f64(x.data_ptr<double>(), grid.data_ptr<double>(), N, in, M,
                                              static_cast<int>(k), static_cast<int>(base), Wb.data_ptr<double>(),
                                              Wc.data_ptr<double>(), out, y.data_ptr<double>(), version,
                                              current_stream());
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
  check_linear_grad(op, gy_, x_, Wb_.size(1));
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
  const int version = backend == kBackendLocalV2 ? cuda::kLocalV2 : cuda::kLocalV1;
  // tensor_core_v2: grad x and grad W on wgmma where the v2 forward runs
  const bool v2 = tc && backend == kBackendTensorCoreV2 && cuda::tc_v2_available();
  const bool v2_x = need_x && v2, v2_w = need_w && v2;
  // (v2: grad W, then grad x, each with its operand images in the same
  // workspace, one after the other on the stream)
  const int ki = static_cast<int>(k), bi = static_cast<int>(base), tdt = tc_dtype(dt);
  const size_t ws_bytes =
      v2 ? std::max(v2_w ? cuda::kan_linear_tc_v2_grad_w_workspace_bytes(tdt, N, in, M, ki, bi, out) : 0,
                    v2_x ? cuda::kan_linear_tc_v2_grad_x_workspace_bytes(tdt, N, in, M, ki, bi, out) : 0)
      : tc ? cuda::kan_linear_tc_backward_workspace_bytes(N, in, M, ki, bi, out, need_w)
           : cuda::kan_linear_backward_workspace_bytes(N, in, M, ki, out, x.element_size(), need_w, version);
  at::Tensor ws;
  if (ws_bytes > 0) ws = at::empty({static_cast<int64_t>(ws_bytes)}, x.options().dtype(at::kByte));
  void* ws_ptr = ws_bytes > 0 ? ws.data_ptr() : nullptr;
  cudaError_t err;
  if (tc) {
    const at::Tensor gridf = grid.to(at::kFloat).contiguous();
    err = cuda::launch_kan_linear_tc_backward(tdt, gy.data_ptr(), x.data_ptr(), gridf.data_ptr<float>(), N,
                                              in, M, static_cast<int>(k), static_cast<int>(base), Wb.data_ptr(),
                                              Wc.data_ptr(), out, need_x && !v2_x, need_w && !v2_w, gx.data_ptr(),
                                              gWb.data_ptr(), gWc.data_ptr(), ws_ptr, ws_bytes, current_stream());
    if (err == cudaSuccess && v2_w)
      err = cuda::launch_kan_linear_tc_v2_grad_w(tdt, gy.data_ptr(), x.data_ptr(), gridf.data_ptr<float>(), N, in, M,
                                                 static_cast<int>(k), static_cast<int>(base), out, gWb.data_ptr(),
                                                 gWc.data_ptr(), ws_ptr, ws_bytes, current_stream());
    if (err == cudaSuccess && v2_x)
      err = cuda::launch_kan_linear_tc_v2_grad_x(tdt, gy.data_ptr(), x.data_ptr(), gridf.data_ptr<float>(), N,
                                                 in, M, static_cast<int>(k), static_cast<int>(base), Wb.data_ptr(),
                                                 Wc.data_ptr(), out, gx.data_ptr(), ws_ptr, ws_bytes,
                                                 current_stream());
  } else if (x.scalar_type() == at::kFloat)
    err = cuda::launch_kan_linear_backward_f32(
        gy.data_ptr<float>(), x.data_ptr<float>(), grid.data_ptr<float>(), N, in, M, static_cast<int>(k),
        static_cast<int>(base), Wb.data_ptr<float>(), Wc.data_ptr<float>(), out, need_x, need_w, version,
        gx.data_ptr<float>(), gWb.data_ptr<float>(), gWc.data_ptr<float>(), ws_ptr, ws_bytes, current_stream());
  else
    err = cuda::launch_kan_linear_backward_f64(
        gy.data_ptr<double>(), x.data_ptr<double>(), grid.data_ptr<double>(), N, in, M, static_cast<int>(k),
        static_cast<int>(base), Wb.data_ptr<double>(), Wc.data_ptr<double>(), out, need_x, need_w, version,
        gx.data_ptr<double>(), gWb.data_ptr<double>(), gWc.data_ptr<double>(), ws_ptr, ws_bytes, current_stream());
  C10_CUDA_CHECK(err);
  return {gx, gWb, gWc};
}

// kan_linear_fused on CUDA: the fold (fold_spline_weights' kernel, through
// the dispatcher) and then the layer's kernels above. The CPU fuses the fold
// into its kernels; here it is a separate pass, as before the fused op
// existed (KANLinear on CUDA calls the two ops itself, so that its autocast
// rule applies; this op has none and computes in its inputs' dtype).
at::Tensor fold_via_dispatcher(const at::Tensor& coef, const at::Tensor& scale) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("kanext::fold_spline_weights", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&)>();
  return op.call(coef, scale);
}

at::Tensor kan_linear_fused_cuda(const at::Tensor& x, const at::Tensor& grid, int64_t k, int64_t base,
                                 const at::Tensor& Wb, const at::Tensor& coef, const at::Tensor& scale,
                                 int64_t backend) {
  const char* op = "kanext.kan_linear_fused";
  check_backend(op, backend);
  check_fused_args(op, x, grid, k, base, Wb, coef, scale);
  check_on_cuda(op, x, "x");
  return kan_linear_forward_cuda(x, grid, k, base, Wb, fold_via_dispatcher(coef, scale), backend);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> kan_linear_fused_backward_cuda(
    const at::Tensor& gy, const at::Tensor& x, const at::Tensor& grid, int64_t k, int64_t base, const at::Tensor& Wb,
    const at::Tensor& coef, const at::Tensor& scale, bool need_x, bool need_w, int64_t backend) {
  const char* op = "kanext.kan_linear_fused_backward";
  check_backend(op, backend);
  check_fused_args(op, x, grid, k, base, Wb, coef, scale);
  check_on_cuda(op, x, "x");
  static auto fold_backward = c10::Dispatcher::singleton()
                                  .findSchemaOrThrow("kanext::fold_spline_weights_backward", "")
                                  .typed<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&,
                                                                            const at::Tensor&)>();
  auto [gx, gWb, gWc] =
      kan_linear_backward_cuda(gy, x, grid, k, base, Wb, fold_via_dispatcher(coef, scale), need_x, need_w, backend);
  if (!need_w) return {gx, gWb, at::zeros_like(coef, at::MemoryFormat::Contiguous), at::zeros_like(scale)};
  auto [gc, gs] = fold_backward.call(gWc, coef, scale);
  return {gx, gWb, gc.contiguous(), gs};
}

}  // namespace

TORCH_LIBRARY_IMPL(kanext, CUDA, m) {
  m.impl("kan_linear_forward", &kan_linear_forward_cuda);
  m.impl("kan_linear_backward", &kan_linear_backward_cuda);
  m.impl("kan_linear_fused", &kan_linear_fused_cuda);
  m.impl("kan_linear_fused_backward", &kan_linear_fused_backward_cuda);
}

}  // namespace kanext
