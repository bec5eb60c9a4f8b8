"""The CPU output cache: large buffers of kanext's CPU ops, kept for reuse.

torch's CPU allocator passes every allocation to malloc, and glibc serves
blocks above its mmap threshold (at most 32 MiB) with a fresh ``mmap`` each
time: page faults and a zeroing of the whole block by the kernel, on every
call. A training step that creates and frees a large ``coef.grad`` (a
1024 -> 1024 layer, a 256 -> 256 layer at G = 100 in float64) paid 10-20% of
its time there (bench/RESULTS.md, "sixteenth pass").

So the outputs of kanext's CPU ops (layer outputs, grad x, the weight
gradients; not the small ones under 1 MiB) come from a cache: when such a
tensor is freed, its buffer is kept and handed to the next request of the same
size (rounded up to 4 KiB), already mapped. They are ordinary CPU tensors
(resizable, shareable, picklable); only their memory comes from the cache.

At most ``limit`` bytes of *free* buffers are kept (1 GiB by default, the
oldest evicted first); a buffer larger than the limit is freed at once. Memory
held by tensors in use is not counted, and is never held back. Set
``KANEXT_CPU_CACHE_MB`` before import (``0`` turns the cache off), or call
:func:`set_cpu_cache_limit`; :func:`empty_cpu_cache` frees what is cached
(what torch.cuda.empty_cache does for the CUDA caching allocator). The torch
profiler (``profile_memory=True``) records these allocations and frees as it
records torch's own. CUDA tensors are not affected.
"""

from __future__ import annotations

from typing import NamedTuple

from . import _C

__all__ = ["CPUCacheInfo", "cpu_cache_info", "empty_cpu_cache", "set_cpu_cache_limit"]


class CPUCacheInfo(NamedTuple):
    cached_bytes: int    # free buffers held for reuse
    cached_buffers: int
    limit_bytes: int     # the most that may be held (0: the cache is off)
    hits: int            # requests served from the cache since start
    misses: int          # requests that allocated (first use, or no buffer of that size free)


def cpu_cache_info() -> CPUCacheInfo:
    """What the CPU output cache holds now, and its hits and misses so far."""
    return CPUCacheInfo(*_C.cpu_cache_info())


def empty_cpu_cache() -> None:
    """Free every buffer the cache holds (tensors in use keep theirs)."""
    _C.empty_cpu_cache()


def set_cpu_cache_limit(limit_bytes: int) -> None:
    """Cap the free buffers the cache may hold at ``limit_bytes`` (0 turns it
    off: later outputs come from torch's allocator). Empties the cache."""
    if isinstance(limit_bytes, bool) or not isinstance(limit_bytes, int):
        raise TypeError(f"set_cpu_cache_limit: limit_bytes must be an int, got {type(limit_bytes).__name__}")
    if limit_bytes < 0 or limit_bytes >= 2**63:
        raise ValueError(f"set_cpu_cache_limit: limit_bytes must be in [0, 2**63), got {limit_bytes}")
    _C.set_cpu_cache_limit(limit_bytes)
