"""Safe checkpoints for :class:`kanext.KAN` and :class:`kanext.KANLinear`.

A checkpoint is two sibling files named from one *stem* path::

    save(model, "runs/ckpt")   # writes runs/ckpt.json and runs/ckpt.safetensors
    model = load("runs/ckpt")  # "runs/ckpt.json" or "runs/ckpt.safetensors" work too

``<stem>.json`` (UTF-8 JSON) holds the configuration::

    {
      "format": "kanext.checkpoint", "format_version": 1,
      "kanext_version": "0.1.0",              # informative
      "class": "KAN" | "KANLinear",
      "config": {...},                        # enough to rebuild every shape, see below
      "dtype": "float32",                     # informative: the common dtype, or "mixed"
      "tensors": {"<state_dict key>": {"dtype": "float32", "shape": [2, 5],
                                       "requires_grad": true}, ...},   # requires_grad: parameters only
      "safetensors_sha256": "<hex>", "safetensors_size": 1234,
      "extra": {"<extension name>": <JSON>, ...},   # state written by registered extensions
      "metadata": {...}                              # the caller's own JSON data, never interpreted
    }

with ``config`` for a KANLinear ``{"in_features", "out_features", "grid" (G),
"k", "grid_range": [lo, hi], "base_fun": "silu" | "identity" | "zero",
"grid_eps"}`` and for a KAN ``{"width",
"grid_range", "base_fun", "layers": [<KANLinear config>, ...]}``. The training
cache ``model.cache_data`` (last fit inputs) is not model state and is not saved,
nor are recorded statistics, attribution scores and the informational
``input_id`` that prune_input sets (a pruned model is a plain smaller KAN).

``<stem>.safetensors`` holds every parameter and buffer (grids and masks
included) under its ``state_dict`` key, in its own dtype, bit for bit.

Safety: only JSON and safetensors are parsed; nothing in either file can name
code to run (the class comes from a fixed allow-list, base functions from a
fixed set of names). Writing goes to temporary files next to the targets that
are renamed over them, so a failed save leaves no stray files, and the tensor
file's sha256 and size are checked before it is parsed. Every problem found
while loading raises :class:`CheckpointError` naming the file, what was
expected and what was found.

Extension hook (for later state, e.g. symbolic edges): :func:`register_extension`
adds a named pair of functions. At save, ``save_fn(model)`` returns JSON data
(or None when the model has no such state), stored under ``extra[name]``. At
load, ``load_fn(model, data)`` is called on the freshly built skeleton, before
tensors are loaded, and must restore the attributes and create (with
``torch.empty``, same shapes, on the device of the existing tensors) any extra
parameters/buffers the data implies; those tensors then travel in the
safetensors file by state_dict key like all others, with their requires_grad
flags, and no other change to this module is needed. A checkpoint whose
``extra`` names an unregistered extension is refused. :func:`save` refuses a
model with attributes or tensors the format does not cover (e.g. state added
by later work without an extension), instead of writing a checkpoint that
would load into something different.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from . import symbolic as _symbolic
from .kan import KAN
from .lan import LAN, LANLayer, SplineActivation
from .layers import KANLinear

__all__ = [
    "CheckpointError",
    "FORMAT",
    "FORMAT_VERSION",
    "save",
    "load",
    "read_config",
    "checkpoint_paths",
    "register_extension",
]

FORMAT = "kanext.checkpoint"
FORMAT_VERSION = 1

_CLASSES: dict[str, type] = {
    "KAN": KAN, "KANLinear": KANLinear, "SplineActivation": SplineActivation, "LANLayer": LANLayer, "LAN": LAN,
}
_BASES = ("silu", "identity", "zero")
_DTYPES: dict[str, torch.dtype] = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
    "bool": torch.bool,
    "uint8": torch.uint8,
    "int8": torch.int8,
    "int16": torch.int16,
    "int32": torch.int32,
    "int64": torch.int64,
}
_DTYPE_NAMES = {v: k for k, v in _DTYPES.items()}
_TOP_KEYS = {
    "format", "format_version", "kanext_version", "class", "config", "dtype", "tensors",
    "safetensors_sha256", "safetensors_size", "extra", "metadata",
}
_LAYER_KEYS = {"in_features", "out_features", "grid", "k", "grid_range", "base_fun", "grid_eps"}
#: Attributes that are caches, not model state: neither saved nor restored.
_TRANSIENT = {"cache_data", "save_act", "acts", "acts_scale", "edge_l1", "input_range", "_identity_affine_cache", "_mask_ones_cache",
              # attribution scores, and the kept input columns that prune_input notes
              "node_scores", "edge_scores", "subnode_scores", "node_scores_all", "edge_scores_all",
              "subnode_scores_all", "input_id"}
_KAN_KEYS = {"width", "grid_range", "base_fun", "layers"}
_ACT_KEYS = {"num_channels", "grid", "k", "grid_range", "base_fun", "grid_eps"}
_LANLAYER_KEYS = {"in_features", "out_features", "bias", "activation"}
_LAN_KEYS = {"width", "layers"}


class CheckpointError(ValueError):
    """A checkpoint cannot be written or read: the message names the file,
    what was expected and what was found."""


# ----------------------------------------------------------------- extensions


@dataclass(frozen=True)
class _Extension:
    name: str
    save: Callable[[nn.Module], Any]
    load: Callable[[nn.Module, Any], None]


_EXTENSIONS: dict[str, _Extension] = {}


def register_extension(
    name: str, save_fn: Callable[[nn.Module], Any], load_fn: Callable[[nn.Module, Any], None]
) -> None:
    """Registers extra state to carry in checkpoints (see the module docstring).

    Args:
        name: key under ``"extra"`` in the JSON file (a non-empty str).
        save_fn: ``save_fn(model) -> JSON-serialisable data or None``; None
            means the model has no such state and nothing is written.
        load_fn: ``load_fn(model, data)``, called on the rebuilt model (its
            tensors uninitialised) before the tensors are loaded; it restores
            attributes and creates any parameters/buffers that data implies.

    Registering a name again replaces the earlier functions.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"register_extension: name must be a non-empty str, got {name!r}")
    if not callable(save_fn) or not callable(load_fn):
        raise TypeError("register_extension: save_fn and load_fn must be callable")
    _EXTENSIONS[name] = _Extension(name, save_fn, load_fn)


