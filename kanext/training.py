"""fit(): pykan's training loop for kanext models, with LBFGS or Adam, grid
updates from the data, and the sparsity regularisation."""
from __future__ import annotations

import logging
import math
import numbers
from typing import Callable, Iterable

import torch
from torch import Tensor, nn

from .distributed import all_reduce_grads, all_reduce_sum, broadcast_state, check_same_model, is_main, \
    refuse_sharded, sync_group
from .optim import LBFGS
from .recorded import drop_recorded
from .regularization import reg as _reg

__all__ = ["fit"]

_KEYS = ("train_input", "train_label", "test_input", "test_label")


_MEAN = torch.nn._reduction.get_enum("mean")

try:  # what torch.autograd.backward calls once it has checked its arguments
    from torch.autograd.graph import _engine_run_backward
except ImportError:  # older torch: loss.backward() throughout
    _engine_run_backward = None


def mean_squared_error(pred: Tensor, y: Tensor) -> Tensor:
    """fit's default loss, pykan's ``torch.mean((pred - y) ** 2)``: with
    matching shapes and dtypes as F.mse_loss (one op and one backward node
    where pykan's form has three of each: about 25 us less per call of a
    small model on 1000 points, bench/tiny.py), otherwise (broadcasting,
    mixed dtypes) in pykan's form, which broadcasts and promotes silently.
    Plain tensors of equal shapes go straight to F.mse_loss's op, without
    its Python wrapper (a no-op broadcast and argument checks, about 8 us);
    subclasses go through F.mse_loss and its __torch_function__.
    Labels that would broadcast the error to a larger shape than pred's
    (labels of shape (N,) against predictions (N, 1) give an (N, N) error,
    pykan's form then fits the labels' mean with no warning) raise a
    ValueError; labels that broadcast to pred's shape (a scalar) are kept."""
    if pred.shape == y.shape and pred.dtype == y.dtype:
        if type(pred) is Tensor and type(y) is Tensor:
            return torch._C._nn.mse_loss(pred, y, _MEAN)
        return torch.nn.functional.mse_loss(pred, y)
    check_label_shape(pred.shape, y.shape, "mean_squared_error")
    return torch.mean((pred - y) ** 2)


def check_label_shape(pred_shape, label_shape, what: str) -> None:
    """A ValueError where pred - label would broadcast beyond pred's shape."""
    pred_shape, label_shape = torch.Size(pred_shape), torch.Size(label_shape)
    try:
        shape = torch.broadcast_shapes(pred_shape, label_shape)
    except RuntimeError:
        shape = None
    if shape != pred_shape:
        raise ValueError(
            f"{what}: labels of shape {tuple(label_shape)} do not match the model's output {tuple(pred_shape)} "
            f"(pred - label would be {'not broadcastable' if shape is None else tuple(shape)}); give labels of "
            f"shape {tuple(pred_shape)}, e.g. y.reshape(-1, 1) for one output, or pass your own loss_fn")


def _check_labels(model, x: Tensor, y: Tensor, x_test: Tensor, y_test: Tensor, fwd_kw: dict) -> None:
    """With the default loss, the labels must have the output's shape (or
    broadcast to it): checked on a forward of two rows, before the first
    grid update changes the model. (Without grid updates the first loss
    raises, before the optimiser's first change; a plain nn.Module, which
    may hold batch statistics, gets no extra forward.)"""
    with torch.no_grad():
        for split, xs, ys in (("train", x, y), ("test", x_test, y_test)):
            if isinstance(xs, Tensor) and isinstance(ys, Tensor) and xs.dim() >= 1 and xs.shape[0] >= 1:
                out = model(xs[:2], **fwd_kw)
                check_label_shape((xs.shape[0], *out.shape[1:]), ys.shape, f"fit ({split}_label, default loss)")


