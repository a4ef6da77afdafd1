"""Start ../shared/fakellm/fakellm.py as a separate process for a benchmark, and read its /stats."""

from __future__ import annotations

import argparse
import json
import os
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds_with_children(pid: int) -> float:
    """As cpu_seconds, plus what its finished children used (e.g. the Excel writer)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU seconds of this process and its finished children."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and its children (e.g. uvicorn's worker processes)."""
    total = cpu_seconds(pid)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if parent == pid:
                total += cpu_seconds(int(entry.name))
    return total


class FakeLLM(str):
    """fakellm's base URL (…/v1), with its process id for CPU accounting."""

    pid: int

    def cpu_seconds(self) -> float:
        """CPU seconds the fakellm process has used."""
        return cpu_seconds(self.pid)


def wait_until_up(url: str, *, seconds: float = 15.0) -> None:
    """Poll a URL until it answers (a process just started), at most `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"{url} did not come up in {seconds:g}s") from None
            time.sleep(0.05)


@contextmanager
def fakellm(script: Path, *args: str) -> Iterator[FakeLLM]:
    """Run fakellm with `args`; yields its base URL (…/v1)."""
    if not script.is_file():
        raise SystemExit(f"fakellm not found at {script}; pass --fakellm PATH")
    port = free_port()
    process = subprocess.Popen([sys.executable, str(script), "--port", str(port), *args],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/health")
        url = FakeLLM(f"http://127.0.0.1:{port}/v1")
        url.pid = process.pid
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def run_parser(description: str | None, *, rows: int | None, latency_ms: float, in_flight: int,
               redis: bool = False) -> argparse.ArgumentParser:
    """The options every run against fakellm takes (--rows, --latency-ms, --in-flight, --fakellm, and --redis-url
    where Redis is used); the caller adds its own."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=rows)
    parser.add_argument("--latency-ms", type=float, default=latency_ms)
    parser.add_argument("--in-flight", type=int, default=in_flight)
    parser.add_argument("--fakellm", type=Path, default=DEFAULT)
    if redis:
        parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    return parser


def stats(base_url: str) -> dict[str, Any]:
    """fakellm's /stats."""
    with urllib.request.urlopen(base_url.removesuffix("/v1") + "/stats", timeout=5) as response:
        result: dict[str, Any] = json.load(response)
        return result


def reset(base_url: str) -> None:
    """Zero fakellm's counters."""
    urllib.request.urlopen(urllib.request.Request(base_url.removesuffix("/v1") + "/reset", method="POST"), timeout=5)