register_extension("kanext.symbolic", _symbolic.kan_state, _symbolic.restore_kan_state)
register_extension("kanext.lan_symbolic", _symbolic.lan_state, _symbolic.restore_lan_state)


# ---------------------------------------------------------------------- paths


def checkpoint_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """(json path, safetensors path) for a stem; a trailing ``.json`` or
    ``.safetensors`` on ``path`` is taken off first."""
    p = os.fspath(path)
    if not isinstance(p, str):
        raise TypeError(f"checkpoint path must be a str or os.PathLike of str, got {path!r}")
    for suffix in (".json", ".safetensors"):
        if p.endswith(suffix) and len(p) > len(suffix):
            p = p[: -len(suffix)]
            break
    if not p or p.endswith(("/", os.sep)):
        raise ValueError(f"checkpoint path must name a file stem, got {os.fspath(path)!r}")
    return Path(p + ".json"), Path(p + ".safetensors")


# ----------------------------------------------------------------------- save


def save(model: KAN | KANLinear, path: str | os.PathLike, *, metadata: dict | None = None) -> tuple[Path, Path]:
    """Writes ``model`` to ``<path>.json`` (config) and ``<path>.safetensors``
    (every parameter and buffer by state_dict key); nothing else is written.

    ``path`` is a stem (a trailing ``.json``/``.safetensors`` is dropped); its
    folder must exist. Existing files are replaced. ``metadata`` is optional
    JSON data of your own, stored as is (read it back with :func:`read_config`).
    Returns the two paths written.

    Raises CheckpointError, before writing anything, for a model the format
    cannot represent: a class other than KAN/KANLinear (subclasses included),
    a callable base_fun (named in the message; use 'silu', 'identity' or
    'zero'), non-finite grid_range, or attributes/tensors not covered by the
    format or by a registered extension.
    """
    json_path, st_path = checkpoint_paths(path)
    cls_name = _class_name(model)
    config = _config_of(model)

    extra = {}
    for name, ext in _EXTENSIONS.items():
        data = ext.save(model)
        if data is not None:
            extra[name] = data

    sd = model.state_dict(keep_vars=True)
    params = {name for name, _ in model.named_parameters()}
    for key, t in sd.items():
        if t.dtype not in _DTYPE_NAMES:
            raise CheckpointError(f"cannot save: tensor {key!r} has dtype {t.dtype}, expected one of {sorted(_DTYPES)}")
    dtypes = {key: _DTYPE_NAMES[t.dtype] for key, t in sd.items()}
    _check_covered(model, cls_name, config, extra, dtypes)

    tensors = {key: t.detach().to("cpu").clone(memory_format=torch.contiguous_format) for key, t in sd.items()}
    table = {}
    for key, t in tensors.items():
        entry = {"dtype": dtypes[key], "shape": list(t.shape)}
        if key in params:
            entry["requires_grad"] = bool(sd[key].requires_grad)
        table[key] = entry

    import safetensors.torch

    blob = safetensors.torch.save(tensors, metadata={"format": FORMAT, "format_version": str(FORMAT_VERSION)})
    common = set(dtypes.values())
    doc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kanext_version": _kanext_version(),
        "class": cls_name,
        "config": config,
        "dtype": common.pop() if len(common) == 1 else "mixed",
        "tensors": table,
        "safetensors_sha256": hashlib.sha256(blob).hexdigest(),
        "safetensors_size": len(blob),
        "extra": extra,
        "metadata": {} if metadata is None else metadata,
    }
    try:
        text = json.dumps(doc, indent=1, allow_nan=False, ensure_ascii=False) + "\n"
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"cannot save: config, extension data or metadata is not plain finite JSON ({e})") from e

    # Tensor file first, config last: a crash in between leaves a config whose
    # sha256 does not match, which load reports.
    _atomic_write(st_path, blob)
    _atomic_write(json_path, text.encode("utf-8"))
    return json_path, st_path


