"""The symbolic branch of a layer: units (KAN edges, LAN nodes) fixed to
``c * f(a * u + b) + d`` with f from :data:`~kanext.symbolic.SYMBOLIC_LIB`.

One base class, :class:`SymbolicBranch`, holds the state and the forward
machinery that KAN and LAN share: a ``mask`` buffer and an ``affine``
parameter over the units, the function names, and the grouping of the fixed
units by function that lets the forward run one vectorised call per function.
Two small adapters give the unit layout:

- :class:`SymbolicLayer` (a KAN layer, pykan's ``Symbolic_KANLayer``): units
  are the edges (j, i), ``mask`` (out, in), ``funs_name[j][i]``; the values
  are summed into the outputs.
- :class:`ChannelSymbolic` (a LAN SplineActivation): units are the channels
  c, ``mask`` (C,), ``funs_name[c]``; a fixed channel's value replaces the
  spline's.

The grouping is a function of the names alone, never of tensor values: it is
rebuilt after every edit made through the methods (set, unset, copy, subset,
checkpoint load, :meth:`~SymbolicBranch.invalidate`), and the mask enters the
forward as data. So a compiled model sees the same grouping as eager code
(dynamo guards on it and recompiles when it changes), and an in-place edit of
the mask's values is honoured by both.
"""
from __future__ import annotations

import functools
import hashlib
import itertools
import warnings
from typing import Sequence

import torch
from torch import Tensor, nn

from ..checks import check_int, index_list
from .library import SYMBOLIC_LIB, entry

__all__ = ["SymbolicBranch", "SymbolicLayer", "ChannelSymbolic", "name_code"]


@functools.lru_cache(maxsize=None)
def name_code(name: str) -> int:
    """The code of a symbolic function name in a ``funs_code`` buffer: 0 for
    '0', else 56 bits of the name's sha256 (stable across processes)."""
    if name == "0":
        return 0
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:7], "little") | 1


