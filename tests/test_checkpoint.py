"""kanext.checkpoint: bit-exact save/load round trips (float32/float64,
non-uniform grids, masks, affines, requires_grad flags), a clear
CheckpointError for every kind of damaged or mismatched file, no stray
files, no pickle, no global RNG use, the extension hook, and plain
state_dict / load_state_dict."""
from __future__ import annotations

import ast
import hashlib
import json
import os
import pickle
import re
import struct
from pathlib import Path

import pytest
import safetensors.torch
import torch
from torch import nn

import kanext
from kanext import checkpoint
from kanext.checkpoint import CheckpointError, load, read_config, save
from helpers import DTYPES, assert_bitwise_equal, gen, make_grid


# ------------------------------------------------------------------ helpers


def _perturb(model: nn.Module, seed: int) -> nn.Module:
    """A trained-looking state: random coef/scales/affines, non-uniform grids,
    pruned mask entries, mixed requires_grad flags."""
    g = gen(seed)
    layers = [model] if isinstance(model, kanext.KANLinear) else list(model.act_fun)
    with torch.no_grad():
        for i, layer in enumerate(layers):
            dt = layer.coef.dtype
            layer.grid.copy_(make_grid(layer.in_features, layer.num, layer.k, dt, uniform=False, seed=seed + i))
            layer.coef.copy_(torch.randn(layer.coef.shape, generator=g, dtype=torch.float64).to(dt))
            layer.scale_base.copy_(torch.randn(layer.scale_base.shape, generator=g, dtype=torch.float64).to(dt))
            layer.scale_sp.copy_(torch.rand(layer.scale_sp.shape, generator=g, dtype=torch.float64).to(dt) + 0.5)
            layer.mask.copy_((torch.rand(layer.mask.shape, generator=g) > 0.3).to(dt))
            layer.scale_base.requires_grad_(i % 2 == 0)
        if isinstance(model, kanext.KAN):
            for name in ("node_scale", "node_bias", "subnode_scale", "subnode_bias"):
                for p in getattr(model, name):
                    p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64).to(p.dtype))
            model.node_scale[0].requires_grad_(True)
            model.subnode_bias[-1].requires_grad_(True)
    return model


def _kan(dtype=torch.float64, seed=0, **kw) -> kanext.KAN:
    kw.setdefault("width", [3, 4, 2])
    kw.setdefault("grid", [5, 3])
    kw.setdefault("k", [3, 2])
    return _perturb(kanext.KAN(seed=seed, dtype=dtype, **kw), seed + 100)


def _assert_same_model(a: nn.Module, b: nn.Module):
    assert type(a) is type(b)
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb), f"state_dict keys differ: {list(sa)} vs {list(sb)}"
    for key in sa:
        assert sa[key].dtype == sb[key].dtype, key
        assert_bitwise_equal(sb[key], sa[key], msg=key)
    fa = {n: p.requires_grad for n, p in a.named_parameters()}
    fb = {n: p.requires_grad for n, p in b.named_parameters()}
    assert fa == fb
    for (na, ma), (nb, mb) in zip(a.named_modules(), b.named_modules()):
        assert na == nb and type(ma) is type(mb)
        for attr in ("width", "grid_range", "base_fun", "in_features", "out_features", "num", "k", "grid_eps"):
            assert getattr(ma, attr, None) == getattr(mb, attr, None), f"{na}.{attr}"
            assert type(getattr(ma, attr, None)) is type(getattr(mb, attr, None)), f"{na}.{attr} type"


def _listing(d: Path) -> list[str]:
    return sorted(str(p.relative_to(d)) for p in d.rglob("*"))


def _rewrite_tensors(stem: Path, mutate) -> None:
    """Rewrites <stem>.safetensors with mutate(tensors) and fixes the sha256 and
    size recorded in <stem>.json, so only the mutation is wrong."""
    st_path = Path(f"{stem}.safetensors")
    tensors = safetensors.torch.load(st_path.read_bytes())
    mutate(tensors)
    blob = safetensors.torch.save(tensors)
    st_path.write_bytes(blob)
    _patch_json(stem, lambda d: d.update(safetensors_sha256=hashlib.sha256(blob).hexdigest(), safetensors_size=len(blob)))


def _patch_json(stem: Path, mutate) -> None:
    json_path = Path(f"{stem}.json")
    doc = json.loads(json_path.read_text())
    mutate(doc)
    json_path.write_text(json.dumps(doc))


