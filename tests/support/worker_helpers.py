"""Helpers for worker tests: a workflow over a CSV, the platform with a runner attached, and polling."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import polars as pl

from api_server.main import create_app
from core.db import Database
from core.gateway_router import process_router
from core.queue import JobQueue
from core.settings import Settings
from engine.gateway.router import Router
from engine.spec import load_spec
from engine.spec.models import WorkflowSpec
from tests.support.engine_helpers import SPEC, expected_summary, read_csv_text, tickets
from tests.support.keys import bearer, new_key
from worker.inprocess import InProcessRunner

T = TypeVar("T")

def workflow_yaml(in_flight: int = 8) -> str:
    """The tests' workflow: triage tickets.csv (under DATA_DIR) with the model `fake`."""
    return SPEC.format(source="{kind: csv, path: tickets.csv, key: id}", in_flight=in_flight, api=2, content=1,
                       extra="model: {name: fake}")


def workflow_spec(in_flight: int = 8) -> WorkflowSpec:
    """The same workflow, parsed (to compute each row's expected answer)."""
    return load_spec(workflow_yaml(in_flight)).spec


def write_gateway(data_dir: Path, upstream_url: str, *, safe_rps: float | None = None,
                  price: tuple[float, float] | None = None, extra_models: tuple[str, ...] = (),
                  batch: str | None = None) -> Path:
    """A gateway config with one model, `fake`, served by the test's fake upstream (price: per 1M in, out), and
    `extra_models` on the same upstream (each sent upstream as `<name>-model`); beside DATA_DIR, not in it (a
    server refuses to start with its gateway config where workflows may read it). `batch`: the `fake` model's
    batch support (a YAML flow mapping)."""
    limit = f", safe_rps: {safe_rps}" if safe_rps else ""
    if price is not None:
        limit += f", price: {{input: {price[0]}, output: {price[1]}}}"
    path = data_dir.parent / f".{data_dir.name}.gateway.yaml"
    root = upstream_url.removesuffix("/v1")  # a channel's api_path (/v1/chat/completions) is added to it
    path.write_text(f"channels:\n  fake: {{base_url: '{root}'}}\n"
                    f"models:\n  - {{name: fake, model: fake-model, channel: fake, timeout: 5{limit}"
                    f"{f', batch: {batch}' if batch else ''}}}\n"
                    + "".join(f"  - {{name: {name}, model: {name}-model, channel: fake, timeout: 5{limit}}}\n"
                              for name in extra_models))
    return path


def write_tickets(data_dir: Path, count: int) -> pl.DataFrame:
    """tickets.csv with `count` rows (every 10th has an empty body and is skipped)."""
    frame = tickets(count)
    data_dir.mkdir(parents=True, exist_ok=True)
    frame.write_csv(data_dir / "tickets.csv")
    return frame


def check_output(path: Path, frame: pl.DataFrame, spec: WorkflowSpec, *, complete: bool = True) -> int:
    """Every answered row of the output carries its own answer, no row is repeated; returns rows answered."""
    output = read_csv_text(path)
    assert output["id"].to_list() == frame["id"].to_list()  # every row once, in order
    answered = 0
    for row in output.iter_rows(named=True):
        if row["body"] is None:
            assert row["ai_summary"] is None
            continue
        if row["ai_summary"] is None:
            assert not complete, f"row {row['id']} has no answer"
            continue
        assert row["ai_summary"] == expected_summary(spec, row), f"row {row['id']} holds another row's answer"
        answered += 1
    return answered


def read_bytes(path: Path) -> bytes:
    """A file's bytes (sync on purpose: tests read small outputs)."""
    return path.read_bytes()


async def wait_for(probe: Callable[[], Awaitable[T | None]], *, within_s: float = 30.0,
                   what: str = "condition") -> T:
    """Poll `probe` until it returns something truthy (no fixed sleeps), or fail after `within_s`."""
    deadline = time.monotonic() + within_s
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within_s}s waiting for {what}")
        await asyncio.sleep(0.02)


