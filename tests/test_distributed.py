"""Data parallelism on torch.distributed: 2 CPU processes (gloo) with different
local data run tests/dist_worker.py once per session; these tests read what
each rank saw and compare the ranks with each other and with one process
given the concatenation of their data."""
from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

import kanext

sys.path.insert(0, str(Path(__file__).parent))
import dist_worker as W  # noqa: E402

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                reason="torch.distributed with gloo is not available")


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, str(Path(W.__file__)), str(out)], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]

    def read(name):
        res = [torch.load(out / f"{name}.rank{r}.pt", weights_only=False) for r in range(2)]
        for r, got in enumerate(res):
            assert "error" not in got, f"rank {r} failed in {name}:\n{got['error']}"
        return [got["ok"] for got in res]

    return read


def _global_data():
    both = [W.local_data(r) for r in range(2)]
    return {k: torch.cat([d[k] for d in both]) for k in both[0]}


@functools.lru_cache(maxsize=1)
def _one_process_fit():
    """The reference: one process fitting W.fresh_kan() on all ranks' data with W.FIT_KW (computed once)."""
    single = W.fresh_kan()
    return single, single.fit(_global_data(), **W.FIT_KW)


# The first recorded train loss comes after one LBFGS step (up to 20 iterations), which amplifies the
# last-bit differences of the ranks' sums about a thousandfold. Measured relative differences from
# one process: 1.9e-13 (fit) and 6.9e-12 (DataLoader fit, rows interleaved) on an AVX-512 Xeon, whose
# kernels take 64-byte vectors (the AVX2 Zen 3 of earlier sessions stayed within 1e-12). A different
# objective (rows lost or counted twice, a wrong share) is off by far more.
FIRST_STEP_REL = 1e-10


def _assert_states_identical(a, b, what):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{what}: {k} differs between ranks"


def _assert_states_close(a, b, what, tol=1e-5):
    # The sum over ranks rounds differently from one process's mean (1e-14 relative in the
    # first loss); 4 LBFGS steps of up to 20 iterations each amplify that to about 1e-7.
    for k in a:
        err = (a[k] - b[k]).abs().max().item() if a[k].numel() else 0.0
        assert err <= tol * max(1.0, b[k].abs().max().item() if b[k].numel() else 0.0), f"{what}: {k} off by {err}"


def test_fit_with_grid_updates_keeps_ranks_identical_and_equals_one_process(ranks):
    r0, r1 = ranks("fit")
    _assert_states_identical(r0["state"], r1["state"], "fit")
    assert r0["train_loss"] == r1["train_loss"] and r0["test_loss"] == r1["test_loss"]
    single, res = _one_process_fit()
    _assert_states_close(r0["state"], single.state_dict(), "fit vs one process")
    assert r0["train_loss"][0] == pytest.approx(res["train_loss"][0], rel=FIRST_STEP_REL)
    # the ranks' shares are unequal (37 and 23 of 60 rows), so each rank's loss gradient is scaled by
    # 37/60 or 23/60 and rounds differently from one process's (last bit); 4 LBFGS steps with grid
    # updates amplify that: measured 4e-7 in the train loss with pykan's mean((p - y)**2), 1.2e-6 (train)
    # and 1.5e-5 (test) with F.mse_loss (fit's default), whose rounding differs in the last bit
    assert r0["train_loss"] == pytest.approx(res["train_loss"], rel=1e-4)
    assert r0["test_loss"] == pytest.approx(res["test_loss"], rel=1e-4)
    # the grids moved, to the global samples' range (not rank 0's)
    g = r0["state"]["act_fun.0.grid"]
    x = _global_data()["train_input"]
    k = 3
    assert torch.allclose(g[:, k], x.amin(0)) and torch.allclose(g[:, -k - 1], x.amax(0))


def test_fit_copies_rank0_parameters_and_syncs_adam_on_a_lan(ranks):
    r0, r1 = ranks("fit_adam_lan")
    _assert_states_identical(r0["state"], r1["state"], "LAN Adam fit")
    single = kanext.LAN([2, 4, 1], grid=5, seed=0, dtype=W.F64)
    res = single.fit(_global_data(), opt="Adam", lr=1e-2, steps=5, grid_update_num=5, stop_grid_update_step=5,
                     progress=False)
    _assert_states_close(r0["state"], single.state_dict(), "LAN vs one process")
    assert r0["train_loss"] == pytest.approx(res["train_loss"], rel=1e-6)


def test_fit_shards_a_dict_dataset_by_rank(ranks):
    r0, r1 = ranks("fit_sharded")
    _assert_states_identical(r0["state"], r1["state"], "sharded fit")
    # each rank took a contiguous half of the 60 rows: the same global objective
    single, res = _one_process_fit()
    _assert_states_close(r0["state"], single.state_dict(), "sharded fit vs one process")
    assert r0["train_loss"] == pytest.approx(res["train_loss"], rel=1e-6)


def test_fit_with_distributed_samplers_equals_one_process_and_plain_loaders_raise(ranks):
    r0, r1 = ranks("fit_loaders")
    _assert_states_identical(r0["state"], r1["state"], "DataLoader fit")
    single, res = _one_process_fit()
    # the samplers interleave the rows, so the gathered grid samples come in another order: the
    # same objective from the first step, with rounding that 4 LBFGS steps amplify to ~2e-5
    assert r0["train_loss"][0] == pytest.approx(res["train_loss"][0], rel=FIRST_STEP_REL)
    _assert_states_close(r0["state"], single.state_dict(), "DistributedSampler fit vs one process", tol=1e-4)
    assert r0["train_loss"] == pytest.approx(res["train_loss"], rel=1e-5)
    assert "DistributedSampler" in r0["error"] and "shard=False" in r0["error"]


