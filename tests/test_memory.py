"""The CPU output cache (csrc/cpu/output_pool.cpp, kanext/memory.py).

Large outputs of the CPU ops come from a cache of freed buffers. What must
hold: a reused buffer's old contents never show (every op writes all of its
output), the values are the same bits with the cache on and off, the limit is
kept, the tensors behave as any CPU tensor, the profiler still sees their
memory, and threads and forks are safe.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

import kanext
from kanext import ops

from helpers import assert_bitwise_equal, grid_of_kind, randn, sample_x

K_OPS = torch.ops.kanext
MIB = 1 << 20


@pytest.fixture
def cache_limit():
    """Restores the default limit (and empties the cache) after the test."""
    old = kanext.cpu_cache_info().limit_bytes
    yield
    kanext.set_cpu_cache_limit(old)


def _layer_case(N, in_f, out, G, k=3, dtype=torch.float32, seed=0):
    grid = grid_of_kind("nonuniform", in_f, G, k, dtype, seed=seed)
    x = sample_x(N, grid, seed=seed + 1)
    x[3, 2] = float("nan")  # the NaN policy's rows too
    Wb = randn(in_f, out, seed=seed + 2, dtype=dtype)
    coef = randn(in_f, out, G + k, seed=seed + 3, dtype=dtype)
    scale = randn(in_f, out, seed=seed + 4, dtype=dtype)
    gy = randn(N, out, seed=seed + 5, dtype=dtype)
    return x, grid, Wb, coef, scale, gy


def _poison(outs):
    for t in outs:
        if t.numel() * t.element_size() >= MIB:
            t.fill_(float("nan"))


def _each_case():
    """(name, thunk returning a tuple of output tensors, threads): every op
    whose outputs come from the cache, at sizes of 1 MiB and more."""
    bid = ops.BASE_IDS["silu"]
    x, grid, Wb, coef, scale, gy = _layer_case(2048, 160, 160, 10)
    Wc = K_OPS.fold_spline_weights(coef, scale)
    gWc = randn(*Wc.shape, seed=9, dtype=Wc.dtype)
    yield "fused forward", lambda: (K_OPS.kan_linear_fused(x, grid, 3, bid, Wb, coef, scale),), 1
    yield "fused backward", lambda: tuple(K_OPS.kan_linear_fused_backward(gy, x, grid, 3, bid, Wb, coef, scale,
                                                                           True, True)), 1
    yield "forward", lambda: (K_OPS.kan_linear_forward(x, grid, 3, bid, Wb, Wc),), 1
    yield "backward", lambda: tuple(K_OPS.kan_linear_backward(gy, x, grid, 3, bid, Wb, Wc, True, True)), 1
    yield "fold", lambda: (K_OPS.fold_spline_weights(coef, scale),), 1
    yield "fold backward", lambda: tuple(K_OPS.fold_spline_weights_backward(gWc, coef, scale)), 1
    # the forward split by columns (2 threads, few rows against wide weights)
    xc, gridc, Wbc, coefc, scalec, _ = _layer_case(1024, 8, 1024, 20, dtype=torch.float64, seed=20)
    yield "fused forward by columns", lambda: (K_OPS.kan_linear_fused(xc, gridc, 3, bid, Wbc, coefc, scalec),), 2
    z = randn(4096, 128, seed=30, dtype=torch.float32)
    gz = randn(4096, 128, seed=31, dtype=torch.float32)
    sgrid = grid_of_kind("uniform", 128, 8, 3, torch.float32, seed=32)
    sc = randn(128, 11, seed=33, dtype=torch.float32)
    sb, ss = randn(128, seed=34, dtype=torch.float32), randn(128, seed=35, dtype=torch.float32)
    yield "spline activation", lambda: (K_OPS.spline_activation(z, sgrid, 3, bid, sc, sb, ss),), 1
    yield "spline activation backward", lambda: tuple(
        K_OPS.spline_activation_backward(gz, z, sgrid, 3, bid, sc, sb, ss, True, True)), 1
    gs = [randn(160, 160, seed=40 + i, dtype=torch.float32) for i in range(3)]
    yield "edge stats backward", lambda: tuple(K_OPS.edge_stats_backward(*gs, x, grid, 3, bid, Wb, Wc, True, True)), 1


CASES = list(_each_case())


@pytest.mark.parametrize("case", range(len(CASES)), ids=[c[0] for c in CASES])
def test_reused_buffers_never_show_old_values(case, cache_limit, restore_threads):
    """Each op's outputs with the cache off, then on: a first call fills the
    cache, its outputs are overwritten with NaN and dropped, and the next
    call (which gets those buffers back) gives the cache-off values bit for
    bit."""
    name, run, threads = CASES[case]
    torch.set_num_threads(threads)
    kanext.set_cpu_cache_limit(0)
    expected = [t.clone() for t in run()]
    kanext.set_cpu_cache_limit(1 << 30)
    outs = run()
    _poison(outs)
    del outs
    before = kanext.cpu_cache_info()
    assert before.cached_buffers >= 1, f"{name}: nothing was cached"
    got = run()
    after = kanext.cpu_cache_info()
    assert after.hits > before.hits, f"{name}: the second call did not reuse a cached buffer"
    for g, e in zip(got, expected):
        assert_bitwise_equal(g, e, f"{name}: cache on vs off")


def test_module_training_steps_reuse_and_match(cache_limit):
    """KANLinear forward + backward with zero_grad(set_to_none=True), the
    pattern that motivated the cache: after the first step the large grad
    coef and y come from the cache, and every step's values equal the
    cache-off run's."""
    torch.manual_seed(0)
    layer = kanext.KANLinear(200, 200, grid=30)
    x = torch.rand(1500, 200) * 2 - 1

    def steps():
        res = []
        for _ in range(3):
            for p in layer.parameters():
                p.grad = None
            y = layer(x)
            y.square().sum().backward()
            res.append((y.detach().clone(), layer.coef.grad.clone()))
            del y  # (else y's buffer is still held while the next step's y is made)
        return res

    kanext.set_cpu_cache_limit(0)
    off = steps()
    kanext.set_cpu_cache_limit(1 << 30)
    h0 = kanext.cpu_cache_info().hits
    on = steps()
    assert kanext.cpu_cache_info().hits - h0 >= 4  # y and grad coef of steps 2 and 3
    for (y1, g1), (y2, g2) in zip(off, on):
        assert_bitwise_equal(y2, y1, "y")
        assert_bitwise_equal(g2, g1, "grad coef")


