"""Private Redis and MariaDB servers on free ports, for outage tests: stopped and started again at will.

Each runs from the machine's own binaries (`redis-server`, `mariadbd`), with its files in the test's folder; a
test that finds no binary skips (or fails, when services are required).
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.services import REQUIRED

START_S = 60.0  # a server that does not answer within this long is a failure (MariaDB's first start is slow)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def binary(name: str) -> str:
    """The path of a server binary; skip (or fail, when services are required) without it."""
    for folder in ("", "/usr/sbin/", "/usr/local/sbin/"):
        found = shutil.which(folder + name) if folder else shutil.which(name)
        if found:
            return found
    if REQUIRED:
        pytest.fail(f"{name} is not installed, and ROWLOOM_REQUIRE_SERVICES=1 requires it")
    pytest.skip(f"{name} is not installed (an outage test starts a private server)")


async def _answers(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    return True


class PrivateServer:
    """A server process on its own port: `stop` kills it (no goodbye to clients, as a crash), `start` brings it
    back on the same port with the same files."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        """The server's command line."""
        raise NotImplementedError

    async def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        self.process = self._spawn()
        deadline = time.monotonic() + START_S
        while not await _answers(self.port):
            assert self.process.poll() is None, (self.folder / "server.log").read_text()[-2000:]
            assert time.monotonic() < deadline, f"{self.command()[0]} did not start within {START_S}s"
            await asyncio.sleep(0.02)

    def _spawn(self) -> subprocess.Popen[bytes]:
        with (self.folder / "server.log").open("ab") as log:
            return subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.folder)

    async def stop(self) -> None:
        """Kill the server and wait until it is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            await asyncio.to_thread(self.process.wait, 10)
        self.process = None

    async def aclose(self) -> None:
        """Stop for good."""
        await self.stop()


class PrivateRedis(PrivateServer):
    """redis-server without persistence: a restart loses what it held, as a Redis without disks does."""

    def command(self) -> list[str]:
        return [binary("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(self.folder)]

    @property
    def url(self) -> str:
        """Its URL."""
        return f"redis://127.0.0.1:{self.port}/0"


class PrivateMariaDB(PrivateServer):
    """mariadbd with its data in the folder and no grant tables (any user, no password)."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.data = folder / "data"

    def command(self) -> list[str]:
        return [binary("mariadbd"), "--no-defaults", f"--datadir={self.data}", f"--port={self.port}",
                "--bind-address=127.0.0.1", f"--socket={self.folder / 'mysqld.sock'}", "--skip-grant-tables",
                "--user=root", "--innodb-buffer-pool-size=32M", "--skip-log-bin", "--innodb-flush-log-at-trx-commit=2",
                f"--pid-file={self.folder / 'mysqld.pid'}"]

    async def install(self, template: Path | None = None) -> None:
        """Create its data folder (a copy of `template` when given: installing takes seconds)."""
        if template is not None:
            shutil.copytree(template, self.data)
            return
        result = await asyncio.to_thread(subprocess.run, [
            binary("mariadb-install-db"), "--no-defaults", f"--datadir={self.data}", "--user=root",
            "--auth-root-authentication-method=normal", "--skip-test-db"], capture_output=True, timeout=120)
        assert result.returncode == 0, result.stderr.decode()[-2000:]

    @property
    def url(self) -> str:
        """Its URL (database `rowloom`)."""
        return f"mysql+asyncmy://root@127.0.0.1:{self.port}/rowloom"