def test_update_grid_is_the_update_of_all_ranks_samples(ranks):
    r0, r1 = ranks("update_grid")
    x = _global_data()["train_input"]
    for key in ("kan", "layer", "lan"):
        _assert_states_identical(r0[key], r1[key], f"update_grid {key}")
    kan = W.fresh_kan()
    kan.update_grid(x)
    _assert_states_identical(r0["kan"], kan.state_dict(), "KAN update_grid vs one process on the gathered samples")
    layer = kanext.KANLinear(2, 3, grid=5, generator=torch.Generator().manual_seed(0), dtype=W.F64)
    layer.update_grid(W.local_data(0)["train_input"])  # rank 1 gave no rows
    _assert_states_identical(r0["layer"], layer.state_dict(), "KANLinear update_grid with an empty rank")
    lan = kanext.LAN([2, 4, 1], grid=5, seed=0, dtype=W.F64)
    lan.update_grid(x)
    _assert_states_identical(r0["lan"], lan.state_dict(), "LAN update_grid vs one process")
    # sync=False: each rank used only its own samples
    assert not torch.equal(r0["local_grid"], r1["local_grid"])
    local = W.fresh_kan()
    local.update_grid(W.local_data(1)["train_input"])
    assert torch.equal(r1["local_grid"], local.act_fun[0].grid)


def test_ddp_without_find_unused_parameters_on_every_module(ranks):
    r0, r1 = ranks("ddp")
    assert set(r0) == {"kan", "kan_symbolic", "kan_zero_affine", "kanlinear_bias", "lan", "spline_activation",
                       "replaced", "pruned", "refined"}
    assert r0["pruned"]["act_fun.0.mask"].sum() < r0["kan"]["act_fun.0.mask"].sum()  # some edge went
    assert r0["refined"]["act_fun.0.grid"].shape[1] == 10 + 2 * 3 + 1
    for name in r0:
        _assert_states_identical(r0[name], r1[name], f"DDP {name}")
    # the steps changed the parameters (the data differ per rank, the averaged gradients do not)
    assert not torch.equal(r0["kan"]["act_fun.0.coef"], W.fresh_kan().act_fun[0].coef.detach())


def test_fsdp2_steps_grid_update_and_refine_equal_ddp(ranks):
    r0, r1 = ranks("fsdp2")
    for name in ("kan", "lan"):
        _assert_states_identical(r0["fsdp"][name], r1["fsdp"][name], f"FSDP2 {name}")
        _assert_states_close(r0["fsdp"][name], r0["ddp"][name], f"FSDP2 vs DDP {name}", tol=1e-12)
        assert not torch.equal(r0["fsdp"][name][next(k for k in r0["fsdp"][name] if k.endswith("grid"))],
                               W.fresh_kan().act_fun[0].grid) or name == "lan"
        assert r0["refined_fsdp"][name + ".type"] in ("KAN", "LAN")  # unsharded
        _assert_states_close(r0["refined_fsdp"][name], r0["refined_ddp"][name], f"FSDP2 refine {name}", tol=1e-12)
        msg = r0["errors"].get(f"{name}.fit", "")
        assert "sharded" in msg and "DTensor" in msg, (name, r0["errors"])
    layer = kanext.KANLinear(2, 3, bias=True, generator=torch.Generator().manual_seed(0), dtype=W.F64)
    layer.update_grid(_global_data()["train_input"])
    _assert_states_identical(r0["layer"], r1["layer"], "FSDP2 KANLinear update_grid")
    _assert_states_close(r0["layer"], layer.state_dict(), "FSDP2 KANLinear vs one process", tol=1e-12)


def test_ranks_that_disagree_on_shapes_get_a_clear_error(ranks):
    r0, r1 = ranks("shape_mismatch")
    for errs in (r0, r1):
        assert "ranks disagree on the model's shapes" in errs["fit"]
        assert "ranks disagree" in errs["update_grid"] and "F=2" in errs["update_grid"] and "F=3" in errs["update_grid"]


def test_no_trainable_parameter_is_unused_by_the_forward():
    """What DDP needs from every model: each trainable parameter gets a gradient from the forward."""
    x = torch.rand(5, 2, dtype=W.F64)
    sym = W.fresh_kan()
    sym.fix_symbolic(0, 0, 1, "sin", fit_params=False, verbose=False)
    models = [W.fresh_kan(), sym, kanext.KAN([2, 3, 1], base_fun="zero", affine_trainable=True, dtype=W.F64),
              kanext.LAN([2, 4, 1], dtype=W.F64), kanext.KANLinear(2, 3, bias=True, dtype=W.F64)]
    for m in models:
        m(x).sum().backward()
        unused = [n for n, p in m.named_parameters() if p.requires_grad and p.grad is None]
        assert not unused, (type(m).__name__, unused)
    # unfixing the last symbolic edge freezes the symbolic affine again
    sym.unfix_symbolic(0, 0, 1)
    assert not sym.symbolic_fun[0].affine.requires_grad


def test_sync_argument_is_checked():
    layer = kanext.KANLinear(2, 3)
    with pytest.raises(ValueError, match="not initialised"):
        layer.update_grid(torch.rand(4, 2), sync=object())
    with pytest.raises(TypeError, match="DistributedDataParallel"):
        kanext.training.fit(torch.nn.parallel.DistributedDataParallel.__new__(
            torch.nn.parallel.DistributedDataParallel), {})
