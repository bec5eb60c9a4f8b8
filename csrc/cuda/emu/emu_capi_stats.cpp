// C entry points of the emulated spline_activation / edge_stats launchers, for
// ctypes (test_emu_stats.py). dbl selects float64 (1) or float32 (0).
#include "../cuda_launch_stats.h"

using namespace kanext::cuda;

extern "C" {

int emu_act_forward(int dbl, const void* z, const void* grid, int64_t N, int64_t C, int64_t M, int k, int base,
                    const void* coef, const void* sb, const void* sp, void* y) {
  return dbl ? launch_spline_activation_f64((const double*)z, (const double*)grid, N, C, M, k, base,
                                            (const double*)coef, (const double*)sb, (const double*)sp, (double*)y,
                                            nullptr)
             : launch_spline_activation_f32((const float*)z, (const float*)grid, N, C, M, k, base, (const float*)coef,
                                            (const float*)sb, (const float*)sp, (float*)y, nullptr);
}

size_t emu_act_workspace_bytes(int64_t N, int64_t C, int64_t M, int k, size_t elem, int need_w) {
  return spline_activation_backward_workspace_bytes(N, C, M, k, elem, need_w);
}

int emu_act_backward(int dbl, const void* gy, const void* z, const void* grid, int64_t N, int64_t C, int64_t M, int k,
                     int base, const void* coef, const void* sb, const void* sp, int need_z, int need_w, void* gz,
                     void* gc, void* gsb, void* gsp, void* ws, size_t ws_bytes) {
  return dbl ? launch_spline_activation_backward_f64((const double*)gy, (const double*)z, (const double*)grid, N, C, M,
                                                     k, base, (const double*)coef, (const double*)sb,
                                                     (const double*)sp, need_z, need_w, (double*)gz, (double*)gc,
                                                     (double*)gsb, (double*)gsp, ws, ws_bytes, nullptr)
             : launch_spline_activation_backward_f32((const float*)gy, (const float*)z, (const float*)grid, N, C, M, k,
                                                     base, (const float*)coef, (const float*)sb, (const float*)sp,
                                                     need_z, need_w, (float*)gz, (float*)gc, (float*)gsb,
                                                     (float*)gsp, ws, ws_bytes, nullptr);
}

size_t emu_es_workspace_bytes(int64_t N, int64_t in, int64_t M, int k, int64_t out, size_t elem) {
  return edge_stats_workspace_bytes(N, in, M, k, out, elem);
}

int emu_es_forward(int dbl, const void* x, const void* grid, int64_t N, int64_t in, int64_t M, int k, int base,
                   const void* Wb, const void* Wc, int64_t out, void* S, void* Q, void* A, void* ws, size_t ws_bytes) {
  return dbl ? launch_edge_stats_f64((const double*)x, (const double*)grid, N, in, M, k, base, (const double*)Wb,
                                     (const double*)Wc, out, (double*)S, (double*)Q, (double*)A, ws, ws_bytes, nullptr)
             : launch_edge_stats_f32((const float*)x, (const float*)grid, N, in, M, k, base, (const float*)Wb,
                                     (const float*)Wc, out, (float*)S, (float*)Q, (float*)A, ws, ws_bytes, nullptr);
}

size_t emu_es_backward_workspace_bytes(int64_t N, int64_t in, int64_t M, int k, int64_t out, size_t elem,
                                       int need_w) {
  return edge_stats_backward_workspace_bytes(N, in, M, k, out, elem, need_w);
}

int emu_es_backward(int dbl, const void* gS, const void* gQ, const void* gA, const void* x, const void* grid,
                    int64_t N, int64_t in, int64_t M, int k, int base, const void* Wb, const void* Wc, int64_t out,
                    int need_x, int need_w, void* gx, void* gWb, void* gWc, void* ws, size_t ws_bytes) {
  return dbl ? launch_edge_stats_backward_f64((const double*)gS, (const double*)gQ, (const double*)gA,
                                              (const double*)x, (const double*)grid, N, in, M, k, base,
                                              (const double*)Wb, (const double*)Wc, out, need_x, need_w, (double*)gx,
                                              (double*)gWb, (double*)gWc, ws, ws_bytes, nullptr)
             : launch_edge_stats_backward_f32((const float*)gS, (const float*)gQ, (const float*)gA, (const float*)x,
                                              (const float*)grid, N, in, M, k, base, (const float*)Wb,
                                              (const float*)Wc, out, need_x, need_w, (float*)gx, (float*)gWb,
                                              (float*)gWc, ws, ws_bytes, nullptr);
}

}  // extern "C"
