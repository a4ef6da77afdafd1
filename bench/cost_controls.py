#!/usr/bin/env python3
"""What budgets and the answer cache cost the engine: rows/s at one in_flight against fakellm, with both off,
then with a budget held through Redis for every request and the answer cache in the platform's database
(SQLite), then again with every answer in the cache.

    .venv/bin/python -m bench.cost_controls [--rows 20000] [--latency-ms 100] [--in-flight 256]
        [--redis-url redis://127.0.0.1:6379/14] [--repeats 2] [--fakellm ../shared/fakellm/fakellm.py]

Runs alternate (off, on, off, on, ...) so a noisy machine's drift falls on both alike. The "all cached" run
sends nothing: its CPU per row is the price of a lookup (key, query share, checks of the stored answer).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import uuid
from datetime import UTC
from pathlib import Path
from typing import Any

from bench._fakellm import fakellm, reset, run_parser, stats
from bench.engine_throughput import SPEC, _cpu_seconds, make_inputs
from core.answer_store import DbAnswerCache
from core.budgets.client import BudgetedClient
from core.budgets.guard import BudgetGuard
from core.budgets.redis_ledger import RedisLedger
from core.budgets.windows import subjects_of
from core.db import Database
from core.db.migrate import upgrade
from core.models import Budget, BudgetPeriod, BudgetScope
from engine import event_loop
from engine.gateway import ChatClient
from engine.gateway.config import load_gateway
from engine.gateway.openai_client import OpenAIClient
from engine.run import run_spec
from engine.spec import load_spec

GATEWAY = "models:\n  - {name: fake-small, model: fake-small, provider: mock, price: {input: 0.15, output: 0.6}}\n"


async def one_run(base_url: str, source: Path, folder: Path, in_flight: int, *, controls: dict[str, Any] | None,
                  label: str) -> tuple[int, int, float, float]:
    """(rows done, rows from the cache, seconds, CPU seconds) of one run."""
    work = folder / f"work-{label}"
    shutil.rmtree(work, ignore_errors=True)
    spec = load_spec(SPEC.format(kind="csv", path=source, in_flight=in_flight, out=folder / f"out-{label}.csv")
                     + ("" if controls else "cache: {mode: off}\n")).spec
    upstream = OpenAIClient(base_url, model="fake-small", max_connections=in_flight)
    client: ChatClient = upstream
    if controls and controls.get("guard"):
        client = BudgetedClient(upstream, controls["guard"], subjects_of(workflow="bench"))
    cpu = _cpu_seconds()
    started = time.perf_counter()
    try:
        outcome = await run_spec(spec, client=client, base_dir=folder, work_dir=work,
                                 cache=controls.get("cache") if controls else None)
        if controls and controls.get("cache"):
            await controls["cache"].flush()
    finally:
        await upstream.aclose()
    return outcome.progress.done, outcome.progress.cached, time.perf_counter() - started, _cpu_seconds() - cpu


async def open_controls(folder: Path, redis_url: str, which: str) -> dict[str, Any]:
    """A migrated SQLite platform database with a workflow budget far above the run's cost, its answer cache,
    and a guard whose ledger is in Redis."""
    database = Database(f"sqlite+aiosqlite:///{folder / 'platform.db'}")
    await upgrade(database.engine)
    async with database.session() as session:
        session.add(Budget(scope=BudgetScope.WORKFLOW, target="bench", period=BudgetPeriod.DAY, limit_usd=1e6))
        await session.commit()
    ledger = RedisLedger.from_url(redis_url, prefix=f"rowloom-bench:{uuid.uuid4().hex[:8]}:")
    guard = BudgetGuard(database, ledger, holder="bench", lease_s=30, zone=UTC, gateway=load_gateway(GATEWAY),
                        default_output_tokens=256)
    await guard.start()
    return {"database": database, "guard": guard if which in ("both", "budgets") else None,
            "cache": DbAnswerCache(database, scope="bench") if which in ("both", "cache") else None,
            "ledger guard": guard}


async def close_controls(controls: dict[str, Any]) -> None:
    """Write and settle what is pending, then close."""
    if controls["cache"] is not None:
        await controls["cache"].close()
    await controls["ledger guard"].aclose()
    await controls["database"].dispose()


async def compare(base_url: str, source: Path, folder: Path, args: argparse.Namespace) -> None:
    """Alternate runs with both off and both on (plus an all-cached run), and print each and the ratio."""
    ceiling = args.in_flight / (args.latency_ms / 1000)
    print(f"{args.rows:,} rows, in_flight {args.in_flight}, fakellm latency {args.latency_ms:g} ms "
          f"(ceiling {ceiling:,.0f} rows/s)")
    rates: dict[str, list[float]] = {"off": [], "on": []}
    for repeat in range(args.repeats):
        for mode in ("off", "on"):
            controls = None
            if mode == "on":
                (folder / f"on{repeat}").mkdir()
                controls = await open_controls(folder / f"on{repeat}", args.redis_url, args.controls)
            reset(base_url)
            done, _, elapsed, cpu = await one_run(base_url, source, folder, args.in_flight, controls=controls,
                                                  label=f"{mode}{repeat}")
            rates[mode].append(done / elapsed)
            print(f"  {'budgets + cache' if controls else 'both off':<16} {done:,} rows in {elapsed:6.2f}s = "
                  f"{done / elapsed:7.0f} rows/s ({done / elapsed / ceiling:.1%} of ceiling); CPU "
                  f"{cpu / done * 1e6:6.1f} µs/row; duplicates {stats(base_url)['duplicate_ok_extra_requests']}",
                  flush=True)
            if controls is not None and controls["cache"] is not None:
                again, cached, elapsed, cpu = await one_run(base_url, source, folder, args.in_flight,
                                                            controls=controls, label=f"again{repeat}")
                print(f"  {'all cached':<16} {again:,} rows in {elapsed:6.2f}s = {again / elapsed:7.0f} rows/s; "
                      f"CPU {cpu / again * 1e6:6.1f} µs/row ({cached:,} from the cache)", flush=True)
            if controls is not None:
                await close_controls(controls)
    off, on = (sum(rates[m]) / len(rates[m]) for m in ("off", "on"))
    print(f"budgets + cache on: {on:,.0f} rows/s against {off:,.0f} off = {on / off:.1%}")


def main() -> None:
    parser = run_parser(__doc__, rows=20_000, latency_ms=100, in_flight=256, redis=True)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--controls", choices=["both", "budgets", "cache"], default="both",
                        help="what is on in the runs with controls")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="rowloom-bench-"))
    try:
        source = make_inputs(folder, args.rows)["csv"]
        with fakellm(args.fakellm, "--latency-ms", str(args.latency_ms)) as base_url:
            event_loop.run(compare(base_url, source, folder, args))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
