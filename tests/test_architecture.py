"""The import rules of docs/architecture.md, read from the source: who may import whom, and no cycles.

Every import counts, including those inside functions and under TYPE_CHECKING.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# Which of our packages each package may import (itself included).
ALLOWED: dict[str, set[str]] = {
    "engine": {"engine"},
    "core": {"core", "engine"},
    "api_server": {"api_server", "core", "engine"},
    "worker": {"worker", "core", "engine"},
    "rowloom": {"rowloom", "api_server", "worker", "core", "engine"},
}
# Third-party packages a package must not use: the engine is a library (no web, SQL tables or queue), the data
# layer and the worker have no web.
WEB = {"fastapi", "starlette", "uvicorn"}
# The engine's public surface: from outside the engine, only these packages and the names their `__all__` lists.
DOORS = ("engine", "engine.gateway")
BANNED: dict[str, set[str]] = {
    "engine": WEB | {"sqlmodel", "sqlalchemy", "alembic", "aiosqlite", "arq", "redis"},
    "core": WEB,
    "worker": WEB,
}


def module_name(path: Path, root: Path) -> str:
    """`engine/run/runner.py` -> `engine.run.runner`; a package's `__init__.py` is the package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, root: Path) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every import in a file, relative ones resolved."""
    module = module_name(path, root)
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield node.lineno, target
            for alias in node.names:  # `from engine import run` imports the module engine.run
                yield node.lineno, f"{target}.{alias.name}"


def unit_of(module: str, ours: set[str]) -> str | None:
    """The node of the package graph a module belongs to: a stage of the engine, or a whole other package."""
    parts = module.split(".")
    if parts[0] not in ours:
        return None
    if parts[0] == "engine" and len(parts) > 1:
        return ".".join(parts[:2])
    return parts[0]


def door(root: Path) -> set[str]:
    """What may be imported of the engine from outside it: its doors (`engine`, `engine.gateway`) and the names
    each lists in `__all__`."""
    allowed = set(DOORS)
    for package in DOORS:
        init = root.joinpath(*package.split("."), "__init__.py")
        tree = ast.parse(init.read_text(encoding="utf-8")) if init.exists() else ast.Module(body=[], type_ignores=[])
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__"
                                                    for t in node.targets):
                allowed |= {f"{package}.{name}" for name in ast.literal_eval(node.value)}
    return allowed


def violations(root: Path) -> list[str]:
    """Every forbidden import, every import of the engine's internals from outside it, and every cycle between
    packages, between the engine's stages, and between modules under `root`."""
    ours = {p.name for p in root.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    public = door(root)
    problems: list[str] = []
    graph: dict[str, set[str]] = {}
    modules: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        source = module_name(path, root)
        package = source.split(".")[0]
        where = path.relative_to(root)
        for line, target in imports_of(path, root):
            top = target.split(".")[0]
            if top in ours:
                if top not in ALLOWED.get(package, {package}):
                    problems.append(f"{where}:{line}: {package} may not import {target}")
                elif top == "engine" and package != "engine" and target not in public:
                    problems.append(f"{where}:{line}: {package} may not import {target}, inside the engine "
                                    "(use its door: engine or engine.gateway)")
                here, there = unit_of(source, ours), unit_of(target, ours)
                if here and there and here != there:
                    graph.setdefault(here, set()).add(there)
                if _is_module(root, target) and target != source and not _is_package_of(target, source):
                    modules.setdefault(source, set()).add(target)
            elif top in BANNED.get(package, set()):
                problems.append(f"{where}:{line}: {package} may not use {top}")
    problems += [f"import cycle: {' -> '.join(cycle)}" for cycle in cycles(graph)]
    problems += [f"import cycle between modules: {' -> '.join(cycle)}" for cycle in cycles(modules)]
    return problems


def _is_module(root: Path, name: str) -> bool:
    path = root.joinpath(*name.split("."))
    return path.with_suffix(".py").exists()


def _is_package_of(package: str, module: str) -> bool:
    return module.startswith(package + ".")


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected group of more than one node (depth-first)."""
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append([*path[path.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_src_follows_the_import_rules() -> None:
    assert violations(SRC) == []


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for package in {Path(name).parts[0] for name in files}:
        (root / package / "__init__.py").touch()
    return root


def test_a_forbidden_import_inside_a_function_is_reported(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "worker/executor.py": "def run():\n    from api_server.services.jobs import create_job\n",
        "api_server/services/jobs.py": "",
        "engine/run/runner.py": "import fastapi\n",
        "core/queue.py": "from worker import executor\n",
    })
    assert violations(root) == [
        "core/queue.py:1: core may not import worker",
        "core/queue.py:1: core may not import worker.executor",
        "engine/run/runner.py:1: engine may not use fastapi",
        "worker/executor.py:2: worker may not import api_server.services.jobs",
        "worker/executor.py:2: worker may not import api_server.services.jobs.create_job",
    ]


def test_the_engine_is_entered_by_its_door_only(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "engine/__init__.py": '__all__ = ["run_spec"]\n',
        "engine/gateway/__init__.py": '__all__ = ["Router"]\n',
        "engine/run/__init__.py": "",
        "engine/run/runner.py": "from engine.gateway.router import Router\n",
        "engine/gateway/router.py": "",
        "core/jobs.py": "from engine import run_spec\nfrom engine.gateway import Router\n"
                        "from engine.run.runner import Runner\nfrom engine import Runner\n",
    })
    assert violations(root) == [
        "core/jobs.py:3: core may not import engine.run.runner, inside the engine (use its door: engine or "
        "engine.gateway)",
        "core/jobs.py:3: core may not import engine.run.runner.Runner, inside the engine (use its door: engine or "
        "engine.gateway)",
        "core/jobs.py:4: core may not import engine.Runner, inside the engine (use its door: engine or "
        "engine.gateway)",
    ]


def test_a_cycle_between_modules_is_reported(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "engine/sources/__init__.py": "",
        "engine/sources/files.py": "from engine.sources.excel import Workbook\n",
        "engine/sources/excel.py": "from engine.sources.files import FrameSource\n",
    })
    assert violations(root) == [
        "import cycle between modules: engine.sources.excel -> engine.sources.files -> engine.sources.excel"]


def test_a_cycle_between_engine_stages_is_reported(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "engine/run/__init__.py": "",
        "engine/run/runner.py": "from engine.sinks import open_sink\n",
        "engine/sinks/__init__.py": "",
        "engine/sinks/files.py": "from engine.run.progress import Progress\n",
    })
    assert violations(root) == ["import cycle: engine.run -> engine.sinks -> engine.run"]
