"""Where a spec's files may be. Relative paths start at a base folder; a confined policy (the platform's) keeps
every path inside its roots after symlinks are resolved, and the local CLI's policy confines nothing."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.errors import InputError
from engine.spec.models import Location, WorkflowSpec, io_sections


@dataclass(frozen=True)
class ReadLimits:
    """How much of a file the readers take on: the cells an Excel sheet may span, and the memory (bytes) of the
    child process that parses a workbook."""

    excel_cells: int = 20_000_000
    reader_memory_bytes: int = 4 << 30


@dataclass(frozen=True)
class PathPolicy:
    """How a spec path becomes a file: joined to `base_dir`, and inside one of `roots` unless roots is None."""

    base_dir: Path
    roots: tuple[Path, ...] | None = None
    limits: ReadLimits = ReadLimits()

    @classmethod
    def confined(cls, base_dir: Path, extra_roots: Sequence[Path] = (), limits: ReadLimits = ReadLimits()
                 ) -> PathPolicy:
        """Paths must stay inside `base_dir` or one of `extra_roots` (both taken after symlinks)."""
        roots = tuple(Path(os.path.realpath(root)) for root in (base_dir, *extra_roots))
        return cls(Path(os.path.realpath(base_dir)), roots, limits)

    def problem(self, path: str) -> str | None:
        """Why `path` may not be used, or None. Never names the server's folders."""
        if "\x00" in path:
            return "a path may not contain a NUL byte"
        if self.roots is None:
            return None
        real = Path(os.path.realpath(self._joined(path)))
        if not any(real == root or root in real.parents for root in self.roots):
            return (f"{path!r} is outside the folders this server may read and write (DATA_DIR and "
                    "ALLOWED_ROOTS): use a path relative to DATA_DIR, without '..' leading out of it")
        return None

    def resolve(self, path: str, *, field: str) -> Path:
        """The file a spec path names, checked now (a symlink swapped in since the spec was stored counts)."""
        problem = self.problem(path)
        if problem is not None:
            raise InputError(f"{field}: {problem}")
        return self._joined(path)

    def shown(self, path: str) -> str:
        """A path as messages name it: as the spec wrote it where paths are confined (the server's folders are
        nobody's business), resolved on the user's own machine."""
        return repr(path) if self.roots is not None else str(self._joined(path))

    def _joined(self, path: str) -> Path:
        candidate = Path(path)
        if self.roots is None:  # the user's own machine: ~ means their home
            candidate = candidate.expanduser()
        return candidate if candidate.is_absolute() else self.base_dir / candidate


def path_fields(spec: WorkflowSpec) -> list[tuple[Location, str]]:
    """Every file path a spec names, with where it is."""
    fields: list[tuple[Location, str]] = []
    for section, config in io_sections(spec):
        path = getattr(config, "path", None)
        if isinstance(path, str):
            fields.append(((*section, "path"), path))
    return fields


def path_errors(spec: WorkflowSpec, policy: PathPolicy) -> list[tuple[Location, str]]:
    """Each path of the spec that the policy refuses, with the reason."""
    return [(location, problem) for location, path in path_fields(spec)
            if (problem := policy.problem(path)) is not None]