# --------------------------------------------------------------- round trips


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_kan_round_trip_bit_exact(tmp_path, dtype):
    model = _kan(dtype)
    model.cache_data = torch.zeros(2, 3)  # a training cache: allowed, not saved
    save(model, tmp_path / "ckpt")
    loaded = load(tmp_path / "ckpt")
    _assert_same_model(model, loaded)
    assert not hasattr(loaded, "cache_data")
    assert loaded.width == [3, 4, 2] and loaded.grid == [5, 3] and loaded.k == [3, 2]
    x = torch.rand(64, 3, generator=gen(1), dtype=torch.float64).mul(2.4).sub(1.2).to(dtype)
    assert_bitwise_equal(loaded(x), model(x), msg="outputs")
    # The modified (non-uniform) grid really is what came back, not a fresh uniform one.
    assert not torch.equal(loaded.act_fun[0].grid, kanext.KAN([3, 4, 2], grid=[5, 3], k=[3, 2], dtype=dtype).act_fun[0].grid)
    assert float(loaded.act_fun[0].mask.sum()) < loaded.act_fun[0].mask.numel()


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("base_fun", ["silu", "identity", "zero"])
def test_kanlinear_round_trip_bit_exact(tmp_path, dtype, base_fun):
    layer = _perturb(kanext.KANLinear(4, 3, grid=6, k=3, base_fun=base_fun, grid_range=(-2.0, 0.5), dtype=dtype), 7)
    layer.grid_eps = 0.25
    save(layer, tmp_path / "layer")
    loaded = load(tmp_path / "layer")
    assert type(loaded) is kanext.KANLinear
    _assert_same_model(layer, loaded)
    assert loaded.grid_range == (-2.0, 0.5) and loaded.base_fun == base_fun and loaded.grid_eps == 0.25
    x = torch.rand(32, 4, generator=gen(2), dtype=torch.float64).mul(4).sub(2).to(dtype)
    assert_bitwise_equal(loaded(x), layer(x), msg="outputs")


def test_special_values_survive_bitwise(tmp_path):
    layer = kanext.KANLinear(2, 2, grid=3, k=1, dtype=torch.float32)
    special = torch.tensor([-0.0, float("nan"), float("inf"), -float("inf"), 1e-45, -3.4e38], dtype=torch.float32)
    with torch.no_grad():
        flat = layer.coef.detach().reshape(-1).clone()
        flat[: special.numel()] = special
        layer.coef.copy_(flat.view(layer.coef.shape))
    save(layer, tmp_path / "s")
    got = load(tmp_path / "s").coef.detach()
    assert torch.equal(got.view(torch.int32), layer.coef.detach().view(torch.int32))


def test_per_layer_grid_k_including_k0(tmp_path):
    model = _kan(torch.float32, width=[2, 3, 3, 1], grid=[2, 7, 4], k=[0, 1, 5])
    save(model, tmp_path / "m")
    _assert_same_model(model, load(tmp_path / "m"))


def test_requires_grad_flags_and_training_continue(tmp_path):
    model = _kan(torch.float64)
    save(model, tmp_path / "m")
    loaded = load(tmp_path / "m")
    flags = {n: p.requires_grad for n, p in loaded.named_parameters()}
    assert flags["act_fun.0.scale_base"] is True and flags["act_fun.1.scale_base"] is False
    assert flags["node_scale.0"] is True and flags["node_scale.1"] is False and flags["node_bias.0"] is False
    assert all(isinstance(p, nn.Parameter) for p in loaded.parameters())
    x = torch.rand(16, 3, generator=gen(3), dtype=torch.float64)
    for m in (model, loaded):
        m.zero_grad()
        m(x).square().sum().backward()
    for (n, p), (_, q) in zip(model.named_parameters(), loaded.named_parameters()):
        assert (p.grad is None) == (q.grad is None), n
        if p.grad is not None:
            assert_bitwise_equal(q.grad, p.grad, msg=f"grad {n}")


def test_loaded_tensors_are_independent_copies(tmp_path):
    model = _kan()
    save(model, tmp_path / "m")
    a, b = load(tmp_path / "m"), load(tmp_path / "m")
    with torch.no_grad():
        a.act_fun[0].coef.add_(1.0)
        a.act_fun[0].grid.add_(1.0)
    _assert_same_model(model, b)


def test_path_spellings(tmp_path):
    layer = kanext.KANLinear(2, 1)
    written = save(layer, str(tmp_path / "a.json"))
    assert written == (tmp_path / "a.json", tmp_path / "a.safetensors")
    for spelling in (tmp_path / "a", str(tmp_path / "a.json"), tmp_path / "a.safetensors"):
        _assert_same_model(layer, load(spelling))
    save(layer, tmp_path / "b.safetensors")
    assert _listing(tmp_path) == ["a.json", "a.safetensors", "b.json", "b.safetensors"]


