// grad W of the tensor-core v2 path, second step: the forward's step 3
// (kan_linear_tc_v2_ws.cuh) applied to grad W = A^T dy (design T items 5
// and 3 of docs/roofline.md section 6). What backend "tensor_core_v2" runs
// for grad W (kan_linear_tc_v2.cu); the first step (kan_linear_tc_v2_gw.cuh,
// tc2_grad_w_kernel) stays for the emulation tests, which compare the two.
//
// 1. Pre-pass (tc2_dy_image_kernel): writes every (256-output column tile
//    ct, 64-row batch step s) of dy as the exact 64 KB shared-memory image
//    the wgmma B descriptor reads (dy^T: 256 operand rows = outputs, K = 64
//    batch rows, K-major core matrices without swizzle, LBO 128 B, SBO
//    2,048 B), rounded to TF32 once, zeros past N and past out; image
//    (ct, s) at float offset (ct * steps + s) * kDyImageFloats. Its blocks
//    of column tile 0 also write one GridInfo per input (the forward fold's
//    uniform-grid decision, tc2::grid_info).
// 2. Main kernel (tc2_ws_grad_w_kernel): 384 threads = three warpgroups.
//    A block computes one chunk's 64 W rows x 256 outputs over its batch
//    slice (the same slices, tc::plan_slices, as the first step and the
//    WMMA grad W), 64 batch rows per step. Warpgroup 0 is the producer:
//    per step it waits for the stage's "empty" mbarrier, thread 0 arrives
//    with expect_tx (64 KB) and issues ONE cp.async.bulk of the dy image,
//    and the 128 threads build the A^T tile (64 W rows x 64 batch rows,
//    build_at_cols: the tile zeroed by 16-byte stores, a named barrier of
//    the producer warpgroup, then thread t writes the nonzero entries of
//    batch row t % 64 for every other input slot of the chunk, from t / 64),
//    fence the generic-proxy stores and
//    arrive on "full" (129 arrivals + 64 KB of transactions). Warpgroups 1
//    and 2 are the consumers (outputs 0-127 and 128-255 of the tile): wait
//    "full", eight m64n128k8 TF32 wgmmas, commit, wait_group 1 (one group
//    in flight), arrive on the previous step's "empty" (256 arrivals;
//    RingT::consumer_step). Ring of 2 stages of 80 KB (A^T 16 KB + dy^T
//    64 KB); the step counter runs on across the block's (column tile,
//    chunk) pairs, so stage and parity carry over, and the producer leaves
//    last. The accumulators go to grad W, or to the slices' float32
//    partials (tc::put_grad_w, summed by the WMMA path's combine kernel).
// 3. 16-bit storage (T = __nv_bfloat16 or __half): an 8 KB A^T tile and 32
//    KB dy^T images of 16-bit operands (40 KB stages), four m64n128k16
//    wgmmas per step, a ring of 4 stages; grad W written in T, the slices'
//    partials float32.
// Numerics: on grids that are not uniform, the same TF32 products as the
// first step and the WMMA grad W, added in the same order (steps in order,
// eight k-steps of 8): the same bits (the emulation tests check it). On
// uniform grids the spline columns come from uniform_window, within the
// bound of tc2::grid_info of the general builder's values (grad Wb's rows,
// b(x), are the same bits).
// Not done: the 128-byte swizzle (the producer's A^T entries in the
// unswizzled layout: entry (q, r) is in bank 4 (q % 8) + r % 4, so a warp's
// 32 rows conflict up to 8-way when their windows share columns); m64n256
// consumer tiles.
#pragma once

#include "kan_linear_tc_v2_gw.cuh"
#include "kan_linear_tc_v2_ws.cuh"

