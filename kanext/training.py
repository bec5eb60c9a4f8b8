"""fit(): pykan's training loop for kanext models, with LBFGS or Adam, grid
updates from the data, and the sparsity regularisation."""
from __future__ import annotations

import logging
import math
from typing import Callable, Iterable

import torch
from torch import Tensor

from .optim import LBFGS
from .recorded import drop_recorded
from .regularization import reg as _reg

__all__ = ["fit"]

_KEYS = ("train_input", "train_label", "test_input", "test_label")


def fit(
    model,
    dataset,
    opt="LBFGS",
    steps: int = 100,
    lr: float = 1.0,
    batch: int = -1,
    lamb: float = 0.0,
    lamb_l1: float = 1.0,
    lamb_entropy: float = 2.0,
    lamb_coef: float = 0.0,
    lamb_coefdiff: float = 0.0,
    update_grid: bool = True,
    grid_update_num: int = 10,
    start_grid_update_step: int = -1,
    stop_grid_update_step: int = 50,
    loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
    metrics: Iterable[Callable[[], float]] | None = None,
    log: int = 1,
    progress: bool = True,
    seed: int | None = None,
    reg_metric: str = "edge_forward_spline_n",
) -> dict:
    """Trains ``model`` and returns ``{'train_loss': [...], 'test_loss': [...], 'reg': [...], <metric>: [...]}``.

    Args:
        dataset: pykan's dict with train_input, train_label, test_input,
            test_label; or a pair (train_loader, test_loader) of DataLoaders
            yielding (input, label) batches (one batch of each per step,
            cycling).
        opt: 'LBFGS' (kanext.optim.LBFGS with pykan's settings: history 10,
            strong Wolfe line search, curvature tolerance 1e-32),
            'Adam', or a torch.optim.Optimizer over the model's parameters.
        steps: optimisation steps (one LBFGS step runs up to 20 iterations).
        lr: learning rate of 'LBFGS' / 'Adam'.
        batch: samples per step from a dict dataset (-1: all).
        lamb, lamb_l1, lamb_entropy, lamb_coef, lamb_coefdiff, reg_metric:
            objective = loss + lamb * reg (see kanext.regularization).
        update_grid, grid_update_num, start_grid_update_step,
            stop_grid_update_step: as pykan: the grids are moved to the
            training inputs every stop_grid_update_step // grid_update_num
            steps, from start_grid_update_step until stop_grid_update_step.
        loss_fn: loss(pred, label); default mean squared error, in which case
            the recorded losses are RMSEs (as pykan records them).
        metrics: callables without arguments, recorded every step under their
            ``__name__``.
        log: every how many steps the progress bar and the 'kanext' logger
            report.
        progress: show a tqdm progress bar.
        seed: seed of the private generator that draws mini-batches (the
            global RNG is never used).

    The last training inputs are kept as ``model.cache_data`` (used by
    refine, symbolic fitting, attribution). Statistics recorded before the
    fit (``acts``, scores; see :mod:`kanext.recorded`) describe the old
    parameters and are dropped. The test loss is computed under torch.no_grad().
    """
    if steps < 0:
        raise ValueError(f"fit: steps must be >= 0, got {steps}")
    if lamb > 0 and not callable(getattr(model, "reg", None)):
        raise ValueError(f"fit: lamb={lamb} > 0 needs a model with a sparsity regulariser (KAN); "
                         f"{type(model).__name__} has none, use lamb=0")
    drop_recorded(model)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = _make_optimizer(opt, params, lr)
    mse = loss_fn is None
    loss_fn = loss_fn or (lambda pred, y: torch.mean((pred - y) ** 2))
    metrics = list(metrics or [])
    gen = torch.Generator().manual_seed(seed if seed is not None else 0)
    batches = _batches(dataset, batch, gen)
    results = {"train_loss": [], "test_loss": [], "reg": []}
    for m in metrics:
        results[m.__name__] = []
    grid_update_freq = max(1, int(stop_grid_update_step / max(grid_update_num, 1)))
    bar = _progress(steps, progress)
    for step in range(steps):
        x, y, x_test, y_test = next(batches)
        model.cache_data = x.detach()
        if update_grid and step % grid_update_freq == 0 and start_grid_update_step <= step < stop_grid_update_step:
            model.update_grid(x)
        last = {}

        def closure():
            optimizer.zero_grad()
            if lamb > 0:
                inputs = [x.reshape(-1, model.width[0])]
                for l in range(model.depth):
                    out = model.layer_forward(l, inputs[-1])
                    inputs.append(out)
                pred = inputs.pop()
                reg_ = _reg(model, x, lamb_l1, lamb_entropy, lamb_coef, lamb_coefdiff, reg_metric, inputs=inputs)
            else:
                pred = model(x)
                reg_ = pred.new_zeros(())
            train_loss = loss_fn(pred, y)
            objective = train_loss + lamb * reg_
            objective.backward()
            last["train"], last["reg"] = train_loss.detach(), reg_.detach()
            return objective

        optimizer.step(closure)  # every torch optimizer takes a closure; LBFGS needs it
        with torch.no_grad():
            test_loss = loss_fn(model(x_test), y_test)
        train_v, test_v = float(last["train"]), float(test_loss)
        if mse:
            train_v, test_v = math.sqrt(max(train_v, 0.0)), math.sqrt(max(test_v, 0.0))
        results["train_loss"].append(train_v)
        results["test_loss"].append(test_v)
        results["reg"].append(float(last["reg"]))
        for m in metrics:
            results[m.__name__].append(float(m()))
        if log and step % log == 0:
            msg = f"step {step}: train_loss {train_v:.2e} | test_loss {test_v:.2e} | reg {results['reg'][-1]:.2e}"
            _logger_info(msg)
            if bar is not None:
                bar.set_description(f"| train_loss: {train_v:.2e} | test_loss: {test_v:.2e} | reg: {results['reg'][-1]:.2e} |")
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return results