async def job_of(http: httpx.AsyncClient, job_id: int) -> dict[str, Any]:
    """GET a job."""
    response = await http.get(f"/api/v1/jobs/{job_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def wait_status(http: httpx.AsyncClient, job_id: int, *statuses: str,
                      within_s: float = 30.0) -> dict[str, Any]:
    """Poll a job until it has one of `statuses`."""
    async def probe() -> dict[str, Any] | None:
        job = await job_of(http, job_id)
        return job if job["status"] in statuses else None

    return await wait_for(probe, within_s=within_s, what=f"job {job_id} to be {'/'.join(statuses)}")


async def running_with_rows_done(http: httpx.AsyncClient, job_id: int, rows: int = 20) -> dict[str, Any]:
    """Wait until the job is running and at least `rows` of it are done."""
    async def probe() -> dict[str, Any] | None:
        job = await job_of(http, job_id)
        return job if job["status"] == "running" and job["counts"]["done"] >= rows else None

    return await wait_for(probe, what=f"job {job_id} to be running with {rows} rows done")


async def all_pages(http: httpx.AsyncClient, url: str, **query: str) -> list[dict[str, Any]]:
    """Every item of a cursor-paged list (small pages, so paging itself is exercised)."""
    items: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        params = {"limit": "37", **query, **({"after": after} if after else {})}
        page = (await http.get(url, params=params)).json()
        items += page["items"]
        if not page["has_more"]:
            return items
        after = page["next"]


@dataclass
class Platform:
    """The API (called in process) with a job runner attached."""

    http: httpx.AsyncClient
    settings: Settings
    database: Database
    router: Router
    queue: JobQueue
    app: Any

    async def start_job(self, **body: Any) -> int:
        """POST the tests' workflow (once) and a job of it; returns the job id."""
        stored = await self.http.post("/api/v1/workflows", json={"yaml": body.pop("yaml", workflow_yaml())})
        assert stored.status_code in (200, 201), stored.text
        response = await self.http.post("/api/v1/jobs", json={"workflow": "triage", **body})
        assert response.status_code == 201, response.text
        job_id: int = response.json()["id"]
        return job_id


@asynccontextmanager
async def platform(*, database_url: str, data_dir: Path, upstream_url: str, queue: JobQueue | None = None,
                   trace_upstream: bool = False, **overrides: Any) -> AsyncIterator[Platform]:
    """The app over `database_url` with the in-process runner (or `queue`) and the fake upstream as model."""
    gateway = write_gateway(data_dir, upstream_url, price=overrides.pop("price", None),
                            extra_models=overrides.pop("extra_models", ()), batch=overrides.pop("batch", None))
    settings = Settings(database_url=database_url, redis_url=overrides.pop("redis_url", None), data_dir=data_dir,
                        gateway_config=gateway, **overrides)
    database = Database(database_url)
    router = process_router(settings, trace_upstream=trace_upstream)
    runner = queue or InProcessRunner(database, router, settings)
    app = create_app(settings, database, router)
    app.state.queue = runner
    await runner.start()
    try:
        key = await new_key(database, name="platform tests")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://rowloom.test",
                                     headers=bearer(key)) as http:
            yield Platform(http, settings, database, router, runner, app)
    finally:
        await runner.aclose()
        if app.state.budgets is not None:
            await app.state.budgets.aclose()
        await router.aclose()
        await database.dispose()


def start_worker_process(settings: Settings, log: Path, **env: str) -> subprocess.Popen[bytes]:
    """`rowloom worker` with the platform's settings (a 2 s lease, the reaper every second), its output in `log`."""
    variables = {**os.environ, "DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url or "",
                 "QUEUE_NAME": settings.queue_name, "GATEWAY_CONFIG": str(settings.gateway_config),
                 "DATA_DIR": str(settings.data_dir), "JOB_LEASE_S": "2", "REAPER_INTERVAL_S": "1", "LOG_LEVEL": "INFO",
                 **env}
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "rowloom.cli", "worker"], env=variables, stdout=out,
                                stderr=subprocess.STDOUT)
