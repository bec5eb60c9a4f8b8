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
//    64-127 of the 128 x 128 tile of y). A ring of S stages (2 for TF32, 4
//    for 16-bit types: ring_stages), each an A
//    tile (128 x 64) and a W tile (64 x 128 as 128 x 64 K-major), guarded
//    by two mbarriers per stage:
//      full[s]  (129 arrivals + 32 KB of transactions): producer thread 0
//               arrives with expect_tx and issues ONE cp.async.bulk of the
//               W image; then every producer thread builds its share of the
//               basis A tile (the builder of kan_linear_tc.cuh, 128 threads),
//               fences the generic-proxy stores for the async proxy and
//               arrives;
//      empty[s] (256 arrivals): every consumer thread arrives once its
//               wgmmas on the stage have retired, i.e. once the tensor core
//               has read the stage: during the next chunk, after that
//               chunk's wgmmas are issued and wait_group 1 returns (one
//               group in flight, RingT::consumer_step), or at the tile's end.
//    Chunk number u of the block (counted over its tiles) uses stage
//    u % S in round u / S: the producer waits for the end of
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
// 3. Uniform grids (design T item 3, uniform_window below): the fold also
//    records per input whether its knots are uniform (GridInfo, after the W
//    images); the producer builds such inputs' windows by arithmetic
//    (interval from one multiply, corrected against two knots; constant
//    Cox-de Boor denominators), other inputs' with the general
//    basis_window. Same intervals as the search, values within the bound of
//    grid_info, so not the same bits as step 2 on uniform grids (the tests
//    compare with tolerances there, bit for bit elsewhere).
// 4. The producer's builder (build_a_rows): one A row per producer thread,
//    zeroed with 16-byte stores, then only the nonzero columns of each input
//    slot written (no index division per item, no store per zero column).
// 5. 16-bit storage (T = __nv_bfloat16 or __half, what autocast gives): the
//    same kernel with 16-bit operands (Mma<T>::Op, OpLayout<Op>: a core
//    matrix row holds 8 elements, a 128 x 64 tile is 16 KB, a stage 32 KB,
//    4 stages)
//    and m64n128k16 wgmmas, four per chunk; x, W and y stay in T, the bases
//    are computed in float32 and rounded once to T, as in the WMMA path.
// Not done: the 128-byte swizzle (the producer's 4-byte stores to the
// unswizzled layout have bank conflicts) and cluster sharing of design T
// item 3. grad W and grad x have the
// same structure (kan_linear_tc_v2_gw_ws.cuh, kan_linear_tc_v2_gx_ws.cuh).
#pragma once

#include "kan_linear_tc_v2.cuh"

