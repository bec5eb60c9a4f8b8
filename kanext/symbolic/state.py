"""Checkpoint hooks of the symbolic branches: the function names travel in
the checkpoint's JSON ``extra`` (the mask and affine tensors travel in the
safetensors file like every other tensor). Registered with
:func:`kanext.checkpoint.register_extension` by :mod:`kanext.symbolic`."""
from __future__ import annotations

import torch

from .branch import ChannelSymbolic
from .library import SYMBOLIC_LIB

__all__ = ["kan_state", "restore_kan_state", "lan_state", "restore_lan_state"]


def _unknown(where: str, name) -> ValueError:
    return ValueError(
        f"{where} uses function {name!r}, which is not in kanext.symbolic.SYMBOLIC_LIB; "
        "register it with kanext.symbolic.add_symbolic(name, torch_fn, sympy_fn) before loading"
    )


def kan_state(model):
    """{"funs_name": per layer} for a KAN with symbolic edge names to keep, and
    "symbolic_enabled": False when the model skips its symbolic edges
    (KAN.speed), else None."""
    syms = getattr(model, "symbolic_fun", None)
    if syms is None:
        return None
    data = {}
    if not all(n == "0" for s in syms for row in s.funs_name for n in row):
        data["funs_name"] = [s.funs_name for s in syms]
    if not getattr(model, "symbolic_enabled", True):
        data["symbolic_enabled"] = False
    return data or None


def restore_kan_state(model, data) -> None:
    """Restores a KAN's funs_name (before its tensors are loaded; every name
    must be in SYMBOLIC_LIB) and its symbolic_enabled switch."""
    if not isinstance(data, dict) or not data or set(data) - {"funs_name", "symbolic_enabled"}:
        raise ValueError(f"expected keys among ['funs_name', 'symbolic_enabled'], found {data!r}")
    if "symbolic_enabled" in data:
        if data["symbolic_enabled"] is not False:
            raise ValueError(
                f"expected symbolic_enabled false (true is not written), found {data['symbolic_enabled']!r}")
        model.symbolic_enabled = False
    if "funs_name" not in data:
        return
    names = data["funs_name"]
    syms = model.symbolic_fun
    if not isinstance(names, list) or len(names) != len(syms):
        raise ValueError(f"expected funs_name for {len(syms)} layers, found {names!r}")
    for l, (s, rows) in enumerate(zip(syms, names)):
        if (not isinstance(rows, list) or len(rows) != s.out_features
                or any(not isinstance(r, list) or len(r) != s.in_features for r in rows)):
            raise ValueError(f"layer {l}: expected {s.out_features} x {s.in_features} function names, found {rows!r}")
        for j, row in enumerate(rows):
            for i, n in enumerate(row):
                if not isinstance(n, str) or n not in SYMBOLIC_LIB:
                    raise _unknown(f"symbolic edge ({l},{i},{j})", n)
        s.funs_name = [list(r) for r in rows]
        s.invalidate()


def lan_state(model):
    """{module name: {funs_name, dtype}} for every SplineActivation with a symbolic branch, or None."""
    data = {}
    for name, m in model.named_modules():
        sym = m._modules.get("symbolic")
        if isinstance(sym, ChannelSymbolic):
            data[name] = {"funs_name": list(sym.funs_name), "dtype": str(sym.affine.dtype).removeprefix("torch.")}
    return data or None


def restore_lan_state(model, data) -> None:
    """Rebuilds the symbolic branches of a LAN's activations (tensors on the
    meta device, filled by the checkpoint load); every name must be in SYMBOLIC_LIB."""
    if not isinstance(data, dict):
        raise ValueError(f"expected a dict of activation names, found {data!r}")
    mods = dict(model.named_modules())
    for name, ent in data.items():
        m = mods.get(name)
        if not getattr(m, "has_symbolic_channels", False):
            raise ValueError(f"{name!r} is not a SplineActivation of this model")
        if not isinstance(ent, dict) or set(ent) != {"funs_name", "dtype"}:
            raise ValueError(f"{name!r}: expected keys ['dtype', 'funs_name'], found {ent!r}")
        names, dt = ent["funs_name"], getattr(torch, str(ent["dtype"]), None)
        if not isinstance(dt, torch.dtype) or not dt.is_floating_point:
            raise ValueError(f"{name!r}: expected a floating dtype name, found {ent['dtype']!r}")
        if not isinstance(names, list) or len(names) != m.num_channels:
            raise ValueError(f"{name!r}: expected {m.num_channels} function names, found {names!r}")
        for c, n in enumerate(names):
            if not isinstance(n, str) or n not in SYMBOLIC_LIB:
                raise _unknown(f"{name!r} channel {c}", n)
        sym = ChannelSymbolic(m.num_channels, device="meta", dtype=dt)
        sym.funs_name = list(names)
        sym.invalidate()
        m.symbolic = sym
