"""The engine's door (`engine`, `engine.gateway`): every name it lists is there, and the lists agree."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
DOORS = ["engine", "engine.gateway"]


def _type_checking_names(package: str) -> set[str]:
    """The names the door imports for type checkers (and so for readers and editors) and at module level."""
    tree = ast.parse(SRC.joinpath(*package.split("."), "__init__.py").read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("engine") and \
                node.module != "engine.exports":
            names |= {alias.asname or alias.name for alias in node.names}
    return names


@pytest.mark.parametrize("package", DOORS)
def test_every_exported_name_resolves(package: str) -> None:
    door = importlib.import_module(package)
    for name in door.__all__:
        assert getattr(door, name) is not None, name
    assert set(door.__all__) <= set(dir(door))


@pytest.mark.parametrize("package", DOORS)
def test_the_door_imports_for_type_checkers_what_it_exports(package: str) -> None:
    door = importlib.import_module(package)
    assert _type_checking_names(package) == set(door.__all__)


def test_an_unknown_name_is_an_attribute_error() -> None:
    import engine

    with pytest.raises(AttributeError, match="has no attribute 'Runner'"):
        engine.Runner  # noqa: B018


def test_importing_the_gateway_door_loads_no_stage_of_the_engine() -> None:
    """A process that only routes requests to models pays for none of the table code (polars, the stages)."""
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, engine.gateway; print(' '.join(sorted(sys.modules)))"],
        capture_output=True, text=True, check=True).stdout.split()
    assert not [m for m in loaded if m.startswith(("engine.run", "engine.sources", "engine.sinks", "polars"))]