namespace kanext {
namespace cuda {
namespace tc2 {

// A stage: the A^T tile, then the dy^T image (TF32: 16 + 64 KB; 16-bit: 8 + 32 KB).
template <typename Op>
constexpr uint32_t gw_stage_bytes() {
  return GwLayout<Op>::kABytes + GwLayout<Op>::kBBytes;
}
static_assert(GwLayout<__half>::kABytes % 1024 == 0 && GwLayout<__half>::kBBytes % 16 == 0,
              "stage parts 16-byte aligned (bulk copy, STS.128)");

__host__ __device__ inline int64_t dy_image_steps(int64_t N) { return ceil_div(N, int64_t(kGwRows)); }

// Bytes of the first step's workspace (the slices' partials), rounded up to
// 16 (the dy images follow; in practice a multiple of 256 already).
inline size_t gw_partials_bytes(int64_t N, int64_t in, int64_t M, int k, int base, int64_t out) {
  return (tc::workspace_bytes(N, in, M, k, base, out, true) + 15) / 16 * 16;
}

// Bytes of the dy images (op_bytes: the operand's element size, 4 or 2).
inline size_t gw_images_bytes(int64_t N, int64_t out, int op_bytes) {
  return size_t(dy_image_steps(N)) * size_t(ceil_div(out, int64_t(kGwCols))) * size_t(kGwCols * kGwRows * op_bytes);
}

// grad W's workspace on this path: the partials (float32 whatever the
// storage type), the dy images, one GridInfo per input. 16-byte aligned
// parts for a 16-byte aligned base.
inline size_t ws_grad_w_workspace_bytes(int64_t N, int64_t in, int64_t M, int k, int base, int64_t out,
                                        int op_bytes = 4) {
  if (N == 0 || in == 0 || out == 0) return 0;
  return gw_partials_bytes(N, in, M, k, base, out) + gw_images_bytes(N, out, op_bytes) + size_t(in) * sizeof(GridInfo);
}

// The pre-pass: one 256-thread block per (batch step, column tile),
// grid-stride. Thread-linear 16-byte writes of the image: group v of image
// (ct, s) holds dy^T elements (jj, r..r + kPer - 1) (kPer = 4 TF32 or 8
// 16-bit batch rows, G = 64 / kPer groups per operand row) with
// jj % 8 = v % 8, r / kPer = (v / 8) % G, jj / 8 = v / (8 G) (operand_row's
// layout), so a warp's loads read 8 consecutive outputs of 4 x kPer batch
// rows and its stores are contiguous.
template <typename T>
__global__ void __launch_bounds__(tc::kThreads)
tc2_dy_image_kernel(const T* __restrict__ gy, const float* __restrict__ grid, int64_t N, int64_t in, int64_t M,
                    int64_t out, unsigned char* __restrict__ img, GridInfo* __restrict__ info) {
  using Op = typename Mma<T>::Op;
  constexpr int per = OpLayout<Op>::kPer, groups = kGwRows / per;
  constexpr uint32_t image_bytes = GwLayout<Op>::kBBytes;
  const int64_t steps = dy_image_steps(N), col_tiles = ceil_div(out, int64_t(kGwCols));
  if (blockIdx.y == 0)
    for (int64_t i = blockIdx.x * int64_t(tc::kThreads) + threadIdx.x; i < in; i += int64_t(gridDim.x) * tc::kThreads)
      info[i] = grid_info(grid + i * M, M);
  for (int64_t ct = blockIdx.y; ct < col_tiles; ct += gridDim.y)
    for (int64_t s = blockIdx.x; s < steps; s += gridDim.x) {
      uint4* dst = reinterpret_cast<uint4*>(img + (ct * steps + s) * int64_t(image_bytes));
      for (int v = static_cast<int>(threadIdx.x); v < int(image_bytes / 16); v += tc::kThreads) {
        const int64_t j = ct * kGwCols + 8 * (v / (8 * groups)) + (v & 7);
        const int64_t n = s * kGwRows + per * ((v >> 3) % groups);
        Op e[per];
#pragma unroll
        for (int q = 0; q < per; ++q) e[q] = Mma<T>::op(n + q < N && j < out ? to_float(gy[(n + q) * out + j]) : 0.f);
        uint4 w;
        memcpy(&w, e, 16);
        dst[v] = w;
      }
    }
}

// The producer's A^T tile of chunk c for batch rows n0.. (64 W rows x 64
// batch rows, K-major in the operand layout at `tile`). The producer
// warpgroup first zeroes the whole tile with 16-byte stores (8 per thread)
// and meets at named barrier kProducerBarrier; then producer thread t writes
// only the nonzero entries of column r = t % 64 (batch row n0 + r) for the
// input slots t / 64, t / 64 + 2, ... of the chunk: the window's bases and
// b(x). A NaN x, rows at or past nend and the chunk's padding rows stay zero
// (a NaN x adds nothing to grad W, as in the first step). Values as
// build_a_rows' (uniform_window or general_window, put_window, the same
// rounding to Mma<T>::Op), so the general builder's bits are
// tc::build_a_tile_with's.
constexpr int kProducerBarrier = 2;  // bar.sync id of the producer warpgroup (1: the consumers')
template <typename T, int K>
__device__ __forceinline__ void build_at_cols(unsigned char* tile, const T* __restrict__ x,
                                              const float* __restrict__ grid, int64_t nend, int64_t in, int64_t M,
                                              int base, const GridInfo* __restrict__ info, const ChunkMap& cm,
                                              int64_t c, int64_t n0, int t) {
  static_assert(kGwRows == 64 && kBK == 64, "two producer threads per batch row of the step");
  using Op = typename Mma<T>::Op;
  const int r = t & 63, h = t >> 6;
  const TransposedRowT<Op> col{tile, r};  // col[q]: A^T element (q, r)
  float4* z = reinterpret_cast<float4*>(tile);
#pragma unroll
  for (int e = 0; e < int(GwLayout<Op>::kABytes / 16 / 128); ++e) z[e * 128 + t] = make_float4(0.f, 0.f, 0.f, 0.f);
  hop::named_barrier_sync(kProducerBarrier, 128);  // the whole tile zero before any entry is written
  int64_t i0;
  int g0;
  cm.locate(c, i0, g0);
  const int slots = int(i0 + cm.slots <= in ? cm.slots : in - i0);
  const int per = cm.per, nb = cm.nb, bcol = nb - g0;
  const bool put_base = base != kBaseZero && bcol >= 0 && bcol < per;
  const int64_t n = n0 + r;
  if (n >= nend) return;
  for (int ii = h; ii < slots; ii += 2) {
    const float xv = to_float(x[n * in + i0 + ii]);
    if (xv != xv) continue;
    const GridInfo gi = info[i0 + ii];
    const float* ti = grid + (i0 + ii) * M;
    float v[K + 1];
    int first;
    const bool inside =
        gi.uniform ? uniform_window<K>(gi, ti, M, xv, v, first) : general_window<K>(ti, M, xv, v, first);
    if (inside) put_window<K>(col, ii * per, first, v, g0, per, nb);
    if (put_base) col[ii * per + bcol] = Mma<T>::op(base_value<float>(base, xv));
  }
}

template <typename Op = float>
constexpr size_t ws_grad_w_smem_bytes() {
  return ring_stages<Op>() * (size_t(gw_stage_bytes<Op>()) + 2 * sizeof(uint64_t));
}

// T: the storage type of x, dy and grad W (float: TF32 operands;
// __nv_bfloat16 or __half: 16-bit operands, k16 wgmmas); the slices'
// partials are float32 either way.
template <typename T, int K, int FAULT = kFaultNone>
__global__ void __launch_bounds__(kWsThreads, 1)
tc2_ws_grad_w_kernel(const T* __restrict__ x, const float* __restrict__ grid, int64_t N, int64_t in, int64_t M,
                     int base, const unsigned char* __restrict__ dy_img, const GridInfo* __restrict__ info,
                     int64_t out, int64_t rows_per_slice, int slices, T* gWb, T* gWc, float* ws) {
#if KANEXT_HOPPER_WGMMA || defined(KANEXT_CUDA_EMULATION)
  using Op = typename Mma<T>::Op;
  constexpr uint32_t a_bytes = GwLayout<Op>::kABytes, b_bytes = GwLayout<Op>::kBBytes, stage = a_bytes + b_bytes;
  using R = RingOf<Op>;
  KANEXT_DYNAMIC_SMEM(smem);
  uint64_t* full = reinterpret_cast<uint64_t*>(smem + R::kS * stage);
  const R ring{full, full + R::kS};
  const int wg = threadIdx.x / 128, t = threadIdx.x % 128;
  const ChunkMap cm(in, M, K, base != kBaseZero);
  const int64_t col_tiles = ceil_div(out, int64_t(kGwCols)), steps = dy_image_steps(N);
  const int slice = static_cast<int>(blockIdx.z);
  const int64_t nbeg = slice * rows_per_slice;  // a multiple of kGwRows (plan_slices)
  const int64_t nend = nbeg + rows_per_slice < N ? nbeg + rows_per_slice : N;
  ring.init();
  uint32_t u = 0;  // steps of this block through the ring so far, the same count in every role

  for (int64_t ct = blockIdx.y; ct < col_tiles; ct += gridDim.y) {
    const int64_t j0 = ct * kGwCols;
    for (int64_t c = blockIdx.x; c < cm.chunks; c += gridDim.x) {
      if (wg == 0) {  // producer
        for (int64_t n0 = nbeg; n0 < nend; n0 += kGwRows, ++u) {
          const int s = R::stage(u);
          ring.producer_wait(u);
          unsigned char* As = smem + s * stage;
          if (t == 0) {
            hop::mbar_arrive_expect_tx(&ring.full[s], b_bytes);
            hop::bulk_copy_g2s(As + a_bytes, dy_img + (ct * steps + n0 / kGwRows) * int64_t(b_bytes), b_bytes,
                               &ring.full[s]);
          }
          build_at_cols<T, K>(As, x, grid, nend, in, M, base, info, cm, c, n0, t);
          hop::fence_proxy_async();  // the A^T stores, before the tensor core reads them
          hop::mbar_arrive(&ring.full[s]);
        }
      } else {  // consumers: outputs 128 g.. of the tile
        const int g = wg - 1;
        float acc[64];
#pragma unroll
        for (int e = 0; e < 64; ++e) acc[e] = 0.f;
        for (int64_t n0 = nbeg; n0 < nend; n0 += kGwRows, ++u) {
          const int s = R::stage(u);
          const uint32_t a_addr = hop::smem_u32(smem + s * stage),
                         b_addr = hop::smem_u32(smem + s * stage + a_bytes) + uint32_t(g) * (128 / 8) * OpLayout<Op>::kSbo;
          ring.template consumer_step<Op, FAULT>(acc, u, n0 == nbeg, a_addr, b_addr);
        }
        ring.template consumer_finish<FAULT>(u, nend > nbeg);
#pragma unroll
        for (int e = 0; e < 64; ++e) {
          const int64_t j = j0 + 128 * g + hop::wgmma_acc_col(t, e);
          if (j < out)
            tc::put_grad_w<T>(acc[e], cm, c, hop::wgmma_acc_row(t, e), j, in, out, slices, slice, gWb, gWc, ws);
        }
      }
    }
  }
  if (wg == 0) ring.producer_drain(u);
#else
  __trap();  // launched only on sm_90 from an sm_90a build (launch_kan_linear_tc_v2_grad_w)
#endif
}

// grad W (gWb, gWc) with the workspace of ws_grad_w_workspace_bytes(...,
// sizeof(Op)) (16-byte aligned): the pre-pass, then the main kernel over the
// batch slices, then the slices' sum (tc::grad_w_passes). T: float,
// __nv_bfloat16 or __half.
template <typename T, int FAULT = kFaultNone>
inline cudaError_t launch_grad_w_ws(const T* gy, const T* x, const float* grid, int64_t N, int64_t in, int64_t M,
                                    int k, int base, int64_t out, T* gWb, T* gWc, void* workspace,
                                    cudaStream_t stream) {
  using Op = typename Mma<T>::Op;
  if (N == 0 || in == 0 || out == 0) return cudaSuccess;
  unsigned char* wsb = static_cast<unsigned char*>(workspace);
  unsigned char* dy_img = wsb + gw_partials_bytes(N, in, M, k, base, out);
  const int64_t steps = dy_image_steps(N), col_tiles = ceil_div(out, int64_t(kGwCols));
  GridInfo* info = reinterpret_cast<GridInfo*>(dy_img + gw_images_bytes(N, out, int(sizeof(Op))));
  KANEXT_LAUNCH(dim3(grid_x(steps), grid_yz(col_tiles)), tc::kThreads, 0, stream, tc2_dy_image_kernel<T>)(
      gy, grid, N, in, M, out, dy_img, info);
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  return dispatch_order(k, [&](auto kc) -> cudaError_t {
    constexpr int K = decltype(kc)::value;
    constexpr size_t smem = ws_grad_w_smem_bytes<Op>();
    const cudaError_t ea = tc::allow_smem(tc2_ws_grad_w_kernel<T, K, FAULT>, smem);
    if (ea != cudaSuccess) return ea;
    const ChunkMap cm(in, M, K, base != kBaseZero);
    return tc::grad_w_passes<T>(
        cm, N, in, out, base, kGwCols, gWb, gWc, workspace, stream,
        [&](dim3 grid_dim, int64_t rows_per_slice, int slices, float* ws) {
          KANEXT_LAUNCH(grid_dim, kWsThreads, smem, stream, tc2_ws_grad_w_kernel<T, K, FAULT>)(
              x, grid, N, in, M, base, dy_img, info, out, rows_per_slice, slices, gWb, gWc, ws);
          return cudaGetLastError();
        });
  });
}

}  // namespace tc2
}  // namespace cuda
}  // namespace kanext
