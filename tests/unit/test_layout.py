"""The house rules of the layout (README, "Layout"), checked on the code itself: no import
circles (imports inside functions count); the runtime is a folder rule (job/ without
job/cli/, plus connectors/), it imports nothing from the tooling, and the MSF zip carries
exactly it."""
from __future__ import annotations

import ast
import os

from job.cli.tools.package import PROJECT_ROOT, TOOLING_FOLDER, imported_modules, module_file, runtime_modules

TOOLING = TOOLING_FOLDER.replace("/", ".")


def _modules() -> list:
    found = []
    for top in ("job", "connectors"):
        for folder, dirs, files in os.walk(os.path.join(PROJECT_ROOT, top)):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            for name in files:
                if name.endswith(".py"):
                    dotted = os.path.relpath(os.path.join(folder, name), PROJECT_ROOT)[:-3].replace(os.sep, ".")
                    found.append(dotted[:-len(".__init__")] if dotted.endswith(".__init__") else dotted)
    return sorted(found)


def _within(module: str, packages: tuple) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def _dotted(path: str) -> str:
    dotted = path[:-3].replace("/", ".")
    return dotted[:-len(".__init__")] if dotted.endswith(".__init__") else dotted


def test_no_import_circles():
    modules = _modules()
    graph = {m: {i for i in imported_modules(PROJECT_ROOT, module_file(PROJECT_ROOT, m)) if i != m} for m in modules}
    # A package imports nothing it contains here (every __init__ is plain), so an edge to a
    # package's __init__ is a real edge.
    state: dict = {}
    path: list = []

    def visit(module: str) -> None:
        state[module] = "open"
        path.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                raise AssertionError("import circle: " + " -> ".join(path[path.index(target):] + [target]))
            if target not in state:
                visit(target)
        path.pop()
        state[module] = "done"

    for module in modules:
        if module not in state:
            visit(module)


def test_the_runtime_is_the_code_packages_without_the_tooling_folder():
    every = {module_file(PROJECT_ROOT, m) for m in _modules()}
    tooling = {f for f in every if os.path.relpath(f, PROJECT_ROOT).replace(os.sep, "/").startswith(TOOLING_FOLDER + "/")}
    runtime = {os.path.join(PROJECT_ROOT, p) for p in runtime_modules()}
    assert runtime == every - tooling
    assert "job/msf_main.py" in runtime_modules() and "job/cli/main.py" not in runtime_modules()


def test_the_runtime_imports_nothing_from_the_tooling():
    # So the zip (runtime_modules) can never lack a module the job imports.
    runtime = {_dotted(p) for p in runtime_modules()}
    reaches = {m: {i for i in imported_modules(PROJECT_ROOT, module_file(PROJECT_ROOT, m)) if not i == m}
               for m in runtime}
    outside = {m: sorted(i for i in imported if i not in runtime) for m, imported in reaches.items()}
    assert {m: i for m, i in outside.items() if i} == {}
    assert not [m for m in runtime if _within(m, (TOOLING,))]


def test_no_module_imports_another_modules_private_names():
    found = []
    for module in _modules():
        path = module_file(PROJECT_ROOT, module)
        with open(path, encoding="utf-8") as handle:
            tree = ast.parse(handle.read(), path)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ("job", "connectors"):
                found += [f"{module}: from {node.module} import {a.name}" for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")]
    assert found == []


# The settings rule (job/config/settings.py): each key's name is spelled once, in
# job/config/properties.py; the rest of the runtime reads values through typed settings,
# which read them through the keys' constants. Prose that names a key for a person (an
# error message, a docstring) is not a lookup and may name it.
SETTINGS_MODULES = ("job.config",)
TYPED_SETTINGS_ONLY = ("job.functions", "job.pipeline", "job.rules", "connectors")


def _runtime_trees():
    for relative in runtime_modules():
        path = os.path.join(PROJECT_ROOT, relative)
        with open(path, encoding="utf-8") as handle:
            yield relative, _dotted(relative), ast.parse(handle.read(), path)


def _docstrings(tree) -> set:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def test_no_runtime_module_but_the_properties_spells_a_key():
    from job.config.properties import KEYS

    names = {key.name for key in KEYS}
    found = []
    for relative, _, tree in _runtime_trees():
        if relative == "job/config/properties.py":
            continue
        docs = _docstrings(tree)
        found += [f"{relative}:{node.lineno}: {node.value!r}" for node in ast.walk(tree)
                  if isinstance(node, ast.Constant) and node.value in names and id(node) not in docs]
    assert found == [], "read the key through its constant in job/config/properties.py"


def test_operators_and_assembly_take_typed_settings():
    # Only job/config reads the properties: the functions, the pipeline assembly, the rules
    # and the connectors import no key constant (the assembly's entry points take the
    # Properties and build one JobSettings from them).
    from job.config import properties

    found = []
    for relative, module, tree in _runtime_trees():
        if not _within(module, TYPED_SETTINGS_ONLY):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "job.config.properties":
                found += [f"{relative}: {a.name}" for a in node.names
                          if isinstance(getattr(properties, a.name, None), properties.Key)]
    assert found == []


# The runtime's layers, lowest first (docs/development.md, "Layout"): a module imports
# from its own package and from lower layers only, never from a package beside it or
# above it. So the row contract (job/rows) sits below the functions that make and read
# its rows, the row images, tags and limits (connectors/rows) below both the formats that
# make them and the MySQL sink that stores them, and nothing in connectors/ imports job/.
LAYERS = (
    ("connectors.rows", "connectors.dead_letters", "connectors.aws_clients"),
    ("connectors.formats",),
    ("connectors.mysql", "connectors.kinesis"),
    ("job.rules",),
    ("job.config", "job.rows"),
    ("job.functions",),
    ("job.pipeline",),
    ("job.msf_main",),
)


def _layer(module: str):
    for level, packages in enumerate(LAYERS):
        for package in packages:
            if _within(module, (package,)):
                return level, package
    return None


def test_every_runtime_import_points_down_the_layers():
    runtime = [m for m in (_dotted(p) for p in runtime_modules()) if m not in ("job", "connectors")]
    assert [m for m in runtime if _layer(m) is None] == [], "place each runtime package in LAYERS"
    found = []
    for module in runtime:
        level, package = _layer(module)
        for target in imported_modules(PROJECT_ROOT, module_file(PROJECT_ROOT, module)):
            if target in ("job", "connectors") or _within(target, (package,)):
                continue
            target_level, target_package = _layer(target)
            if target_level >= level:
                found.append(f"{module} -> {target} ({target_package} is not below {package})")
    assert found == []


def test_the_layer_rules_the_issue_named():
    # Spelled out, so that a change to LAYERS cannot quietly drop them.
    assert _layer("connectors.formats.qldb")[0] < _layer("connectors.mysql.writer")[0]
    assert _layer("connectors.rows.row_images")[0] < _layer("connectors.formats.qldb")[0]
    assert _layer("job.rows.item_rows")[0] < _layer("job.functions.writer")[0] < _layer("job.pipeline.assembly")[0]
    assert max(level for level, packages in enumerate(LAYERS) if any(p.startswith("connectors") for p in packages)) \
        < min(level for level, packages in enumerate(LAYERS) if any(p.startswith("job") for p in packages))
