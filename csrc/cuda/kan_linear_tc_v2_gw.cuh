// grad W of the tensor-core v2 path on Hopper's warpgroup MMA (design T
// item 5 of docs/roofline.md section 6, first step; float32 storage with
// TF32 operands, sm_90a only). Backend "tensor_core_v2" runs step 2
// (kan_linear_tc_v2_gw_ws.cuh) instead; this kernel is reached by the
// emulation tests, which compare the two.
//
//   grad W = A^T dy  (chunk rows of W x out, contracted over the batch),
//
// with A the basis matrix of kan_linear_tc.cuh (same chunk layout, same
// builder, NaN x adds nothing). A block of 256 threads (two warpgroups)
// computes one chunk's 64 W rows x 256 outputs; per 64 batch rows of its
// slice every thread helps build the A^T tile (64 W rows x 64 batch rows:
// the WMMA kernel's builder, writing element (n, q) of A at row q, column n
// of the operand) and stage the dy^T tile (256 outputs x 64 batch rows; a
// 16-byte load of four outputs of a batch row, four 4-byte stores), both
// K-major (K = batch) in the unswizzled layout of kan_linear_tc_v2.cuh
// (TF32 wgmma reads both operands K-major only). Warpgroup g then runs
// eight m64n128k8 TF32 wgmmas on outputs 128 g.. . The accumulators go
// straight to grad W, or to the batch slices' float32 partials, summed by
// the WMMA path's combine kernel: the same slices (tc::plan_slices) as the
// WMMA grad W, so in host emulation the two give the same bits
// (tests/emu/test_emu_tc_v2_backward.py).
//
// Like step 2 of the forward and grad x's first step: no warp
// specialisation, synchronous staging.
#pragma once

#include "kan_linear_tc_v2.cuh"

