"""Temp files beside an output, named by host and process, so a run can remove those a killed run left.

An output is written to `.<name>.<host>-<pid>.<n>.tmp` and renamed into place when complete. The write
runs behind the rows for the whole run, so a process killed mid-run leaves its temp file; the next run
that writes the same output removes the temp files of processes of this host that no longer run (never
another host's: a shared folder may hold a live run's file from elsewhere).
"""

from __future__ import annotations

import glob
import itertools
import os
import socket
from pathlib import Path

HOST = socket.gethostname().replace(".", "_")  # no dots: the name's parts are split on them
_numbers = itertools.count()


def temp_path(path: Path) -> Path:
    """A new temp file name beside `path`, unique to this process and call."""
    return path.with_name(f".{path.name}.{HOST}-{os.getpid()}.{next(_numbers)}.tmp")


def remove_stale(path: Path) -> list[Path]:
    """Remove the temp files of `path` left by processes of this host that have ended; returns them."""
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process there, not probe it
        return []
    removed: list[Path] = []
    for candidate in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        owner = candidate.name[len(path.name) + 2:].split(".")[0]  # "<host>-<pid>"
        host, _, pid = owner.rpartition("-")
        if host == HOST and pid.isdigit() and not _running(int(pid)):
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
