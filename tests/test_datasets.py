"""kanext.create_dataset: pykan's keys and shapes, ranges, reproducibility
from a private generator (global RNG untouched), normalisation, parity with
pykan's draws, and clear errors."""
from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch

from kanext.datasets import create_dataset

KEYS = {"train_input", "train_label", "test_input", "test_label"}


def f2(x):
    return torch.exp(torch.sin(torch.pi * x[:, [0]]) + x[:, [1]] ** 2)


def test_keys_shapes_dtype_device():
    d = create_dataset(f2, n_var=2, train_num=50, test_num=20)
    assert set(d) == KEYS
    assert d["train_input"].shape == (50, 2) and d["test_input"].shape == (20, 2)
    assert d["train_label"].shape == (50, 1) and d["test_label"].shape == (20, 1)
    assert all(t.dtype == torch.get_default_dtype() and t.device.type == "cpu" for t in d.values())
    torch.testing.assert_close(d["train_label"], f2(d["train_input"]), rtol=0, atol=0)
    torch.testing.assert_close(d["test_label"], f2(d["test_input"]), rtol=0, atol=0)


def test_vector_output_is_unsqueezed_and_multi_output_kept():
    d = create_dataset(lambda x: x.sum(dim=1), n_var=3, train_num=10, test_num=4)
    assert d["train_label"].shape == (10, 1) and d["test_label"].shape == (4, 1)
    torch.testing.assert_close(d["train_label"][:, 0], d["train_input"].sum(dim=1), rtol=0, atol=0)
    d = create_dataset(lambda x: torch.stack([x[:, 0], x[:, 1] * x[:, 2], -x[:, 0]], dim=1), n_var=3, train_num=10)
    assert d["train_label"].shape == (10, 3)


def test_dtype_and_labels_keep_f_dtype():
    d = create_dataset(f2, train_num=8, test_num=8, dtype=torch.float64)
    assert d["train_input"].dtype == torch.float64 and d["train_label"].dtype == torch.float64
    d = create_dataset(lambda x: (x[:, 0] > 0).long(), train_num=8, test_num=8, dtype=torch.float32)
    assert d["train_input"].dtype == torch.float32 and d["train_label"].dtype == torch.int64


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_shared_range_respected_and_covered(dtype):
    d = create_dataset(f2, n_var=2, ranges=[-3, 0.5], train_num=4000, test_num=4000, dtype=dtype)
    for key in ("train_input", "test_input"):
        x = d[key]
        assert float(x.min()) >= -3 and float(x.max()) <= 0.5
        assert float(x.min()) < -2.9 and float(x.max()) > 0.4  # spread over the whole box
        assert abs(float(x.mean()) - (-1.25)) < 0.1


def test_per_variable_ranges():
    ranges = [[0, 1], [-10, -9], [100, 200]]
    d = create_dataset(lambda x: x[:, :1], n_var=3, ranges=ranges, train_num=3000, test_num=3000)
    for key in ("train_input", "test_input"):
        x = d[key]
        for i, (lo, hi) in enumerate(ranges):
            col = x[:, i]
            assert float(col.min()) >= lo and float(col.max()) <= hi, (key, i)
            assert float(col.min()) < lo + 0.02 * (hi - lo) and float(col.max()) > hi - 0.02 * (hi - lo), (key, i)
    # numpy arrays and tensors work as well
    a = create_dataset(lambda x: x[:, :1], n_var=3, ranges=np.array(ranges), train_num=5, test_num=5)
    b = create_dataset(lambda x: x[:, :1], n_var=3, ranges=torch.tensor(ranges), train_num=5, test_num=5)
    assert all(torch.equal(a[k], b[k]) for k in KEYS)


def test_reproducible_and_seed_dependent():
    a = create_dataset(f2, train_num=100, test_num=100, seed=3)
    torch.manual_seed(12345)  # the global state plays no part
    b = create_dataset(f2, train_num=100, test_num=100, seed=3)
    c = create_dataset(f2, train_num=100, test_num=100, seed=4)
    assert all(torch.equal(a[k], b[k]) for k in KEYS)
    assert not torch.equal(a["train_input"], c["train_input"])
    assert not torch.equal(a["train_input"], a["test_input"])


