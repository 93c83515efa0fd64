"""The house rules of the layout (README, "Layout"), checked on the code itself: no import
circles (imports inside functions count), the MSF runtime (the import closure of
job/msf_main.py) holds no tooling, and tooling is what lives in the tooling packages."""
from __future__ import annotations

import os

from job.tools.package import PROJECT_ROOT, imported_modules, module_file, runtime_modules

TOOLING = ("job.cli", "job.local", "job.tools", "job.project", "job.__main__")
RUNTIME = ("job.config", "job.pipeline", "job.functions", "job.rules", "job.msf_main", "connectors")


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


def test_the_msf_runtime_holds_no_tooling_and_only_runtime_packages():
    runtime = [_dotted(p) for p in runtime_modules()]
    assert "job.msf_main" in runtime and "job.pipeline.assembly" in runtime
    assert [m for m in runtime if _within(m, TOOLING)] == []
    assert [m for m in runtime if m not in ("job", "connectors") and not _within(m, RUNTIME)] == []


def test_every_module_is_in_a_runtime_or_a_tooling_package():
    loose = [m for m in _modules() if m not in ("job", "connectors") and not _within(m, RUNTIME + TOOLING)]
    assert loose == []
