// grad x of the tensor-core v2 path, second step: the forward's step 3
// (kan_linear_tc_v2_ws.cuh) applied to gradA = dy W^T (design T item 6 of
// docs/roofline.md section 6). What backend "tensor_core_v2" runs for grad x
// (kan_linear_tc_v2.cu); the first step (kan_linear_tc_v2_gx.cuh,
// tc2_grad_x_kernel) stays for the emulation tests, which compare the two.
//
// Both operands of gradA are plain matrices in their natural order: dy
// (batch rows x outputs) is the K-major A operand, and W^T's rows (the W
// rows of a chunk, outputs contiguous) the K-major B operand. So:
// 1. Pre-pass (tc2_gx_images_kernel): writes every (128-row tile, 64-output
//    step) of dy and every (gradA tile, 64-output step) of W^T (the 128 W
//    rows of two chunks, or of two chunks of one wide input, as in the
//    first step) as the exact 32 KB shared-memory image of the operand
//    (K-major core matrices without swizzle, kan_linear_tc_v2.cuh's
//    OperandRow), rounded to TF32 once, zeros for padding rows and past N
//    and `out`.
// 2. Main kernel (tc2_ws_grad_x_kernel): 384 threads. The producer is ONE
//    thread (thread 0 of warpgroup 0; the rest of that warpgroup has no work
//    and leaves): per output step it waits for the stage's "empty", arrives
//    on "full" with expect_tx (64 KB) and issues two cp.async.bulk, the dy
//    and W^T images. Warpgroups 1 and 2 are the consumers (rows 0-63 and
//    64-127 of the tile): per step, wait "full", eight m64n128k8 TF32
//    wgmmas, and with one group in flight release the previous step's stage
//    (RingT::consumer_step). After a tile's last step they store the
//    accumulators to a float tile in shared memory (its own region, so the
//    producer can fill the ring for the next tile meanwhile), meet at a
//    named barrier (bar.sync 1, 256: the producer does not take part) and
//    run the first step's epilogue (tc::grad_x_epilogue: each (row, input)
//    item contracted with its basis derivatives) on 256 threads.
// 3. 16-bit storage (T = __nv_bfloat16 or __half): 16 KB images of the
//    values as they are (no rounding), 4 stages of 32 KB, four m64n128k16
//    wgmmas per step, the epilogue in T (tc::grad_x_epilogue<T>).
// Numerics: the first step's and the WMMA grad x's bits (the same TF32
// operands, the same products in the same order, the same epilogue); for
// 16-bit types the WMMA grad x's bits (in host emulation).
// Not done: the 128-byte swizzle of the images; m64n256 tiles; the
// epilogue contracting the accumulator registers directly (design T item 6).
#pragma once

#include "kan_linear_tc_v2_gx.cuh"
#include "kan_linear_tc_v2_ws.cuh"

