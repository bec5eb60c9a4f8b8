// Tensor-core v2 path of the fused KAN layer, forward, float32 storage with
// TF32 operands (design T of docs/roofline.md section 6; backend
// "tensor_core_v2"): the GEMM of kan_linear_tc.cuh (same chunk layout of the
// K dimension, same basis-tile builder, same NaN policy) on Hopper's
// warpgroup MMA (wgmma.mma_async, sm_90a only) instead of WMMA.
//
// This is step 2 of the design: no warp specialisation yet. A block of 256
// threads (two warpgroups) computes a 128 (batch) x 128 (out) tile of y; per
// K chunk of 64 columns every thread helps build the A tile (basis values)
// and stage the W tile, both into shared memory in the wgmma operand layout,
// then each warpgroup runs eight m64n128k8 TF32 wgmmas (its 64 rows, all 128
// columns; accumulators: 64 float32 registers per thread).
//
// Operand layout (K-major, no swizzle; hopper.cuh / emu_hopper.h): element
// (r, q) of a 128 x 64 tile (r: batch row of A, or output column of W; q:
// chunk column) at byte 16 (r % 8) + 4 (q % 4) of a core matrix of 8 rows x
// 4 columns (128 contiguous bytes); the 16 core
// matrices along K of a row group are 128 bytes apart (LBO), row groups
// 2,048 bytes apart (SBO). A k-step (8 columns) starts 256 bytes further;
// warpgroup g's 64 rows of A start 16 KB further. Without swizzle the
// tensor core reads whole 128-byte core matrices (no bank conflicts for it);
// the builder's 4-byte stores are another matter, left to step 3 (the design's
// producer writes the 128-byte-swizzled layout, and W arrives by bulk copy).
#pragma once

#include "hopper.cuh"
#include "kan_linear_tc.cuh"