def test_metadata_round_trip_and_config_contents(tmp_path):
    model = _kan(torch.float32)
    save(model, tmp_path / "m", metadata={"step": 12, "note": "ok"})
    doc = read_config(tmp_path / "m")
    assert doc["metadata"] == {"step": 12, "note": "ok"}
    assert doc["format"] == "kanext.checkpoint" and doc["format_version"] == 1 and doc["class"] == "KAN"
    assert doc["dtype"] == "float32" and doc["extra"] == {}
    assert doc["config"]["width"] == [3, 4, 2]
    assert [lc["grid"] for lc in doc["config"]["layers"]] == [5, 3]
    assert [lc["k"] for lc in doc["config"]["layers"]] == [3, 2]
    assert doc["tensors"]["act_fun.0.grid"] == {"dtype": "float32", "shape": [3, 12]}
    assert doc["tensors"]["node_scale.0"] == {"dtype": "float32", "shape": [4], "requires_grad": True}
    blob = (tmp_path / "m.safetensors").read_bytes()
    assert doc["safetensors_sha256"] == hashlib.sha256(blob).hexdigest() and doc["safetensors_size"] == len(blob)


def test_device_argument(tmp_path):
    model = _kan(torch.float32)
    save(model, tmp_path / "m")
    loaded = load(tmp_path / "m", device="cpu")
    assert all(t.device.type == "cpu" for t in loaded.state_dict().values())
    if torch.cuda.is_available():
        on_gpu = load(tmp_path / "m", device="cuda")
        assert all(t.device.type == "cuda" for t in on_gpu.state_dict().values())
        _assert_same_model(model, on_gpu.cpu())


def test_expect_class(tmp_path):
    save(_kan(), tmp_path / "m")
    assert type(load(tmp_path / "m", expect=kanext.KAN)) is kanext.KAN
    with pytest.raises(CheckpointError, match=r"m\.json: expected a checkpoint of KANLinear, found class 'KAN'"):
        load(tmp_path / "m", expect=kanext.KANLinear)


def test_pykan_names_saveckpt_loadckpt(tmp_path, monkeypatch):
    """pykan's saveckpt / KAN.loadckpt: the same files and the same model as
    save / load, pykan's default path 'model', and load's errors."""
    model = _kan(torch.float64)
    paths = model.saveckpt(str(tmp_path / "m"))
    assert [p.name for p in paths] == ["m.json", "m.safetensors"]
    loaded = kanext.KAN.loadckpt(str(tmp_path / "m"))
    assert type(loaded) is kanext.KAN
    _assert_same_model(model, loaded)
    x = torch.rand(16, 3, generator=gen(2), dtype=torch.float64)
    assert_bitwise_equal(loaded(x), model(x), msg="outputs")
    monkeypatch.chdir(tmp_path)
    model.saveckpt()
    assert (tmp_path / "model.json").exists() and (tmp_path / "model.safetensors").exists()
    _assert_same_model(model, kanext.KAN.loadckpt())
    with pytest.raises(CheckpointError, match="nothere"):
        kanext.KAN.loadckpt("nothere")
    save(kanext.KANLinear(3, 2), tmp_path / "lin")
    with pytest.raises(CheckpointError, match="expected a checkpoint of KAN, found class 'KANLinear'"):
        kanext.KAN.loadckpt("lin")


def test_symbolic_enabled_switch_round_trips(tmp_path):
    """A model in pykan's speed mode (symbolic_enabled False, its fixed
    symbolic edges skipped) loads in that mode, edges kept, output bit for
    bit; the default mode writes no key; a bad value is refused."""
    model = _kan(torch.float64)
    x = torch.rand(32, 3, generator=gen(3), dtype=torch.float64)
    model(x)
    model.fix_symbolic(0, 1, 2, "sin", verbose=False)
    on = model(x).detach()
    model.symbolic_enabled = False
    off = model(x).detach()
    assert not torch.equal(on, off)
    save(model, tmp_path / "m")
    loaded = load(tmp_path / "m")
    assert loaded.symbolic_enabled is False and loaded.symbolic_fun[0].funs_name[2][1] == "sin"
    assert_bitwise_equal(loaded(x), off, msg="speed mode")
    loaded.symbolic_enabled = True
    assert_bitwise_equal(loaded(x), on, msg="switched back on")
    plain = _kan(torch.float64)
    plain.symbolic_enabled = False  # no symbolic edges: only the switch is written
    save(plain, tmp_path / "p")
    assert read_config(tmp_path / "p")["extra"]["kanext.symbolic"] == {"symbolic_enabled": False}
    assert load(tmp_path / "p").symbolic_enabled is False
    save(_kan(torch.float64), tmp_path / "d")
    assert "kanext.symbolic" not in read_config(tmp_path / "d").get("extra", {})
    _patch_json(tmp_path / "m", lambda doc: doc["extra"]["kanext.symbolic"].update(symbolic_enabled=True))
    with pytest.raises(CheckpointError, match="expected symbolic_enabled false"):
        load(tmp_path / "m")


# ------------------------------------------------------- files, RNG, pickle


