// Plain C++ launchers of the CUDA kernels (csrc/cuda/*.cu).
//
// No torch types here: the .cu files that define these functions include no
// torch header, so they compile with nvcc alone (scripts/check_cuda_compile.sh),
// and the thin binding csrc/cuda/<op>_cuda.cpp (compiled only in CUDA
// builds) checks arguments, allocates outputs and workspaces with the torch
// caching allocator, and calls these on the current stream.
//
// Contract of every launcher:
//   - all pointers are device pointers to contiguous row-major tensors of the
//     shapes named in the comment; outputs are fully written (no pre-zeroing
//     needed) unless said otherwise;
//   - sizes are int64 and may exceed 2^31 elements in total; the index math in
//     the kernels is 64-bit;
//   - the launch is asynchronous on `stream`; nothing synchronises, allocates
//     or frees memory (so every launcher is legal under CUDA-graph capture);
//   - the return value is cudaGetLastError() after the last launch.
//   - the grid (in, M) with M = G + 2k + 1 knots per input is not validated
//     here: any grid content (even NaN or non-increasing knots) yields no
//     out-of-bounds access, only meaningless values.
#pragma once

#include <cstddef>
#include <cstdint>

#ifdef KANEXT_CUDA_EMULATION
#include "emu/emu_types.h"  // host emulation (csrc/cuda/emu/), never in real builds
#else
#include <cuda_runtime_api.h>
#endif

