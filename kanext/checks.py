"""Argument checks shared by the spline modules (KANLinear, SplineActivation,
LANLayer, KAN, LAN): one message format for every bad argument, saying what
was expected and what was given. Also the dtype rule of the kanext.ops
wrappers for bfloat16 / float16 CPU tensors (:func:`half_args_as_float32`).

Imports nothing from kanext, so that kanext.ops can import it."""
from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["check_int", "check_spline_config", "index_list", "per_layer", "width_list", "mult_structure", "HALF",
           "half_args_as_float32",
           "round_results"]

#: The base functions computed in the kernels (the keys of kanext.ops.BASE_IDS).
BASE_NAMES = ("silu", "identity", "zero")


def check_int(owner: str, name: str, v, lo: int) -> None:
    """Raises ValueError unless v is an int (not a bool) >= lo."""
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise ValueError(f"{owner}: {name} must be an int >= {lo}, got {v!r}")


def check_spline_config(owner: str, grid, k, grid_range, base_fun) -> tuple[float, float]:
    """The checks every spline module makes of its grid size, order, grid
    range and base function; returns (low, high)."""
    check_int(owner, "grid", grid, 1)
    check_int(owner, "k", k, 0)
    if k > 5:
        raise ValueError(f"{owner}: spline order k must be in [0, 5], got k={k}")
    lo, hi = (float(v) for v in grid_range)
    if not lo < hi:
        raise ValueError(f"{owner}: grid_range must be (low, high) with low < high, got {tuple(grid_range)}")
    if isinstance(base_fun, str) and base_fun not in BASE_NAMES:
        raise ValueError(f"{owner}: base_fun must be one of {sorted(BASE_NAMES)} or a callable, got {base_fun!r}")
    return lo, hi


def per_layer(owner: str, name: str, v, depth: int, kind: type = int) -> list:
    """v as one value per layer: a single value (of type kind) is repeated,
    a sequence must have depth entries."""
    if isinstance(v, kind) and not isinstance(v, bool):
        return [v] * depth
    v = list(v)
    if len(v) != depth:
        raise ValueError(f"{owner}: {name} must be one value or a list of {depth} (one per layer), got {v!r}")
    return v


def index_list(name: str, idx, n: int) -> list[int]:
    """idx (ints, or a 1-D integer tensor) as a list of distinct ints in [0, n), at least one."""
    if isinstance(idx, Tensor):
        if idx.dim() != 1 or idx.dtype.is_floating_point or idx.dtype == torch.bool:
            raise ValueError(f"{name}: expected a 1-D integer tensor or a sequence of ints, got a "
                             f"{idx.dtype} tensor of shape {tuple(idx.shape)}")
        idx = idx.tolist()
    try:
        out = [int(i) for i in idx]
        bad = [i for i in idx if isinstance(i, bool) or int(i) != i]
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a sequence of ints, got {idx!r}") from None
    if bad:
        raise ValueError(f"{name}: expected ints, got {bad[:3]!r}")
    if not out:
        raise ValueError(f"{name}: expected at least one index (a layer needs >= 1 input and output), got none")
    if any(i < 0 or i >= n for i in out):
        raise ValueError(f"{name}: indices must be in [0, {n}), got {out}")
    if len(set(out)) != len(out):
        raise ValueError(f"{name}: indices must be distinct, got {out}")
    return out


def width_list(owner: str, width, pykan_pairs: bool = False) -> list[int]:
    """The layer widths as a list of >= 2 positive ints. With pykan_pairs,
    pykan's [n, 0] entries (n sum nodes, no multiplication node) are accepted."""
    if pykan_pairs:
        widths, arities = mult_structure(owner, width, 2)
        if any(arities):
            raise ValueError(f"{owner}: multiplication nodes are not supported here; got width {_show(width)} "
                             f"(expected ints or [n, 0] entries)")
        return widths
    return _plain_widths(owner, width)


def _show(width):
    try:
        return [list(w) if isinstance(w, (list, tuple)) else w for w in width]
    except TypeError:
        return width


def _plain_widths(owner: str, width) -> list[int]:
    out = []
    for w in width:
        if isinstance(w, bool) or not isinstance(w, int) or w < 1:
            raise ValueError(f"{owner}: widths must be positive ints, got {list(width)!r}")
        out.append(int(w))
    if len(out) < 2:
        raise ValueError(f"{owner}: width needs at least an input and an output size, got {list(width)!r}")
    return out


