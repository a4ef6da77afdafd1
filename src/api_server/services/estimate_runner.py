"""Estimates run off the API's event loop, so reading and tokenizing a big source holds up no other request.

With ESTIMATE_PROCESSES > 0 they run in that many child processes (each with its own event loop and database
connections, and a CPU of its own); with 0, in a thread of the API process, one at a time. Either way at most
that many run at once and the rest wait their turn.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from core.answer_store import DbAnswerCache
from core.db import Database
from core.job_secrets import job_connections, shown_to_users
from core.settings import Settings
from core.spec_policy import path_policy
from engine import Estimate, EstimateMemo, InputError, WorkflowSpec, estimate_run, open_source
from engine.gateway import Deployment


@dataclass(frozen=True)
class EstimateTask:
    """All an estimate needs, sent to whichever process makes it."""

    settings: dict[str, Any]  # Settings' fields: a child rebuilds them without reading its environment
    spec: WorkflowSpec
    deployments: list[Deployment]
    earlier_output_tokens: float | None
    cache_scope: str | None  # the answer cache to ask (None: every row is counted as sent)
    stored_before: float | None


@dataclass(frozen=True)
class SourceProblem:
    """Why the source could not be estimated, as the user may read it."""

    message: str


class SourceUnreadable(Exception):
    """The estimate's source could not be read (or did not answer in time)."""


class EstimateRunner:
    """Makes estimates in a pool of processes (or a thread), made on first use and closed with the app."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._executor: Executor | None = None

    async def estimate(self, *, spec: WorkflowSpec, deployments: list[Deployment],
                       earlier_output_tokens: float | None, cache_scope: str | None,
                       stored_before: float | None = None) -> Estimate:
        """The estimate of `spec` over its source; SourceUnreadable says why there is none."""
        task = EstimateTask(self.settings.model_dump(), spec, deployments, earlier_output_tokens, cache_scope,
                            stored_before)
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self._pool(), run_task, task)
        except BrokenProcessPool:  # a child died (killed, out of memory): the next estimate gets a new pool
            self.close()
            raise SourceUnreadable("the estimate's process stopped while reading the source") from None
        if isinstance(result, SourceProblem):
            raise SourceUnreadable(result.message)
        return result

    def _pool(self) -> Executor:
        if self._executor is None:
            processes = self.settings.estimate_processes
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="estimate") if processes == 0 else \
                ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"),
                                    initializer=_start_child)
        return self._executor

    def close(self) -> None:
        """Stop the pool (an estimate still running finishes in its process, unseen)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


_child: dict[str, Any] = {}  # in a child process: its event loop and its Database per URL, kept between tasks
_memo = EstimateMemo()  # this process's (a child's, or the API's with ESTIMATE_PROCESSES=0: one thread uses it)


def _start_child() -> None:
    _child["loop"] = asyncio.new_event_loop()


def run_task(task: EstimateTask) -> Estimate | SourceProblem:
    """Make the estimate (in a child process with a loop of its own, else in a thread with a fresh loop)."""
    loop: asyncio.AbstractEventLoop | None = _child.get("loop")
    if loop is None:
        return asyncio.run(_estimate_with_own_database(task))
    url = task.settings["database_url"]
    database = _child.get(url) or _child.setdefault(url, Database(url))
    return loop.run_until_complete(_estimate(task, database))


async def _estimate_with_own_database(task: EstimateTask) -> Estimate | SourceProblem:
    database = Database(task.settings["database_url"])
    try:
        return await _estimate(task, database)
    finally:
        await database.dispose()


async def _estimate(task: EstimateTask, database: Database) -> Estimate | SourceProblem:
    settings = Settings.model_construct(**task.settings)
    cache = DbAnswerCache(database, scope=task.cache_scope) if task.cache_scope is not None else None
    try:  # the source is opened and read here, as a worker would: its problems are the request's
        async with asyncio.timeout(settings.estimate_timeout_s):
            source = await open_source(task.spec, paths=path_policy(settings), connections=job_connections(settings))
            try:
                return await estimate_run(task.spec, source=source, deployments=task.deployments,
                                          earlier_output_tokens=task.earlier_output_tokens, cache=cache,
                                          stored_before=task.stored_before, memo=_memo)
            finally:
                await source.close()
    except InputError as exc:
        return SourceProblem(shown_to_users(settings)(str(exc)))
    except TimeoutError:
        return SourceProblem(f"the source did not answer within {settings.estimate_timeout_s:g}s")
    finally:
        if cache is not None:
            await cache.close()
