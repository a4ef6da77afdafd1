#!/usr/bin/env python3
"""The whole path: API -> arq -> worker process(es) -> fakellm, for a 20,000-row xlsx job at in_flight 256.

    .venv/bin/python -m bench.e2e [--rows 20000] [--latency-ms 100] [--in-flight 256]
        [--redis-url redis://127.0.0.1:6379/14] [--database-url sqlite+aiosqlite:///...]
        [--shared-rps 100] [--shared-rows 1500] [--fakellm ../shared/fakellm/fakellm.py]

Part 1 prints rows/s of the job (claimed -> completed, from its record, and POST -> completed as a user
sees it) against the ceiling in_flight / latency and against the engine alone (`bench.engine_throughput`'s
run, same file, same process kind). Part 2 runs two workers with one job each, both on one model with
`safe_rps` set, and prints the upstream's busiest 1-second window (fakellm's peak_rps_1s) and its mean rate.
Needs Redis; the database defaults to a SQLite file in a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import polars as pl

from bench._fakellm import (
    FakeLLM,
    cpu_seconds_with_children,
    fakellm,
    free_port,
    own_cpu_seconds,
    reset,
    run_parser,
    stats,
    wait_until_up,
)
from bench.engine_throughput import SPEC, make_inputs, one_run
from engine import event_loop

ROWLOOM = [sys.executable, "-m", "rowloom.cli"]


def gateway(folder: Path, base_url: str, safe_rps: float | None) -> Path:
    path = folder.parent / f"{folder.name}-gateway-{safe_rps or 'free'}.yaml"  # beside DATA_DIR, not in it
    limit = f", safe_rps: {safe_rps}" if safe_rps else ""
    root = base_url.removesuffix("/v1")  # channels take the server's root; api_path adds /v1/chat/completions
    path.write_text(f"channels:\n  fakellm: {{base_url: '{root}'}}\n"
                    f"models:\n  - {{name: fake, model: fake-small, channel: fakellm{limit}}}\n")
    return path


def remove_run_folder(folder: Path) -> None:
    """A run's temporary folder (DATA_DIR), and its database and gateway configs beside it."""
    shutil.rmtree(folder, ignore_errors=True)
    for beside in folder.parent.glob(f"{folder.name}[-.]*"):
        beside.unlink(missing_ok=True)


@contextmanager
def platform(folder: Path, env: dict[str, str], workers: int) -> Iterator[httpx.Client]:
    """`rowloom serve` (API only: REDIS_URL is set) and `workers` x `rowloom worker`, as separate processes."""
    with platform_processes(folder, env, workers) as (http, _):
        yield http


@contextmanager
def platform_processes(folder: Path, env: dict[str, str], workers: int
                       ) -> Iterator[tuple[httpx.Client, list[subprocess.Popen[bytes]]]]:
    """As `platform`, also handing back the worker processes (to kill one)."""
    port = free_port()
    log = (folder / "platform.log").open("ab")
    subprocess.run([*ROWLOOM, "migrate"], env=env, check=True, stdout=log, stderr=subprocess.STDOUT)
    processes = [subprocess.Popen([*ROWLOOM, "serve", "--no-migrate", "--port", str(port)], env=env, stdout=log,
                                  stderr=subprocess.STDOUT)]
    processes += [subprocess.Popen([*ROWLOOM, "worker"], env=env, stdout=log, stderr=subprocess.STDOUT)
                  for _ in range(workers)]
    try:
        wait_until_up(f"http://127.0.0.1:{port}/ping")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            yield http, processes[1:]
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            process.wait(timeout=30)
        log.close()


def start_job(http: httpx.Client, name: str, path: Path, in_flight: int, *, cache: bool = True) -> int:
    spec = SPEC.format(kind="excel", path=path, in_flight=in_flight, out=f"{name}.out.xlsx")  # in the job's folder
    spec += "" if cache else "cache: {mode: off}\n"  # the engine-alone run has no answer cache
    http.post("/api/v1/workflows", json={"yaml": spec.replace("name: bench", f"name: {name}")}).raise_for_status()
    response = http.post("/api/v1/jobs", json={"workflow": name})
    response.raise_for_status()
    job_id: int = response.json()["id"]
    return job_id


def wait_done(http: httpx.Client, job_id: int) -> dict[str, Any]:
    while True:
        job: dict[str, Any] = http.get(f"/api/v1/jobs/{job_id}").json()
        if job["status"] in {"completed", "failed", "cancelled"}:
            if job["status"] != "completed":
                raise SystemExit(f"job {job_id} ended {job['status']}: {job['error']}")
            if job["counts"]["failed"]:
                errors = http.get(f"/api/v1/jobs/{job_id}/errors", params={"limit": 3}).json()["items"]
                print(f"job {job_id}: {job['counts']['failed']} rows failed, e.g. {errors}", flush=True)
            return job
        time.sleep(0.1)


def run_seconds(job: dict[str, Any]) -> float:
    started, completed = (datetime.fromisoformat(job[k]) for k in ("started_at", "completed_at"))
    return (completed - started).total_seconds()


