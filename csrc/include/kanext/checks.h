// Argument checks shared by every backend's binding (torch headers allowed
// here; kernel bodies never include this file).
#pragma once

#include <torch/library.h>
#include <ATen/ATen.h>

#include <cstdlib>
#include <cstring>
#include <limits>

#include <cmath>

#include "kanext/bspline.h"

namespace kanext {

inline bool is_half(at::ScalarType t) { return t == at::kHalf || t == at::kBFloat16; }

// Checks x (N, in) against grid (in, M) and order k; returns G. allow_half
// (the CUDA kan_linear ops): x may also be bfloat16 or float16, and its grid
// then float32 or x's dtype.
inline int64_t check_spline_args(const char* op, const at::Tensor& x, const at::Tensor& grid, int64_t k,
                                 bool allow_half = false) {
  TORCH_CHECK(k >= 0 && k <= 5, op, ": spline order k must be in [0, 5], got k=", k);
  TORCH_CHECK(x.dim() == 2, op, ": expected x of shape (N, in), got a ", x.dim(), "-D tensor of shape ",
              x.sizes());
  TORCH_CHECK(grid.dim() == 2, op, ": expected grid of shape (in, G+2k+1), got shape ", grid.sizes());
  TORCH_CHECK(grid.size(0) == x.size(1), op, ": grid has ", grid.size(0), " rows but x has ", x.size(1),
              " input features (x shape ", x.sizes(), ", grid shape ", grid.sizes(), ")");
  const int64_t G = grid.size(1) - 2 * k - 1;
  TORCH_CHECK(G >= 1, op, ": grid has ", grid.size(1), " knots per input, but order k=", k,
              " needs at least 2k+2=", 2 * k + 2, " (G >= 1 intervals)");
  if (allow_half && is_half(x.scalar_type())) {
    TORCH_CHECK(grid.scalar_type() == at::kFloat || grid.scalar_type() == x.scalar_type(), op,
                ": with x of dtype ", x.scalar_type(), " the grid must be float32 or ", x.scalar_type(), ", got ",
                grid.scalar_type());
  } else {
    TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble, op, ": expected x of dtype ",
                allow_half ? "float32, float64, bfloat16 or float16" : "float32 or float64", ", got ",
                x.scalar_type());
    TORCH_CHECK(grid.scalar_type() == x.scalar_type(), op, ": grid dtype ", grid.scalar_type(),
                " differs from x dtype ", x.scalar_type());
  }
  TORCH_CHECK(grid.device() == x.device(), op, ": grid is on ", grid.device(), " but x is on ", x.device());
  return G;
}

inline void check_weights(const char* op, const at::Tensor& x, int64_t G, int64_t k, const at::Tensor& Wb,
                          const at::Tensor& Wc) {
  const int64_t in = x.size(1);
  TORCH_CHECK(Wb.dim() == 2 && Wb.size(0) == in, op, ": expected Wb of shape (in=", in, ", out), got ",
              Wb.sizes());
  const int64_t out = Wb.size(1);
  TORCH_CHECK(Wc.dim() == 3 && Wc.size(0) == in && Wc.size(1) == G + k && Wc.size(2) == out, op,
              ": expected Wc of shape (in, G+k, out) = (", in, ", ", G + k, ", ", out, "), got ", Wc.sizes());
  for (const at::Tensor* t : {&Wb, &Wc}) {
    TORCH_CHECK(t->scalar_type() == x.scalar_type(), op, ": weight dtype ", t->scalar_type(),
                " differs from x dtype ", x.scalar_type());
    TORCH_CHECK(t->device() == x.device(), op, ": weight is on ", t->device(), " but x is on ", x.device());
  }
}

