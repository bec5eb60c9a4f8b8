// float instantiations of the fused backward (kernels in kan_linear_backward.cuh;
// one file per dtype so that the two compile in parallel).
#include "kan_linear_backward.cuh"

namespace kanext {
namespace cuda {

cudaError_t launch_kan_linear_backward_f32(const float* gy, const float* x, const float* grid, int64_t N, int64_t in,
                                           int64_t M, int k, int base, const float* Wb, const float* Wc, int64_t out,
                                           bool need_x, bool need_w, int version, float* gx, float* gWb, float* gWc,
                                           void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  return bwd::launch<float>(gy, x, grid, N, in, M, k, base, Wb, Wc, out, need_x, need_w, version, gx, gWb, gWc,
                         workspace, workspace_bytes, stream);
}

size_t kan_linear_backward_workspace_bytes(int64_t N, int64_t in, int64_t M, int k, int64_t out, size_t elem_size,
                                           bool need_w, int version) {
  if (!need_w || N == 0 || in == 0 || out == 0 || M - k - 1 <= 0) return 0;
  return bwd::backward_workspace_bytes(N, in, M, k, version, bwd::plan_weights(N, in, M, k, out, elem_size),
                                       elem_size);
}

}  // namespace cuda
}  // namespace kanext
