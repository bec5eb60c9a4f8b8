// C entry points of the emulated derivative-op launchers (csrc/cuda/deriv.cu),
// for ctypes (tests/emu/test_emu_deriv.py). dbl selects float64 (1) or float32 (0).
// Outputs the launchers accumulate into (gWc, SB, the basis rows) must be zeroed by the caller.
#include "../cuda_launch.h"

using namespace kanext::cuda;

#define F(T) (const T*)
extern "C" {

int emu_deriv_eval(int dbl, const void* x, const void* v, const void* grid, int64_t N, int64_t in, int64_t M, int k,
                   int m, int base, const void* Wb, const void* Wc, int64_t out, void* y) {
  return dbl ? launch_kan_linear_eval_f64(F(double) x, F(double) v, F(double) grid, N, in, M, k, m, base,
                                          F(double) Wb, F(double) Wc, out, (double*)y, nullptr)
             : launch_kan_linear_eval_f32(F(float) x, F(float) v, F(float) grid, N, in, M, k, m, base, F(float) Wb,
                                          F(float) Wc, out, (float*)y, nullptr);
}

int emu_deriv_transpose(int dbl, const void* dy, const void* x, const void* grid, int64_t N, int64_t in, int64_t M,
                        int k, int m, int base, const void* Wb, const void* Wc, int64_t out, void* gx) {
  return dbl ? launch_kan_linear_transpose_f64(F(double) dy, F(double) x, F(double) grid, N, in, M, k, m, base,
                                               F(double) Wb, F(double) Wc, out, (double*)gx, nullptr)
             : launch_kan_linear_transpose_f32(F(float) dy, F(float) x, F(float) grid, N, in, M, k, m, base,
                                               F(float) Wb, F(float) Wc, out, (float*)gx, nullptr);
}

int emu_deriv_wgrad(int dbl, const void* dy, const void* x, const void* v, const void* grid, int64_t N, int64_t in,
                    int64_t M, int k, int m, int base, int64_t out, void* gWb, void* gWc) {
  return dbl ? launch_kan_linear_wgrad_f64(F(double) dy, F(double) x, F(double) v, F(double) grid, N, in, M, k, m,
                                           base, out, (double*)gWb, (double*)gWc, nullptr)
             : launch_kan_linear_wgrad_f32(F(float) dy, F(float) x, F(float) v, F(float) grid, N, in, M, k, m, base,
                                           out, (float*)gWb, (float*)gWc, nullptr);
}

int emu_deriv_act_eval(int dbl, const void* z, const void* grid, int64_t N, int64_t C, int64_t M, int k, int m,
                       int base, const void* coef, const void* sb, const void* sp, void* y) {
  return dbl ? launch_spline_activation_eval_f64(F(double) z, F(double) grid, N, C, M, k, m, base, F(double) coef,
                                                 F(double) sb, F(double) sp, (double*)y, nullptr)
             : launch_spline_activation_eval_f32(F(float) z, F(float) grid, N, C, M, k, m, base, F(float) coef,
                                                 F(float) sb, F(float) sp, (float*)y, nullptr);
}

int emu_deriv_act_wgrad(int dbl, const void* gy, const void* z, const void* grid, int64_t N, int64_t C, int64_t M,
                        int k, int m, int base, void* SB, void* Sb) {
  return dbl ? launch_spline_activation_wgrad_f64(F(double) gy, F(double) z, F(double) grid, N, C, M, k, m, base,
                                                  (double*)SB, (double*)Sb, nullptr)
             : launch_spline_activation_wgrad_f32(F(float) gy, F(float) z, F(float) grid, N, C, M, k, m, base,
                                                  (float*)SB, (float*)Sb, nullptr);
}

int emu_deriv_basis(int dbl, const void* x, const void* grid, int64_t N, int64_t in, int64_t M, int k, int m,
                    void* out) {
  return dbl ? launch_spline_basis_order_f64(F(double) x, F(double) grid, N, in, M, k, m, (double*)out, nullptr)
             : launch_spline_basis_order_f32(F(float) x, F(float) grid, N, in, M, k, m, (float*)out, nullptr);
}

int emu_edge_product(int dbl, const void* x, const void* grid, int64_t N, int64_t in, int64_t M, int k, int base,
                     const void* Wb, const void* Wc, const void* Vb, const void* Vc, int64_t out, int mode, int c, int a,
                     void* P) {
  return dbl ? launch_edge_product_f64(F(double) x, F(double) grid, N, in, M, k, base, F(double) Wb, F(double) Wc,
                                       F(double) Vb, F(double) Vc, out, mode, c, a, (double*)P, nullptr)
             : launch_edge_product_f32(F(float) x, F(float) grid, N, in, M, k, base, F(float) Wb, F(float) Wc,
                                       F(float) Vb, F(float) Vc, out, mode, c, a, (float*)P, nullptr);
}

int emu_edge_product_wgrad(int dbl, const void* x, const void* u, const void* grid, int64_t N, int64_t in, int64_t M,
                           int k, int base, const void* Wb, const void* Wc, int64_t out, int mode, int c, int a,
                           void* Sb, void* SB) {
  return dbl ? launch_edge_product_wgrad_f64(F(double) x, F(double) u, F(double) grid, N, in, M, k, base,
                                             F(double) Wb, F(double) Wc, out, mode, c, a, (double*)Sb, (double*)SB,
                                             nullptr)
             : launch_edge_product_wgrad_f32(F(float) x, F(float) u, F(float) grid, N, in, M, k, base, F(float) Wb,
                                             F(float) Wc, out, mode, c, a, (float*)Sb, (float*)SB, nullptr);
}

}  // extern "C"
#undef F