def test_global_rng_untouched():
    torch.manual_seed(7)
    np.random.seed(7)
    t_before, n_before = torch.get_rng_state(), np.random.get_state()
    create_dataset(f2, train_num=100, test_num=100, seed=0, normalize_input=True, normalize_label=True)
    assert torch.equal(torch.get_rng_state(), t_before)
    n_after = np.random.get_state()
    assert n_after[0] == n_before[0] and np.array_equal(n_after[1], n_before[1]) and n_after[2:] == n_before[2:]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_normalisation(dtype):
    def f(x):
        return torch.stack([3 * x[:, 0] + torch.sin(x[:, 1]), x[:, 0] * x[:, 1]], dim=1)

    kw = dict(n_var=2, ranges=[[0, 4], [-1, 7]], train_num=500, test_num=300, seed=1, dtype=dtype)
    raw = create_dataset(f, **kw)
    d = create_dataset(f, normalize_input=True, normalize_label=True, **kw)
    assert set(d) == KEYS | {"mean_input", "std_input", "mean_label", "std_label"}
    assert d["mean_input"].shape == (1, 2) and d["std_input"].shape == (1, 2)
    assert d["mean_label"].shape == (1, 2) and d["std_label"].shape == (1, 2)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    for split in ("input", "label"):
        tr = d[f"train_{split}"]
        torch.testing.assert_close(tr.mean(dim=0), torch.zeros(tr.shape[1], dtype=dtype), **tol)
        torch.testing.assert_close(tr.std(dim=0), torch.ones(tr.shape[1], dtype=dtype), **tol)
        # statistics are the training split's, and undo the normalisation of both splits
        torch.testing.assert_close(d[f"mean_{split}"], raw[f"train_{split}"].mean(dim=0, keepdim=True), rtol=0, atol=0)
        torch.testing.assert_close(d[f"std_{split}"], raw[f"train_{split}"].std(dim=0, keepdim=True), rtol=0, atol=0)
        for s in ("train", "test"):
            back = d[f"{s}_{split}"] * d[f"std_{split}"] + d[f"mean_{split}"]
            torch.testing.assert_close(back, raw[f"{s}_{split}"], rtol=1e-5 if dtype == torch.float32 else 1e-12, atol=1e-5)
    # the test split is not normalised with its own statistics
    assert float(d["test_input"].mean(dim=0).abs().max()) > 1e-3
    # labels are f of the raw inputs, not of the normalised ones
    assert not torch.allclose(raw["train_label"], f(d["train_input"]))


def test_normalise_only_inputs_or_only_labels():
    d = create_dataset(f2, train_num=50, test_num=10, normalize_input=True)
    assert set(d) == KEYS | {"mean_input", "std_input"}
    d = create_dataset(f2, train_num=50, test_num=10, normalize_label=True)
    assert set(d) == KEYS | {"mean_label", "std_label"}


def test_f_mode_row():
    a = create_dataset(lambda x: x[0] * x[1], n_var=2, train_num=20, test_num=5, f_mode="row")
    b = create_dataset(lambda x: x[:, 0] * x[:, 1], n_var=2, train_num=20, test_num=5)
    assert all(torch.equal(a[k], b[k]) for k in KEYS)


def test_test_num_zero():
    d = create_dataset(f2, train_num=5, test_num=0)
    assert d["test_input"].shape == (0, 2) and d["test_label"].shape == (0, 1)


