"""The runnable examples, shortened."""
from __future__ import annotations

import importlib.util
import os


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "examples", f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_hello_kan_recovers_the_formula():
    # The README's demo: fit -> prune -> refine -> auto_symbolic -> fit (issue 6's acceptance).
    import sympy

    res = _load("hello_kan").main(["--quiet"])
    assert [w for _, w, _ in res["stages"]] == [[2, 5, 1], [2, 1, 1], [2, 1, 1], [2, 1, 1]]
    assert res["final_rmse"] < 1e-6 and res["formula_rmse"] < 1e-6, res
    x_1, x_2 = sympy.symbols("x_1 x_2")
    expected = sympy.exp(x_2**2 + sympy.sin(sympy.Float(3.1416) * x_1))
    got = res["formula"]
    # the printed formula (constants rounded to 4 digits) is the target, up to that rounding
    for pt in ((0.3, -0.7), (-0.9, 0.2), (0.55, 0.95)):
        subs = {x_1: pt[0], x_2: pt[1]}
        assert abs(float(got.subs(subs)) - float(expected.subs(subs))) < 1e-3 * float(expected.subs(subs)), got
    assert got.has(sympy.exp) and got.has(sympy.sin), got


def test_grid_extension_short_run_improves_with_the_grid(tmp_path):
    ge = _load("grid_extension")
    res = ge.main(["--widths", "2,1,1", "--grids", "3", "5", "10", "--steps", "60", "--restarts", "2",
                   "--out", str(tmp_path)])
    rows = res["[2, 1, 1]"]
    test = [r[2] for r in rows]
    # pykan 0.2.8 with 200 steps: 1.7e-2, 4.4e-3, 4.3e-4; 60 steps get close
    assert test[0] < 3e-2 and test[1] < 8e-3 and test[2] < 1.5e-3, test
    assert test[0] > test[1] > test[2]
    assert ge.slope(rows, 3, 10) < -2.5
    assert (tmp_path / "grid_extension.png").stat().st_size > 0


def test_grid_extension_refine_on_grid_keeps_the_function_and_the_cache():
    import pytest
    import torch

    import kanext

    ge = _load("grid_extension")
    m = kanext.KAN(width=[2, 3, 1], grid=5, k=3, seed=1, dtype=torch.float64)
    x = torch.rand(300, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2 - 1
    m.update_grid(x)
    m.cache_data = x
    for how in ("grid", "samples"):
        m2 = ge.extend(m, 7, how)  # 5 -> 7 is not nested: a least-squares refit either way
        assert m2.grid == [7, 7]
        rel = ((m2(x) - m(x)).norm() / m(x).norm()).item()
        assert rel < 2e-2, (how, rel)
        assert m.cache_data is x
    # the two refits differ: one fits at collocation points, the other at the samples
    assert not torch.allclose(ge.extend(m, 7, "grid")(x), ge.extend(m, 7, "samples")(x))
    with pytest.raises(ValueError, match="refine_on"):
        ge.extend(m, 7, "nowhere")


def test_grid_extension_restarts_stop_at_the_first_seed_that_did_not_stall(monkeypatch):
    import torch

    import kanext

    ge = _load("grid_extension")
    ds = kanext.datasets.create_dataset(ge.target, n_var=2, train_num=200, test_num=50, seed=0, dtype=torch.float64)
    built = []

    class Counting(kanext.KAN):
        def __init__(self, *a, **kw):
            built.append(kw["seed"])
            super().__init__(*a, **kw)

    monkeypatch.setattr(ge.kanext, "KAN", Counting)
    monkeypatch.setattr(ge, "STALL", 1e9)  # every seed counts as not stalled: seed 0 is kept
    rows = ge.run([2, 1, 1], [3], 3, 3, ds, log=lambda *_: None)
    assert built == [0]
    built.clear()
    monkeypatch.setattr(ge, "STALL", 0.0)  # every seed counts as stalled: all tried, lowest train loss kept
    rows_all = ge.run([2, 1, 1], [3], 3, 3, ds, log=lambda *_: None)
    assert built == [0, 1, 2]
    trains = []
    for s in range(3):
        m = kanext.KAN(width=[2, 1, 1], grid=3, k=3, seed=s, dtype=torch.float64)
        trains.append(m.fit(ds, opt="LBFGS", steps=3, stop_grid_update_step=30, progress=False)["train_loss"][-1])
    assert rows_all[0][1] == min(trains)
    assert rows[0][1] == trains[0]


def test_grid_extension_on_stage_gets_each_stage_model_after_its_fit():
    import torch

    import kanext

    ge = _load("grid_extension")
    ds = kanext.datasets.create_dataset(ge.target, n_var=2, train_num=200, test_num=50, seed=0, dtype=torch.float64)
    seen = []

    def on_stage(G, model):
        with torch.no_grad():
            rmse = float((model(ds["test_input"]) - ds["test_label"]).pow(2).mean().sqrt())
        seen.append((G, list(model.grid), rmse))

    rows = ge.run([2, 1, 1], [3, 5], 2, 1, ds, log=lambda *_: None, on_stage=on_stage)
    assert [(G, grid) for G, grid, _ in seen] == [(3, [3, 3]), (5, [5, 5])]
    # the model handed over is the fitted one: its test RMSE is the one the stage reported
    for (_, _, te, _), (_, _, rmse) in zip(rows, seen):
        assert abs(rmse - te) <= 1e-12 * te, (rmse, te)


def test_pde_poisson_quick_run_learns_the_solution(tmp_path):
    """The paper's Poisson example, shortened: the physics-informed loss trains
    through second derivatives of the fused kernels, the error against the
    exact solution falls with grid extension, and the plot is written."""
    out = tmp_path / "pde.png"
    rows = _load("pde_poisson").main(["--quick", "--out", str(out)])["rows"]
    kan = [r for r in rows if r["model"].startswith("KAN")]
    assert [r["G"] for r in kan] == [5, 10]
    assert kan[-1]["pde"] < 0.5 * kan[0]["pde"], kan
    assert kan[-1]["l2"] < kan[0]["l2"] and kan[-1]["h1"] < kan[0]["h1"], kan
    assert kan[-1]["l2"] < 2e-2 and kan[-1]["h1"] < 1e-1, kan  # exact solution has max |u| = 1
    assert rows[-1]["model"].startswith("MLP") and rows[-1]["l2"] < 1.0
    assert out.exists() and out.stat().st_size > 1000


def test_ddp_train_runs_under_torchrun_with_identical_replicas():
    import re
    import subprocess
    import sys

    import pytest
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    for mode in ([], ["--fsdp"], ["--fit"]):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               os.path.join(ROOT, "examples", "ddp_train.py"), "--steps", "12", "--width", "32", "--grid-every",
               "5", *mode]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        m = re.search(r"mse (\S+) -> (\S+); replicas identical: (\w+)", proc.stdout)
        assert m, proc.stdout
        first, last, same = float(m.group(1)), float(m.group(2)), m.group(3)
        assert same == "True" and last < first, (mode, proc.stdout)


