"""fit() / train(dataset): pykan's training loop."""
from __future__ import annotations

import logging
import math

import pytest
import torch

import kanext

F64 = torch.float64


def _dataset(n=400, seed=0):
    g = torch.Generator().manual_seed(seed)
    f = lambda x: torch.exp(torch.sin(torch.pi * x[:, :1]) + x[:, 1:] ** 2)  # noqa: E731
    xtr = torch.rand(n, 2, generator=g, dtype=F64) * 2 - 1
    xte = torch.rand(n, 2, generator=g, dtype=F64) * 2 - 1
    return dict(train_input=xtr, train_label=f(xtr), test_input=xte, test_label=f(xte))


def test_fit_lbfgs_learns_and_reports_rmse():
    ds = _dataset()
    m = kanext.KAN([2, 5, 1], grid=5, seed=1, dtype=F64)
    with torch.no_grad():
        rmse0 = torch.sqrt(torch.mean((m(ds["test_input"]) - ds["test_label"]) ** 2)).item()
    r = m.fit(ds, steps=20, progress=False)
    assert set(r) == {"train_loss", "test_loss", "reg"} and all(len(v) == 20 for v in r.values())
    with torch.no_grad():
        rmse = torch.sqrt(torch.mean((m(ds["test_input"]) - ds["test_label"]) ** 2)).item()
    assert rmse == pytest.approx(r["test_loss"][-1], rel=1e-12)
    assert rmse < 0.05 * rmse0
    # pykan leaves cache_data at the inputs of its last forward: the test forward of the last step
    assert not torch.equal(ds["test_input"], ds["train_input"])
    assert torch.equal(m.cache_data, ds["test_input"])


@pytest.mark.parametrize("lamb", [0.0, 1e-3])
def test_fit_records_the_loss_of_the_accepted_call(lamb):
    """Each step's train_loss and reg are those of the closure call that the
    optimiser names as made at the step's final parameters (accepted_eval),
    not of its last call: a rejected line-search trial (test_optim checks that
    LBFGS names the right call) once showed NaN in the history of a Feynman fit
    whose parameters were finite. Here an optimiser tries a NaN step last,
    rejects it, and says so."""
    from kanext.optim import LBFGS

    class RejectsLastTrial(LBFGS):
        def step(self, closure):
            loss = super().step(closure)
            keep = [p.detach().clone() for p in self._params]
            with torch.no_grad():
                for p in self._params:
                    p.fill_(float("nan"))
            with torch.enable_grad():
                closure()  # a trial into NaN, rejected:
            with torch.no_grad():
                for p, v in zip(self._params, keep):
                    p.copy_(v)
            return loss

    ds = _dataset(n=200)
    m = kanext.KAN([2, 3, 1], grid=5, seed=2, dtype=F64)
    opt = RejectsLastTrial(m.parameters(), history_size=10, line_search_fn="strong_wolfe", max_iter=5)
    for _ in range(3):
        r = m.fit(ds, opt=opt, steps=1, progress=False, update_grid=False, lamb=lamb)
        with torch.no_grad():
            rmse = torch.sqrt(torch.mean((m(ds["train_input"]) - ds["train_label"]) ** 2)).item()
            reg = m.get_reg("edge_forward_spline_n", 1.0, 2.0, 0.0, 0.0).item() if lamb else 0.0
        assert torch.isfinite(torch.cat([p.flatten() for p in m.parameters()])).all()
        assert r["train_loss"][-1] == pytest.approx(rmse, rel=1e-10, abs=1e-14)
        assert r["reg"][-1] == pytest.approx(reg, rel=1e-10, abs=1e-14)


@pytest.mark.parametrize("opt", ["Adam", "instance"])
def test_fit_adam_and_optimizer_instance(opt):
    ds = _dataset()
    m = kanext.KAN([2, 3, 1], grid=5, seed=0, dtype=F64)
    o = torch.optim.SGD(m.parameters(), lr=0.05) if opt == "instance" else "Adam"
    r = m.fit(ds, opt=o, steps=60, lr=0.02, update_grid=False, progress=False)
    assert r["train_loss"][-1] < 0.7 * r["train_loss"][0]