def _backward(objective: Tensor) -> None:
    """``objective.backward()`` for fit's real scalar objective, without
    torch.autograd.backward's Python argument handling (about 20 us a call
    on this project's 2-core machine, 5% of a step of a [2, 5, 1] KAN on
    1000 points): the same engine call with the same seed gradient,
    ``ones_like(objective)``, so the gradients are the same bit for bit.
    Anything else (a tensor subclass or a __torch_function__ mode, a
    non-scalar or complex objective, a functorch transform, a torch without
    that engine helper) takes ``objective.backward()`` itself, with its
    checks and errors."""
    if (_engine_run_backward is None or type(objective) is not Tensor or objective.grad_fn is None
            or objective.dim() != 0 or not objective.dtype.is_floating_point
            or torch.overrides.has_torch_function((objective,)) or torch._C._are_functorch_transforms_active()):
        objective.backward()
        return
    _engine_run_backward((objective,), (torch.ones_like(objective, memory_format=torch.preserve_format),),
                         False, False, (), allow_unreachable=True, accumulate_grad=True)


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
    sync=True,
    shard: bool = True,
    singularity_avoiding: bool = False,
    y_th: float = 1000.0,
    display_metrics: Iterable[str] | None = None,
    save_fig: bool = False,
    in_vars=None,
    out_vars=None,
    beta: float = 3,
    save_fig_freq: int = 1,
    img_folder: str = "./video",
) -> dict:
    """Trains ``model`` and returns ``{'train_loss': [...], 'test_loss': [...], 'reg': [...], <metric>: [...]}``.

    One entry per step. train_loss and reg are those of the parameters the step
    ends on (with kanext's LBFGS, the closure call its line search accepted:
    pykan records the last call, which can be a rejected trial, even a NaN
    one); test_loss is evaluated after the step. With other optimisers the
    last closure call is recorded.

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
        batch: samples per step from a dict dataset (-1: all); anything else
            than a positive int or -1 raises a ValueError.
        lamb, lamb_l1, lamb_entropy, lamb_coef, lamb_coefdiff, reg_metric:
            objective = loss + lamb * reg (see kanext.regularization).
        update_grid, grid_update_num, start_grid_update_step,
            stop_grid_update_step: as pykan: the grids are moved to the
            training inputs every stop_grid_update_step // grid_update_num
            steps, from start_grid_update_step until stop_grid_update_step.
            Models without an ``update_grid`` method (:class:`kanext.MLP`,
            any plain nn.Module) have no grid and skip these updates.
        loss_fn: loss(pred, label); default mean squared error,
            ``torch.mean((pred - label) ** 2)`` as pykan's (computed with
            ``torch.nn.functional.mse_loss`` when the shapes and dtypes match:
            the same value, one op and one backward instead of three), in
            which case the recorded losses are RMSEs (as pykan records them).
            With it, labels must have the output's shape (or broadcast to
            it): (N,) labels for an (N, 1) output raise a ValueError before
            anything changes, where pykan's form silently fits their mean.
        metrics: callables without arguments, recorded every step under their
            ``__name__``.
        log: every how many steps the progress bar and the 'kanext' logger
            report.
        progress: show a tqdm progress bar.
        seed: seed of the private generator that draws mini-batches (the
            global RNG is never used).
        sync: data parallelism under torch.distributed (e.g. torchrun): True
            (default: the default process group when one is initialised and
            has more than one rank), False (train this process alone), or a
            ProcessGroup. See "Under torchrun" below.
        singularity_avoiding, y_th: pykan's: the symbolic edges evaluate
            their singularity-safe variants (bounded by about y_th) in the
            training forward (KAN only).
        display_metrics: names of recorded results ('train_loss',
            'test_loss', 'reg' or a metric's ``__name__``) that the progress
            bar shows instead of the default three (pykan's display_metrics).
        save_fig, save_fig_freq, img_folder, in_vars, out_vars, beta: pykan's
            training video: every save_fig_freq steps the model is plotted
            (:meth:`KAN.plot` with in_vars, out_vars, beta, title "Step n")
            to ``<img_folder>/<step>.jpg`` (KAN only; rank 0 only).
        shard: under data parallelism, whether a dict dataset is split by
            rank (rank r takes the r-th of world-size contiguous row blocks of
            train and test). With shard=False each rank's dict is its own
            local data. DataLoaders are never split by fit: give each rank a
            loader with a ``DistributedSampler`` (fit raises if shard is True
            and a loader has another sampler; pass shard=False for loaders
            that are already per rank).

    As in pykan, ``model.cache_data`` is left holding the inputs of the last
    forward of the last step, which is the test forward: the test inputs of
    that step (used by refine, symbolic fitting, attribution). Statistics recorded before the
    fit (``acts``, scores; see :mod:`kanext.recorded`) describe the old
    parameters and are dropped. The test loss is computed under torch.no_grad().
    An empty test split (e.g. ``create_dataset(..., test_num=0)``) is allowed:
    the test loss is then recorded as NaN and ``cache_data`` holds the
    training inputs of the last step.

    Under torchrun (every rank calls fit with the same model shapes and
    arguments): fit checks that the ranks' models have the same shapes (a
    clear error otherwise), copies rank 0's parameters and buffers to every
    rank, and then each step minimises the global objective: every rank's
    loss is weighted by its share of the step's samples and the gradients are
    summed over the ranks, so every rank takes the same optimizer step (LBFGS
    line searches included) and replicas stay bit-identical; with a mean
    loss (the default MSE, or any mean over samples) this is the loss of the
    concatenated batch. Grid updates gather the ranks' inputs (see
    :mod:`kanext.distributed`). The recorded losses and metrics are those
    global values (metrics are evaluated per rank and averaged); only rank 0
    shows the progress bar and logs. The regularisation term (lamb > 0) is
    computed on each rank's own samples and averaged in the same way, so it
    is the global regulariser only up to how the edge statistics of the
    shards differ. Pass the bare model, not a DistributedDataParallel
    wrapper: fit reduces the gradients itself.
    """
    if steps < 0:
        raise ValueError(f"fit: steps must be >= 0, got {steps}")
    if lamb > 0 and not callable(getattr(model, "reg", None)):
        raise ValueError(f"fit: lamb={lamb} > 0 needs a model with a sparsity regulariser (KAN); "
                         f"{type(model).__name__} has none, use lamb=0")
    if isinstance(model, nn.parallel.DistributedDataParallel):
        raise TypeError("fit: got a DistributedDataParallel wrapper; pass the model itself (model.module): "
                        "under torch.distributed fit reduces gradients across ranks on its own")
    refuse_sharded(model, "fit")
    group = sync_group(sync)
    if group is not None:
        check_same_model(model, group)
        broadcast_state(model, group)
        if shard:
            dataset = _shard(dataset, group)
    main = is_main(group)
    fwd_kw = {}
    if singularity_avoiding:
        if not hasattr(model, "symbolic_fun"):
            raise ValueError(f"fit: singularity_avoiding applies to a KAN's symbolic edges; "
                             f"{type(model).__name__} has none")
        fwd_kw = {"singularity_avoiding": True, "y_th": float(y_th)}
    if save_fig and not hasattr(model, "symbolic_fun"):
        raise ValueError(f"fit: save_fig plots a KAN each step; use it with a KAN, not a {type(model).__name__}")
    display_metrics = list(display_metrics) if display_metrics is not None else None
    drop_recorded(model)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = _make_optimizer(opt, params, lr)
    mse = loss_fn is None
    loss_fn = loss_fn or mean_squared_error
    metrics = list(metrics or [])
    gen = torch.Generator().manual_seed(seed if seed is not None else 0)
    batches = _batches(dataset, batch, gen)
    results = {"train_loss": [], "test_loss": [], "reg": []}
    for m in metrics:
        results[m.__name__] = []
    for name in display_metrics or []:
        if name not in results:
            raise ValueError(f"fit: display_metrics entry {name!r} is not recorded; known: {sorted(results)}")
    if save_fig and main:
        import os

        os.makedirs(img_folder, exist_ok=True)
    grid_update_freq = max(1, int(stop_grid_update_step / max(grid_update_num, 1)))
    has_grid = callable(getattr(model, "update_grid", None))  # a model without grids (an MLP) has none to move
    bar = _progress(steps, progress and main)
    for step in range(steps):
        x, y, x_test, y_test = next(batches)
        if step == 0:
            _check_batch(model, x, x_test)
            if mse and update_grid and has_grid:  # (otherwise the first loss checks, before any change)
                _check_labels(model, x, y, x_test, y_test, fwd_kw)
        if update_grid and has_grid and step % grid_update_freq == 0 and start_grid_update_step <= step < stop_grid_update_step:
            model.update_grid(x, sync=group if group is not None else False)
        calls = []  # (train loss, reg) of each closure call of this step
        if group is not None:  # this rank's share of the step's train and test samples
            counts = all_reduce_sum(torch.tensor([x.shape[0], x_test.shape[0]], dtype=torch.float64), group)
            w_train, w_test = x.shape[0] / float(counts[0]), x_test.shape[0] / max(float(counts[1]), 1.0)

        def closure():
            optimizer.zero_grad()
            if lamb > 0:
                inputs = [x.reshape(-1, model.width[0])]
                for l in range(model.depth):
                    out = model.layer_forward(l, inputs[-1], **fwd_kw)
                    inputs.append(out)
                pred = inputs.pop()
                reg_ = _reg(model, x, lamb_l1, lamb_entropy, lamb_coef, lamb_coefdiff, reg_metric, inputs=inputs)
            else:
                pred = model(x, **fwd_kw)
                reg_ = pred.new_zeros(())
            train_loss = loss_fn(pred, y)
            # lamb == 0: train_loss + 0 * 0 is train_loss itself; skip the two ops and an autograd node
            objective = train_loss + lamb * reg_ if lamb > 0 else train_loss
            if group is None:
                _backward(objective)
                calls.append((train_loss.detach(), reg_.detach()))
                return objective
            _backward(objective * w_train)
            all_reduce_grads(params, group)
            parts = torch.stack([objective.detach(), train_loss.detach(), reg_.detach()]).to(torch.float64) * w_train
            objective, train_r, reg_r = all_reduce_sum(parts, group).to(objective.dtype).unbind()
            calls.append((train_r, reg_r))
            return objective

        optimizer.step(closure)  # every torch optimizer takes a closure; LBFGS needs it
        # the losses recorded are those of the call made at the parameters the step ended on (kanext's LBFGS
        # says which: a later line-search trial may have been rejected); other optimisers: their last call
        accepted = getattr(optimizer, "accepted_eval", None)
        train_l, reg_l = calls[accepted if accepted is not None and accepted < len(calls) else -1]
        model.cache_data = x.detach()  # after a step that worked: a failed fit leaves no unusable cache
        n_test = float(counts[1]) if group is not None else x_test.shape[0]
        if x_test.shape[0]:
            with torch.no_grad():
                test_loss = loss_fn(model(x_test), y_test)
            model.cache_data = x_test.detach()  # pykan's: its last forward of a step is the test forward
        else:  # no test samples here: this rank adds nothing; with none anywhere the test loss is NaN
            test_loss = x.new_zeros(())
        if group is not None:
            test_loss = all_reduce_sum(test_loss.detach().to(torch.float64) * w_test, group)
        train_v, test_v = float(train_l), float(test_loss) if n_test else math.nan
        if mse:
            train_v, test_v = math.sqrt(max(train_v, 0.0)), math.sqrt(max(test_v, 0.0))  # (NaN stays NaN)
        results["train_loss"].append(train_v)
        results["test_loss"].append(test_v)
        results["reg"].append(float(reg_l))
        for m in metrics:
            v = float(m())
            if group is not None:
                v = float(all_reduce_sum(torch.tensor([v], dtype=torch.float64), group)) / _world_size(group)
            results[m.__name__].append(v)
        if log and main and step % log == 0:
            msg = f"step {step}: train_loss {train_v:.2e} | test_loss {test_v:.2e} | reg {results['reg'][-1]:.2e}"
            _logger_info(msg)
            if bar is not None and display_metrics is not None:
                bar.set_description("".join(f" {name}: {results[name][-1]:.2e} |" for name in display_metrics))
            elif bar is not None:
                bar.set_description(f"| train_loss: {train_v:.2e} | test_loss: {test_v:.2e} | reg: {results['reg'][-1]:.2e} |")
        if save_fig and main and step % save_fig_freq == 0:
            fig = model.plot(in_vars=in_vars, out_vars=out_vars, beta=beta, title=f"Step {step}")
            fig.savefig(f"{img_folder}/{step}.jpg", bbox_inches="tight", dpi=100)
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
        if isinstance(batch, bool) or not isinstance(batch, numbers.Integral) or not (batch == -1 or batch >= 1):
            raise ValueError(f"fit: batch must be a positive int (samples per step) or -1 (the whole dataset), "
                             f"got {batch!r}")
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
            x, y = _pair(next(tr), "train")
            xt, yt = _pair(next(te), "test")
            yield x, y, xt, yt
    raise TypeError(f"fit: dataset must be a dict with keys {list(_KEYS)} or a (train_loader, test_loader) pair, "
                    f"got {type(dataset).__name__}")


