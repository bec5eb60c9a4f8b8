// Host emulation of the Hopper primitives of hopper.cuh (KANEXT_CUDA_EMULATION
// only; see emu.h). What each one implements, from the PTX ISA:
//
// Shared addresses are byte offsets into the block's dynamic shared memory
// (the only shared memory these primitives accept).
//
// mbarrier: an 8-byte object in shared memory with a phase, a pending
//   arrival count (reset to the expected count when a phase completes) and a
//   transaction count. A phase completes when the pending arrivals and the
//   transaction count are both 0; then the phase flips and the counts reset.
//   arrive.expect_tx adds its bytes to the transaction count and arrives;
//   complete_tx (done by a bulk copy) subtracts them. try_wait.parity(p) is
//   true when the phase of parity p has completed, i.e. when the current
//   phase's parity is not p (the operand names the current phase or the one
//   just before it). An object read before mbarrier.init (still the 0xFF
//   poison of dynamic shared memory) aborts.
// cp.async.bulk global -> shared: 16-byte aligned addresses, a size that is a
//   multiple of 16; the copy and its complete_tx happen asynchronously: here
//   at the start of the scheduler's next round (emu.h), so a reader that does
//   not wait on the mbarrier sees the old (poisoned) bytes.
// wgmma.mma_async m64nNk8 .f32.tf32.tf32 and m64nNk16 .f32.bf16.bf16 /
//   .f32.f16.f16, A and B from shared memory through descriptors, both
//   K-major (the only layout TF32 has; imm-trans 0 for the 16-bit types,
//   whose products and sums follow the TF32 rules below): issued by
//   the 128 threads of a warpgroup (4 consecutive warps, the first a multiple
//   of 4) with the same descriptors; asynchronous: each thread's operation is
//   queued and computed when a wgmma.wait_group retires its commit group, so
//   the shared-memory operands are read then (overwriting them before the
//   wait changes the result, as it may on the GPU) and the accumulator
//   registers hold their old values until then. A wgmma.fence must precede
//   the first wgmma after a wait (the ISA requires it before the first
//   wgmma and between register accesses and a wgmma on the same registers;
//   this checks the simpler, stricter rule). The operands are read as TF32:
//   the 13 low mantissa bits are ignored (the ISA leaves non-TF32 bit
//   patterns to the implementation; the kernels round with cvt.rna first, so
//   this changes nothing for them). Products are exact in float32 and summed
//   in k order onto the accumulator (the hardware's order differs: results
//   agree to float32 rounding of the sums, as in emu_mma.h).
//   Accumulator layout (per thread t of the warpgroup, element e):
//   row 16 (t/32) + (t%32)/4 + 8 ((e/2)%2), column 8 (e/4) + 2 (t%4) + e%2.
//   Descriptor (hopper.cuh make_desc): start address, LBO, SBO >> 4, swizzle.
//   K-major core matrices are 8 rows x 16 bytes (4 TF32, 8 bf16 / half; a
//   k-step, 8 TF32 or 16 16-bit elements, spans two of them). Without swizzle a
//   core matrix is 128 contiguous bytes (row r%8 at 16 (r%8)), core matrices
//   adjacent in K are LBO bytes apart and those adjacent in M/N SBO bytes
//   apart. With the 128-byte swizzle, rows are 128 bytes apart within 8-row
//   groups of 1,024 bytes (SBO apart), K runs along the row (k * size bytes from
//   the start address, which k-steps advance by 32 bytes), and the 16-byte
//   chunk index (address bits 4-6) is XORed with the row within the group
//   (bits 7-9); the pattern repeats every 1,024 bytes of address, so the
//   tile must start 1,024-byte aligned (base offset 0).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <unordered_map>
#include <vector>

#include "emu.h"
#include "emu_mma.h"  // __nv_bfloat16, __half