def test_limit_is_kept_and_empty_frees(cache_limit):
    kanext.set_cpu_cache_limit(3 * MIB)
    info = kanext.cpu_cache_info()
    assert info.limit_bytes == 3 * MIB and info.cached_bytes == 0
    x = torch.rand(1024, 512)
    bid = ops.BASE_IDS["silu"]
    grid = grid_of_kind("uniform", 512, 5, 3, torch.float32)
    Wb, coef, scale = torch.randn(512, 300), torch.randn(512, 300, 8), torch.randn(512, 300)
    ys = [K_OPS.kan_linear_fused(x, grid, 3, bid, Wb, coef, scale) for _ in range(3)]  # 1.2 MB each
    del ys
    info = kanext.cpu_cache_info()
    assert info.cached_bytes <= 3 * MIB and info.cached_buffers == 2  # the oldest evicted
    big = K_OPS.fold_spline_weights(torch.randn(512, 300, 30), scale)  # 18 MB: over the limit
    del big
    assert kanext.cpu_cache_info().cached_buffers == 2  # freed at once, not kept
    kanext.empty_cpu_cache()
    assert kanext.cpu_cache_info().cached_bytes == 0
    kanext.set_cpu_cache_limit(0)
    assert kanext.cpu_cache_info().limit_bytes == 0


@pytest.mark.parametrize("bad, err", [(-1, ValueError), (2**63, ValueError), (1.5, TypeError), (True, TypeError),
                                      ("1", TypeError)])
def test_bad_limit_raises(bad, err, cache_limit):
    with pytest.raises(err, match="limit_bytes"):
        kanext.set_cpu_cache_limit(bad)


