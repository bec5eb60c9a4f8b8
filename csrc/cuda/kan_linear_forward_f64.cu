// double instantiations of the fused forward (kernel in kan_linear_forward.cuh;
// one file per dtype so that the two compile in parallel).
#include "kan_linear_forward.cuh"

namespace kanext {
namespace cuda {

cudaError_t launch_kan_linear_forward_f64(const double* x, const double* grid, int64_t N, int64_t in, int64_t M, int k,
                                          int base, const double* Wb, const double* Wc, int64_t out, double* y,
                                          int version, cudaStream_t stream) {
  return fwd::launch<double>(x, grid, N, in, M, k, base, Wb, Wc, out, y, version, stream);
}

}  // namespace cuda
}  // namespace kanext
