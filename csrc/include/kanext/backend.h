// The CUDA strategies of the kan_linear ops, passed as their `backend`
// argument (kanext/backend.py chooses it in Python; the choice per call is
// made in csrc/cuda/kan_linear_cuda.cpp, see there and kanext/backend.py for the
// heuristic). An argument, not process state, so that torch.compile sees it.
#pragma once

#include <cstdint>

#include <c10/util/Exception.h>

namespace kanext {

// kBackendLocalV2: as kBackendLocal, with the v2 kernels (designs L.1 and L.2
// of docs/roofline.md; unmeasured on a GPU): the register-accumulator weight
// gradient when G + k <= 16, and the forward / grad x with 32-bit offsets.
// kBackendTensorCoreV2: as kBackendTensorCore, with the float32 (TF32)
// forward on Hopper's warpgroup MMA (design T step 3, kan_linear_tc_v2_ws.cuh:
// W folded into the operand layout, warp-specialised; unmeasured on a GPU) where it can run: a compute-capability 9.0 device and a build with
// sm_90a code (cuda::tc_v2_available()); elsewhere, and for the backward and
// the 16-bit types, exactly kBackendTensorCore.
enum CudaBackend : int64_t {
  kBackendAuto = 0,
  kBackendLocal = 1,
  kBackendTensorCore = 2,
  kBackendLocalV2 = 3,
  kBackendTensorCoreV2 = 4
};

inline void check_backend(const char* op, int64_t backend) {
  TORCH_CHECK(backend >= kBackendAuto && backend <= kBackendTensorCoreV2, op,
              ": backend must be 0 (auto), 1 (local), 2 (tensor_core), 3 (local_v2) or 4 (tensor_core_v2), got ",
              backend);
}

}  // namespace kanext
