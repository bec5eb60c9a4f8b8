// Binding-side helpers shared by the CPU op files (csrc/cpu/<op>_cpu.cpp):
// order dispatch, the knot check, padded knots and the
// parallel grain. Torch headers allowed; kernel bodies never include this.
#pragma once

#include <ATen/ATen.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <vector>

#include "kan_linear_kernels.h"
#include "kanext/checks.h"
#include "output_pool.h"

namespace kanext {
namespace cpu {

// Turns the runtime order k into the compile-time constant K.
template <typename F>
inline void dispatch_order(int64_t k, F&& f) {
  switch (k) {
    case 0: f(std::integral_constant<int, 0>{}); break;
    case 1: f(std::integral_constant<int, 1>{}); break;
    case 2: f(std::integral_constant<int, 2>{}); break;
    case 3: f(std::integral_constant<int, 3>{}); break;
    case 4: f(std::integral_constant<int, 4>{}); break;
    case 5: f(std::integral_constant<int, 5>{}); break;
    default: TORCH_CHECK(false, "kanext: spline order k must be in [0, 5], got ", k);
  }
}

// Turns a runtime flag into the compile-time constant B.
template <typename F>
inline void dispatch_bool(bool b, F&& f) {
  if (b) f(std::true_type{});
  else f(std::false_type{});
}

// The knot check lives in kanext/checks.h (shared with the CUDA binding).
using kanext::check_grid_increasing;

// Smallest amount of work (multiply-adds, roughly) worth handing to another
// thread: below it at::parallel_for runs inline, which matters for the small
// models of the KAN workflow (a [2, 5, 1] KAN on 1000 points).
constexpr int64_t kMinTaskWork = 1 << 20;

inline int64_t grain_for(int64_t work_per_item, int64_t multiple) {
  const int64_t items = std::max<int64_t>(1, kMinTaskWork / std::max<int64_t>(1, work_per_item));
  return (items + multiple - 1) / multiple * multiple;
}

// Zeros for a gradient output that was not asked for, in the backward ops
// whose fake kernels promise contiguous outputs (edge_stats,
// spline_activation; the kan_linear ones use skipped_grad below), from the
// output pool where large: at::zeros_like maps fresh pages and faults them
// in on every call (0.3 ms for 1 MiB on one thread here, bench/RESULTS.md,
// twentieth pass).
inline at::Tensor pooled_zeros(at::IntArrayRef sizes, const at::TensorOptions& options) {
  return pooled_empty(sizes, options).zero_();
}

// A gradient output that was not asked for, in the kan_linear backward ops:
// zeros of these sizes as a stride-0 expansion of one zero element (not a
// view; the fake kernels in kanext/ops.py say the same strides on the CPU).
// Nothing is allocated or written per element: contiguous zeros of a first
// layer's grad x (the data needs none) cost a memset of N x in values per
// step (0.15 ms at 4096 x 64 float32 on one thread), and of grad coef where
// only grad x is wanted, in x out x (G+k) values.
inline at::Tensor skipped_grad(at::IntArrayRef sizes, const at::TensorOptions& options) {
  at::Tensor t = at::empty_strided(sizes, std::vector<int64_t>(sizes.size(), 0), options);
  if (t.numel() > 0) std::memset(t.data_ptr(), 0, t.element_size());  // (float / double: all bits 0 is +0)
  return t;
}

// A kan_linear backward op's gradient output of t's shape: skipped_grad
// where not asked for; where asked for, uninitialised pooled memory that the
// kernel fills, or contiguous zeros where the batch or the layer is empty
// (the kernel then does not run).
inline at::Tensor backward_output(bool need, bool empty, const at::Tensor& t) {
  if (!need) return skipped_grad(t.sizes(), t.options());
  return empty ? at::zeros_like(t, at::MemoryFormat::Contiguous) : pooled_empty(t.sizes(), t.options());
}

// t if contiguous, else a contiguous copy of it in pooled memory.
inline at::Tensor pooled_contiguous(const at::Tensor& t) {
  return t.is_contiguous() ? t : pooled_empty(t.sizes(), t.options()).copy_(t);
}

// A 2-D grad_y as the backward kernels read it: (g, ldg) with row n at
// g.data_ptr() + n ldg. Rows that are all one row (stride 0 over the batch:
// grad_y of y.sum() or y.mean() is a scalar expanded to (N, out)) give
// ldg = 0 and that one row, instead of an (N, out) copy (0.2 ms per call at
// 4096 x 64 on one thread, bench/RESULTS.md, twentieth pass); rows of unit
// stride keep their stride; anything else is copied.
inline std::tuple<at::Tensor, int64_t> grad_rows(const at::Tensor& gy) {
  const int64_t N = gy.size(0), out = gy.size(1);
  if (N > 1 && gy.stride(0) == 0) return {gy.select(0, 0).contiguous(), 0};
  const bool unit = out <= 1 || gy.stride(1) == 1;
  if (unit && N <= 1) return {gy, out};
  if (unit && gy.stride(0) >= out) return {gy, gy.stride(0)};
  return {pooled_contiguous(gy), out};
}

// (in, M + 2k + 2) knots with stand-ins past both ends (see cpu::pad_knots).
inline at::Tensor padded_knots(const at::Tensor& grid, int64_t k) {
  const int64_t in = grid.size(0), M = grid.size(1);
  at::Tensor padded = at::empty({in, M + 2 * k + 2}, grid.options());
  AT_DISPATCH_FLOATING_TYPES(grid.scalar_type(), "kanext_pad_knots", [&] {
    for (int64_t i = 0; i < in; ++i)
      pad_knots<scalar_t>(grid.data_ptr<scalar_t>() + i * M, M, static_cast<int>(k),
                          padded.data_ptr<scalar_t>() + i * (M + 2 * k + 2));
  });
  return padded;
}

}  // namespace cpu
}  // namespace kanext
