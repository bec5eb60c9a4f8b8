// Tensor-core v2 forward, step 3 of design T (docs/roofline.md section 6):
// W in the operand layout and warp specialisation. What backend
// "tensor_core_v2" runs (kan_linear_tc_v2.cu); step 2 (kan_linear_tc_v2.cuh,
// tc2_forward_kernel) stays for the emulation tests, which compare the two.
//
// 1. Fold (tc2_fold_w_kernel, a small kernel run before each forward): writes
//    every (K chunk c, 128-column tile ct) of W as the exact 32 KB shared-
//    memory image the wgmma B descriptor reads (K-major core matrices without
//    swizzle, LBO 128 B, SBO 2,048 B: kan_linear_tc_v2.cuh's OperandRow),
//    rounded to TF32 once, zeros for padding rows and columns past `out`;
//    image (ct, c) at float offset (ct * chunks + c) * kTileFloats. Same
//    values as step 2's in-kernel W staging (the same load_w_tile_with).
// 2. Main kernel (tc2_ws_forward_kernel): 384 threads = three warpgroups;
//    warpgroup 0 is the producer, 1 and 2 the consumers (rows 0-63 and
//    64-127 of the 128 x 128 tile of y). A ring of kStages stages, each an A
//    tile (128 x 64) and a W tile (64 x 128 as 128 x 64 K-major), guarded
//    by two mbarriers per stage:
//      full[s]  (129 arrivals + 32 KB of transactions): producer thread 0
//               arrives with expect_tx and issues ONE cp.async.bulk of the
//               W image; then every producer thread builds its share of the
//               basis A tile (the builder of kan_linear_tc.cuh, 128 threads),
//               fences the generic-proxy stores for the async proxy and
//               arrives;
//      empty[s] (256 arrivals): every consumer thread arrives once its
//               wgmmas on the stage have retired (wait_group 0), i.e. once
//               the tensor core has read the stage.
//    Chunk number u of the block (counted over its tiles) uses stage
//    u % kStages in round u / kStages: the producer waits for the end of
//    empty's phase of the previous round (parity (round & 1) ^ 1, true at
//    once for round 0 on a fresh barrier), the consumers for full's phase of
//    this round (parity round & 1). The producer leaves last: it waits until
//    the consumers have released every stage.
// Numerics: per output the same TF32 products as step 2 and the WMMA forward,
// added in the same order (chunks in order, eight k-steps of 8 per chunk);
// the emulation tests check that bit for bit.
//
// setmaxnreg is not used: the register-heavy role here is the producer (the
// basis builder, about 150 registers in step 2 at k = 3), not the consumers
// (64 accumulators plus descriptors), so the 168 registers per thread that
// __launch_bounds__(384, 1) leaves serve both roles without moving any
// (docs/roofline.md, design T step 3, has the figures).
// Not done: the 128-byte swizzle (the producer's 4-byte stores to the
// unswizzled layout have bank conflicts), the backward passes, the
// uniform-grid builder and cluster sharing of design T item 3.
#pragma once

#include "kan_linear_tc_v2.cuh"