def mult_structure(owner: str, width, mult_arity=2) -> tuple[list[int], list[list[int]]]:
    """pykan's MultKAN widths: ``width`` holds, per layer of nodes, an int n
    (n sum nodes) or a pair [n_sum, n_mult]; ``mult_arity`` is one int >= 2
    (every multiplication node multiplies that many subnodes) or pykan's list
    of one list per width entry, holding the arity of each multiplication
    node of that entry. Returns (node counts n_sum + n_mult per entry, the
    arities per entry). The inputs (entry 0) cannot be multiplication nodes.
    Raises ValueError saying what was expected and what was given."""
    try:
        entries = list(width)
    except TypeError:
        raise ValueError(f"{owner}: width must be a list of ints or [n_sum, n_mult] pairs, got {width!r}") from None
    if len(entries) < 2:
        raise ValueError(f"{owner}: width needs at least an input and an output entry, got {_show(width)!r}")
    sums, mults = [], []
    for l, w in enumerate(entries):
        if isinstance(w, (list, tuple)):
            if len(w) != 2 or not all(is_int(v) and v >= 0 for v in w) or w[0] + w[1] < 1:
                raise ValueError(f"{owner}: width entry {l} must be a positive int or a pair [n_sum, n_mult] of ints "
                                 f">= 0 with at least one node, got {list(w)!r} (width {_show(width)!r})")
            n, m = int(w[0]), int(w[1])
        elif is_int(w) and w >= 1:
            n, m = int(w), 0
        else:
            raise ValueError(f"{owner}: width entry {l} must be a positive int or a pair [n_sum, n_mult], "
                             f"got {w!r} (width {_show(width)!r})")
        sums.append(n)
        mults.append(m)
    if mults[0]:
        raise ValueError(f"{owner}: the inputs (width entry 0) cannot be multiplication nodes; expected an int or "
                         f"[n, 0], got {list(entries[0])!r}")
    if is_int(mult_arity):
        if mult_arity < 2:
            raise ValueError(f"{owner}: mult_arity must be an int >= 2 (the number of subnodes each multiplication "
                             f"node multiplies) or one list of arities per width entry, got {mult_arity!r}")
        arities = [[int(mult_arity)] * m for m in mults]
    else:
        try:
            arities = [list(a) for a in mult_arity]
        except TypeError:
            raise ValueError(f"{owner}: mult_arity must be an int >= 2 or a list of {len(mults)} lists (one per width "
                             f"entry, one arity per multiplication node), got {mult_arity!r}") from None
        if len(arities) != len(mults) or any(len(a) != m for a, m in zip(arities, mults)):
            raise ValueError(f"{owner}: mult_arity must hold one list per width entry with one arity per "
                             f"multiplication node, i.e. lists of lengths {mults}; got {mult_arity!r}")
        for l, a in enumerate(arities):
            if not all(is_int(v) and v >= 2 for v in a):
                raise ValueError(f"{owner}: mult_arity[{l}] must hold ints >= 2 (subnodes per multiplication node), "
                                 f"got {a!r}")
        arities = [[int(v) for v in a] for a in arities]
    return [n + m for n, m in zip(sums, mults)], arities


# ------------------------------------------------- checkpoint configs
#
# Each checkpointable class writes its own JSON config (checkpoint_config)
# and rebuilds itself from one (from_checkpoint_config); these are the checks
# they share. kanext.checkpoint turns a ConfigError into a CheckpointError
# that names the file.

class ConfigError(ValueError):
    """A module's checkpoint config is invalid (reading) or cannot be written
    (saving): the message says where, what was expected and what was found."""


def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def need(cond, what: str, expected, found) -> None:
    """Raises ConfigError("<what>: expected <expected>, found <found>") unless cond."""
    if not cond:
        raise ConfigError(f"{what}: expected {expected}, found {found!r}")


def config_keys(cfg, keys: set, where: str) -> None:
    need(isinstance(cfg, dict) and set(cfg) == keys, f"{where}keys", sorted(keys),
         sorted(cfg) if isinstance(cfg, dict) else cfg)


def width_config(cfg, where: str = "") -> list[int]:
    """The 'width' and 'layers' entries of a network config: >= 2 positive
    widths and one layer config (a dict) per layer, in_features/out_features
    matching the widths."""
    w = cfg["width"]
    need(isinstance(w, list) and len(w) >= 2 and all(is_int(v) and v >= 1 for v in w),
         f"{where}'width'", "a list of >= 2 positive ints", w)
    need(isinstance(cfg["layers"], list) and len(cfg["layers"]) == len(w) - 1,
         f"{where}'layers'", f"a list of {len(w) - 1} layer configs", cfg["layers"])
    for l, lc in enumerate(cfg["layers"]):
        need(isinstance(lc, dict) and lc.get("in_features") == w[l] and lc.get("out_features") == w[l + 1],
             f"{where}'layers'[{l}]", f"in_features={w[l]}, out_features={w[l + 1]} (from width)", lc)
    return list(w)