def _class_name(model) -> str:
    for name, cls in _CLASSES.items():
        if type(model) is cls:
            return name
    raise CheckpointError(
        f"cannot save: expected a kanext.KAN, KANLinear, LAN, LANLayer or SplineActivation, got {type(model).__module__}.{type(model).__qualname__}"
    )


def _base_name(base, where: str) -> str:
    if isinstance(base, str) and base in _BASES:
        return base
    if callable(base):
        fn = getattr(base, "__qualname__", None) or type(base).__qualname__
        mod = getattr(base, "__module__", None) or type(base).__module__
        raise CheckpointError(
            f"cannot save: {where} base_fun is the callable {mod}.{fn}, which a checkpoint cannot hold "
            f"(no code is stored); expected one of {list(_BASES)}"
        )
    raise CheckpointError(f"cannot save: {where} base_fun is {base!r}, expected one of {list(_BASES)}")


def _range_of(r, where: str) -> list[float]:
    try:
        lo, hi = (float(v) for v in r)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"cannot save: {where} grid_range is {r!r}, expected a (low, high) pair") from e
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise CheckpointError(f"cannot save: {where} grid_range is {r!r}, expected finite values")
    return [lo, hi]


def _layer_config(layer: KANLinear, where: str) -> dict:
    cfg = {
        "in_features": int(layer.in_features),
        "out_features": int(layer.out_features),
        "grid": int(layer.num),
        "k": int(layer.k),
        "grid_range": _range_of(layer.grid_range, where),
        "base_fun": _base_name(layer.base_fun, where),
    }
    eps = getattr(layer, "grid_eps", 0.02)  # KANLinear's default, for layers built before it existed
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps):
        raise CheckpointError(f"cannot save: {where} grid_eps is {eps!r}, expected a finite float")
    cfg["grid_eps"] = float(eps)
    return cfg


def _act_config(act: SplineActivation, where: str) -> dict:
    if type(act) is not SplineActivation:
        raise CheckpointError(f"cannot save: {where} is a {type(act).__qualname__}, expected SplineActivation")
    eps = act.grid_eps
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps):
        raise CheckpointError(f"cannot save: {where} grid_eps is {eps!r}, expected a finite float")
    return {
        "num_channels": int(act.num_channels), "grid": int(act.num), "k": int(act.k),
        "grid_range": _range_of(act.grid_range, where), "base_fun": _base_name(act.base_fun, where),
        "grid_eps": float(eps),
    }


def _lan_layer_config(layer: LANLayer, where: str) -> dict:
    if type(layer) is not LANLayer or type(layer.linear) is not nn.Linear:
        raise CheckpointError(f"cannot save: {where} is a {type(layer).__qualname__} (linear "
                              f"{type(getattr(layer, 'linear', None)).__qualname__}), expected LANLayer with nn.Linear")
    return {
        "in_features": int(layer.in_features), "out_features": int(layer.out_features),
        "bias": layer.linear.bias is not None, "activation": _act_config(layer.act, where + " act"),
    }