def test_writes_only_the_two_target_files(tmp_path):
    (tmp_path / "other.txt").write_text("x")
    sub = tmp_path / "sub"
    sub.mkdir()
    save(_kan(), sub / "ckpt")
    save(_kan(seed=1), sub / "ckpt")  # overwriting leaves nothing behind either
    load(sub / "ckpt")
    assert _listing(tmp_path) == ["other.txt", "sub", "sub/ckpt.json", "sub/ckpt.safetensors"]
    assert (tmp_path / "other.txt").read_text() == "x"


def test_refused_save_writes_nothing(tmp_path):
    def my_base(x):
        return x

    layer = kanext.KANLinear(2, 2, base_fun=my_base)
    with pytest.raises(CheckpointError, match=r"callable .*my_base.*expected one of \['silu', 'identity', 'zero'\]"):
        save(layer, tmp_path / "c")
    with pytest.raises(CheckpointError, match="not plain finite JSON"):
        save(_kan(), tmp_path / "c", metadata={"x": object()})
    with pytest.raises(CheckpointError, match="expected a kanext.KAN, KANLinear, LAN, LANLayer, MLP or SplineActivation, got .*Sub"):
        save(type("Sub", (kanext.KANLinear,), {})(2, 2), tmp_path / "c")
    with pytest.raises(CheckpointError, match="expected a kanext.KAN, KANLinear, LAN, LANLayer, MLP or SplineActivation, got torch.nn.modules.linear.Linear"):
        save(nn.Linear(2, 2), tmp_path / "c")
    assert _listing(tmp_path) == []


def test_plain_attributes_are_not_saved(tmp_path):
    # a user's own attribute (or torch.compile's flags) is not model state: ignored, as documented
    model = _kan()
    model.foo = 1
    model.act_fun[0].note = "mine"
    save(model, tmp_path / "c")
    loaded = load(tmp_path / "c")
    _assert_same_model(model, loaded)
    assert not hasattr(loaded, "foo") and not hasattr(loaded.act_fun[0], "note")


def test_uncovered_tensor_refused(tmp_path):
    model = _kan()
    model.act_fun[0].register_buffer("extra_buf", torch.zeros(2))
    with pytest.raises(CheckpointError, match=r"\['act_fun\.0\.extra_buf'\]|extra_buf"):
        save(model, tmp_path / "c")
    assert _listing(tmp_path) == []


