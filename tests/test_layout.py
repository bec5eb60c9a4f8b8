"""The package's shape: kanext's modules import each other only at the top
and without cycles, files stay readable, and KAN and LAN share one
implementation of what they have in common."""
from __future__ import annotations

import ast
from pathlib import Path

import kanext
from kanext import spline_module, symbolic

PKG = Path(kanext.__file__).parent
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        rel = p.relative_to(PKG).with_suffix("")
        parts = ["kanext", *rel.parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _resolve(name: str, mod: str, is_pkg: bool, node: ast.ImportFrom | ast.Import) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.startswith("kanext")]
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    if node.level:
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if not target.startswith("kanext"):
        return []
    # "from . import x" imports the submodule x when there is one
    return [f"{target}.{a.name}" for a in node.names] + [target]


def _graph():
    mods = _modules()
    edges, local = {m: set() for m in mods}, []
    for mod, path in mods.items():
        tree = ast.parse(path.read_text())
        is_pkg = path.name == "__init__.py"
        top = set(id(n) for n in tree.body)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                targets = [t for t in _resolve("", mod, is_pkg, node) if t in mods and t != mod]
                if targets and id(node) not in top:
                    local.append(f"{mod}:{node.lineno}")
                edges[mod].update(targets)
    return edges, local


def test_no_function_local_imports_of_kanext_modules():
    _, local = _graph()
    assert local == [], f"kanext modules imported inside functions (import them at the top): {local}"


def test_the_module_graph_has_no_cycle():
    edges, _ = _graph()
    # a package's __init__ re-exports its submodules: an edge into the
    # package stands for the submodules it imports, so test the graph of files
    state, stack, cycles = {}, [], []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for n in sorted(edges[m]):
            if n.startswith(m + "."):  # a package importing its own submodules
                continue
            if state.get(n) == "open":
                cycles.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = "done"

    for m in sorted(edges):
        if m not in state:
            visit(m)
    assert cycles == [], f"import cycles: {cycles}"


def test_files_stay_readable():
    long = []
    for path in _modules().values():
        n = len(path.read_text().splitlines())
        if n > MAX_LINES and "Long file:" not in path.read_text()[:3000]:
            long.append(f"{path.relative_to(PKG)} ({n} lines)")
    assert long == [], f"files over {MAX_LINES} lines without a 'Long file:' reason in their docstring: {long}"


def test_kan_and_lan_share_grid_and_refine():
    # one implementation each, inherited, not copied
    for cls in (kanext.KAN, kanext.LAN):
        for name in ("update_grid", "refine", "spline_inputs"):
            assert getattr(cls, name) is getattr(spline_module.SplineNetwork, name), (cls, name)
    for cls in (kanext.KANLinear, kanext.SplineActivation):
        for name in ("update_grid", "refit_from", "refine"):
            assert getattr(cls, name) is getattr(spline_module.SplineModule, name), (cls, name)
    assert issubclass(symbolic.SymbolicLayer, symbolic.SymbolicBranch)
    assert issubclass(symbolic.ChannelSymbolic, symbolic.SymbolicBranch)
    assert symbolic.SymbolicLayer.groups is symbolic.ChannelSymbolic.groups


def test_the_test_oracle_is_not_library_code():
    edges, _ = _graph()
    users = sorted(m for m, targets in edges.items() if "kanext.reference" in targets and m != "kanext")
    assert users == [], f"library modules that use the test oracle kanext.reference: {users}"