def _config_of(model) -> dict:
    if isinstance(model, SplineActivation):
        return _act_config(model, "SplineActivation")
    if isinstance(model, LANLayer):
        return _lan_layer_config(model, "LANLayer")
    if isinstance(model, LAN):
        return {"width": [int(w) for w in model.width],
                "layers": [_lan_layer_config(l, f"LAN layers[{i}]") for i, l in enumerate(model.layers)]}
    if isinstance(model, KANLinear):
        return _layer_config(model, "KANLinear")
    layers = []
    for l, layer in enumerate(model.act_fun):
        if type(layer) is not KANLinear:
            raise CheckpointError(f"cannot save: KAN act_fun[{l}] is a {type(layer).__qualname__}, expected KANLinear")
        layers.append(_layer_config(layer, f"KAN act_fun[{l}]"))
    return {
        "width": [int(w) for w in model.width],
        "grid_range": _range_of(model.grid_range, "KAN"),
        "base_fun": _base_name(model.base_fun, "KAN"),
        "layers": layers,
    }


def _check_covered(model, cls_name, config, extra, dtypes) -> None:
    """The skeleton load would build must have the same attributes, submodules
    and tensors (names and shapes) as the model: otherwise the checkpoint
    would silently drop state."""
    def meta(key, shape):
        return torch.empty(shape, dtype=_DTYPES[dtypes.get(key, "float32")], device="meta")

    skel = _build(cls_name, config, meta)
    for name, data in extra.items():
        _EXTENSIONS[name].load(skel, data)
    mods, smods = dict(model.named_modules()), dict(skel.named_modules())
    if set(mods) != set(smods):
        raise CheckpointError(
            f"cannot save: submodules {sorted(set(mods) ^ set(smods))} are not covered by the checkpoint format "
            "(add them through kanext.checkpoint.register_extension)"
        )
    for mname, m in mods.items():
        # Only attributes the rebuilt model would lack matter (ones it has
        # beyond the model's, like a defaulted grid_eps, are harmless).
        uncovered = set(vars(m)) - _TRANSIENT - set(vars(smods[mname]))
        if uncovered:
            raise CheckpointError(
                f"cannot save: attribute(s) {sorted(uncovered)} of {type(m).__qualname__} "
                f"{mname or '(root)'!r} are not covered by the checkpoint format "
                "(add them through kanext.checkpoint.register_extension)"
            )
    sd, ssd = model.state_dict(), skel.state_dict()
    if set(sd) != set(ssd):
        raise CheckpointError(
            f"cannot save: tensors {sorted(set(sd) ^ set(ssd))} are not covered by the checkpoint format "
            "(add them through kanext.checkpoint.register_extension)"
        )
    for key in sd:
        if sd[key].shape != ssd[key].shape:
            raise CheckpointError(
                f"cannot save: tensor {key!r} has shape {tuple(sd[key].shape)}, but the model's config "
                f"implies {tuple(ssd[key].shape)}"
            )


def _atomic_write(path: Path, data: bytes) -> None:
    # A fresh, exclusively created sibling (mode 0o666 less the umask, like a
    # plain open()), renamed over the target; removed again on any failure.
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _kanext_version() -> str:
    import kanext

    return str(getattr(kanext, "__version__", "unknown"))


# ----------------------------------------------------------------------- load


def read_config(path: str | os.PathLike) -> dict:
    """The checkpoint's JSON document (see the module docstring), parsed and
    checked for format, version and structure; the tensor file is not read."""
    json_path, _ = checkpoint_paths(path)
    return _read_json(json_path)


