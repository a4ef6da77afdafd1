"""Start ../shared/fakellm/fakellm.py as a separate process for a benchmark, and read its /stats."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "fakellm" / "fakellm.py"


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def fakellm(script: Path, *args: str) -> Iterator[str]:
    """Run fakellm with `args`; yields its base URL (…/v1)."""
    if not script.is_file():
        raise SystemExit(f"fakellm not found at {script}; pass --fakellm PATH")
    port = free_port()
    process = subprocess.Popen([sys.executable, str(script), "--port", str(port), *args],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        process.wait(timeout=10)


def stats(base_url: str) -> dict[str, Any]:
    """fakellm's /stats."""
    with urllib.request.urlopen(base_url.removesuffix("/v1") + "/stats", timeout=5) as response:
        result: dict[str, Any] = json.load(response)
        return result


def reset(base_url: str) -> None:
    """Zero fakellm's counters."""
    urllib.request.urlopen(urllib.request.Request(base_url.removesuffix("/v1") + "/reset", method="POST"), timeout=5)
