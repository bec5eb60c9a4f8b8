// Compile-only probe of the Hopper primitives (csrc/cuda/hopper.cuh) for
// sm_90a: every primitive is used once, so that ptxas assembles all of their
// inline PTX (step 2 uses only the wgmma ones; step 3, kan_linear_tc_v2_ws.cuh, all of them). Built by
// scripts/check_cuda_compile.sh; never run. Expected SASS: SYNCS.EXCH.64
// (mbarrier.init), SYNCS.ARRIVE.TRANS64* (arrive / arrive.expect_tx),
// UBLKCP.S.G (cp.async.bulk), SYNCS.PHASECHK.TRANS64.TRYWAIT (try_wait),
// FENCE.VIEW.ASYNC.S, WARPGROUP.ARRIVE, HGMMA.64x128x8.F32.TF32,
// HGMMA.64x128x16.F32.BF16, HGMMA.64x128x16.F32 (f16), WARPGROUP.DEPBAR.LE.
#include "hopper.cuh"

using namespace kanext::cuda;

__global__ void hopper_probe_kernel(const float* src, float* out) {
  extern __shared__ __align__(128) unsigned char sm[];
  uint64_t* bar = reinterpret_cast<uint64_t*>(sm);
  float* buf = reinterpret_cast<float*>(sm + 128);
  if (threadIdx.x == 0) hop::mbar_init(bar, blockDim.x);
  __syncthreads();
  if (threadIdx.x == 0) {
    hop::mbar_arrive_expect_tx(bar, 512);
    hop::bulk_copy_g2s(buf, src, 512, bar);
  } else {
    hop::mbar_arrive(bar);
  }
  hop::mbar_wait(bar, 0);
  hop::fence_proxy_async();
  float d[64];
  for (int i = 0; i < 64; ++i) d[i] = 0.f;
  hop::wgmma_fence();
  hop::wgmma_m64n128k8_tf32(d, hop::make_desc(hop::smem_u32(buf), 128, 256, hop::kSwizzleNone),
                            hop::make_desc(hop::smem_u32(buf), 128, 1024, hop::kSwizzle128B), 0);
  hop::wgmma_m64n128k16_bf16(d, hop::make_desc(hop::smem_u32(buf), 128, 1024, hop::kSwizzleNone),
                             hop::make_desc(hop::smem_u32(buf), 128, 1024, hop::kSwizzleNone), 1);
  hop::wgmma_m64n128k16_f16(d, hop::make_desc(hop::smem_u32(buf), 128, 1024, hop::kSwizzleNone),
                            hop::make_desc(hop::smem_u32(buf), 128, 1024, hop::kSwizzleNone), 1);
  hop::wgmma_commit();
  hop::wgmma_wait<0>();
  for (int i = 0; i < 64; ++i) out[threadIdx.x * 64 + i] = d[i];
}