def test_fit_minibatches_are_reproducible_and_global_rng_untouched():
    ds = _dataset()
    state = torch.get_rng_state()
    runs = []
    for _ in range(2):
        m = kanext.KAN([2, 3, 1], grid=5, seed=0, dtype=F64)
        runs.append(m.fit(ds, opt="Adam", steps=10, batch=64, seed=3, lr=0.01, progress=False)["train_loss"])
    assert runs[0] == runs[1]
    assert torch.equal(torch.get_rng_state(), state)


def test_fit_with_dataloaders():
    ds = _dataset()
    tr = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(ds["train_input"], ds["train_label"]),
                                     batch_size=100)
    te = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(ds["test_input"], ds["test_label"]),
                                     batch_size=100)
    m = kanext.KAN([2, 3, 1], grid=5, seed=0, dtype=F64)
    r = m.fit((tr, te), opt="Adam", lr=0.02, steps=40, progress=False)
    assert len(r["test_loss"]) == 40 and r["train_loss"][-1] < r["train_loss"][0]


class _DictBatches(torch.utils.data.Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return self.x.shape[0]

    def __getitem__(self, i):
        return {"x": self.x[i], "y": self.y[i]}


@pytest.mark.parametrize("form", ["triple", "dict", "single"])
def test_fit_refuses_loader_batches_that_are_not_pairs(form):
    """A loader's batch must be (inputs, labels): a third element (e.g. sample
    weights) was silently dropped, and a dict failed with 'unhashable type'."""
    ds = _dataset(40)
    x, y = ds["train_input"], ds["train_label"]
    data = {"triple": torch.utils.data.TensorDataset(x, y, torch.ones(40)), "dict": _DictBatches(x, y),
            "single": torch.utils.data.TensorDataset(x)}[form]
    good = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=20)
    bad = torch.utils.data.DataLoader(data, batch_size=20)
    m = kanext.KAN([2, 3, 1], grid=5, seed=0, dtype=F64)
    got = {"triple": r"a list of 3: \(Tensor, Tensor, Tensor\)", "dict": r"a dict with keys \['x', 'y'\]",
           "single": r"a list of 1: \(Tensor\)"}[form]
    with pytest.raises(TypeError, match=r"each batch of the train loader must be an \(inputs, labels\) pair of "
                                        r"tensors, got " + got):
        m.fit((bad, good), steps=1, progress=False)
    with pytest.raises(TypeError, match="each batch of the test loader"):
        m.fit((good, bad), steps=1, progress=False)


def test_test_loss_without_autograd_and_metrics_and_logging(caplog):
    ds = _dataset(100)
    grad_modes = []

    def loss_fn(pred, y):
        grad_modes.append((pred.shape[0], torch.is_grad_enabled()))
        return torch.mean(torch.abs(pred - y))

    calls = []

    def my_metric():
        calls.append(1)
        return 42.0

    m = kanext.KAN([2, 2, 1], grid=3, seed=0, dtype=F64)
    with caplog.at_level(logging.INFO, logger="kanext"):
        r = m.fit(ds, opt="Adam", steps=4, loss_fn=loss_fn, metrics=[my_metric], log=2, progress=False)
    assert r["my_metric"] == [42.0] * 4 and len(calls) == 4
    # custom loss: recorded as is (no sqrt)
    assert all(v >= 0 for v in r["train_loss"])
    assert any(flag for _, flag in grad_modes) and any(not flag for _, flag in grad_modes)
    assert len([rec for rec in caplog.records if "train_loss" in rec.getMessage()]) == 2


def test_train_is_fit_with_a_dataset_and_module_train_otherwise():
    ds = _dataset(100)
    m = kanext.KAN([2, 2, 1], grid=3, seed=0, dtype=F64)
    assert m.train() is m and m.training
    assert m.train(False) is m and not m.training
    m.eval()
    assert not m.training
    r = m.train(ds, opt="Adam", steps=3, progress=False)
    assert len(r["train_loss"]) == 3
    with pytest.raises(TypeError, match="takes no other arguments"):
        m.train(True, steps=3)