def _pair(batch, split: str):
    """A loader's batch as (inputs, labels): exactly two tensors (a third
    element, such as sample weights, would be ignored; a dict has no order)."""
    if isinstance(batch, (tuple, list)) and len(batch) == 2 and all(isinstance(t, Tensor) for t in batch):
        return batch[0], batch[1]
    if isinstance(batch, dict):
        got = f"a dict with keys {sorted(map(str, batch))}"
    elif isinstance(batch, (tuple, list)):
        got = f"a {type(batch).__name__} of {len(batch)}: ({', '.join(type(t).__name__ for t in batch)})"
    else:
        got = type(batch).__name__
    raise TypeError(f"fit: each batch of the {split} loader must be an (inputs, labels) pair of tensors, got {got}")


def _check_batch(model, x: Tensor, x_test: Tensor) -> None:
    """The inputs must have the model's dtype and device (a clear error before anything is changed)."""
    ref = next((p for p in model.parameters() if p.is_floating_point()), None)
    if ref is None:
        return
    for name, t in (("train_input", x), ("test_input", x_test)):
        if not isinstance(t, Tensor):
            raise TypeError(f"fit: {name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dtype != ref.dtype or t.device != ref.device:
            raise ValueError(f"fit: {name} is {t.dtype} on {t.device} but the model's parameters are {ref.dtype} on "
                             f"{ref.device}; convert one of them: model.to({t.dtype}) or the data with .to({ref.dtype})")


def _world_size(group) -> int:
    import torch.distributed as dist

    return dist.get_world_size(group)


def _shard(dataset, group):
    """This rank's part of a dict dataset (contiguous row blocks); loaders are checked for a DistributedSampler."""
    import torch.distributed as dist

    rank, world = dist.get_rank(group), dist.get_world_size(group)
    if isinstance(dataset, dict):
        out = dict(dataset)
        for split in ("train", "test"):
            xk, yk = f"{split}_input", f"{split}_label"
            if xk in dataset and yk in dataset:
                n = dataset[xk].shape[0]
                if n < world:
                    raise ValueError(f"fit: {xk} has {n} rows, fewer than the {world} ranks to split it over "
                                     f"(pass shard=False if each rank's dict is already its own data)")
                rows = torch.tensor_split(torch.arange(n), world)[rank]
                lo, hi = int(rows[0]), int(rows[-1]) + 1
                out[xk], out[yk] = dataset[xk][lo:hi], dataset[yk][lo:hi]
        return out
    if isinstance(dataset, (tuple, list)) and len(dataset) == 2:
        from torch.utils.data import DataLoader
        from torch.utils.data.distributed import DistributedSampler

        for name, loader in zip(("train", "test"), dataset):
            if isinstance(loader, DataLoader) and not isinstance(loader.sampler, DistributedSampler):
                raise ValueError(f"fit: under torch.distributed the {name} DataLoader needs a DistributedSampler "
                                 f"so that each rank sees its own shard (it has a {type(loader.sampler).__name__}); "
                                 f"pass shard=False if the loaders already hold per-rank data")
    return dataset


def _cycle(loader):
    epoch = 0
    while True:
        empty = True
        sampler = getattr(loader, "sampler", None)
        if callable(getattr(sampler, "set_epoch", None)):
            sampler.set_epoch(epoch)  # a DistributedSampler reshuffles per epoch, the same way on every rank
        epoch += 1
        for b in loader:
            empty = False
            yield b
        if empty:
            raise ValueError("fit: a DataLoader yielded no batch")