def test_failed_write_leaves_no_temporary_files(tmp_path, monkeypatch):
    real_replace, calls = os.replace, []

    def flaky_replace(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError("disk full (simulated)")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", flaky_replace)
    with pytest.raises(OSError, match="simulated"):
        save(_kan(), tmp_path / "c")
    assert _listing(tmp_path) == ["c.safetensors"]  # the config (written last) is absent: load refuses
    with pytest.raises(CheckpointError, match="config file missing"):
        load(tmp_path / "c")


def test_missing_folder_is_not_created(tmp_path):
    with pytest.raises(FileNotFoundError):
        save(_kan(), tmp_path / "nope" / "c")
    assert _listing(tmp_path) == []


def test_global_rng_untouched(tmp_path):
    model = _kan()
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    save(model, tmp_path / "m")
    loaded = load(tmp_path / "m")
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(99)  # a different global state gives the same model
    _assert_same_model(loaded, load(tmp_path / "m"))


def test_files_are_json_and_safetensors_not_pickle(tmp_path):
    save(_kan(), tmp_path / "m")
    blob = (tmp_path / "m.safetensors").read_bytes()
    assert not blob.startswith(b"\x80") and not blob.startswith(b"PK")  # pickle protocol 2+ / torch.save zip
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    assert header["__metadata__"]["format"] == "kanext.checkpoint"
    text = (tmp_path / "m.json").read_bytes()
    assert text.startswith(b"{") and json.loads(text)["format"] == "kanext.checkpoint"


def test_load_never_unpickles(tmp_path, monkeypatch):
    save(_kan(), tmp_path / "m")

    def forbidden(*a, **k):
        raise AssertionError("pickle / torch.load used")

    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    load(tmp_path / "m")


def test_module_source_has_no_pickle_paths():
    tree = ast.parse(Path(checkpoint.__file__).read_text())
    banned_modules = {"pickle", "cPickle", "dill", "cloudpickle", "joblib", "marshal", "shelve"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert not {a.name.split(".")[0] for a in node.names} & banned_modules, ast.dump(node)
        if isinstance(node, ast.ImportFrom):
            assert (node.module or "").split(".")[0] not in banned_modules, ast.dump(node)
            assert not (node.module == "torch" and {a.name for a in node.names} & {"load", "save"}), ast.dump(node)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            assert (node.value.id, node.attr) not in {("torch", "load"), ("torch", "save"), ("np", "load"), ("numpy", "load")}, (
                f"line {node.lineno}: {node.value.id}.{node.attr}"
            )
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in {"eval", "exec", "__import__", "compile"}, f"line {node.lineno}: {node.func.id}"


# ----------------------------------------------------- damaged / mismatched


def _expect_error(stem: Path, file_suffix: str, pattern: str):
    with pytest.raises(CheckpointError) as info:
        load(stem)
    msg = str(info.value)
    assert f"{stem}{file_suffix}" in msg, f"message does not name the file: {msg}"
    assert re.search(pattern, msg), f"{pattern!r} not in: {msg}"


@pytest.fixture
def stem(tmp_path):
    s = tmp_path / "ckpt"
    save(_kan(torch.float32), s)
    return s


def test_missing_json(stem):
    Path(f"{stem}.json").unlink()
    _expect_error(stem, ".json", "config file missing")


def test_missing_safetensors(stem):
    Path(f"{stem}.safetensors").unlink()
    _expect_error(stem, ".safetensors", r"tensor file missing \(expected next to ckpt\.json\)")


@pytest.mark.parametrize(
    "text, pattern",
    [
        ('{"format": "kanext.checkpoint", ', "expected valid JSON, found a syntax error"),
        ("", "expected valid JSON"),
        ("[1, 2]", "top level: expected a JSON object, found 'list'"),
        ('{"format": "kanext.checkpoint", "format": "x"}', "expected unique keys, found 'format' twice"),
        ('{"format": "kanext.checkpoint", "format_version": NaN}', "expected plain JSON numbers, found NaN"),
    ],
    ids=["truncated", "empty", "not-object", "duplicate-key", "nan"],
)
def test_invalid_json(stem, text, pattern):
    Path(f"{stem}.json").write_text(text)
    _expect_error(stem, ".json", pattern)


def test_json_not_utf8(stem):
    Path(f"{stem}.json").write_bytes(b'{"format": "\xff"}')
    _expect_error(stem, ".json", "expected UTF-8 JSON")


@pytest.mark.parametrize(
    "mutate, pattern",
    [
        (lambda d: d.update(format="pykan"), r"'format': expected 'kanext.checkpoint', found 'pykan'"),
        (lambda d: d.pop("format"), r"'format': expected 'kanext.checkpoint', found '<missing>'"),
        (lambda d: d.update(format_version=2), r"'format_version': expected <= 1 \(written by a newer kanext\), found 2"),
        (lambda d: d.update(format_version="1"), r"'format_version': expected a positive int, found '1'"),
        (lambda d: d.update(format_version=0), r"'format_version': expected a positive int, found 0"),
        (lambda d: d.pop("tensors"), r"keys: expected all of .*missing \['tensors'\]"),
        (lambda d: d.update(surprise=1), r"keys: expected only .*unknown \['surprise'\]"),
        (lambda d: d.update({"class": "os.system"}), r"'class': expected one of \['KAN', 'KANLinear', 'LAN', 'LANLayer', 'MLP', 'SplineActivation'\], found 'os.system'"),
        (lambda d: d.update(safetensors_sha256="abc"), r"'safetensors_sha256': expected 64 lowercase hex digits"),
        (lambda d: d.update(extra=[]), r"'extra': expected a JSON object, found \[\]"),
        (lambda d: d["tensors"]["act_fun.0.coef"].update(dtype="float128"), r"dtype: expected one of .*found 'float128'"),
        (lambda d: d["tensors"]["act_fun.0.coef"].update(shape=[2, -1]), r"shape: expected a list of non-negative ints"),
        (lambda d: d["tensors"]["act_fun.0.coef"].update(requires_grad=1), r"requires_grad: expected true or false, found 1"),
        (lambda d: d["tensors"]["act_fun.0.coef"].pop("requires_grad"),
         r"'act_fun.0.coef': expected a requires_grad flag \(it is a parameter\)"),
        (lambda d: d["tensors"]["act_fun.0.grid"].update(requires_grad=False),
         r"'act_fun.0.grid': expected no requires_grad flag \(it is a buffer\)"),
        (lambda d: d["tensors"].pop("act_fun.0.mask"), r"expected an entry for tensor 'act_fun.0.mask' in 'tensors'"),
        (lambda d: d["tensors"].update({"ghost": {"dtype": "float32", "shape": [1]}}),
         r"'tensors' lists \['ghost'\], which the config does not imply"),
        (lambda d: d["config"]["layers"][0].update(grid=6),
         r"tensor 'act_fun.0.coef': the config implies shape \[3, 4, 9\], 'tensors' records \[3, 4, 8\]"),
        (lambda d: d["config"].update(width=[3, 5, 2]),
         r"'config' 'layers'\[0\]: expected in_features=3, out_features=5 \(from width\)"),
        (lambda d: d["config"].update(width=[3]), r"'config' 'width': expected a list of >= 2 positive ints"),
        (lambda d: d["config"]["layers"][1].update(base_fun="builtins.eval"),
         r"'layers'\[1\] 'base_fun': expected one of \['silu', 'identity', 'zero'\], found 'builtins.eval'"),
        (lambda d: d["config"]["layers"][1].update(k=6), r"'layers'\[1\] 'k': expected an int in \[0, 5\], found 6"),
        (lambda d: d["config"]["layers"][0].update(grid_range=[1, -1]),
         r"'layers'\[0\] 'grid_range': expected \[low, high\] with low < high, found \[1, -1\]"),
        (lambda d: d["config"]["layers"][0].update(foo=1), r"'layers'\[0\] keys: expected"),
        (lambda d: d["config"]["layers"][0].pop("grid_eps"), r"'layers'\[0\] keys: expected .*'grid_eps'"),
        (lambda d: d["config"]["layers"][0].update(grid_eps="0.1"), r"'layers'\[0\] 'grid_eps': expected a number, found '0.1'"),
        (lambda d: d["config"].update(grid_range="(-1, 1)"), r"'config' 'grid_range': expected \[low, high\]"),
        (lambda d: d.update(extra={"symbolic": {}}),
         r"'extra' holds state for extension 'symbolic', which is not registered"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 30 else None,
)
def test_bad_config(stem, mutate, pattern):
    _patch_json(stem, mutate)
    _expect_error(stem, ".json", pattern)


def _sym_kan_files(tmp_path):
    model = _kan(torch.float32)
    model(torch.rand(32, 3, generator=gen(2)))
    model.fix_symbolic(0, 1, 2, "sin", verbose=False)
    model.fix_symbolic(1, 0, 1, "x^2", verbose=False)
    save(model, tmp_path / "m")
    return model, tmp_path / "m"


# Edits that leave a loadable model and so pass every structural check: the
# tensor file's record of the description refuses them (before it, the first
# loaded with its symbolic edges computing 0, the others computed another function).
@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d["extra"].pop("kanext.symbolic"),
        lambda d: d["extra"]["kanext.symbolic"]["funs_name"][0][2].__setitem__(1, "cos"),
        lambda d: d["config"]["layers"][1].update(base_fun="identity"),
        lambda d: d["config"]["layers"][0].update(grid_eps=0.5),
        lambda d: d["tensors"]["act_fun.0.coef"].update(requires_grad=False),
    ],
    ids=["symbolic-names-dropped", "symbolic-name-changed", "base-changed", "grid-eps-changed", "requires-grad"],
)
def test_edited_description_is_refused(tmp_path, mutate):
    _, stem = _sym_kan_files(tmp_path)
    _patch_json(stem, mutate)
    _expect_error(stem, ".json", r"do not match what was saved with m\.safetensors: expected sha256 [0-9a-f]{64} "
                  r"\(recorded in its header\), found [0-9a-f]{64}; the JSON file was edited")


def test_metadata_and_layout_edits_are_allowed(tmp_path):
    model, stem = _sym_kan_files(tmp_path)
    _patch_json(stem, lambda d: d.update(metadata={"note": "mine", "epoch": 3}))
    json_path = Path(f"{stem}.json")
    doc = json.loads(json_path.read_text())
    json_path.write_text(json.dumps(dict(reversed(doc.items())), indent=4, sort_keys=True))  # re-indented, reordered
    loaded = load(stem)
    _assert_same_model(model, loaded)
    assert read_config(stem)["metadata"] == {"note": "mine", "epoch": 3}
    x = torch.rand(5, 3, generator=gen(1))
    assert_bitwise_equal(loaded(x), model(x), msg="output")


def test_description_recorded_in_tensor_header(tmp_path):
    _, stem = _sym_kan_files(tmp_path)
    blob = Path(f"{stem}.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", blob[:8])
    recorded = json.loads(blob[8 : 8 + n])["__metadata__"]["kanext_description_sha256"]
    doc = read_config(stem)
    part = {key: doc[key] for key in ("class", "config", "tensors", "extra")}
    text = json.dumps(part, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert recorded == hashlib.sha256(text.encode()).hexdigest()


def test_truncated_safetensors(stem):
    p = Path(f"{stem}.safetensors")
    size = p.stat().st_size
    p.write_bytes(p.read_bytes()[: size - 10])
    _expect_error(stem, ".safetensors", rf"truncated: expected {size} bytes \(as recorded in ckpt\.json\), found {size - 10}")


def test_appended_safetensors(stem):
    p = Path(f"{stem}.safetensors")
    p.write_bytes(p.read_bytes() + b"\0")
    _expect_error(stem, ".safetensors", "too long: expected")


def test_corrupted_safetensors(stem):
    p = Path(f"{stem}.safetensors")
    blob = bytearray(p.read_bytes())
    blob[-3] ^= 0x10  # flip one bit of tensor data; the size is unchanged
    p.write_bytes(bytes(blob))
    pattern = r"sha256 mismatch: expected [0-9a-f]{64} \(as recorded in ckpt\.json\), found [0-9a-f]{64}"
    _expect_error(stem, ".safetensors", pattern)


def test_safetensors_from_another_save(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    save(_kan(seed=1), a)
    save(_kan(seed=2), b)
    Path(f"{a}.safetensors").write_bytes(Path(f"{b}.safetensors").read_bytes())
    _expect_error(a, ".safetensors", "sha256 mismatch")


def test_unreadable_safetensors_with_matching_hash(stem):
    # A config that vouches for a damaged tensor file: the parser's error is reported as such.
    p = Path(f"{stem}.safetensors")
    blob = p.read_bytes()[:-12]
    p.write_bytes(blob)
    _patch_json(stem, lambda d: d.update(safetensors_sha256=hashlib.sha256(blob).hexdigest(), safetensors_size=len(blob)))
    _expect_error(stem, ".safetensors", "expected a valid safetensors file, found an unreadable one")


def test_garbage_safetensors_with_matching_hash(stem):
    blob = b"\xff" * 64
    Path(f"{stem}.safetensors").write_bytes(blob)
    _patch_json(stem, lambda d: d.update(safetensors_sha256=hashlib.sha256(blob).hexdigest(), safetensors_size=len(blob)))
    _expect_error(stem, ".safetensors", "expected a valid safetensors file")


@pytest.mark.parametrize(
    "mutate, pattern",
    [
        (lambda t: t.pop("act_fun.1.mask"), r"missing tensor\(s\) \['act_fun.1.mask'\]"),
        (lambda t: t.pop("node_bias.0"), r"missing tensor\(s\) \['node_bias.0'\]"),
        (lambda t: t.update(intruder=torch.zeros(1)), r"unexpected tensor\(s\) \['intruder'\]"),
        (lambda t: t.update({"act_fun.0.grid": t["act_fun.0.grid"][:, :-1].contiguous()}),
         r"tensor 'act_fun.0.grid': expected shape \[3, 12\], found \[3, 11\]"),
        (lambda t: t.update({"act_fun.0.coef": t["act_fun.0.coef"].double()}),
         r"tensor 'act_fun.0.coef': expected dtype float32, found float64"),
        (lambda t: t.update({"act_fun.0.mask": t["act_fun.0.mask"].bool()}),
         r"tensor 'act_fun.0.mask': expected dtype float32, found bool"),
    ],
    ids=["missing-buffer", "missing-affine", "extra", "shape", "dtype", "dtype-bool"],
)
def test_mismatched_tensors(stem, mutate, pattern):
    _rewrite_tensors(stem, mutate)
    _expect_error(stem, ".safetensors", pattern)


def test_every_error_is_a_value_error(stem):
    assert issubclass(CheckpointError, ValueError)
    Path(f"{stem}.json").write_text("{")
    with pytest.raises(ValueError):
        load(stem)


# ----------------------------------------------------------- extension hook


def test_extension_hook_round_trips_state(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint, "_EXTENSIONS", {})

    def save_sym(model):
        if not hasattr(model.act_fun[0], "sym_names"):
            return None
        return {"names": [layer.sym_names for layer in model.act_fun]}

    def load_sym(model, data):
        for layer, names in zip(model.act_fun, data["names"]):
            layer.sym_names = names
            layer.register_buffer(
                "sym_mask",
                torch.empty(layer.in_features, layer.out_features, dtype=layer.coef.dtype, device=layer.coef.device),
            )

    model = _kan(torch.float32)
    for l, layer in enumerate(model.act_fun):
        layer.sym_names = [["x", "sin"][l]] * layer.in_features
        layer.register_buffer("sym_mask", (torch.rand(layer.in_features, layer.out_features, generator=gen(l)) > 0.5).float())

    with pytest.raises(CheckpointError, match="not covered by the checkpoint format"):
        save(model, tmp_path / "m")  # without the extension the state would be lost
    assert _listing(tmp_path) == []

    checkpoint.register_extension("symbolic", save_sym, load_sym)
    save(model, tmp_path / "m")
    assert read_config(tmp_path / "m")["extra"] == {"symbolic": {"names": [["x"] * 3, ["sin"] * 4]}}
    loaded = load(tmp_path / "m")
    _assert_same_model(model, loaded)
    assert [layer.sym_names for layer in loaded.act_fun] == [["x"] * 3, ["sin"] * 4]
    assert_bitwise_equal(loaded.act_fun[1].sym_mask, model.act_fun[1].sym_mask, msg="sym_mask")

    # A model without that state writes no extra entry and loads without the hook.
    plain = _kan()
    save(plain, tmp_path / "p")
    assert read_config(tmp_path / "p")["extra"] == {}
    _assert_same_model(plain, load(tmp_path / "p"))

    # A hook that fails while restoring is reported as a checkpoint problem.
    checkpoint.register_extension("symbolic", save_sym, lambda m, d: d["missing"])
    _expect_error(tmp_path / "m", ".json", r"extension 'symbolic' could not restore its state \(KeyError")


def test_register_extension_validates():
    with pytest.raises(ValueError):
        checkpoint.register_extension("", lambda m: None, lambda m, d: None)
    with pytest.raises(TypeError):
        checkpoint.register_extension("x", None, lambda m, d: None)


# ------------------------------------------------------- plain state_dict


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_state_dict_load_state_dict_still_work(tmp_path, dtype):
    model = _kan(dtype)
    fresh = kanext.KAN([3, 4, 2], grid=[5, 3], k=[3, 2], seed=5, dtype=dtype)
    fresh.load_state_dict(model.state_dict())  # non-uniform grids and masks are buffers in the state_dict
    sd = model.state_dict()
    assert {"act_fun.0.grid", "act_fun.0.mask", "node_scale.0", "subnode_bias.1"} <= set(sd)
    for key, t in fresh.state_dict().items():
        assert_bitwise_equal(t, sd[key], msg=key)
    x = torch.rand(8, 3, generator=gen(4), dtype=dtype)
    assert_bitwise_equal(fresh(x), model(x), msg="outputs")

    # The tensor file is a plain state_dict that any KAN of that shape accepts, and a
    # loaded model's own state_dict feeds load_state_dict as usual.
    save(model, tmp_path / "m")
    other = kanext.KAN([3, 4, 2], grid=[5, 3], k=[3, 2], seed=6, dtype=dtype)
    other.load_state_dict(safetensors.torch.load_file(tmp_path / "m.safetensors"), strict=True)
    assert_bitwise_equal(other(x), model(x), msg="outputs via load_file")
    loaded = load(tmp_path / "m")
    loaded.load_state_dict(fresh.state_dict())
    with pytest.raises(RuntimeError, match="size mismatch"):
        loaded.load_state_dict(kanext.KAN([3, 4, 2], grid=[6, 3], k=[3, 2], dtype=dtype).state_dict())


def test_after_grid_update_and_without_grid_eps(tmp_path):
    model = kanext.KAN([2, 3, 1], grid=4, k=3, seed=0, dtype=torch.float64)
    x = torch.rand(200, 2, generator=gen(9), dtype=torch.float64).pow(3)  # skewed samples: non-uniform knots
    model.update_grid(x)
    assert not torch.allclose(model.act_fun[0].grid, kanext.KAN([2, 3, 1], grid=4, k=3, dtype=torch.float64).act_fun[0].grid)
    save(model, tmp_path / "m")
    _assert_same_model(model, load(tmp_path / "m"))

    layer = kanext.KANLinear(2, 2)
    del layer.grid_eps  # a layer built before grid_eps existed gets KANLinear's default
    save(layer, tmp_path / "l")
    assert load(tmp_path / "l").grid_eps == 0.02


# ------------------------------------------------------------ compiled models


@pytest.mark.parametrize("how", ["torch.compile", "module.compile", "save the wrapper"])
@pytest.mark.parametrize("kind", ["KAN", "LAN", "KANLinear"])
def test_save_after_torch_compile(tmp_path, how, kind):
    torch._dynamo.reset()
    model = {"KAN": lambda: _kan(torch.float64), "KANLinear": lambda: kanext.KANLinear(3, 2, dtype=torch.float64),
             "LAN": lambda: kanext.LAN([3, 4, 2], seed=0, dtype=torch.float64)}[kind]()
    x = torch.rand(5, 3, generator=gen(3), dtype=torch.float64)
    if how == "module.compile":
        model.compile(backend="aot_eager")
        y = model(x)
        target = model
    else:
        compiled = torch.compile(model, backend="aot_eager")
        y = compiled(x)
        target = compiled if how == "save the wrapper" else model
    if how == "save the wrapper":
        save(target, tmp_path / "m")
    else:
        target.save(tmp_path / "m")
    loaded = load(tmp_path / "m")
    assert type(loaded) is type(model)  # the module itself, not the compiled wrapper
    _assert_same_model(model, loaded)
    torch.testing.assert_close(loaded(x), y, rtol=0, atol=0)


def test_load_leaves_the_global_rng_alone(tmp_path):
    save(kanext.LAN([2, 3, 1], seed=0), tmp_path / "lan")
    save(_kan(), tmp_path / "kan")
    state = torch.get_rng_state()
    load(tmp_path / "lan")
    load(tmp_path / "kan")
    assert torch.equal(torch.get_rng_state(), state)


def test_metadata_that_is_not_unicode_is_refused_before_writing(tmp_path):
    model = _kan(torch.float32)
    save(model, tmp_path / "m")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    other = _kan(torch.float32, seed=5)
    with pytest.raises(CheckpointError, match="holds a str that is not valid Unicode"):
        save(other, tmp_path / "m", metadata={"s": "\ud800"})
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # the earlier checkpoint is intact
    _assert_same_model(model, load(tmp_path / "m"))
