"""Safe checkpoints: the format, file I/O and validation, for every class
registered with :func:`checkpointable` (KAN, KANLinear, LAN, LANLayer,
SplineActivation, MLP). This module knows no model class: each class writes its
own config (``checkpoint_config``) and rebuilds itself from one through its
real ``__init__`` (``from_checkpoint_config``). Long file: it is the whole
contract of the format (what is written, what is checked on reading, every
error message), kept in one place on purpose.

A checkpoint is two sibling files named from one *stem* path::

    save(model, "runs/ckpt")   # writes runs/ckpt.json and runs/ckpt.safetensors
    model = load("runs/ckpt")  # "runs/ckpt.json" or "runs/ckpt.safetensors" work too

``<stem>.json`` (UTF-8 JSON)::

    {
      "format": "kanext.checkpoint", "format_version": 1,
      "kanext_version": "0.1.0",              # informative
      "class": "KAN",                         # a registered class name
      "config": {...},                        # the class's own config: every shape, G, k, ranges, bases
      "dtype": "float32",                     # informative: the common floating dtype, or "mixed"
      "tensors": {"<state_dict key>": {"dtype": "float32", "shape": [2, 5],
                                       "requires_grad": true}, ...},   # requires_grad: parameters only
      "safetensors_sha256": "<hex>", "safetensors_size": 1234,
      "extra": {"<extension name>": <JSON>, ...},   # state written by registered extensions
      "metadata": {...}                              # the caller's own JSON data, never interpreted
    }

``<stem>.safetensors`` holds every parameter and buffer under its
``state_dict`` key, in its own dtype, bit for bit. Its header's metadata
records the format and the sha256 of the JSON's model description ("class",
"config", "tensors" and "extra", as canonical JSON), so each file vouches for
the other: only "metadata" may be edited after the save.

What is saved: the config, every parameter and buffer, and extension state
(the symbolic function names, :mod:`kanext.symbolic.state`). What is not:
plain attributes (``cache_data``, recorded statistics, attribution scores,
``input_id``, torch.compile's flags, attributes a user set): they are not
model state and a loaded model does not have them. A compiled module
(``torch.compile(model)``) is saved as the module it wraps.

Safety: only JSON and safetensors are parsed; nothing in either file can name
code to run (the class comes from the registry, base functions from a fixed
set of names). Writes go to temporary files renamed over the targets, so a
failed save leaves no stray file; the tensor file's sha256 and size are
checked before it is parsed. Every problem found while loading raises
:class:`CheckpointError` naming the file, what was expected and what was found.

Extensions (:func:`register_extension`): at save, ``save_fn(model)`` returns
JSON data or None, stored under ``extra[name]``; at load, ``load_fn(model,
data)`` runs on the rebuilt model (placeholder tensors on the meta device)
before the tensors are loaded and must restore attributes and create any
parameters/buffers the data implies, which then travel by state_dict key like
all others. A checkpoint naming an unregistered extension is refused, and
:func:`save` refuses a model with submodules or tensors that neither the
config nor an extension covers, instead of writing a checkpoint that would
load into something different.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import safetensors.torch
import torch
from torch import nn

from .checks import ConfigError

__all__ = [
    "Checkpointed",
    "checkpointable",
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

#: The classes a checkpoint may name, by name: filled by :func:`checkpointable`.
_CLASSES: dict[str, type] = {}
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
class CheckpointError(ValueError):
    """A checkpoint cannot be written or read: the message names the file,
    what was expected and what was found."""


# ------------------------------------------------------------------ classes


def checkpointable(cls: type) -> type:
    """Class decorator: registers cls (under its __name__) as a class that
    checkpoints may hold. cls provides ``checkpoint_config(self) -> dict``
    (plain JSON; raises kanext.checks.ConfigError when the object cannot be
    described) and ``from_checkpoint_config(cls, config, where="", device="meta")``,
    which validates a config (ConfigError naming the entry) and builds the
    object through its real ``__init__``, with placeholder tensors."""
    _CLASSES[cls.__name__] = cls
    return cls


class Checkpointed:
    """Mixin of the checkpointable modules: ``save`` / ``load``."""

    def save(self, path, *, metadata=None):
        """Writes <path>.json (config) + <path>.safetensors (tensors), no pickle;
        see :func:`kanext.checkpoint.save`."""
        return save(self, path, metadata=metadata)

    @classmethod
    def load(cls, path, device=None):
        """Reads a checkpoint written by :meth:`save`, bit for bit; a checkpoint
        of another class is an error. See :func:`kanext.checkpoint.load`."""
        return load(path, device, expect=cls)


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


def save(model: nn.Module, path: str | os.PathLike, *, metadata: dict | None = None) -> tuple[Path, Path]:
    """Writes ``model`` to ``<path>.json`` (config) and ``<path>.safetensors``
    (every parameter and buffer by state_dict key); nothing else is written.

    ``path`` is a stem (a trailing ``.json``/``.safetensors`` is dropped); its
    folder must exist. Existing files are replaced. ``metadata`` is optional
    JSON data of your own, stored as is (read it back with :func:`read_config`).
    Returns the two paths written.

    Raises CheckpointError, before writing anything, for a model the format
    cannot represent: an unregistered class (subclasses included), a callable
    base_fun (named in the message; use 'silu', 'identity' or 'zero'),
    non-finite grid_range, or submodules/tensors not covered by the config or
    by a registered extension. Plain attributes are not saved (see the
    module docstring); a torch.compile wrapper is saved as its module.
    """
    json_path, st_path = checkpoint_paths(path)
    model = getattr(model, "_orig_mod", model) if _is_compiled_wrapper(model) else model
    cls_name = _class_name(model)
    try:
        config = model.checkpoint_config()
    except ConfigError as e:
        raise CheckpointError(f"cannot save: {e}") from None

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

    common = {dtypes[key] for key, t in sd.items() if t.is_floating_point()}
    doc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kanext_version": _kanext_version(),
        "class": cls_name,
        "config": config,
        "dtype": common.pop() if len(common) == 1 else "mixed",
        "tensors": table,
        "extra": extra,
        "metadata": {} if metadata is None else metadata,
    }
    try:
        parsed = json.loads(json.dumps(doc, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"cannot save: config, extension data or metadata is not plain finite JSON ({e})") from e
    # The tensor file vouches for the JSON's model description (as parsed back), the JSON for the tensor file.
    described = _description_sha256(parsed)
    blob = safetensors.torch.save(tensors, metadata={"format": FORMAT, "format_version": str(FORMAT_VERSION),
                                                     _DESCRIPTION_KEY: described})
    doc["safetensors_sha256"] = hashlib.sha256(blob).hexdigest()
    doc["safetensors_size"] = len(blob)
    doc["extra"] = doc.pop("extra")  # keep the documented key order
    doc["metadata"] = doc.pop("metadata")
    text = json.dumps(doc, indent=1, allow_nan=False, ensure_ascii=False) + "\n"
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as e:  # a lone surrogate in a str: refused before any file is written
        raise CheckpointError(f"cannot save: config, extension data or metadata holds a str that is not valid "
                              f"Unicode ({e})") from e

    # Tensor file first, config last: a crash in between leaves a config whose
    # sha256 does not match, which load reports.
    _atomic_write(st_path, blob)
    _atomic_write(json_path, data)
    return json_path, st_path


def _is_compiled_wrapper(model) -> bool:
    # torch.compile(module) returns an OptimizedModule around the module: save the module itself
    return type(model).__name__ == "OptimizedModule" and isinstance(getattr(model, "_orig_mod", None), nn.Module)


def _class_name(model) -> str:
    for name, cls in _CLASSES.items():
        if type(model) is cls:
            return name
    names = sorted(_CLASSES)
    listed = ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else "".join(names)
    raise CheckpointError(
        f"cannot save: expected a kanext.{listed}, got {type(model).__module__}.{type(model).__qualname__}"
    )


def _check_covered(model, cls_name, config, extra, dtypes) -> None:
    """The model load would build must have the same submodules and tensors
    (names and shapes) as the model: otherwise the checkpoint would silently
    drop state. Plain attributes (a user's own, torch.compile's flags, caches)
    are not model state and are not compared."""
    skel = _CLASSES[cls_name].from_checkpoint_config(config)
    for name, data in extra.items():
        _EXTENSIONS[name].load(skel, data)
    mods, smods = dict(model.named_modules()), dict(skel.named_modules())
    if set(mods) != set(smods):
        raise CheckpointError(
            f"cannot save: submodules {sorted(set(mods) ^ set(smods))} are not covered by the checkpoint format "
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
    from importlib import metadata

    try:
        return metadata.version("kanext")
    except metadata.PackageNotFoundError:
        return "unknown"


# ----------------------------------------------------------------------- load


def read_config(path: str | os.PathLike) -> dict:
    """The checkpoint's JSON document (see the module docstring), parsed and
    checked for format, version and structure; the tensor file is not read."""
    json_path, _ = checkpoint_paths(path)
    return _read_json(json_path)


def load(path: str | os.PathLike, device=None, *, expect: type | None = None) -> nn.Module:
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
    corrupted, or from another save), an unreadable safetensors file,
    missing, unexpected, wrong-shape or wrong-dtype tensors, and a JSON whose
    class, config, tensor table or extension data differ from the
    description the tensor file recorded (edited after the save; files from
    kanext versions before that record are not checked for this).
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
    try:
        tensors = safetensors.torch.load(blob)
    except Exception as e:  # SafetensorError and friends: report as a checkpoint problem
        raise CheckpointError(f"{st_path}: expected a valid safetensors file, found an unreadable one ({e})") from e

    table = doc["tensors"]
    try:
        skel = _CLASSES[cls_name].from_checkpoint_config(doc["config"])
    except ConfigError as e:
        raise CheckpointError(f"{json_path}: 'config' {e}") from None
    _apply_extensions(skel, doc["extra"], json_path)
    # buffers a module rebuilds from its other state, absent from files written before they existed
    absent = {key for key in _derived_keys(skel) if key not in table and key not in tensors}
    for key in skel.state_dict():
        if key not in table and key not in absent:
            raise CheckpointError(f"{json_path}: expected an entry for tensor {key!r} in 'tensors', found none")
    _retype(skel, table)
    expected = {key: t for key, t in skel.state_dict().items() if key not in absent}
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

    _check_description(doc, blob, json_path, st_path)
    model = skel.to_empty(device=torch.device("cpu") if device is None else device)
    if absent:  # the model's state_dict writes them from the state the config and extensions restored
        tensors = {**{key: t for key, t in model.state_dict().items() if key in absent}, **tensors}
    model.load_state_dict(tensors, strict=True)
    for name, p in model.named_parameters():
        p.requires_grad_(table[name]["requires_grad"])
    return model


# Key, in the safetensors header's metadata, of the sha256 of the JSON's model
# description ("class", "config", "tensors", "extra"; not the caller's
# "metadata"). Files written before it existed have none and are not checked.
_DESCRIPTION_KEY = "kanext_description_sha256"


def _description_sha256(doc: dict) -> str:
    part = {key: doc[key] for key in ("class", "config", "tensors", "extra")}
    text = json.dumps(part, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _check_description(doc: dict, blob: bytes, json_path: Path, st_path: Path) -> None:
    """An edit of the JSON that still describes a loadable model (a function
    name or a base changed, the symbolic names dropped) would load a different
    model: the tensor file's record of the description catches it."""
    (n,) = struct.unpack("<Q", blob[:8])
    recorded = json.loads(blob[8 : 8 + n]).get("__metadata__", {}).get(_DESCRIPTION_KEY)
    if recorded is None:  # written by an earlier kanext
        return
    found = _description_sha256(doc)
    if found != recorded:
        raise CheckpointError(
            f"{json_path}: 'class', 'config', 'tensors' and 'extra' do not match what was saved with "
            f"{st_path.name}: expected sha256 {recorded} (recorded in its header), found {found}; "
            "the JSON file was edited after the save (only 'metadata' may change)"
        )


def _derived_keys(model) -> set:
    """state_dict keys of buffers that their module writes from its other
    state when a state_dict is taken (``_derived_buffers``, e.g. the symbolic
    branches' ``funs_code``)."""
    return {f"{prefix}.{name}" if prefix else name for prefix, m in model.named_modules()
            for name in getattr(type(m), "_derived_buffers", ())}


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


def _retype(skel: nn.Module, table: dict) -> None:
    """Gives each placeholder tensor of the rebuilt model the dtype the file records (strides kept)."""
    for prefix, mod in skel.named_modules():
        for store in (mod._parameters, mod._buffers):
            for name, t in list(store.items()):
                ent = table.get(f"{prefix}.{name}" if prefix else name)
                if t is None or ent is None or _DTYPES[ent["dtype"]] == t.dtype:
                    continue
                new = t.detach().to(_DTYPES[ent["dtype"]])
                store[name] = nn.Parameter(new, requires_grad=t.requires_grad) if isinstance(t, nn.Parameter) else new
