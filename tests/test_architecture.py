"""The import direction of docs/architecture.md ("Where things live"), checked on the source.

entry points -> registry -> layers -> ``jobs/common``: every import counts, at module
level, inside functions and under ``TYPE_CHECKING`` alike (a circle hidden behind
``TYPE_CHECKING`` is still a circle a reader has to untangle).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("jobs", "aws", "dags")

# what each part of the house may import (besides itself and third-party libraries)
LAYERS = ("jobs.bronze", "jobs.silver", "jobs.gold", "jobs.maintenance", "jobs.tools")
ENTRY_POINTS = (
    "jobs.main",
    "jobs.runner",
    "jobs.demo",
    "jobs.status",
    "jobs.report",
    "jobs.console",
    "aws",
    "dags",
)
COMMON = ("jobs.common",)
DATAGEN = ("jobs.datagen",)  # the local stand-ins of the source systems
REGISTRY = ("jobs.registry",)
PACKAGE = ("jobs",)  # jobs/__init__.py: the version


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def part_of(module: str) -> str:
    """The part of the house ``module`` belongs to."""
    for name, prefixes in (
        ("common", COMMON),
        ("datagen", DATAGEN),
        ("registry", REGISTRY),
        ("entry point", ENTRY_POINTS),
    ):
        if _within(module, prefixes):
            return name
    for layer in LAYERS:
        if _within(module, (layer,)):
            return layer
    if module in PACKAGE:
        return "package"
    raise AssertionError(f"{module} is in no part of docs/architecture.md's table: add it")


def allowed(importer: str, imported: str) -> bool:
    """May ``importer`` import ``imported``? (Both are first-party modules.)"""
    source, target = part_of(importer), part_of(imported)
    if source == "entry point":
        return True
    if target in ("common", "package"):
        return True
    if source == "registry":
        return target in LAYERS
    if source in LAYERS or source == "datagen":
        return target == source
    return False  # common and the package import only common


def modules() -> Iterator[tuple[str, Path]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            yield name, path


def first_party_imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) of every first-party import in ``path``, wherever it stands."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from jobs.common import delta_io` imports the module jobs.common.delta_io
            names = [node.module]
            names += [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] in PACKAGES:
                yield node.lineno, name


def import_graph() -> dict[str, set[str]]:
    known = dict(modules())
    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        for _, imported in first_party_imports(path):
            if imported in known and imported != name:
                graph[name].add(imported)
    return graph


def violations() -> list[str]:
    known = dict(modules())
    found = []
    for name, path in known.items():
        for line, imported in first_party_imports(path):
            if imported not in known:  # `from x import some_function`
                continue
            if not allowed(name, imported):
                found.append(
                    f"{path.relative_to(ROOT)}:{line}: {part_of(name)} module {name} "
                    f"imports {imported} ({part_of(imported)})"
                )
    return found


def test_every_import_follows_entry_points_registry_layers_common() -> None:
    assert violations() == []


def test_only_entry_points_import_the_registry() -> None:
    importers = sorted(
        name for name, imported in import_graph().items() if "jobs.registry" in imported
    )
    assert importers == ["aws.pipeline", "jobs.demo", "jobs.main", "jobs.runner"]


def test_no_module_takes_part_in_an_import_circle() -> None:
    graph = import_graph()
    circles = []
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for imported in sorted(graph[module]):
            if state.get(imported) == 1:
                circles.append(" -> ".join([*path[path.index(imported) :], imported]))
            elif imported not in state:
                visit(imported, [*path, imported])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert circles == []


@pytest.mark.parametrize(
    ("importer", "imported", "expected"),
    [
        ("jobs.common.quality", "jobs.registry", False),
        ("jobs.common.quality", "jobs.silver.scd2", False),
        ("jobs.maintenance", "jobs.bronze.connector", False),
        ("jobs.silver.build", "jobs.registry", False),
        ("jobs.silver.build", "jobs.gold.contract", False),
        ("jobs.silver.build", "jobs.silver.scd2", True),
        ("jobs.silver.build", "jobs.common.job", True),
        ("jobs.registry", "jobs.gold.contract", True),
        ("jobs.registry", "jobs.runner", False),
        ("jobs.datagen.simulator", "jobs.bronze.jdbc", False),
        ("jobs.runner", "jobs.registry", True),
        ("aws.pipeline", "jobs.registry", True),
    ],
)
def test_the_rule_itself(importer: str, imported: str, expected: bool) -> None:
    assert allowed(importer, imported) is expected
