#!/usr/bin/env python3
"""A soak: mixed API load at ~50 requests/s for 10 minutes while a 2,000-row job starts every 20 s.

    .venv/bin/python -m bench.soak [--minutes 10] [--rate 50] [--job-every-s 20] [--job-rows 2000]
        [--mysql-url mysql+asyncmy://root@127.0.0.1:3306/rowloom_soak] [--redis-url redis://127.0.0.1:6379/13]
        [--fakellm ../shared/fakellm/fakellm.py] [--latency-ms 50]

`rowloom serve` (MariaDB, Redis) and one `rowloom worker`, as separate processes, against fakellm. The load is
open-loop (a request every 1/rate s, whatever the answers' pace), from one aiohttp session: job lists and pages,
a job, its events and items, usage, workflows, /health, and estimates of 1,000 to 20,000 rows (~1 in 20). Prints
p50/p95/p99/max a kind of request, the errors (any answer but 2xx), each process's RSS at minute 1 and at the
end, and how long each job waited between its POST and its claim.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import tempfile
import time
import uuid
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import polars as pl
from sqlalchemy import text

from bench._fakellm import DEFAULT, fakellm
from bench.e2e import gateway, platform_processes, remove_run_folder
from core.db import Database

ESTIMATE_ROWS = (1_000, 5_000, 20_000)
MIX = [  # (kind, weight)
    ("jobs list", 25), ("job", 20), ("job events", 15), ("job items", 10), ("usage", 10), ("workflows", 5),
    ("health", 10), ("estimate", 5)]
SPEC = """name: {name}
source: {{kind: csv, path: {path}, key: id}}
columns: {{input: [subject, body], output: {{category: ai_category}}}}
prompt: {{template: "Classify this ticket: {{record_json}}", required_fields: [category]}}
validation: {{category: [technical, business, general]}}
model: {{name: fake}}
concurrency: {{in_flight: 64}}
sink: {{kind: csv, path: {out}}}
"""


def tickets(path: Path, rows: int, seed: int) -> None:
    rng = random.Random(seed)
    pl.DataFrame({"id": list(range(rows)),
                  "subject": [f"ticket {seed}-{i}: " + " ".join(rng.choice(("printer", "invoice", "login", "refund",
                                                                             "crash", "upgrade")) for _ in range(4))
                              for i in range(rows)],
                  "body": [" ".join(rng.choice(("please", "help", "the", "system", "fails", "when", "I", "pay",
                                                "open", "save")) for _ in range(rng.randrange(20, 60)))
                           for _ in range(rows)]}).write_csv(path)


async def fresh_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    server = Database(url.rsplit("/", 1)[0] + "/mysql")
    async with server.engine.begin() as connection:
        await connection.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        await connection.execute(text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4"))
    await server.dispose()


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (the estimate processes), in MB."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(entry.name) == pid or int(stat[1]) == pid:
                total += int(stat[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    return total / 2**20


class Load:
    """The open-loop load and what it saw."""

    def __init__(self, session: aiohttp.ClientSession, base: str, workflows: list[str]) -> None:
        self.session = session
        self.base = base
        self.workflows = workflows
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, list[str]] = defaultdict(list)
        self.jobs: list[int] = []
        self.rng = random.Random(7)

    async def call(self, kind: str, method: str, path: str, **options: Any) -> Any:
        started = time.perf_counter()
        try:
            async with self.session.request(method, self.base + path, **options) as answer:
                body = await answer.json(content_type=None)
                ok = 200 <= answer.status < 300
                if not ok:
                    self.errors[kind].append(f"{answer.status} {str(body)[:200]}")
        except Exception as exc:  # a refused or broken connection is an error the soak counts
            self.errors[kind].append(f"{type(exc).__name__}: {exc}")
            return None
        self.latencies[kind].append((time.perf_counter() - started) * 1000)
        return body if ok else None

    async def one(self) -> None:
        kind = self.rng.choices([k for k, _ in MIX], [w for _, w in MIX])[0]
        job = self.rng.choice(self.jobs) if self.jobs else None
        if kind in {"job", "job events", "job items"} and job is None:
            kind = "jobs list"
        if kind == "jobs list":
            await self.call(kind, "GET", "/api/v1/jobs", params={"limit": "20"})
        elif kind == "job":
            await self.call(kind, "GET", f"/api/v1/jobs/{job}")
        elif kind == "job events":
            await self.call(kind, "GET", f"/api/v1/jobs/{job}/events", params={"limit": "50"})
        elif kind == "job items":
            await self.call(kind, "GET", f"/api/v1/jobs/{job}/items", params={"limit": "50"})
        elif kind == "usage":
            await self.call(kind, "GET", "/api/v1/usage", params={"group_by": "day,model"})
        elif kind == "workflows":
            await self.call(kind, "GET", "/api/v1/workflows")
        elif kind == "health":
            await self.call(kind, "GET", "/health")
        else:
            rows = self.rng.choice(ESTIMATE_ROWS)
            await self.call(f"estimate {rows:,} rows", "POST", "/api/v1/jobs/estimate",
                            json={"workflow": f"estimate-{rows}"})

    async def start_job(self, n: int) -> None:
        body = await self.call("POST job", "POST", "/api/v1/jobs",
                               json={"workflow": "soak", "name": f"soak {n}"})
        if body is not None:
            self.jobs.append(body["id"])


async def soak(args: argparse.Namespace, base: str, processes: dict[str, int]) -> None:
    seconds = args.minutes * 60
    rss: dict[str, list[tuple[float, float]]] = defaultdict(list)
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        load = Load(session, base, [])
        started = time.monotonic()
        pending: set[asyncio.Task[None]] = set()
        next_job = started
        n = 0
        tick = 0
        while (now := time.monotonic()) - started < seconds:
            if now >= next_job:
                pending.add(asyncio.create_task(load.start_job(n)))
                n += 1
                next_job += args.job_every_s
            pending.add(asyncio.create_task(load.one()))
            if tick % (args.rate * 10) == 0:
                for name, pid in processes.items():
                    rss[name].append((now - started, rss_mb(pid)))
            tick += 1
            pending = {t for t in pending if not t.done()}
            await asyncio.sleep(max(0.0, started + tick / args.rate - time.monotonic()))
        await asyncio.gather(*pending)
        await asyncio.sleep(args.job_every_s)  # the last job: claimed and done
        claims = []
        for job_id in load.jobs:
            events = await load.call("claims", "GET", f"/api/v1/jobs/{job_id}/events", params={"limit": "5"})
            stamps = {e["kind"]: datetime.fromisoformat(e["created_at"]) for e in reversed(events["items"])}
            if "claimed" in stamps:
                claims.append((stamps["claimed"] - stamps["created"]).total_seconds())
    report(load, rss, claims, len(load.jobs), args)


def report(load: Load, rss: dict[str, list[tuple[float, float]]], claims: list[float], jobs: int,
           args: argparse.Namespace) -> None:
    total = sum(len(v) for v in load.latencies.values())
    print(f"\n{total:,} requests in {args.minutes:g} min ({total / args.minutes / 60:.1f}/s), "
          f"{sum(len(v) for v in load.errors.values())} errors")
    print(f"{'request':<24}{'count':>7}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    reads = []
    for kind in sorted(load.latencies):
        values = sorted(load.latencies[kind])
        if not kind.startswith(("estimate", "POST", "claims")):
            reads += values
        print(f"{kind:<24}{len(values):>7}{statistics.median(values):>9.1f}{_pct(values, 95):>9.1f}"
              f"{_pct(values, 99):>9.1f}{values[-1]:>9.1f}")
    reads.sort()
    print(f"{'all reads':<24}{len(reads):>7}{statistics.median(reads):>9.1f}{_pct(reads, 95):>9.1f}"
          f"{_pct(reads, 99):>9.1f}{reads[-1]:>9.1f}")
    for kind, errors in load.errors.items():
        print(f"errors of {kind}: {len(errors)}, e.g. {errors[:2]}")
    for name, samples in rss.items():
        first = next((mb for at, mb in samples if at >= 60), samples[0][1])
        last = samples[-1][1]
        print(f"RSS {name}: {first:.0f} MB at minute 1, {last:.0f} MB at the end ({(last / first - 1):+.1%})")
    if claims:
        claims.sort()
        late = sum(1 for c in claims if c > 0.5)
        print(f"claims: {len(claims)} of {jobs} jobs; waited p50 {statistics.median(claims):.3f}s, max "
              f"{claims[-1]:.3f}s; {late} over 0.5 s")


def _pct(values: list[float], pct: int) -> float:
    return values[min(len(values) - 1, int(len(values) * pct / 100))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=int, default=50)
    parser.add_argument("--job-every-s", type=float, default=20)
    parser.add_argument("--job-rows", type=int, default=2_000)
    parser.add_argument("--mysql-url", default="mysql+asyncmy://root@127.0.0.1:3306/rowloom_soak")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--fakellm", type=Path, default=DEFAULT)
    parser.add_argument("--latency-ms", type=float, default=50)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="rowloom-soak-"))
    asyncio.run(fresh_database(args.mysql_url))
    env = {**os.environ, "REDIS_URL": args.redis_url, "QUEUE_NAME": f"rowloom-soak:{uuid.uuid4().hex[:8]}",
           "DATABASE_URL": args.mysql_url, "DATA_DIR": str(folder), "LOG_LEVEL": "WARNING",
           "AUTH_REQUIRED": "false"}  # on loopback
    try:
        with fakellm(args.fakellm, "--latency-ms", str(args.latency_ms)) as base_url:
            env["GATEWAY_CONFIG"] = str(gateway(folder, base_url, None))
            tickets(folder / "soak.csv", args.job_rows, 1)
            with platform_processes(folder, env, workers=1) as (http, workers):
                for rows in ESTIMATE_ROWS:
                    tickets(folder / f"estimate-{rows}.csv", rows, rows)
                    http.post("/api/v1/workflows", json={"yaml": SPEC.format(
                        name=f"estimate-{rows}", path=f"estimate-{rows}.csv", out=f"estimate-{rows}.out.csv")}
                              ).raise_for_status()
                http.post("/api/v1/workflows", json={"yaml": SPEC.format(name="soak", path="soak.csv",
                                                                          out="soak.out.csv")}).raise_for_status()
                port = http.base_url.port
                api = int(subprocess.run(["pgrep", "-f", f"serve --no-migrate --port {port}"], capture_output=True,
                                         text=True).stdout.split()[0])
                print(f"soak: {args.rate} requests/s for {args.minutes:g} min, a {args.job_rows:,}-row job every "
                      f"{args.job_every_s:g} s; MariaDB, Redis, one worker; fakellm {args.latency_ms:g} ms",
                      flush=True)
                asyncio.run(soak(args, str(http.base_url).rstrip("/"), {"API": api, "worker": workers[0].pid}))
    finally:
        remove_run_folder(folder)


if __name__ == "__main__":
    main()