def load(path: str | os.PathLike, device=None, *, expect: type | None = None) -> KAN | KANLinear:
    """Rebuilds the model saved by :func:`save` at ``path`` (the stem, or
    either file's name).

    The class and every shape come from the JSON config (no random init, the
    global RNG is untouched); every parameter and buffer is then loaded bit
    for bit from the safetensors file, in its saved dtype, onto ``device``
    (default CPU), and each parameter's requires_grad flag is restored.
    ``expect`` (e.g. ``KAN``) makes a checkpoint of another class an error.

    Raises CheckpointError naming the file, what was expected and what was
    found, for: a missing file, invalid JSON, a wrong format or version, an
    unknown class/base_fun/dtype/extension, an inconsistent config, a tensor
    file whose size or sha256 differs from the config's (truncated,
    corrupted, or from another save), an unreadable safetensors file, and
    missing, unexpected, wrong-shape or wrong-dtype tensors.
    """
    json_path, st_path = checkpoint_paths(path)
    doc = _read_json(json_path)
    cls_name = doc["class"]
    if expect is not None and _CLASSES[cls_name] is not expect:
        raise CheckpointError(
            f"{json_path}: expected a checkpoint of {getattr(expect, '__qualname__', expect)}, found class {cls_name!r}"
        )

    if not st_path.is_file():
        raise CheckpointError(f"{st_path}: tensor file missing (expected next to {json_path.name})")
    blob = st_path.read_bytes()
    if len(blob) != doc["safetensors_size"]:
        what = "truncated" if len(blob) < doc["safetensors_size"] else "too long"
        raise CheckpointError(
            f"{st_path}: {what}: expected {doc['safetensors_size']} bytes (as recorded in {json_path.name}), "
            f"found {len(blob)}"
        )
    digest = hashlib.sha256(blob).hexdigest()
    if digest != doc["safetensors_sha256"]:
        raise CheckpointError(
            f"{st_path}: sha256 mismatch: expected {doc['safetensors_sha256']} (as recorded in {json_path.name}), "
            f"found {digest}; the file is corrupted or belongs to another save"
        )
    import safetensors.torch

    try:
        tensors = safetensors.torch.load(blob)
    except Exception as e:  # SafetensorError and friends: report as a checkpoint problem
        raise CheckpointError(f"{st_path}: expected a valid safetensors file, found an unreadable one ({e})") from e

    table = doc["tensors"]

    def meta_alloc(key, shape):
        if key not in table:
            raise CheckpointError(f"{json_path}: expected an entry for tensor {key!r} in 'tensors', found none")
        return torch.empty(shape, dtype=_DTYPES[table[key]["dtype"]], device="meta")

    skel = _build_checked(cls_name, doc["config"], meta_alloc, json_path)
    _apply_extensions(skel, doc["extra"], json_path)
    expected = skel.state_dict()
    params = {name for name, _ in skel.named_parameters()}

    extra_json = sorted(set(table) - set(expected))
    if extra_json:
        raise CheckpointError(
            f"{json_path}: 'tensors' lists {extra_json}, which the config does not imply "
            f"(expected exactly {sorted(expected)})"
        )
    for key, t in expected.items():
        ent = table[key]
        if ent["shape"] != list(t.shape):
            raise CheckpointError(
                f"{json_path}: tensor {key!r}: the config implies shape {list(t.shape)}, 'tensors' records {ent['shape']}"
            )
        if (key in params) != ("requires_grad" in ent):
            want = "a requires_grad flag (it is a parameter)" if key in params else "no requires_grad flag (it is a buffer)"
            raise CheckpointError(f"{json_path}: tensor {key!r}: expected {want}, found {ent}")

    missing = sorted(set(expected) - set(tensors))
    if missing:
        raise CheckpointError(f"{st_path}: missing tensor(s) {missing} (expected all of {sorted(expected)})")
    unexpected = sorted(set(tensors) - set(expected))
    if unexpected:
        raise CheckpointError(f"{st_path}: unexpected tensor(s) {unexpected} (expected only {sorted(expected)})")
    for key, t in expected.items():
        got = tensors[key]
        if got.shape != t.shape:
            raise CheckpointError(
                f"{st_path}: tensor {key!r}: expected shape {list(t.shape)}, found {list(got.shape)}"
            )
        if got.dtype != t.dtype:
            raise CheckpointError(
                f"{st_path}: tensor {key!r}: expected dtype {_DTYPE_NAMES[t.dtype]}, "
                f"found {_DTYPE_NAMES.get(got.dtype, str(got.dtype))}"
            )

    model = skel.to_empty(device=torch.device("cpu") if device is None else device)
    model.load_state_dict(tensors, strict=True)
    for m in model.modules():
        if isinstance(m, _symbolic.SymbolicLayer):
            m.invalidate()  # group the fixed edges now, from the loaded mask
    for name, p in model.named_parameters():
        p.requires_grad_(table[name]["requires_grad"])
    return model


def _apply_extensions(model, extra: dict, json_path: Path) -> None:
    for name, data in extra.items():
        ext = _EXTENSIONS.get(name)
        if ext is None:
            raise CheckpointError(
                f"{json_path}: 'extra' holds state for extension {name!r}, which is not registered "
                f"(registered: {sorted(_EXTENSIONS)}); this kanext cannot load it"
            )
        try:
            ext.load(model, data)
        except CheckpointError:
            raise
        except Exception as e:
            raise CheckpointError(f"{json_path}: extension {name!r} could not restore its state ({type(e).__name__}: {e})") from e