// kan_linear_fused's weights: Wb (in, out), coef (in, out, G+k), scale
// (in, out), all of x's dtype and device.
inline void check_fused_weights(const char* op, const at::Tensor& x, int64_t G, int64_t k, const at::Tensor& Wb,
                                const at::Tensor& coef, const at::Tensor& scale) {
  const int64_t in = x.size(1);
  TORCH_CHECK(Wb.dim() == 2 && Wb.size(0) == in, op, ": expected Wb of shape (in=", in, ", out), got ", Wb.sizes());
  const int64_t out = Wb.size(1);
  TORCH_CHECK(coef.dim() == 3 && coef.size(0) == in && coef.size(1) == out && coef.size(2) == G + k, op,
              ": expected coef of shape (in, out, G+k) = (", in, ", ", out, ", ", G + k, "), got ", coef.sizes());
  TORCH_CHECK(scale.dim() == 2 && scale.size(0) == in && scale.size(1) == out, op,
              ": expected scale of shape (in, out) = (", in, ", ", out, "), got ", scale.sizes());
  const char* names[3] = {"Wb", "coef", "scale"};
  const at::Tensor* ts[3] = {&Wb, &coef, &scale};
  for (int q = 0; q < 3; ++q) {
    TORCH_CHECK(ts[q]->scalar_type() == x.scalar_type(), op, ": ", names[q], " dtype ", ts[q]->scalar_type(),
                " differs from x dtype ", x.scalar_type());
    TORCH_CHECK(ts[q]->device() == x.device(), op, ": ", names[q], " is on ", ts[q]->device(), " but x is on ",
                x.device());
  }
}

inline void check_base(const char* op, int64_t base) {
  TORCH_CHECK(base >= 0 && base <= 2, op, ": base must be 0 (zero), 1 (identity) or 2 (silu), got ", base);
}

// Every argument check of kan_linear_fused / _backward except grad_y's (the
// CPU and CUDA bindings share it); returns G.
inline int64_t check_fused_args(const char* op, const at::Tensor& x, const at::Tensor& grid, int64_t k,
                                int64_t base, const at::Tensor& Wb, const at::Tensor& coef, const at::Tensor& scale) {
  const int64_t G = check_spline_args(op, x, grid, k);
  check_fused_weights(op, x, G, k, Wb, coef, scale);
  check_base(op, base);
  return G;
}

// coef (in, out, G+k) and scale (in, out) of fold_spline_weights.
inline void check_fold(const char* op, const at::Tensor& coef, const at::Tensor& scale) {
  TORCH_CHECK(coef.dim() == 3, op, ": expected coef of shape (in, out, G+k), got ", coef.sizes());
  TORCH_CHECK(scale.dim() == 2 && scale.size(0) == coef.size(0) && scale.size(1) == coef.size(1), op,
              ": expected scale of shape (in, out) = (", coef.size(0), ", ", coef.size(1), "), got ", scale.sizes());
  TORCH_CHECK(coef.scalar_type() == at::kFloat || coef.scalar_type() == at::kDouble, op,
              ": expected float32 or float64, got ", coef.scalar_type());
  TORCH_CHECK(scale.scalar_type() == coef.scalar_type(), op, ": scale dtype ", scale.scalar_type(),
              " differs from coef dtype ", coef.scalar_type());
  TORCH_CHECK(scale.device() == coef.device(), op, ": scale is on ", scale.device(), " but coef is on ",
              coef.device());
}


// Knots must be strictly increasing (and finite) in every row. Reads the data
// on the host: `grid` must be a contiguous CPU tensor (the CUDA binding passes
// a host copy, and only on request: see csrc/cuda/binding.h).
inline void check_grid_increasing(const char* op, const at::Tensor& grid) {
  AT_DISPATCH_FLOATING_TYPES(grid.scalar_type(), "kanext_check_grid", [&] {
    const scalar_t* t = grid.data_ptr<scalar_t>();
    const int64_t rows = grid.size(0), M = grid.size(1);
    for (int64_t i = 0; i < rows; ++i) {
      for (int64_t q = 0; q < M; ++q) {
        const scalar_t a = t[i * M + q];
        TORCH_CHECK(std::isfinite(static_cast<double>(a)), op, ": grid row ", i, " has a non-finite knot ",
                    a, " at position ", q);
        if (q > 0) {
          TORCH_CHECK(t[i * M + q - 1] < a, op, ": knots must be strictly increasing, but grid row ", i,
                      " has t[", q - 1, "]=", t[i * M + q - 1], " >= t[", q, "]=", a);
        }
      }
    }
  });
}

