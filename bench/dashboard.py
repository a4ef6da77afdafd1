#!/usr/bin/env python3
"""The dashboard's jobs page over 1,000,000 jobs in SQLite, in process (httpx ASGI transport, no network).

    .venv/bin/python -m bench.dashboard [--jobs 1000000] [--repeat 100] [--db bench/.data/jobs.db]

The page's first response is what a browser asks before it shows the first rows: the page, its script and
its style, and the first page of jobs (50, newest first), with a read key. Also timed: a filtered first page
and one check of the live stream (`/api/v1/jobs/changes`: the 50 jobs on screen by id, and the newest id).
Target: the first response within 300 ms. The database is the one `bench.api_list` fills (kept for reruns).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from api_server.main import create_app
from api_server.services.jobs import jobs_by_id
from api_server.services.keys import create_key
from bench.api_list import fill, jobs_arguments
from core.db import Database
from core.models import Scope
from core.models.api_key import ApiKeyCreate
from core.settings import Settings


async def timed(label: str, once: Callable[[], Awaitable[object]], repeat: int) -> float:
    """p50 and p95 of `once`, printed; returns the p50 in ms."""
    for _ in range(3):  # warm caches and the connection pool
        await once()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        await once()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    p50, p95 = statistics.median(samples), samples[max(0, int(len(samples) * 0.95) - 1)]
    print(f"{label:<62} p50 {p50:8.2f} ms   p95 {p95:8.2f} ms", flush=True)
    return p50


async def run(path: Path, repeat: int) -> None:
    url = f"sqlite+aiosqlite:///{path}"
    database = Database(url)
    async with database.session() as session:
        _, secret = await create_key(session, data=ApiKeyCreate(name="dashboard bench", scopes=[Scope.READ]))
    app = create_app(Settings(database_url=url, log_level="WARNING"), database)
    auth = {"Authorization": f"Bearer {secret}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
        async def get(path: str, **params: str | int) -> httpx.Response:
            return (await client.get(path, params=params, headers=auth)).raise_for_status()

        async def first_response() -> None:
            for asset in ("/ui/", "/ui/app.js", "/ui/app.css"):
                await get(asset)
            await get("/api/v1/jobs", limit=50)

        first = await timed("jobs page, first response (page, script, style, 50 jobs)", first_response, repeat)
        await timed("jobs page filtered: status=running, priority=urgent",
                    lambda: get("/api/v1/jobs", limit=50, status="running", priority="urgent"), repeat)
        await timed("jobs page filtered: workflow=wf-07", lambda: get("/api/v1/jobs", limit=50, workflow="wf-07"),
                    repeat)
        await timed("jobs page filtered: name contains 'job 99999'",
                    lambda: get("/api/v1/jobs", limit=50, name="job 99999"), max(5, repeat // 10))
        shown = [job["id"] for job in (await get("/api/v1/jobs", limit=50)).json()["items"]]

        async def live_check() -> None:
            async with database.session() as session:
                await jobs_by_id(session, ids=shown)

        await timed("one check of the live stream (50 jobs by id, newest id)", live_check, repeat)
    await database.dispose()
    print(f"\nfirst response p50 {first:.1f} ms (target <= 300 ms)")


def main() -> None:
    args = jobs_arguments(__doc__, repeat=100)
    fill(args.db, args.jobs)
    asyncio.run(run(args.db, args.repeat))


if __name__ == "__main__":
    main()
