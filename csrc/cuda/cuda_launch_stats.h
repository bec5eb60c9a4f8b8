// Plain C++ launchers of the CUDA kernels of spline_activation and edge_stats
// (csrc/cuda/spline_activation.cu, csrc/cuda/edge_stats.cu), and of their
// backwards.
//
// Same contract as cuda_launch.h (read it first): device pointers to
// contiguous row-major tensors of the shapes named here; int64 sizes, 64-bit
// index math; asynchronous on `stream`, with no synchronisation, allocation or
// free (legal under CUDA-graph capture); the return value is
// cudaGetLastError() after the last launch; any grid content is memory-safe.
// Workspaces are sized by the matching *_workspace_bytes function (a function
// of the sizes, the dtype and the current device's SM count only, so results
// are bit-reproducible run to run on one GPU model), allocated by the caller
// and 256-byte aligned; their content on entry does not matter. A launcher
// given fewer workspace bytes than asked returns cudaErrorInvalidValue and
// launches nothing.
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

// ------------------------------------------------------ spline_activation
// y (N, C) = sb[c] b(z[n,c]) + sp[c] sum_g coef[c,g] B_g(z[n,c]), with
// z (N, C), grid (C, M), coef (C, M - k - 1), sb = scale_base (C),
// sp = scale_sp (C); base is kanext::BaseFn. NaN z gives NaN y.
cudaError_t launch_spline_activation_f32(const float* z, const float* grid, int64_t N, int64_t C, int64_t M, int k,
                                         int base, const float* coef, const float* sb, const float* sp, float* y,
                                         cudaStream_t stream);
cudaError_t launch_spline_activation_f64(const double* z, const double* grid, int64_t N, int64_t C, int64_t M,
                                         int k, int base, const double* coef, const double* sb, const double* sp,
                                         double* y, cudaStream_t stream);

// Workspace of the backward's weight gradients (per-batch-slice partial sums);
// 0 when !need_w or the problem is empty, else > 0 (the combine pass always
// runs: it also turns the basis sums into grad coef and grad scale_sp).
size_t spline_activation_backward_workspace_bytes(int64_t N, int64_t C, int64_t M, int k, size_t elem_size,
                                                  bool need_w);

// Fused backward. need_z: gz (N, C) fully written; need_w: gcoef (C, M-k-1),
// gsb (C) and gsp (C) fully written (gsb is zero for base 0). Outputs not
// asked for are not touched. N == 0 or C == 0: nothing is launched (the
// binding returns zeros).
cudaError_t launch_spline_activation_backward_f32(const float* gy, const float* z, const float* grid, int64_t N,
                                                  int64_t C, int64_t M, int k, int base, const float* coef,
                                                  const float* sb, const float* sp, bool need_z, bool need_w,
                                                  float* gz, float* gcoef, float* gsb, float* gsp, void* workspace,
                                                  size_t workspace_bytes, cudaStream_t stream);
cudaError_t launch_spline_activation_backward_f64(const double* gy, const double* z, const double* grid, int64_t N,
                                                  int64_t C, int64_t M, int k, int base, const double* coef,
                                                  const double* sb, const double* sp, bool need_z, bool need_w,
                                                  double* gz, double* gcoef, double* gsb, double* gsp,
                                                  void* workspace, size_t workspace_bytes, cudaStream_t stream);

// ------------------------------------------------------------- edge_stats
// phi[n,i,j] = b(x[n,i]) Wb[i,j] + sum_g B_g(x[n,i]) Wc[i,g,j]; writes
// S = sum_n phi, Q = sum_n phi^2, A = sum_n |phi|, each (in, out), with
// x (N, in), grid (in, M), Wb (in, out), Wc (in, M - k - 1, out). NaN x[n,i]
// are skipped. N == 0, in == 0 or out == 0: nothing is launched (the binding
// returns zeros).
size_t edge_stats_workspace_bytes(int64_t N, int64_t in, int64_t M, int k, int64_t out, size_t elem_size);

cudaError_t launch_edge_stats_f32(const float* x, const float* grid, int64_t N, int64_t in, int64_t M, int k,
                                  int base, const float* Wb, const float* Wc, int64_t out, float* S, float* Q,
                                  float* A, void* workspace, size_t workspace_bytes, cudaStream_t stream);
cudaError_t launch_edge_stats_f64(const double* x, const double* grid, int64_t N, int64_t in, int64_t M, int k,
                                  int base, const double* Wb, const double* Wc, int64_t out, double* S, double* Q,
                                  double* A, void* workspace, size_t workspace_bytes, cudaStream_t stream);

// Backward from gS, gQ, gA (in, out), with dphi = gS + 2 phi gQ + sign(phi) gA
// (sign(0) = 0). need_x: gx (N, in) fully written (0 where x is NaN);
// need_w: gWb (in, out) and gWc (in, M - k - 1, out) fully written (gWb is
// zero for base 0). Outputs not asked for are not touched. N == 0, in == 0 or
// out == 0: nothing is launched (the binding returns zeros).
size_t edge_stats_backward_workspace_bytes(int64_t N, int64_t in, int64_t M, int k, int64_t out, size_t elem_size,
                                           bool need_w);

cudaError_t launch_edge_stats_backward_f32(const float* gS, const float* gQ, const float* gA, const float* x,
                                           const float* grid, int64_t N, int64_t in, int64_t M, int k, int base,
                                           const float* Wb, const float* Wc, int64_t out, bool need_x, bool need_w,
                                           float* gx, float* gWb, float* gWc, void* workspace,
                                           size_t workspace_bytes, cudaStream_t stream);
cudaError_t launch_edge_stats_backward_f64(const double* gS, const double* gQ, const double* gA, const double* x,
                                           const double* grid, int64_t N, int64_t in, int64_t M, int k, int base,
                                           const double* Wb, const double* Wc, int64_t out, bool need_x,
                                           bool need_w, double* gx, double* gWb, double* gWc, void* workspace,
                                           size_t workspace_bytes, cudaStream_t stream);

}  // namespace cuda
}  // namespace kanext