class SymbolicBranch(nn.Module):
    """Base of the symbolic branches; see the module docstring. Subclasses
    set ``shape`` (the unit grid) and store ``funs_name`` in their layout
    through :meth:`_name` / :meth:`_set_name` / :meth:`_named_units`."""

    def __init__(self, shape: tuple[int, ...], device=None, dtype=None):
        super().__init__()
        kw = dict(device=device, dtype=dtype or torch.get_default_dtype())
        self.register_buffer("mask", torch.zeros(shape, **kw))
        # Trainable only while some unit is fixed (see _track_fixed).
        self.affine = nn.Parameter(torch.zeros(*shape, 4, **kw), requires_grad=False)
        # The names as codes (name_code), written from funs_name whenever a state_dict is taken, so
        # that it carries them: load_state_dict into a fresh model restores the names from it.
        self.register_buffer("funs_code", torch.zeros(shape, dtype=torch.int64, device=device))
        self._groups = None
        self._version = 0

    #: Buffers written from the names when a state_dict is taken (kanext.checkpoint fills them for files
    #: written before they existed).
    _derived_buffers = ("funs_code",)

    # -- layout, given by the subclasses
    def _name(self, unit: tuple) -> str:
        raise NotImplementedError

    def _set_name(self, unit: tuple, name: str) -> None:
        raise NotImplementedError

    def _named_units(self):
        """Yields (unit, name) for every unit whose name is not '0'."""
        raise NotImplementedError

    # -- grouping
    def invalidate(self) -> None:
        """Marks the grouping stale (call after editing ``funs_name`` by hand;
        the methods call it themselves). Also sets whether ``affine`` trains
        (:meth:`_track_fixed`)."""
        self._version = getattr(self, "_version", 0) + 1
        self._groups = None
        self._track_fixed()

    # -- the names in the state_dict
    def _units(self):
        return itertools.product(*(range(n) for n in self.mask.shape))

    def _rebuild_derived_buffers(self) -> None:
        """funs_code from funs_name (nothing to write on the meta device)."""
        if self.funs_code.device.type != "meta":
            self.funs_code.copy_(self._codes())

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        self._rebuild_derived_buffers()  # here, not on every edit: auto_symbolic edits edge by edge
        super()._save_to_state_dict(destination, prefix, keep_vars)

    def _codes(self) -> Tensor:
        """The codes of the current names, on the CPU."""
        codes = [name_code(self._name(u)) for u in self._units()]
        return torch.tensor(codes, dtype=torch.int64).reshape(self.funs_code.shape)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        key = prefix + "funs_code"
        if key not in state_dict and prefix + "mask" in state_dict:
            # a state_dict saved before the names were in it: this model's names stay (and strict loading works)
            mask = state_dict[prefix + "mask"]
            if any(self._name(u) == "0" and bool(mask[u] != 0) for u in self._units()):
                warnings.warn(f"{type(self).__name__}: the state_dict has no '{key}' (saved by an older kanext), so "
                              "it does not say which functions its fixed units use; they keep this model's names, "
                              "and those named '0' compute 0. Load it into a model with the same "
                              "fix_symbolic calls, or use kanext.save / load", stacklevel=2)
            if self.funs_code.device.type != "meta":
                state_dict[key] = self._codes().to(self.funs_code.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if key in state_dict and self.funs_code.device.type != "meta":
            if self.funs_code is state_dict[key]:  # load_state_dict(assign=True): the codes mirror this module's names
                self.funs_code = self.funs_code.clone()
            self._names_from_codes()

    def _names_from_codes(self) -> None:
        """Sets funs_name from a loaded funs_code (every code must be a registered name's)."""
        codes = self.funs_code.reshape(-1).tolist()
        known = None
        changed = False
        for unit, code in zip(self._units(), codes):
            if name_code(self._name(unit)) == code:
                continue
            if known is None:
                known = {name_code(n): n for n in ("0", *SYMBOLIC_LIB)}
            if code not in known:
                raise ValueError(
                    f"{type(self).__name__}: the state_dict names unit {unit} by code {code} (funs_code), which no "
                    "function in kanext.symbolic.SYMBOLIC_LIB has; register it with kanext.symbolic.add_symbolic "
                    "(same name) before loading")
            self._set_name(unit, known[code])
            changed = True
        if changed:
            self.invalidate()

    def groups(self) -> list[tuple]:
        """[(name, index)] of the fixed units by function: ``index`` is a tuple
        of index tensors (one per unit dimension), so ``mask[index]`` and
        ``affine[index]`` are that group's entries. Units named '0' are left
        out (they compute 0)."""
        key = (self._version, self.mask.device)
        if self._groups is None or self._groups[0] != key:
            by_name: dict[str, list[tuple]] = {}
            for unit, name in self._named_units():
                by_name.setdefault(name, []).append(unit)
            dev = self.mask.device
            self._groups = (key, [(name, tuple(torch.tensor(col, device=dev) for col in zip(*units)))
                                  for name, units in by_name.items()])
        return self._groups[1]

    def _track_fixed(self) -> None:
        """``affine`` trains exactly while some unit is fixed: the forward
        reads it only then, and a trainable parameter that the forward does
        not use breaks DistributedDataParallel ("parameters that were not used
        in producing loss"). Called by :meth:`invalidate`, so after every edit;
        to freeze fixed units, set ``affine.requires_grad_(False)`` after fixing."""
        self.affine.requires_grad_(self.n_fixed > 0)

    @property
    def n_fixed(self) -> int:
        """Number of units with a symbolic function (other than '0'). A KAN's
        forward asks for it on every layer, so the count is kept with the
        grouping it was counted from: it is recounted whenever the grouping is
        rebuilt or marked stale (any edit, :meth:`invalidate`, ``.to()``)."""
        if torch.compiler.is_compiling():
            return sum(int(index[0].numel()) for _, index in self.groups())
        g, hit = self._groups, self.__dict__.get("_n_fixed_cache")
        if g is not None and hit is not None and hit[0] is g and g[0][0] == self._version:
            return hit[1]
        n = sum(int(index[0].numel()) for _, index in self.groups())
        self.__dict__["_n_fixed_cache"] = (self._groups, n)
        return n

    def fixed_units(self) -> list[tuple]:
        """The units that are symbolic and switched on (name not '0', mask != 0), in order."""
        on = []
        for _, index in self.groups():
            keep = self.mask.detach()[index] != 0
            on += [tuple(int(t[e]) for t in index) for e in torch.nonzero(keep).flatten().tolist()]
        return sorted(on)

    def _group_values(self, u: Tensor, name: str, index: tuple, singularity_avoiding=False, y_th=10.0) -> Tensor:
        """c * f(a * u + b) + d for one group, u (N, E) its units' inputs."""
        p = self.affine[index]  # (E, 4)
        fn = entry(name)
        z = p[:, 0] * u + p[:, 1]
        f = fn.safe_fn(z, y_th) if singularity_avoiding else fn.torch_fn(z)
        return p[:, 2] * f + p[:, 3]

    # -- edits
    @torch.no_grad()
    def _set_unit(self, unit: tuple, name: str, params=None) -> None:
        entry(name)
        self._set_name(unit, name)
        p = (1.0, 0.0, 1.0, 0.0) if params is None else params
        self.affine[unit] = torch.as_tensor(p, dtype=self.affine.dtype).to(self.affine.device)
        self.mask[unit] = 1.0
        self.invalidate()

    @torch.no_grad()
    def _unset_unit(self, unit: tuple) -> None:
        self._set_name(unit, "0")
        self.mask[unit] = 0.0
        self.affine[unit] = 0.0
        self.invalidate()

    @torch.no_grad()
    def copy_from(self, other: "SymbolicBranch") -> None:
        """Takes other's mask, affine and names (same class and shapes)."""
        if type(other) is not type(self) or other.mask.shape != self.mask.shape:
            raise ValueError(f"{type(self).__name__}.copy_from: expected a {type(self).__name__} of shape "
                             f"{tuple(self.mask.shape)}, got a {type(other).__name__} of shape {tuple(other.mask.shape)}")
        self.mask.copy_(other.mask)
        self.affine.copy_(other.affine)
        self.funs_name = _copy_names(other.funs_name)
        self.invalidate()

    def _apply(self, fn, *args, **kwargs):
        # .to() / .cuda() / to_empty(): the grouping's index tensors follow the mask's device
        out = super()._apply(fn, *args, **kwargs)
        self._groups = None
        self.groups()  # rebuilt now, not during a later trace (torch.export warned of a side effect)
        return out


class SymbolicLayer(SymbolicBranch):
    """The symbolic branch of one KAN layer (pykan's Symbolic_KANLayer shapes):
    edge i -> j, when fixed, adds ``mask[j, i] * (c * f(a * x_i + b) + d)`` to
    output j, with ``affine[j, i] = (a, b, c, d)``.

    Attributes:
        mask: buffer (out, in), 0 where the edge is not symbolic.
        affine: parameter (out, in, 4), trained by fit().
        funs_name: list of lists, ``funs_name[j][i]`` the library name ('0'
            when not fixed). Edit it through the methods (or call
            :meth:`invalidate` after editing it by hand).
        funs_code: int64 buffer (out, in), the names as :func:`name_code`
            codes, written when a state_dict is taken, so that
            ``state_dict`` / ``load_state_dict`` carry them
            (loading sets funs_name from it; every name must be registered).
            ``torch.func.functional_call`` swaps tensors only: it runs the
            module's own names with the given mask and affine.

    The forward computes only the fixed edges, one vectorised call per
    function; with no fixed edge it returns zeros.
    """

    def __init__(self, in_features: int, out_features: int, device=None, dtype=None):
        check_int("SymbolicLayer", "in_features", in_features, 1)
        check_int("SymbolicLayer", "out_features", out_features, 1)
        super().__init__((out_features, in_features), device, dtype)
        self.in_features, self.out_features = in_features, out_features
        self.funs_name = [["0"] * in_features for _ in range(out_features)]

    @property
    def in_dim(self) -> int:
        return self.in_features

    @property
    def out_dim(self) -> int:
        return self.out_features

    def _name(self, unit):
        return self.funs_name[unit[0]][unit[1]]

    def _set_name(self, unit, name):
        self.funs_name[unit[0]][unit[1]] = name

    def _named_units(self):
        for j, row in enumerate(self.funs_name):
            for i, name in enumerate(row):
                if name != "0":
                    yield (j, i), name

    def forward(self, x: Tensor, singularity_avoiding: bool = False, y_th: float = 10.0) -> Tensor:
        """x (..., in) -> (..., out): the sum over fixed edges of mask * (c f(a x_i + b) + d)."""
        if x.dim() == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"SymbolicLayer: expected input of shape (..., {self.in_features}), got {tuple(x.shape)}")
        lead = x.shape[:-1]
        x = x.reshape(-1, self.in_features)
        y = x.new_zeros(x.shape[0], self.out_features)
        for name, (J, I) in self.groups():
            v = self.mask[J, I] * self._group_values(x[:, I], name, (J, I), singularity_avoiding, y_th)
            # one output: a plain sum. Inductor (torch 2.13, CPU) fails to generate code for index_add into a
            # dimension of size 1 when an index repeats (two edges of one function into the single output):
            # InductorError under torch.compile
            y = y + v.sum(1, keepdim=True) if self.out_features == 1 else y.index_add(1, J, v)
        return y.reshape(*lead, self.out_features)

    def edge_values(self, x: Tensor) -> Tensor:
        """x (P, in) -> (P, out, in): each fixed edge's value mask * (c f(a x_i + b) + d),
        0 for the others (pykan's per-edge layout; for plots of a few points)."""
        x = x.reshape(-1, self.in_features)
        v = x.new_zeros(x.shape[0], self.out_features, self.in_features)
        for name, (J, I) in self.groups():
            v[:, J, I] = self.mask[J, I] * self._group_values(x[:, I], name, (J, I))
        return v

    def set_edge(self, i: int, j: int, name: str, params=None) -> None:
        """Fixes edge i -> j to the library function ``name`` with (a, b, c, d) = params (default (1, 0, 1, 0))."""
        self._set_unit((j, i), name, params)

    def unset_edge(self, i: int, j: int) -> None:
        """Returns edge i -> j to '0' (mask 0, affine 0)."""
        self._unset_unit((j, i))

    @torch.no_grad()
    def subset(self, in_idx: Sequence[int], out_idx: Sequence[int]) -> "SymbolicLayer":
        """A new layer keeping the inputs in_idx and outputs out_idx (in that order)."""
        try:
            in_idx = index_list("SymbolicLayer.subset: in_idx", in_idx, self.in_features)
            out_idx = index_list("SymbolicLayer.subset: out_idx", out_idx, self.out_features)
        except ValueError as e:
            raise ValueError(f"{e} (subset indices must be non-empty and in range)") from None
        new = SymbolicLayer(len(in_idx), len(out_idx), device=self.mask.device, dtype=self.mask.dtype)
        ii = torch.tensor(in_idx, device=self.mask.device)
        jj = torch.tensor(out_idx, device=self.mask.device)
        new.mask.copy_(self.mask[jj][:, ii])
        new.affine.copy_(self.affine[jj][:, ii])
        new.funs_name = [[self.funs_name[j][i] for i in in_idx] for j in out_idx]
        new.invalidate()
        new.affine.requires_grad_(self.affine.requires_grad and new.n_fixed > 0)
        return new

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, fixed={self.n_fixed}"


