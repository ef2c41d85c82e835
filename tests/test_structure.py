"""The shape of the code: no import circles, and no command module imported by another module."""
from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers import ROOT

PACKAGES = ("brain_tumor", "training", "benchmarks")


def project_modules() -> dict[str, Path]:
    modules = {"app": ROOT / "app.py"}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            modules[name.removesuffix(".__init__")] = path
    return modules


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Project modules imported anywhere in the file, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        found |= {name for name in names if name in known}
    return found


def is_command(path: Path) -> bool:
    return any(isinstance(node, ast.If) and "__main__" in ast.unparse(node.test) for node in ast.parse(path.read_text()).body)


def test_no_import_circles():
    modules = project_modules()
    graph = {name: imports_of(path, set(modules)) - {name} for name, path in modules.items()}
    graph = {name: {d for d in deps if not name.startswith(d + ".") and d not in PACKAGES} for name, deps in graph.items()}
    state: dict[str, int] = {}

    def visit(name: str, trail: list[str]) -> None:
        state[name] = 1
        for dep in sorted(graph[name]):
            assert state.get(dep) != 1, "import circle: " + " -> ".join(trail + [name, dep])
            if dep not in state:
                visit(dep, trail + [name])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])


def test_no_command_module_is_imported_by_another_module():
    modules = project_modules()
    commands = {name for name, path in modules.items() if is_command(path)}
    assert {"training.fit", "training.evaluate", "training.evaluate_cam", "brain_tumor.predict", "app"} <= commands
    offenders = {name: sorted(imports_of(path, commands) - {name}) for name, path in modules.items()}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_readme_says_what_the_default_install_pulls_and_how_long_the_quick_suite_takes():
    import re

    readme = (ROOT / "README.md").read_text()
    assert "make app" in readme and "make test " in readme and "make app CPU=1" in readme
    assert "CUDA build, several GB" in readme  # a newcomer knows the default download before it starts
    low, high = map(int, re.search(r"the quick part: (\d+)-(\d+) s", readme).groups())
    assert low <= high <= 240  # the quick suite is kept within 4 minutes, and the README gives the measured figure
