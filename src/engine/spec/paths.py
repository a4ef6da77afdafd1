"""Where a spec's files may be. Relative paths start at a base folder; a confined policy (the platform's) keeps
every path inside its roots after symlinks are resolved, and the local CLI's policy confines nothing."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
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
    # Where a confined run writes: a relative sink path inside `output_dir` (the job's own folder, under
    # base_dir), an absolute one inside one of `output_roots` (OUTPUT_ROOT), there replacing only `owner`'s files.
    output_dir: Path | None = None
    output_roots: tuple[Path, ...] = ()
    owner: str | None = None

    @classmethod
    def confined(cls, base_dir: Path, extra_roots: Sequence[Path] = (), limits: ReadLimits = ReadLimits(), *,
                 output_roots: Sequence[Path] = ()) -> PathPolicy:
        """Paths must stay inside `base_dir` or one of `extra_roots` (both taken after symlinks)."""
        roots = tuple(Path(os.path.realpath(root)) for root in (base_dir, *extra_roots, *output_roots))
        return cls(Path(os.path.realpath(base_dir)), roots, limits,
                   output_roots=tuple(Path(os.path.realpath(root)) for root in output_roots))

    def for_job(self, job_dir: Path, owner: str) -> PathPolicy:
        """The policy of one job: its relative outputs in `job_dir` (inside base_dir), written as `owner`."""
        return replace(self, output_dir=job_dir, owner=owner)

    def output_problem(self, path: str) -> str | None:
        """Why a sink may not write `path`, or None: a confined run writes a relative path inside its own folder,
        an absolute one only inside OUTPUT_ROOT."""
        if "\x00" in path:
            return "a path may not contain a NUL byte"
        if self.roots is None:
            return None
        if Path(path).is_absolute():
            real = Path(os.path.normpath(path))
            if any(real == root or root in real.parents for root in self.output_roots):
                return None
            return (f"{path!r}: an output is written in the job's own folder (give a relative path)"
                    + (" or inside OUTPUT_ROOT" if self.output_roots else ""))
        if os.path.normpath(path).split(os.sep)[0] == "..":
            return f"{path!r}: an output path may not lead out of the job's own folder"
        return None

    def output(self, path: str, *, field: str) -> tuple[Path, tuple[str, ...], str]:
        """Where a sink writes `path`: a trusted folder to start from, the folders below it, and the file name."""
        problem = self.output_problem(path)
        if problem is not None:
            raise InputError(f"{field}: {problem}")
        if self.roots is None:  # the user's own machine: anywhere, relative to the spec's folder
            full = Path(os.path.abspath(self._joined(path)))
            return full.parent, (), full.name
        candidate = Path(os.path.normpath(path))
        if candidate.is_absolute():
            root = next(r for r in self.output_roots if candidate == r or r in candidate.parents)
            return root, candidate.parent.relative_to(root).parts, candidate.name
        if self.output_dir is None:
            raise InputError(f"{field}: outputs are written by jobs, in their own folders")
        below = Path(os.path.abspath(self.output_dir)).relative_to(self.base_dir).parts
        return self.base_dir, (*below, *candidate.parent.parts), candidate.name

    def in_output_root(self, path: str) -> bool:
        """Whether `path` goes to OUTPUT_ROOT (shared by jobs: only `owner`'s files there are replaced)."""
        return self.roots is not None and Path(path).is_absolute()

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
    """Each path of the spec that the policy refuses, with the reason (a sink's by the rule of outputs)."""
    return [(location, problem) for location, path in path_fields(spec)
            if (problem := (policy.output_problem(path) if location[0] == "sink" else policy.problem(path)))
            is not None]
