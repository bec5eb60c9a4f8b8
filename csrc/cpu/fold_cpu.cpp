// CPU implementation of fold_spline_weights and its backward (schemas in
// csrc/ops.cpp): one pass each, instead of the several strided passes that
// the same expression costs as PyTorch ops.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "kan_linear_kernels.h"
#include "kanext/checks.h"
#include "output_pool.h"

#include <algorithm>

namespace kanext {
namespace {

// Row kernels with non-aliasing pointers, so that the compiler vectorises them.
template <typename T>
inline void scale_row(T* __restrict dst, const T* __restrict a, const T* __restrict b, int64_t n) {
  for (int64_t j = 0; j < n; ++j) dst[j] = a[j] * b[j];
}
template <typename T>
inline void accumulate_product(T* __restrict acc, const T* __restrict a, const T* __restrict b, int64_t n) {
  for (int64_t j = 0; j < n; ++j) acc[j] += a[j] * b[j];
}

// coef in pykan's contiguous (in, out, G+k) layout (the layout KANLinear keeps
// its parameter in, so that optimisers may flatten it) goes through the
// kernels' own fold (cpu::fold_inputs / unfold_gradients, shared with
// kan_linear_fused); any other layout is viewed as (in, G+k, out),
// contiguous without a copy for that memory order, else transposed once.
at::Tensor fold_cpu(const at::Tensor& coef_, const at::Tensor& scale_) {
  check_fold("kanext.fold_spline_weights", coef_, scale_);
  if (coef_.is_contiguous()) {
    const at::Tensor scale = scale_.contiguous();
    const int64_t in = coef_.size(0), out = coef_.size(1), nb = coef_.size(2);
    at::Tensor Wc = cpu::pooled_empty({in, nb, out}, coef_.options());
    AT_DISPATCH_FLOATING_TYPES(coef_.scalar_type(), "kanext_fold", [&] {
      const scalar_t *c = coef_.data_ptr<scalar_t>(), *sp = scale.data_ptr<scalar_t>();
      scalar_t* w = Wc.data_ptr<scalar_t>();
      at::parallel_for(0, in, std::max<int64_t>(1, (1 << 18) / std::max<int64_t>(1, out * nb)),
                       [&](int64_t i0, int64_t i1) { cpu::fold_inputs(c, sp, w + i0 * nb * out, i0, i1, out, nb); });
    });
    return Wc;
  }
  const at::Tensor cT = coef_.transpose(1, 2).contiguous(), scale = scale_.contiguous();
  const int64_t in = cT.size(0), nb = cT.size(1), out = cT.size(2);
  at::Tensor Wc = cpu::pooled_empty({in, nb, out}, cT.options());
  AT_DISPATCH_FLOATING_TYPES(cT.scalar_type(), "kanext_fold", [&] {
    const scalar_t *c = cT.data_ptr<scalar_t>(), *s = scale.data_ptr<scalar_t>();
    scalar_t* w = Wc.data_ptr<scalar_t>();
    at::parallel_for(0, in, std::max<int64_t>(1, (1 << 18) / std::max<int64_t>(1, out * nb)), [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i)
        for (int64_t g = 0; g < nb; ++g)
          scale_row(w + (i * nb + g) * out, c + (i * nb + g) * out, s + i * out, out);
    });
  });
  return Wc;
}

// grad_coef comes back in coef's layout (the kernel layout, or plain
// contiguous); grad_scale[i, j] = sum_g grad_Wc[i, g, j] coef[i, j, g].
std::tuple<at::Tensor, at::Tensor> fold_backward_cpu(const at::Tensor& gW_, const at::Tensor& coef_,
                                                     const at::Tensor& scale_) {
  const char* op = "kanext.fold_spline_weights_backward";
  check_fold(op, coef_, scale_);
  const int64_t in = coef_.size(0), out = coef_.size(1), nb = coef_.size(2);
  TORCH_CHECK(gW_.dim() == 3 && gW_.size(0) == in && gW_.size(1) == nb && gW_.size(2) == out, op,
              ": expected grad_Wc of shape (", in, ", ", nb, ", ", out, "), got ", gW_.sizes());
  TORCH_CHECK(gW_.scalar_type() == coef_.scalar_type(), op, ": grad_Wc dtype differs from coef dtype");
  if (coef_.is_contiguous()) {
    // grad_coef[i, j, g] = grad_Wc[i, g, j] scale[i, j], written contiguous like coef;
    // grad_scale[i, j] = sum_g grad_Wc[i, g, j] coef[i, j, g] (fixed order over g).
    const at::Tensor gW = gW_.contiguous(), scale = scale_.contiguous();
    at::Tensor gc = cpu::pooled_empty(coef_.sizes(), coef_.options()), gs = at::empty({in, out}, scale.options());
    AT_DISPATCH_FLOATING_TYPES(coef_.scalar_type(), "kanext_fold_backward", [&] {
      const scalar_t *g = gW.data_ptr<scalar_t>(), *c = coef_.data_ptr<scalar_t>(), *sp = scale.data_ptr<scalar_t>();
      scalar_t *gcp = gc.data_ptr<scalar_t>(), *gsp = gs.data_ptr<scalar_t>();
      at::parallel_for(0, in, std::max<int64_t>(1, (1 << 18) / std::max<int64_t>(1, out * nb)),
                       [&](int64_t i0, int64_t i1) {
                         cpu::unfold_gradients(g + i0 * nb * out, c, sp, gcp, gsp, i0, i1, out, nb);
                       });
    });
    return {gc, gs};
  }
  const at::Tensor gW = gW_.contiguous(), cT = coef_.transpose(1, 2).contiguous(), scale = scale_.contiguous();
  at::Tensor gcT = cpu::pooled_empty({in, nb, out}, cT.options()), gs = at::empty({in, out}, scale.options());
  AT_DISPATCH_FLOATING_TYPES(cT.scalar_type(), "kanext_fold_backward", [&] {
    const scalar_t *g = gW.data_ptr<scalar_t>(), *c = cT.data_ptr<scalar_t>(), *s = scale.data_ptr<scalar_t>();
    scalar_t *gcp = gcT.data_ptr<scalar_t>(), *gsp = gs.data_ptr<scalar_t>();
    at::parallel_for(0, in, std::max<int64_t>(1, (1 << 18) / std::max<int64_t>(1, out * nb)), [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const scalar_t* si = s + i * out;
        scalar_t* gsi = gsp + i * out;
        std::fill(gsi, gsi + out, scalar_t(0));
        for (int64_t q = 0; q < nb; ++q) {  // fixed order over q: deterministic
          const int64_t r = (i * nb + q) * out;
          scale_row(gcp + r, g + r, si, out);
          accumulate_product(gsi, g + r, c + r, out);
        }
      }
    });
  });
  at::Tensor gc = gcT.transpose(1, 2);
  if (gc.strides() != coef_.strides()) gc = at::empty_like(coef_).copy_(gc);
  return {gc, gs};
}

}  // namespace

TORCH_LIBRARY_IMPL(kanext, CPU, m) {
  m.impl("fold_spline_weights", &fold_cpu);
  m.impl("fold_spline_weights_backward", &fold_backward_cpu);
}

}  // namespace kanext
