// The cache of large output buffers (output_pool.h says why). One process-
// wide pool behind a mutex: allocations come from the ops' calls, frees from
// whichever thread drops the last reference to a tensor.
#include "output_pool.h"

#include <ATen/EmptyTensor.h>
#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

#include <cstdlib>
#include <deque>
#include <mutex>
#include <new>

#if defined(__linux__)
#include <pthread.h>
#endif

namespace kanext {
namespace cpu {
namespace {

constexpr size_t kPage = 4096;
constexpr size_t kDefaultLimitMiB = 1024;

struct Block {
  void* ptr;
  size_t bytes;      // the buffer's size (the request rounded up to whole pages)
  size_t requested;  // what the tensor asked for (reported to the profiler)
};

// (No transparent huge pages: madvise(MADV_HUGEPAGE) made the first fault
// of a fresh block stall for up to 1.5 s in the kernel's compaction on a
// fragmented machine; bench/RESULTS.md, sixth pass.)
void* map_buffer(size_t bytes) {
  void* p = nullptr;
  return posix_memalign(&p, 64, bytes) == 0 ? p : nullptr;
}

class Pool {
 public:
  Pool() {
    size_t mib = kDefaultLimitMiB;
    if (const char* env = std::getenv("KANEXT_CPU_CACHE_MB")) {
      char* end = nullptr;
      const unsigned long long v = std::strtoull(env, &end, 10);
      if (end != env && *end == '\0') mib = static_cast<size_t>(v);
    }
    limit_ = mib << 20;
#if defined(__linux__)
    // a fork while another thread holds the lock must not leave the child's
    // copy locked (DataLoader workers fork)
    pthread_atfork([] { instance().mu_.lock(); }, [] { instance().mu_.unlock(); },
                   [] { instance().mu_.unlock(); });
#endif
  }

  // Never destroyed: tensors may be freed after static destructors ran.
  static Pool& instance() {
    static Pool* p = new Pool();
    return *p;
  }

  bool on() {
    std::lock_guard<std::mutex> g(mu_);
    return limit_ > 0;
  }

  Block* take(size_t bytes) {
    {
      std::lock_guard<std::mutex> g(mu_);
      for (auto it = free_.rbegin(); it != free_.rend(); ++it)  // newest first: likeliest still in cache
        if ((*it)->bytes == bytes) {
          Block* b = *it;
          free_.erase(std::next(it).base());
          cached_ -= bytes;
          ++hits_;
          live_ += bytes;
          return b;
        }
      ++misses_;
    }
    void* p = map_buffer(bytes);
    if (p == nullptr) {
      empty();  // give the cached buffers back and try once more
      p = map_buffer(bytes);
      if (p == nullptr) return nullptr;
    }
    std::lock_guard<std::mutex> g(mu_);
    live_ += bytes;
    return new Block{p, bytes, bytes};
  }

  void give_back(Block* b) {
    std::deque<Block*> drop;
    {
      std::lock_guard<std::mutex> g(mu_);
      live_ -= b->bytes;
      if (b->bytes > limit_) {
        drop.push_back(b);
      } else {
        while (cached_ + b->bytes > limit_) {  // oldest first
          drop.push_back(free_.front());
          cached_ -= free_.front()->bytes;
          free_.pop_front();
        }
        free_.push_back(b);
        cached_ += b->bytes;
      }
    }
    release(drop);
  }

  void empty() {
    std::deque<Block*> drop;
    {
      std::lock_guard<std::mutex> g(mu_);
      drop.swap(free_);
      cached_ = 0;
    }
    release(drop);
  }

  void set_limit(size_t bytes) {
    {
      std::lock_guard<std::mutex> g(mu_);
      limit_ = bytes;
    }
    empty();
  }

  PoolInfo info() {
    std::lock_guard<std::mutex> g(mu_);
    return {cached_, free_.size(), limit_, hits_, misses_};
  }

  size_t live() {
    std::lock_guard<std::mutex> g(mu_);
    return live_;
  }

 private:
  static void release(std::deque<Block*>& blocks) {
    for (Block* b : blocks) {
      std::free(b->ptr);
      delete b;
    }
  }

  std::mutex mu_;
  std::deque<Block*> free_;  // oldest at the front
  size_t cached_ = 0, limit_ = 0, live_ = 0;
  uint64_t hits_ = 0, misses_ = 0;
};

void report(void* ptr, int64_t delta) {
  if (c10::memoryProfilingEnabled()) {
    Pool& p = Pool::instance();
    const size_t live = p.live();
    c10::reportMemoryUsageToProfiler(ptr, delta, live, live + p.info().cached_bytes, c10::Device(c10::kCPU));
  }
}

void delete_block(void* ctx) {
  Block* b = static_cast<Block*>(ctx);
  report(b->ptr, -static_cast<int64_t>(b->requested));
  Pool::instance().give_back(b);
}

struct PoolAllocator final : c10::Allocator {
  c10::DataPtr allocate(size_t n) override {
    Pool& pool = Pool::instance();
    if (n < kPoolMinBytes || !pool.on()) return c10::GetCPUAllocator()->allocate(n);
    const size_t bytes = (n + kPage - 1) / kPage * kPage;
    Block* b = pool.take(bytes);
    TORCH_CHECK(b != nullptr, "kanext: out of memory allocating ", n, " bytes for a CPU output");
    b->requested = n;
    report(b->ptr, static_cast<int64_t>(n));
    return {b->ptr, b, &delete_block, c10::Device(c10::kCPU)};
  }
  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }
};

PoolAllocator& allocator() {
  static PoolAllocator* a = new PoolAllocator();
  return *a;
}

}  // namespace

at::Tensor pooled_empty(at::IntArrayRef sizes, const at::TensorOptions& options) {
  TORCH_CHECK(options.device().is_cpu(), "kanext: pooled_empty is for CPU tensors, got ", options.device());
  int64_t n = 1;
  for (int64_t s : sizes) n *= s;
  const size_t bytes = static_cast<size_t>(n) * c10::elementSize(c10::typeMetaToScalarType(options.dtype()));
  if (bytes < kPoolMinBytes || !Pool::instance().on()) return at::empty(sizes, options);
  return at::Tensor(at::detail::empty_generic(sizes, &allocator(), c10::DispatchKeySet(c10::DispatchKey::CPU),
                                              c10::typeMetaToScalarType(options.dtype()),
                                              c10::MemoryFormat::Contiguous));
}

PoolInfo pool_info() { return Pool::instance().info(); }
void pool_empty() { Pool::instance().empty(); }
void pool_set_limit(size_t bytes) { Pool::instance().set_limit(bytes); }

}  // namespace cpu
}  // namespace kanext
