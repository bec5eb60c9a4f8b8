// A cache of the large CPU buffers that kanext's ops return (layer outputs,
// grad x, the weight gradients): csrc/cpu/output_pool.cpp.
//
// Why: torch's CPU allocator hands every allocation to malloc, and glibc
// serves blocks above its mmap threshold (at most 32 MiB) with a fresh mmap
// each time. So a training step that allocates a 54 MiB grad coef (a 256 ->
// 256 layer at G = 100 in float64; any 1024 -> 1024 layer) and frees it at
// zero_grad(set_to_none=True) takes a page fault per 4 KiB and a kernel-side
// zeroing of the whole block, every step: 15-40% of the step on 2 cores
// (bench/RESULTS.md, "sixteenth pass"). Buffers of at least kPoolMinBytes
// returned by the ops come from here instead; when such a tensor is freed
// its buffer is kept (up to a byte limit, oldest evicted first) and handed to
// the next request of the same size, already mapped.
//
// The tensors are ordinary resizable CPU tensors (their storage's allocator
// is the pool's); the profiler sees their allocations and frees as it sees
// torch's own (c10::reportMemoryUsageToProfiler). Control from Python:
// kanext.cpu_cache_info(), kanext.empty_cpu_cache(),
// kanext.set_cpu_cache_limit(), or KANEXT_CPU_CACHE_MB at import (0: off).
#pragma once

#include <ATen/ATen.h>

#include <cstddef>
#include <cstdint>

namespace kanext {
namespace cpu {

constexpr size_t kPoolMinBytes = size_t(1) << 20;

// A contiguous CPU tensor of these sizes and options, uninitialised: from
// the pool when it is at least kPoolMinBytes and the pool is on, else
// at::empty.
at::Tensor pooled_empty(at::IntArrayRef sizes, const at::TensorOptions& options);

struct PoolInfo {
  size_t cached_bytes, cached_buffers, limit_bytes;
  uint64_t hits, misses;
};
PoolInfo pool_info();
void pool_empty();                     // frees every cached buffer
void pool_set_limit(size_t bytes);     // 0 turns the pool off (and empties it)

}  // namespace cpu
}  // namespace kanext
