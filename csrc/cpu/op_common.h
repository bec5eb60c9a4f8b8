// Binding-side helpers shared by the CPU op files (csrc/cpu/<op>_cpu.cpp):
// order dispatch, the knot check, padded knots and the
// parallel grain. Torch headers allowed; kernel bodies never include this.
#pragma once

#include <ATen/ATen.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <type_traits>

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
