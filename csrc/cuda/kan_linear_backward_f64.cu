// double instantiations of the fused backward (kernels in kan_linear_backward.cuh;
// one file per dtype so that the two compile in parallel).
#include "kan_linear_backward.cuh"

namespace kanext {
namespace cuda {

cudaError_t launch_kan_linear_backward_f64(const double* gy, const double* x, const double* grid, int64_t N, int64_t in,
                                           int64_t M, int k, int base, const double* Wb, const double* Wc, int64_t out,
                                           bool need_x, bool need_w, int version, double* gx, double* gWb, double* gWc,
                                           void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  return bwd::launch<double>(gy, x, grid, N, in, M, k, base, Wb, Wc, out, need_x, need_w, version, gx, gWb, gWc,
                         workspace, workspace_bytes, stream);
}

}  // namespace cuda
}  // namespace kanext
