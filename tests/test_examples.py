"""The runnable examples, shortened."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "examples", f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_demo_runs_and_prints_a_small_test_rmse():
    out = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "demo.py"), "--steps", "15", "--grids", "5"],
                         capture_output=True, text=True, timeout=300, check=True).stdout
    rmse = float(out.strip().splitlines()[-1].split()[-1])
    assert rmse < 2e-2, out


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
