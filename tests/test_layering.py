"""The architecture as a test: one package, four layers, imports in one direction, no circles.

DESIGN.md: ``stream`` <- ``nodes`` <- ``experiments`` <- ``launch``.  Every import counts,
those inside functions too, and so do the ``module:Class`` strings of the node registry (the
launcher imports them at run time).
"""
from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = "rram_lsm"
LAYERS = ("stream", "nodes", "experiments", "launch")  # lower index: lower layer
_CLASS_REF = re.compile(r"^(rram_lsm(?:\.\w+)+):[A-Za-z_]\w*$")


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([PKG, *parts])


def project_modules() -> dict[str, Path]:
    """Every module of the installed package: the root files and the four layer folders."""
    mods = {_module_name(p): p for p in (ROOT / "__init__.py", ROOT / "__main__.py")}
    for layer in LAYERS:
        for p in sorted((ROOT / layer).rglob("*.py")):
            mods[_module_name(p)] = p
    return mods


def _resolve(module: str, path: Path, level: int, name: str | None) -> str:
    """The absolute name a relative ``from ... import`` refers to."""
    if level == 0:
        return name or ""
    base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def imports_of(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Project modules that ``module`` imports anywhere in its body, plus registry strings."""
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()

    def add(name: str) -> None:
        # The longest known prefix: `from pkg import sub` names the sub-module when it is one.
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name:
            found.add(name)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in (PKG, *LAYERS):
                    found.add(alias.name)  # kept verbatim, so a bare `stream` fails below
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, path, node.level, node.module)
            if node.level == 0 and target.split(".")[0] in LAYERS:
                found.add(target)
                continue
            if not target.startswith(PKG):
                continue
            for alias in node.names:
                if f"{target}.{alias.name}" in known:
                    add(f"{target}.{alias.name}")
                else:
                    add(target)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            m = _CLASS_REF.match(node.value)
            if m:
                add(m.group(1))
    found.discard(module)
    return found


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) < 2:
        return -1  # the root package: below everything (it holds only the version)
    if parts[1] == "__main__":
        return len(LAYERS)
    return LAYERS.index(parts[1]) if parts[1] in LAYERS else None


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    known = project_modules()
    return {m: imports_of(m, p, known) for m, p in known.items()}


def test_every_import_is_of_the_one_package(graph):
    bare = sorted(f"{m} imports {i}" for m, deps in graph.items() for i in deps
                  if not i.startswith(PKG + ".") and i != PKG)
    assert not bare, "absolute imports of generic top-level names:\n" + "\n".join(bare)


def test_imports_go_down_the_layers_only(graph):
    upward = sorted(f"{m} -> {i}" for m, deps in graph.items() for i in deps
                    if i.startswith(PKG) and _layer(i) is not None and _layer(m) is not None
                    and _layer(i) > _layer(m))
    assert not upward, "imports against stream <- nodes <- experiments <- launch:\n" + "\n".join(upward)


def test_no_import_circles(graph):
    """Tarjan's strongly connected components: any with two or more modules is a circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []
    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    assert not circles, "import circles: " + "; ".join(" <-> ".join(c) for c in circles)


def test_the_checker_sees_imports_inside_functions(tmp_path):
    """The rule would be toothless if function-level and relative imports were missed."""
    pkg = tmp_path / "nodes"
    pkg.mkdir()
    f = pkg / "x.py"
    f.write_text("def f():\n    from ..launch import cli\n    from . import y\n")
    (pkg / "y.py").write_text("")
    known = {"rram_lsm.nodes.x": f, "rram_lsm.nodes.y": pkg / "y.py", "rram_lsm.launch.cli": f}
    assert imports_of("rram_lsm.nodes.x", f, known) == {"rram_lsm.launch.cli", "rram_lsm.nodes.y"}


def test_pyproject_lists_every_sub_package():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {PKG} | {_module_name(p) for layer in LAYERS for p in (ROOT / layer).rglob("__init__.py")}
    assert listed == folders


BLOCK_TORCH = """
import importlib.abc, sys
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'tonic'):
            raise ImportError(name + ' is not importable in this check')
sys.meta_path.insert(0, _Block())
"""


def _hot_path_modules() -> list[str]:
    mods = [m for m in project_modules() if m.startswith(f"{PKG}.stream")]
    mods += [m for m in project_modules() if m.startswith(f"{PKG}.nodes.lsm")
             and not m.endswith(".reference")]  # the torch reference of tests and benchmarks
    mods += [f"{PKG}.nodes.projection.node", f"{PKG}.nodes.projection.heads",
             f"{PKG}.nodes.classifier.node", f"{PKG}.nodes.classifier.bank",
             f"{PKG}.nodes.classifier.crossmodal"]
    return mods


def test_stream_and_hot_path_nodes_import_without_torch():
    mods = _hot_path_modules()
    code = BLOCK_TORCH + "".join(f"import {m}\n" for m in mods)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_nodes_start_with_another_launch_package_first_on_the_path(tmp_path):
    """ROS 2 puts its own ``launch`` (and others name packages ``stream``, ``nodes``) on
    PYTHONPATH; ours live under ``rram_lsm`` and a graph still runs."""
    for name in LAYERS:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"raise ImportError('the wrong {name}')\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-m", PKG, "run", str(ROOT / "launch/graphs/smoke.toml"), "samples:=2",
         "--no-dashboard", "--run-dir", str(tmp_path / "run")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "the wrong" not in proc.stderr
