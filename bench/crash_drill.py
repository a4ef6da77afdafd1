#!/usr/bin/env python3
"""Crash drill: SIGKILL the worker running a job part-way, let another worker resume it, count what was bought twice.

    .venv/bin/python -m bench.crash_drill [--rows 20000] [--in-flight 64] [--latency-ms 50] [--kill-at 0.36]
        [--lease-s 5] [--redis-url redis://127.0.0.1:6379/14] [--fakellm ../shared/fakellm/fakellm.py]

Two `rowloom worker` processes and `rowloom serve` on SQLite, fakellm upstream. When the job has `--kill-at` of
its rows done, the worker holding it is killed with SIGKILL; the other claims it once the lease expires. Prints
the rows in flight at the kill (fakellm's in-flight count), the prompts fakellm answered twice, the time until
the other worker resumed the job and until it completed, and whether the output has every row answered once.
Answers that came back before the kill but were not yet durable are the ones bought twice: with group commit
they are at most those in flight at the kill.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import polars as pl

from bench._fakellm import fakellm, reset, run_parser, stats
from bench.e2e import gateway, platform_processes, start_job, wait_done
from bench.engine_throughput import make_inputs

POLL_S = 0.02


def poll_job(http: Any, job_id: int) -> dict[str, Any]:
    job: dict[str, Any] = http.get(f"/api/v1/jobs/{job_id}").json()
    return job


def main() -> None:
    parser = run_parser(__doc__.splitlines()[0], rows=20_000, latency_ms=50, in_flight=64, redis=True)
    parser.add_argument("--kill-at", type=float, default=0.36)
    parser.add_argument("--lease-s", type=float, default=5)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="rowloom-crash-"))
    env = {**os.environ, "REDIS_URL": args.redis_url, "QUEUE_NAME": f"rowloom-bench:{uuid.uuid4().hex[:8]}",
           "DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'rowloom.db'}", "DATA_DIR": str(folder),
           "LOG_LEVEL": "WARNING", "AUTH_REQUIRED": "false", "WORKER_MAX_JOBS": "1",
           "JOB_LEASE_S": str(args.lease_s), "REAPER_INTERVAL_S": str(max(0.5, args.lease_s / 5))}
    try:
        with fakellm(args.fakellm, "--latency-ms", str(args.latency_ms)) as base_url:
            source = make_inputs(folder, args.rows)["xlsx"]
            env["GATEWAY_CONFIG"] = str(gateway(folder, base_url, None))
            reset(base_url)
            with platform_processes(folder, env, workers=2) as (http, workers):
                job_id = start_job(http, "crash", source, args.in_flight)
                while (job := poll_job(http, job_id))["counts"]["done"] < args.kill_at * args.rows:
                    time.sleep(POLL_S)
                holder = job["worker_id"]
                victim = next(w for w in workers if holder.endswith(f":{w.pid}"))
                in_flight = stats(base_url)["inflight"]
                os.kill(victim.pid, signal.SIGKILL)
                killed_at, durable_at_kill = time.perf_counter(), job["counts"]["done"]
                while (job := poll_job(http, job_id))["worker_id"] == holder:
                    time.sleep(POLL_S)
                resumed_s = time.perf_counter() - killed_at
                job = wait_done(http, job_id)
                completed_s = time.perf_counter() - killed_at
            seen = stats(base_url)
        output = pl.read_excel(job["output"])
        complete = output.height == args.rows and output["ai_summary"].null_count() == 0
        print(f"{args.rows:,}-row xlsx, in_flight {args.in_flight}, fakellm latency {args.latency_ms:g} ms, lease "
              f"{args.lease_s:g} s; killed at {durable_at_kill:,} rows done ({durable_at_kill / args.rows:.0%}) with "
              f"{in_flight} requests in flight at the upstream", flush=True)
        print(f"prompts answered twice: {seen['duplicate_ok_extra_requests']} (rows in flight at the kill: "
              f"{in_flight}); resumed by the other worker {resumed_s:.1f}s after the kill, completed "
              f"{completed_s:.1f}s after it; {job['counts']['done']:,} done, {job['counts']['failed']} failed; "
              f"output {'complete, every row answered' if complete else 'INCOMPLETE'}; upstream requests "
              f"{seen['requests']:,} for {args.rows:,} rows", flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