def _read_json(json_path: Path) -> dict:
    if not json_path.is_file():
        raise CheckpointError(f"{json_path}: config file missing (expected the JSON half of a kanext checkpoint)")
    raw = json_path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CheckpointError(f"{json_path}: expected UTF-8 JSON, found undecodable bytes ({e})") from e

    def no_dupes(pairs):
        d = {}
        for k, v in pairs:
            if k in d:
                raise CheckpointError(f"{json_path}: expected unique keys, found {k!r} twice")
            d[k] = v
        return d

    def no_constants(c):
        raise CheckpointError(f"{json_path}: expected plain JSON numbers, found {c}")

    try:
        doc = json.loads(text, object_pairs_hook=no_dupes, parse_constant=no_constants)
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{json_path}: expected valid JSON, found a syntax error ({e})") from e
    _validate_doc(doc, json_path)
    return doc


def _validate_doc(doc, json_path: Path) -> None:
    def bad(what, expected, found):
        raise CheckpointError(f"{json_path}: {what}: expected {expected}, found {found!r}")

    if not isinstance(doc, dict):
        bad("top level", "a JSON object", type(doc).__name__)
    if doc.get("format") != FORMAT:
        bad("'format'", repr(FORMAT), doc.get("format", "<missing>"))
    ver = doc.get("format_version")
    if not _is_int(ver) or ver < 1:
        bad("'format_version'", "a positive int", ver)
    if ver > FORMAT_VERSION:
        bad("'format_version'", f"<= {FORMAT_VERSION} (written by a newer kanext)", ver)
    missing = sorted(_TOP_KEYS - set(doc))
    if missing:
        bad("keys", f"all of {sorted(_TOP_KEYS)}", f"missing {missing}")
    unknown = sorted(set(doc) - _TOP_KEYS)
    if unknown:
        bad("keys", f"only {sorted(_TOP_KEYS)}", f"unknown {unknown}")
    if doc["class"] not in _CLASSES:
        bad("'class'", f"one of {sorted(_CLASSES)}", doc["class"])
    sha = doc["safetensors_sha256"]
    if not (isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)):
        bad("'safetensors_sha256'", "64 lowercase hex digits", sha)
    if not _is_int(doc["safetensors_size"]) or doc["safetensors_size"] < 8:
        bad("'safetensors_size'", "an int >= 8", doc["safetensors_size"])
    for key in ("extra", "metadata", "config", "tensors"):
        if not isinstance(doc[key], dict):
            bad(f"'{key}'", "a JSON object", doc[key])
    for key, ent in doc["tensors"].items():
        if not isinstance(ent, dict) or not {"dtype", "shape"} <= set(ent) or not set(ent) <= {"dtype", "shape", "requires_grad"}:
            bad(f"'tensors'[{key!r}]", "an object with dtype, shape and (parameters only) requires_grad", ent)
        if ent["dtype"] not in _DTYPES:
            bad(f"'tensors'[{key!r}] dtype", f"one of {sorted(_DTYPES)}", ent["dtype"])
        if not isinstance(ent["shape"], list) or not all(_is_int(s) and s >= 0 for s in ent["shape"]):
            bad(f"'tensors'[{key!r}] shape", "a list of non-negative ints", ent["shape"])
        if "requires_grad" in ent and not isinstance(ent["requires_grad"], bool):
            bad(f"'tensors'[{key!r}] requires_grad", "true or false", ent["requires_grad"])


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# ------------------------------------------------------------------- skeleton


def _build_checked(cls_name: str, config: dict, alloc, json_path: Path):
    try:
        return _build(cls_name, config, alloc, check=True)
    except _ConfigError as e:
        raise CheckpointError(f"{json_path}: 'config' {e}") from None


class _ConfigError(Exception):
    pass


def _need(cond, what, expected, found):
    if not cond:
        raise _ConfigError(f"{what}: expected {expected}, found {found!r}")


