// Host emulation of kanext's CUDA kernels (KANEXT_CUDA_EMULATION only; see
// run_emulated.py). The .cu files compile as plain C++. A launch runs the
// blocks of the grid one after the other; the threads of a block are fibers
// (ucontext) on the calling OS thread, so __syncthreads and __syncwarp are
// real barriers at which the fiber yields until every thread of its block or
// warp has arrived. Between barriers the fibers run in an order shuffled at
// every phase (seed EMU_SEED), so code that reads shared memory written by
// another thread without a barrier in between sees stale or poisoned data.
// A barrier that not every thread reaches is reported and aborts (on the GPU
// it would hang or corrupt). __shfl_xor_sync exchanges through a per-warp
// buffer; __shared__ variables are per-kernel statics (one block at a time);
// dynamic shared memory is poisoned with 0xFF bytes (NaN) before every block.
// This checks indexing, tiling, barriers and the reduction logic; it says
// nothing about speed, nor about hardware behaviour (memory model, fast-math
// intrinsics, register and shared-memory limits).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <vector>

#include <ucontext.h>

#include "emu_types.h"

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

struct float4 { float x, y, z, w; };
struct uint4 { unsigned x, y, z, w; };
struct double2 { double x, y; };
inline float4 make_float4(float a, float b, float c, float d) { return {a, b, c, d}; }
inline uint4 make_uint4(unsigned a, unsigned b, unsigned c, unsigned d) { return {a, b, c, d}; }
inline double2 make_double2(double a, double b) { return {a, b}; }
template <class T>
inline T __ldg(const T* p) { return *p; }

using std::fma;
using std::isnan;

enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
enum cudaDeviceAttr { cudaDevAttrMultiProcessorCount = 16 };

inline cudaError_t cudaGetLastError() { return cudaSuccess; }
template <class F>
inline cudaError_t cudaFuncSetAttribute(F, cudaFuncAttribute, int bytes) {
  return bytes <= 227 * 1024 ? cudaSuccess : cudaErrorInvalidValue;  // the sm_90 per-block maximum
}
inline cudaError_t cudaMemsetAsync(void* p, int v, size_t n, cudaStream_t) {
  std::memset(p, v, n);
  return cudaSuccess;
}
inline cudaError_t cudaGetDevice(int* d) {
  *d = 0;
  return cudaSuccess;
}
// EMU_SM_COUNT (default 132, an H100/H200) drives the batch-slice choice.
inline cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr, int) {
  const char* e = std::getenv("EMU_SM_COUNT");
  *v = e ? std::atoi(e) : 132;
  return cudaSuccess;
}

inline dim3 threadIdx, blockIdx, blockDim, gridDim;  // set by the scheduler at every switch

