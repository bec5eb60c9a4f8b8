// Hopper (sm_90a) primitives of the tensor-core v2 path (kan_linear_tc_v2.cuh,
// kan_linear_tc_v2_ws.cuh; docs/roofline.md section 6, design T): warpgroup MMA (wgmma.mma_async,
// TF32 operands from shared memory through matrix descriptors, float32
// accumulators in registers), its fence / commit / wait, mbarriers and the
// bulk asynchronous copy global -> shared (cp.async.bulk, completion counted
// in bytes on an mbarrier).
//
// Each primitive is one small device function: inline PTX on the GPU, and,
// under KANEXT_CUDA_EMULATION, the host version in emu/emu_hopper.h, which
// implements the PTX ISA's documented semantics (fragment layout per thread,
// descriptor layouts, TF32 operands, completion by mbarrier phases).
//
// Only sm_90a has wgmma: the PTX below is compiled only where
// KANEXT_HOPPER_WGMMA is 1 (device code for the arch-specific sm_90a target,
// __CUDA_ARCH_FEAT_SM90_ALL); elsewhere the device functions trap, and the
// launcher never runs the v2 kernels there (it checks the device's compute
// capability and that the build has sm_90a code; see kan_linear_tc_v2.cu).
#pragma once

#include "common.cuh"
#include "tensor_core.cuh"  // __nv_bfloat16, __half

#ifdef KANEXT_CUDA_EMULATION
#include "emu/emu_hopper.h"
#endif

#if !defined(KANEXT_CUDA_EMULATION) && defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define KANEXT_HOPPER_WGMMA 1
#else
#define KANEXT_HOPPER_WGMMA 0
#endif

