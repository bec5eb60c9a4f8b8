// C entry points of the emulated tensor-core launchers, for ctypes
// (test_emu_tc.py, test_emu_tc_v2.py). dtype: kanext::cuda::TcDtype.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "../cuda_launch.h"

using namespace kanext::cuda;

namespace {

// A 16-byte aligned workspace of `bytes`, poisoned with 0xFF bytes: NaN as
// float32, bfloat16 and float16 alike (a read of anything the pre-pass did
// not write shows).
struct PoisonedWorkspace {
  std::vector<float> buf;
  float* p;
  explicit PoisonedWorkspace(size_t bytes) : buf(bytes / sizeof(float) + 4) {
    std::memset(buf.data(), 0xFF, buf.size() * sizeof(float));
    p = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(buf.data()) + 15) & ~uintptr_t(15));
  }
};

}  // namespace

extern "C" {

int emu_tc_forward(int dtype, const void* x, const float* grid, int64_t N, int64_t in, int64_t M, int k, int base,
                   const void* Wb, const void* Wc, int64_t out, void* y) {
  return launch_kan_linear_tc_forward(dtype, x, grid, N, in, M, k, base, Wb, Wc, out, y, nullptr);
}

// Step 2 of design T (tc2_forward_kernel), no longer behind a backend.
int emu_tc_v2_step2_forward(const float* x, const float* grid, int64_t N, int64_t in, int64_t M, int k, int base,
                            const float* Wb, const float* Wc, int64_t out, float* y) {
  return emu_launch_tc_v2_step2_forward(x, grid, N, in, M, k, base, Wb, Wc, out, y);
}

// Step 3 (backend tensor_core_v2's launcher) for storage dtype (TcDtype),
// the folded W in a workspace poisoned with NaN; fault (tc2::kFault*, 0
// none; float32 only): a deliberately broken protocol, to show that the
// tests see the race (1) or the deadlock (2).
int emu_tc_v2_forward(int dtype, const void* x, const float* grid, int64_t N, int64_t in, int64_t M, int k, int base,
                      const void* Wb, const void* Wc, int64_t out, void* y, int fault) {
  const size_t bytes = kan_linear_tc_v2_forward_workspace_bytes(dtype, in, M, k, base, out);
  PoisonedWorkspace ws(bytes);
  if (fault) {
    if (dtype != kTcFloat32) return cudaErrorInvalidValue;
    return emu_launch_tc_v2_forward_fault(fault, static_cast<const float*>(x), grid, N, in, M, k, base,
                                          static_cast<const float*>(Wb), static_cast<const float*>(Wc), out, ws.p,
                                          static_cast<float*>(y));
  }
  return launch_kan_linear_tc_v2_forward(dtype, x, grid, N, in, M, k, base, Wb, Wc, out, ws.p, y, nullptr);
}

// grad x of backend tensor_core_v2 (tc2_ws_grad_x_kernel), its workspace
// poisoned; fault (tc2::kFault*, 0 none): a broken protocol, as for the
// forward; step1: the first step (tc2_grad_x_kernel) instead.
// dtype (TcDtype): the storage type; fault and step1 are for float32 only.
int emu_tc_v2_grad_x(int dtype, const void* gy, const void* x, const float* grid, int64_t N, int64_t in, int64_t M,
                     int k, int base, const void* Wb, const void* Wc, int64_t out, void* gx, int fault, int step1) {
  using F = const float*;
  if ((fault || step1) && dtype != kTcFloat32) return cudaErrorInvalidValue;
  if (step1)
    return emu_launch_tc_v2_grad_x_step1(static_cast<F>(gy), static_cast<F>(x), grid, N, in, M, k, base,
                                         static_cast<F>(Wb), static_cast<F>(Wc), out, static_cast<float*>(gx));
  const size_t bytes = kan_linear_tc_v2_grad_x_workspace_bytes(dtype, N, in, M, k, base, out);
  PoisonedWorkspace ws(bytes);
  if (fault)
    return emu_launch_tc_v2_grad_x_fault(fault, static_cast<F>(gy), static_cast<F>(x), grid, N, in, M, k, base,
                                         static_cast<F>(Wb), static_cast<F>(Wc), out, static_cast<float*>(gx), ws.p);
  return launch_kan_linear_tc_v2_grad_x(dtype, gy, x, grid, N, in, M, k, base, Wb, Wc, out, gx, ws.p, bytes, nullptr);
}

// grad W of backend tensor_core_v2 (tc2_ws_grad_w_kernel), with the
// workspace of emu_tc_v2_grad_w_workspace_bytes (the launcher's return
// code: cudaErrorInvalidValue for a short or misaligned workspace), for
// storage dtype (TcDtype).
int emu_tc_v2_grad_w(int dtype, const void* gy, const void* x, const float* grid, int64_t N, int64_t in, int64_t M,
                     int k, int base, int64_t out, void* gWb, void* gWc, void* ws, size_t ws_bytes) {
  return launch_kan_linear_tc_v2_grad_w(dtype, gy, x, grid, N, in, M, k, base, out, gWb, gWc, ws, ws_bytes, nullptr);
}

size_t emu_tc_v2_grad_w_workspace_bytes(int dtype, int64_t N, int64_t in, int64_t M, int k, int base, int64_t out) {
  return kan_linear_tc_v2_grad_w_workspace_bytes(dtype, N, in, M, k, base, out);
}

// Its first step (tc2_grad_w_kernel), with the workspace of
// emu_tc_workspace_bytes; and the step-2 kernel with a broken protocol
// (fault: tc2::kFault*), the workspace of emu_tc_v2_grad_w_workspace_bytes.
int emu_tc_v2_grad_w_step1(const float* gy, const float* x, const float* grid, int64_t N, int64_t in, int64_t M,
                           int k, int base, int64_t out, float* gWb, float* gWc, void* ws) {
  return emu_launch_tc_v2_grad_w_step1(gy, x, grid, N, in, M, k, base, out, gWb, gWc, ws);
}
int emu_tc_v2_grad_w_fault(int fault, const float* gy, const float* x, const float* grid, int64_t N, int64_t in,
                           int64_t M, int k, int base, int64_t out, float* gWb, float* gWc, void* ws) {
  return emu_launch_tc_v2_grad_w_fault(fault, gy, x, grid, N, in, M, k, base, out, gWb, gWc, ws);
}

// Per input of grid (in, M): 1 where step 3 builds with the uniform-grid fast path.
void emu_tc_v2_uniform_inputs(const float* grid, int64_t in, int64_t M, int* uniform) {
  emu_tc_v2_grid_uniform(grid, in, M, uniform);
}

size_t emu_tc_workspace_bytes(int64_t N, int64_t in, int64_t M, int k, int base, int64_t out, int need_w) {
  return kan_linear_tc_backward_workspace_bytes(N, in, M, k, base, out, need_w);
}

int emu_tc_backward(int dtype, const void* gy, const void* x, const float* grid, int64_t N, int64_t in, int64_t M,
                    int k, int base, const void* Wb, const void* Wc, int64_t out, int need_x, int need_w, void* gx,
                    void* gWb, void* gWc, void* ws, size_t ws_bytes) {
  return launch_kan_linear_tc_backward(dtype, gy, x, grid, N, in, M, k, base, Wb, Wc, out, need_x, need_w, gx, gWb,
                                       gWc, ws, ws_bytes, nullptr);
}

}  // extern "C"
