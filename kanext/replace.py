"""replace_linear: swap the nn.Linear layers of any model for KANLinear layers.

Which modules cannot host a KANLinear in place of their Linear children:

- ``nn.MultiheadAttention`` reads ``out_proj.weight`` and ``out_proj.bias``
  directly (``F.multi_head_attention_forward``), in every mode. Its Linear
  is skipped by the default predicate, and selecting it raises.
- ``nn.TransformerEncoderLayer`` / ``nn.TransformerDecoderLayer``: their
  fast path (eval mode, ``torch.backends.mha.get_fastpath_enabled()``) reads
  ``linear1.weight`` and ``linear2.weight``; a KANLinear has no ``weight``,
  so eval fails there. Skipped by default; selecting them raises unless the
  fast path is disabled (``torch.backends.mha.set_fastpath_enabled(False)``,
  which also keeps it off later). The better route is a block of your own
  whose feed-forward calls its layers (see ``examples/kan_transformer.py``).
- A Linear whose weight is shared with another module (tied embeddings,
  e.g. a language model's output head) would lose the tie: skipped by
  default, and selecting it raises.

The default predicate warns once, listing what it skipped and why.
"""
from __future__ import annotations

import warnings
from typing import Callable

import torch
from torch import Tensor, nn

from .layers import KANLinear

__all__ = ["replace_linear"]

_INITS = ("linear", "kan")


