"""procframe is layered: each layer imports only the layers below it.

Every ``import`` statement counts, at module level or inside a function;
only those under ``if TYPE_CHECKING:`` (annotations) are left out.  Packages
of one layer do not import each other.  An exception is named in
``EXCEPTIONS`` with its reason.  Built-in plugins are loaded by module name
(:data:`procframe.plugins.BUILTIN_PLUGINS`), which is not an import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import procframe

ROOT = Path(procframe.__file__).parent

LAYERS: list[tuple[str, ...]] = [
    # the process model, the backend contract, hooks, plugins, registry, OS helpers
    ("procframe._core",),
    # the POSIX primitives (one plugin) beside the launchers of OS processes
    ("procframe.posix", "procframe.backends"),
    # the public API bound to one backend
    ("procframe.context",),
    # built only from a context's factories
    ("procframe.pool",),
    ("procframe.managers", "procframe.futures"),
    # the threads backend: in-process objects, its Pool the pool package's thread pool
    ("procframe.threads",),
    # the public face: the package, public import paths, command line, kit, benchmark
    ("procframe",),
]
"""Lowest first.  A module belongs to the longest package that contains it."""

EXCEPTIONS: dict[tuple[str, str], str] = {}
"""(importing package, imported package) -> why it is allowed."""


def package_of(module: str) -> str:
    """The longest package of :data:`LAYERS` that contains ``module``."""
    candidates = [p for layer in LAYERS for p in layer if module == p or module.startswith(p + ".")]
    return max(candidates, key=len)


def layer_of(package: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if package in layer)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


DYNAMIC_IMPORTS: dict[str, str] = {
    "procframe._core.entrypoints": "loads the plugins that entry points and BUILTIN_PLUGINS name",
    "procframe.backends.forkserver_server": "imports the modules set_forkserver_preload() names",
    "procframe": "its public submodules (a fixed list, all of the public face) as attributes",
}
"""Modules that may import by a computed name (``importlib.import_module``, ``__import__``)."""


def _type_checking_blocks(tree: ast.AST) -> set[int]:
    """The ids of the nodes inside ``if TYPE_CHECKING:`` (annotations only) blocks."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in (
            "TYPE_CHECKING",
            "typing.TYPE_CHECKING",
        ):
            for inner in node.body:
                skipped.update(id(n) for n in ast.walk(inner))
    return skipped


def dynamic_imports(source: str) -> list[int]:
    """The lines of ``source`` that import by a computed name."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            name = ast.unparse(node.func)
            if name in ("importlib.import_module", "import_module", "__import__"):
                lines.append(node.lineno)
    return lines


def imported_modules(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, module) for every procframe module ``source`` imports, TYPE_CHECKING aside."""
    tree = ast.parse(source)
    skipped = _type_checking_blocks(tree)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = module.split(".") if is_package else module.split(".")[:-1]
                base = ".".join(here[: len(here) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                is_module = (ROOT.parent / Path(*candidate.split("."))).with_suffix(".py").exists()
                is_module = is_module or (ROOT.parent / Path(*candidate.split("."))).is_dir()
                found.append((node.lineno, candidate if is_module else base))
    return [(line, name) for line, name in found if name.split(".")[0] == "procframe"]


def violations(module: str, source: str, is_package: bool = False) -> list[str]:
    """What ``module`` imports against the layering."""
    mine = package_of(module)
    problems = []
    for line, target in imported_modules(source, module, is_package):
        theirs = package_of(target)
        if theirs == mine or (mine, theirs) in EXCEPTIONS:
            continue
        if mine == "procframe":  # the public face may use anything
            continue
        if layer_of(theirs) >= layer_of(mine):
            problems.append(f"{module}:{line} imports {target} ({theirs} is not below {mine})")
    return problems


def test_every_module_imports_only_layers_below_it() -> None:
    problems: list[str] = []
    for path in sorted(ROOT.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        problems += violations(module_name(path), source, path.name == "__init__.py")
    assert problems == []


def test_only_the_plugin_loaders_import_by_a_computed_name() -> None:
    """A computed import would slip past the layering check: only the named modules make one."""
    found = {
        module_name(path)
        for path in ROOT.rglob("*.py")
        if "testing" not in path.parts and dynamic_imports(path.read_text(encoding="utf-8"))
    }
    assert found == set(DYNAMIC_IMPORTS)


def test_a_computed_import_is_seen() -> None:
    assert dynamic_imports("import importlib\nimportlib.import_module(name)\n") == [2]
    assert dynamic_imports("__import__('procframe.context')\n") == [1]


def test_an_upward_import_is_caught_even_inside_a_function() -> None:
    source = "def f():\n    from procframe.context import get_context\n"
    assert violations("procframe._core.registry", source) == [
        "procframe._core.registry:2 imports procframe.context "
        "(procframe.context is not below procframe._core)"
    ]


def test_sibling_packages_of_one_layer_do_not_import_each_other() -> None:
    assert violations("procframe.posix.queues", "import procframe.backends.fork\n")
    assert violations("procframe.futures", "from procframe.managers import SyncManager\n")


def test_annotations_under_type_checking_are_allowed() -> None:
    source = "TYPE_CHECKING = False\nif TYPE_CHECKING:\n    from procframe.context import Context\n"
    assert violations("procframe.posix.queues", source) == []


def test_only_a_bare_type_checking_test_exempts_an_import() -> None:
    for test in ("not TYPE_CHECKING", "TYPE_CHECKING or True"):
        source = f"if {test}:\n    from procframe.context import Context\n"
        assert violations("procframe.posix.queues", source), test


def test_from_procframe_import_a_module_counts_as_that_module() -> None:
    assert violations("procframe.posix.heap", "from procframe._core import osutil\n") == []
    assert violations("procframe.posix.heap", "from procframe import Queue\n")


def test_every_layer_names_packages_that_exist() -> None:
    for layer in LAYERS:
        for package in layer:
            target = ROOT.parent / Path(*package.split("."))
            assert target.is_dir() or target.with_suffix(".py").exists(), package
