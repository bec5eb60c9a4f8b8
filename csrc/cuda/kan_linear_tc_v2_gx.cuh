// grad x of the tensor-core v2 path on Hopper's warpgroup MMA (design T
// item 6 of docs/roofline.md section 6, first step; float32 storage with
// TF32 operands, sm_90a only). Backend "tensor_core_v2" runs step 2
// (kan_linear_tc_v2_gx_ws.cuh) instead; this kernel is reached by the
// emulation tests, which compare the two.
//
//   gradA = dy W^T  (N x chunk columns, contracted over `out`),
//   grad x[n, i] = sum_g B'_g(x[n, i]) gradA[n, (i, g)] + b'(x[n, i]) gradA[n, (i, nb)],
//
// with the chunk layout of the K dimension of kan_linear_tc.cuh. A block of
// 256 threads (two warpgroups) computes a 128 (batch) x 128 (two chunks)
// tile of gradA: per 64 outputs every thread helps stage the dy tile (A,
// 128 x 64) and the W^T tile (B: the two chunks' 128 W rows x 64 outputs),
// both K-major (K = out) in the unswizzled operand layout of
// kan_linear_tc_v2.cuh, 16 bytes (four outputs of a row) per load and
// store, then each warpgroup runs eight m64n128k8 TF32 wgmmas on its 64
// rows. The float32 tile then goes through shared memory
// (over the operand tiles) and the epilogue contracts each (row, input)
// item with its basis derivatives, chunk by chunk, with the WMMA kernel's
// code (tc::grad_x_item). An input wider than a chunk (nb1 > 64) is a group
// of its own: its chunks are walked two at a time and the item's sum runs
// over them in chunk order, as in the WMMA kernel.
//
// Like step 2 of the forward (no warp specialisation, synchronous staging),
// it replaces the MMA instruction, not the CUDA-core staging. In host emulation the tensor core adds the
// same TF32 products in the same order as the WMMA kernel's m16n16k8 steps,
// so the two give the same bits there (tests/emu/test_emu_tc_v2_backward.py).
#pragma once

#include "kan_linear_tc_v2.cuh"