def test_fit_grid_updates_follow_the_schedule():
    ds = _dataset(200)
    m = kanext.KAN([2, 2, 1], grid=4, seed=0, dtype=F64)
    seen = []
    orig = m.update_grid
    m.update_grid = lambda x, *a, **k: (seen.append(1), orig(x, *a, **k))  # type: ignore[method-assign]
    m.fit(ds, opt="Adam", steps=12, grid_update_num=5, stop_grid_update_step=10, progress=False)
    assert len(seen) == 5  # every 2 steps below step 10: 0, 2, 4, 6, 8
    seen.clear()
    m.fit(ds, opt="Adam", steps=12, update_grid=False, progress=False)
    assert seen == []


def test_fit_bad_arguments():
    ds = _dataset(50)
    m = kanext.KAN([2, 2, 1], grid=3, seed=0, dtype=F64)
    with pytest.raises(ValueError, match="opt must be"):
        m.fit(ds, opt="SGD", steps=1, progress=False)
    with pytest.raises(ValueError, match="lacks"):
        m.fit({"train_input": ds["train_input"]}, steps=1, progress=False)
    with pytest.raises(ValueError, match="rows"):
        m.fit(dict(ds, train_label=ds["train_label"][:10]), steps=1, progress=False)
    with pytest.raises(TypeError, match="dataset must be"):
        m.fit([1, 2, 3], steps=1, progress=False)


def test_fit_refuses_data_of_another_dtype_and_leaves_no_unusable_cache():
    """A fit that fails on a dtype mismatch must say so up front and not leave cache_data in the
    wrong dtype (a later refine used to fail on it)."""
    import pytest
    import torch

    import kanext

    ds = kanext.create_dataset(lambda x: x[:, :1] * x[:, 1:], n_var=2, seed=0, dtype=torch.float64)
    model = kanext.KAN([2, 3, 1], seed=0)  # float32
    with pytest.raises(ValueError, match=r"train_input is torch.float64.*torch.float32.*model.to\(torch.float64\)"):
        model.fit(ds, steps=1, progress=False)
    assert getattr(model, "cache_data", None) is None
    model.refine(10)  # works: nothing stale was left behind
    model.fit({k: v.float() for k, v in ds.items()}, steps=1, progress=False)
    assert model.cache_data.dtype == torch.float32


@pytest.mark.parametrize("net", ["KAN", "LAN"])
def test_kept_samples_follow_a_dtype_change(net):
    """After fit, model.double() (or .float()) converts the parameters; the
    kept samples (the last forward's inputs, cache_data, the recorded
    activations) follow, so every sample-driven method equals the same call
    with those samples passed explicitly in the new dtype."""
    ds = {k: v.float() for k, v in _dataset(200).items()}
    model = getattr(kanext, net)([2, 3, 1], seed=0)
    model.fit(ds, steps=2, progress=False)
    if net == "KAN":
        model.save_act = True
        model(ds["test_input"])  # recorded activations too
    x64 = ds["test_input"].double()
    model.double()
    ref = model.refine(7, x=model.cache_data.double())
    got = model.refine(7)
    assert torch.equal(got(x64), ref(x64))
    if net == "KAN":
        model.attribute()
        s_kept = model.feature_score.clone()
        model.attribute(x=x64)
        assert torch.equal(s_kept, model.feature_score)
        assert model.reg().item() == model.reg(x64).item()
        model.fix_symbolic(0, 0, 0, "sin", verbose=False)
        model.double().float()  # and back
        model.prune()
    else:
        model.fix_symbolic(0, 0, "sin", verbose=False)


def test_empty_test_split():
    """create_dataset(test_num=0): fit records NaN test losses and keeps the
    training inputs as cache_data (before: the empty test inputs, so refine
    fitted its splines on zero samples and the data-driven methods found none);
    a refit on an explicitly empty x raises."""
    ds = _dataset(100)
    ds["test_input"], ds["test_label"] = ds["test_input"][:0], ds["test_label"][:0]
    model = kanext.KAN([2, 2, 1], grid=5, seed=0, dtype=F64)
    r = model.fit(ds, steps=2, progress=False)
    assert len(r["test_loss"]) == 2 and all(math.isnan(v) for v in r["test_loss"])
    assert all(math.isfinite(v) for v in r["train_loss"])
    assert torch.equal(model.cache_data, ds["train_input"])
    x = ds["train_input"]
    assert torch.equal(model.refine(7)(x), model.refine(7, x=x)(x))
    model.attribute()
    with pytest.raises(ValueError, match=r"x has none \(shape \(0, 2\)\)"):
        model.refine(7, x=x[:0])