def range_config(r, what: str) -> None:
    need(isinstance(r, list) and len(r) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in r)
         and r[0] < r[1], what, "[low, high] with low < high", r)


def spline_config_check(cfg, keys: set, sizes: tuple, where: str) -> None:
    """The config of one spline module: exactly `keys`, the sizes in `sizes`
    and grid ints >= 1, k in [0, 5], a valid grid range, a known base function
    and a numeric grid_eps."""
    config_keys(cfg, keys, where)
    for key, lo in [(name, 1) for name in sizes] + [("grid", 1), ("k", 0)]:
        need(is_int(cfg[key]) and cfg[key] >= lo, f"{where}{key!r}", f"an int >= {lo}", cfg[key])
    need(cfg["k"] <= 5, f"{where}'k'", "an int in [0, 5]", cfg["k"])
    range_config(cfg["grid_range"], f"{where}'grid_range'")
    need(cfg["base_fun"] in BASE_NAMES, f"{where}'base_fun'", f"one of {list(BASE_NAMES)}", cfg["base_fun"])
    eps = cfg["grid_eps"]
    need(isinstance(eps, (int, float)) and not isinstance(eps, bool), f"{where}'grid_eps'", "a number", eps)


def base_name(base, where: str) -> str:
    """The base function's name for a config; a callable cannot be stored."""
    if isinstance(base, str) and base in BASE_NAMES:
        return base
    if callable(base):
        fn = getattr(base, "__qualname__", None) or type(base).__qualname__
        mod = getattr(base, "__module__", None) or type(base).__module__
        raise ConfigError(
            f"{where} base_fun is the callable {mod}.{fn}, which a checkpoint cannot hold "
            f"(no code is stored); expected one of {list(BASE_NAMES)}"
        )
    raise ConfigError(f"{where} base_fun is {base!r}, expected one of {list(BASE_NAMES)}")


def range_value(r, where: str) -> list[float]:
    try:
        lo, hi = (float(v) for v in r)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where} grid_range is {r!r}, expected a (low, high) pair") from e
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ConfigError(f"{where} grid_range is {r!r}, expected finite values")
    return [lo, hi]


def eps_value(eps, where: str) -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps):
        raise ConfigError(f"{where} grid_eps is {eps!r}, expected a finite float")
    return float(eps)


# ------------------------------------------- 16-bit floats on the CPU (kanext.ops)
# Each kanext.ops wrapper starts with ``if x.dtype in HALF and x.is_cpu:`` (x
# the op's main input): a float32 / float64 call pays that one test and
# nothing else; a 16-bit call goes through these two.
HALF = (torch.bfloat16, torch.float16)


def half_args_as_float32(op: str, names: str, *ts) -> list:
    """The op's tensors, x first and the grid second, as float32 for a 16-bit
    CPU call: [dtype of the results, float32 tensors...]. None passes
    through; the grid may be float32 or x's dtype, every other tensor must be
    in x's dtype, or float32 under torch.autocast("cpu") (the results are
    then float32). Anything else raises, naming the dtypes."""
    dt = ts[0].dtype
    names = names.split()
    res = [dt]
    for name, t in zip(names, ts):
        if t is not None:
            if t.dtype != dt:
                if name == "grid":
                    if t.dtype != torch.float32:
                        raise RuntimeError(f"{op}: with {names[0]} of dtype {dt} the grid must be float32 or {dt}, "
                                           f"got {t.dtype}")
                elif t.dtype == torch.float32 and torch.is_autocast_enabled("cpu"):
                    res[0] = torch.float32
                else:
                    raise RuntimeError(
                        f"{op}: {name} has dtype {t.dtype} but {names[0]} has dtype {dt} (16-bit CPU calls run in "
                        f"float32 and need every tensor argument in {names[0]}'s dtype; under torch.autocast('cpu') "
                        f"float32 weights are accepted as well)")
            t = t.float()  # the same tensor when already float32
        res.append(t)
    return res


def round_results(y, dt: torch.dtype):
    """An op's result(s) rounded to dt (a tensor or a tuple of tensors)."""
    if isinstance(y, Tensor):
        return y.to(dt)
    return tuple(t.to(dt) for t in y)
