"""Synthetic regression data sets from a formula (pykan's ``create_dataset``)."""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor

__all__ = ["create_dataset"]


def create_dataset(
    f: Callable[[Tensor], Tensor],
    n_var: int = 2,
    f_mode: str = "col",
    ranges: Sequence[float] | Sequence[Sequence[float]] = (-1.0, 1.0),
    train_num: int = 1000,
    test_num: int = 1000,
    normalize_input: bool = False,
    normalize_label: bool = False,
    device=None,
    seed: int = 0,
    dtype=None,
) -> dict[str, Tensor]:
    """A train/test data set sampled uniformly from a box, labelled by ``f``.

    Same arguments (in pykan's positional order: f, n_var, f_mode, ranges,
    train_num, test_num, normalize_input, normalize_label, device, seed), keys
    and semantics as pykan's ``kan.utils.create_dataset``, but the
    draws come from a private ``torch.Generator`` seeded with ``seed``: the
    global RNG states (torch and numpy) are neither read nor changed. With the
    default float32, the inputs are the very values pykan draws for the same
    seed (variable by variable, train then test).

    Args:
        f: the labelling function, called once on the train inputs and once on
            the test inputs (on ``device``): (N, n_var) -> (N, n_out) or (N,);
            a 1-D result becomes (N, 1). With ``f_mode='row'`` it is called on
            the transposed inputs (n_var, N), as in pykan.
        n_var: number of input variables (>= 1).
        ranges: one ``[low, high]`` pair for every variable, or ``n_var`` pairs
            (shape (n_var, 2)); finite, with low < high. Inputs are
            ``low + (high - low) * U[0, 1)``.
        train_num: number of training samples (>= 1; >= 2 to normalise).
        test_num: number of test samples (>= 0).
        normalize_input, normalize_label: standardise with the training
            split's per-column mean and (unbiased) std, applied to both splits.
        seed: seed of the private generator (an int).
        device: where the tensors live (default CPU); inputs are drawn on the
            CPU and then moved, so the values do not depend on the device.
        dtype: floating dtype of the inputs (default ``torch.get_default_dtype()``).
            Labels keep the dtype ``f`` returns.

    Returns:
        dict with ``train_input`` (train_num, n_var), ``train_label``
        (train_num, n_out), ``test_input`` (test_num, n_var), ``test_label``
        (test_num, n_out). When normalising, also the statistics used (pykan
        computes these under the same names but does not return them):
        ``mean_input``/``std_input`` (1, n_var) and/or ``mean_label``/``std_label``
        (1, n_out); the raw values are ``x * std + mean``.

    Raises:
        ValueError for bad n_var, counts, ranges, dtype, f_mode or seed, for a
        label whose shape is not (N,) or (N, n_out) (or differs between the
        splits), and for normalising a column with zero or non-finite std.
        TypeError when f does not return a tensor.
    """
    if isinstance(n_var, bool) or not isinstance(n_var, int) or n_var < 1:
        raise ValueError(f"create_dataset: n_var must be an int >= 1, got {n_var!r}")
    for name, v, lo in (("train_num", train_num, 1), ("test_num", test_num, 0)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ValueError(f"create_dataset: {name} must be an int >= {lo}, got {v!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"create_dataset: seed must be an int, got {seed!r}")
    if f_mode not in ("col", "row"):
        raise ValueError(f"create_dataset: f_mode must be 'col' or 'row', got {f_mode!r}")
    if not callable(f):
        raise TypeError(f"create_dataset: f must be callable, got {type(f).__name__}")
    dtype = torch.get_default_dtype() if dtype is None else dtype
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point or dtype.is_complex:
        raise ValueError(f"create_dataset: dtype must be a real floating torch.dtype, got {dtype!r}")
    if (normalize_input or normalize_label) and train_num < 2:
        raise ValueError(f"create_dataset: normalising needs train_num >= 2 (for a std), got {train_num}")
    bounds = _ranges(ranges, n_var)

    gen = torch.Generator(device="cpu").manual_seed(seed)
    train_x = torch.empty(train_num, n_var, dtype=dtype)
    test_x = torch.empty(test_num, n_var, dtype=dtype)
    for i, (lo, hi) in enumerate(bounds):
        # Draw order (per variable: train, then test) and arithmetic match pykan's.
        train_x[:, i] = torch.rand(train_num, generator=gen, dtype=dtype) * (hi - lo) + lo
        test_x[:, i] = torch.rand(test_num, generator=gen, dtype=dtype) * (hi - lo) + lo
    dev = torch.device("cpu") if device is None else torch.device(device)
    train_x, test_x = train_x.to(dev), test_x.to(dev)

    train_y = _label(f, train_x, f_mode, "train")
    test_y = _label(f, test_x, f_mode, "test")
    if train_y.shape[1] != test_y.shape[1]:
        raise ValueError(
            f"create_dataset: f gave {train_y.shape[1]} output column(s) on the train inputs but "
            f"{test_y.shape[1]} on the test inputs"
        )

    out: dict[str, Tensor] = {}
    if normalize_input:
        mean, std = _stats(train_x, "input")
        train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
        out.update(mean_input=mean, std_input=std)
    if normalize_label:
        mean, std = _stats(train_y, "label")
        train_y, test_y = (train_y - mean) / std, (test_y - mean) / std
        out.update(mean_label=mean, std_label=std)
    return {"train_input": train_x, "train_label": train_y, "test_input": test_x, "test_label": test_y, **out}


def _ranges(ranges, n_var: int) -> list[tuple[float, float]]:
    if isinstance(ranges, (str, bytes)):
        raise ValueError(f"create_dataset: ranges must be [low, high] or {n_var} such pairs, got {ranges!r}")
    try:
        r = torch.as_tensor(ranges, dtype=torch.float64).cpu()
    except (TypeError, ValueError, RuntimeError) as e:
        raise ValueError(f"create_dataset: ranges must be [low, high] or {n_var} such pairs of numbers, got {ranges!r}") from e
    if tuple(r.shape) == (2,):
        r = r.expand(n_var, 2)
    elif tuple(r.shape) != (n_var, 2):
        raise ValueError(
            f"create_dataset: ranges must have shape (2,) or (n_var, 2) = ({n_var}, 2), got shape {tuple(r.shape)}"
        )
    pairs = [(float(lo), float(hi)) for lo, hi in r.tolist()]
    for i, (lo, hi) in enumerate(pairs):
        if not (torch.isfinite(torch.tensor([lo, hi])).all() and lo < hi):
            raise ValueError(f"create_dataset: range of variable {i} must be finite with low < high, got [{lo}, {hi}]")
    return pairs


def _label(f, x: Tensor, f_mode: str, split: str) -> Tensor:
    y = f(x if f_mode == "col" else x.T)
    if not isinstance(y, Tensor):
        raise TypeError(f"create_dataset: f must return a torch.Tensor, got {type(y).__name__} on the {split} inputs")
    n = x.shape[0]
    if y.dim() == 1 and y.shape[0] == n:
        return y.unsqueeze(1)
    if y.dim() == 2 and y.shape[0] == n:
        return y
    raise ValueError(
        f"create_dataset: f must map the {split} inputs of shape {tuple(x.shape)} to shape ({n},) or ({n}, n_out), "
        f"got {tuple(y.shape)}"
    )


def _stats(t: Tensor, what: str) -> tuple[Tensor, Tensor]:
    if not t.is_floating_point():
        raise ValueError(f"create_dataset: cannot normalise {what}s of dtype {t.dtype}; f must return floats")
    mean = torch.mean(t, dim=0, keepdim=True)
    std = torch.std(t, dim=0, keepdim=True)
    bad = ~torch.isfinite(std) | (std == 0)
    if bool(bad.any()):
        cols = bad.reshape(-1).nonzero().reshape(-1).tolist()
        raise ValueError(
            f"create_dataset: cannot normalise {what} column(s) {cols}: training std is {std.reshape(-1)[cols].tolist()}"
        )
    return mean, std
