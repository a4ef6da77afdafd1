"""Outages mid-job: a private Redis or MariaDB is killed and started again while an arq worker process runs a job.

The job completes with every row right, no worker process exits, the upstream sees no more repeats than the
requests in flight, and while the outage lasts /health says degraded (and, for the database, the API's reads
answer 503 in the one error shape).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from api_server.auth import Caller
from api_server.key_limits import KeyLimits
from api_server.services.errors import TooManyRequests
from core.db import Database
from core.db.migrate import upgrade
from core.queue import ArqQueue
from core.shared_limits import SharedLimits
from tests.support.fake_upstream import FakeUpstream
from tests.support.private_services import PrivateMariaDB, PrivateRedis, PrivateServer
from tests.support.services import redis_url
from tests.support.worker_helpers import (
    Platform,
    check_output,
    platform,
    start_worker_process,
    wait_for,
    workflow_spec,
    write_tickets,
)

pytestmark = [pytest.mark.redis, pytest.mark.mysql]

ROWS = 400  # 360 to send
IN_FLIGHT = 8
LATENCY_S = 0.05  # a run takes ~2.5 s without an outage
SAFE_RPS = 10_000  # never limiting, but every request takes its turn from the shared window in Redis


@contextlib.asynccontextmanager
async def private_mariadb(folder: Path) -> AsyncIterator[PrivateMariaDB]:
    """A private MariaDB with the platform's schema in its database `rowloom`."""
    server = PrivateMariaDB(folder)
    await server.install()
    await server.start()
    try:
        setup = Database(server.url.removesuffix("/rowloom") + "/mysql")
        async with setup.engine.begin() as connection:
            await connection.execute(text("CREATE DATABASE rowloom"))
        await setup.dispose()
        database = Database(server.url)
        await upgrade(database.engine)
        await database.dispose()
        yield server
    finally:
        await server.aclose()


@contextlib.asynccontextmanager
async def private_redis(folder: Path) -> AsyncIterator[PrivateRedis]:
    """A private Redis, empty."""
    server = PrivateRedis(folder)
    await server.start()
    try:
        yield server
    finally:
        await server.aclose()


async def settled(http: httpx.AsyncClient, url: str) -> dict[str, Any] | None:
    """The body of a GET, or None while the API answers 503 (a dependency is away)."""
    answer = await http.get(url)
    if answer.status_code == 503:
        return None
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def job_when(p: Platform, job_id: int, ready: Callable[[dict[str, Any]], bool], *, within_s: float,
                   what: str) -> dict[str, Any]:
    """The job's record once `ready` says so (polled; a 503 while a dependency is away counts as not yet)."""
    async def probe() -> dict[str, Any] | None:
        job = await settled(p.http, f"/api/v1/jobs/{job_id}")
        return job if job is not None and ready(job) else None

    return await wait_for(probe, within_s=within_s, what=what)


def ended(job: dict[str, Any]) -> bool:
    return job["status"] in {"completed", "failed", "cancelled"}


async def outage(server: PrivateServer, p: Platform, *, down_s: float) -> list[httpx.Response]:
    """Kill the server, keep it down `down_s` (asking /health and a job list meanwhile), start it again."""
    await server.stop()
    seen: list[httpx.Response] = []
    back_at = time.monotonic() + down_s
    while time.monotonic() < back_at:
        if len(seen) < 20:
            seen += [await p.http.get("/health"), await p.http.get("/api/v1/jobs")]
        await asyncio.sleep(min(0.05, max(0.0, back_at - time.monotonic())))
    await server.start()
    return seen


