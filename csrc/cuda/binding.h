// What every CUDA binding (csrc/cuda/<op>_cuda.cpp) shares: the torch
// headers, the current stream and workspaces from the caching allocator.
//
// A binding checks arguments (kanext/checks.h: the CPU binding's checks and
// messages), makes the inputs contiguous, allocates outputs and workspaces
// with the caching allocator, and calls the plain launchers of
// csrc/cuda/*.cu (declared in cuda_launch.h / cuda_launch_stats.h) on the
// current stream under a device guard. No host synchronisation, no .item():
// the ops are asynchronous and can be captured in CUDA graphs.
//
// Compiled only in CUDA builds (setup.py adds csrc/cuda/*.cpp when torch has
// CUDA): the CPU wheel of torch lacks c10/cuda/impl/cuda_cmake_macros.h,
// which c10/cuda/CUDAGuard.h needs. ATen/cuda/CUDAContext.h is not used (it
// pulls in cusparse.h); the stream comes from c10::cuda directly.
//
// Knot validation. The CPU binding checks on the host that every grid row is
// finite and strictly increasing. Here that check would need a device-to-host
// copy, i.e. a synchronisation on every call (and would break graph capture),
// so it is off by default and runs only when the environment variable
// KANEXT_CHECK_GRID is set to a non-empty value other than "0" (debugging;
// same error messages as on the CPU; maybe_check_grid_on_host in checks.h).
// Without it an invalid grid cannot cause an out-of-bounds access
// (find_interval / local_bases never index outside the knot row, and window
// starts are clamped), it only gives meaningless values. kanext's own grids
// are strictly increasing by construction (kanext/grid.py).
#pragma once

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cstdint>
#include <tuple>

#include "kanext/checks.h"

namespace kanext {

inline cudaStream_t current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

// A byte workspace from the caching allocator (undefined when bytes == 0).
inline at::Tensor workspace(size_t bytes, const at::Tensor& like) {
  return bytes > 0 ? at::empty({static_cast<int64_t>(bytes)}, like.options().dtype(at::kByte)) : at::Tensor();
}

inline void* ws_ptr(const at::Tensor& ws) { return ws.defined() ? ws.data_ptr() : nullptr; }

}  // namespace kanext
