"""Names a package exports from its submodules, each imported when first used (PEP 562).

The engine's door (`engine`, `engine.gateway`) names everything the platform may use; importing it must not
load every stage: `import engine.gateway` in a process that never runs a job stays a tenth of a second and a
few MB, where the whole engine (polars, pyarrow, the sinks) is a second and a half and ~170 MB.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, modules: Mapping[str, str],
                 namespace: dict[str, Any]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for `package`, whose `modules` map each module to the names (space-separated)
    it gives: a name is that module's attribute (or the module itself when it is `package.name`), kept in
    `namespace` once loaded."""
    where = {name: module for module, names in modules.items() for name in names.split()}

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        loaded = importlib.import_module(module)
        value = loaded if module == f"{package}.{name}" else getattr(loaded, name)
        namespace[name] = value  # the next access is a plain global
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *where})

    return __getattr__, __dir__
