#!/usr/bin/env python3
"""GET /api/v1/usage latency over 10,000,000 stored results in SQLite, in process (httpx ASGI transport).

    .venv/bin/python -m bench.usage [--results 10000000] [--repeat 200] [--db bench/.data/usage.db]

Fills a migrated SQLite file once (kept for reruns): 10 workflows, 5 API keys, 3 models, a job a workflow and
key a day for 90 days, and the results spread over those days. Each batch of results is written with the
usage rollup the worker adds (`UsageSubject.added`), in the batch's transaction. Then times p50/p95 of the
usage queries a dashboard makes: by day (all history), by hour and model (the last week), by workflow and key
(the last 30 days), and one workflow's model split. With the build before first on the path
(`PYTHONPATH=<worktree>/src`), the same file times its queries (it reads job_items).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy.dialects import sqlite

from api_server.main import create_app
from bench.api_list import _cores, _cpu_model, holds, insert_workflows, timed
from core.db import Database
from core.settings import Settings

WORKFLOWS, KEYS, MODELS, DAYS = 10, 5, ["small", "big", "embed"], 90
START = datetime(2026, 1, 1, tzinfo=UTC)
BATCH = 2000
JOBS = DAYS * WORKFLOWS * KEYS


def jobs() -> Iterator[tuple[int, int, int, datetime]]:
    """(job id, workflow, key, day start) of every job."""
    job_id = 0
    for day in range(DAYS):
        for workflow in range(1, WORKFLOWS + 1):
            for key in range(1, KEYS + 1):
                job_id += 1
                yield job_id, workflow, key, START + timedelta(days=day)


def fill(path: Path, count: int) -> None:
    """Create and fill the database unless it already holds `count` results."""
    if holds(path, "job_items", count // JOBS * JOBS):
        return
    # Imported only to fill: the build before (in a worktree, on PYTHONPATH) times its queries on the same file.
    from core.usage_rollup import UsageSubject
    from engine.results.store import RowResult, RowStatus

    started = time.perf_counter()
    every = list(jobs())
    per_job = count // len(every)
    rng = random.Random(1)
    dialect = sqlite.dialect()
    with sqlite3.connect(path) as db:
        insert_workflows(db, WORKFLOWS, START.replace(tzinfo=None))
        db.executemany("INSERT INTO jobs (id, workflow_id, workflow_version_id, workflow_name, version, name, params, "
                       "priority, status, rows_total, rows_done, rows_failed, rows_skipped, tokens_in, tokens_out, "
                       "cost, created_at, updated_at, started_at, completed_at, attempt, created_by) "
                       "VALUES (?, ?, ?, ?, 1, 'bench', '{}', 1, 'completed', ?, ?, 0, 0, 0, 0, 0, ?, ?, ?, ?, 1, ?)",
                       [(j, w, w, f"wf-{w:02d}", per_job, per_job, day.replace(tzinfo=None),
                         day.replace(tzinfo=None), day.replace(tzinfo=None), day.replace(tzinfo=None), k)
                        for j, w, k, day in every])
        written = 0
        for job_id, workflow, key, day in every:
            subject = UsageSubject(f"wf-{workflow:02d}", key)
            for first in range(0, per_job, BATCH):
                at = day + timedelta(seconds=rng.randrange(86_400))
                results = [RowResult(key=i, status=RowStatus.DONE, model=rng.choice(MODELS), attempts=1,
                                     tokens_in=rng.randrange(50, 500), tokens_out=rng.randrange(5, 50),
                                     cost=rng.random() / 1000) for i in range(first, min(per_job, first + BATCH))]
                stamp = at.replace(tzinfo=None).isoformat(" ")
                db.executemany("INSERT INTO job_items (job_id, row_key, key_json, step, target, status, outputs, "
                               "model, attempts, latency_s, tokens_in, tokens_out, cost, cached, updated_at) "
                               "VALUES (?, ?, ?, '', '', 'done', '{}', ?, 1, 0.1, ?, ?, ?, 0, ?)",
                               [(job_id, str(r.key), str(r.key), r.model, r.tokens_in, r.tokens_out, r.cost, stamp)
                                for r in results])
                sql, params = subject.added(results, at=at, dialect=dialect)
                db.executemany(sql, params)
                written += len(results)
            if job_id % 500 == 0:
                db.commit()
                print(f"  {written:,} results", flush=True)
        db.execute("ANALYZE")
    print(f"filled {written:,} results in {time.perf_counter() - started:.0f}s")


async def run(path: Path, repeat: int) -> None:
    url = f"sqlite+aiosqlite:///{path}"
    database = Database(url)
    app = create_app(Settings(database_url=url, log_level="WARNING", auth_required=False), database)
    end = START + timedelta(days=DAYS)
    cases = [
        ("by day, all history", {"group_by": "day"}),
        ("by hour and model, the last 7 days", {"group_by": "hour,model",
                                               "since": (end - timedelta(days=7)).isoformat()}),
        ("by workflow and key, the last 30 days", {"group_by": "workflow,key",
                                                  "since": (end - timedelta(days=30)).isoformat()}),
        ("one workflow by model, all history", {"group_by": "model", "workflow": "wf-03"}),
    ]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as client:
        for label, params in cases:
            p50, p95, body = await timed(client, params, repeat, path="/api/v1/usage")
            groups = body["total"]
            print(f"{label:<40} p50 {p50:7.2f} ms   p95 {p95:7.2f} ms   ({groups:,} groups)", flush=True)
    await database.dispose()
    with sqlite3.connect(path) as db:
        results = db.execute("SELECT count(*) FROM job_items").fetchone()[0]
        hours = db.execute("SELECT count(*) FROM usage_hours").fetchone()[0]
    print(f"\n{results:,} results stored, {hours:,} usage hours")
    print(f"machine: {_cpu_model()} cores={_cores()} sqlite={sqlite3.sqlite_version}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--db", type=Path, default=Path(__file__).parent / ".data" / "usage.db")
    args = parser.parse_args()
    fill(args.db, args.results)
    asyncio.run(run(args.db, args.repeat))


if __name__ == "__main__":
    main()