namespace kanext {
namespace emu {

constexpr size_t kStack = 256 * 1024;

struct Fiber {
  ucontext_t ctx;
  char* stack = nullptr;  // from stack_pool()
  int state = 0;          // 0 runnable, 1 waiting at a barrier, 2 finished
  int bar = -1;           // the barrier it waits at (state 1)
};

// Fiber stacks, allocated once (uninitialised) and reused by every launch.
inline char* stack_pool(int t) {
  static std::vector<std::unique_ptr<char[]>> pool;
  while (static_cast<int>(pool.size()) <= t) pool.emplace_back(new char[kStack]);
  return pool[t].get();
}

struct Sched {
  ucontext_t main;
  std::vector<Fiber> fibers;
  // per barrier (0: block, 1 + w: warp w, 1 + warps + b: named barrier b of
  // bar.sync b, count): arrivals so far
  std::vector<int> waiting;
  std::vector<uint64_t> shfl;  // per warp, 32 slots
  std::vector<unsigned char> smem;
  const std::function<void()>* body = nullptr;
  // Asynchronous operations (emu_hopper.h: bulk copies) issued in this round
  // of the scheduler; they complete at the start of the next round, so a
  // thread that reads their destination without waiting on their mbarrier
  // sees the poisoned (or old) contents.
  std::vector<std::function<void()>> async_ops;
  int spins = 0;     // fibers of this round that yielded in a spin wait (spin_yield)
  int progress = 0;  // events of this round that can end a spin wait (mbarrier updates)
  dim3 block;
  int current = 0;
  int nt = 0;
  uint64_t rng = 0x9e3779b97f4a7c15ull;
};

inline Sched* g_sched = nullptr;  // one launch at a time
inline uint64_t g_launches = 0;    // launches so far (emu_mma.h keys its per-block state on it)

inline unsigned char* dynamic_smem() { return g_sched->smem.data(); }

inline void set_thread(int t) {
  const dim3 b = g_sched->block;
  threadIdx = dim3(t % b.x, (t / b.x) % b.y, t / (b.x * b.y));
}

inline void fiber_entry() {
  Sched& s = *g_sched;
  (*s.body)();
  s.fibers[s.current].state = 2;  // uc_link returns to the scheduler
}

// Barrier `id` with `target` participants: the last to arrive releases the
// others waiting at it and goes on; the others yield to the scheduler.
inline void barrier(int id, int target) {
  Sched& s = *g_sched;
  const int me = s.current;
  if (++s.waiting[id] == target) {
    s.waiting[id] = 0;
    for (int t = 0; t < s.nt; ++t)
      if (t != me && s.fibers[t].state == 1 && s.fibers[t].bar == id) {
        s.fibers[t].state = 0;
        s.fibers[t].bar = -1;
      }
    return;
  }
  s.fibers[me].state = 1;
  s.fibers[me].bar = id;
  swapcontext(&s.fibers[me].ctx, &s.main);
  set_thread(me);  // resumed
}

constexpr int kNamedBarriers = 16;  // bar.sync ids 0..15 (0 is __syncthreads')

// bar.sync b, count: `count` threads (a multiple of 32, at most the block)
// meet at named barrier b (1..15).
inline void named_barrier(int b, int count) {
  Sched& s = *g_sched;
  if (b < 1 || b >= kNamedBarriers || count % 32 != 0 || count < 32 || count > s.nt) {
    std::fprintf(stderr, "emu: bar.sync %d, %d: the id must be 1..15 and the count a multiple of 32 up to %d\n", b,
                 count, s.nt);
    std::abort();
  }
  barrier(1 + s.nt / 32 + b, count);
}

// Runs one block to completion. Kept out of line: getcontext/swapcontext
// return twice, and the caller's loop variables must not share their frame.
__attribute__((noinline)) inline void run_block(Sched& s, dim3 blk, size_t smem) {
  const int nt = s.nt;
  std::vector<int> order(nt);
  blockIdx = blk;
  s.smem.assign(smem, 0xFF);
  for (int t = 0; t < nt; ++t) {
    Fiber& f = s.fibers[t];
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = f.stack;
    f.ctx.uc_stack.ss_size = kStack;
    f.ctx.uc_link = &s.main;
    makecontext(&f.ctx, fiber_entry, 0);
    f.state = 0;
    f.bar = -1;
  }
  for (;;) {
    int n = 0;
    for (int t = 0; t < nt; ++t)
      if (s.fibers[t].state == 0) order[n++] = t;
    if (n == 0) break;
    // Complete the previous round's asynchronous operations. A round in which
    // every runnable fiber only spun, no mbarrier changed and nothing is in
    // flight repeats forever: a deadlock.
    std::vector<std::function<void()>> ops;
    ops.swap(s.async_ops);
    if (ops.empty() && s.spins == n && s.progress == 0) {
      std::fprintf(stderr, "emu: block (%u,%u,%u): every runnable thread spins on a wait that nothing can complete\n",
                   blk.x, blk.y, blk.z);
      std::abort();
    }
    s.spins = 0;
    s.progress = 0;
    for (auto& op : ops) op();
    for (int i = n - 1; i > 0; --i) {  // shuffle (xorshift)
      s.rng ^= s.rng << 13;
      s.rng ^= s.rng >> 7;
      s.rng ^= s.rng << 17;
      std::swap(order[i], order[s.rng % uint64_t(i + 1)]);
    }
    for (int i = 0; i < n; ++i) {
      const int t = order[i];
      if (s.fibers[t].state != 0) continue;
      s.current = t;
      set_thread(t);
      swapcontext(&s.main, &s.fibers[t].ctx);
    }
  }
  for (int t = 0; t < nt; ++t)
    if (s.fibers[t].state != 2) {
      std::fprintf(stderr,
                   "emu: block (%u,%u,%u): thread %d waits at a barrier that not every thread of its block/warp "
                   "reaches\n",
                   blk.x, blk.y, blk.z, t);
      std::abort();
    }
}

// A spin-wait step (mbarrier try_wait): yields to the scheduler, the fiber
// stays runnable and retries in the next round.
inline void spin_yield() {
  Sched& s = *g_sched;
  const int me = s.current;
  ++s.spins;
  swapcontext(&s.fibers[me].ctx, &s.main);
  set_thread(me);
}

// A preemption point (after an mbarrier arrive): the fiber yields to the
// scheduler and resumes in the next round, so the threads its arrival
// releases may run before it goes on, as they may on the GPU. (Not a spin:
// the fiber made progress.)
inline void preempt() {
  Sched& s = *g_sched;
  const int me = s.current;
  swapcontext(&s.fibers[me].ctx, &s.main);
  set_thread(me);
}

inline void run(dim3 grid, dim3 block, size_t smem, const std::function<void()>& body) {
  // EMU_MAX_GRID caps the grid, so the kernels' grid-stride loops run.
  if (const char* e = std::getenv("EMU_MAX_GRID")) {
    const unsigned cap = static_cast<unsigned>(std::max(1, std::atoi(e)));
    grid.x = std::min(grid.x, cap);
    grid.y = std::min(grid.y, cap);
    grid.z = std::min(grid.z, cap);
  }
  const int nt = static_cast<int>(block.x * block.y * block.z);
  if (nt % 32 != 0 || nt > 1024) {
    std::fprintf(stderr, "emu: block size %d is not a multiple of 32 in [32, 1024]\n", nt);
    std::abort();
  }
  Sched s;
  s.fibers.resize(nt);
  for (int t = 0; t < nt; ++t) s.fibers[t].stack = stack_pool(t);
  s.waiting.assign(1 + nt / 32 + kNamedBarriers, 0);
  s.shfl.assign(nt, 0);
  s.body = &body;
  s.block = block;
  s.nt = nt;
  if (const char* e = std::getenv("EMU_SEED")) s.rng ^= std::strtoull(e, nullptr, 10) * 0x2545F4914F6CDD1Dull;
  g_sched = &s;
  ++g_launches;
  blockDim = block;
  gridDim = grid;
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx) run_block(s, dim3(bx, by, bz), smem);
  g_sched = nullptr;
}

template <class... P>
struct Launch {
  dim3 grid, block;
  size_t smem;
  void (*kernel)(P...);
  template <class... A>
  void operator()(A&&... a) const {
    // Arguments converted to the kernel's parameter types once, by value, as
    // a real launch copies them.
    const std::function<void()> body = std::bind(kernel, static_cast<P>(a)...);
    run(grid, block, smem, body);
  }
};

template <class... P>
Launch<P...> launcher(dim3 grid, dim3 block, size_t smem, void (*kernel)(P...)) {
  return Launch<P...>{grid, block, smem, kernel};
}

// Per-block state of an emulated warp-/warpgroup-wide operation (emu_mma.h,
// emu_hopper.h): renew() is true, and remembers the block, when the running
// block is not the one the state was made for.
struct BlockKey {
  uint64_t launch = ~uint64_t(0);
  unsigned bx = 0, by = 0, bz = 0;
  bool renew() {
    if (launch == g_launches && bx == blockIdx.x && by == blockIdx.y && bz == blockIdx.z) return false;
    launch = g_launches;
    bx = blockIdx.x;
    by = blockIdx.y;
    bz = blockIdx.z;
    return true;
  }
};

inline int linear_tid() { return static_cast<int>(threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)); }

}  // namespace emu
}  // namespace kanext

inline void __syncthreads() { kanext::emu::barrier(0, kanext::emu::g_sched->nt); }
inline void __syncwarp(unsigned = 0xffffffffu) {
  const int w = kanext::emu::linear_tid() / 32;
  kanext::emu::barrier(1 + w, 32);
}

template <class T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask) {
  static_assert(sizeof(T) <= 8, "emu: shuffle of at most 8 bytes");
  const int tid = kanext::emu::linear_tid();
  uint64_t* buf = kanext::emu::g_sched->shfl.data() + tid / 32 * 32;
  std::memcpy(&buf[tid % 32], &v, sizeof(T));
  __syncwarp(mask);
  T r;
  std::memcpy(&r, &buf[(tid % 32) ^ lane_mask], sizeof(T));
  __syncwarp(mask);
  return r;
}
