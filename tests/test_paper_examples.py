"""The KAN-paper reproductions in examples/paper/, at their --quick size (docs/paper.md)."""
from __future__ import annotations

import importlib.util
import os

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load(name):
    spec = importlib.util.spec_from_file_location(f"paper_{name}", os.path.join(ROOT, "examples", "paper", f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_continual_learning_kan_keeps_earlier_peaks_and_mlp_forgets(tmp_path):
    res = _load("continual_learning").main(["--quick", "--quiet", "--out", str(tmp_path)])
    kan, mlp = res["KAN"], res["MLP"]
    assert len(kan["err"]) == len(mlp["err"]) == 5 and [len(e) for e in kan["err"]] == [1, 2, 3, 4, 5]
    # each region is learned when it is shown ...
    for p in range(5):
        assert kan["err"][p][p] < 1e-3, kan["err"]
        assert mlp["err"][p][p] < 0.3, mlp["err"]
    # ... and the KAN still fits it after the later phases (local splines), while the MLP does not
    for r in range(4):
        assert kan["err"][-1][r] < 1e-3, kan["err"][-1]
    assert kan["old_final"] < 1e-3 and mlp["old_final"] > 0.1, (kan["old_final"], mlp["old_final"])
    assert mlp["old_final"] > 1e3 * kan["old_final"]
    # after all five phases the KAN is the whole target, the MLP is not
    assert kan["whole"][-1] < 1e-3 < mlp["whole"][-1]
    assert (tmp_path / "continual_learning.png").stat().st_size > 1000


def test_toy_scaling_grid_extension_lowers_the_error(tmp_path):
    mod = _load("toy_scaling")
    res = mod.main(["--quick", "--quiet", "--out", str(tmp_path)])
    r = res["exp_sin"]
    assert [row["G"] for row in r["kan"]] == [3, 5, 10]
    test = [row["test"] for row in r["kan"]]
    params = [row["params"] for row in r["kan"]]
    assert params == [2 * (G + 3 + 2) + (G + 3 + 2) for G in (3, 5, 10)]  # 3 edges: G+k coef + 2 scales
    assert test[0] > test[1] > test[2] and test[2] < 2e-3, test
    assert r["slope_G"] < -2.5 and r["slope_params"] < -2.5, (r["slope_G"], r["slope_params"])
    inside = [row["test_inside"] for row in r["kan"]]
    # most test points lie inside the grids (G=3: the last grid update was at step 30, 79%)
    assert all(0.7 < row["inside_frac"] <= 1 for row in r["kan"]) and r["kan"][-1]["inside_frac"] > 0.95, r["kan"]
    assert inside[0] > inside[1] > inside[2] and r["slope_inside"] < -2.5, (inside, r["slope_inside"])
    # the KAN at G=10 beats the MLP of about the same size
    (m,) = r["mlp"]
    assert m["params"] == 41 and test[2] < 0.1 * m["test"], (test, m)
    assert (tmp_path / "toy_scaling.png").stat().st_size > 1000


def test_toy_scaling_slope_and_regime():
    mod = _load("toy_scaling")
    assert abs(mod.fit_slope([1, 10, 100], [1, 1e-4, 1e-8]) + 4) < 1e-12
    rows = [{"G": G, "test": t} for G, t in ((3, 1.0), (5, 0.1), (10, 0.01), (20, 0.001), (50, 0.01))]
    assert [r["G"] for r in mod.regime(rows)] == [5, 10, 20]  # stops at the lowest test RMSE
    for r, t in zip(rows, (1.0, 0.1, 0.01, 0.001, 1e-4)):
        r["test_inside"] = t
    assert [r["G"] for r in mod.regime(rows, "test_inside")] == [5, 10, 20, 50]
    x = torch.linspace(-1, 1, 5, dtype=torch.float64)[:, None]
    assert torch.allclose(mod.TARGETS["j0"][2](x)[:, 0], torch.special.bessel_j0(20 * x[:, 0]))


def test_unsupervised_data_positives_satisfy_the_relations_and_negatives_do_not():
    mod = _load("unsupervised")
    ds = mod.make_dataset(200, 100, seed=0)
    x, y = ds["train_input"], ds["train_label"]
    assert x.shape == (400, 6) and y[:200].eq(1).all() and y[200:].eq(0).all()
    pos, neg = x[:200], x[200:]
    rel3 = lambda t: (t[:, 2] - torch.exp(torch.sin(torch.pi * t[:, 0]) + t[:, 1] ** 2)).abs()
    rel45 = lambda t: (t[:, 3] - t[:, 4] ** 3).abs()
    assert rel3(pos).max() < 1e-12 and rel45(pos).max() < 1e-12
    assert rel3(neg).median() > 0.1 and rel45(neg).median() > 0.1
    for i in range(6):  # a permutation of each column: same marginals
        assert torch.equal(pos[:, i].sort().values, neg[:, i].sort().values)
    assert mod.recovered(torch.tensor([0.9, 0.4, 1.0, 0.05, 0.0, 0.0]), 0.1) == {0, 1, 2}


def test_unsupervised_recovers_a_dependent_group(tmp_path):
    res = _load("unsupervised").main(["--quick", "--quiet", "--out", str(tmp_path)])
    assert res["n_seeds"] >= 1
    for row in res["rows"]:
        assert row["set"] in ({0, 1, 2}, {3, 4}), row
        assert row["match"] and row["acc"] > 0.9, row
        assert 5 not in row["set"]  # x6 is independent of everything
    assert res["n_match"] == res["n_seeds"]
    assert (tmp_path / "unsupervised.png").stat().st_size > 1000


def test_feynman_recovery_rule_accepts_the_true_formula_and_rejects_a_near_miss():
    import sympy

    from kanext.datasets.feynman import feynman_dataset, get_feynman_dataset

    mod = _load("feynman")
    symbols, truth, _, ranges = get_feynman_dataset("I.6.20a")
    ds = feynman_dataset("I.6.20a", train_num=10, test_num=200, seed=0, dtype=torch.float64)
    (th,) = symbols
    x, y = ds["test_input"], ds["test_label"]
    # a KAN-style formula with float constants that snap to the truth: symbolic equality
    kan_like = 0.3989422804 * sympy.exp(-((0.7071067812 * th) ** 2))
    assert mod.recovery(kan_like, truth, symbols, ranges, x, y)[:2] == (True, "symbolic")
    # a constant off by 0.4% and a stray offset: rejected by both rules
    near = 0.3989422804 * sympy.exp(-((0.71 * th) ** 2)) + 0.001
    ok, how, rel, _ = mod.recovery(near, truth, symbols, ranges, x, y)
    assert not ok and 1e-4 < rel < 1e-1, (ok, how, rel)
    # the rule's tolerance: a constant within 0.1% of a simple one snaps to it (0.7072 -> 1/sqrt(2)) ...
    assert mod.recovery(kan_like.subs(sympy.Float(0.7071067812), sympy.Float(0.7072)), truth, symbols, ranges, x,
                        y)[:2] == (True, "symbolic")
    # ... one 0.5% off does not (0.711), and its relative RMSE is far above 1e-6
    ok, how, rel, _ = mod.recovery(0.3989422804 * sympy.exp(-((0.711 * th) ** 2)), truth, symbols, ranges, x, y)
    assert not ok and 1e-4 < rel < 1e-1, (ok, how, rel)
    assert mod.snap_number(3.14159265) == sympy.pi and mod.snap_number(0.2) == sympy.Rational(1, 5)
    assert mod.snap_number(0.123456) == sympy.Float(0.123456)


class _ScriptedKAN:
    """A stand-in for a pruned KAN with one spline edge per layer, for symbolic_by_refit's search alone: the
    retrained RMSE of a copy is looked up from the functions fixed so far (RMSE[path]); every fit is logged."""

    LIB_COMPLEXITY = {"0": 0, "x": 1, "sin": 2, "x^2": 2, "exp": 2, "gaussian": 3, "tanh": 3}

    def __init__(self, suggest, rmse, log):
        self.depth, self.path, self.suggest, self.rmse, self.log = len(suggest), (), suggest, rmse, log
        self.act_fun = [type("Layer", (), {"mask": torch.ones(1, 1)})() for _ in range(self.depth)]

    def __deepcopy__(self, memo):  # symbolic_by_refit's copies: own path and masks, the same tables and log
        other = _ScriptedKAN(self.suggest, self.rmse, self.log)
        other.path = self.path
        for mine, theirs in zip(self.act_fun, other.act_fun):
            theirs.mask = mine.mask.clone()
        return other

    def suggest_symbolic(self, l, i, j, lib, topk, verbose):
        return [(n, 0.99, self.LIB_COMPLEXITY[n], 0.0) for n in self.suggest[l]][:topk]

    def fix_symbolic(self, l, i, j, name, verbose):
        self.path += (name,)
        self.act_fun[l].mask = torch.zeros(1, 1)

    def fit(self, steps):
        self.log.append(self.path)
        return {"train_loss": [self.rmse.get(self.path, 1.0)]}


def test_feynman_symbolic_by_refit_beam_keeps_the_greedy_path_and_lets_the_next_edge_decide():
    refit = _load("feynman").symbolic_by_refit
    # the control as a Zen 3 trains it (--quick, seed 0): on the first edge x is 2.03x off the best, so the greedy
    # rule keeps sin; only x then gaussian is exact. x is not among the first edge's suggestions.
    suggest = [["sin", "gaussian", "x^2"], ["sin", "gaussian", "exp", "x"]]
    rmse = {("sin",): 1.30e-4, ("gaussian",): 1.31e-4, ("x^2",): 2.3e-4, ("x",): 2.64e-4, ("0",): 1.4e-1,
            ("sin", "sin"): 1.3e-3, ("sin", "gaussian"): 2.0e-3, ("x", "gaussian"): 3.5e-11,
            ("x^2", "exp"): 1e-2}
    for beam, want in ((1, ["sin", "sin"]), (2, ["x", "gaussian"]), (3, ["x", "gaussian"])):
        log = []
        model, chosen = refit(_ScriptedKAN(suggest, rmse, log), lambda m, steps: m.fit(steps), beam=beam)
        assert [c[3] for c in chosen] == want and list(model.path) == want, (beam, chosen)
        first = {p[0] for p in log if len(p) == 1}
        second = {p[0] for p in log if len(p) == 2}  # the copies the second edge was tried on
        # greedy: the suggestions and '0' only, one copy; beam: x too, the greedy copy (sin) always among those kept
        assert first == ({"sin", "gaussian", "x^2", "0"} | ({"x"} if beam > 1 else set())), first
        assert second == ({"sin"} if beam == 1 else {"sin", "x"} if beam == 2 else {"sin", "x", "x^2"}), second
        assert chosen[-1][4] == rmse[tuple(want)]
    # '0' (complexity 0) enters the beam only within slack (2x) of the best, not within beam_slack (10x) ...
    log = []
    rmse0 = {**rmse, ("0",): 5e-4}
    refit(_ScriptedKAN(suggest, rmse0, log), lambda m, steps: m.fit(steps), beam=3)
    assert {p[0] for p in log if len(p) == 2} == {"sin", "x", "x^2"}
    # ... and within 2x it is the simplest copy, kept by the greedy rule itself
    log = []
    rmse0 = {**rmse, ("0",): 2.5e-4, ("0", "x"): 1e-12}
    _, chosen = refit(_ScriptedKAN(suggest, rmse0, log), lambda m, steps: m.fit(steps), beam=3)
    assert [c[3] for c in chosen] == ["0", "x"] and {p[0] for p in log if len(p) == 2} == {"0", "x", "sin"}
    # the greedy pick stays in the beam also where simpler copies fill it: gaussian is the only one within 2x
    log = []
    rmse2 = {**rmse, ("gaussian",): 1e-4, ("sin",): 3e-4, ("x^2",): 5e-4}
    refit(_ScriptedKAN(suggest, rmse2, log), lambda m, steps: m.fit(steps), beam=2)
    assert {p[0] for p in log if len(p) == 2} == {"gaussian", "x"}


def test_feynman_quick_recovers_the_control(tmp_path):
    import sympy

    res = _load("feynman").main(["--quick", "--quiet", "--out", str(tmp_path)])
    (row,) = res["rows"]
    ctrl = row["kanext"]  # exp(-theta^2/2)/sqrt(2 pi): pruning finds the [1, 1, 1] KAN that represents it ...
    assert row["name"] == "I.6.20a" and ctrl["shape"] == [1, 1, 1], ctrl["shape"]
    assert ctrl["kan_rel"] < 1e-3, ctrl["kan_rel"]
    # ... and symbolic_by_refit reads it off exactly: first edge x (not sin), second gaussian. --quick searches with
    # beam 3: the greedy pass's pick on the first edge follows the CPU's rounding (x on Zen 5, sin on Zen 3)
    assert ctrl["recovered"] and ctrl["how"] == "symbolic" and ctrl["sym_rel"] < 1e-8, (ctrl["formula"], ctrl["sym_rel"])
    assert sympy.simplify(ctrl["formula"] - ctrl["truth"]) == 0
    assert res["kanext"]["n"] == 1 and res["kanext"]["n_recovered"] == 1
    assert (tmp_path / "feynman.png").stat().st_size > 1000


def test_feynman_quick_dimensionless_recovers_i_40_1(tmp_path):
    import sympy

    # the paper's dimensionless I.40.1, n_0 exp(-a) (n_0 in [0, 1], a in [-1, 1]), at the quick size and the one
    # recipe of the script: pruned to [2, 1, 1] and read off exactly as n_0*exp(-a)
    res = _load("feynman").main(["--quick", "--quiet", "--dimensionless", "--equations", "I.40.1",
                                 "--out", str(tmp_path)])
    assert res["cfg"]["dimensionless"]
    (row,) = res["rows"]
    r = row["kanext"]
    n0, a = sympy.symbols("n_0 a")
    assert row["name"] == "I.40.1" and r["n_vars"] == 2 and r["truth"] == n0 * sympy.exp(-a)
    assert r["shape"] == [2, 1, 1], r["shape"]
    assert r["recovered"] and r["how"] == "symbolic" and r["sym_rel"] < 1e-8, (r["formula"], r["sym_rel"])
    assert sympy.simplify(r["formula"] - r["truth"]) == 0
    assert res["kanext"]["n_recovered"] == 1


def test_feynman_seeds_keeps_the_best_train_fit(tmp_path):
    # --seeds 2: the recipe runs for seeds 0 and 1 and keeps the formula that fits the train data best; on I.40.1
    # at the quick size seed 0 is already exact (train RMSE ~1e-16), so whichever seed is kept is exact too
    res = _load("feynman").main(["--quick", "--quiet", "--dimensionless", "--seeds", "2", "--equations", "I.40.1",
                                 "--out", str(tmp_path)])
    r = res["rows"][0]["kanext"]
    assert res["cfg"]["seeds"] == 2 and r["seed"] in (0, 1) and f"seed {r['seed']} kept" in r["note"], r["note"]
    assert r["recovered"] and r["sym_rel"] < 1e-8, (r["formula"], r["sym_rel"])


def test_special_functions_data_pareto_and_smallest_shape():
    import numpy as np
    import scipy.special as sp

    mod = _load("special_functions")
    ds = mod.make_dataset("ellipkinc", train_num=50, test_num=10)
    x, y = ds["train_input"], ds["train_label"]
    assert x.shape == (50, 2) and y.shape == (50, 1) and x.dtype == torch.float64
    phi, m = x[:, 0].numpy(), (x[:, 1].numpy() + 1) / 2  # phi in [-1, 1], m in [0, 1]
    assert np.allclose(y[:, 0].numpy(), sp.ellipkinc(phi, m), rtol=0, atol=1e-14)
    t = torch.cartesian_prod(*(torch.linspace(-1, 1, 41, dtype=torch.float64),) * 2)
    for name, (fun, _, r1, r2) in mod.FUNCTIONS.items():  # finite and not constant on the whole box
        v = mod._scipy(fun, r1, r2)(t)
        assert v.shape == (41 * 41, 1) and torch.isfinite(v).all() and v.std() > 0.1, name
        assert name in mod.PAPER
    pts = [(10, 1.0), (20, 2.0), (30, 0.5), (30, 0.4), (40, 0.45), (50, 0.1)]
    assert mod.pareto(pts) == [(10, 1.0), (30, 0.4), (50, 0.1)]
    kan = {"[2, 2, 1]": {"width": [2, 2, 1], "rows": [{"G": 3, "params": 48, "test": 5e-3}]},
           "[2, 1]": {"width": [2, 1], "rows": [{"G": 3, "params": 16, "test": 0.2}, {"G": 5, "params": 20, "test": 9e-3}]}}
    assert mod.smallest_reaching(kan, 1e-2) == ([2, 1], 5, 20, 9e-3)  # fewest edges first, then G
    assert mod.smallest_reaching(kan, 6e-3) == ([2, 2, 1], 3, 48, 5e-3)
    assert mod.smallest_reaching(kan, 1e-3) is None
    # the full run covers the paper's range: grids G = 3 to 200, MLPs of depth 2 to 6 and width 5 and 100
    assert mod.FULL_GRIDS[0] == 3 and mod.FULL_GRIDS[-1] == 200 and list(mod.FULL_GRIDS) == sorted(mod.FULL_GRIDS)
    assert mod.MLP_DEPTHS == (2, 3, 4, 5, 6) and {5, 100} <= set(mod.MLP_WIDTHS)


def test_special_functions_kan_frontier(tmp_path):
    res = _load("special_functions").main(["--quick", "--quiet", "--out", str(tmp_path)])
    fs = res["functions"]
    assert list(fs) == ["lpmv0", "ellipeinc", "jv"] and res["grids"] == [3, 5, 10]
    for name, r in fs.items():
        add, kan = r["kan"]["[2, 1]"]["rows"], r["kan"]["[2, 2, 1]"]["rows"]
        assert [row["params"] for row in add] == [2 * (G + 5) for G in (3, 5, 10)]  # G+k coef + 2 scales per edge
        assert [row["params"] for row in kan] == [6 * (G + 5) for G in (3, 5, 10)]
        # none of them is a sum g(t1) + h(t2): the additive [2,1] KAN stays above 1e-2 ...
        assert min(row["test"] for row in add) > 1e-2, (name, add)
        # ... [2,2,1] gets below it, and grid extension lowers its error
        assert r["min_shape"][0] == [2, 2, 1], (name, r["min_shape"])
        assert kan[-1]["test"] < 0.5 * kan[0]["test"], (name, [row["test"] for row in kan])
        # the KAN frontier ends below the MLPs', with fewer than 100 parameters
        assert r["best_kan"][1] < r["best_mlp"][1] and r["best_kan"][0] < 100, (name, r["best_kan"], r["best_mlp"])
        front = r["kan_front"]
        assert all(a[0] < b[0] and a[1] > b[1] for a, b in zip(front, front[1:])), front
    # the stated accuracies on the easier functions (measured with --quick's 2 seeds: 1.2e-4, 4.3e-4, 7.5e-3 on
    # AVX2; 1.2e-4, 5.4e-4, 6.4e-3 before the fold by tiles changed grad scale's last bits)
    assert fs["ellipeinc"]["best_kan"][1] < 5e-4 and fs["jv"]["best_kan"][1] < 2e-3 and fs["lpmv0"]["best_kan"][1] < 2e-2
    assert fs["jv"]["paper_shape"] is not None  # [2,2,1] at G=10 reaches the paper's best for J_v (1.64e-3)
    assert (tmp_path / "special_functions.png").stat().st_size > 1000


def test_toy_scaling_4d_and_100d(tmp_path):
    mod = _load("toy_scaling")
    x = torch.rand(7, 100, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    f4 = torch.exp(0.5 * (torch.sin(torch.pi * (x[:, 0] ** 2 + x[:, 1] ** 2)) + torch.sin(torch.pi * (x[:, 2] ** 2 + x[:, 3] ** 2))))
    assert torch.allclose(mod.TARGETS["exp_sin4"][2](x[:, :4])[:, 0], f4)
    assert torch.allclose(mod.TARGETS["exp_sin100"][2](x)[:, 0], torch.exp((torch.sin(torch.pi * x / 2) ** 2).mean(1)))
    res = mod.main(["--quick", "--quiet", "--targets", "exp_sin4,exp_sin100", "--out", str(tmp_path)])
    r4, r100 = res["exp_sin4"], res["exp_sin100"]
    assert r4["width"] == [4, 4, 2, 1] and r100["width"] == [100, 1, 1]
    assert [row["params"] for row in r4["kan"]] == [26 * (G + 5) for G in (3, 5, 10)]  # 16 + 8 + 2 edges
    assert [row["params"] for row in r100["kan"]] == [101 * (G + 5) for G in (3, 5)]
    # 100-D: grid extension lowers the error, and the KAN beats an MLP of the same size by far (measured 1.1e-3
    # against 1.2e-1 at about 1000 parameters: the MLP overfits the 1000 points)
    t100 = [row["test"] for row in r100["kan"]]
    (m100,) = r100["mlp"]
    assert t100[1] < 0.6 * t100[0] and t100[1] < 5e-3, t100
    assert m100["params"] == 1021 and t100[1] < 0.1 * m100["test"], (t100, m100)
    # 4-D: TARGET_RECIPE's first stage (best of 10 short seeds; seed 9 wins) lands in a basin from which grid extension
    # keeps lowering the error (measured 2.9e-2, 6.2e-3, 2.5e-3; from seed 0 alone, --restarts 1: 0.12, 0.11, 0.10),
    # far below the MLP of the quick run (0.39)
    assert r4["train_num"] == 1000 and r4["kan"][0]["seed"] in range(10)
    t4 = [row["test"] for row in r4["kan"]]
    (m4,) = r4["mlp"]
    assert t4[0] > t4[1] > t4[2] and t4[0] < 6e-2 and t4[2] < 6e-3, t4
    assert t4[2] < 0.05 * m4["test"], (t4, m4)
    assert (tmp_path / "toy_scaling.png").stat().st_size > 1000