namespace kanext {
namespace cuda {
namespace tc2 {

constexpr int kStages = 2;                        // stages of the TF32 rings
constexpr int kWsThreads = 384;                   // producer warpgroup + two consumer warpgroups
constexpr int kConsumerThreads = 256;
constexpr uint32_t kStageBytes = 2 * kTileBytes;  // A tile, then W tile
constexpr int64_t kTileFloats = kTileBytes / 4;

// Stages of the rings for operand type Op: 2 for TF32 (stages of 64-80 KB:
// what 227 KB hold, beside grad x's gradA tile), 4 for the 16-bit types
// (stages of 32-40 KB), so that the producer can run further ahead.
template <typename Op>
constexpr int ring_stages() {
  return sizeof(Op) == 4 ? kStages : 4;
}

// Float offset of W image (ct, c) in the folded buffer (TF32 images).
__host__ __device__ __forceinline__ int64_t w_image_offset(int64_t ct, int64_t c, int64_t chunks) {
  return (ct * chunks + c) * kTileFloats;
}
// Byte offset of W image (ct, c) for operand type Op (TF32: 32 KB images,
// 16-bit: 16 KB).
template <typename Op>
__host__ __device__ __forceinline__ int64_t w_image_byte_offset(int64_t ct, int64_t c, int64_t chunks) {
  return (ct * chunks + c) * int64_t(OpLayout<Op>::kTileBytes);
}

// The uniform-grid builder (design T item 3). Per input i, the fold
// records whether its knot row is uniform enough for the fast path
// (GridInfo, after the W images in the workspace); the producer then builds
// that input's windows from the interval's arithmetic guess and constant
// Cox-de Boor denominators (uniform_window) instead of find_interval /
// local_bases.
//
// The decision (grid_info, also the host's, for the tests): with
// h = (t[M-1] - t[0]) / (M - 1) in double, every knot within
// tol = 2^-18 h + 2^-21 max(|t[0]|, |t[M-1]|) of t[0] + m h (the second term:
// four float32 half-ulps of the largest knot, so that a float32 linspace grid,
// or one nudged by an ulp, still counts). What that guarantees:
//  - the interval is exactly find_interval's: the guess floor((x - t0) / h)
//    is corrected against the knots t[g], t[g+1] (one step either way),
//    and should it still miss (it cannot for M < 2^16 under the tolerance,
//    but nothing depends on that) find_interval decides. So k = 0 and x on
//    or next to a knot take the same interval as the search, bit for bit.
//  - the values are the B-spline bases of the knots t[g] + (m - g) h
//    (uniform through the interval's actual left knot), each at most 2 tol
//    from the real knot; a basis of order k >= 1 moves by at most about
//    1 x (knot shift / h) (measured <= 1.0 for k = 1, 0.33 for k = 5), so by
//    at most 2 (2^-18 + 2^-21 R), R = max |t| / h, against TF32's 2^-11
//    relative rounding of the same values (R = 35 for pykan's G = 60 grid on
//    [-1, 1]: 2^-14.8). The 2^-21 R part is of the order of the general
//    builder's own rounding of (x - t) differences (2^-24 R relative).
// NaN / inf knots, h not finite and positive, or 1 / h not a normal float
// (grids spanning more than about 1e38 per interval) fail the check.
constexpr double kUniformTol = 1.0 / (1 << 18), kUniformUlps = 1.0 / (1 << 21);

struct alignas(16) GridInfo {
  float t0, t1;  // first and last knot
  float inv_h;   // (M - 1) / (t1 - t0), rounded to float
  int uniform;   // 1: the fast path builds this input's items
};

__host__ __device__ inline GridInfo grid_info(const float* t, int64_t M) {
  GridInfo gi{t[0], t[M - 1], 0.f, 0};
  const double t0 = t[0], t1 = t[M - 1], h = (t1 - t0) / double(M - 1);
  if (!(h > 0.0 && h <= 3.0e38)) return gi;
  const double tol = kUniformTol * h + kUniformUlps * fmax(fabs(t0), fabs(t1));
  for (int64_t m = 1; m < M - 1; ++m)
    if (!(fabs(double(t[m]) - (t0 + double(m) * h)) <= tol)) return gi;
  gi.inv_h = float(1.0 / h);
  // 1 / h normal: a subnormal one would read as 0 under flush-to-zero
  gi.uniform = gi.inv_h >= 1.17549435e-38f && gi.inv_h <= 3.0e38f ? 1 : 0;
  return gi;
}

// op_bytes: the operand's element size (4: TF32, 2: bf16 / half).
inline size_t ws_forward_w_bytes(int64_t in, int64_t M, int k, int base, int64_t out, int op_bytes = 4) {
  const ChunkMap cm(in, M, k, base != kBaseZero);
  return size_t(cm.chunks) * size_t(ceil_div(out, kBN)) * (op_bytes == 4 ? kTileBytes : kTileBytes / 2);
}

// The W images, then one GridInfo per input (16-byte aligned: the images are
// whole 32 KB or 16 KB tiles).
inline size_t ws_forward_workspace_bytes(int64_t in, int64_t M, int k, int base, int64_t out, int op_bytes = 4) {
  return ws_forward_w_bytes(in, M, k, base, out, op_bytes) + size_t(in) * sizeof(GridInfo);
}

// The uniform-grid window of x (design T item 3), for x not NaN: false when
// x is outside [t0, t1); else first = g - K and N[r] = basis g - K + r
// (r = 0..K) on interval g, where u = (x - t[g]) / h in [0, 1) and the
// Cox-de Boor step N_r <- N_{r-1} (x - t_l) / (t_r - t_l) + ... has
// t_r - t_l = j h, x - t_l = (u + j - 1 - r) h and t_r - x = (r + 1 - u) h:
// K FFMAs per value and order with the constant 1 / j, no division, no knot
// beyond t[g], t[g+1]. Bases g - K + r below 0 or from nb on do not exist
// (put_window drops them).
template <int K>
__device__ __forceinline__ bool uniform_window(const GridInfo& gi, const float* __restrict__ t, int64_t M, float xv,
                                               float (&N)[K + 1], int& first) {
  if (!(xv >= gi.t0 && xv < gi.t1)) return false;
  const int last = int(M) - 2;
  // the guess, clamped before the conversion: x - t0 overflows to inf on
  // grids spanning most of the float range, and converting inf to int is
  // undefined in C++ (the host gives INT_MIN)
  const float gf = (xv - gi.t0) * gi.inv_h;
  int g = gf < float(last) ? int(gf) : last;
  float a = t[g], b = t[g + 1];
  if (a > xv) {  // g >= 1 here: t[0] <= x
    --g;
    b = a;
    a = t[g];
  } else if (b <= xv) {  // g <= last - 1 here: x < t[M-1]
    ++g;
    a = b;
    b = t[g + 1];
  }
  if (!(a <= xv && xv < b)) {  // the guess was off by more than one
    g = int(find_interval<float>(t, M, xv));
    a = t[g];
  }
  const float u = (xv - a) * gi.inv_h;
  N[0] = 1.f;
#pragma unroll
  for (int j = 1; j <= K; ++j) {
    const float inv_j = 1.f / float(j);
    float saved = 0.f;
#pragma unroll
    for (int r = 0; r < j; ++r) {
      const float temp = N[r] * inv_j;
      N[r] = fmaf(float(r + 1) - u, temp, saved);
      saved = (u + float(j - 1 - r)) * temp;
    }
    N[j] = saved;
  }
  first = g - K;
  return true;
}

// The window of x on any grid, for x not NaN: false when x is outside
// [t[0], t[M-1]); else first = g - K and N[r] = basis g - K + r (r = 0..K)
// on interval g = find_interval. The triangle is local_bases' own
// (cox_de_boor_step on the same local knots), so the bases are its bits;
// what this skips is local_bases' clamp of the window to [0, G-1] and the
// selects that move the values into it (put_window drops the bases that do
// not exist instead), and the stand-in knot rule where the window's 2K+2
// knots all lie inside t (the same values: extended_knot returns t[idx]
// there).
template <int K>
__device__ __forceinline__ bool general_window(const float* __restrict__ t, int64_t M, float xv, float (&N)[K + 1],
                                               int& first) {
  const int64_t g64 = find_interval<float>(t, M, xv);
  if (g64 < 0) return false;
  const int g = int(g64);  // M < 2^31 (ChunkMap's int columns)
  float u[2 * K + 2];
  if (g >= K && g + K + 1 <= int(M) - 1) {
#pragma unroll
    for (int q = 0; q <= 2 * K + 1; ++q) u[q] = t[g - K + q];
  } else {
#pragma unroll
    for (int q = 0; q <= 2 * K + 1; ++q) u[q] = extended_knot<float>(t, M, g - K + q);
  }
  N[0] = 1.f;
#pragma unroll
  for (int j = 1; j <= K; ++j) cox_de_boor_step<float>(u, K, j, xv, N);
  first = g - K;
  return true;
}

// v[r], the value of basis first + r (r = 0..K), into the item at column
// q0 of the row, whose column q is basis g0 + q (q < per). Bases below 0,
// from nb on or past the item are not written. A window wholly inside (the
// usual case) is written without a guard per value. Row: an OperandRow, or
// any accessor whose [q] is the item's column q (grad W's transposed rows);
// the values are rounded to the row's element type (TF32, bf16 or half).
template <int K, typename Row>
__device__ __forceinline__ void put_window(const Row& row, int q0, int first, const float (&v)[K + 1], int g0,
                                           int per, int nb) {
  using Op = std::remove_reference_t<decltype(row[0])>;
  const int c0 = first - g0;
  if (c0 >= 0 && c0 + K < per && first + K < nb) {  // (g0 >= 0, so first >= 0)
#pragma unroll
    for (int r = 0; r <= K; ++r) row[q0 + c0 + r] = Mma<Op>::op(v[r]);
  } else {
#pragma unroll
    for (int r = 0; r <= K; ++r)
      if (first + r >= 0 && first + r < nb && c0 + r >= 0 && c0 + r < per) row[q0 + c0 + r] = Mma<Op>::op(v[r]);
  }
}

// The producer's A tile of chunk c for batch rows n0.. (128 x 64 in the
// operand layout of Mma<T>::Op at `tile`): producer thread t builds row t.
// The row's 64 columns are first zeroed with 16-byte stores (sixteen for
// TF32, eight for 16-bit: a core-matrix row is 16 contiguous bytes), then each of its input
// slots gets only its nonzero columns: the k+1 bases of x's window that lie
// in the slot, and b(x) in the base column; a NaN x makes the slot's columns
// NaN (the forward's NaN policy). Rows past N and slots past `in` stay zero,
// and so does the chunk's tail padding. Inputs whose grid the fold flagged
// uniform get their window from uniform_window, the others from
// general_window. The values are tc::build_a_tile_with's (the same functions
// of x and the knots, the same TF32 rounding; the general builder's bit for
// bit), with no index division per item and no store per zero column.
// x is read as T and widened to float (16-bit storage).
template <typename T, int K>
__device__ __forceinline__ void build_a_rows(unsigned char* tile, const T* __restrict__ x,
                                             const float* __restrict__ grid, int64_t N, int64_t in, int64_t M,
                                             int base, const GridInfo* __restrict__ info, const ChunkMap& cm,
                                             int64_t c, int64_t n0, int t) {
  static_assert(kBM == 128, "one row of the A tile per producer thread");
  using Op = typename Mma<T>::Op;
  const OperandRowT<Op> row = operand_row<Op>(tile, t);
#pragma unroll
  for (int a = 0; a < int(OpLayout<Op>::kSbo / 128); ++a)
    *reinterpret_cast<float4*>(row.p + a * kLbo) = make_float4(0.f, 0.f, 0.f, 0.f);
  const int64_t n = n0 + t;
  if (n >= N) return;
  int64_t i0;
  int g0;
  cm.locate(c, i0, g0);
  const int slots = int(i0 + cm.slots <= in ? cm.slots : in - i0);
  const int per = cm.per, nb = cm.nb, bcol = nb - g0;  // bcol: the base column's place in a slot, if < per
  const bool put_base = base != kBaseZero && bcol >= 0 && bcol < per;
  // x, the knot row and the GridInfo of slot ii's input, advanced per slot
  const T* xp = x + n * in + i0;
  const float* ti = grid + i0 * M;
  const GridInfo* ip = info + i0;
  for (int ii = 0, q0 = 0; ii < slots; ++ii, q0 += per, ++xp, ti += M, ++ip) {
    const float xv = to_float(*xp);
    if (xv != xv) {
      for (int q = 0; q < per; ++q) row[q0 + q] = Mma<T>::op(NAN);
      continue;
    }
    const GridInfo gi = *ip;
    float v[K + 1];
    int first;
    bool inside;
    if (gi.uniform)
      inside = uniform_window<K>(gi, ti, M, xv, v, first);
    else
      inside = general_window<K>(ti, M, xv, v, first);
    if (inside) put_window<K>(row, q0, first, v, g0, per, nb);
    if (put_base) row[q0 + bcol] = Mma<T>::op(base_value<float>(base, xv));
  }
}

// Deliberate protocol faults, for the emulation tests only (they show that
// the tests and the emulator catch them): the consumers skip the wait on
// full (a race), or never arrive on empty (a deadlock).
enum : int { kFaultNone = 0, kFaultSkipFullWait = 1, kFaultNoEmptyArrive = 2 };

// The mbarrier ring of S stages of the warp-specialised kernels (this
// forward, grad W in kan_linear_tc_v2_gw_ws.cuh, grad x in
// kan_linear_tc_v2_gx_ws.cuh): per stage s, full[s] completes when the
// producer's arrivals (here and in grad W: thread 0's expect_tx and the 128
// builders', 129; grad x: thread 0's only) and the stage's bulk copies'
// transaction bytes are in, and empty[s] when the 256 consumer threads have
// released it. Step u of a block (counted in every role alike) uses stage
// u % S in round u / S: the producer waits for the end of empty's phase of
// the previous round (parity (round & 1) ^ 1, true at once for round 0 on a
// fresh barrier), the consumers for full's phase of this round (parity
// round & 1).
//
// The consumers keep one wgmma group in flight (consumer_step): step u's
// wgmmas are issued and committed, then wait_group 1 retires step u - 1's,
// and only then is stage u - 1 released; consumer_finish retires the last
// group and releases its stage. So the tensor core has a step's wgmmas
// queued while the previous step's complete, instead of idling between
// steps. Any S >= 2 works: the stage of step u + 1 last held step
// u + 1 - S, released during step u + 2 - S <= u, so before the consumers
// wait for step u + 1 (no wait on themselves).
template <int S>
struct RingT {
  static_assert(S >= 2 && (S & (S - 1)) == 0, "the step counter may wrap: S must divide 2^32");
  static constexpr int kS = S;
  uint64_t* full;
  uint64_t* empty;  // full + S
  // Thread 0 initialises; then the only block-wide barrier, where the roles part.
  __device__ __forceinline__ void init(uint32_t full_arrivals = 128 + 1) const {
    if (threadIdx.x == 0)
      for (int s = 0; s < S; ++s) {
        hop::mbar_init(&full[s], full_arrivals);
        hop::mbar_init(&empty[s], kConsumerThreads);
      }
    __syncthreads();
  }
  __device__ __forceinline__ static int stage(uint32_t u) { return int(u % S); }
  __device__ __forceinline__ void producer_wait(uint32_t u) const {
    hop::mbar_wait(&empty[stage(u)], ((u / S) & 1) ^ 1);
  }
  __device__ __forceinline__ void consumer_wait(uint32_t u) const {
    hop::mbar_wait(&full[stage(u)], (u / S) & 1);
  }
  // The producer's tail: it leaves only once the consumers have released
  // every stage, so that no bulk copy or arrival of its warpgroup is still
  // pending when it exits.
  __device__ __forceinline__ void producer_drain(uint32_t u) const {
    for (int i = 0; i < S; ++i) producer_wait(u + uint32_t(i));
  }
  // A consumer's step u (`first`: the first of its accumulation, with no
  // group in flight before it) on operands at a_addr / b_addr of stage(u).
  template <typename Op, int FAULT>
  __device__ __forceinline__ void consumer_step(float (&acc)[64], uint32_t u, bool first, uint32_t a_addr,
                                                uint32_t b_addr) const {
    if (FAULT != kFaultSkipFullWait) consumer_wait(u);
    chunk_mma_issue<Op>(acc, a_addr, b_addr);
    hop::wgmma_wait<1>();  // step u - 1's wgmmas have read their stage
    if (!first && FAULT != kFaultNoEmptyArrive) hop::mbar_arrive(&empty[stage(u - 1)]);
  }
  // After the accumulation's last step (u: the count past it; `any`: there
  // was one): the accumulators complete, the last stage released.
  template <int FAULT>
  __device__ __forceinline__ void consumer_finish(uint32_t u, bool any) const {
    hop::wgmma_wait<0>();
    if (any && FAULT != kFaultNoEmptyArrive) hop::mbar_arrive(&empty[stage(u - 1)]);
  }
};
using Ring = RingT<kStages>;
template <typename Op>
using RingOf = RingT<ring_stages<Op>()>;

// Stage bytes for operand type Op: an A tile and a W tile.
template <typename Op>
constexpr uint32_t stage_bytes() {
  return 2 * OpLayout<Op>::kTileBytes;
}
static_assert(stage_bytes<float>() == kStageBytes, "TF32 stage");
template <typename Op = float>
constexpr size_t ws_forward_smem_bytes() {
  return ring_stages<Op>() * (size_t(stage_bytes<Op>()) + 2 * sizeof(uint64_t));
}

// The fold: one 256-thread block per (chunk, column tile), grid-stride.
// The blocks of column tile 0 also write the GridInfo of their chunk's
// inputs (one thread per input, at the input's first chunk). T: the
// weights' storage type; the images hold Mma<T>::Op (TF32-rounded float, or
// the 16-bit values as they are).
template <typename T>
__global__ void __launch_bounds__(tc::kThreads)
tc2_fold_w_kernel(const T* __restrict__ Wb, const T* __restrict__ Wc, const float* __restrict__ grid, int64_t in,
                  int64_t M, int k, int base, int64_t out, unsigned char* __restrict__ w_op,
                  GridInfo* __restrict__ info) {
  using Op = typename Mma<T>::Op;
  __shared__ int64_t s_rows[kBK];
  const ChunkMap cm(in, M, k, base != kBaseZero);
  const int64_t col_tiles = ceil_div(out, kBN);
  for (int64_t c = blockIdx.x; c < cm.chunks; c += gridDim.x) {
    if (blockIdx.y == 0) {
      int64_t i0;
      int g0;
      cm.locate(c, i0, g0);
      const int64_t i = i0 + threadIdx.x;
      if (g0 == 0 && int(threadIdx.x) < cm.slots && i < in) info[i] = grid_info(grid + i * M, M);
    }
    __syncthreads();  // s_rows of the previous chunk is no longer read
    tc::chunk_rows(s_rows, cm, c, in, out);
    __syncthreads();
    for (int64_t ct = blockIdx.y; ct < col_tiles; ct += gridDim.y) {
      unsigned char* img = w_op + w_image_byte_offset<Op>(ct, c, cm.chunks);
      tc::load_w_tile_with<T, kBN>([=](int q, int jj, Op v) { operand_row<Op>(img, jj)[q] = v; }, Wb, Wc, s_rows, out,
                                   ct * kBN);
    }
  }
}

// T: the storage type of x, W and y (float: TF32 operands; __nv_bfloat16 or
// __half: 16-bit operands, k16 wgmmas, 16 KB tiles, the same ring).
template <typename T, int K, int FAULT = kFaultNone>
__global__ void __launch_bounds__(kWsThreads, 1)
tc2_ws_forward_kernel(const T* __restrict__ x, const float* __restrict__ grid, int64_t N, int64_t in, int64_t M,
                      int base, const unsigned char* __restrict__ w_op, const GridInfo* __restrict__ info, int64_t out,
                      T* __restrict__ y) {
#if KANEXT_HOPPER_WGMMA || defined(KANEXT_CUDA_EMULATION)
  using Op = typename Mma<T>::Op;
  constexpr uint32_t tile_bytes = OpLayout<Op>::kTileBytes, stage = stage_bytes<Op>();
  using R = RingOf<Op>;
  KANEXT_DYNAMIC_SMEM(smem);
  uint64_t* full = reinterpret_cast<uint64_t*>(smem + R::kS * stage);
  const R ring{full, full + R::kS};
  const int wg = threadIdx.x / 128, t = threadIdx.x % 128;
  const ChunkMap cm(in, M, K, base != kBaseZero);
  const int64_t row_tiles = ceil_div(N, kBM), col_tiles = ceil_div(out, kBN);
  ring.init();
  uint32_t u = 0;  // chunks of this block through the ring so far, the same count in every role

  for (int64_t ct = blockIdx.y; ct < col_tiles; ct += gridDim.y) {
    const int64_t j0 = ct * kBN;
    for (int64_t rt = blockIdx.x; rt < row_tiles; rt += gridDim.x) {
      const int64_t n0 = rt * kBM;
      if (wg == 0) {  // producer
        for (int64_t c = 0; c < cm.chunks; ++c, ++u) {
          const int s = R::stage(u);
          ring.producer_wait(u);
          unsigned char* As = smem + s * stage;
          if (t == 0) {
            hop::mbar_arrive_expect_tx(&ring.full[s], tile_bytes);
            hop::bulk_copy_g2s(As + tile_bytes, w_op + w_image_byte_offset<Op>(ct, c, cm.chunks), tile_bytes,
                               &ring.full[s]);
          }
          build_a_rows<T, K>(As, x, grid, N, in, M, base, info, cm, c, n0, t);
          hop::fence_proxy_async();  // the A stores, before the tensor core reads them
          hop::mbar_arrive(&ring.full[s]);
        }
      } else {  // consumers
        const int g = wg - 1;
        float acc[64];
#pragma unroll
        for (int e = 0; e < 64; ++e) acc[e] = 0.f;
        for (int64_t c = 0; c < cm.chunks; ++c, ++u) {
          const int s = R::stage(u);
          const uint32_t a_addr = hop::smem_u32(smem + s * stage) + uint32_t(g) * (64 / 8) * OpLayout<Op>::kSbo,
                         b_addr = hop::smem_u32(smem + s * stage + tile_bytes);
          ring.template consumer_step<Op, FAULT>(acc, u, c == 0, a_addr, b_addr);
        }
        ring.template consumer_finish<FAULT>(u, cm.chunks > 0);
        store_acc(acc, t, n0 + 64 * g, j0, N, out, y);
      }
    }
  }
  if (wg == 0) ring.producer_drain(u);
#else
  __trap();  // launched only on sm_90 from an sm_90a build (launch_kan_linear_tc_v2_forward)
#endif
}

// The fold into w_op (ws_forward_workspace_bytes(..., sizeof(Mma<T>::Op)),
// 16-byte aligned: the W images, then the GridInfo of every input), then the
// main kernel. T: float, __nv_bfloat16 or __half.
template <typename T, int FAULT = kFaultNone>
inline cudaError_t launch_forward_ws(const T* x, const float* grid, int64_t N, int64_t in, int64_t M, int k, int base,
                                     const T* Wb, const T* Wc, int64_t out, void* w_op_, T* y, cudaStream_t stream) {
  using Op = typename Mma<T>::Op;
  if (N == 0 || out == 0) return cudaSuccess;
  unsigned char* w_op = static_cast<unsigned char*>(w_op_);
  const ChunkMap cm(in, M, k, base != kBaseZero);
  const int64_t col_tiles = ceil_div(out, kBN);
  GridInfo* info = reinterpret_cast<GridInfo*>(w_op + ws_forward_w_bytes(in, M, k, base, out, int(sizeof(Op))));
  if (cm.chunks > 0) {
    KANEXT_LAUNCH(dim3(grid_x(cm.chunks), grid_yz(col_tiles)), tc::kThreads, 0, stream, tc2_fold_w_kernel<T>)(
        Wb, Wc, grid, in, M, k, base, out, w_op, info);
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;
  }
  return dispatch_order(k, [&](auto kc) -> cudaError_t {
    constexpr int K = decltype(kc)::value;
    constexpr size_t smem = ws_forward_smem_bytes<Op>();
    const cudaError_t e = tc::allow_smem(tc2_ws_forward_kernel<T, K, FAULT>, smem);
    if (e != cudaSuccess) return e;
    const dim3 grid_dim(grid_x(ceil_div(N, kBM)), grid_yz(col_tiles));
    KANEXT_LAUNCH(grid_dim, kWsThreads, smem, stream, tc2_ws_forward_kernel<T, K, FAULT>)(
        x, grid, N, in, M, base, w_op, info, out, y);
    return cudaGetLastError();
  });
}

// launch_forward_ws, launch_grad_x_ws (kan_linear_tc_v2_gx_ws.cuh) for
// bfloat16 / float16 storage (dtype: TcDtype), in kan_linear_tc_v2_f16.cu.
cudaError_t launch_forward_ws_16bit(int dtype, const void* x, const float* grid, int64_t N, int64_t in, int64_t M,
                                    int k, int base, const void* Wb, const void* Wc, int64_t out, void* w_op, void* y,
                                    cudaStream_t stream);
cudaError_t launch_grad_x_ws_16bit(int dtype, const void* gy, const void* x, const float* grid, int64_t N, int64_t in,
                                   int64_t M, int k, int base, const void* Wb, const void* Wc, int64_t out, void* gx,
                                   void* workspace, cudaStream_t stream);
// And launch_grad_w_ws (kan_linear_tc_v2_gw_ws.cuh).
cudaError_t launch_grad_w_ws_16bit(int dtype, const void* gy, const void* x, const float* grid, int64_t N, int64_t in,
                                   int64_t M, int k, int base, int64_t out, void* gWb, void* gWc, void* workspace,
                                   cudaStream_t stream);

}  // namespace tc2
}  // namespace cuda
}  // namespace kanext
