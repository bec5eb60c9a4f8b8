// CPU implementation of the derivative ops of the KAN layer: kan_linear_eval,
// kan_linear_transpose and kan_linear_wgrad (schemas and math in csrc/ops.cpp;
// kernel bodies in deriv_kernels.h; CUDA twin csrc/cuda/kan_linear_deriv_cuda.cpp;
// autograd in kanext/autodiff.py).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "deriv_kernels.h"
#include "kanext/checks.h"
#include "op_common.h"

namespace kanext {
namespace {

using cpu::dispatch_order;
using cpu::grain_for;

// Shared checks: returns G; x, grid and the optional v made contiguous.
int64_t check_deriv_args(const char* op, const at::Tensor& x, const at::Tensor& grid, int64_t k, int64_t base,
                         int64_t order) {
  const int64_t G = check_spline_args(op, x, grid, k);
  check_base(op, base);
  check_deriv_order(op, order, base);
  cpu::check_grid_increasing(op, grid.contiguous());
  return G;
}

const void* opt_ptr(const c10::optional<at::Tensor>& v) { return v.has_value() ? v->data_ptr() : nullptr; }

at::Tensor kan_linear_eval_cpu(const at::Tensor& x_, const c10::optional<at::Tensor>& v_, const at::Tensor& grid_,
                               int64_t k, int64_t base, const at::Tensor& Wb_, const at::Tensor& Wc_, int64_t order) {
  const char* op = "kanext.kan_linear_eval";
  const int64_t G = check_deriv_args(op, x_, grid_, k, base, order);
  check_weights(op, x_, G, k, Wb_, Wc_);
  check_row_weight(op, v_, x_);
  const at::Tensor x = x_.contiguous(), grid = grid_.contiguous(), Wb = Wb_.contiguous(), Wc = Wc_.contiguous();
  const c10::optional<at::Tensor> v = v_.has_value() ? c10::optional<at::Tensor>(v_->contiguous()) : c10::nullopt;
  const int64_t N = x.size(0), in = x.size(1), M = grid.size(1), out = Wb.size(1);
  at::Tensor y = at::zeros({N, out}, x.options());
  if (N == 0 || in == 0 || out == 0) return y;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "kanext_kan_linear_eval", [&] {
    const scalar_t* vp = static_cast<const scalar_t*>(opt_ptr(v));
    dispatch_order(k, [&](auto K) {
      at::parallel_for(0, N, grain_for(in * (out + 16) * (k + 2), 1), [&](int64_t n0, int64_t n1) {
        cpu::kan_linear_eval_rows<scalar_t, decltype(K)::value>(
            x.data_ptr<scalar_t>(), vp, grid.data_ptr<scalar_t>(), in, M, static_cast<int>(order), base,
            Wb.data_ptr<scalar_t>(), Wc.data_ptr<scalar_t>(), out, y.data_ptr<scalar_t>(), n0, n1);
      });
    });
  });
  return y;
}

at::Tensor kan_linear_transpose_cpu(const at::Tensor& dy_, const at::Tensor& x_, const at::Tensor& grid_, int64_t k,
                                    int64_t base, const at::Tensor& Wb_, const at::Tensor& Wc_, int64_t order) {
  const char* op = "kanext.kan_linear_transpose";
  const int64_t G = check_deriv_args(op, x_, grid_, k, base, order);
  check_weights(op, x_, G, k, Wb_, Wc_);
  check_linear_grad(op, dy_, x_, Wb_.size(1));
  const at::Tensor x = x_.contiguous(), grid = grid_.contiguous(), Wb = Wb_.contiguous(), Wc = Wc_.contiguous();
  const at::Tensor dy = dy_.contiguous();
  const int64_t N = x.size(0), in = x.size(1), M = grid.size(1), out = Wb.size(1);
  at::Tensor gx = at::zeros_like(x);
  if (N == 0 || in == 0) return gx;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "kanext_kan_linear_transpose", [&] {
    dispatch_order(k, [&](auto K) {
      at::parallel_for(0, N, grain_for(in * (out + 16) * (k + 2), 1), [&](int64_t n0, int64_t n1) {
        cpu::kan_linear_transpose_rows<scalar_t, decltype(K)::value>(
            dy.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), grid.data_ptr<scalar_t>(), in, M,
            static_cast<int>(order), base, Wb.data_ptr<scalar_t>(), Wc.data_ptr<scalar_t>(), out,
            gx.data_ptr<scalar_t>(), n0, n1);
      });
    });
  });
  return gx;
}

std::tuple<at::Tensor, at::Tensor> kan_linear_wgrad_cpu(const at::Tensor& dy_, const at::Tensor& x_,
                                                        const c10::optional<at::Tensor>& v_, const at::Tensor& grid_,
                                                        int64_t k, int64_t base, int64_t order) {
  const char* op = "kanext.kan_linear_wgrad";
  const int64_t G = check_deriv_args(op, x_, grid_, k, base, order);
  TORCH_CHECK(dy_.dim() == 2 && dy_.size(0) == x_.size(0), op, ": expected dy of shape (N, out) with N=", x_.size(0),
              ", got ", dy_.sizes());
  check_linear_grad(op, dy_, x_, dy_.size(1));
  check_row_weight(op, v_, x_);
  const at::Tensor x = x_.contiguous(), grid = grid_.contiguous(), dy = dy_.contiguous();
  const c10::optional<at::Tensor> v = v_.has_value() ? c10::optional<at::Tensor>(v_->contiguous()) : c10::nullopt;
  const int64_t N = x.size(0), in = x.size(1), M = grid.size(1), out = dy.size(1);
  at::Tensor gWb = at::zeros({in, out}, x.options());
  at::Tensor gWc = at::zeros({in, G + k, out}, x.options());
  if (N == 0 || in == 0 || out == 0) return {gWb, gWc};
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "kanext_kan_linear_wgrad", [&] {
    const scalar_t* vp = static_cast<const scalar_t*>(opt_ptr(v));
    dispatch_order(k, [&](auto K) {
      at::parallel_for(0, in, grain_for(N * (out + 16) * (k + 2), 1), [&](int64_t i0, int64_t i1) {
        cpu::kan_linear_wgrad_inputs<scalar_t, decltype(K)::value>(
            dy.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), vp, grid.data_ptr<scalar_t>(), N, in, M,
            static_cast<int>(order), base, out, gWb.data_ptr<scalar_t>(), gWc.data_ptr<scalar_t>(), i0, i1);
      });
    });
  });
  return {gWb, gWc};
}

}  // namespace

TORCH_LIBRARY_IMPL(kanext, CPU, m) {
  m.impl("kan_linear_eval", &kan_linear_eval_cpu);
  m.impl("kan_linear_transpose", &kan_linear_transpose_cpu);
  m.impl("kan_linear_wgrad", &kan_linear_wgrad_cpu);
}

}  // namespace kanext
