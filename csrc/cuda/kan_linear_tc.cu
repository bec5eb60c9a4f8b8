// Entry points of the tensor-core path: dtype dispatch to the per-dtype
// instantiations (kan_linear_tc_{f32,bf16,f16}.cu) and the workspace size.
#include "kan_linear_tc.cuh"

namespace kanext {
namespace cuda {

#define KANEXT_TC_DECLARE(n)                                                                                       \
  cudaError_t tc_forward_##n(const void* x, const float* grid, int64_t N, int64_t in, int64_t M, int k, int base,  \
                             const void* Wb, const void* Wc, int64_t out, void* y, cudaStream_t stream);          \
  cudaError_t tc_backward_##n(const void* gy, const void* x, const float* grid, int64_t N, int64_t in, int64_t M, \
                              int k, int base, const void* Wb, const void* Wc, int64_t out, bool need_x,          \
                              bool need_w, void* gx, void* gWb, void* gWc, void* workspace,                       \
                              size_t workspace_bytes, cudaStream_t stream);
KANEXT_TC_DECLARE(f32)
KANEXT_TC_DECLARE(bf16)
KANEXT_TC_DECLARE(f16)
#undef KANEXT_TC_DECLARE

cudaError_t launch_kan_linear_tc_forward(int dtype, const void* x, const float* grid, int64_t N, int64_t in,
                                         int64_t M, int k, int base, const void* Wb, const void* Wc, int64_t out,
                                         void* y, cudaStream_t stream) {
  switch (dtype) {
    case kTcFloat32: return tc_forward_f32(x, grid, N, in, M, k, base, Wb, Wc, out, y, stream);
    case kTcBFloat16: return tc_forward_bf16(x, grid, N, in, M, k, base, Wb, Wc, out, y, stream);
    case kTcFloat16: return tc_forward_f16(x, grid, N, in, M, k, base, Wb, Wc, out, y, stream);
    default: return cudaErrorInvalidValue;
  }
}

size_t kan_linear_tc_backward_workspace_bytes(int64_t N, int64_t in, int64_t M, int k, int base, int64_t out,
                                              bool need_w) {
  return tc::workspace_bytes(N, in, M, k, base, out, need_w);
}

cudaError_t launch_kan_linear_tc_backward(int dtype, const void* gy, const void* x, const float* grid, int64_t N,
                                          int64_t in, int64_t M, int k, int base, const void* Wb, const void* Wc,
                                          int64_t out, bool need_x, bool need_w, void* gx, void* gWb, void* gWc,
                                          void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  switch (dtype) {
    case kTcFloat32:
      return tc_backward_f32(gy, x, grid, N, in, M, k, base, Wb, Wc, out, need_x, need_w, gx, gWb, gWc, workspace,
                             workspace_bytes, stream);
    case kTcBFloat16:
      return tc_backward_bf16(gy, x, grid, N, in, M, k, base, Wb, Wc, out, need_x, need_w, gx, gWb, gWc, workspace,
                              workspace_bytes, stream);
    case kTcFloat16:
      return tc_backward_f16(gy, x, grid, N, in, M, k, base, Wb, Wc, out, need_x, need_w, gx, gWb, gWc, workspace,
                             workspace_bytes, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace cuda
}  // namespace kanext