def _build(cls_name: str, config: dict, alloc, check: bool = False):
    """The model described by config, its tensors made by ``alloc(key, shape)``
    (uninitialised; no random draws), without running ``__init__``."""
    if cls_name == "KANLinear":
        return _layer_skeleton(config, alloc, "", check)
    if cls_name == "SplineActivation":
        return _act_skeleton(config, alloc, "", check)
    if cls_name == "LANLayer":
        return _lan_layer_skeleton(config, alloc, "", check)
    if cls_name == "LAN":
        if check:
            _need(isinstance(config, dict) and set(config) == _LAN_KEYS, "keys", sorted(_LAN_KEYS),
                  sorted(config) if isinstance(config, dict) else config)
            w = config["width"]
            _need(isinstance(w, list) and len(w) >= 2 and all(_is_int(v) and v >= 1 for v in w),
                  "'width'", "a list of >= 2 positive ints", w)
            _need(isinstance(config["layers"], list) and len(config["layers"]) == len(w) - 1,
                  "'layers'", f"a list of {len(w) - 1} layer configs", config["layers"])
            for l, lc in enumerate(config["layers"]):
                _need(isinstance(lc, dict) and lc.get("in_features") == w[l] and lc.get("out_features") == w[l + 1],
                      f"'layers'[{l}]", f"in_features={w[l]}, out_features={w[l + 1]} (from width)", lc)
        m = LAN.__new__(LAN)
        nn.Module.__init__(m)
        m.width = list(config["width"])
        m.layers = nn.ModuleList(_lan_layer_skeleton(lc, alloc, f"layers.{l}.", check, f"'layers'[{l}] ")
                                 for l, lc in enumerate(config["layers"]))
        return m
    if check:
        _need(isinstance(config, dict) and set(config) == _KAN_KEYS, "keys", sorted(_KAN_KEYS), sorted(config))
        w = config["width"]
        _need(isinstance(w, list) and len(w) >= 2 and all(_is_int(v) and v >= 1 for v in w),
              "'width'", "a list of >= 2 positive ints", w)
        _need(isinstance(config["layers"], list) and len(config["layers"]) == len(w) - 1,
              "'layers'", f"a list of {len(w) - 1} layer configs", config["layers"])
        _check_range(config["grid_range"], "'grid_range'")
        _need(config["base_fun"] in _BASES, "'base_fun'", f"one of {list(_BASES)}", config["base_fun"])
    width = config["width"]
    m = KAN.__new__(KAN)
    nn.Module.__init__(m)
    m.width = list(width)
    m.base_fun = config["base_fun"]
    m.grid_range = tuple(float(v) for v in config["grid_range"])
    layers = []
    for l, lc in enumerate(config["layers"]):
        if check:
            _need(isinstance(lc, dict) and lc.get("in_features") == width[l] and lc.get("out_features") == width[l + 1],
                  f"'layers'[{l}]", f"in_features={width[l]}, out_features={width[l + 1]} (from width)", lc)
        layers.append(_layer_skeleton(lc, alloc, f"act_fun.{l}.", check, f"'layers'[{l}] "))
    m.act_fun = nn.ModuleList(layers)
    for name in ("node_scale", "node_bias", "subnode_scale", "subnode_bias"):
        setattr(m, name, nn.ParameterList(nn.Parameter(alloc(f"{name}.{l}", (w,))) for l, w in enumerate(width[1:])))
    m.symbolic_fun = nn.ModuleList(_symbolic_skeleton(width[l], width[l + 1], alloc, f"symbolic_fun.{l}.")
                                   for l in range(len(width) - 1))
    return m


def _symbolic_skeleton(n_in: int, n_out: int, alloc, prefix: str) -> "_symbolic.SymbolicLayer":
    # Every KAN has a symbolic branch (mask and affine travel as tensors); the
    # function names, when any edge has one, come from the "kanext.symbolic" extension.
    m = _symbolic.SymbolicLayer.__new__(_symbolic.SymbolicLayer)
    nn.Module.__init__(m)
    m.in_features, m.out_features = n_in, n_out
    m.register_buffer("mask", alloc(prefix + "mask", (n_out, n_in)))
    m.affine = nn.Parameter(alloc(prefix + "affine", (n_out, n_in, 4)))
    m.funs_name = [["0"] * n_in for _ in range(n_out)]
    m._groups, m._version = None, 0
    return m


def _check_range(r, what):
    _need(isinstance(r, list) and len(r) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in r)
          and r[0] < r[1], what, "[low, high] with low < high", r)


def _check_spline_cfg(cfg, keys: set, sizes: tuple, where: str) -> None:
    """The config of one spline module (a KANLinear layer or a SplineActivation):
    exactly `keys`, the sizes in `sizes` and grid ints >= 1, k in [0, 5], a valid
    grid range, a known base function and a numeric grid_eps."""
    _need(isinstance(cfg, dict) and set(cfg) == keys, f"{where}keys", sorted(keys),
          sorted(cfg) if isinstance(cfg, dict) else cfg)
    for key, lo in [(name, 1) for name in sizes] + [("grid", 1), ("k", 0)]:
        _need(_is_int(cfg[key]) and cfg[key] >= lo, f"{where}{key!r}", f"an int >= {lo}", cfg[key])
    _need(cfg["k"] <= 5, f"{where}'k'", "an int in [0, 5]", cfg["k"])
    _check_range(cfg["grid_range"], f"{where}'grid_range'")
    _need(cfg["base_fun"] in _BASES, f"{where}'base_fun'", f"one of {list(_BASES)}", cfg["base_fun"])
    eps = cfg["grid_eps"]
    _need(isinstance(eps, (int, float)) and not isinstance(eps, bool), f"{where}'grid_eps'", "a number", eps)