namespace kanext {
namespace cuda {
namespace hop {

// Swizzle modes of a matrix descriptor (bits 62-63).
constexpr int kSwizzleNone = 0, kSwizzle128B = 1, kSwizzle64B = 2, kSwizzle32B = 3;

// The 64-bit shared-memory matrix descriptor of wgmma: start address,
// leading-dimension byte offset (between core matrices adjacent in K, for a
// K-major operand) and stride-dimension byte offset (between core matrices
// adjacent in M or N), each stored >> 4 in 14 bits (bits 0-13, 16-29, 32-45);
// base offset 0 (bits 49-51); swizzle mode in bits 62-63.
__host__ __device__ __forceinline__ uint64_t make_desc(uint32_t smem_addr, uint32_t lbo, uint32_t sbo, int swizzle) {
  return uint64_t((smem_addr & 0x3FFFFu) >> 4) | (uint64_t((lbo & 0x3FFFFu) >> 4) << 16) |
         (uint64_t((sbo & 0x3FFFFu) >> 4) << 32) | (uint64_t(swizzle & 3) << 62);
}

#ifndef KANEXT_CUDA_EMULATION

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

#if KANEXT_HOPPER_WGMMA
#define KANEXT_HOP_ASM(...) asm volatile(__VA_ARGS__)
#else
#define KANEXT_HOP_ASM(...) __trap()
#endif

// ------------------------------------------------------------------ mbarrier
__device__ __forceinline__ void mbar_init(uint64_t* bar, uint32_t count) {
  KANEXT_HOP_ASM("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_u32(bar)), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint64_t* bar) {
  KANEXT_HOP_ASM("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(smem_u32(bar)) : "memory");
}
// Arrive and raise the phase's expected transaction count by `bytes`.
__device__ __forceinline__ void mbar_arrive_expect_tx(uint64_t* bar, uint32_t bytes) {
  KANEXT_HOP_ASM("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_u32(bar)), "r"(bytes)
                 : "memory");
}
// True once the phase of parity `parity` has completed (the current phase or
// the one before it, as the ISA requires of the operand).
__device__ __forceinline__ bool mbar_try_wait(uint64_t* bar, uint32_t parity) {
  uint32_t done = 0;
  KANEXT_HOP_ASM(
      "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}"
      : "=r"(done)
      : "r"(smem_u32(bar)), "r"(parity)
      : "memory");
  return done != 0;
}
__device__ __forceinline__ void mbar_wait(uint64_t* bar, uint32_t parity) {
  while (!mbar_try_wait(bar, parity)) {
  }
}

// ---------------------------------------------------------- bulk async copy
// `bytes` (a multiple of 16) from global `src` to shared `dst` (both 16-byte
// aligned); completes `bytes` transactions on `bar`.
__device__ __forceinline__ void bulk_copy_g2s(void* dst, const void* src, uint32_t bytes, uint64_t* bar) {
  KANEXT_HOP_ASM("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(
                     smem_u32(dst)),
                 "l"(src), "r"(bytes), "r"(smem_u32(bar))
                 : "memory");
}

// bar.sync id, count: the `count` threads (a multiple of 32) of the block
// that name barrier `id` (1..15; 0 is __syncthreads') meet here, e.g. the
// consumer warpgroups of a warp-specialised kernel without the producer.
__device__ __forceinline__ void named_barrier_sync(int id, int count) {
  KANEXT_HOP_ASM("bar.sync %0, %1;" ::"r"(id), "r"(count) : "memory");
}

// Makes this thread's generic-proxy shared-memory writes visible to the
// async proxy (wgmma operand reads, bulk copies).
__device__ __forceinline__ void fence_proxy_async() { KANEXT_HOP_ASM("fence.proxy.async.shared::cta;" ::: "memory"); }

// ---------------------------------------------------------------- wgmma
__device__ __forceinline__ void wgmma_fence() { KANEXT_HOP_ASM("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { KANEXT_HOP_ASM("wgmma.commit_group.sync.aligned;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  KANEXT_HOP_ASM("wgmma.wait_group.sync.aligned %0;" ::"n"(N) : "memory");
}

// D (64 x 128, float32, 64 registers per thread) = A (64 x 8) B (8 x 128)
// + (scale_d ? D : 0), A and B TF32 K-major in shared memory.
__device__ __forceinline__ void wgmma_m64n128k8_tf32(float (&d)[64], uint64_t desc_a, uint64_t desc_b,
                                                     int scale_d) {
#define KANEXT_R8(i) "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), \
                     "+f"(d[i + 6]), "+f"(d[i + 7])
  KANEXT_HOP_ASM(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k8.f32.tf32.tf32 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
      "%64, %65, p, 1, 1;\n}"
      : KANEXT_R8(0), KANEXT_R8(8), KANEXT_R8(16), KANEXT_R8(24), KANEXT_R8(32), KANEXT_R8(40), KANEXT_R8(48),
        KANEXT_R8(56)
      : "l"(desc_a), "l"(desc_b), "r"(scale_d));
#undef KANEXT_R8
}

// The same with 16-bit operands (k16: A 64 x 16, B 16 x 128), both K-major
// (imm-trans-a = imm-trans-b = 0). TYPE: bf16 or f16.
#define KANEXT_WGMMA_K16(NAME, TYPE)                                                                              \
  __device__ __forceinline__ void NAME(float(&d)[64], uint64_t desc_a, uint64_t desc_b, int scale_d) {           \
    KANEXT_HOP_ASM(                                                                                               \
        "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"                                                              \
        "wgmma.mma_async.sync.aligned.m64n128k16.f32." TYPE "." TYPE " "                                          \
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                                 \
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "                        \
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "                        \
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "                       \
        "%64, %65, p, 1, 1, 0, 0;\n}"                                                                             \
        : KANEXT_R8(0), KANEXT_R8(8), KANEXT_R8(16), KANEXT_R8(24), KANEXT_R8(32), KANEXT_R8(40), KANEXT_R8(48), \
          KANEXT_R8(56)                                                                                           \
        : "l"(desc_a), "l"(desc_b), "r"(scale_d));                                                               \
  }
#define KANEXT_R8(i) "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), \
                     "+f"(d[i + 6]), "+f"(d[i + 7])
KANEXT_WGMMA_K16(wgmma_m64n128k16_bf16, "bf16")
KANEXT_WGMMA_K16(wgmma_m64n128k16_f16, "f16")
#undef KANEXT_R8
#undef KANEXT_WGMMA_K16

#undef KANEXT_HOP_ASM

#else  // KANEXT_CUDA_EMULATION: the host versions

using emu_hop::bulk_copy_g2s;
using emu_hop::fence_proxy_async;
using emu_hop::mbar_arrive;
using emu_hop::mbar_arrive_expect_tx;
using emu_hop::mbar_init;
using emu_hop::mbar_try_wait;
using emu_hop::mbar_wait;
using emu_hop::named_barrier_sync;
using emu_hop::smem_u32;
using emu_hop::wgmma_commit;
using emu_hop::wgmma_fence;
using emu_hop::wgmma_wait;

inline void wgmma_m64n128k8_tf32(float (&d)[64], uint64_t desc_a, uint64_t desc_b, int scale_d) {
  emu_hop::wgmma_tf32(d, 128, desc_a, desc_b, scale_d);
}
inline void wgmma_m64n128k16_bf16(float (&d)[64], uint64_t desc_a, uint64_t desc_b, int scale_d) {
  emu_hop::wgmma_16(d, 128, desc_a, desc_b, scale_d, emu_hop::kWgBF16);
}
inline void wgmma_m64n128k16_f16(float (&d)[64], uint64_t desc_a, uint64_t desc_b, int scale_d) {
  emu_hop::wgmma_16(d, 128, desc_a, desc_b, scale_d, emu_hop::kWgF16);
}

#endif

// One m64n128 k-step for operand type Op (what Mma<T>::Op is for storage T):
// k8 TF32 for float, k16 for __nv_bfloat16 and __half. A k-step spans two
// core matrices along K (16 bytes each per row) for every Op.
template <typename Op>
struct Wgmma;
template <>
struct Wgmma<float> {
  static constexpr int kK = 8;
  __device__ __forceinline__ static void run(float (&d)[64], uint64_t a, uint64_t b, int scale_d) {
    wgmma_m64n128k8_tf32(d, a, b, scale_d);
  }
};
template <>
struct Wgmma<__nv_bfloat16> {
  static constexpr int kK = 16;
  __device__ __forceinline__ static void run(float (&d)[64], uint64_t a, uint64_t b, int scale_d) {
    wgmma_m64n128k16_bf16(d, a, b, scale_d);
  }
};
template <>
struct Wgmma<__half> {
  static constexpr int kK = 16;
  __device__ __forceinline__ static void run(float (&d)[64], uint64_t a, uint64_t b, int scale_d) {
    wgmma_m64n128k16_f16(d, a, b, scale_d);
  }
};

// The accumulator element d[e] of an m64nNk* wgmma (float32) in thread `t`
// (0..127) of its warpgroup: warp t/32 holds rows 16 (t/32) .. + 15; within
// the warp, lane l holds row l/4 (+ 8 for e % 4 >= 2) and columns
// 8 (e/4) + 2 (l%4) + e%2.
__host__ __device__ __forceinline__ int wgmma_acc_row(int t, int e) { return 16 * (t >> 5) + ((t & 31) >> 2) + 8 * ((e >> 1) & 1); }
__host__ __device__ __forceinline__ int wgmma_acc_col(int t, int e) { return 8 * (e >> 2) + 2 * (t & 3) + (e & 1); }

}  // namespace hop
}  // namespace cuda
}  // namespace kanext
