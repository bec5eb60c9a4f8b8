// CUDA kernels of kanext.fold_spline_weights and its backward (schemas in
// csrc/ops.cpp):
//
//   Wc[i, g, j]   = scale[i, j] coef[i, j, g]              (fold)
//   gcoef[i, j, g] = gWc[i, g, j] scale[i, j]             (backward)
//   gscale[i, j]   = sum_g gWc[i, g, j] coef[i, j, g]     (g increasing, as on the CPU)
//
// Both are per-input transposes between (out, nb) and (nb, out). A block owns
// one input i and 32 columns j, and walks the nb bases in tiles of 32 through
// a shared-memory tile (padded against bank conflicts), so global reads and
// writes are coalesced on both sides. In the backward, the thread that owns
// column j adds the products over g sequentially, tile after tile: a fixed
// order, hence deterministic. Cost O(in out nb), independent of the batch.
#include "common.cuh"

namespace kanext {
namespace cuda {
namespace {

constexpr int kTile = 32;
constexpr int kRowsPerPass = 8;  // blockDim = (32, 8)

template <typename T>
__global__ void __launch_bounds__(kTile* kRowsPerPass)
fold_kernel(const T* __restrict__ coef, const T* __restrict__ scale, int64_t in, int64_t out, int64_t nb,
            T* __restrict__ Wc) {
  __shared__ T s_c[kTile][kTile + 1];  // [j][g]
  const int64_t col_tiles = ceil_div(out, kTile);
  const int tx = threadIdx.x, ty = threadIdx.y;
  for (int64_t tile = blockIdx.x; tile < in * col_tiles; tile += gridDim.x) {
    const int64_t i = tile / col_tiles, j0 = (tile % col_tiles) * kTile;
    for (int64_t g0 = 0; g0 < nb; g0 += kTile) {
      // read coef[i, j0 + jj, g0 + tx] (contiguous in g)
      for (int jj = ty; jj < kTile; jj += kRowsPerPass) {
        const int64_t j = j0 + jj, g = g0 + tx;
        s_c[jj][tx] = (j < out && g < nb) ? coef[(i * out + j) * nb + g] : T(0);
      }
      __syncthreads();
      // write Wc[i, g0 + gg, j0 + tx] (contiguous in j)
      const int64_t j = j0 + tx;
      const T s = j < out ? scale[i * out + j] : T(0);
      for (int gg = ty; gg < kTile; gg += kRowsPerPass) {
        const int64_t g = g0 + gg;
        if (j < out && g < nb) Wc[(i * nb + g) * out + j] = s * s_c[tx][gg];
      }
      __syncthreads();
    }
  }
}

template <typename T>
__global__ void __launch_bounds__(kTile* kRowsPerPass)
fold_backward_kernel(const T* __restrict__ gW, const T* __restrict__ coef, const T* __restrict__ scale, int64_t in,
                     int64_t out, int64_t nb, T* __restrict__ gcoef, T* __restrict__ gscale) {
  __shared__ T s_g[kTile][kTile + 1];  // [g][j]
  __shared__ T s_c[kTile][kTile + 1];  // [j][g]
  const int64_t col_tiles = ceil_div(out, kTile);
  const int tx = threadIdx.x, ty = threadIdx.y;
  for (int64_t tile = blockIdx.x; tile < in * col_tiles; tile += gridDim.x) {
    const int64_t i = tile / col_tiles, j0 = (tile % col_tiles) * kTile;
    T acc = T(0);  // gscale[i, j0 + tx], owned by the threads with ty == 0
    for (int64_t g0 = 0; g0 < nb; g0 += kTile) {
      for (int r = ty; r < kTile; r += kRowsPerPass) {
        const int64_t g = g0 + r, j = j0 + tx;  // gW[i, g, j]: contiguous in j
        s_g[r][tx] = (g < nb && j < out) ? gW[(i * nb + g) * out + j] : T(0);
        const int64_t j2 = j0 + r, g2 = g0 + tx;  // coef[i, j2, g2]: contiguous in g
        s_c[r][tx] = (j2 < out && g2 < nb) ? coef[(i * out + j2) * nb + g2] : T(0);
      }
      __syncthreads();
      // gcoef[i, j0 + jj, g0 + tx] = gW[i, g0 + tx, j0 + jj] scale[i, j0 + jj] (contiguous in g)
      for (int jj = ty; jj < kTile; jj += kRowsPerPass) {
        const int64_t j = j0 + jj, g = g0 + tx;
        if (j < out && g < nb) gcoef[(i * out + j) * nb + g] = s_g[tx][jj] * scale[i * out + j];
      }
      if (ty == 0) {
        const int gcnt = static_cast<int>(nb - g0 < kTile ? nb - g0 : kTile);
        for (int gg = 0; gg < gcnt; ++gg) acc += s_g[gg][tx] * s_c[tx][gg];
      }
      __syncthreads();
    }
    if (ty == 0 && j0 + tx < out) gscale[i * out + j0 + tx] = acc;
  }
}

int fold_blocks(int64_t in, int64_t out) {
  const int64_t tiles = in * ceil_div(out, kTile);
  const int64_t cap = int64_t(current_sm_count()) * 32;
  return static_cast<int>(tiles < cap ? (tiles < 1 ? 1 : tiles) : cap);
}

template <typename T>
cudaError_t launch_fold(const T* coef, const T* scale, int64_t in, int64_t out, int64_t nb, T* Wc,
                        cudaStream_t stream) {
  if (in == 0 || out == 0 || nb == 0) return cudaSuccess;
  const dim3 block(kTile, kRowsPerPass);
  KANEXT_LAUNCH(fold_blocks(in, out), block, 0, stream, fold_kernel<T>)(coef, scale, in, out, nb, Wc);
  return cudaGetLastError();
}

template <typename T>
cudaError_t launch_fold_backward(const T* gW, const T* coef, const T* scale, int64_t in, int64_t out, int64_t nb,
                                 T* gcoef, T* gscale, cudaStream_t stream) {
  if (in == 0 || out == 0) return cudaSuccess;
  if (nb == 0) return cudaMemsetAsync(gscale, 0, size_t(in) * size_t(out) * sizeof(T), stream);
  const dim3 block(kTile, kRowsPerPass);
  KANEXT_LAUNCH(fold_blocks(in, out), block, 0, stream, fold_backward_kernel<T>)(gW, coef, scale, in, out, nb, gcoef,
                                                                              gscale);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_fold_spline_weights_f32(const float* coef, const float* scale, int64_t in, int64_t out, int64_t nb,
                                           float* Wc, cudaStream_t stream) {
  return launch_fold<float>(coef, scale, in, out, nb, Wc, stream);
}
cudaError_t launch_fold_spline_weights_f64(const double* coef, const double* scale, int64_t in, int64_t out,
                                           int64_t nb, double* Wc, cudaStream_t stream) {
  return launch_fold<double>(coef, scale, in, out, nb, Wc, stream);
}
cudaError_t launch_fold_spline_weights_backward_f32(const float* gWc, const float* coef, const float* scale,
                                                    int64_t in, int64_t out, int64_t nb, float* gcoef, float* gscale,
                                                    cudaStream_t stream) {
  return launch_fold_backward<float>(gWc, coef, scale, in, out, nb, gcoef, gscale, stream);
}
cudaError_t launch_fold_spline_weights_backward_f64(const double* gWc, const double* coef, const double* scale,
                                                    int64_t in, int64_t out, int64_t nb, double* gcoef,
                                                    double* gscale, cudaStream_t stream) {
  return launch_fold_backward<double>(gWc, coef, scale, in, out, nb, gcoef, gscale, stream);
}

}  // namespace cuda
}  // namespace kanext
