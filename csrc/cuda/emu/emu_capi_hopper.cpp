// Emulation-only test kernels of the Hopper primitives (hopper.cuh), for
// ctypes (tests/emu/test_emu_tc_v2.py): each runs one primitive on data the
// test lays out by the PTX ISA's rules, so that the emulated semantics are
// checked against hand-computed cases, independently of the v2 kernel.
#include "../hopper.cuh"

using namespace kanext::cuda;

namespace {

// One block of 128 * wgs threads: the shared-memory image is copied in, then
// warpgroup g runs `steps` m64n128 wgmmas (descriptors da/db[g * steps + s],
// the first with scale_d, the others accumulating) on registers that start
// as c_init, and stores its registers to d_out (thread t: 64 floats at 64 t).
// type: 0 k8 TF32, 1 k16 bf16, 2 k16 f16.
__global__ void wgmma_test_kernel(const unsigned char* image, int64_t bytes, const uint64_t* da, const uint64_t* db,
                                  int steps, int scale_d, const float* c_init, float* d_out, int type) {
  KANEXT_DYNAMIC_SMEM(smem);
  const int t = static_cast<int>(threadIdx.x), g = t / 128;
  for (int64_t b = t; b < bytes; b += blockDim.x) smem[b] = image[b];
  __syncthreads();
  hop::fence_proxy_async();
  float d[64];
  for (int e = 0; e < 64; ++e) d[e] = c_init[64 * t + e];
  hop::wgmma_fence();
  for (int s = 0; s < steps; ++s) {
    const uint64_t a = da[g * steps + s], b = db[g * steps + s];
    const int sd = s == 0 ? scale_d : 1;
    if (type == 1)
      hop::wgmma_m64n128k16_bf16(d, a, b, sd);
    else if (type == 2)
      hop::wgmma_m64n128k16_f16(d, a, b, sd);
    else
      hop::wgmma_m64n128k8_tf32(d, a, b, sd);
  }
  hop::wgmma_commit();
  hop::wgmma_wait<0>();
  for (int e = 0; e < 64; ++e) d_out[64 * t + e] = d[e];
}

// mbarrier + bulk copy: per phase p, every thread arrives (thread 0 with the
// expected bytes, then it issues the copy of n floats from src + p n), all
// wait for phase parity p % 2 (unless skip_wait) and copy the buffer out.
// flags: try_wait(0), try_wait(1) after init, and again after phase 0.
__global__ void bulk_test_kernel(const float* src, int n, int phases, int skip_wait, float* out, int* flags) {
  KANEXT_DYNAMIC_SMEM(smem);
  uint64_t* bar = reinterpret_cast<uint64_t*>(smem);
  float* buf = reinterpret_cast<float*>(smem + 16);
  const int t = static_cast<int>(threadIdx.x);
  if (t == 0) hop::mbar_init(bar, blockDim.x);
  __syncthreads();
  if (t == 0) {
    flags[0] = hop::mbar_try_wait(bar, 0);
    flags[1] = hop::mbar_try_wait(bar, 1);
  }
  __syncthreads();
  for (int p = 0; p < phases; ++p) {
    if (t == 0) {
      hop::mbar_arrive_expect_tx(bar, static_cast<uint32_t>(n * 4));
      hop::bulk_copy_g2s(buf, src + int64_t(p) * n, static_cast<uint32_t>(n * 4), bar);
    } else {
      hop::mbar_arrive(bar);
    }
    if (!skip_wait) hop::mbar_wait(bar, p & 1);
    for (int i = t; i < n; i += blockDim.x) out[int64_t(p) * n + i] = buf[i];
    if (p == 0 && t == 0) {
      flags[2] = hop::mbar_try_wait(bar, 0);
      flags[3] = hop::mbar_try_wait(bar, 1);
    }
    __syncthreads();
  }
}

}  // namespace

extern "C" {

int emu_hop_wgmma(const unsigned char* image, int64_t bytes, int wgs, const uint64_t* da, const uint64_t* db,
                  int steps, int scale_d, const float* c_init, float* d_out, int type) {
  KANEXT_LAUNCH(dim3(1), dim3(128 * wgs), static_cast<size_t>(bytes), nullptr, wgmma_test_kernel)(
      image, bytes, da, db, steps, scale_d, c_init, d_out, type);
  return 0;
}

int emu_hop_bulk(const float* src, int n, int phases, int skip_wait, float* out, int* flags) {
  KANEXT_LAUNCH(dim3(1), dim3(128), static_cast<size_t>(16 + 4 * n), nullptr, bulk_test_kernel)(src, n, phases,
                                                                                                 skip_wait, out, flags);
  return 0;
}

uint64_t emu_hop_make_desc(uint32_t addr, uint32_t lbo, uint32_t sbo, int swizzle) {
  return hop::make_desc(addr, lbo, sbo, swizzle);
}

}  // extern "C"
