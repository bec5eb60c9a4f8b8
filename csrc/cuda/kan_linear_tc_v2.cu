// Entry points of the tensor-core v2 forward, grad x and grad W (sm_90a
// wgmma: float32 storage with TF32 operands here, bfloat16 / float16 with
// 16-bit operands in kan_linear_tc_v2_f16.cu) and the rule for when they can
// run. grad x is kan_linear_tc_v2_gx_ws.cuh, grad W kan_linear_tc_v2_gw_ws.cuh. The forward is step 3 of
// design T (kan_linear_tc_v2_ws.cuh: W folded into the operand layout, a
// producer warpgroup and two consumer warpgroups over an mbarrier ring);
// step 2 (kan_linear_tc_v2.cuh) is reached only by the emulation tests.
// grad W runs the same structure (kan_linear_tc_v2_gw_ws.cuh: dy folded into
// the operand layout, a producer warpgroup building A^T), and so does grad x
// (kan_linear_tc_v2_gx_ws.cuh: dy and W^T folded, a producer thread issuing
// bulk copies); their first steps (kan_linear_tc_v2_gw.cuh, _gx.cuh) are
// likewise reached only by the tests.
#include <tuple>
#include <type_traits>

#include "cuda_launch.h"
#include "kan_linear_tc_v2_gw.cuh"
#include "kan_linear_tc_v2_gw_ws.cuh"
#include "kan_linear_tc_v2_gx.cuh"
#include "kan_linear_tc_v2_gx_ws.cuh"
#include "kan_linear_tc_v2_ws.cuh"

namespace kanext {
namespace cuda {

bool tc_v2_available() {
#if defined(KANEXT_CUDA_EMULATION)
  return true;
#elif defined(KANEXT_HAVE_SM90A)
  // The build has sm_90a code (KANEXT_HAVE_SM90A, set by setup.py / CMake when
  // the arch list holds 9.0a); arch-specific code runs on compute
  // capability 9.0 exactly.
  int dev = 0, major = 0, minor = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return false;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess) return false;
  if (cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) != cudaSuccess) return false;
  return major == 9 && minor == 0;
#else
  return false;
#endif
}

// The operand's element size for storage dtype (TcDtype): TF32 4 bytes, bf16 / half 2.
constexpr int op_bytes(int dtype) { return dtype == kTcFloat32 ? 4 : 2; }

// The first steps (the forward's step 2, grad x's and grad W's step 1) are
// launched by the emulation tests only, but their kernels stay in every
// build, with their ptxas figures in docs/ptxas_sm90.md: taking the
// launchers' addresses instantiates them here (and only here).
[[maybe_unused]] constexpr auto kFirstSteps =
    std::make_tuple(&tc2::launch_forward_v2<float>, &tc2::launch_grad_x_v2<float>, &tc2::launch_grad_w_v2<float>);

size_t kan_linear_tc_v2_forward_workspace_bytes(int dtype, int64_t in, int64_t M, int k, int base, int64_t out) {
  return tc2::ws_forward_workspace_bytes(in, M, k, base, out, op_bytes(dtype));
}

// float32 here; bfloat16 and float16 in kan_linear_tc_v2_f16.cu (compiled in
// parallel).
cudaError_t launch_kan_linear_tc_v2_forward(int dtype, const void* x, const float* grid, int64_t N, int64_t in,
                                            int64_t M, int k, int base, const void* Wb, const void* Wc, int64_t out,
                                            void* workspace, void* y, cudaStream_t stream) {
  if (!tc_v2_available()) return cudaErrorNotSupported;
  if (reinterpret_cast<uintptr_t>(workspace) % 16 != 0) return cudaErrorInvalidValue;  // bulk copies' source
  if (dtype != kTcFloat32)
    return tc2::launch_forward_ws_16bit(dtype, x, grid, N, in, M, k, base, Wb, Wc, out, workspace, y, stream);
  return tc2::launch_forward_ws(static_cast<const float*>(x), grid, N, in, M, k, base, static_cast<const float*>(Wb),
                                static_cast<const float*>(Wc), out, workspace, static_cast<float*>(y), stream);
}

cudaError_t launch_kan_linear_tc_v2_grad_x(int dtype, const void* gy, const void* x, const float* grid, int64_t N,
                                           int64_t in, int64_t M, int k, int base, const void* Wb, const void* Wc,
                                           int64_t out, void* gx, void* workspace, size_t workspace_bytes,
                                           cudaStream_t stream) {
  if (!tc_v2_available()) return cudaErrorNotSupported;
  if (workspace_bytes < kan_linear_tc_v2_grad_x_workspace_bytes(dtype, N, in, M, k, base, out))
    return cudaErrorInvalidValue;
  // the bulk copies read 16-byte aligned images
  if (reinterpret_cast<uintptr_t>(workspace) % 16 != 0) return cudaErrorInvalidValue;
  if (dtype != kTcFloat32)
    return tc2::launch_grad_x_ws_16bit(dtype, gy, x, grid, N, in, M, k, base, Wb, Wc, out, gx, workspace, stream);
  using F = const float*;
  return tc2::launch_grad_x_ws(static_cast<F>(gy), static_cast<F>(x), grid, N, in, M, k, base, static_cast<F>(Wb),
                               static_cast<F>(Wc), out, static_cast<float*>(gx), workspace, stream);
}

size_t kan_linear_tc_v2_grad_x_workspace_bytes(int dtype, int64_t N, int64_t in, int64_t M, int k, int base,
                                               int64_t out) {
  return tc2::ws_grad_x_workspace_bytes(N, in, M, k, base, out, op_bytes(dtype));
}