namespace kanext {
namespace cuda {

// Bases (deriv=false) or their derivatives (deriv=true): x (N, in),
// grid (in, M) -> out (N, in, M - k - 1).
cudaError_t launch_spline_basis_f32(const float* x, const float* grid, int64_t N, int64_t in, int64_t M, int k,
                                    bool deriv, float* out, cudaStream_t stream);
cudaError_t launch_spline_basis_f64(const double* x, const double* grid, int64_t N, int64_t in, int64_t M, int k,
                                    bool deriv, double* out, cudaStream_t stream);

// The local-support kernel set of the fused forward and backward (their
// `version` argument). kLocalV1: kan_linear_forward_kernel, grad_x_kernel and
// the shared-memory accumulators of grad_w_kernel (any G). kLocalV2 (backend
// "local_v2", designs L.1 and L.2 of docs/roofline.md): the v2 forward and
// grad x kernels (byte-offset gathers), and for grad W the register
// accumulators of grad_w_reg_kernel when G + k <= 16, else the walk over rows
// sorted by interval (sort_rows_kernel, grad_w_sorted_kernel; grad_w_kernel
// beyond G = 358 or 2^31 rows). All give v1's bits except the sorted grad W
// (another summation order, deterministic). Any other value:
// cudaErrorInvalidValue.
enum LocalKernels : int { kLocalV1 = 0, kLocalV2 = 1 };

// Fused forward: y (N, out) = b(x) Wb + sum_g B_g(x) Wc, with Wb (in, out),
// Wc (in, M - k - 1, out); base is kanext::BaseFn (0 zero, 1 identity, 2 silu).
cudaError_t launch_kan_linear_forward_f32(const float* x, const float* grid, int64_t N, int64_t in, int64_t M, int k,
                                          int base, const float* Wb, const float* Wc, int64_t out, float* y,
                                          int version, cudaStream_t stream);
cudaError_t launch_kan_linear_forward_f64(const double* x, const double* grid, int64_t N, int64_t in, int64_t M,
                                          int k, int base, const double* Wb, const double* Wc, int64_t out, double* y,
                                          int version, cudaStream_t stream);

// Bytes of device workspace the backward needs for its weight gradients (the
// per-batch-slice partial sums that a second, fixed-order pass adds up, and
// for kLocalV2 with G + k > 16 the rows' permutation sorted by interval, in * N
// ints); 0 when one slice suffices and nothing is sorted. Depends only on the
// sizes, the dtype, `version` and the current device's SM count, so results
// are reproducible run to run on one GPU model.
size_t kan_linear_backward_workspace_bytes(int64_t N, int64_t in, int64_t M, int k, int64_t out, size_t elem_size,
                                           bool need_w, int version);


// Fused backward. need_x: gx (N, in) is fully written; need_w: gWb (in, out)
// and gWc (in, M - k - 1, out) are fully written. Outputs not asked for are
// not touched. `workspace` holds at least
// kan_linear_backward_workspace_bytes(...) bytes, 256-byte aligned.
cudaError_t launch_kan_linear_backward_f32(const float* gy, const float* x, const float* grid, int64_t N, int64_t in,
                                           int64_t M, int k, int base, const float* Wb, const float* Wc, int64_t out,
                                           bool need_x, bool need_w, int version, float* gx, float* gWb,
                                           float* gWc, void* workspace, size_t workspace_bytes, cudaStream_t stream);
cudaError_t launch_kan_linear_backward_f64(const double* gy, const double* x, const double* grid, int64_t N,
                                           int64_t in, int64_t M, int k, int base, const double* Wb, const double* Wc,
                                           int64_t out, bool need_x, bool need_w, int version, double* gx,
                                           double* gWb, double* gWc, void* workspace, size_t workspace_bytes,
                                           cudaStream_t stream);

// Fold: coef (in, out, nb), scale (in, out) -> Wc (in, nb, out),
// Wc[i,g,j] = scale[i,j] coef[i,j,g].
cudaError_t launch_fold_spline_weights_f32(const float* coef, const float* scale, int64_t in, int64_t out, int64_t nb,
                                           float* Wc, cudaStream_t stream);
cudaError_t launch_fold_spline_weights_f64(const double* coef, const double* scale, int64_t in, int64_t out,
                                           int64_t nb, double* Wc, cudaStream_t stream);

// Its backward: grad_Wc (in, nb, out) -> grad_coef (in, out, nb),
// grad_scale (in, out) (sum over g in increasing order, as on the CPU).
cudaError_t launch_fold_spline_weights_backward_f32(const float* gWc, const float* coef, const float* scale,
                                                    int64_t in, int64_t out, int64_t nb, float* gcoef, float* gscale,
                                                    cudaStream_t stream);
cudaError_t launch_fold_spline_weights_backward_f64(const double* gWc, const double* coef, const double* scale,
                                                    int64_t in, int64_t out, int64_t nb, double* gcoef,
                                                    double* gscale, cudaStream_t stream);

// Tensor-core (dense) path of the fused layer (kan_linear_tc.cuh): the same
// contract as the local-support launchers above, for the storage types below
// (x, Wb, Wc, y, gy and the gradients all of that type; the grid is float32
// whatever the type). float32 runs in TF32; accumulation is float32 always.
enum TcDtype : int { kTcFloat32 = 0, kTcBFloat16 = 1, kTcFloat16 = 2 };

cudaError_t launch_kan_linear_tc_forward(int dtype, const void* x, const float* grid, int64_t N, int64_t in,
                                         int64_t M, int k, int base, const void* Wb, const void* Wc, int64_t out,
                                         void* y, cudaStream_t stream);

// Bytes of float32 workspace for the batch-slice partials of grad W; 0 when
// one slice suffices (sizes and SM count only, as above).
size_t kan_linear_tc_backward_workspace_bytes(int64_t N, int64_t in, int64_t M, int k, int base, int64_t out,
                                              bool need_w);

cudaError_t launch_kan_linear_tc_backward(int dtype, const void* gy, const void* x, const float* grid, int64_t N,
                                          int64_t in, int64_t M, int k, int base, const void* Wb, const void* Wc,
                                          int64_t out, bool need_x, bool need_w, void* gx, void* gWb, void* gWc,
                                          void* workspace, size_t workspace_bytes, cudaStream_t stream);

// Tensor-core v2 forward (kan_linear_tc_v2_ws.cuh; backend tensor_core_v2):
// storage dtype (TcDtype) float32 with TF32 operands, or bfloat16 / float16
// with 16-bit operands, on Hopper's warpgroup MMA. It runs only on
// a compute-capability 9.0 device from a build with sm_90a code:
// tc_v2_available() says whether it can; otherwise the launcher returns
// cudaErrorNotSupported and the caller runs launch_kan_linear_tc_forward.
// workspace (kan_linear_tc_v2_forward_workspace_bytes, 16-byte aligned)
// receives W in the wgmma operand layout (written by the launcher's fold).
bool tc_v2_available();
size_t kan_linear_tc_v2_forward_workspace_bytes(int dtype, int64_t in, int64_t M, int k, int base, int64_t out);
cudaError_t launch_kan_linear_tc_v2_forward(int dtype, const void* x, const float* grid, int64_t N, int64_t in,
                                            int64_t M, int k, int base, const void* Wb, const void* Wc, int64_t out,
                                            void* workspace, void* y, cudaStream_t stream);
// Its grad x (kan_linear_tc_v2_gx_ws.cuh), under the same rule and for the
// same storage dtypes: gx (N, in) from gy (N, out), with a workspace of
// kan_linear_tc_v2_grad_x_workspace_bytes, 16-byte aligned (dy and W^T in
// the wgmma operand layout; it may be grad W's, which runs before).
size_t kan_linear_tc_v2_grad_x_workspace_bytes(int dtype, int64_t N, int64_t in, int64_t M, int k, int base,
                                               int64_t out);
cudaError_t launch_kan_linear_tc_v2_grad_x(int dtype, const void* gy, const void* x, const float* grid, int64_t N,
                                           int64_t in, int64_t M, int k, int base, const void* Wb, const void* Wc,
                                           int64_t out, void* gx, void* workspace, size_t workspace_bytes,
                                           cudaStream_t stream);
// And its grad W (kan_linear_tc_v2_gw_ws.cuh), likewise: gWb, gWc with a
// workspace of kan_linear_tc_v2_grad_w_workspace_bytes, 16-byte aligned (the
// batch slices' float32 partials, as kan_linear_tc_backward_workspace_bytes,
// then dy in the wgmma operand layout and the grids' uniform flags).
size_t kan_linear_tc_v2_grad_w_workspace_bytes(int dtype, int64_t N, int64_t in, int64_t M, int k, int base,
                                               int64_t out);
cudaError_t launch_kan_linear_tc_v2_grad_w(int dtype, const void* gy, const void* x, const float* grid, int64_t N,
                                           int64_t in, int64_t M, int k, int base, int64_t out, void* gWb, void* gWc,
                                           void* workspace, size_t workspace_bytes, cudaStream_t stream);
#ifdef KANEXT_CUDA_EMULATION
cudaError_t emu_launch_tc_v2_step2_forward(const float* x, const float* grid, int64_t N, int64_t in, int64_t M, int k,
                                           int base, const float* Wb, const float* Wc, int64_t out, float* y);
cudaError_t emu_launch_tc_v2_forward_fault(int fault, const float* x, const float* grid, int64_t N, int64_t in,
                                          int64_t M, int k, int base, const float* Wb, const float* Wc, int64_t out,
                                          void* workspace, float* y);
void emu_tc_v2_grid_uniform(const float* grid, int64_t in, int64_t M, int* uniform);
cudaError_t emu_launch_tc_v2_grad_x_step1(const float* gy, const float* x, const float* grid, int64_t N, int64_t in,
                                          int64_t M, int k, int base, const float* Wb, const float* Wc, int64_t out,
                                          float* gx);
cudaError_t emu_launch_tc_v2_grad_x_fault(int fault, const float* gy, const float* x, const float* grid, int64_t N,
                                          int64_t in, int64_t M, int k, int base, const float* Wb, const float* Wc,
                                          int64_t out, float* gx, void* workspace);
cudaError_t emu_launch_tc_v2_grad_w_step1(const float* gy, const float* x, const float* grid, int64_t N, int64_t in,
                                          int64_t M, int k, int base, int64_t out, float* gWb, float* gWc,
                                          void* workspace);
cudaError_t emu_launch_tc_v2_grad_w_fault(int fault, const float* gy, const float* x, const float* grid, int64_t N,
                                          int64_t in, int64_t M, int k, int base, int64_t out, float* gWb,
                                          float* gWc, void* workspace);
#endif

// Derivative ops of any order m (csrc/cuda/deriv.cu; math in csrc/ops.cpp).
// v (N, in) may be null (weight 1). gWc (in, G+k, out) of kan_linear_wgrad,
// SB (C, G+k) of spline_activation_wgrad, SB (in, G+k, out) of
// edge_product_wgrad and out of spline_basis_order must be
// zeroed by the caller (they are accumulated / written sparsely); every other
// output is fully written.
#define KANEXT_DERIV_DECLS(T, SUF)                                                                                  \
  cudaError_t launch_kan_linear_eval_##SUF(const T* x, const T* v, const T* grid, int64_t N, int64_t in, int64_t M, \
                                           int k, int m, int64_t base, const T* Wb, const T* Wc, int64_t out, T* y, \
                                           cudaStream_t stream);                                                    \
  cudaError_t launch_kan_linear_transpose_##SUF(const T* dy, const T* x, const T* grid, int64_t N, int64_t in,      \
                                                int64_t M, int k, int m, int64_t base, const T* Wb, const T* Wc,    \
                                                int64_t out, T* gx, cudaStream_t stream);                           \
  cudaError_t launch_kan_linear_wgrad_##SUF(const T* dy, const T* x, const T* v, const T* grid, int64_t N,          \
                                            int64_t in, int64_t M, int k, int m, int64_t base, int64_t out, T* gWb, \
                                            T* gWc, cudaStream_t stream);                                           \
  cudaError_t launch_spline_activation_eval_##SUF(const T* z, const T* grid, int64_t N, int64_t C, int64_t M,       \
                                                  int k, int m, int64_t base, const T* coef, const T* sb,           \
                                                  const T* sp, T* y, cudaStream_t stream);                          \
  cudaError_t launch_spline_activation_wgrad_##SUF(const T* gy, const T* z, const T* grid, int64_t N, int64_t C,    \
                                                   int64_t M, int k, int m, int64_t base, T* SB, T* Sb,             \
                                                   cudaStream_t stream);                                            \
  cudaError_t launch_spline_basis_order_##SUF(const T* x, const T* grid, int64_t N, int64_t in, int64_t M, int k,   \
                                              int m, T* out, cudaStream_t stream);                                  \
  cudaError_t launch_edge_product_##SUF(const T* x, const T* grid, int64_t N, int64_t in, int64_t M, int k,         \
                                        int64_t base, const T* Wb, const T* Wc, const T* Vb, const T* Vc,           \
                                        int64_t out, int mode, int c, int a, T* P, cudaStream_t stream);            \
  cudaError_t launch_edge_product_wgrad_##SUF(const T* x, const T* u, const T* grid, int64_t N, int64_t in,         \
                                              int64_t M, int k, int64_t base, const T* Wb, const T* Wc,             \
                                              int64_t out, int mode, int c, int a, T* Sb, T* SB,                    \
                                              cudaStream_t stream);
KANEXT_DERIV_DECLS(float, f32)
KANEXT_DERIV_DECLS(double, f64)
#undef KANEXT_DERIV_DECLS

}  // namespace cuda
}  // namespace kanext