def test_env_var_turns_the_cache_off():
    code = "import kanext, torch; print(kanext.cpu_cache_info().limit_bytes)"
    for env, want in (("0", 0), ("16", 16 * MIB)):
        out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "KANEXT_CPU_CACHE_MB": env},
                             capture_output=True, text=True, check=True).stdout
        assert int(out.strip()) == want


def test_cached_tensors_behave_as_cpu_tensors(cache_limit, tmp_path):
    """Resize, share_memory_, numpy, pickle and torch.save on outputs that
    came from the cache."""
    kanext.set_cpu_cache_limit(1 << 30)
    coef, scale = torch.randn(300, 200, 8), torch.randn(300, 200)
    ref = (coef * scale[..., None]).permute(0, 2, 1).contiguous()
    fold = lambda: K_OPS.fold_spline_weights(coef, scale)  # 1.9 MB
    w = fold()
    assert torch.equal(w, ref) and w.untyped_storage().resizable()
    w.resize_(10, 100_000)  # grows: a new buffer through the cache's allocator
    w[:] = 1.0
    assert w.sum().item() == 10 * 100_000
    w.resize_(3)
    assert w.shape == (3,)
    w = fold()
    assert torch.equal(torch.from_numpy(w.numpy()), ref)
    assert torch.equal(pickle.loads(pickle.dumps(fold())), ref)
    torch.save(fold(), tmp_path / "w.pt")
    assert torch.equal(torch.load(tmp_path / "w.pt"), ref)
    w = fold()
    w.share_memory_()
    assert w.is_shared() and torch.equal(w, ref)
    del w
    assert torch.equal(fold(), ref)


def test_profiler_sees_the_memory(cache_limit):
    """profile_memory records the op's output allocation as the same number
    of bytes with the cache on as off (bench/memory.py relies on it)."""
    x = torch.rand(2048, 128)
    bid = ops.BASE_IDS["silu"]
    grid = grid_of_kind("uniform", 128, 5, 3, torch.float32)
    Wb, coef, scale = torch.randn(128, 256), torch.randn(128, 256, 8), torch.randn(128, 256)

    def recorded():
        K_OPS.kan_linear_fused(x, grid, 3, bid, Wb, coef, scale)  # (warm: the cache holds y's buffer)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
            y = K_OPS.kan_linear_fused(x, grid, 3, bid, Wb, coef, scale)
            del y
        ev = [e for e in prof.key_averages() if "kan_linear_fused" in e.key]
        return max(e.cpu_memory_usage for e in ev)

    kanext.set_cpu_cache_limit(0)
    off = recorded()
    kanext.set_cpu_cache_limit(1 << 30)
    on = recorded()
    assert off >= 2048 * 256 * 4 and on == off


def test_threads_share_the_cache(cache_limit):
    """Ops called from 4 Python threads at once, their outputs freed on other
    threads: every result equals the one-thread value."""
    kanext.set_cpu_cache_limit(64 * MIB)
    bid = ops.BASE_IDS["silu"]
    x, grid, Wb, coef, scale, _ = _layer_case(1024, 300, 300, 5)
    expected = K_OPS.kan_linear_fused(x, grid, 3, bid, Wb, coef, scale)

    def work(_):
        ys = [K_OPS.kan_linear_fused(x, grid, 3, bid, Wb, coef, scale) for _ in range(6)]
        return ys

    with ThreadPoolExecutor(4) as ex:
        results = list(ex.map(work, range(8)))
    for ys in results:
        for y in ys:
            assert_bitwise_equal(y, expected, "threads")


def _child(q):
    # (one thread, as DataLoader workers run: torch's OpenMP pool does not
    # survive a fork, and any parallel torch op hangs in the child without it)
    torch.set_num_threads(1)
    coef, scale = torch.ones(300, 200, 8), torch.full((300, 200), 2.0)
    q.put(float(K_OPS.fold_spline_weights(coef, scale).sum()))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_uses_the_cache(cache_limit):
    kanext.set_cpu_cache_limit(1 << 30)
    w = K_OPS.fold_spline_weights(torch.ones(300, 200, 8), torch.ones(300, 200))
    del w  # the parent's cache holds a buffer when it forks
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(q,))
    p.start()
    got = q.get(timeout=60)
    p.join(60)
    assert p.exitcode == 0 and got == 300 * 200 * 8 * 2.0
