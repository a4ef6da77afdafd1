#!/usr/bin/env python3
"""Job-list latency over 1,000,000 jobs in SQLite, in process (httpx ASGI transport, no network).

    .venv/bin/python bench/api_list.py [--jobs 1000000] [--repeat 200] [--db bench/.data/jobs.db]

Fills a migrated SQLite file once (kept for reruns), then times p50/p95 of: the first page of
`status=running&order_by=created_at desc`, a cursor page at depth ~900,000 and an offset page at the
same depth (unfiltered, created_at desc), and both at ~90% depth of the running jobs.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import random
import sqlite3
import statistics
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from api_server.main import create_app
from core.db import Database
from core.db.migrate import upgrade
from core.models import Priority
from core.settings import Settings

STATUSES = [("completed", 60), ("failed", 8), ("cancelled", 4), ("running", 12), ("queued", 12), ("paused", 4)]
WORKFLOWS = 50
PAGE = 50


def job_rows(count: int) -> Iterator[tuple[Any, ...]]:
    rng = random.Random(1)
    names = [s for s, _ in STATUSES]
    weights = [w for _, w in STATUSES]
    start = datetime(2025, 1, 1)
    for i in range(count):
        workflow = rng.randrange(WORKFLOWS) + 1
        created = start + timedelta(milliseconds=i * 30 + rng.randrange(30))
        status = rng.choices(names, weights)[0]
        started = created + timedelta(seconds=2) if status != "queued" else None
        completed = started + timedelta(minutes=3) if status in ("completed", "failed", "cancelled") and started \
            else None
        yield (workflow, workflow, f"wf-{workflow:02d}", 1, f"job {i}", "{}", rng.randrange(len(Priority)), status,
               1000, 990 if completed else 0, 10 if completed else 0, 0, 0, 0, 0.0, created, created, started,
               completed, 0)


def fill(path: Path, count: int) -> None:
    """Create and fill the database unless it already holds `count` jobs."""
    if holds(path, "jobs", count):
        return
    started = time.perf_counter()
    with sqlite3.connect(path) as db:
        insert_workflows(db, WORKFLOWS, datetime(2025, 1, 1))
        db.executemany("INSERT INTO jobs (workflow_id, workflow_version_id, workflow_name, version, name, params, "
                       "priority, status, rows_total, rows_done, rows_failed, rows_skipped, tokens_in, tokens_out, "
                       "cost, created_at, updated_at, started_at, completed_at, attempt) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", job_rows(count))
        db.execute("ANALYZE")
    print(f"filled {count:,} jobs in {time.perf_counter() - started:.1f}s")


def holds(path: Path, table: str, count: int) -> bool:
    """Whether the SQLite file at `path` holds `count` rows in `table`; if not, a new migrated file is made there
    (to fill)."""
    if path.exists():
        with sqlite3.connect(path) as db:
            try:
                if db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == count:
                    return True
            except sqlite3.Error:
                pass
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    asyncio.run(_migrate(f"sqlite+aiosqlite:///{path}"))
    return False


def insert_workflows(db: sqlite3.Connection, count: int, at: datetime) -> None:
    """Workflows `wf-01`... with one version each (ids 1...), made at `at`."""
    ids = range(1, count + 1)
    db.executemany("INSERT INTO workflows (id, name, description, is_active, latest_version, created_at, "
                   "updated_at) VALUES (?, ?, '', 1, 1, ?, ?)", [(i, f"wf-{i:02d}", at, at) for i in ids])
    db.executemany("INSERT INTO workflow_versions (id, workflow_id, version, yaml, spec, sha256, is_active, "
                   "created_at) VALUES (?, ?, 1, '', '{}', ?, 1, ?)", [(i, i, f"{i:064d}", at) for i in ids])


async def _migrate(url: str) -> None:
    database = Database(url)
    await upgrade(database.engine)
    await database.dispose()


async def timed(client: httpx.AsyncClient, params: dict[str, Any], repeat: int, *, path: str = "/api/v1/jobs"
                ) -> tuple[float, float, dict[str, Any]]:
    """p50 and p95 milliseconds of `repeat` GETs of `path` (after 3 to warm up), and the last answer's body."""
    for _ in range(3):  # warm caches and the connection pool
        body = (await client.get(path, params=params)).raise_for_status().json()
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        response = await client.get(path, params=params)
        samples.append((time.perf_counter() - t) * 1000)
        assert response.status_code == 200
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1], body


async def run(path: Path, count: int, repeat: int) -> None:
    url = f"sqlite+aiosqlite:///{path}"
    database = Database(url)
    app = create_app(Settings(database_url=url, log_level="WARNING"), database)
    transport = httpx.ASGITransport(app=app)
    results: list[tuple[str, float, float]] = []
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        async def case(label: str, params: dict[str, Any], reps: int) -> dict[str, Any]:
            p50, p95, body = await timed(client, params, reps)
            results.append((label, p50, p95))
            print(f"{label:<58} p50 {p50:8.2f} ms   p95 {p95:8.2f} ms", flush=True)
            return body

        running = {"status": "running", "order_by": "created_at desc", "limit": PAGE}
        everything = {"order_by": "created_at desc", "limit": PAGE}
        await case("first page, status=running, created_at desc (cursor mode)", running, repeat)
        await case("first page, status=running, with total (offset=0)", {**running, "offset": 0}, max(repeat // 4, 5))
        depth = int(count * 0.9)
        deep = await case(f"offset page at depth {depth:,} (unfiltered)", {**everything, "offset": depth},
                          max(repeat // 20, 5))
        assert deep["next"], "no cursor at depth"
        await case(f"cursor page at depth {depth + PAGE:,} (unfiltered)", {**everything, "after": deep["next"]},
                   repeat)
        total_running = (await client.get("/api/v1/jobs", params={**running, "offset": 0})).json()
        running_depth = int(total_running["total"] * 0.9)
        deep_running = await case(f"offset page at depth {running_depth:,} of status=running",
                                  {**running, "offset": running_depth}, max(repeat // 20, 5))
        await case(f"cursor page at depth {running_depth + PAGE:,} of status=running",
                   {**running, "after": deep_running["next"]}, repeat)
    await database.dispose()
    by_label = {label: p50 for label, p50, _ in results}
    offset_deep = next(v for k, v in by_label.items() if k.startswith("offset page at depth") and "running" not in k)
    cursor_deep = next(v for k, v in by_label.items() if k.startswith("cursor page at depth") and "running" not in k)
    print(f"\nmachine: {platform.machine()} {_cpu_model()} cores={_cores()} "
          f"python={platform.python_version()} sqlite={sqlite3.sqlite_version}")
    print(f"deep page, offset vs cursor (p50): {offset_deep / cursor_deep:,.0f}x")


def _cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "")


def _cores() -> int:
    import os

    return os.cpu_count() or 0


def jobs_arguments(description: str | None, *, repeat: int) -> argparse.Namespace:
    """--jobs, --repeat and --db: the options of a benchmark over the filled jobs database."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=repeat)
    parser.add_argument("--db", type=Path, default=Path(__file__).parent / ".data" / "jobs.db")
    return parser.parse_args()


def main() -> None:
    args = jobs_arguments(__doc__, repeat=200)
    fill(args.db, args.jobs)
    asyncio.run(run(args.db, args.jobs, args.repeat))


if __name__ == "__main__":
    main()