def part_one(args: argparse.Namespace, folder: Path, base_url: FakeLLM, env: dict[str, str]) -> None:
    source = make_inputs(folder, args.rows)["xlsx"]
    ceiling = args.in_flight / (args.latency_ms / 1000) if args.latency_ms else float("inf")
    reset(base_url)
    cpu_before = own_cpu_seconds()
    done, elapsed, _ = event_loop.run(one_run(base_url, "xlsx", source, args.in_flight, folder))
    alone_cpu_ms = (own_cpu_seconds() - cpu_before) / done * 1000
    alone = done / elapsed
    print(f"engine alone   : {done:,} rows in {elapsed:6.2f}s = {alone:6.0f} rows/s = {alone / ceiling:6.1%} "
          f"of ceiling {ceiling:,.0f}/s; CPU {alone_cpu_ms:.3f} ms a row", flush=True)
    reset(base_url)
    env = env | {"GATEWAY_CONFIG": str(gateway(folder, base_url, None)), "WORKER_MAX_JOBS": "1"}
    with platform_processes(folder, env, workers=1) as (http, [worker]):
        cpu_before = cpu_seconds_with_children(worker.pid)
        posted = time.perf_counter()
        job = wait_done(http, start_job(http, "e2e", source, args.in_flight, cache=args.cache == "on"))
        seen_by_user = time.perf_counter() - posted
        worker_cpu_ms = (cpu_seconds_with_children(worker.pid) - cpu_before) / job["counts"]["done"] * 1000
    seen = stats(base_url)
    rows = job["counts"]["done"]
    output = pl.read_excel(folder / job["output"])  # the record names it under DATA_DIR
    missing = output["ai_summary"].null_count()
    if output.height != args.rows or missing or job["counts"]["failed"]:
        raise SystemExit(f"the output is incomplete: {output.height} rows, {missing} unanswered; {job['counts']}")
    rate = rows / run_seconds(job)
    print(f"API->arq->worker: {rows:,} rows in {run_seconds(job):6.2f}s (claimed -> completed, output written) = "
          f"{rate:6.0f} rows/s = {rate / ceiling:6.1%} of ceiling, {rate / alone:6.1%} of the engine alone; "
          f"POST -> completed seen by a poller: {seen_by_user:.2f}s ({rows / seen_by_user:.0f} rows/s); "
          f"upstream duplicates {seen['duplicate_ok_extra_requests']}, peak in flight {seen['peak_inflight']}; "
          f"worker CPU {worker_cpu_ms:.3f} ms a row = {worker_cpu_ms / alone_cpu_ms:.0%} of the engine alone's",
          flush=True)


def part_two(args: argparse.Namespace, folder: Path, base_url: FakeLLM, env: dict[str, str]) -> None:
    (folder / "shared").mkdir()
    source = make_inputs(folder / "shared", args.shared_rows)["xlsx"]
    reset(base_url)
    shared_env = env | {"GATEWAY_CONFIG": str(gateway(folder, base_url, args.shared_rps)), "WORKER_MAX_JOBS": "1"}
    with platform(folder, shared_env, workers=2) as http:
        started = time.perf_counter()
        ids = [start_job(http, f"shared-{i}", source, args.in_flight) for i in range(2)]
        jobs = [wait_done(http, job_id) for job_id in ids]
        elapsed = time.perf_counter() - started
    seen = stats(base_url)
    workers = {job["worker_id"] for job in jobs}
    print(f"2 workers, safe_rps {args.shared_rps:g}: {sum(j['counts']['done'] for j in jobs):,} rows by "
          f"{len(workers)} workers in {elapsed:.1f}s; upstream: {seen['requests']:,} requests, mean "
          f"{seen['requests'] / elapsed:.1f}/s; busiest 1 s window at the upstream {seen['peak_rps_1s']} "
          f"(limit {args.shared_rps:g}); 429s {seen['by_status'].get('429', 0)}", flush=True)


def main() -> None:
    parser = run_parser(__doc__, rows=20_000, latency_ms=100, in_flight=256, redis=True)
    parser.add_argument("--database-url", help="default: a SQLite file in the temporary folder")
    parser.add_argument("--shared-rps", type=float, default=100)
    parser.add_argument("--shared-rows", type=int, default=1_500)
    parser.add_argument("--skip", choices=["one", "two"], help="skip a part")
    parser.add_argument("--cache", choices=["on", "off"], default="on",
                        help="the job's answer cache (every row a miss); the engine-alone run has none")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="rowloom-e2e-"))
    env = {**os.environ, "REDIS_URL": args.redis_url, "QUEUE_NAME": f"rowloom-bench:{uuid.uuid4().hex[:8]}",
           "DATABASE_URL": args.database_url or f"sqlite+aiosqlite:///{folder}.db",  # beside DATA_DIR, not in it
           "DATA_DIR": str(folder), "LOG_LEVEL": "WARNING", "AUTH_REQUIRED": "false"}  # on loopback
    try:
        with fakellm(args.fakellm, "--latency-ms", str(args.latency_ms)) as base_url:
            print(f"{args.rows:,}-row xlsx, fakellm latency {args.latency_ms:g} ms, in_flight {args.in_flight}, "
                  f"database {env['DATABASE_URL'].split(':')[0]}", flush=True)
            if args.skip != "one":
                part_one(args, folder, base_url, env)
            if args.skip != "two":
                part_two(args, folder, base_url, env)
    finally:
        remove_run_folder(folder)


if __name__ == "__main__":
    main()
