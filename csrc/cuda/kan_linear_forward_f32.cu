// float instantiations of the fused forward (kernel in kan_linear_forward.cuh;
// one file per dtype so that the two compile in parallel).
#include "kan_linear_forward.cuh"

namespace kanext {
namespace cuda {

cudaError_t launch_kan_linear_forward_f32(const float* x, const float* grid, int64_t N, int64_t in, int64_t M, int k,
                                          int base, const float* Wb, const float* Wc, int64_t out, float* y,
                                          int version, cudaStream_t stream) {
  return fwd::launch<float>(x, grid, N, in, M, k, base, Wb, Wc, out, y, version, stream);
}

}  // namespace cuda
}  // namespace kanext