namespace kanext {
namespace cuda {
namespace tc2 {

constexpr int kStages = 2;
constexpr int kWsThreads = 384;                   // producer warpgroup + two consumer warpgroups
constexpr int kConsumerThreads = 256;
constexpr uint32_t kStageBytes = 2 * kTileBytes;  // A tile, then W tile
constexpr int64_t kTileFloats = kTileBytes / 4;
static_assert((kStages & (kStages - 1)) == 0, "the chunk counter may wrap: kStages must divide 2^32");

// Float offset of W image (ct, c) in the folded buffer.
__host__ __device__ __forceinline__ int64_t w_image_offset(int64_t ct, int64_t c, int64_t chunks) {
  return (ct * chunks + c) * kTileFloats;
}

inline size_t ws_forward_workspace_bytes(int64_t in, int64_t M, int k, int base, int64_t out) {
  const ChunkMap cm(in, M, k, base != kBaseZero);
  return size_t(cm.chunks) * size_t(ceil_div(out, kBN)) * kTileBytes;
}

constexpr size_t ws_forward_smem_bytes() { return kStages * size_t(kStageBytes) + 2 * kStages * sizeof(uint64_t); }

// The fold: one 256-thread block per (chunk, column tile), grid-stride.
__global__ void __launch_bounds__(tc::kThreads)
tc2_fold_w_kernel(const float* __restrict__ Wb, const float* __restrict__ Wc, int64_t in, int64_t M, int k, int base,
                  int64_t out, float* __restrict__ w_op) {
  __shared__ int64_t s_rows[kBK];
  const ChunkMap cm(in, M, k, base != kBaseZero);
  const int64_t col_tiles = ceil_div(out, kBN);
  for (int64_t c = blockIdx.x; c < cm.chunks; c += gridDim.x) {
    __syncthreads();  // s_rows of the previous chunk is no longer read
    tc::chunk_rows(s_rows, cm, c, in, out);
    __syncthreads();
    for (int64_t ct = blockIdx.y; ct < col_tiles; ct += gridDim.y) {
      unsigned char* img = reinterpret_cast<unsigned char*>(w_op + w_image_offset(ct, c, cm.chunks));
      tc::load_w_tile_with<float, kBN>([=](int q, int jj, float v) { operand_row(img, jj)[q] = v; }, Wb, Wc, s_rows,
                                       out, ct * kBN);
    }
  }
}

// Deliberate protocol faults, for the emulation tests only (they show that
// the tests and the emulator catch them): the consumers skip the wait on
// full (a race), or never arrive on empty (a deadlock).
enum : int { kFaultNone = 0, kFaultSkipFullWait = 1, kFaultNoEmptyArrive = 2 };

template <int K, int FAULT = kFaultNone>
__global__ void __launch_bounds__(kWsThreads, 1)
tc2_ws_forward_kernel(const float* __restrict__ x, const float* __restrict__ grid, int64_t N, int64_t in, int64_t M,
                      int base, const float* __restrict__ w_op, int64_t out, float* __restrict__ y) {
#if KANEXT_HOPPER_WGMMA || defined(KANEXT_CUDA_EMULATION)
  KANEXT_DYNAMIC_SMEM(smem);
  uint64_t* full = reinterpret_cast<uint64_t*>(smem + kStages * kStageBytes);
  uint64_t* empty = full + kStages;
  const int wg = threadIdx.x / 128, t = threadIdx.x % 128;
  const ChunkMap cm(in, M, K, base != kBaseZero);
  const int64_t row_tiles = ceil_div(N, kBM), col_tiles = ceil_div(out, kBN);
  if (threadIdx.x == 0)
    for (int s = 0; s < kStages; ++s) {
      hop::mbar_init(&full[s], 128 + 1);
      hop::mbar_init(&empty[s], kConsumerThreads);
    }
  __syncthreads();  // the only block-wide barrier: the roles part here
  uint32_t u = 0;   // chunks of this block through the ring so far, the same count in every role

  for (int64_t ct = blockIdx.y; ct < col_tiles; ct += gridDim.y) {
    const int64_t j0 = ct * kBN;
    for (int64_t rt = blockIdx.x; rt < row_tiles; rt += gridDim.x) {
      const int64_t n0 = rt * kBM;
      if (wg == 0) {  // producer
        for (int64_t c = 0; c < cm.chunks; ++c, ++u) {
          const int s = int(u % kStages);
          const uint32_t round = u / kStages;
          hop::mbar_wait(&empty[s], (round & 1) ^ 1);
          unsigned char* As = smem + s * kStageBytes;
          if (t == 0) {
            hop::mbar_arrive_expect_tx(&full[s], kTileBytes);
            hop::bulk_copy_g2s(As + kTileBytes, w_op + w_image_offset(ct, c, cm.chunks), kTileBytes, &full[s]);
          }
          tc::build_a_tile_with<float, K, true>([=](int r) { return operand_row(As, r); }, kBM, x, grid, N, in, M,
                                                base, cm, c, n0, t, 128);
          hop::fence_proxy_async();  // the A stores, before the tensor core reads them
          hop::mbar_arrive(&full[s]);
        }
      } else {  // consumers
        const int g = wg - 1;
        float acc[64];
#pragma unroll
        for (int e = 0; e < 64; ++e) acc[e] = 0.f;
        for (int64_t c = 0; c < cm.chunks; ++c, ++u) {
          const int s = int(u % kStages);
          const uint32_t round = u / kStages;
          if (FAULT != kFaultSkipFullWait) hop::mbar_wait(&full[s], round & 1);
          const uint32_t a_addr = hop::smem_u32(smem + s * kStageBytes) + uint32_t(g) * (64 / 8) * kSbo,
                         b_addr = hop::smem_u32(smem + s * kStageBytes + kTileBytes);
          chunk_mma(acc, a_addr, b_addr);
          if (FAULT != kFaultNoEmptyArrive) hop::mbar_arrive(&empty[s]);  // this thread's reads of the stage are done
        }
        store_acc(acc, t, n0 + 64 * g, j0, N, out, y);
      }
    }
  }
  if (wg == 0)  // producer tail: leave only once the consumers have released every stage, so that no bulk
                // copy or arrival of this warpgroup is still pending when it exits
    for (int i = 0; i < kStages; ++i, ++u) hop::mbar_wait(&empty[u % kStages], ((u / kStages) & 1) ^ 1);
#else
  __trap();  // launched only on sm_90 from an sm_90a build (launch_kan_linear_tc_v2_forward)
#endif
}

// The fold into w_op (ws_forward_workspace_bytes, 16-byte aligned), then the
// main kernel.
template <int FAULT = kFaultNone>
inline cudaError_t launch_forward_ws(const float* x, const float* grid, int64_t N, int64_t in, int64_t M, int k,
                                     int base, const float* Wb, const float* Wc, int64_t out, float* w_op, float* y,
                                     cudaStream_t stream) {
  if (N == 0 || out == 0) return cudaSuccess;
  const ChunkMap cm(in, M, k, base != kBaseZero);
  const int64_t col_tiles = ceil_div(out, kBN);
  if (cm.chunks > 0) {
    KANEXT_LAUNCH(dim3(grid_x(cm.chunks), grid_yz(col_tiles)), tc::kThreads, 0, stream, tc2_fold_w_kernel)(
        Wb, Wc, in, M, k, base, out, w_op);
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;
  }
  return dispatch_order(k, [&](auto kc) -> cudaError_t {
    constexpr int K = decltype(kc)::value;
    constexpr size_t smem = ws_forward_smem_bytes();
    const cudaError_t e = tc::allow_smem(tc2_ws_forward_kernel<K, FAULT>, smem);
    if (e != cudaSuccess) return e;
    const dim3 grid_dim(grid_x(ceil_div(N, kBM)), grid_yz(col_tiles));
    KANEXT_LAUNCH(grid_dim, kWsThreads, smem, stream, tc2_ws_forward_kernel<K, FAULT>)(
        x, grid, N, in, M, base, w_op, out, y);
    return cudaGetLastError();
  });
}

}  // namespace tc2
}  // namespace cuda
}  // namespace kanext
