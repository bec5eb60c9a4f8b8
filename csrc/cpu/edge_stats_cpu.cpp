// CPU implementation of edge_stats and its backward (schemas in csrc/ops.cpp,
// kernel bodies in edge_stats_kernels.h): checks, allocation, dispatch on
// dtype / order k / base / need flags, and at::parallel_for over inputs.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "edge_stats_kernels.h"
#include "kanext/checks.h"
#include "op_common.h"

namespace kanext {
namespace {

using cpu::check_grid_increasing;
using cpu::dispatch_bool;
using cpu::dispatch_order;
using cpu::grain_for;
using cpu::padded_knots;

std::tuple<at::Tensor, at::Tensor, at::Tensor> edge_stats_cpu(const at::Tensor& x_, const at::Tensor& grid_,
                                                              int64_t k, int64_t base, const at::Tensor& Wb_,
                                                              const at::Tensor& Wc_) {
  const char* op = "kanext.edge_stats";
  const int64_t G = check_spline_args(op, x_, grid_, k);
  check_weights(op, x_, G, k, Wb_, Wc_);
  check_base(op, base);
  const at::Tensor grid = grid_.contiguous(), Wb = Wb_.contiguous(), Wc = Wc_.contiguous();
  check_grid_increasing(op, grid);
  const int64_t N = x_.size(0), in = x_.size(1), M = grid.size(1), out = Wb.size(1);
  if (N == 0 || in == 0 || out == 0) {
    auto z = [&] { return at::zeros({in, out}, x_.options()); };
    return {z(), z(), z()};
  }
  // One input's batch contiguous: the kernel walks x column by column.
  const at::Tensor xT = x_.t().contiguous();
  at::Tensor S = at::empty({in, out}, x_.options()), Q = at::empty({in, out}, x_.options()),
             A = at::empty({in, out}, x_.options());  // each thread zeroes its own rows
  const at::Tensor padded = padded_knots(grid, k);
  AT_DISPATCH_FLOATING_TYPES(x_.scalar_type(), "kanext_edge_stats", [&] {
    const scalar_t *xp = xT.data_ptr<scalar_t>(), *tp = grid.data_ptr<scalar_t>();
    const scalar_t* pp = padded.data_ptr<scalar_t>();
    const scalar_t *wbp = Wb.data_ptr<scalar_t>(), *wcp = Wc.data_ptr<scalar_t>();
    scalar_t *sp = S.data_ptr<scalar_t>(), *qp = Q.data_ptr<scalar_t>(), *ap = A.data_ptr<scalar_t>();
    dispatch_order(k, [&](auto K) {
      dispatch_bool(base != kBaseZero, [&](auto HB) {
        at::parallel_for(0, in, grain_for(N * (out + 8) * (k + 2), 1), [&](int64_t i0, int64_t i1) {
          cpu::edge_stats_forward_inputs<scalar_t, decltype(K)::value, decltype(HB)::value>(
              xp, tp, pp, N, M, base, wbp, wcp, out, sp, qp, ap, i0, i1);
        });
      });
    });
  });
  return {S, Q, A};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> edge_stats_backward_cpu(
    const at::Tensor& gS_, const at::Tensor& gQ_, const at::Tensor& gA_, const at::Tensor& x_,
    const at::Tensor& grid_, int64_t k, int64_t base, const at::Tensor& Wb_, const at::Tensor& Wc_, bool need_x,
    bool need_w) {
  const char* op = "kanext.edge_stats_backward";
  const int64_t G = check_spline_args(op, x_, grid_, k);
  check_weights(op, x_, G, k, Wb_, Wc_);
  check_base(op, base);
  const int64_t N = x_.size(0), in = x_.size(1), out = Wb_.size(1);
  check_edge_stats_grads(op, gS_, gQ_, gA_, x_, out);
  const at::Tensor grid = grid_.contiguous(), Wb = Wb_.contiguous(), Wc = Wc_.contiguous();
  check_grid_increasing(op, grid);
  const int64_t M = grid.size(1);
  if (N == 0 || in == 0 || out == 0 || (!need_x && !need_w))
    return {at::zeros({N, in}, x_.options()), at::zeros_like(Wb), at::zeros_like(Wc)};
  const at::Tensor xT = x_.t().contiguous();
  const at::Tensor gS = gS_.contiguous(), gQ = gQ_.contiguous(), gA = gA_.contiguous();
  // The kernel writes every element of what it is asked for; skipped outputs are zeros.
  at::Tensor gxT = need_x ? cpu::pooled_empty({in, N}, x_.options()) : at::Tensor();
  at::Tensor gWb = (need_w ? cpu::pooled_empty : cpu::pooled_zeros)(Wb.sizes(), Wb.options());
  at::Tensor gWc = (need_w ? cpu::pooled_empty : cpu::pooled_zeros)(Wc.sizes(), Wc.options());
  const at::Tensor padded = padded_knots(grid, k);
  AT_DISPATCH_FLOATING_TYPES(x_.scalar_type(), "kanext_edge_stats_backward", [&] {
    const scalar_t *xp = xT.data_ptr<scalar_t>(), *tp = grid.data_ptr<scalar_t>();
    const scalar_t* pp = padded.data_ptr<scalar_t>();
    const scalar_t *wbp = Wb.data_ptr<scalar_t>(), *wcp = Wc.data_ptr<scalar_t>();
    const scalar_t *gsp = gS.data_ptr<scalar_t>(), *gqp = gQ.data_ptr<scalar_t>(), *gap = gA.data_ptr<scalar_t>();
    scalar_t* gxp = need_x ? gxT.data_ptr<scalar_t>() : nullptr;
    scalar_t *gwbp = gWb.data_ptr<scalar_t>(), *gwcp = gWc.data_ptr<scalar_t>();
    dispatch_order(k, [&](auto K) {
      dispatch_bool(base != kBaseZero, [&](auto HB) {
        dispatch_bool(need_x, [&](auto NX) {
          dispatch_bool(need_w, [&](auto NW) {
            at::parallel_for(0, in, grain_for(N * (out + 8) * (k + 2), 1), [&](int64_t i0, int64_t i1) {
              cpu::edge_stats_backward_inputs<scalar_t, decltype(K)::value, decltype(HB)::value,
                                              decltype(NX)::value, decltype(NW)::value>(
                  gsp, gqp, gap, xp, tp, pp, N, M, base, wbp, wcp, out, gxp, gwbp, gwcp, i0, i1);
            });
          });
        });
      });
    });
  });
  at::Tensor gx = need_x ? gxT.t().contiguous() : at::zeros({N, in}, x_.options());
  return {gx, gWb, gWc};
}

}  // namespace

TORCH_LIBRARY_IMPL(kanext, CPU, m) {
  m.impl("edge_stats", &edge_stats_cpu);
  m.impl("edge_stats_backward", &edge_stats_backward_cpu);
}

}  // namespace kanext
