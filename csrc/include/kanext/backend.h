// Which CUDA strategy the kan_linear ops use (kanext.set_backend in Python;
// the choice itself is made in csrc/cuda/kan_ops_cuda.cpp, see there and
// kanext/backend.py for the heuristic). Process-wide; read at every call.
#pragma once

#include <cstdint>

namespace kanext {

enum CudaBackend : int64_t { kBackendAuto = 0, kBackendLocal = 1, kBackendTensorCore = 2 };

// Defined in csrc/ops.cpp (always built, so the setting exists in CPU builds too).
int64_t cuda_backend();

}  // namespace kanext
