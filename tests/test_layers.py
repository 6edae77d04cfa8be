"""The package's imports follow the layer table of docs/architecture.md.

Every module of ``robnp/`` and ``cli/`` is read with :mod:`ast` (nothing is imported),
its imports are resolved to the repository's own modules, and the test fails on any
import circle between modules and on any import of a higher layer by a lower one.

What counts as an import: every ``import`` and ``from ... import`` statement, wherever
it stands. Imports inside functions count like the others: a deferred import only
postpones the dependency, and a circle through one breaks the first time the function
runs in a fresh interpreter. ``from package import name`` depends on the module
``package.name`` when there is one, otherwise on the package's ``__init__``. The
implicit import of a module's parent packages does not count (Python runs them for
every module), nor do names loaded through :mod:`importlib` (the lazy ``robnp``
namespace and the CLI's command table), which the table places above every layer they
name.
"""

from __future__ import annotations

import ast
import fnmatch
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARCHITECTURE = ROOT / "docs" / "architecture.md"
#: source directory -> the package it installs as
PACKAGES = {"robnp": "robnp", "cli": "robnp_cli"}


# -- the layer table ----------------------------------------------------------------

def layer_table(text: str) -> list[tuple[str, list[str]]]:
    """``[(layer, [path pattern, ...])]`` from the "Layers, bottom to top" table, bottom
    first: the first column names the layer, the second holds its patterns in
    backticks."""
    section = text.split("## Layers, bottom to top", 1)[1]
    rows = []
    for line in section.splitlines()[1:]:
        if line.startswith("## "):
            break
        if not line.startswith("|"):
            if rows:
                break
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells[0] in ("layer", "") or set(cells[0]) <= set("-: "):
            continue
        rows.append((cells[0], re.findall(r"`([^`]+)`", cells[1])))
    return rows


def source_files() -> list[str]:
    """Every Python file of the packages, as a path relative to the repository."""
    return sorted(path.relative_to(ROOT).as_posix()
                  for directory in PACKAGES for path in (ROOT / directory).rglob("*.py"))


def assign_layers(files, table) -> tuple[dict[str, int], list[str]]:
    """Each file's layer (the row index of its longest matching pattern), and the
    problems: files in no row, files whose longest match is in two rows."""
    rank, problems = {}, []
    for path in files:
        matches = [(len(pattern), index) for index, (_, patterns) in enumerate(table)
                   for pattern in patterns if fnmatch.fnmatchcase(path, pattern)]
        if not matches:
            problems.append(f"{path} is in no row of the layer table")
            continue
        longest = max(length for length, _ in matches)
        rows = sorted({index for length, index in matches if length == longest})
        if len(rows) > 1:
            problems.append(f"{path} matches rows {[table[i][0] for i in rows]} equally")
        rank[path] = rows[0]
    return rank, problems


# -- the import graph ---------------------------------------------------------------

def module_names(files) -> dict[str, str]:
    """Dotted module name -> file, with each source directory as its installed package."""
    names = {}
    for path in files:
        directory, *rest = Path(path).with_suffix("").parts
        parts = [PACKAGES[directory], *rest]
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def imported_modules(name: str, path: str, node, modules) -> set[str]:
    """The repository's modules one import statement of module ``name`` depends on."""
    found = set()
    if isinstance(node, ast.Import):
        for alias in node.names:
            target = alias.name
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target:
                found.add(target)
        return found
    if node.level:
        package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        source = f"{package}.{node.module}" if node.module else package
    else:
        source = node.module
    for alias in node.names:
        if f"{source}.{alias.name}" in modules:
            found.add(f"{source}.{alias.name}")
        elif source in modules:
            found.add(source)
    return found


def import_graph(modules: dict[str, str]) -> dict[str, set[str]]:
    """Module -> the repository's modules it imports (any statement, any depth)."""
    graph = {}
    for name, path in modules.items():
        tree = ast.parse((ROOT / path).read_text(encoding="utf-8"), filename=path)
        graph[name] = {target for node in ast.walk(tree)
                       if isinstance(node, (ast.Import, ast.ImportFrom))
                       for target in imported_modules(name, path, node, modules)} - {name}
    return graph


def circles(graph) -> list[list[str]]:
    """The import circles: strongly connected components of more than one module
    (Tarjan's algorithm, iterative), each as a sorted list."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


# -- the tests ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def table():
    return layer_table(ARCHITECTURE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def modules():
    return module_names(source_files())


def test_every_module_is_in_one_layer_and_every_pattern_names_a_module(table):
    files = source_files()
    _, problems = assign_layers(files, table)
    for layer, patterns in table:
        problems += [f"pattern {pattern!r} of layer {layer!r} matches no file"
                     for pattern in patterns
                     if not any(fnmatch.fnmatchcase(path, pattern) for path in files)]
    assert len(table) > 10 and not problems, "\n".join(problems)


def test_no_import_circles(modules):
    found = circles(import_graph(modules))
    assert not found, "import circles: " + "; ".join(" <-> ".join(c) for c in found)


def test_no_import_from_a_lower_layer_to_a_higher_one(table, modules):
    rank, _ = assign_layers(modules.values(), table)
    problems = []
    for name, targets in sorted(import_graph(modules).items()):
        here = rank.get(modules[name])
        for target in sorted(targets):
            there = rank.get(modules[target])
            if here is not None and there is not None and there > here:
                problems.append(f"{modules[name]} ({table[here][0]}) imports {target} "
                                f"({table[there][0]}), a higher layer")
    assert not problems, "\n".join(problems)


# -- the reader itself --------------------------------------------------------------

def test_the_graph_sees_relative_and_function_local_imports():
    modules = {"robnp.a": "robnp/a.py", "robnp.b": "robnp/b.py",
               "robnp.pkg": "robnp/pkg/__init__.py", "robnp.pkg.c": "robnp/pkg/c.py"}
    source = ("def f():\n    from .b import thing\n    from . import pkg\n"
              "    from .pkg import c, other\n")
    tree = ast.parse(source)
    found = set().union(*(imported_modules("robnp.a", "robnp/a.py", node, modules)
                          for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)))
    assert found == {"robnp.b", "robnp.pkg", "robnp.pkg.c"}
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_setup_cfg_installs_every_package_once():
    """Every package directory is listed in setup.cfg's ``packages``, none twice (a
    package left out is missing from a non-editable install)."""
    text = (ROOT / "setup.cfg").read_text(encoding="utf-8")
    block = re.search(r"^packages\s*=\s*\n((?:[ \t]+\S+\n)+)", text, re.MULTILINE).group(1)
    listed = block.split()
    present = {".".join((PACKAGES[path.parts[0]], *path.parts[1:-1])).rstrip(".")
               for path in (p.relative_to(ROOT) for d in PACKAGES
                            for p in (ROOT / d).rglob("__init__.py"))}
    assert sorted(present - set(listed)) == [] and len(listed) == len(set(listed))
