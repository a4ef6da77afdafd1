"""The reaper's round, the same for arq's cron and the in-process runner: expired leases, waiting jobs, budgets."""

from __future__ import annotations

from core.budgets.resume import resume_for_budgets
from core.outages import quiet_outage
from core.queue import JobQueue
from worker.executor import WorkerContext
from worker.job_batches import stop_parked
from worker.lease import reap


async def reap_round(ctx: WorkerContext, queue: JobQueue) -> None:
    """Cancel the provider batches of parked jobs cancelled or paused, re-queue jobs whose lease expired (or fail
    those that keep killing their workers), re-offer jobs left queued and parked jobs due a poll, and resume jobs a
    budget paused once it has room. An outage of the database or Redis passes
    quietly: the next round tries again."""
    with quiet_outage():
        await stop_parked(ctx.database, ctx.batches)
        await reap(ctx.database, queue, lease_s=ctx.settings.job_lease_s,
                   max_lost_leases=ctx.settings.max_crashed_attempts)
        if ctx.budgets is not None:
            await resume_for_budgets(ctx.database, queue, ctx.budgets)