// ---- shared by the CUDA bindings (csrc/cuda/*.cpp)

// The knot check of a CUDA op needs a device-to-host copy, i.e. a
// synchronisation on every call (and it would break graph capture), so it
// runs only when the environment variable KANEXT_CHECK_GRID is set to a
// non-empty value other than "0" (debugging; the CPU messages). Without it an
// invalid grid cannot cause an out-of-bounds access, only meaningless values.
inline bool grid_check_requested() {
  const char* v = std::getenv("KANEXT_CHECK_GRID");
  return v != nullptr && v[0] != '\0' && std::strcmp(v, "0") != 0;
}

inline void maybe_check_grid_on_host(const char* op, const at::Tensor& grid) {
  // float64 holds every knot of every dtype exactly
  if (grid_check_requested()) check_grid_increasing(op, grid.to(at::kCPU, at::kDouble).contiguous());
}

// The CUDA kernels keep window starts and basis counts in 32-bit ints.
inline void check_knot_count(const char* op, const at::Tensor& grid) {
  TORCH_CHECK(grid.size(1) < std::numeric_limits<int32_t>::max(), op, ": at most 2^31 - 2 knots per input, got ",
              grid.size(1));
}

inline void check_on_cuda(const char* op, const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.is_cuda(), op, ": expected ", name, " on a CUDA device, got ", t.device());
}

// spline_activation: z (N, C), grid (C, G+2k+1), coef (C, G+k), scale_base (C),
// scale_sp (C); returns G.
inline int64_t check_activation_args(const char* op, const at::Tensor& z, const at::Tensor& grid, int64_t k,
                                     int64_t base, const at::Tensor& coef, const at::Tensor& sb,
                                     const at::Tensor& sp) {
  TORCH_CHECK(z.dim() == 2, op, ": expected z of shape (N, C), got a ", z.dim(), "-D tensor of shape ", z.sizes());
  const int64_t G = check_spline_args(op, z, grid, k);  // grid (C, M) against z's C columns
  check_base(op, base);
  const int64_t C = z.size(1);
  TORCH_CHECK(coef.dim() == 2 && coef.size(0) == C && coef.size(1) == G + k, op,
              ": expected coef of shape (C, G+k) = (", C, ", ", G + k, "), got ", coef.sizes());
  TORCH_CHECK(sb.dim() == 1 && sb.size(0) == C, op, ": expected scale_base of shape (C,) = (", C, ",), got ",
              sb.sizes());
  TORCH_CHECK(sp.dim() == 1 && sp.size(0) == C, op, ": expected scale_sp of shape (C,) = (", C, ",), got ",
              sp.sizes());
  const char* names[3] = {"coef", "scale_base", "scale_sp"};
  const at::Tensor* ts[3] = {&coef, &sb, &sp};
  for (int i = 0; i < 3; ++i) {
    TORCH_CHECK(ts[i]->scalar_type() == z.scalar_type(), op, ": ", names[i], " dtype ", ts[i]->scalar_type(),
                " differs from z dtype ", z.scalar_type());
    TORCH_CHECK(ts[i]->device() == z.device(), op, ": ", names[i], " is on ", ts[i]->device(), " but z is on ",
                z.device());
  }
  return G;
}

// kan_linear_backward's grad_y against x and the output width.
inline void check_linear_grad(const char* op, const at::Tensor& gy, const at::Tensor& x, int64_t out) {
  TORCH_CHECK(gy.dim() == 2 && gy.size(0) == x.size(0) && gy.size(1) == out, op,
              ": expected grad_y of shape (N, out) = (", x.size(0), ", ", out, "), got ", gy.sizes());
  TORCH_CHECK(gy.scalar_type() == x.scalar_type() && gy.device() == x.device(), op,
              ": grad_y must match x in dtype and device");
}

