"""kanext.set_backend / get_backend / use_backend (kanext/backend.py) and the
dtype rules around them that hold on every machine. The CUDA strategies
themselves are tested in tests/test_cuda_tc.py (GPU) and
tests/emu/test_emu_tc.py (host emulation)."""
from __future__ import annotations

import pytest
import torch

import kanext
from kanext import ops

from helpers import assert_bitwise_equal, make_grid, randn, sample_x


@pytest.fixture(autouse=True)
def restore_backend():
    old = kanext.get_backend()
    yield
    kanext.set_backend(old)


def test_set_get_and_context_manager():
    assert kanext.get_backend() == "auto"
    assert kanext.set_backend("local") == "auto"
    assert kanext.get_backend() == "local"
    with kanext.use_backend("tensor_core"):
        assert kanext.get_backend() == "tensor_core"
    assert kanext.get_backend() == "local"
    with pytest.raises(RuntimeError, match="boom"):
        with kanext.use_backend("auto"):
            assert kanext.get_backend() == "auto"
            raise RuntimeError("boom")
    assert kanext.get_backend() == "local", "use_backend must restore the previous strategy after an error"


def test_bad_names_and_codes_are_rejected():
    with pytest.raises(ValueError, match=r"expected one of \('auto', 'local', 'tensor_core', 'local_v2', 'tensor_core_v2'\), got 'cuda'"):
        kanext.set_backend("cuda")
    assert kanext.get_backend() == "auto"
    grid = make_grid(2, 5, 3, torch.float64)
    x, Wb, Wc = sample_x(4, grid, seed=1), randn(2, 3, seed=2), randn(2, 8, 3, seed=3)
    msg = "backend must be 0 .auto., 1 .local., 2 .tensor_core., 3 .local_v2. or 4 .tensor_core_v2., got"
    for bad in (7, -1):
        with pytest.raises(RuntimeError, match=f"{msg} {bad}"):
            torch.ops.kanext.kan_linear_forward(x, grid, 3, 2, Wb, Wc, bad)
        with pytest.raises(RuntimeError, match=f"{msg} {bad}"):
            torch.ops.kanext.kan_linear_backward(randn(4, 3, seed=4), x, grid, 3, 2, Wb, Wc, True, True, bad)


def test_the_strategy_is_an_op_argument_that_torch_compile_sees():
    # No process state in C++: the layer passes the current setting to the op,
    # and a compiled layer recompiles (a dynamo guard) when the setting changes.
    layer = kanext.KANLinear(3, 2, dtype=torch.float64)
    x = torch.rand(5, 3, dtype=torch.float64)
    # the layer's op: kan_linear_fused on the CPU (backend is argument 7),
    # kan_linear_forward elsewhere (argument 6)
    seen, ops_ = [], {torch.ops.kanext.kan_linear_forward: 6, torch.ops.kanext.kan_linear_fused: 7}
    pos = {**ops_, **{op.default: i for op, i in ops_.items()}}

    def record(gm, example_inputs):
        seen.append([n.args[pos[n.target]] if len(n.args) > pos[n.target] else n.kwargs.get("backend", 0)
                     for n in gm.graph.nodes if n.op == "call_function" and n.target in pos])
        return gm.forward

    torch._dynamo.reset()
    compiled = torch.compile(layer, backend=record, fullgraph=True)
    with torch.no_grad():
        y = compiled(x)
        with kanext.use_backend("tensor_core"):
            assert torch.equal(compiled(x), y)  # the CPU has one strategy
        with kanext.use_backend("local"):
            compiled(x)
        compiled(x)  # back to auto: a graph for it exists already
    torch._dynamo.reset()
    assert seen == [[0], [2], [1]], seen
    assert not hasattr(torch.ops.kanext, "_set_cuda_backend")


@pytest.mark.parametrize("dtype", (torch.float32, torch.float64))
def test_cpu_ignores_the_setting(dtype):
    grid = make_grid(4, 5, 3, dtype)
    x = sample_x(50, grid, seed=1)
    Wb, Wc = randn(4, 3, seed=2, dtype=dtype), randn(4, 8, 3, seed=3, dtype=dtype)
    gy = randn(50, 3, seed=4, dtype=dtype)
    outs = {}
    for name in kanext.backend.BACKENDS:
        with kanext.use_backend(name):
            outs[name] = (ops.kan_linear(x, grid, 3, "silu", Wb, Wc),
                          *ops.kan_linear_backward(gy, x, grid, 3, 2, Wb, Wc))
    for name in ("local", "tensor_core", "local_v2", "tensor_core_v2"):
        for a, b in zip(outs[name], outs["auto"]):
            assert_bitwise_equal(a, b, f"CPU result under backend {name!r}")


def test_cpu_16_bit_floats_run_the_float32_kernel_and_round_once():
    grid = make_grid(2, 5, 3, torch.float32)
    x = sample_x(5, grid, seed=1)
    Wb, Wc = randn(2, 3, seed=2, dtype=torch.float32), randn(2, 8, 3, seed=3, dtype=torch.float32)
    y = ops.kan_linear(x.bfloat16(), grid, 3, "silu", Wb.bfloat16(), Wc.bfloat16())
    want = ops.kan_linear(x.bfloat16().float(), grid, 3, "silu", Wb.bfloat16().float(), Wc.bfloat16().float())
    assert y.dtype == torch.bfloat16 and torch.equal(y, want.bfloat16())


def test_cpu_autocast_leaves_the_layer_in_float32():
    """The autocast rule is for CUDA; under CPU autocast the layer runs its
    float32 CPU kernel unchanged."""
    torch.manual_seed(0)
    layer = kanext.KANLinear(3, 4)
    x = torch.rand(10, 3) * 2 - 1
    plain = layer(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(x)
    assert y.dtype == torch.float32
    assert_bitwise_equal(y, plain, "CPU autocast")