namespace kanext {
namespace cuda {
namespace tc2 {

constexpr int kGwRows = tc::kGwBR;  // batch rows per step: the WMMA kernel's, so the same slices and sums
constexpr int kGwCols = 256;        // outputs per block: 128 per warpgroup
// The two operands' bytes for operand type Op (TF32 float; 16-bit: half of these).
template <typename Op>
struct GwLayout {
  static constexpr uint32_t kABytes = kBK * kGwRows * sizeof(Op);      // A^T: 64 W rows x 64 batch rows
  static constexpr uint32_t kBBytes = kGwCols * kGwRows * sizeof(Op);  // dy^T: 256 outputs x 64 batch rows
};
constexpr uint32_t kGwABytes = GwLayout<float>::kABytes;  // TF32: 16 KB
constexpr uint32_t kGwBBytes = GwLayout<float>::kBBytes;  // TF32: 64 KB
static_assert(kGwRows == kBK, "the operand layout's K is 64");
constexpr size_t grad_w_smem_bytes() { return size_t(kGwABytes) + kGwBBytes; }

// Element (r, q) of A (batch row r, chunk column q) as element (q, r) of the
// K-major A^T operand of Op: what tc::build_a_tile_with writes through.
template <typename Op>
struct TransposedRowT {
  unsigned char* tile;
  int r;
  __device__ __forceinline__ Op& operator[](int q) const { return operand_row<Op>(tile, q)[r]; }
};
using TransposedRow = TransposedRowT<float>;

template <int K>
__global__ void __launch_bounds__(kThreads, 1)
tc2_grad_w_kernel(const float* __restrict__ gy, const float* __restrict__ x, const float* __restrict__ grid,
                  int64_t N, int64_t in, int64_t M, int base, int64_t out, int64_t rows_per_slice, int slices,
                  bool vec, float* gWb, float* gWc, float* ws) {
#if KANEXT_HOPPER_WGMMA || defined(KANEXT_CUDA_EMULATION)
  KANEXT_DYNAMIC_SMEM(smem);
  unsigned char* As = smem;
  unsigned char* Bs = smem + kGwABytes;
  const int g = threadIdx.x / 128, t = threadIdx.x % 128;
  const uint32_t a_addr = hop::smem_u32(As), b_addr = hop::smem_u32(Bs) + uint32_t(g) * (128 / 8) * kSbo;
  const ChunkMap cm(in, M, K, base != kBaseZero);
  const int64_t col_tiles = ceil_div(out, kGwCols);
  const int slice = static_cast<int>(blockIdx.z);
  const int64_t nbeg = slice * rows_per_slice;
  const int64_t nend = nbeg + rows_per_slice < N ? nbeg + rows_per_slice : N;
  // dy^T staging: thread t loads outputs 4 (t % 64).. of batch rows t / 64, + 4, ...
  const int a4 = static_cast<int>(threadIdx.x % (kGwCols / 4));

  for (int64_t ct = blockIdx.y; ct < col_tiles; ct += gridDim.y) {
    const int64_t j0 = ct * kGwCols;
    for (int64_t c = blockIdx.x; c < cm.chunks; c += gridDim.x) {
      float acc[64];
#pragma unroll
      for (int e = 0; e < 64; ++e) acc[e] = 0.f;
      for (int64_t n0 = nbeg; n0 < nend; n0 += kGwRows) {
        const int rows = static_cast<int>(nend - n0 < kGwRows ? nend - n0 : kGwRows);
        tc::build_a_tile_with<float, K, false>([=](int r) { return TransposedRow{As, r}; }, kGwRows, x, grid,
                                               n0 + rows, in, M, base, cm, c, n0, static_cast<int>(threadIdx.x),
                                               kThreads);
        const int64_t o = j0 + 4 * a4;
        for (int r = static_cast<int>(threadIdx.x / (kGwCols / 4)); r < kGwRows; r += kThreads / (kGwCols / 4)) {
          const float4 v = r < rows ? load4(gy + (n0 + r) * out, o, out, vec) : make_float4(0.f, 0.f, 0.f, 0.f);
          operand_row(Bs, 4 * a4)[r] = Mma<float>::op(v.x);
          operand_row(Bs, 4 * a4 + 1)[r] = Mma<float>::op(v.y);
          operand_row(Bs, 4 * a4 + 2)[r] = Mma<float>::op(v.z);
          operand_row(Bs, 4 * a4 + 3)[r] = Mma<float>::op(v.w);
        }
        hop::fence_proxy_async();  // the generic-proxy stores above, before the tensor core reads them
        __syncthreads();
        chunk_mma(acc, a_addr, b_addr);
        __syncthreads();  // the tiles are rebuilt next step
      }
#pragma unroll
      for (int e = 0; e < 64; ++e) {
        const int64_t j = j0 + 128 * g + hop::wgmma_acc_col(t, e);
        if (j < out)
          tc::put_grad_w<float>(acc[e], cm, c, hop::wgmma_acc_row(t, e), j, in, out, slices, slice, gWb, gWc, ws);
      }
    }
  }
#else
  __trap();  // launched only on sm_90 from an sm_90a build (launch_kan_linear_tc_v2_grad_w)
#endif
}

// grad W (gWb, gWc) with the workspace of kan_linear_tc_backward_workspace_bytes.
// A template (T = float only) so that only the translation units that use it
// compile its kernels (kan_linear_tc_v2.cu, not the 16-bit one).
template <typename T = float>
inline cudaError_t launch_grad_w_v2(const float* gy, const float* x, const float* grid, int64_t N, int64_t in,
                                    int64_t M, int k, int base, int64_t out, float* gWb, float* gWc, void* workspace,
                                    cudaStream_t stream) {
  if (N == 0 || in == 0 || out == 0) return cudaSuccess;
  return dispatch_order(k, [&](auto kc) -> cudaError_t {
    constexpr int K = decltype(kc)::value;
    constexpr size_t smem = grad_w_smem_bytes();
    const cudaError_t e = tc::allow_smem(tc2_grad_w_kernel<K>, smem);
    if (e != cudaSuccess) return e;
    const ChunkMap cm(in, M, K, base != kBaseZero);
    const bool vec = out % 4 == 0 && reinterpret_cast<uintptr_t>(gy) % 16 == 0;
    return tc::grad_w_passes<float>(
        cm, N, in, out, base, kGwCols, gWb, gWc, workspace, stream,
        [&](dim3 grid_dim, int64_t rows_per_slice, int slices, float* ws) {
          KANEXT_LAUNCH(grid_dim, kThreads, smem, stream, tc2_grad_w_kernel<K>)(
              gy, x, grid, N, in, M, base, out, rows_per_slice, slices, vec, gWb, gWc, ws);
          return cudaGetLastError();
        });
  });
}

}  // namespace tc2
}  // namespace cuda
}  // namespace kanext