// spline_activation_backward's grad_y against z.
inline void check_activation_grad(const char* op, const at::Tensor& gy, const at::Tensor& z) {
  TORCH_CHECK(gy.sizes() == z.sizes(), op, ": expected grad_y of z's shape ", z.sizes(), ", got ", gy.sizes());
  TORCH_CHECK(gy.scalar_type() == z.scalar_type() && gy.device() == z.device(), op,
              ": grad_y must match z in dtype and device (got ", gy.scalar_type(), " on ", gy.device(), ")");
}

// edge_stats_backward's three incoming gradients, each (in, out) like x.
inline void check_edge_stats_grads(const char* op, const at::Tensor& gS, const at::Tensor& gQ, const at::Tensor& gA,
                                   const at::Tensor& x, int64_t out) {
  const int64_t in = x.size(1);
  const char* names[3] = {"g_sum", "g_sq", "g_abs"};
  const at::Tensor* gs[3] = {&gS, &gQ, &gA};
  for (int t = 0; t < 3; ++t) {
    TORCH_CHECK(gs[t]->dim() == 2 && gs[t]->size(0) == in && gs[t]->size(1) == out, op, ": expected ", names[t],
                " of shape (in, out) = (", in, ", ", out, "), got ", gs[t]->sizes());
    TORCH_CHECK(gs[t]->scalar_type() == x.scalar_type() && gs[t]->device() == x.device(), op, ": ", names[t],
                " must match x in dtype and device (got ", gs[t]->scalar_type(), " on ", gs[t]->device(), ")");
  }
}

// The derivative order of the *_eval / *_transpose / *_wgrad ops and of
// spline_basis_deriv: any m >= 0 (B-spline terms vanish beyond k); the silu
// base's derivatives are computed up to kMaxBaseDerivOrder.
inline void check_deriv_order(const char* op, int64_t order, int64_t base) {
  TORCH_CHECK(order >= 0, op, ": the derivative order must be >= 0, got ", order);
  TORCH_CHECK(base != kBaseSilu || order <= kMaxBaseDerivOrder, op, ": derivatives of the silu base are computed up to order ",
              kMaxBaseDerivOrder, ", got order ", order);
}

// edge_product / edge_product_wgrad: x, grid, k, base, the weights W (and V
// of W's shapes when given), mode 0 (sign) or 1 (product) and the orders c, a
// (c = 0 in mode 0). Returns G.
inline int64_t check_edge_product_args(const char* op, const at::Tensor& x, const at::Tensor& grid, int64_t k,
                                       int64_t base, const at::Tensor& Wb, const at::Tensor& Wc, const at::Tensor* Vb,
                                       const at::Tensor* Vc, int64_t mode, int64_t c, int64_t a) {
  const int64_t G = check_spline_args(op, x, grid, k);
  check_base(op, base);
  TORCH_CHECK(mode == 0 || mode == 1, op, ": mode must be 0 (sign) or 1 (product), got ", mode);
  TORCH_CHECK(mode == 1 || c == 0, op, ": mode 0 (sign of phi) takes c = 0, got c = ", c);
  check_deriv_order(op, c, base);
  check_deriv_order(op, a, base);
  check_weights(op, x, G, k, Wb, Wc);
  if (Vb != nullptr) {
    TORCH_CHECK(Vb->sizes() == Wb.sizes() && Vc->sizes() == Wc.sizes(), op, ": expected Vb, Vc of the shapes of Wb ",
                Wb.sizes(), " and Wc ", Wc.sizes(), ", got ", Vb->sizes(), " and ", Vc->sizes());
    check_weights(op, x, G, k, *Vb, *Vc);
  }
  return G;
}

// An optional per-(n, i) weight v of the derivative ops: x's shape, dtype and device.
inline void check_row_weight(const char* op, const c10::optional<at::Tensor>& v, const at::Tensor& x) {
  if (!v.has_value()) return;
  TORCH_CHECK(v->sizes() == x.sizes(), op, ": expected v of x's shape ", x.sizes(), ", got ", v->sizes());
  TORCH_CHECK(v->scalar_type() == x.scalar_type() && v->device() == x.device(), op,
              ": v must match x in dtype and device (got ", v->scalar_type(), " on ", v->device(), ")");
}

}  // namespace kanext