def _grads_of(model, objective_fn, backward):
    for p in model.parameters():
        p.grad = None
    out = objective_fn()
    backward(out)
    return out.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("label", ["same", "broadcast", "other_dtype"])
def test_default_loss_and_backward_equal_torch_bit_for_bit(dtype, label):
    """fit's loss (mean_squared_error) and its backward call (training._backward, the engine call without
    torch.autograd.backward's wrapper) give the values and gradients of pykan's loss with loss.backward():
    bit for bit where shapes and dtypes match (F.mse_loss), and pykan's own form otherwise (a (1, 1) label
    that broadcasts to the output's shape, or another dtype)."""
    from kanext.training import _backward, mean_squared_error

    m = kanext.KAN([2, 5, 1], grid=5, k=3, seed=0, dtype=dtype)
    g = torch.Generator().manual_seed(7)
    x = (torch.rand(300, 2, generator=g, dtype=F64) * 2 - 1).to(dtype)
    y = torch.rand(300, 1, generator=g, dtype=F64)
    y = {"same": y.to(dtype), "broadcast": y.to(dtype)[:1], "other_dtype": y.to(
        torch.float32 if dtype == F64 else F64)}[label]
    got = _grads_of(m, lambda: mean_squared_error(m(x), y), _backward)
    if label == "same":
        want = _grads_of(m, lambda: torch.nn.functional.mse_loss(m(x), y), lambda t: t.backward())
    else:
        want = _grads_of(m, lambda: torch.mean((m(x) - y) ** 2), lambda t: t.backward())
    assert got[0].dtype == want[0].dtype and torch.equal(got[0], want[0])
    assert len(got[1]) == len(want[1]) == 3 * 2
    for a, b in zip(got[1], want[1]):
        assert torch.equal(a, b)


def test_labels_that_broadcast_the_error_raise():
    """Labels of shape (N,) against a (N, 1) output would make pykan's loss an (N, N) mean, and fit would
    learn the labels' mean with no warning (test RMSE 0.7 against 1e-3 on sin): fit, evaluate and the loss
    itself raise instead, and name the shapes."""
    from kanext.training import fit, mean_squared_error

    ds = _dataset(n=50)
    flat = dict(ds, train_label=ds["train_label"][:, 0], test_label=ds["test_label"][:, 0])
    m = kanext.KAN([2, 3, 1], grid=3, seed=0, dtype=F64)
    state = {k: v.clone() for k, v in m.state_dict().items()}
    with pytest.raises(ValueError, match=r"train_label, default loss\): labels of shape \(50,\) do not match the "
                                         r"model's output \(50, 1\)"):
        m.fit(flat, steps=2, progress=False)
    with pytest.raises(ValueError, match=r"test_label, default loss\): labels of shape \(50,\)"):
        m.fit(dict(ds, test_label=flat["test_label"]), steps=2, progress=False)
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in state.items())
    # without grid updates (and for a plain module) the first loss raises, before the optimiser moves
    plain = torch.nn.Sequential(torch.nn.Linear(2, 1, dtype=F64))
    for model, kw in ((m, dict(update_grid=False)), (m, dict(update_grid=False, opt="Adam")), (plain, {}),
                      (plain, dict(opt="Adam"))):
        before = {k: v.clone() for k, v in model.state_dict().items()}
        with pytest.raises(ValueError, match=r"mean_squared_error: labels of shape \(50,\)"):
            fit(model, flat, steps=2, progress=False, **kw)
        assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    with pytest.raises(ValueError, match=r"evaluate: labels of shape \(50,\)"):
        m.evaluate(flat)
    with pytest.raises(ValueError, match="not broadcastable"):
        mean_squared_error(torch.zeros(5, 2), torch.zeros(3))
    with pytest.raises(ValueError, match=r"would be \(5, 5\)"):
        mean_squared_error(torch.zeros(5), torch.zeros(5, 1))
    assert m.fit(ds, steps=1, progress=False)["train_loss"][0] > 0  # (N, 1) labels: fine
    assert set(m.evaluate(ds)) == {"test_loss", "n_edge", "n_grid"}