def _logger_info(msg: str) -> None:
    logging.getLogger("kanext").info(msg)


def _make_optimizer(opt, params, lr):
    if isinstance(opt, torch.optim.Optimizer):
        return opt
    if opt == "LBFGS":
        return LBFGS(params, lr=lr, history_size=10, line_search_fn="strong_wolfe", tolerance_grad=1e-32,
                     tolerance_change=1e-32, tolerance_ys=1e-32)
    if opt == "Adam":
        return torch.optim.Adam(params, lr=lr)
    raise ValueError(f"fit: opt must be 'LBFGS', 'Adam' or a torch.optim.Optimizer, got {opt!r}")


def _progress(steps, enabled):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=steps, ncols=100, desc="description")


def _batches(dataset, batch, gen):
    """Yields (x, y, x_test, y_test) forever."""
    if isinstance(dataset, dict):
        missing = [k for k in _KEYS if k not in dataset]
        if missing:
            raise ValueError(f"fit: dataset dict lacks {missing}; expected keys {list(_KEYS)}")
        xtr, ytr, xte, yte = (dataset[k] for k in _KEYS)
        for name, a, b in (("train", xtr, ytr), ("test", xte, yte)):
            if a.shape[0] != b.shape[0]:
                raise ValueError(f"fit: {name}_input has {a.shape[0]} rows but {name}_label has {b.shape[0]}")
        n_tr, n_te = xtr.shape[0], xte.shape[0]
        full = batch == -1 or batch >= n_tr
        while True:
            if full:
                yield xtr, ytr, xte, yte
            else:
                i = torch.randperm(n_tr, generator=gen)[:batch].to(xtr.device)
                j = torch.randperm(n_te, generator=gen)[: min(batch, n_te)].to(xte.device)
                yield xtr[i], ytr[i], xte[j], yte[j]
    if isinstance(dataset, (tuple, list)) and len(dataset) == 2:
        train_loader, test_loader = dataset
        tr, te = _cycle(train_loader), _cycle(test_loader)
        while True:
            x, y = next(tr)[:2]
            xt, yt = next(te)[:2]
            yield x, y, xt, yt
    raise TypeError(f"fit: dataset must be a dict with keys {list(_KEYS)} or a (train_loader, test_loader) pair, "
                    f"got {type(dataset).__name__}")


def _cycle(loader):
    while True:
        empty = True
        for b in loader:
            empty = False
            yield b
        if empty:
            raise ValueError("fit: a DataLoader yielded no batch")