def test_kan_transformer_quick_run_trains_both_models_at_equal_size(tmp_path):
    """Issue 15: a character transformer whose feed-forward Linears (only those) become KANLinear
    layers through replace_linear, against the MLP version at the same parameter count."""
    from torch import nn

    import kanext

    res = _load("kan_transformer").main(["--quick", "--quiet", "--threads", "1", "--out", str(tmp_path)])
    for key in ("mlp", "kan"):
        c = res["curves"][key]
        assert len(c["step"]) == len(c["train"]) == len(c["val"]) >= 3
        assert c["train"][-1] < c["train"][0] - 0.5 and c["val"][-1] < c["val"][0] - 0.5, (key, c)
        assert res["final"][key]["val"] == c["val"][-1]
    n_mlp, n_kan = res["params"]["mlp"], res["params"]["kan"]
    assert abs(n_kan - n_mlp) <= 0.05 * n_mlp, res["params"]
    assert n_mlp == sum(p.numel() for p in res["models"]["mlp"].parameters())
    kan, mlp = res["models"]["kan"], res["models"]["mlp"]
    assert len(kan.blocks) >= 1
    for block in kan.blocks:
        assert isinstance(block.ff[0], kanext.KANLinear) and isinstance(block.ff[2], kanext.KANLinear)
        assert isinstance(block.attn.attn.out_proj, nn.Linear)
        assert not isinstance(block.attn.attn.out_proj, kanext.KANLinear)
    assert isinstance(kan.head, nn.Linear)
    assert not any(isinstance(m, kanext.KANLinear) for m in mlp.modules())
    kan_names = sorted(n for n, m in kan.named_modules() if isinstance(m, kanext.KANLinear))
    assert kan_names == sorted(f"blocks.{i}.ff.{j}" for i in range(len(kan.blocks)) for j in (0, 2))
    png = tmp_path / "kan_transformer.png"
    assert png.exists() and png.stat().st_size > 0


def test_memory_bench_runs_and_measures_kanext():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_memory", os.path.join(ROOT, "bench", "memory.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rows = mod.main(["--batch", "64", "--width", "32", "--grids", "5", "--peers", "", "--no-kan3"])
    (row,) = rows
    assert row["lib"] == "kanext" and "error" not in row, row
    # the gradients are counted, and what grows with the batch is O(in + out) floats
    assert row["alloc"] >= row["grads"] > 0
    assert 0 < row["per_sample"] <= 8 * (32 + 32) * 4, row