namespace kanext {
namespace cuda {
namespace tc2 {

constexpr int kConsumerBarrier = 1;  // bar.sync id of the consumer warpgroups

// Per gradA tile: the first chunk c0 and the number of chunks nch (1 or 2)
// of tile tl of group grp, as the first step walks them.
__host__ __device__ inline void grad_x_tile(const ChunkMap& cm, int64_t grp, int tl, int64_t& c0, int& nch) {
  c0 = cm.cpi == 1 ? 2 * grp : grp * cm.cpi + 2 * tl;
  nch = cm.cpi == 1 ? static_cast<int>(cm.chunks - c0 < 2 ? cm.chunks - c0 : 2)
                    : (cm.cpi - 2 * tl < 2 ? cm.cpi - 2 * tl : 2);
}
__host__ __device__ inline int grad_x_tiles_per_group(const ChunkMap& cm) { return cm.cpi == 1 ? 1 : (cm.cpi + 1) / 2; }

// The images' places in the workspace (byte offsets; op_bytes: the operand's
// element size, 4 for TF32 (32 KB images), 2 for bf16 / half (16 KB)).
struct GxImages {
  int64_t row_tiles, ksteps, w_tiles;  // w_tiles: groups x tiles per group
  int64_t tile_bytes;
  __host__ __device__ GxImages(const ChunkMap& cm, int64_t N, int64_t in, int64_t out, int op_bytes)
      : row_tiles(ceil_div(N, int64_t(kBM))),
        ksteps(ceil_div(out, int64_t(kBK))),
        w_tiles(grad_x_groups(cm, in) * grad_x_tiles_per_group(cm)),
        tile_bytes(op_bytes == 4 ? int64_t(kTileBytes) : int64_t(kTileBytes / 2)) {}
  __host__ __device__ int64_t dy_offset(int64_t rt, int64_t o) const { return (rt * ksteps + o) * tile_bytes; }
  __host__ __device__ int64_t w_offset(int64_t wt, int64_t o) const {
    return (row_tiles * ksteps + wt * ksteps + o) * tile_bytes;
  }
  size_t bytes() const { return size_t(row_tiles + w_tiles) * size_t(ksteps) * size_t(tile_bytes); }
};

inline size_t ws_grad_x_workspace_bytes(int64_t N, int64_t in, int64_t M, int k, int base, int64_t out,
                                        int op_bytes = 4) {
  if (N == 0 || in == 0 || out == 0) return 0;
  return GxImages(ChunkMap(in, M, k, base != kBaseZero), N, in, out, op_bytes).bytes();
}

// The pre-pass: grid-stride over the images (dy's, then W^T's), 256 threads
// per block. The 16-byte group v of a 128 x 64 image (kPer = 4 TF32 or 8
// 16-bit elements, kBK / kPer = G groups per row) holds operand elements
// (r, q..q + kPer - 1) with r % 8 = v % 8, q / kPer = (v / 8) % G,
// r / 8 = v / (8 G): each thread writes one group (kPer consecutive outputs
// of one row), read with one 16-byte load where the row allows (vec).
template <typename T>
__global__ void __launch_bounds__(tc::kThreads)
tc2_gx_images_kernel(const T* __restrict__ gy, const T* __restrict__ Wb, const T* __restrict__ Wc, int64_t N,
                     int64_t in, int64_t M, int k, int base, int64_t out, bool vec, unsigned char* __restrict__ img) {
  using Op = typename Mma<T>::Op;
  constexpr int per = OpLayout<Op>::kPer, groups = kBK / per;
  __shared__ int64_t s_rows[kBM];  // W^T image: W row offsets (tc::w_row_offset) of its 128 rows
  const ChunkMap cm(in, M, k, base != kBaseZero);
  const GxImages im(cm, N, in, out, int(sizeof(Op)));
  const int tiles = grad_x_tiles_per_group(cm);
  const int64_t total = (im.row_tiles + im.w_tiles) * im.ksteps;
  for (int64_t b = blockIdx.x; b < total; b += gridDim.x) {
    const int64_t tile = b / im.ksteps, o = b % im.ksteps, o0 = o * kBK;
    const bool is_dy = tile < im.row_tiles;
    uint4* dst =
        reinterpret_cast<uint4*>(img + (is_dy ? im.dy_offset(tile, o) : im.w_offset(tile - im.row_tiles, o)));
    if (!is_dy) {
      const int64_t wt = tile - im.row_tiles;
      int64_t c0;
      int nch;
      grad_x_tile(cm, wt / tiles, static_cast<int>(wt % tiles), c0, nch);
      __syncthreads();  // the previous image's s_rows is no longer read
      for (int q = threadIdx.x; q < kBM; q += tc::kThreads)
        s_rows[q] = q / kBK < nch ? tc::w_row_offset(cm, c0 + q / kBK, q % kBK, in, out) : -1;
      __syncthreads();
    }
    for (int v = static_cast<int>(threadIdx.x); v < int(im.tile_bytes / 16); v += tc::kThreads) {
      const int r = 8 * (v / (8 * groups)) + (v & 7);
      const int64_t oq = o0 + per * ((v >> 3) % groups);
      const T* row;
      if (is_dy) {
        const int64_t n = tile * kBM + r;
        row = n < N ? gy + n * out : nullptr;
      } else {
        const int64_t w = s_rows[r];
        row = w == -1 ? nullptr : (w >= 0 ? Wc + w : Wb + (-w - 2));
      }
      dst[v] = row != nullptr ? load_op16<T>(row, oq, out, vec) : make_uint4(0u, 0u, 0u, 0u);
    }
  }
}

// A stage: the dy tile, then the W^T tile (stage_bytes<Op>(), as the
// forward's), ring_stages<Op>() of them.
template <typename Op = float>
constexpr size_t ws_grad_x_smem_bytes() {
  return ring_stages<Op>() * (size_t(stage_bytes<Op>()) + 2 * sizeof(uint64_t)) + size_t(kBM) * kGxLdc * sizeof(float);
}

// T: the storage type of x, dy, W and gx (float: TF32 operands; __nv_bfloat16
// or __half: 16-bit operands, k16 wgmmas, 16 KB images).
template <typename T, int K, int FAULT = kFaultNone>
__global__ void __launch_bounds__(kWsThreads, 1)
tc2_ws_grad_x_kernel(const T* __restrict__ x, const float* __restrict__ grid, int64_t N, int64_t in, int64_t M,
                     int base, const unsigned char* __restrict__ img, int64_t out, T* __restrict__ gx) {
#if KANEXT_HOPPER_WGMMA || defined(KANEXT_CUDA_EMULATION)
  using Op = typename Mma<T>::Op;
  constexpr uint32_t tile_bytes = OpLayout<Op>::kTileBytes, stage = stage_bytes<Op>();
  using R = RingOf<Op>;
  KANEXT_DYNAMIC_SMEM(smem);
  float* Cs = reinterpret_cast<float*>(smem + R::kS * stage);  // the gradA tile (own region)
  uint64_t* full = reinterpret_cast<uint64_t*>(smem + R::kS * stage + size_t(kBM) * kGxLdc * sizeof(float));
  const R ring{full, full + R::kS};
  const int wg = threadIdx.x / 128;
  const ChunkMap cm(in, M, K, base != kBaseZero);
  const GxImages im(cm, N, in, out, int(sizeof(Op)));
  const int64_t groups = grad_x_groups(cm, in);
  const int tiles = grad_x_tiles_per_group(cm);
  ring.init(1);   // "full": the producer thread's arrival and the stage's bytes (64 KB TF32, 32 KB 16-bit)
  if (wg == 0 && threadIdx.x != 0) return;  // the producer is one thread
  uint32_t u = 0;  // output steps of this block through the ring so far, the same count in both roles

  for (int64_t grp = blockIdx.y; grp < groups; grp += gridDim.y) {
    for (int64_t rt = blockIdx.x; rt < im.row_tiles; rt += gridDim.x) {
      const int64_t n0 = rt * kBM;
      float part = 0.f;  // nb1 > kBK: running sum of this thread's item over its input's chunks
      for (int tl = 0; tl < tiles; ++tl) {
        const int64_t wt = grp * tiles + tl;
        if (wg == 0) {  // producer
          for (int64_t o = 0; o < im.ksteps; ++o, ++u) {
            const int s = R::stage(u);
            ring.producer_wait(u);
            unsigned char* st = smem + s * stage;
            hop::mbar_arrive_expect_tx(&ring.full[s], stage);
            hop::bulk_copy_g2s(st, img + im.dy_offset(rt, o), tile_bytes, &ring.full[s]);
            hop::bulk_copy_g2s(st + tile_bytes, img + im.w_offset(wt, o), tile_bytes, &ring.full[s]);
          }
          continue;
        }
        const int g = wg - 1, t = threadIdx.x % 128, tid = threadIdx.x - 128;
        float acc[64];
#pragma unroll
        for (int e = 0; e < 64; ++e) acc[e] = 0.f;
        for (int64_t o = 0; o < im.ksteps; ++o, ++u) {
          const int s = R::stage(u);
          const uint32_t a_addr = hop::smem_u32(smem + s * stage) + uint32_t(g) * (64 / 8) * OpLayout<Op>::kSbo,
                         b_addr = hop::smem_u32(smem + s * stage + tile_bytes);
          ring.template consumer_step<Op, FAULT>(acc, u, o == 0, a_addr, b_addr);
        }
        ring.template consumer_finish<FAULT>(u, im.ksteps > 0);
#pragma unroll
        for (int e = 0; e < 64; ++e)
          Cs[(64 * g + hop::wgmma_acc_row(t, e)) * kGxLdc + hop::wgmma_acc_col(t, e)] = acc[e];
        hop::named_barrier_sync(kConsumerBarrier, kConsumerThreads);
        int64_t c0;
        int nch;
        grad_x_tile(cm, grp, tl, c0, nch);
        for (int h = 0; h < nch; ++h)  // chunk c0 + h: columns h kBK.. of the tile
          tc::grad_x_epilogue<T, K>(Cs + h * kBK, kGxLdc, x, grid, N, in, M, base, cm, c0 + h, n0,
                                    2 * tl + h == cm.cpi - 1, part, gx, tid, kConsumerThreads);
        hop::named_barrier_sync(kConsumerBarrier, kConsumerThreads);  // Cs is rewritten by the next tile
      }
    }
  }
  if (wg == 0) ring.producer_drain(u);
#else
  __trap();  // launched only on sm_90 from an sm_90a build (launch_kan_linear_tc_v2_grad_x)
#endif
}

// grad x with the workspace of ws_grad_x_workspace_bytes(..., sizeof(Op))
// (16-byte aligned): the pre-pass, then the main kernel. T: float,
// __nv_bfloat16 or __half.
template <typename T, int FAULT = kFaultNone>
inline cudaError_t launch_grad_x_ws(const T* gy, const T* x, const float* grid, int64_t N, int64_t in, int64_t M,
                                    int k, int base, const T* Wb, const T* Wc, int64_t out, T* gx, void* workspace,
                                    cudaStream_t stream) {
  using Op = typename Mma<T>::Op;
  if (N == 0 || in == 0 || out == 0) return cudaSuccess;
  unsigned char* img = static_cast<unsigned char*>(workspace);
  const ChunkMap cm(in, M, k, base != kBaseZero);
  const GxImages im(cm, N, in, out, int(sizeof(Op)));
  const auto aligned = [](const T* q) { return reinterpret_cast<uintptr_t>(q) % 16 == 0; };
  // one 16-byte load per image group: rows of whole groups, 16-byte aligned
  const bool vec = out % OpLayout<Op>::kPer == 0 && aligned(gy) && aligned(Wb) && aligned(Wc);
  KANEXT_LAUNCH(grid_x((im.row_tiles + im.w_tiles) * im.ksteps), tc::kThreads, 0, stream, tc2_gx_images_kernel<T>)(
      gy, Wb, Wc, N, in, M, k, base, out, vec, img);
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  return dispatch_order(k, [&](auto kc) -> cudaError_t {
    constexpr int K = decltype(kc)::value;
    constexpr size_t smem = ws_grad_x_smem_bytes<Op>();
    const cudaError_t ea = tc::allow_smem(tc2_ws_grad_x_kernel<T, K, FAULT>, smem);
    if (ea != cudaSuccess) return ea;
    const dim3 grid_dim(grid_x(im.row_tiles), grid_yz(grad_x_groups(cm, in)));
    KANEXT_LAUNCH(grid_dim, kWsThreads, smem, stream, tc2_ws_grad_x_kernel<T, K, FAULT>)(x, grid, N, in, M, base,
                                                                                         img, out, gx);
    return cudaGetLastError();
  });
}

}  // namespace tc2
}  // namespace cuda
}  // namespace kanext
