"""A key's limits on /v1 hold across server processes that share Redis, and answer 429 with Retry-After."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from core.db import Database
from core.settings import Settings
from tests.support.keys import bearer, new_key
from tests.support.records import migrate
from tests.support.services import redis_url

RPS = 5.0
CHAT = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}


async def test_a_key_over_its_rate_gets_429_with_retry_after(settings: Settings, database: Database) -> None:
    from api_server.main import create_app
    from core.gateway_router import process_router

    router = process_router(settings)
    app = create_app(settings, database, router)
    limited = await new_key(database, name="limited", rps=RPS)
    free = await new_key(database, name="free")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        answers = [await http.post("/v1/chat/completions", json=CHAT, headers=bearer(limited)) for _ in range(12)]
        other = await http.post("/v1/chat/completions", json=CHAT, headers=bearer(free))
    await router.aclose()
    statuses = Counter(a.status_code for a in answers)
    assert statuses[200] <= RPS + 1 and statuses[429] >= 12 - RPS - 1  # a second's burst, then the rate
    refused = next(a for a in answers if a.status_code == 429)
    assert refused.json()["error"]["code"] == "rate_limited" and int(refused.headers["retry-after"]) >= 1
    assert other.status_code == 200  # the limit is the key's, not the gateway's


@pytest.fixture
async def two_servers(tmp_path: Path) -> AsyncIterator[tuple[list[str], str]]:
    """Two `rowloom serve` processes on one SQLite file and one Redis; yields their URLs and a limited key."""
    url = f"sqlite+aiosqlite:///{tmp_path}/rowloom.db"
    await migrate(url, fresh=False)
    database = Database(url)
    key = await new_key(database, name="shared", rps=RPS)
    await database.dispose()
    env = {**os.environ, "DATABASE_URL": url, "REDIS_URL": redis_url(), "DATA_DIR": str(tmp_path / "data"),
           "QUEUE_NAME": f"rowloom-test:{uuid.uuid4().hex[:8]}", "LOG_LEVEL": "WARNING"}
    ports = [_free_port() for _ in range(2)]
    servers = [await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rowloom", "serve", "--no-migrate", "--port", str(port), env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL) for port in ports]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        async with httpx.AsyncClient(timeout=2) as http:
            for base in urls:
                deadline = time.monotonic() + 30
                while True:
                    try:
                        if (await http.get(f"{base}/ping")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    assert time.monotonic() < deadline, f"{base} did not start"
                    await asyncio.sleep(0.05)
        yield urls, key
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            await asyncio.wait_for(server.wait(), timeout=30)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.redis
async def test_a_key_limit_holds_across_two_server_processes(two_servers: tuple[list[str], str]) -> None:
    urls, key = two_servers
    accepted: list[float] = []
    refused = 0
    async with httpx.AsyncClient(timeout=10, headers=bearer(key)) as http:
        started = time.monotonic()

        async def hammer(base: str) -> None:
            nonlocal refused
            while time.monotonic() - started < 3.0:
                response = await http.post(f"{base}/v1/chat/completions", json=CHAT)
                if response.status_code == 200:
                    accepted.append(time.monotonic())
                else:
                    assert response.status_code == 429 and "retry-after" in response.headers, response.text
                    refused += 1

        await asyncio.gather(*(hammer(base) for base in urls for _ in range(4)))
        elapsed = time.monotonic() - started
    # The bucket holds one second of requests and refills at RPS: together, never more than that, however slow
    # the machine (a slow machine only sends fewer).
    assert len(accepted) <= RPS + RPS * elapsed
    assert len(accepted) >= RPS and refused > 0
    for i, first in enumerate(sorted(accepted)):  # in any 1 s window: the full bucket plus one second's refill
        assert sum(1 for t in sorted(accepted)[i:] if t < first + 1.0) <= 2 * RPS