cudaError_t launch_kan_linear_tc_v2_grad_w(int dtype, const void* gy, const void* x, const float* grid, int64_t N,
                                           int64_t in, int64_t M, int k, int base, int64_t out, void* gWb, void* gWc,
                                           void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  if (!tc_v2_available()) return cudaErrorNotSupported;
  if (workspace_bytes < kan_linear_tc_v2_grad_w_workspace_bytes(dtype, N, in, M, k, base, out))
    return cudaErrorInvalidValue;
  // the bulk copies read 16-byte aligned dy images
  if (reinterpret_cast<uintptr_t>(workspace) % 16 != 0) return cudaErrorInvalidValue;
  if (dtype != kTcFloat32)
    return tc2::launch_grad_w_ws_16bit(dtype, gy, x, grid, N, in, M, k, base, out, gWb, gWc, workspace, stream);
  using F = const float*;
  return tc2::launch_grad_w_ws(static_cast<F>(gy), static_cast<F>(x), grid, N, in, M, k, base, out,
                               static_cast<float*>(gWb), static_cast<float*>(gWc), workspace, stream);
}

size_t kan_linear_tc_v2_grad_w_workspace_bytes(int dtype, int64_t N, int64_t in, int64_t M, int k, int base,
                                               int64_t out) {
  return tc2::ws_grad_w_workspace_bytes(N, in, M, k, base, out, op_bytes(dtype));
}

#ifdef KANEXT_CUDA_EMULATION
// The emulation tests' other entries (emu/emu_capi_tc.cpp): step 2, and step 3
// with the consumers' full-mbarrier wait left out.
// f(std::integral_constant<int, fault>), the protocol fault (tc2::kFault*)
// as a compile-time value; any other value runs the intact protocol.
template <typename F>
cudaError_t with_fault(int fault, F f) {
  if (fault == tc2::kFaultSkipFullWait) return f(std::integral_constant<int, tc2::kFaultSkipFullWait>{});
  if (fault == tc2::kFaultNoEmptyArrive) return f(std::integral_constant<int, tc2::kFaultNoEmptyArrive>{});
  return f(std::integral_constant<int, tc2::kFaultNone>{});
}
cudaError_t emu_launch_tc_v2_step2_forward(const float* x, const float* grid, int64_t N, int64_t in, int64_t M, int k,
                                           int base, const float* Wb, const float* Wc, int64_t out, float* y) {
  return tc2::launch_forward_v2(x, grid, N, in, M, k, base, Wb, Wc, out, y, nullptr);
}
cudaError_t emu_launch_tc_v2_forward_fault(int fault, const float* x, const float* grid, int64_t N, int64_t in,
                                          int64_t M, int k, int base, const float* Wb, const float* Wc, int64_t out,
                                          void* workspace, float* y) {
  return with_fault(fault, [&](auto F) {
    return tc2::launch_forward_ws<float, decltype(F)::value>(x, grid, N, in, M, k, base, Wb, Wc, out, workspace, y,
                                                             nullptr);
  });
}
// grad x's first step (tc2_grad_x_kernel), and step 2 with a broken protocol.
cudaError_t emu_launch_tc_v2_grad_x_step1(const float* gy, const float* x, const float* grid, int64_t N, int64_t in,
                                          int64_t M, int k, int base, const float* Wb, const float* Wc, int64_t out,
                                          float* gx) {
  return tc2::launch_grad_x_v2(gy, x, grid, N, in, M, k, base, Wb, Wc, out, gx, nullptr);
}
cudaError_t emu_launch_tc_v2_grad_x_fault(int fault, const float* gy, const float* x, const float* grid, int64_t N,
                                          int64_t in, int64_t M, int k, int base, const float* Wb, const float* Wc,
                                          int64_t out, float* gx, void* workspace) {
  return with_fault(fault, [&](auto F) {
    return tc2::launch_grad_x_ws<float, decltype(F)::value>(gy, x, grid, N, in, M, k, base, Wb, Wc, out, gx,
                                                            workspace, nullptr);
  });
}
// grad W's first step (tc2_grad_w_kernel; the partials' workspace of
// kan_linear_tc_backward_workspace_bytes), and step 2 with a broken protocol.
cudaError_t emu_launch_tc_v2_grad_w_step1(const float* gy, const float* x, const float* grid, int64_t N, int64_t in,
                                          int64_t M, int k, int base, int64_t out, float* gWb, float* gWc,
                                          void* workspace) {
  return tc2::launch_grad_w_v2(gy, x, grid, N, in, M, k, base, out, gWb, gWc, workspace, nullptr);
}
cudaError_t emu_launch_tc_v2_grad_w_fault(int fault, const float* gy, const float* x, const float* grid, int64_t N,
                                          int64_t in, int64_t M, int k, int base, int64_t out, float* gWb,
                                          float* gWc, void* workspace) {
  return with_fault(fault, [&](auto F) {
    return tc2::launch_grad_w_ws<float, decltype(F)::value>(gy, x, grid, N, in, M, k, base, out, gWb, gWc, workspace,
                                                     nullptr);
  });
}
// The fold's uniform-grid decision per input (tc2::grid_info), on the host.
void emu_tc_v2_grid_uniform(const float* grid, int64_t in, int64_t M, int* uniform) {
  for (int64_t i = 0; i < in; ++i) uniform[i] = tc2::grid_info(grid + i * M, M).uniform;
}
#endif

}  // namespace cuda
}  // namespace kanext