namespace kanext {
namespace cuda {
namespace tc2 {

using tc::ChunkMap;
using tc::kBK;
constexpr int kThreads = tc::kThreads;  // two warpgroups (the builder's thread count)
constexpr int kBM = 128, kBN = 128;
constexpr uint32_t kLbo = 128;                    // core matrices adjacent in K
constexpr uint32_t kSbo = (kBK / 4) * 128;        // 8-row groups: 2,048 bytes
constexpr uint32_t kTileBytes = kBM / 8 * kSbo;   // one 128 x 64 TF32 operand tile: 32 KB
static_assert(kBM == kBN, "A and W tiles share the layout");
static_assert(kThreads == 256, "two warpgroups");

// The operand tile of element type Op (float for TF32, or a 16-bit type:
// Mma<T>::Op of storage T): a core matrix row is 16 bytes, kPer = 16 /
// sizeof(Op) elements; a 64-column row of the tile is kBK / kPer core
// matrices, LBO apart; row groups SBO apart. A k-step of the wgmma (8 TF32
// or 16 16-bit columns) spans two core matrices (2 LBO) in either case, so a
// chunk is kSteps = 8 (TF32) or 4 (16-bit) k-steps.
template <typename Op>
struct OpLayout {
  static constexpr int kPer = int(16 / sizeof(Op));
  static constexpr uint32_t kSbo = (kBK / kPer) * 128;  // TF32 2,048, 16-bit 1,024 bytes
  static constexpr uint32_t kTileBytes = kBM / 8 * kSbo;  // TF32 32 KB, 16-bit 16 KB
  static constexpr int kSteps = kBK / hop::Wgmma<Op>::kK;
  static_assert(kSteps * 2 * int(kLbo) == kBK / kPer * int(kLbo), "a k-step is two core matrices");
};
static_assert(OpLayout<float>::kSbo == kSbo && OpLayout<float>::kTileBytes == kTileBytes, "TF32 layout");

// Row r of an operand tile: element (r, q) at byte
// (r / 8) SBO + (q / kPer) LBO + 16 (r % 8) + sizeof(Op) (q % kPer).
template <typename Op>
struct OperandRowT {
  unsigned char* p;  // the tile + (r / 8) SBO + 16 (r % 8)
  // byte offset (q / kPer) kLbo + sizeof(Op) (q % kPer), written as
  // sizeof(Op) q + (kLbo - 16) (q / kPer): one shift and one multiply-add per column
  __device__ __forceinline__ Op& operator[](int q) const {
    constexpr int kShift = OpLayout<Op>::kPer == 4 ? 2 : 3;
    static_assert((1 << kShift) == OpLayout<Op>::kPer, "4 or 8 elements per core matrix row");
    return *reinterpret_cast<Op*>(p + uint32_t(q) * sizeof(Op) + uint32_t(q >> kShift) * (kLbo - 16));
  }
};
using OperandRow = OperandRowT<float>;
template <typename Op = float>
__device__ __forceinline__ OperandRowT<Op> operand_row(unsigned char* tile, int r) {
  return OperandRowT<Op>{tile + uint32_t(r >> 3) * OpLayout<Op>::kSbo + uint32_t(r & 7) * 16};
}

// Elements o..o + 3 of a row (zeros at and past `out`): one 16-byte load
// when vec (out % 4 == 0 and a 16-byte aligned row, so o < out means all
// four are inside), else four 4-byte loads. For the backward's staging
// (kan_linear_tc_v2_gx.cuh, _gw.cuh).
__device__ __forceinline__ float4 load4(const float* __restrict__ row, int64_t o, int64_t out, bool vec) {
  if (vec) return o < out ? __ldg(reinterpret_cast<const float4*>(row + o)) : make_float4(0.f, 0.f, 0.f, 0.f);
  return make_float4(o < out ? __ldg(row + o) : 0.f, o + 1 < out ? __ldg(row + o + 1) : 0.f,
                     o + 2 < out ? __ldg(row + o + 2) : 0.f, o + 3 < out ? __ldg(row + o + 3) : 0.f);
}

// Elements o..o + kPer - 1 of a row of T as one 16-byte group of operands
// Mma<T>::Op (a core-matrix row), zeros at and past `out`: float rounded to
// TF32 (load4's loads), 16-bit types copied as they are (one 16-byte load
// when vec: out % 8 == 0 and a 16-byte aligned row, else eight 2-byte loads).
template <typename T>
__device__ __forceinline__ uint4 load_op16(const T* __restrict__ row, int64_t o, int64_t out, bool vec) {
  using Op = typename Mma<T>::Op;
  uint4 r;
  if constexpr (sizeof(Op) == 4) {
    const float4 e = load4(row, o, out, vec);
    const float v[4] = {Mma<float>::op(e.x), Mma<float>::op(e.y), Mma<float>::op(e.z), Mma<float>::op(e.w)};
    memcpy(&r, v, 16);
  } else {
    if (vec) return o < out ? __ldg(reinterpret_cast<const uint4*>(row + o)) : make_uint4(0u, 0u, 0u, 0u);
    Op v[8];
#pragma unroll
    for (int q = 0; q < 8; ++q) v[q] = o + q < out ? row[o + q] : Mma<T>::op(0.f);
    memcpy(&r, v, 16);
  }
  return r;
}

// One K chunk of a warpgroup's 64 x 128 accumulator tile: kSteps m64n128
// wgmmas (k-steps of 8 TF32 or 16 16-bit columns, in order) on A rows from
// a_addr and the W tile at b_addr (shared-memory addresses of operand tiles
// of Op in the layout above), waited for before returning (the operands may
// be overwritten after it).
// chunk_mma_issue: the same, issued and committed as one group but not
// waited for (the warp-specialised kernels keep one group in flight,
// tc2::RingT::consumer_step).
template <typename Op = float>
__device__ __forceinline__ void chunk_mma_issue(float (&acc)[64], uint32_t a_addr, uint32_t b_addr) {
  constexpr uint32_t sbo = OpLayout<Op>::kSbo;
  hop::wgmma_fence();
#pragma unroll
  for (int s = 0; s < OpLayout<Op>::kSteps; ++s)
    hop::Wgmma<Op>::run(acc, hop::make_desc(a_addr + uint32_t(s) * 2 * kLbo, kLbo, sbo, 0),
                        hop::make_desc(b_addr + uint32_t(s) * 2 * kLbo, kLbo, sbo, 0), 1);
  hop::wgmma_commit();
}
template <typename Op = float>
__device__ __forceinline__ void chunk_mma(float (&acc)[64], uint32_t a_addr, uint32_t b_addr) {
  chunk_mma_issue<Op>(acc, a_addr, b_addr);
  hop::wgmma_wait<0>();
}

// Thread t's accumulator registers into y (rows nrow.., columns j0..), inside
// the N x out bounds, rounded to T.
template <typename T = float>
__device__ __forceinline__ void store_acc(const float (&acc)[64], int t, int64_t nrow, int64_t j0, int64_t N,
                                          int64_t out, T* __restrict__ y) {
#pragma unroll
  for (int e = 0; e < 64; ++e) {
    const int64_t n = nrow + hop::wgmma_acc_row(t, e), j = j0 + hop::wgmma_acc_col(t, e);
    if (n < N && j < out) y[n * out + j] = from_float<T>(acc[e]);
  }
}

constexpr size_t forward_smem_bytes() { return 2 * size_t(kTileBytes) + kBK * sizeof(int64_t); }

template <int K>
__global__ void __launch_bounds__(kThreads, 1)
tc2_forward_kernel(const float* __restrict__ x, const float* __restrict__ grid, int64_t N, int64_t in, int64_t M,
                   int base, const float* __restrict__ Wb, const float* __restrict__ Wc, int64_t out,
                   float* __restrict__ y) {
#if KANEXT_HOPPER_WGMMA || defined(KANEXT_CUDA_EMULATION)
  KANEXT_DYNAMIC_SMEM(smem);
  unsigned char* As = smem;
  unsigned char* Bs = smem + kTileBytes;
  int64_t* s_rows = reinterpret_cast<int64_t*>(smem + 2 * kTileBytes);
  const int g = threadIdx.x / 128, t = threadIdx.x % 128;
  const uint32_t a_addr = hop::smem_u32(As) + uint32_t(g) * (64 / 8) * kSbo, b_addr = hop::smem_u32(Bs);
  const ChunkMap cm(in, M, K, base != kBaseZero);
  const int64_t row_tiles = ceil_div(N, kBM), col_tiles = ceil_div(out, kBN);
  auto a_row = [=](int r) { return operand_row(As, r); };
  auto put_w = [=](int q, int jj, float v) { operand_row(Bs, jj)[q] = v; };

  for (int64_t ct = blockIdx.y; ct < col_tiles; ct += gridDim.y) {
    const int64_t j0 = ct * kBN;
    for (int64_t rt = blockIdx.x; rt < row_tiles; rt += gridDim.x) {
      const int64_t n0 = rt * kBM;
      float acc[64];
#pragma unroll
      for (int e = 0; e < 64; ++e) acc[e] = 0.f;
      for (int64_t c = 0; c < cm.chunks; ++c) {
        tc::chunk_rows(s_rows, cm, c, in, out);
        __syncthreads();
        tc::build_a_tile_with<float, K, true>(a_row, kBM, x, grid, N, in, M, base, cm, c, n0,
                                              static_cast<int>(threadIdx.x), kThreads);
        tc::load_w_tile_with<float, kBN>(put_w, Wb, Wc, s_rows, out, j0);
        hop::fence_proxy_async();  // the generic-proxy stores above, before the tensor core reads them
        __syncthreads();
        chunk_mma(acc, a_addr, b_addr);
        __syncthreads();  // the tiles are rebuilt next chunk
      }
      store_acc(acc, t, n0 + 64 * g, j0, N, out, y);
    }
  }
#else
  __trap();  // launched only on sm_90 from an sm_90a build (launch_forward_v2)
#endif
}

// A template (T = float only) so that only the translation units that use it
// compile its kernels (kan_linear_tc_v2.cu, not the 16-bit one).
template <typename T = float>
inline cudaError_t launch_forward_v2(const float* x, const float* grid, int64_t N, int64_t in, int64_t M, int k,
                                     int base, const float* Wb, const float* Wc, int64_t out, float* y,
                                     cudaStream_t stream) {
  if (N == 0 || out == 0) return cudaSuccess;
  return dispatch_order(k, [&](auto kc) -> cudaError_t {
    constexpr int K = decltype(kc)::value;
    constexpr size_t smem = forward_smem_bytes();
    const cudaError_t e = tc::allow_smem(tc2_forward_kernel<K>, smem);
    if (e != cudaSuccess) return e;
    const dim3 grid_dim(grid_x(ceil_div(N, kBM)), grid_yz(ceil_div(out, kBN)));
    KANEXT_LAUNCH(grid_dim, kThreads, smem, stream, tc2_forward_kernel<K>)(x, grid, N, in, M, base, Wb, Wc, out, y);
    return cudaGetLastError();
  });
}

}  // namespace tc2
}  // namespace cuda
}  // namespace kanext
