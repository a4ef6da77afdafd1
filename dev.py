#!/usr/bin/env python3
"""Set-up and run Rowloom from a fresh clone with nothing but Python 3.11+.

    python3 dev.py start   # install into .venv if needed, migrate SQLite, serve on :8000, run a demo job
    python3 dev.py test    # install into .venv if needed, run the tests, ruff and mypy

Both create `.venv` beside this file on first use and reinstall only when
pyproject.toml changes. Extra arguments go to `rowloom serve` or to pytest.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".rowloom-install-stamp"


def _run(*cmd: str | Path) -> None:
    result = subprocess.run([str(c) for c in cmd], cwd=ROOT)
    if result.returncode != 0:
        sys.exit(result.returncode)


def ensure_installed() -> None:
    """Create .venv and install the project (editable, with dev extras) when pyproject changed."""
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    if not (BIN / "python").exists():
        print("creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("installing rowloom and its dependencies into .venv ...", flush=True)
    _run(BIN / "python", "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    _run(BIN / "python", "-m", "pip", "install", "--quiet", "-e", ".[dev]")
    STAMP.write_text(wanted)


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in {"start", "test"}:
        print(__doc__)
        sys.exit(2)
    command, extra = sys.argv[1], sys.argv[2:]
    ensure_installed()
    if command == "start":
        _run(BIN / "rowloom", "serve", "--demo", *extra)
        return
    _run(BIN / "python", "-m", "pytest", *extra)
    _run(BIN / "python", "-m", "ruff", "check", "src", "tests", "bench", "migrations")
    _run(BIN / "python", "-m", "mypy")


if __name__ == "__main__":
    main()
