// Entry point of the tensor-core v2 forward (kan_linear_tc_v2.cuh, float32
// storage, TF32 operands on sm_90a wgmma) and the rule for when it can run.
#include "cuda_launch.h"
#include "kan_linear_tc_v2.cuh"

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

cudaError_t launch_kan_linear_tc_v2_forward(const float* x, const float* grid, int64_t N, int64_t in, int64_t M,
                                            int k, int base, const float* Wb, const float* Wc, int64_t out, float* y,
                                            cudaStream_t stream) {
  if (!tc_v2_available()) return cudaErrorNotSupported;
  return tc2::launch_forward_v2(x, grid, N, in, M, k, base, Wb, Wc, out, y, stream);
}

}  // namespace cuda
}  // namespace kanext