@pytest.mark.parametrize("batch", [0, -5, 2.5, True, "10"])
def test_fit_bad_batch_raises_before_any_change(batch):
    ds = _dataset(n=40)
    m = kanext.KAN([2, 3, 1], grid=3, seed=0, dtype=F64)
    state = {k: v.clone() for k, v in m.state_dict().items()}
    with pytest.raises(ValueError, match="batch must be a positive int .* or -1"):
        m.fit(ds, opt="Adam", steps=2, batch=batch, progress=False)
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in state.items())


def test_backward_fallbacks_keep_torchs_behaviour(monkeypatch):
    """training._backward's fast path is only for a plain real scalar with a graph; everything else goes
    through objective.backward(), with torch's errors, modes, subclasses and functorch checks."""
    from torch.overrides import TorchFunctionMode

    from kanext import training

    p = torch.randn(5, dtype=F64, requires_grad=True)
    # a hook on the leaf still runs (the engine is the same)
    seen = []
    h = p.register_hook(lambda g: seen.append(g.clone()))
    training._backward((p * p).sum())
    h.remove()
    assert len(seen) == 1 and torch.equal(p.grad, 2 * p.detach()) and torch.equal(seen[0], p.grad)
    # one element but not 0-d: torch accepts it
    p.grad = None
    training._backward((3 * p).sum().reshape(1))
    assert torch.equal(p.grad, torch.full_like(p, 3.0))
    with pytest.raises(RuntimeError, match="scalar outputs"):
        training._backward(p * 2)
    with pytest.raises(RuntimeError, match="does not require grad"):
        training._backward(p.detach().sum())
    with pytest.raises(RuntimeError, match="real scalar"):
        training._backward((p * 1j).sum())

    class Recording(TorchFunctionMode):
        def __init__(self):
            super().__init__()
            self.funcs = []

        def __torch_function__(self, func, types, args=(), kwargs=None):
            self.funcs.append(getattr(func, "__name__", str(func)))
            return func(*args, **(kwargs or {}))

    p.grad = None
    loss = (p * p).sum()
    with Recording() as mode:
        training._backward(loss)
    assert "backward" in mode.funcs and torch.equal(p.grad, 2 * p.detach())

    class Sub(torch.Tensor):
        calls = 0

        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            if getattr(func, "__name__", "") == "backward":
                cls.calls += 1
            return super().__torch_function__(func, types, args, kwargs or {})

    p.grad = None
    training._backward((p * p).sum().as_subclass(Sub))
    assert Sub.calls == 1 and torch.equal(p.grad, 2 * p.detach())

    with pytest.raises(RuntimeError, match="functorch transform"):
        torch.func.grad(lambda t: training._backward((t * t).sum()) or t.sum())(p.detach())

    # a torch without the engine helper: plain backward
    monkeypatch.setattr(training, "_engine_run_backward", None)
    p.grad = None
    training._backward((p * p).sum())
    assert torch.equal(p.grad, 2 * p.detach())


def test_mean_squared_error_sends_subclasses_through_mse_loss():
    from kanext.training import mean_squared_error

    class Sub(torch.Tensor):
        names = []

        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            cls.names.append(getattr(func, "__name__", ""))
            return super().__torch_function__(func, types, args, kwargs or {})

    a, b = torch.randn(6, 1, dtype=F64), torch.randn(6, 1, dtype=F64)
    got = mean_squared_error(a.as_subclass(Sub), b)
    assert "mse_loss" in Sub.names and torch.equal(got.as_subclass(torch.Tensor), torch.nn.functional.mse_loss(a, b))
    assert torch.equal(mean_squared_error(a, b), torch.nn.functional.mse_loss(a, b))