class ChannelSymbolic(SymbolicBranch):
    """The symbolic branch of one SplineActivation over C channels: channel c,
    when fixed (``mask[c] != 0``), outputs ``c_ * f(a * z + b) + d`` with
    ``affine[c] = (a, b, c_, d)`` instead of its spline + base value.

    Attributes: ``mask`` buffer (C,), ``affine`` parameter (C, 4) (trained by
    fit()), ``funs_name`` list of C library names ('0' when not fixed), and
    ``funs_code`` (C,) the names' codes, which ``load_state_dict`` reads.
    """

    def __init__(self, num_channels: int, device=None, dtype=None):
        check_int("ChannelSymbolic", "num_channels", num_channels, 1)
        super().__init__((num_channels,), device, dtype)
        self.num_channels = int(num_channels)
        self.funs_name = ["0"] * num_channels

    def _name(self, unit):
        return self.funs_name[unit[0]]

    def _set_name(self, unit, name):
        self.funs_name[unit[0]] = name

    def _named_units(self):
        for c, name in enumerate(self.funs_name):
            if name != "0":
                yield (c,), name

    def fixed(self) -> list[int]:
        """Indices of the fixed channels (symbolic and switched on)."""
        return [u[0] for u in self.fixed_units()]

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        """z, y (N, C): y with the fixed channels' columns replaced by their symbolic values on z."""
        for name, (idx,) in self.groups():
            v = self._group_values(z[:, idx], name, (idx,)).to(y.dtype)
            y = y.index_copy(1, idx, torch.where(self.mask[idx] != 0, v, y[:, idx]))
        return y

    def values(self, z: Tensor) -> Tensor:
        """(N, C) symbolic values of every fixed channel on z (N, C); 0 elsewhere."""
        return self.forward(z, torch.zeros_like(z))

    def set_channel(self, c: int, name: str, params=None) -> None:
        """Fixes channel c to ``name`` with (a, b, c, d) = params (default (1, 0, 1, 0))."""
        self._set_unit((c,), name, params)

    def unset_channel(self, c: int) -> None:
        self._unset_unit((c,))

    def extra_repr(self) -> str:
        return f"num_channels={self.num_channels}, fixed={self.n_fixed}"


def _copy_names(names):
    return [list(r) if isinstance(r, list) else r for r in names]
