// C entry points of the emulated launchers, for ctypes (tests/emu/emulator.py).
#include "../cuda_launch.h"

using namespace kanext::cuda;

extern "C" {

int emu_spline_basis(int dbl, const void* x, const void* grid, int64_t N, int64_t in, int64_t M, int k, int deriv,
                     void* out) {
  return dbl ? launch_spline_basis_f64((const double*)x, (const double*)grid, N, in, M, k, deriv, (double*)out, nullptr)
             : launch_spline_basis_f32((const float*)x, (const float*)grid, N, in, M, k, deriv, (float*)out, nullptr);
}

// version: cuda_launch.h LocalKernels (0 v1, 1 v2).
int emu_forward_version(int dbl, const void* x, const void* grid, int64_t N, int64_t in, int64_t M, int k, int base,
                        const void* Wb, const void* Wc, int64_t out, void* y, int version) {
  return dbl ? launch_kan_linear_forward_f64((const double*)x, (const double*)grid, N, in, M, k, base,
                                             (const double*)Wb, (const double*)Wc, out, (double*)y, version, nullptr)
             : launch_kan_linear_forward_f32((const float*)x, (const float*)grid, N, in, M, k, base, (const float*)Wb,
                                             (const float*)Wc, out, (float*)y, version, nullptr);
}

int emu_forward(int dbl, const void* x, const void* grid, int64_t N, int64_t in, int64_t M, int k, int base,
                const void* Wb, const void* Wc, int64_t out, void* y) {
  return emu_forward_version(dbl, x, grid, N, in, M, k, base, Wb, Wc, out, y, kLocalV1);
}

// version: cuda_launch.h LocalKernels (0 v1, 1 v2).
size_t emu_workspace_bytes_version(int64_t N, int64_t in, int64_t M, int k, int64_t out, size_t elem, int need_w,
                                   int version) {
  return kan_linear_backward_workspace_bytes(N, in, M, k, out, elem, need_w, version);
}

size_t emu_workspace_bytes(int64_t N, int64_t in, int64_t M, int k, int64_t out, size_t elem, int need_w) {
  return emu_workspace_bytes_version(N, in, M, k, out, elem, need_w, kLocalV1);
}

// wgrad: the kernel set (cuda_launch.h LocalKernels: 0 v1, 1 v2, whose weight gradient is in registers).
int emu_backward_wgrad(int dbl, const void* gy, const void* x, const void* grid, int64_t N, int64_t in, int64_t M,
                       int k, int base, const void* Wb, const void* Wc, int64_t out, int need_x, int need_w, int wgrad,
                       void* gx, void* gWb, void* gWc, void* ws, size_t ws_bytes) {
  return dbl ? launch_kan_linear_backward_f64((const double*)gy, (const double*)x, (const double*)grid, N, in, M, k,
                                              base, (const double*)Wb, (const double*)Wc, out, need_x, need_w, wgrad,
                                              (double*)gx, (double*)gWb, (double*)gWc, ws, ws_bytes, nullptr)
             : launch_kan_linear_backward_f32((const float*)gy, (const float*)x, (const float*)grid, N, in, M, k,
                                              base, (const float*)Wb, (const float*)Wc, out, need_x, need_w, wgrad,
                                              (float*)gx, (float*)gWb, (float*)gWc, ws, ws_bytes, nullptr);
}

int emu_backward(int dbl, const void* gy, const void* x, const void* grid, int64_t N, int64_t in, int64_t M, int k,
                 int base, const void* Wb, const void* Wc, int64_t out, int need_x, int need_w, void* gx, void* gWb,
                 void* gWc, void* ws, size_t ws_bytes) {
  return emu_backward_wgrad(dbl, gy, x, grid, N, in, M, k, base, Wb, Wc, out, need_x, need_w, kLocalV1, gx, gWb,
                            gWc, ws, ws_bytes);
}

int emu_fold(int dbl, const void* coef, const void* scale, int64_t in, int64_t out, int64_t nb, void* Wc) {
  return dbl ? launch_fold_spline_weights_f64((const double*)coef, (const double*)scale, in, out, nb, (double*)Wc,
                                              nullptr)
             : launch_fold_spline_weights_f32((const float*)coef, (const float*)scale, in, out, nb, (float*)Wc,
                                              nullptr);
}

int emu_fold_backward(int dbl, const void* gW, const void* coef, const void* scale, int64_t in, int64_t out,
                      int64_t nb, void* gc, void* gs) {
  return dbl ? launch_fold_spline_weights_backward_f64((const double*)gW, (const double*)coef, (const double*)scale,
                                                       in, out, nb, (double*)gc, (double*)gs, nullptr)
             : launch_fold_spline_weights_backward_f32((const float*)gW, (const float*)coef, (const float*)scale, in,
                                                       out, nb, (float*)gc, (float*)gs, nullptr);
}

}  // extern "C"
