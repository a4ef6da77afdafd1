"""The arq worker: `rowloom worker` runs it with the project's settings (REDIS_URL is required)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from arq import Retry, cron
from arq.worker import Worker, func

from core.db import Database
from core.gateway_router import process_router
from core.gateway_stats import publish_stats, snapshot
from core.logs import configure_logging
from core.queue import EXECUTE_JOB, ArqQueue
from core.redis_retry import patient_settings
from core.settings import Settings
from core.telemetry import trace_upstream
from engine import event_loop
from engine.gateway import Router
from worker.constants import CAP_WAIT_S, JOB_TIMEOUT_S, MAX_CLAIM_TRIES, POLL_DELAY_S
from worker.executor import Outcome, WorkerContext, execute_job
from worker.reaper import reap_round
from worker.tracing import setup_tracing

log = logging.getLogger(__name__)


async def execute_job_task(ctx: dict[str, Any], job_id: int) -> str:
    """arq function: run one job; at the global cap or when it was queued again meanwhile, run the entry again."""
    outcome = await execute_job(ctx["rowloom"], job_id)
    if outcome is Outcome.WAIT:
        await asyncio.sleep(CAP_WAIT_S)  # this slot could start nothing else while the cap holds
    if outcome is not Outcome.FINISHED:
        raise Retry()  # no defer: the entry keeps its score, and so its priority
    return outcome.value


async def reap_task(ctx: dict[str, Any]) -> None:
    """arq cron: re-queue jobs whose lease expired and re-offer jobs left waiting."""
    rowloom: WorkerContext = ctx["rowloom"]
    if isinstance(rowloom.client, Router):  # so the API's /metrics shows this worker's upstream calls
        await publish_stats(ctx["redis"], process=rowloom.worker_id, models=snapshot(rowloom.client))
    await reap_round(rowloom, ctx["queue"])


class RowloomWorker(Worker):
    """arq's Worker, closing cleanly when a job or cron run is caught mid-flight."""

    async def close(self) -> None:
        """Cancel what still runs and wait for it, then arq's close (shutdown hooks, pool).

        arq's own close gathers the tasks it has just cancelled, so one caught mid-flight (a reaper run, a
        job) made it raise CancelledError and skip the shutdown hooks.
        """
        for task in self.tasks.values():
            if not task.cancelling():  # after SIGTERM arq has cancelled them: a job is handing itself back
                task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        self.tasks.clear()  # all ended: arq's close has nothing left to gather
        await super().close()


def build_worker(settings: Settings, **overrides: Any) -> Worker:
    """An arq Worker wired to the settings' database, gateway and Redis."""
    if not settings.redis_url:
        raise SystemExit("REDIS_URL is not set: arq workers need Redis (without it, `rowloom serve` runs "
                         "jobs in process)")

    async def startup(ctx: dict[str, Any]) -> None:
        setup_tracing()
        router = process_router(settings, trace_upstream=trace_upstream(settings.trace_upstream_calls),
                             redis_patience_s=None)  # a job waits for Redis rather than failing its rows
        ctx["rowloom"] = await WorkerContext.open(Database(settings.database_url), router, settings, "arq")
        ctx["queue"] = ArqQueue(settings.redis_url or "", options["queue_name"], patience_s=None)
        log.info("worker %s ready (max_jobs %s)", ctx["rowloom"].worker_id, settings.worker_max_jobs)

    async def shutdown(ctx: dict[str, Any]) -> None:
        rowloom: WorkerContext | None = ctx.get("rowloom")
        if rowloom is not None:
            await rowloom.aclose()
            await rowloom.client.aclose()
            await rowloom.database.dispose()
            await ctx["queue"].aclose()

    every = max(1, round(settings.reaper_interval_s))
    options: dict[str, Any] = {
        "functions": [func(execute_job_task, name=EXECUTE_JOB, timeout=JOB_TIMEOUT_S, max_tries=MAX_CLAIM_TRIES,
                           keep_result=0)],
        "cron_jobs": [cron(reap_task, second=set(range(0, 60, every)), run_at_startup=True, keep_result=0)],
        "queue_name": settings.queue_name, "redis_settings": patient_settings(settings.redis_url),
        "max_jobs": settings.worker_max_jobs, "job_timeout": JOB_TIMEOUT_S, "keep_result": 0,
        "poll_delay": POLL_DELAY_S,
        "on_startup": startup, "on_shutdown": shutdown,
    }
    options |= overrides
    return RowloomWorker(**options)


def run_worker(settings: Settings) -> None:
    """Run an arq worker until SIGINT/SIGTERM (running jobs are re-queued to resume elsewhere)."""

    configure_logging(settings)  # no log line carries a secret a job resolved

    async def main() -> None:
        worker = build_worker(settings)  # inside the loop: arq binds the running loop and its signal handlers
        try:
            await worker.async_run()
        except asyncio.CancelledError:  # SIGINT/SIGTERM: arq cancelled the running jobs and its main task
            pass
        finally:
            await worker.close()

    event_loop.run(main())  # uvloop and the engine's GC tuning, as for `rowloom run`
