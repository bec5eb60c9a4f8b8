// One instantiation of the tensor-core path for storage type T, as the two
// entry points tc_forward_<name> / tc_backward_<name> that kan_linear_tc.cu
// dispatches to (one .cu per dtype, so that they compile in parallel).
#pragma once

#include "kan_linear_tc.cuh"

#define KANEXT_TC_INSTANTIATE(name, T)                                                                              \
  namespace kanext {                                                                                               \
  namespace cuda {                                                                                                 \
  cudaError_t tc_forward_##name(const void* x, const float* grid, int64_t N, int64_t in, int64_t M, int k,        \
                                int base, const void* Wb, const void* Wc, int64_t out, void* y,                   \
                                cudaStream_t stream) {                                                             \
    return tc::launch_forward<T>(static_cast<const T*>(x), grid, N, in, M, k, base, static_cast<const T*>(Wb),    \
                                 static_cast<const T*>(Wc), out, static_cast<T*>(y), stream);                    \
  }                                                                                                                \
  cudaError_t tc_backward_##name(const void* gy, const void* x, const float* grid, int64_t N, int64_t in,         \
                                 int64_t M, int k, int base, const void* Wb, const void* Wc, int64_t out,         \
                                 bool need_x, bool need_w, void* gx, void* gWb, void* gWc, void* workspace,       \
                                 size_t workspace_bytes, cudaStream_t stream) {                                   \
    return tc::launch_backward<T>(static_cast<const T*>(gy), static_cast<const T*>(x), grid, N, in, M, k, base,   \
                                  static_cast<const T*>(Wb), static_cast<const T*>(Wc), out, need_x, need_w,      \
                                  static_cast<T*>(gx), static_cast<T*>(gWb), static_cast<T*>(gWc), workspace,     \
                                  workspace_bytes, stream);                                                        \
  }                                                                                                                \
  }                                                                                                                \
  }
