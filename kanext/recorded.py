"""What a model keeps about the data it last saw, and where the samples of a
data-driven method (symbolic fitting, attribution, pruning, plots, refine)
come from.

A model may carry, besides its parameters:

- ``cache_data``: the inputs of the last :func:`kanext.training.fit` step;
- the inputs of its last forward (a reference, no copy; :func:`remember_input`),
  so that ``model(x); model.plot()`` and ``model(x); model.fix_symbolic(...)``
  work as in pykan without ``save_act``;
- recorded statistics: ``acts``, ``acts_scale``, ``edge_l1``,
  ``input_range`` (from a forward with ``save_act = True``) and the
  attribution scores (``node_scores``, ...).

None of it is model state: checkpoints skip it, and copies made by pruning and
refine drop it. Recorded statistics describe the parameters at the time of
recording, so anything that changes the parameters (a fit, a grid update,
fixing a symbolic edge) drops them; later methods then fall back to
``cache_data``.
"""
from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

__all__ = ["NoSamplesError", "NoRecordingError", "DataProperties", "RECORDED", "TRANSIENT", "samples", "has_samples",
           "cached_inputs", "remember_input", "drop_recorded", "copy_without_data"]

#: Statistics of the last recording forward and of the last attribution.
RECORDED = ("acts", "acts_scale", "edge_l1", "input_range", "subnode_std", "node_scores", "edge_scores",
            "subnode_scores", "node_scores_all", "edge_scores_all", "subnode_scores_all")
#: Every attribute that is not model state: recorded statistics, the data
#: cache, the recording switch, prune_input's note of kept inputs, and
#: the last input.
TRANSIENT = frozenset(RECORDED + ("cache_data", "save_act", "input_id", "_last_input"))


class NoSamplesError(ValueError, RuntimeError):
    """A data-driven method found no samples: neither ``x=`` nor recorded
    activations nor ``cache_data``. (A ValueError and a RuntimeError, the two
    types such calls raised before they shared this check.)"""


class NoRecordingError(NoSamplesError, AttributeError):
    """NoSamplesError raised by reading a data-driven attribute (a property
    such as ``feature_score`` or ``spline_postacts``): also an
    AttributeError, so that ``hasattr`` and tools that scan a module's
    attributes (torch.jit.trace) see the attribute as absent instead of
    failing."""


class DataProperties:
    """Mixin of the modules whose properties in ``_data_properties`` read
    recorded data and raise NoRecordingError without it. Python drops the
    message of an AttributeError raised by a property before it calls
    ``__getattr__`` (nn.Module's would then only say "no attribute"); for
    those names this ``__getattr__`` calls the getter again, which raises
    it with its message."""

    _data_properties: frozenset = frozenset()

    def __getattr__(self, name: str):
        if name in type(self)._data_properties:
            return getattr(type(self), name).fget(self)
        return super().__getattr__(name)


def remember_input(model, x: Tensor) -> None:
    """Keeps x (detached, not copied) as the inputs of model's last forward.
    Skipped under torch.compile, export and torch.func transforms (their
    tensors are not the user's data) and for tensor subclasses."""
    if type(x) is not Tensor or torch.compiler.is_compiling():
        return
    wrapped = getattr(torch._C._functorch, "is_functorch_wrapped_tensor", None)
    if wrapped is not None and wrapped(x):
        return
    # x itself when it carries no graph: detach() would only make another tensor object for every forward
    model.__dict__["_last_input"] = x.detach() if x.requires_grad else x


def _last_input(model, n_in: int):
    x = model.__dict__.get("_last_input")
    if x is not None and x.dim() >= 1 and x.shape[-1] == n_in and x.numel():
        return x
    return None


def has_samples(model) -> bool:
    """Whether :func:`samples` would find inputs without an ``x``."""
    return bool(getattr(model, "acts", None)) or getattr(model, "cache_data", None) is not None or \
        _last_input(model, model.width[0]) is not None


def _like_model(model, x: Tensor) -> Tensor:
    """Stored inputs in the model's current floating dtype and device: after
    ``model.double()`` or ``model.to(device)`` the samples kept from before
    follow, as its parameters did."""
    ref = next((t for t in model.parameters() if t.is_floating_point()), None)
    if ref is None or not x.is_floating_point() or (x.dtype == ref.dtype and x.device == ref.device):
        return x
    return x.to(device=ref.device, dtype=ref.dtype)


def cached_inputs(model) -> Tensor | None:
    """``model.cache_data`` (the last fit inputs) in the model's dtype and device, or None."""
    x = getattr(model, "cache_data", None)
    return None if x is None else _like_model(model, torch.as_tensor(x))


def samples(model, x=None, *, recorded: bool = True, what: str = "this method") -> Tensor:
    """(N, width[0]) inputs for a data-driven method: ``x`` if given, else
    (when ``recorded``) the inputs of the model's last forward, as pykan uses
    the activations its last forward recorded (after fit: the test inputs of
    the last step), else those of the last recording forward
    (``model.acts[0]``; a compiled model does not keep its inputs), else
    ``model.cache_data`` (the last fit inputs). Raises :class:`NoSamplesError` when
    there are none, ValueError for a wrong shape. Inputs are data, not
    derived statistics, so none of them goes stale when the parameters change;
    stored ones are converted to the model's dtype and device (a given ``x``
    is used as given)."""
    n_in = model.width[0]
    given = x is not None
    if x is None and recorded:
        x = _last_input(model, n_in)  # the newest: every forward, recording or not, keeps its inputs
    if x is None and recorded:
        acts = getattr(model, "acts", None)
        if acts and acts[0].dim() == 2 and acts[0].shape[1] == n_in:
            return _like_model(model, acts[0])
    if x is None:
        x = getattr(model, "cache_data", None)
    if x is not None and not given:
        x = _like_model(model, torch.as_tensor(x))
    if x is None:
        raise NoSamplesError(
            f"{what}: no samples: pass x=<inputs of shape (N, {n_in})>, or run the model on some inputs "
            "(model(x); with model.save_act = True it also records statistics), or fit() it first (its inputs are kept as cache_data)"
        )
    x = torch.as_tensor(x)
    if x.dim() == 0 or x.shape[-1] != n_in:
        raise ValueError(f"{what}: expected samples of shape (N, {n_in}), got shape {tuple(x.shape)}")
    return x.detach().reshape(-1, n_in)


def drop_recorded(model) -> None:
    """Forgets the recorded statistics of every submodule (they describe older parameters)."""
    for m in model.modules():
        for name in RECORDED:
            m.__dict__.pop(name, None)


def copy_without_data(model: nn.Module) -> nn.Module:
    """A deep copy of model without its recorded data, caches and compiled
    forward (see :data:`TRANSIENT`): the data is shared with
    the original during the copy, not duplicated, then dropped."""
    skip = [v for m in model.modules() for n, v in vars(m).items() if n in TRANSIENT or n == "_compiled_call_impl"]
    new = copy.deepcopy(model, {id(v): v for v in skip})
    for m in new.modules():
        for name in list(vars(m)):
            if name in TRANSIENT or name == "_compiled_call_impl":
                del m.__dict__[name]
    return new
