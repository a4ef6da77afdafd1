"""The folder an output is written in, held open: a folder swapped for a symlink mid-run cannot redirect a write.

The folder is opened once, one component at a time from a trusted root, refusing symlinks (O_NOFOLLOW), and
every write goes through that handle: `/proc/<pid>/fd/<n>/<name>` names a file inside the folder the handle
holds, whatever the path leads to now (the Excel writer's child process uses the same name). On a system
without /proc the folder's path is used as it is.
"""

from __future__ import annotations

import contextlib
import os
import weakref
from pathlib import Path

from engine.errors import InputError

_PROC = Path(f"/proc/{os.getpid()}/fd")
_DIRECTORY = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)


class OutputDir:
    """An open folder under `root` (the trusted start), reached through `parts` with no symlink followed."""

    def __init__(self, root: Path, parts: tuple[str, ...]) -> None:
        try:
            root.mkdir(parents=True, exist_ok=True)  # DATA_DIR on a first start, the user's own folder
        except OSError as exc:
            raise InputError(f"{root / Path(*parts)}: cannot write an output there: {exc.strerror or exc}") from None
        self.real = Path(os.path.realpath(root), *parts)  # where it is, for messages and the job record
        self.fd: int | None = None
        if not _PROC.is_dir():
            self.real.mkdir(parents=True, exist_ok=True)
            return
        fd = os.open(os.path.realpath(root), _DIRECTORY)
        try:
            for part in parts:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, mode=0o755, dir_fd=fd)
                try:
                    child = os.open(part, _DIRECTORY, dir_fd=fd)
                except OSError as exc:  # ELOOP: a symlink; ENOTDIR: a file where a folder must be
                    raise InputError(f"{part!r}: not a folder an output can be written in ({exc.strerror})") from None
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        self._closer = weakref.finalize(self, os.close, fd)

    def path(self, name: str) -> Path:
        """The name of a file in the held folder, valid in this process and in its children."""
        if "/" in name or name in ("", ".", ".."):
            raise InputError(f"{name!r}: not a file name")
        return (_PROC / str(self.fd) / name) if self.fd is not None else self.real / name

    def close(self) -> None:
        """Let the folder go."""
        if self.fd is not None:
            self._closer()
            self.fd = None


def folder_of(path: Path) -> OutputDir:
    """The folder of an output path given whole (the user's own machine, or a test), made if missing."""
    return OutputDir(path.parent, ())