def replace_linear(
    model: nn.Module,
    predicate: Callable[[str, nn.Linear], bool] | None = None,
    *,
    init: str = "linear",
    samples=None,
    **kan_kwargs,
) -> nn.Module:
    """Swaps the chosen ``nn.Linear`` modules of ``model`` for
    :class:`~kanext.KANLinear` layers in place and returns ``model``.

    Args:
        model: any module (the model itself may be a Linear only if it sits
            inside another module; a bare Linear has no parent to edit).
        predicate: ``predicate(name, linear) -> bool`` chooses the layers by
            their qualified name (as in ``model.named_modules()``). Default:
            every Linear that can host a KANLinear (see the module docstring
            for those skipped, with a warning).
        init: ``'linear'`` (default): each new layer starts as exactly the
            Linear's function (up to rounding): base ``'identity'`` with
            ``scale_base = weight.T``, zero splines (``coef = 0``), the
            Linear's bias as the layer's bias. ``'kan'``: a fresh
            KANLinear with ``kan_kwargs`` (pykan's random initialisation),
            keeping only the bias.
        samples: a calibration batch for ``model``: a tensor (called as
            ``model(samples)``), a tuple (``model(*samples)``) or a dict
            (``model(**samples)``). It is run once through the original model
            (no grad, in eval mode; the modes are restored) and each new layer's grid is set uniformly over its
            inputs' range on it (per input feature; :meth:`KANLinear.update_grid`
            with ``grid_eps=1``, so the layer's function is kept). Under
            torch.distributed the ranges are those of all ranks' samples
            (every rank must call replace_linear).
        kan_kwargs: KANLinear arguments (grid, k, grid_range, base_fun,
            noise_scale, ...). With ``init='linear'`` base_fun must be
            ``'identity'`` (its default there).

    The new layers have the Linear's device and dtype, train all their
    parameters (the bias keeps the Linear's requires_grad) and are found by
    ``model.modules()``; an optimizer built before the call must be rebuilt.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"replace_linear: model must be an nn.Module, got {type(model).__name__}")
    if init not in _INITS:
        raise ValueError(f"replace_linear: init must be one of {list(_INITS)}, got {init!r}")
    if predicate is not None and not callable(predicate):
        raise TypeError(f"replace_linear: predicate must be callable(name, module) -> bool, got {predicate!r}")
    if init == "linear":
        base = kan_kwargs.setdefault("base_fun", "identity")
        if base != "identity":
            raise ValueError(f"replace_linear: init='linear' keeps the Linear's function with base_fun='identity'; "
                             f"got base_fun={base!r} (use init='kan' for another base)")
    for key in ("in_features", "out_features", "bias", "device", "dtype"):
        if key in kan_kwargs:
            raise TypeError(f"replace_linear: {key!r} comes from each Linear and cannot be passed")

    chosen = _choose(model, predicate)
    if not chosen:
        return model
    inputs = _calibration_inputs(model, chosen, samples) if samples is not None else {}
    for name, parent, attr, lin in chosen:
        new = _kan_like(lin, init, kan_kwargs)
        if name in inputs:
            new.update_grid(inputs[name], grid_eps=1.0)
        setattr(parent, attr, new)
    return model


def _hostile_reason(parent: nn.Module, attr: str) -> str | None:
    if isinstance(parent, nn.MultiheadAttention):
        return "nn.MultiheadAttention reads out_proj.weight directly"
    if isinstance(parent, (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)) and attr in ("linear1", "linear2"):
        if torch.backends.mha.get_fastpath_enabled():
            return (f"{type(parent).__name__}'s eval fast path reads {attr}.weight; disable it with "
                    "torch.backends.mha.set_fastpath_enabled(False) or write your own block")
    return None


def _choose(model: nn.Module, predicate) -> list[tuple[str, nn.Module, str, nn.Linear]]:
    counts: dict[int, int] = {}
    for _, p in model.named_parameters(remove_duplicate=False):
        counts[id(p)] = counts.get(id(p), 0) + 1
    chosen, skipped = [], []
    for pname, parent in model.named_modules():
        for attr, child in parent.named_children():
            if not isinstance(child, nn.Linear):
                continue
            name = f"{pname}.{attr}" if pname else attr
            reason = _hostile_reason(parent, attr)
            if reason is None and counts.get(id(child.weight), 0) > 1:
                reason = "its weight is shared with another module (a tie that a KANLinear cannot keep)"
            if predicate is None:
                if reason is None:
                    chosen.append((name, parent, attr, child))
                else:
                    skipped.append(f"{name}: {reason}")
            elif predicate(name, child):
                if reason is not None:
                    raise ValueError(f"replace_linear: cannot replace {name}: {reason}")
                chosen.append((name, parent, attr, child))
    if skipped:
        warnings.warn("replace_linear skipped: " + "; ".join(skipped), stacklevel=3)
    seen = set()
    for name, _, _, lin in chosen:  # the same Linear object registered twice would be replaced twice
        if id(lin) in seen:
            raise ValueError(f"replace_linear: {name} is a Linear registered at more than one place in the model")
        seen.add(id(lin))
    return chosen


@torch.no_grad()
def _calibration_inputs(model, chosen, samples) -> dict[str, Tensor]:
    got: dict[str, list[Tensor]] = {}
    handles = []
    modes = {m: m.training for m in model.modules()}
    model.eval()  # no running-statistics update, no dropout, while calibrating
    for name, _, _, lin in chosen:
        def hook(mod, args, name=name):
            got.setdefault(name, []).append(args[0].detach().reshape(-1, mod.in_features))
        handles.append(lin.register_forward_pre_hook(hook))
    try:
        if isinstance(samples, Tensor):
            model(samples)
        elif isinstance(samples, tuple):
            model(*samples)
        elif isinstance(samples, dict):
            model(**samples)
        else:
            raise TypeError(f"replace_linear: samples must be a tensor, a tuple of arguments or a dict of keyword "
                            f"arguments for the model, got {type(samples).__name__}")
    finally:
        for h in handles:
            h.remove()
        for m, mode in modes.items():
            m.training = mode
    return {name: torch.cat(xs) for name, xs in got.items()}


@torch.no_grad()
def _kan_like(lin: nn.Linear, init: str, kan_kwargs: dict) -> KANLinear:
    w = lin.weight
    has_bias = lin.bias is not None
    new = KANLinear(lin.in_features, lin.out_features, bias=has_bias, device=w.device, dtype=w.dtype, **kan_kwargs)
    if init == "linear":
        new.scale_base.copy_(w.detach().T)
        new.coef.zero_()
    if has_bias:
        new.bias.copy_(lin.bias.detach())
        new.bias.requires_grad_(lin.bias.requires_grad)
    new.train(lin.training)
    return new