namespace kanext {
namespace emu_hop {

[[noreturn]] inline void fail(const char* what) {
  std::fprintf(stderr, "emu hopper: %s\n", what);
  std::abort();
}

inline size_t smem_size() { return kanext::emu::g_sched->smem.size(); }

inline uint32_t smem_u32(const void* p) {
  const unsigned char* b = kanext::emu::dynamic_smem();
  const unsigned char* c = static_cast<const unsigned char*>(p);
  if (c < b || c >= b + smem_size()) fail("address outside the block's dynamic shared memory");
  return static_cast<uint32_t>(c - b);
}

inline unsigned char* smem_at(uint32_t addr, size_t bytes) {
  if (size_t(addr) + bytes > smem_size()) fail("shared-memory access past the dynamic shared memory");
  return kanext::emu::dynamic_smem() + addr;
}

// ------------------------------------------------------------------ mbarrier
// Packed state: pending arrivals bits 0-19, expected arrivals 20-39, phase
// bit 40, transaction count (signed) bits 41-63.
struct Mbar {
  uint32_t pending, expected, phase;
  int32_t tx;
};
inline Mbar mbar_load(const uint64_t* bar) {
  uint64_t v;
  std::memcpy(&v, bar, 8);
  if (v == ~uint64_t(0)) fail("mbarrier used before mbarrier.init");
  Mbar m;
  m.pending = uint32_t(v & 0xFFFFF);
  m.expected = uint32_t((v >> 20) & 0xFFFFF);
  m.phase = uint32_t((v >> 40) & 1);
  m.tx = int32_t(int64_t(v) >> 41);
  return m;
}
inline void mbar_store(uint64_t* bar, const Mbar& m) {
  const uint64_t v = uint64_t(m.pending) | (uint64_t(m.expected) << 20) | (uint64_t(m.phase) << 40) |
                     (uint64_t(int64_t(m.tx)) << 41);
  std::memcpy(bar, &v, 8);
  ++kanext::emu::g_sched->progress;
}
inline void check_bar(const uint64_t* bar) {
  if (reinterpret_cast<uintptr_t>(bar) % 8 != 0) fail("mbarrier not 8-byte aligned");
  smem_at(smem_u32(bar), 8);
}
inline void mbar_complete_if_done(Mbar& m) {
  if (m.pending == 0 && m.tx == 0) {
    m.phase ^= 1;
    m.pending = m.expected;
  }
}

inline void mbar_init(uint64_t* bar, uint32_t count) {
  check_bar(bar);
  if (count < 1 || count > 0xFFFFF) fail("mbarrier.init count outside [1, 2^20 - 1]");
  mbar_store(bar, Mbar{count, count, 0, 0});
}
inline void mbar_arrive_expect_tx(uint64_t* bar, uint32_t bytes) {
  check_bar(bar);
  Mbar m = mbar_load(bar);
  if (m.pending == 0) fail("mbarrier arrive with no pending arrival");
  m.tx += int32_t(bytes);
  if (m.tx >= (1 << 20)) fail("mbarrier transaction count out of range");
  --m.pending;
  mbar_complete_if_done(m);
  mbar_store(bar, m);
  // the arrival may let a waiter run before this thread goes on: e.g. a
  // stage released before its wgmmas retired is refilled under them
  kanext::emu::preempt();
}
inline void mbar_arrive(uint64_t* bar) { mbar_arrive_expect_tx(bar, 0); }
inline void mbar_complete_tx(uint64_t* bar, uint32_t bytes) {
  Mbar m = mbar_load(bar);
  m.tx -= int32_t(bytes);
  if (m.tx <= -(1 << 20)) fail("mbarrier transaction count out of range");
  mbar_complete_if_done(m);
  mbar_store(bar, m);
}
inline bool mbar_try_wait(uint64_t* bar, uint32_t parity) {
  check_bar(bar);
  return mbar_load(bar).phase != (parity & 1);
}
inline void mbar_wait(uint64_t* bar, uint32_t parity) {
  while (!mbar_try_wait(bar, parity)) kanext::emu::spin_yield();
}

// ---------------------------------------------------------- bulk async copy
inline void bulk_copy_g2s(void* dst, const void* src, uint32_t bytes, uint64_t* bar) {
  check_bar(bar);
  const uint32_t d = smem_u32(dst);
  if (d % 16 || reinterpret_cast<uintptr_t>(src) % 16 || bytes % 16 || bytes == 0)
    fail("cp.async.bulk: addresses must be 16-byte aligned and the size a positive multiple of 16");
  smem_at(d, bytes);
  const uint32_t b = smem_u32(bar);
  kanext::emu::g_sched->async_ops.push_back([d, src, bytes, b] {
    std::memcpy(smem_at(d, bytes), src, bytes);
    mbar_complete_tx(reinterpret_cast<uint64_t*>(smem_at(b, 8)), bytes);
  });
}

inline void fence_proxy_async() {}

inline void named_barrier_sync(int id, int count) { kanext::emu::named_barrier(id, count); }

// ---------------------------------------------------------------- wgmma
enum WgType : int { kWgTF32 = 0, kWgBF16 = 1, kWgF16 = 2 };
struct WgOp {
  float* d;
  int n;
  uint64_t da, db;
  int scale_d;
  int type;  // WgType
};
struct WgThread {
  std::vector<WgOp> open;                // issued, not yet committed
  std::vector<std::vector<WgOp>> groups;  // committed, oldest first
  bool fenced = false;
  uint64_t calls = 0;
};
struct WgState {
  kanext::emu::BlockKey block;
  std::vector<WgThread> th;
  std::unordered_map<uint64_t, WgOp> issued;  // (warpgroup, call) -> the first thread's operands, to compare
  std::unordered_map<uint64_t, int> count;
};
inline WgState& wg_state() {
  static WgState s;
  const auto& sc = *kanext::emu::g_sched;
  if (s.block.renew()) {
    s.th.assign(sc.nt, WgThread());
    s.issued.clear();
    s.count.clear();
  }
  return s;
}

inline float tf32_operand(float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  u &= 0xFFFFE000u;
  std::memcpy(&v, &u, 4);
  return v;
}

// Byte address of element (r, k) (r: row of A / column of B, k < 8 for TF32,
// < 16 for 16-bit types) of a K-major operand of `size`-byte elements
// described by `desc`: a core matrix row is 16 bytes, 16 / size elements.
inline uint32_t operand_addr(uint64_t desc, int r, int k, int size = 4) {
  const uint32_t start = uint32_t(desc & 0x3FFF) << 4;
  const uint32_t lbo = uint32_t((desc >> 16) & 0x3FFF) << 4;
  const uint32_t sbo = uint32_t((desc >> 32) & 0x3FFF) << 4;
  const int base_offset = int((desc >> 49) & 7);
  const int swz = int(desc >> 62);
  const int per = 16 / size;
  if (base_offset != 0) fail("wgmma descriptor: base offset other than 0 is not emulated");
  if (swz == 0)
    return start + uint32_t(r / 8) * sbo + uint32_t(k / per) * lbo + uint32_t(r % 8) * 16 + uint32_t(k % per) * size;
  if (swz != 1) fail("wgmma descriptor: only no swizzle and the 128-byte swizzle are emulated");
  if ((start >> 7) & 7) fail("wgmma descriptor (128B swizzle): the start address is not in the first row of a 1,024-byte pattern");
  uint32_t a = start + uint32_t(r / 8) * sbo + uint32_t(r % 8) * 128 + uint32_t(k) * size;
  return a ^ (((a >> 7) & 7) << 4);
}

// Element (r, k) of an operand of type `type` (WgType), as a float: TF32
// (the low 13 mantissa bits ignored), or a bfloat16 / IEEE half widened
// exactly.
inline float operand(uint64_t desc, int r, int k, int type = kWgTF32) {
  const int size = type == kWgTF32 ? 4 : 2;
  const uint32_t a = operand_addr(desc, r, k, size);
  if (a % size) fail("wgmma operand not aligned to its element size");
  if (type == kWgTF32) {
    float v;
    std::memcpy(&v, smem_at(a, 4), 4);
    return tf32_operand(v);
  }
  if (type == kWgBF16) {
    __nv_bfloat16 h;
    std::memcpy(&h, smem_at(a, 2), 2);
    return __bfloat162float(h);
  }
  __half h;
  std::memcpy(&h, smem_at(a, 2), 2);
  return __half2float(h);
}

// One thread's share of a wgmma: products exact in float32 (a product of two
// TF32, bf16 or half values has at most 22 significant bits), summed in k
// order onto the accumulator.
inline void wgmma_run(const WgOp& op, int t) {
  const int kk = op.type == kWgTF32 ? 8 : 16;
  for (int e = 0; e < op.n / 2; ++e) {
    const int row = 16 * (t >> 5) + ((t & 31) >> 2) + 8 * ((e >> 1) & 1);
    const int col = 8 * (e >> 2) + 2 * (t & 3) + (e & 1);
    float s = op.scale_d ? op.d[e] : 0.f;
    for (int k = 0; k < kk; ++k) s += operand(op.da, row, k, op.type) * operand(op.db, col, k, op.type);
    op.d[e] = s;
  }
}

inline void wgmma_fence() { wg_state().th[kanext::emu::linear_tid()].fenced = true; }

inline void wgmma_issue(float* d, int n, uint64_t da, uint64_t db, int scale_d, int type) {
  auto& s = wg_state();
  const int tid = kanext::emu::linear_tid();
  if (kanext::emu::g_sched->nt % 128) fail("wgmma: the block is not a whole number of warpgroups");
  auto& me = s.th[tid];
  if (!me.fenced) fail("wgmma.mma_async without a wgmma.fence since the last wait_group");
  const WgOp op{d, n, da, db, scale_d, type};
  const uint64_t key = (uint64_t(tid / 128) << 40) | me.calls++;
  auto it = s.issued.find(key);
  if (it == s.issued.end()) {
    s.issued[key] = op;
    s.count[key] = 1;
  } else {
    if (it->second.n != n || it->second.da != da || it->second.db != db || it->second.scale_d != scale_d ||
        it->second.type != type)
      fail("wgmma: the threads of a warpgroup issued different operations");
    if (++s.count[key] == 128) {
      s.issued.erase(it);
      s.count.erase(key);
    }
  }
  me.open.push_back(op);
}

inline void wgmma_tf32(float* d, int n, uint64_t da, uint64_t db, int scale_d) {
  wgmma_issue(d, n, da, db, scale_d, kWgTF32);
}
// m64nNk16 .f32.bf16.bf16 / .f32.f16.f16 (type kWgBF16 / kWgF16), both
// operands K-major (imm-trans 0).
inline void wgmma_16(float* d, int n, uint64_t da, uint64_t db, int scale_d, int type) {
  wgmma_issue(d, n, da, db, scale_d, type);
}

inline void wgmma_commit() {
  auto& me = wg_state().th[kanext::emu::linear_tid()];
  me.groups.push_back(std::move(me.open));
  me.open.clear();
}

template <int N>
inline void wgmma_wait() {
  const int tid = kanext::emu::linear_tid();
  auto& me = wg_state().th[tid];
  while (static_cast<int>(me.groups.size()) > N) {
    for (const auto& op : me.groups.front()) wgmma_run(op, tid % 128);
    me.groups.erase(me.groups.begin());
  }
  me.fenced = false;
}

}  // namespace emu_hop
}  // namespace kanext
