// Every kanext op schema, in one place. Backends register implementations in
// csrc/cpu/*.cpp (CPU) and csrc/cuda/<op>_cuda.cpp (CUDA); Python wrappers
// and fake kernels live in kanext/ops.py, autograd in csrc/autograd.cpp (the
// hot kan_linear_forward and fold_spline_weights) and kanext/ops.py (the rest).
// The Python module that loads them is csrc/module.cpp.
#include <torch/library.h>

TORCH_LIBRARY(kanext, m) {
  // B-spline bases of every input: x (N, in), grid (in, G+2k+1) -> (N, in, G+k).
  m.def("spline_basis(Tensor x, Tensor grid, int k) -> Tensor");
  // Their order-`order` derivatives with respect to x (order >= 1; zero beyond k), same shape.
  m.def("spline_basis_deriv(Tensor x, Tensor grid, int k, int order=1) -> Tensor");
  // Fused KAN layer: y[n,j] = sum_i b(x[n,i]) Wb[i,j] + sum_i sum_g B_g(x[n,i]) Wc[i,g,j].
  // base: 0 zero, 1 identity, 2 silu. Wb (in, out), Wc (in, G+k, out) -> y (N, out).
  // backend: the CUDA strategy (kanext/backend.py, csrc/include/kanext/backend.h):
  // 0 auto, 1 local support, 2 tensor cores; an argument, so that torch.compile
  // sees it (the CPU accepts and ignores it).
  m.def("kan_linear_forward(Tensor x, Tensor grid, int k, int base, Tensor Wb, Tensor Wc, int backend=0) -> Tensor");
  // Its fused backward: (grad_x, grad_Wb, grad_Wc). need_x / need_w skip work
  // (the skipped outputs are zeros of the right shape).
  m.def(
      "kan_linear_backward(Tensor grad_y, Tensor x, Tensor grid, int k, int base, Tensor Wb, "
      "Tensor Wc, bool need_x, bool need_w, int backend=0) -> (Tensor, Tensor, Tensor)");
  // The same layer on pykan's parameters, with the fold done inside the
  // kernels: kan_linear_fused(x, grid, k, base, Wb, coef, scale) equals
  // kan_linear_forward(x, grid, k, base, Wb, fold_spline_weights(coef, scale))
  // without forming the folded Wc. coef (in, out, G+k), scale (in, out).
  m.def(
      "kan_linear_fused(Tensor x, Tensor grid, int k, int base, Tensor Wb, Tensor coef, Tensor scale, "
      "int backend=0) -> Tensor");
  // Its backward: (grad_x, grad_Wb, grad_coef, grad_scale), grad_coef
  // contiguous (in, out, G+k); skipped outputs (need_x / need_w) are zeros.
  m.def(
      "kan_linear_fused_backward(Tensor grad_y, Tensor x, Tensor grid, int k, int base, Tensor Wb, Tensor coef, "
      "Tensor scale, bool need_x, bool need_w, int backend=0) -> (Tensor, Tensor, Tensor, Tensor)");
  // The fold of pykan's per-edge spline parameters into the kernel layout:
  // coef (in, out, G+k), scale (in, out) -> Wc (in, G+k, out), Wc[i,g,j] = scale[i,j] coef[i,j,g].
  m.def("fold_spline_weights(Tensor coef, Tensor scale) -> Tensor");
  // Its backward: (grad_coef, grad_scale).
  m.def(
      "fold_spline_weights_backward(Tensor grad_Wc, Tensor coef, Tensor scale) -> (Tensor, Tensor)");
  // Per-edge batch statistics of the edge activations (for regularisation):
  // with phi[n,i,j] = b(x[n,i]) Wb[i,j] + sum_g B_g(x[n,i]) Wc[i,g,j], returns
  // (sum_n phi, sum_n phi^2, sum_n |phi|), each (in, out), without forming the
  // (N, in, out) phi. NaN x[n,i] are skipped (they add nothing to row i).
  m.def("edge_stats(Tensor x, Tensor grid, int k, int base, Tensor Wb, Tensor Wc) -> (Tensor, Tensor, Tensor)");
  // Its backward: (grad_x, grad_Wb, grad_Wc) from the three (in, out) incoming
  // gradients, with dphi = g_sum + 2 phi g_sq + sign(phi) g_abs (sign(0) = 0).
  // need_x / need_w skip work (the skipped outputs are zeros of the right shape).
  m.def(
      "edge_stats_backward(Tensor g_sum, Tensor g_sq, Tensor g_abs, Tensor x, Tensor grid, int k, int base, "
      "Tensor Wb, Tensor Wc, bool need_x, bool need_w) -> (Tensor, Tensor, Tensor)");
  // Per-channel spline activation (LAN node activations): z (N, C), grid (C, G+2k+1),
  // coef (C, G+k), scale_base (C), scale_sp (C) ->
  // y[n,c] = scale_base[c] b(z[n,c]) + scale_sp[c] sum_g coef[c,g] B_g(z[n,c]).
  m.def(
      "spline_activation(Tensor z, Tensor grid, int k, int base, Tensor coef, Tensor scale_base, "
      "Tensor scale_sp) -> Tensor");
  // Its fused backward: (grad_z, grad_coef, grad_scale_base, grad_scale_sp); need_z / need_w
  // skip work (the skipped outputs are zeros of the right shape).
  m.def(
      "spline_activation_backward(Tensor grad_y, Tensor z, Tensor grid, int k, int base, Tensor coef, "
      "Tensor scale_base, Tensor scale_sp, bool need_z, bool need_w) -> (Tensor, Tensor, Tensor, Tensor)");

  // ---- Derivatives of any order (autograd in kanext/autodiff.py). With the
  // edge activation phi_ij(t) = b(t) Wb[i,j] + sum_g B_g(t) Wc[i,g,j] and phi^(m)
  // its m-th derivative (b^(m) from the kernel; B_g^(m) = 0 for m > k), every
  // derivative of kan_linear of every order is one of three contractions
  // (v: an optional (N, in) weight, 1 when absent):
  //   eval:      y[n,j]    = sum_i v[n,i] phi^(m)_ij(x[n,i])                    (forward: m = 0)
  //   transpose: gx[n,i]   = sum_j dy[n,j] phi^(m)_ij(x[n,i])                   (grad x: m = 1)
  //   wgrad:     gWb[i,j]  = sum_n v[n,i] dy[n,j] b^(m)(x[n,i]),
  //              gWc[i,g,j] = sum_n v[n,i] dy[n,j] B_g^(m)(x[n,i])               (grad W: m = 0)
  // and the derivatives of each are again these three at order m or m+1.
  m.def(
      "kan_linear_eval(Tensor x, Tensor? v, Tensor grid, int k, int base, Tensor Wb, Tensor Wc, int order) -> Tensor");
  m.def(
      "kan_linear_transpose(Tensor dy, Tensor x, Tensor grid, int k, int base, Tensor Wb, Tensor Wc, int order) "
      "-> Tensor");
  m.def(
      "kan_linear_wgrad(Tensor dy, Tensor x, Tensor? v, Tensor grid, int k, int base, int order) -> (Tensor, Tensor)");
  // The same for spline_activation (per channel c):
  //   eval:  y[n,c]  = scale_base[c] b^(m)(z[n,c]) + scale_sp[c] sum_g coef[c,g] B_g^(m)(z[n,c])
  //   wgrad: (SB, Sb), SB[c,g] = sum_n gy[n,c] B_g^(m)(z[n,c]), Sb[c] = sum_n gy[n,c] b^(m)(z[n,c])
  m.def(
      "spline_activation_eval(Tensor z, Tensor grid, int k, int base, Tensor coef, Tensor scale_base, "
      "Tensor scale_sp, int order) -> Tensor");
  m.def("spline_activation_wgrad(Tensor gy, Tensor z, Tensor grid, int k, int base, int order) -> (Tensor, Tensor)");
  // And for edge_stats (its second and higher derivatives): with phi^(c) the
  // order-c derivative of the edge activation with weights W = (Wb, Wc), psi^(a)
  // that with weights V = (Vb, Vc) (same shapes), and w = sign(phi) (mode 0,
  // c = 0; sign(0) = 0) or w = phi^(c) (mode 1), u an optional (N, in) weight:
  //   product: P[n,i]    = sum_j w_ij(x[n,i]) psi^(a)_ij(x[n,i])
  //   wgrad:   Sb[i,j]   = sum_n u[n,i] w_ij(x[n,i]) b^(a)(x[n,i]),
  //            SB[i,g,j] = sum_n u[n,i] w_ij(x[n,i]) B_g^(a)(x[n,i])
  // A NaN x[n,i] adds nothing (P[n,i] = 0), as in edge_stats. d/dx of either
  // raises c or a by one, and d/dW, d/dV, d/du are again these two ops.
  m.def(
      "edge_product(Tensor x, Tensor grid, int k, int base, Tensor Wb, Tensor Wc, Tensor Vb, Tensor Vc, int mode, "
      "int c, int a) -> Tensor");
  m.def(
      "edge_product_wgrad(Tensor x, Tensor? u, Tensor grid, int k, int base, Tensor Wb, Tensor Wc, int mode, int c, "
      "int a) -> (Tensor, Tensor)");
}