@pytest.mark.parametrize("default", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(ranges=[[0.1, 0.7], [-3, 2.5]], seed=5, train_num=37, test_num=11),
        dict(normalize_input=True, normalize_label=True, seed=2),
    ],
    ids=["default", "ranges", "normalised"],
)
def test_same_data_as_pykan(kw, default):
    kan_utils = pytest.importorskip("kan.utils", reason="pykan is a test dependency (requirements/test.txt)")
    old_dtype, t_state, n_state = torch.get_default_dtype(), torch.get_rng_state(), np.random.get_state()
    try:
        torch.set_default_dtype(default)
        with contextlib.redirect_stdout(io.StringIO()):
            ref = kan_utils.create_dataset(f2, n_var=2, **kw)
        ours = create_dataset(f2, n_var=2, **kw)
    finally:
        torch.set_default_dtype(old_dtype)
        torch.set_rng_state(t_state)
        np.random.set_state(n_state)
    assert set(ref) <= set(ours)
    for key in ref:
        assert ours[key].dtype == ref[key].dtype, key
        assert torch.equal(ours[key], ref[key]), key


@pytest.mark.parametrize(
    "kw, exc, pattern",
    [
        (dict(ranges=[1, -1]), ValueError, r"range of variable 0 must be finite with low < high, got \[1.0, -1.0\]"),
        (dict(ranges=[0, 0]), ValueError, r"range of variable 0 must be finite with low < high"),
        (dict(ranges=[0, float("inf")]), ValueError, "must be finite"),
        (dict(ranges=[0, float("nan")]), ValueError, "must be finite"),
        (dict(ranges=[[0, 1], [2, 1]]), ValueError, r"range of variable 1"),
        (dict(ranges=[[0, 1], [0, 1], [0, 1]]), ValueError, r"shape \(2,\) or \(n_var, 2\) = \(2, 2\), got shape \(3, 2\)"),
        (dict(ranges=[0, 1, 2]), ValueError, r"got shape \(3,\)"),
        (dict(ranges="ab"), ValueError, "ranges must be"),
        (dict(ranges=[[0, 1], [0]]), ValueError, "ranges must be"),
        (dict(n_var=0), ValueError, "n_var must be an int >= 1"),
        (dict(n_var=2.0), ValueError, "n_var must be an int"),
        (dict(train_num=0), ValueError, "train_num must be an int >= 1"),
        (dict(test_num=-1), ValueError, "test_num must be an int >= 0"),
        (dict(train_num=1, normalize_input=True), ValueError, "normalising needs train_num >= 2"),
        (dict(dtype=torch.int32), ValueError, "dtype must be a real floating"),
        (dict(seed=1.5), ValueError, "seed must be an int"),
        (dict(f_mode="cols"), ValueError, "f_mode must be 'col' or 'row'"),
    ],
)
def test_bad_arguments(kw, exc, pattern):
    with pytest.raises(exc, match=pattern):
        create_dataset(f2, **{"train_num": 10, "test_num": 5, **kw})


@pytest.mark.parametrize(
    "f, exc, pattern",
    [
        (lambda x: x.numpy(), TypeError, "f must return a torch.Tensor, got ndarray on the train inputs"),
        (lambda x: x[:, :, None], ValueError, r"to shape \(10,\) or \(10, n_out\), got \(10, 2, 1\)"),
        (lambda x: x[:-1, 0], ValueError, r"got \(9,\)"),
        (lambda x: x.sum(), ValueError, r"got \(\)"),
        (lambda x: x if x.shape[0] == 10 else x[:, :1], ValueError, "2 output column\\(s\\) on the train inputs but 1"),
        (5, TypeError, "f must be callable"),
    ],
)
def test_bad_f(f, exc, pattern):
    with pytest.raises(exc, match=pattern):
        create_dataset(f, train_num=10, test_num=5)


def test_zero_std_label_is_an_error():
    with pytest.raises(ValueError, match=r"cannot normalise label column\(s\) \[1\]: training std is \[0.0\]"):
        create_dataset(lambda x: torch.stack([x[:, 0], torch.ones_like(x[:, 0])], 1), train_num=10, normalize_label=True)
    with pytest.raises(ValueError, match="cannot normalise labels of dtype torch.int64"):
        create_dataset(lambda x: (x[:, 0] > 0).long(), train_num=10, normalize_label=True)