def _layer_skeleton(cfg: dict, alloc, prefix: str, check: bool, where: str = "") -> KANLinear:
    if check:
        _check_spline_cfg(cfg, _LAYER_KEYS, ("in_features", "out_features"), where)
    n_in, n_out, G, k = cfg["in_features"], cfg["out_features"], cfg["grid"], cfg["k"]
    m = KANLinear.__new__(KANLinear)
    nn.Module.__init__(m)
    m.in_features, m.out_features, m.num, m.k = n_in, n_out, G, k
    m.grid_range = tuple(float(v) for v in cfg["grid_range"])
    m.base_fun = cfg["base_fun"]
    m.grid_eps = float(cfg["grid_eps"])
    m.register_buffer("grid", alloc(prefix + "grid", (n_in, G + 2 * k + 1)))
    m.register_buffer("mask", alloc(prefix + "mask", (n_in, n_out)))
    m.coef = nn.Parameter(alloc(prefix + "coef", (n_in, n_out, G + k)))
    m.scale_base = nn.Parameter(alloc(prefix + "scale_base", (n_in, n_out)))
    m.scale_sp = nn.Parameter(alloc(prefix + "scale_sp", (n_in, n_out)))
    return m


def _act_skeleton(cfg: dict, alloc, prefix: str, check: bool, where: str = "") -> SplineActivation:
    if check:
        _check_spline_cfg(cfg, _ACT_KEYS, ("num_channels",), where)
    C, G, k = cfg["num_channels"], cfg["grid"], cfg["k"]
    m = SplineActivation.__new__(SplineActivation)
    nn.Module.__init__(m)
    m.num_channels, m.num, m.k = C, G, k
    m.grid_range = tuple(float(v) for v in cfg["grid_range"])
    m.base_fun = cfg["base_fun"]
    m.grid_eps = float(cfg["grid_eps"])
    m.register_buffer("grid", alloc(prefix + "grid", (C, G + 2 * k + 1)))
    m.coef = nn.Parameter(alloc(prefix + "coef", (C, G + k)))
    m.scale_base = nn.Parameter(alloc(prefix + "scale_base", (C,)))
    m.scale_sp = nn.Parameter(alloc(prefix + "scale_sp", (C,)))
    return m


def _lan_layer_skeleton(cfg: dict, alloc, prefix: str, check: bool, where: str = "") -> LANLayer:
    if check:
        _need(isinstance(cfg, dict) and set(cfg) == _LANLAYER_KEYS, f"{where}keys", sorted(_LANLAYER_KEYS),
              sorted(cfg) if isinstance(cfg, dict) else cfg)
        for key in ("in_features", "out_features"):
            _need(_is_int(cfg[key]) and cfg[key] >= 1, f"{where}{key!r}", "an int >= 1", cfg[key])
        _need(isinstance(cfg["bias"], bool), f"{where}'bias'", "true or false", cfg["bias"])
        act = cfg["activation"]
        _need(isinstance(act, dict) and act.get("num_channels") == cfg["out_features"], f"{where}'activation'",
              f"an activation config with num_channels={cfg['out_features']}", act)
    n_in, n_out = cfg["in_features"], cfg["out_features"]
    m = LANLayer.__new__(LANLayer)
    nn.Module.__init__(m)
    m.in_features, m.out_features = n_in, n_out
    lin = nn.Linear.__new__(nn.Linear)
    nn.Module.__init__(lin)
    lin.in_features, lin.out_features = n_in, n_out
    lin.weight = nn.Parameter(alloc(prefix + "linear.weight", (n_out, n_in)))
    if cfg["bias"]:
        lin.bias = nn.Parameter(alloc(prefix + "linear.bias", (n_out,)))
    else:
        lin.register_parameter("bias", None)
    m.linear = lin
    m.act = _act_skeleton(cfg["activation"], alloc, prefix + "act.", check, f"{where}'activation' ")
    return m
