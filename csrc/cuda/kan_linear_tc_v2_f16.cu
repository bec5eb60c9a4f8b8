// The tensor-core v2 forward, grad x and grad W for 16-bit storage
// (kan_linear_tc_v2_ws.cuh, _gx_ws.cuh and _gw_ws.cuh with
// T = __nv_bfloat16 or __half: k16 wgmmas on 16 KB operand tiles), apart
// from the float32 ones in kan_linear_tc_v2.cu so that the two compile in
// parallel.
#include "cuda_launch.h"
#include "kan_linear_tc_v2_gw_ws.cuh"
#include "kan_linear_tc_v2_gx_ws.cuh"
#include "kan_linear_tc_v2_ws.cuh"

namespace kanext {
namespace cuda {
namespace tc2 {

namespace {
// f(T{}) for the 16-bit storage type dtype names (TcDtype); another dtype is
// refused.
template <typename F>
cudaError_t with_16bit(int dtype, F f) {
  if (dtype == kTcBFloat16) return f(__nv_bfloat16{});
  if (dtype == kTcFloat16) return f(__half{});
  return cudaErrorInvalidValue;
}
}  // namespace

cudaError_t launch_forward_ws_16bit(int dtype, const void* x, const float* grid, int64_t N, int64_t in, int64_t M,
                                    int k, int base, const void* Wb, const void* Wc, int64_t out, void* w_op, void* y,
                                    cudaStream_t stream) {
  return with_16bit(dtype, [&](auto tag) {
    using T = decltype(tag);
    using P = const T*;
    return launch_forward_ws<T>(static_cast<P>(x), grid, N, in, M, k, base, static_cast<P>(Wb), static_cast<P>(Wc),
                                out, w_op, static_cast<T*>(y), stream);
  });
}

cudaError_t launch_grad_x_ws_16bit(int dtype, const void* gy, const void* x, const float* grid, int64_t N, int64_t in,
                                   int64_t M, int k, int base, const void* Wb, const void* Wc, int64_t out, void* gx,
                                   void* workspace, cudaStream_t stream) {
  return with_16bit(dtype, [&](auto tag) {
    using T = decltype(tag);
    using P = const T*;
    return launch_grad_x_ws<T>(static_cast<P>(gy), static_cast<P>(x), grid, N, in, M, k, base, static_cast<P>(Wb),
                               static_cast<P>(Wc), out, static_cast<T*>(gx), workspace, stream);
  });
}

cudaError_t launch_grad_w_ws_16bit(int dtype, const void* gy, const void* x, const float* grid, int64_t N, int64_t in,
                                   int64_t M, int k, int base, int64_t out, void* gWb, void* gWc, void* workspace,
                                   cudaStream_t stream) {
  return with_16bit(dtype, [&](auto tag) {
    using T = decltype(tag);
    using P = const T*;
    return launch_grad_w_ws<T>(static_cast<P>(gy), static_cast<P>(x), grid, N, in, M, k, base, out,
                               static_cast<T*>(gWb), static_cast<T*>(gWc), workspace, stream);
  });
}

}  // namespace tc2
}  // namespace cuda
}  // namespace kanext