async def drill(tmp_path: Path, *, redis: str, database_url: str, server: PrivateServer, down_s: float,
                processes: list[subprocess.Popen[bytes]], **worker_env: str
                ) -> tuple[dict[str, Any], list[httpx.Response], FakeUpstream, str, Platform]:
    """Run a job on a worker process, with the server down `down_s` seconds once a third of its rows are done."""
    data = tmp_path / "data"
    data.mkdir()
    frame = write_tickets(data, ROWS)
    queue_name = f"rowloom-test:{uuid.uuid4().hex[:12]}"
    log = tmp_path / "worker.log"
    async with FakeUpstream(latency_s=LATENCY_S) as upstream, \
            platform(database_url=database_url, data_dir=data, upstream_url=upstream.base_url,
                     queue=ArqQueue(redis, queue_name), redis_url=redis, queue_name=queue_name,
                     safe_rps=SAFE_RPS) as p:
        processes.append(start_worker_process(p.settings, log, JOB_LEASE_S="10", **worker_env))
        job_id = await p.start_job()
        await job_when(p, job_id, lambda job: job["counts"]["done"] >= ROWS // 3, within_s=60,
                       what="a third of the rows done")
        seen = await outage(server, p, down_s=down_s)
        job = await job_when(p, job_id, ended, within_s=120, what="the job's end")
        after = await job_when(p, await p.start_job(), ended, within_s=60,  # offered and run after the outage
                               what="the end of a job triggered after the outage")
        events = [(e["kind"], e["message"]) for e in (await p.http.get(f"/api/v1/jobs/{job_id}/events",
                                                                        params={"limit": 500})).json()["items"]]
        job["events"] = events
    assert job["status"] == after["status"] == "completed", (job, log.read_text()[-3000:])
    assert job["counts"]["done"] == 360
    check_output(data / job["output"], frame, workflow_spec())
    assert processes[-1].poll() is None, "the worker process exited"
    repeats = [prompt for prompt, count in upstream.stats.attempts.items() if count > 1]
    assert len(repeats) <= IN_FLIGHT, repeats
    return job, seen, upstream, log.read_text(), p


@pytest.mark.parametrize("down_s", [5.0, 60.0])
async def test_a_worker_rides_out_a_redis_outage(tmp_path: Path, processes: list[subprocess.Popen[bytes]],
                                                 sqlite_template: Path, down_s: float) -> None:
    database = tmp_path / "rowloom.db"
    shutil.copyfile(sqlite_template, database)
    async with private_redis(tmp_path / "redis") as server:
        job, seen, _, log, _ = await drill(tmp_path, redis=server.url, database_url=f"sqlite+aiosqlite:///{database}",
                                           server=server, down_s=down_s, processes=processes)
    assert "requeued" not in [kind for kind, _ in job["events"]]  # the job went on: never handed back
    health = [r for r in seen if r.url.path == "/health"]
    assert health and all(r.status_code == 503 and r.json()["status"] == "degraded" for r in health)
    assert log.count("Redis is unreachable") == 1 and log.count("Redis is reachable again") == 1, log[-3000:]
    assert "Traceback" not in log


async def test_a_keys_limits_count_in_the_server_while_redis_is_away(tmp_path: Path) -> None:
    """Redis away: a key's requests are still admitted, up to its limit, by this process's windows."""
    async with private_redis(tmp_path / "redis") as server:
        limits = KeyLimits(SharedLimits.from_url(server.url))
        caller = Caller(key_id=7, name="limited", scopes=frozenset(), rps=2.0, tpm=None)
        assert await limits.admit(caller, 10) is not None
        await server.stop()
        admitted = [await limits.admit(caller, 10), await limits.admit(caller, 10)]
        with pytest.raises(TooManyRequests):
            await limits.admit(caller, 10)
        await limits.aclose()
    assert all(a is not None for a in admitted)


@pytest.mark.parametrize("down_s", [0.3, 5.0, 60.0])
async def test_a_worker_rides_out_a_database_outage(tmp_path: Path, processes: list[subprocess.Popen[bytes]],
                                                    down_s: float) -> None:
    async with private_mariadb(tmp_path / "mariadb") as server:
        job, seen, _, log, _ = await drill(tmp_path, redis=redis_url(), database_url=server.url, server=server,
                                           down_s=down_s, processes=processes)
    assert "requeued" not in [kind for kind, _ in job["events"]]  # the run went on where it was
    if down_s >= 1:
        health = [r for r in seen if r.url.path == "/health"]
        reads = [r for r in seen if r.url.path == "/api/v1/jobs"]
        assert health and all(r.status_code == 503 and r.json()["status"] == "degraded" for r in health)
        assert reads and all(r.status_code == 503 and r.headers["Retry-After"] == "1" for r in reads)
        assert all(r.json()["error"]["code"] == "unavailable" for r in reads)
    assert log.count("the database is unreachable") <= 1 and "Traceback" not in log, log[-3000:]


async def test_a_database_outage_longer_than_its_bound_hands_the_job_back(
        tmp_path: Path, processes: list[subprocess.Popen[bytes]]) -> None:
    async with private_mariadb(tmp_path / "mariadb") as server:
        job, _, _, log, _ = await drill(tmp_path, redis=redis_url(), database_url=server.url, server=server,
                                        down_s=6.0, processes=processes, DB_OUTAGE_S="2")
    requeued = [message for kind, message in job["events"] if kind == "requeued"]
    assert len(requeued) == 1 and "unreachable for more than 2s" in requeued[0], job["events"]
    assert job["attempt"] == 2 and "Traceback" not in log