namespace kanext {
namespace cuda {
namespace tc2 {

constexpr int kGxCols = kBN;                 // gradA columns per tile: two chunks (the B tile's 128 rows)
constexpr int kGxLdc = kGxCols + 4;          // float row stride of the gradA tile in shared memory
static_assert(kGxCols == 2 * kBK && kBM == tc::kGxBM, "a gradA tile is two chunks of tc::grad_x_epilogue's rows");

constexpr size_t grad_x_tile_bytes() {
  return size_t(kBM) * kGxLdc * sizeof(float) > 2 * size_t(kTileBytes) ? size_t(kBM) * kGxLdc * sizeof(float)
                                                                        : 2 * size_t(kTileBytes);
}
constexpr size_t grad_x_smem_bytes() { return grad_x_tile_bytes() + kGxCols * sizeof(int64_t); }

// Groups of gradA tiles: a pair of chunks (nb1 <= 64), or the cpi chunks of
// one input (nb1 > 64), taken two at a time.
__host__ __device__ inline int64_t grad_x_groups(const ChunkMap& cm, int64_t in) {
  return cm.cpi == 1 ? (cm.chunks + 1) / 2 : in;
}

// Stages outputs o0..o0 + 63 of 128 row-major rows (row r from src_row(r):
// a pointer to its output 0, or null for a zero row) into an operand tile,
// K-major (K = out), TF32-rounded, zeros past `out`. Thread t writes the
// 16-byte pieces (r, a) with a = t % 16 (outputs o0 + 4a..) and r = t / 16,
// + 16, ...: one 16-byte load each when vec (out % 4 == 0 and 16-byte
// aligned rows), else four 4-byte loads; the same values either way.
template <typename RowPtr>
__device__ __forceinline__ void stage_rows_k_major(unsigned char* tile, RowPtr src_row, int64_t out, int64_t o0,
                                                   bool vec) {
  const int a = static_cast<int>(threadIdx.x % 16);
  const int64_t o = o0 + 4 * a;
  for (int r = static_cast<int>(threadIdx.x / 16); r < kBM; r += kThreads / 16) {
    const float* row = src_row(r);
    const float4 v = row != nullptr ? load4(row, o, out, vec) : make_float4(0.f, 0.f, 0.f, 0.f);
    using Op = Mma<float>;
    *reinterpret_cast<float4*>(operand_row(tile, r).p + a * kLbo) =
        make_float4(Op::op(v.x), Op::op(v.y), Op::op(v.z), Op::op(v.w));
  }
}

template <int K>
__global__ void __launch_bounds__(kThreads, 1)
tc2_grad_x_kernel(const float* __restrict__ gy, const float* __restrict__ x, const float* __restrict__ grid, int64_t N,
                  int64_t in, int64_t M, int base, const float* __restrict__ Wb, const float* __restrict__ Wc,
                  int64_t out, bool vec, float* __restrict__ gx) {
#if KANEXT_HOPPER_WGMMA || defined(KANEXT_CUDA_EMULATION)
  KANEXT_DYNAMIC_SMEM(smem);
  unsigned char* As = smem;
  unsigned char* Bs = smem + kTileBytes;
  float* Cs = reinterpret_cast<float*>(smem);  // the gradA tile, over the operand tiles once the MMAs are done
  int64_t* s_rows = reinterpret_cast<int64_t*>(smem + grad_x_tile_bytes());
  const int g = threadIdx.x / 128, t = threadIdx.x % 128;
  const uint32_t a_addr = hop::smem_u32(As) + uint32_t(g) * (64 / 8) * kSbo, b_addr = hop::smem_u32(Bs);
  const ChunkMap cm(in, M, K, base != kBaseZero);
  const int64_t row_tiles = ceil_div(N, kBM), groups = grad_x_groups(cm, in);
  const int tiles = cm.cpi == 1 ? 1 : (cm.cpi + 1) / 2;  // gradA tiles per group

  for (int64_t grp = blockIdx.y; grp < groups; grp += gridDim.y) {
    for (int64_t rt = blockIdx.x; rt < row_tiles; rt += gridDim.x) {
      const int64_t n0 = rt * kBM;
      float part = 0.f;  // nb1 > kBK: running sum of item (row threadIdx.x, input grp) over its chunks
      for (int tl = 0; tl < tiles; ++tl) {
        const int64_t c0 = cm.cpi == 1 ? 2 * grp : grp * cm.cpi + 2 * tl;
        const int nch = cm.cpi == 1 ? static_cast<int>(cm.chunks - c0 < 2 ? cm.chunks - c0 : 2)
                                    : (cm.cpi - 2 * tl < 2 ? cm.cpi - 2 * tl : 2);
        for (int q = threadIdx.x; q < kGxCols; q += kThreads)
          s_rows[q] = q / kBK < nch ? tc::w_row_offset(cm, c0 + q / kBK, q % kBK, in, out) : -1;
        float acc[64];
#pragma unroll
        for (int e = 0; e < 64; ++e) acc[e] = 0.f;
        __syncthreads();
        for (int64_t o0 = 0; o0 < out; o0 += kBK) {
          stage_rows_k_major(
              As, [=](int r) { return n0 + r < N ? gy + (n0 + r) * out : nullptr; }, out, o0, vec);
          // B row q is W row s_rows[q]: gradA column q % 64 of chunk c0 + q / 64
          stage_rows_k_major(
              Bs,
              [=](int q) {
                const int64_t w = s_rows[q];
                return w == -1 ? nullptr : (w >= 0 ? Wc + w : Wb + (-w - 2));
              },
              out, o0, vec);
          hop::fence_proxy_async();  // the generic-proxy stores above, before the tensor core reads them
          __syncthreads();
          chunk_mma(acc, a_addr, b_addr);
          __syncthreads();  // the tiles are restaged next step (and Cs overwrites them below)
        }
#pragma unroll
        for (int e = 0; e < 64; ++e)
          Cs[(64 * g + hop::wgmma_acc_row(t, e)) * kGxLdc + hop::wgmma_acc_col(t, e)] = acc[e];
        __syncthreads();
        for (int h = 0; h < nch; ++h)  // chunk c0 + h: columns h kBK.. of the tile
          tc::grad_x_epilogue<float, K>(Cs + h * kBK, kGxLdc, x, grid, N, in, M, base, cm, c0 + h, n0,
                                        2 * tl + h == cm.cpi - 1, part, gx);
        __syncthreads();  // Cs and s_rows are reused by the next tile
      }
    }
  }
#else
  __trap();  // launched only on sm_90 from an sm_90a build (launch_kan_linear_tc_v2_grad_x)
#endif
}

// A template (T = float only) so that only the translation units that use it
// compile its kernels (kan_linear_tc_v2.cu, not the 16-bit one).
template <typename T = float>
inline cudaError_t launch_grad_x_v2(const float* gy, const float* x, const float* grid, int64_t N, int64_t in,
                                    int64_t M, int k, int base, const float* Wb, const float* Wc, int64_t out,
                                    float* gx, cudaStream_t stream) {
  if (N == 0 || in == 0 || out == 0) return cudaSuccess;
  return dispatch_order(k, [&](auto kc) -> cudaError_t {
    constexpr int K = decltype(kc)::value;
    constexpr size_t smem = grad_x_smem_bytes();
    const cudaError_t e = tc::allow_smem(tc2_grad_x_kernel<K>, smem);
    if (e != cudaSuccess) return e;
    const ChunkMap cm(in, M, K, base != kBaseZero);
    const auto aligned = [](const float* q) { return reinterpret_cast<uintptr_t>(q) % 16 == 0; };
    const bool vec = out % 4 == 0 && aligned(gy) && aligned(Wb) && aligned(Wc);
    const dim3 grid_dim(grid_x(ceil_div(N, kBM)), grid_yz(grad_x_groups(cm, in)));
    KANEXT_LAUNCH(grid_dim, kThreads, smem, stream, tc2_grad_x_kernel<K>)(gy, x, grid, N, in, M, base, Wb, Wc, out,
                                                                         vec, gx);
    return cudaGetLastError();
  });
}

}  // namespace tc2
}  // namespace cuda
}  // namespace kanext
