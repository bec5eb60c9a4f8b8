// Argument checks shared by every backend's binding (torch headers allowed
// here; kernel bodies never include this file).
#pragma once

#include <torch/library.h>
#include <ATen/ATen.h>

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

inline void check_base(const char* op, int64_t base) {
  TORCH_CHECK(base >= 0 && base <= 2, op, ": base must be 0 (zero), 1 (identity) or 2 (silu), got ", base);
}

}  // namespace kanext
