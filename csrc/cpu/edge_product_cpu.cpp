// CPU implementation of edge_product and edge_product_wgrad, the ops of
// edge_stats' second and higher derivatives (schemas and math in csrc/ops.cpp;
// kernel bodies in deriv_kernels.h; CUDA twin csrc/cuda/edge_product_cuda.cpp;
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

at::Tensor edge_product_cpu(const at::Tensor& x_, const at::Tensor& grid_, int64_t k, int64_t base,
                            const at::Tensor& Wb_, const at::Tensor& Wc_, const at::Tensor& Vb_, const at::Tensor& Vc_,
                            int64_t mode, int64_t c, int64_t a) {
  const char* op = "kanext.edge_product";
  check_edge_product_args(op, x_, grid_, k, base, Wb_, Wc_, &Vb_, &Vc_, mode, c, a);
  const at::Tensor x = x_.contiguous(), grid = grid_.contiguous();
  cpu::check_grid_increasing(op, grid);
  const at::Tensor Wb = Wb_.contiguous(), Wc = Wc_.contiguous(), Vb = Vb_.contiguous(), Vc = Vc_.contiguous();
  const int64_t N = x.size(0), in = x.size(1), M = grid.size(1), out = Wb.size(1);
  at::Tensor P = at::zeros_like(x);
  if (N == 0 || in == 0 || out == 0) return P;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "kanext_edge_product", [&] {
    dispatch_order(k, [&](auto K) {
      at::parallel_for(0, N, grain_for(in * (2 * out + 16) * (k + 2), 1), [&](int64_t n0, int64_t n1) {
        cpu::edge_product_rows<scalar_t, decltype(K)::value>(
            x.data_ptr<scalar_t>(), grid.data_ptr<scalar_t>(), in, M, base, Wb.data_ptr<scalar_t>(),
            Wc.data_ptr<scalar_t>(), Vb.data_ptr<scalar_t>(), Vc.data_ptr<scalar_t>(), out, static_cast<int>(mode),
            static_cast<int>(c), static_cast<int>(a), P.data_ptr<scalar_t>(), n0, n1);
      });
    });
  });
  return P;
}

std::tuple<at::Tensor, at::Tensor> edge_product_wgrad_cpu(const at::Tensor& x_, const c10::optional<at::Tensor>& u_,
                                                          const at::Tensor& grid_, int64_t k, int64_t base,
                                                          const at::Tensor& Wb_, const at::Tensor& Wc_, int64_t mode,
                                                          int64_t c, int64_t a) {
  const char* op = "kanext.edge_product_wgrad";
  const int64_t G = check_edge_product_args(op, x_, grid_, k, base, Wb_, Wc_, nullptr, nullptr, mode, c, a);
  check_row_weight(op, u_, x_);
  const at::Tensor x = x_.contiguous(), grid = grid_.contiguous();
  cpu::check_grid_increasing(op, grid);
  const at::Tensor Wb = Wb_.contiguous(), Wc = Wc_.contiguous();
  const c10::optional<at::Tensor> u = u_.has_value() ? c10::optional<at::Tensor>(u_->contiguous()) : c10::nullopt;
  const int64_t N = x.size(0), in = x.size(1), M = grid.size(1), out = Wb.size(1);
  at::Tensor Sb = at::zeros({in, out}, x.options());
  at::Tensor SB = at::zeros({in, G + k, out}, x.options());
  if (N == 0 || in == 0 || out == 0) return {Sb, SB};
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "kanext_edge_product_wgrad", [&] {
    const scalar_t* up = u.has_value() ? u->data_ptr<scalar_t>() : nullptr;
    dispatch_order(k, [&](auto K) {
      at::parallel_for(0, in, grain_for(N * (2 * out + 16) * (k + 2), 1), [&](int64_t i0, int64_t i1) {
        cpu::edge_product_wgrad_inputs<scalar_t, decltype(K)::value>(
            x.data_ptr<scalar_t>(), up, grid.data_ptr<scalar_t>(), N, in, M, base, Wb.data_ptr<scalar_t>(),
            Wc.data_ptr<scalar_t>(), out, static_cast<int>(mode), static_cast<int>(c), static_cast<int>(a),
            Sb.data_ptr<scalar_t>(), SB.data_ptr<scalar_t>(), i0, i1);
      });
    });
  });
  return {Sb, SB};
}

}  // namespace

TORCH_LIBRARY_IMPL(kanext, CPU, m) {
  m.impl("edge_product", &edge_product_cpu);
  m.impl("edge_product_wgrad", &edge_product_wgrad_cpu);
}

}  // namespace kanext
