"""Run one workflow spec over its rows: a continuous window of in-flight rows, durable results, output.

`run_spec` opens and checks the source and sink, then a `Runner` streams, stores and writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opentelemetry import trace

from engine.errors import InputError
from engine.events import RunEvent
from engine.gateway import BudgetExceeded, ChatClient, Deferred
from engine.results.answer_cache import AnswerCache
from engine.results.settled import SettledRows
from engine.results.sqlite_store import SqliteResultStore
from engine.results.store import ResultStore, RowResult
from engine.run.attempts import TRACER
from engine.run.outage import OutageWatch
from engine.run.pause import PauseGate
from engine.run.progress import Progress, ProgressCallback, ProgressTracker, RunRounds
from engine.run.reuse import AnswerReuse
from engine.run.row_work import row_work
from engine.run.selection import rows_to_send
from engine.sinks import Sink, open_sink
from engine.sources import Source, open_source
from engine.sources.mysql_connection import Connections
from engine.spec.models import WorkflowSpec
from engine.spec.paths import PathPolicy
from engine.spec.secrets import Secrets

if TYPE_CHECKING:
    from engine.run.batch_answers import BatchAnswers
    from engine.run.batch_run import BatchRun

log = logging.getLogger(__name__)
tracer = trace.get_tracer(TRACER)

EventCallback = Callable[[RunEvent, str, dict[str, Any]], None]
# Group commit: every result ready is written as soon as the previous write ends, so an answer waits for at
# most one write before it is durable (and is not bought again after a crash). Writes take this many at most.
WRITE_ROWS = 1024
IDLE_TICK_S = 0.2  # with no result coming, the writer still wakes this often (progress, partial output)
PROGRESS_EVERY_S = 0.5
DRAIN_ON_STOP_S = 1.5  # in-flight rows this long after a stop; the rest are dropped and resent on resume
ReadyRow = Any  # a row as RowWork.tasks made it ready, handed back to RowWork.process


@dataclass
class StepResults:
    """A step's results a row waits on: written with the next group of results, then `written` is set."""

    results: list[RowResult]
    written: asyncio.Future[None] | None  # None: nothing waits (a row's last step, written with the row's own)


Written = RowResult | StepResults  # what the writer takes: a row's own result, or a step's


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended: final progress, where the output is, and whether it was stopped early."""

    progress: Progress
    output: str | None
    stopped: bool
    budget: BudgetExceeded | None = None  # stopped because a budget had no room for the next request


class Runner:
    """Streams a source's rows through a chat client into a results store, then writes the sink."""

    def __init__(self, spec: WorkflowSpec, *, client: ChatClient, store: ResultStore, source: Source, sink: Sink,
                 on_progress: ProgressCallback | None = None, on_event: EventCallback | None = None,
                 stop: asyncio.Event | None = None, cache: AnswerCache | None = None,
                 paths: PathPolicy | None = None, connections: Connections | None = None,
                 batch: BatchAnswers | None = None) -> None:
        self.spec = spec
        self.batch = batch  # a round of a run in batch mode: its output is written once no request waits
        self.store = store
        self.source = source
        self.sink = sink
        self.on_progress = on_progress
        self.on_event = on_event
        self.stop = stop or asyncio.Event()
        self._failure: BaseException | None = None
        self._budget: BudgetExceeded | None = None
        self._results_ended = False
        self.settled = SettledRows()
        self.gate = PauseGate(pause_s=spec.concurrency.pause_on_api_error_s,
                              window_s=spec.concurrency.error_window_s, on_pause=self._paused)
        self.work = row_work(spec, client, self.gate, AnswerReuse.of(cache, spec.cache), paths=paths,
                             connections=connections, batch=batch)
        self.outage = OutageWatch(spec.concurrency.stop_after_api_failures)

    def _event(self, kind: RunEvent, message: str, **data: Any) -> None:
        if self.on_event is not None:
            self.on_event(kind, message, data)

    def _paused(self, cause: str, seconds: float) -> None:
        self._event(RunEvent.PAUSED_FOR_API_ERRORS, f"all requests paused {seconds:g}s after: {cause}", cause=cause,
                    seconds=seconds)

    async def run(self) -> RunOutcome:
        """Run to the end (or until `stop` is set) and write the output (behind the rows, where it can)."""
        with tracer.start_as_current_span("run", attributes={"rowloom.workflow": self.spec.name or ""}) as span:
            await self.work.check()
            tracker = ProgressTracker(await self.source.count())
            tasks: asyncio.Queue[ReadyRow | None] = asyncio.Queue(maxsize=self.spec.concurrency.in_flight)
            # Bounded: when the store is slower than the model (a fast mock), workers wait instead of
            # piling finished rows up in memory.
            results: asyncio.Queue[Written | None] = asyncio.Queue(
                maxsize=max(WRITE_ROWS, 2 * self.spec.concurrency.in_flight))
            self._results = results
            workers = [asyncio.create_task(self._work(tasks, results))
                       for _ in range(self.spec.concurrency.in_flight)]
            writer = asyncio.create_task(self._write(results, tracker))
            save = asyncio.create_task(self.sink.save(self.source, self.store, settled=self.settled)) \
                if self.source.parallel_reads and self.batch is None else None
            if save is not None:
                save.add_done_callback(self._save_ended)
            try:
                try:
                    await self._until_stopped(self._produce(tasks, tracker))
                    await self._finish_workers(workers, tasks)
                finally:
                    for worker in workers:
                        worker.cancel()
                    await results.put(None)
                    await writer
                if self._failure is not None:  # the store, a save or the model failed: the run fails with it
                    self._emit(tracker.current(finished=True))  # the record counts every row made durable
                    raise self._failure
                self.settled.all_settled()
                waiting = self.batch is not None and self.batch.waits
                output = None if waiting else await (save or self.sink.save(self.source, self.store))
            finally:  # a save still waiting for rows (the run failed or was cancelled) leaves no file behind
                if save is not None and not save.done():
                    save.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await save
            stopped = self.stop.is_set()
            progress = tracker.current(finished=True)
            self._emit(progress)
            if output is not None:
                self._event(RunEvent.OUTPUT_WRITTEN, f"output written to {output}", output=output)
            span.set_attributes({"rowloom.rows.done": progress.done, "rowloom.rows.failed": progress.failed,
                                 "rowloom.rows.skipped": progress.skipped, "rowloom.stopped": stopped})
            return RunOutcome(progress=progress, output=output, stopped=stopped, budget=self._budget)

    def _save_ended(self, save: asyncio.Task[str]) -> None:
        """An output that cannot be written fails the run now, not after every row was sent."""
        if not save.cancelled() and (error := save.exception()) is not None:
            log.error("writing the output failed; stopping the run: %s", error)
            self._stop_with(error)

    def _stop_with(self, error: BaseException) -> None:
        """Stop the run; it fails with the first such error once its rows in flight are settled."""
        if self._failure is None:
            self._failure = error
            self.stop.set()

    async def _produce(self, tasks: asyncio.Queue[ReadyRow | None], tracker: ProgressTracker) -> None:
        first = 0  # the batch's first row's position in the source
        async for selected in rows_to_send(self.source, self.spec, self.store):
            if self.stop.is_set():
                return
            tracker.skipped(selected.skipped)
            tracker.resumed(selected.done)
            # A window's worth at a time: rendering a whole batch at once would hold up the answers coming in.
            step = self.spec.concurrency.in_flight
            for start in range(0, len(selected.rows), step):
                chunk = selected.rows[start:start + step]
                if self.batch is not None:
                    await self.batch.prefetch([key for _, key, _ in chunk])
                ready = await self.work.tasks([(key, record) for _, key, record in chunk], self.store)
                for (index, key, _), task in zip(chunk, ready, strict=True):
                    self.settled.sending(key, first + index)
                    await tasks.put(task)
            first += selected.height
            self.settled.looked_at(first)

    async def _durable(self, results: list[RowResult]) -> None:
        """Wait until a step's results are written (with the next group of results)."""
        written: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._results.put(StepResults(results, written))
        await written

    async def _finish_workers(self, workers: list[asyncio.Task[None]], tasks: asyncio.Queue[ReadyRow | None]) -> None:
        for _ in workers:
            await tasks.put(None)
        everyone: asyncio.Future[Any] = asyncio.gather(*workers)
        stop_wait: asyncio.Future[Any] = asyncio.create_task(self.stop.wait())
        await asyncio.wait({everyone, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        if not everyone.done():  # stopped with rows in flight: give them a moment, then drop them
            await asyncio.wait({everyone}, timeout=DRAIN_ON_STOP_S)
            everyone.cancel()
        stop_wait.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await everyone

    async def _work(self, tasks: asyncio.Queue[ReadyRow | None], results: asyncio.Queue[Written | None]) -> None:
        while (task := await tasks.get()) is not None:
            if not self.stop.is_set():  # after a stop, queued rows are left unsent (they run on resume)
                try:
                    result, last_step = await self.work.process(task, self._durable)
                    if last_step:  # queued first: written with the row's own result, or before it
                        await results.put(StepResults(last_step, None))
                except InputError as exc:
                    self._stop_with(exc)
                    continue
                except Deferred:
                    continue  # its request waits for a provider batch: the row goes on in the next round
                except BudgetExceeded as exc:
                    self._over_budget(exc)
                    continue  # unsent: the row goes on resume
                except Exception as exc:  # the store or cache failed under the row: the run fails with it
                    self._stop_with(exc)  # (a worker that died here would leave the others waiting on it)
                    continue
                if (down := self.outage.saw((result,))) is not None:
                    self._stop_with(down)  # as each row ends, not when the writer gets to it
                await results.put(result)

    def _over_budget(self, exc: BudgetExceeded) -> None:
        if self._budget is None:
            self._budget = exc
            self._event(RunEvent.PAUSED_FOR_BUDGET, str(exc), **exc.details)
            self.stop.set()

    async def _until_stopped(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work`, cancelling it if a stop comes first (it may be waiting for room in a full window)."""
        task = asyncio.create_task(work)
        stop_wait = asyncio.create_task(self.stop.wait())
        await asyncio.wait({task, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        stop_wait.cancel()
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _write(self, results: asyncio.Queue[Written | None], tracker: ProgressTracker) -> None:
        try:
            await self._write_until_done(results, tracker)
        except Exception as exc:
            log.error("writing results failed; stopping the run: %s", exc)  # the run fails with it: logged there
            self._failure = exc  # wins over any earlier error: it says which rows are not durable
            self.stop.set()
            while not self._results_ended:  # keep the queue moving so no worker blocks on it
                item = await results.get()
                self._results_ended = item is None
                if isinstance(item, StepResults) and item.written is not None and not item.written.done():
                    item.written.set_exception(exc)

    async def _write_until_done(self, results: asyncio.Queue[Written | None], tracker: ProgressTracker) -> None:
        reported_at = saved_at = time.monotonic()
        finished = False
        while not finished:
            ready, finished = await self._ready_results(results)
            self._results_ended = finished
            if ready:  # what came in while the previous write ran: one transaction
                rows = [item for item in ready if isinstance(item, RowResult)]
                steps = [item for item in ready if isinstance(item, StepResults)]
                await self.store.write([*rows, *(r for s in steps for r in s.results)])  # durable first
                for waiting in steps:
                    if waiting.written is not None and not waiting.written.done():
                        waiting.written.set_result(None)
                tracker.finished_steps([r for waiting in steps for r in waiting.results])
                tracker.finished_rows(rows)
                self.settled.finished([result.key for result in rows])
            now = time.monotonic()
            if now - reported_at >= PROGRESS_EVERY_S:
                self._emit(tracker.current())
                reported_at = now
            if not finished and now - saved_at >= self.spec.concurrency.save_interval_s:
                output = await self.sink.save(self.source, self.store)
                self._event(RunEvent.OUTPUT_SAVED, f"partial output saved to {output}", output=output)
                saved_at = time.monotonic()

    @staticmethod
    async def _ready_results(results: asyncio.Queue[Written | None]) -> tuple[list[Written], bool]:
        """Results ready now (waiting up to IDLE_TICK_S only if none are), and whether the end marker came."""
        items: list[Written | None] = []
        if results.empty():  # one timer per idle spell, not one per row
            with contextlib.suppress(TimeoutError):
                items.append(await asyncio.wait_for(results.get(), timeout=IDLE_TICK_S))
        while not results.empty() and len(items) < WRITE_ROWS:
            items.append(results.get_nowait())
        return [item for item in items if item is not None], None in items

    def _emit(self, progress: Progress) -> None:
        if self.on_progress is not None:
            self.on_progress(progress)


async def run_spec(spec: WorkflowSpec, *, client: ChatClient, base_dir: Path, work_dir: Path,
                   store: ResultStore | None = None, output: Path | None = None,
                   on_progress: ProgressCallback | None = None, on_event: EventCallback | None = None,
                   stop: asyncio.Event | None = None, paths: PathPolicy | None = None,
                   connections: Connections | None = None, cache: AnswerCache | None = None,
                   batches: BatchRun | None = None) -> RunOutcome:
    """Every input check happens before the first request; results go to `store` (default: work_dir).

    `paths` decides which files the run may read and write (checked as each is opened) and where relative paths
    start (default: any file, relative to `base_dir`). `connections` opens the databases the spec names (default:
    inline ones to any host, their `${NAME}` references resolved from any
    variable of this process's environment). `cache` keeps answers by request, for the spec's `cache` setting.
    `batches` sends the requests of steps in batch mode in provider batches, in rounds (see `batch_run`).
    """
    paths = paths or PathPolicy(base_dir)
    connections = connections or Connections(Secrets(os.environ))
    source = await open_source(spec, paths=paths, connections=connections)
    try:
        sink = await open_sink(spec, paths=paths, connections=connections, output=output)
        results = store or SqliteResultStore(work_dir / "results.sqlite")
        try:
            stop = stop or asyncio.Event()

            def runner(batch: BatchAnswers | None, progress: ProgressCallback | None) -> Runner:
                return Runner(spec, client=client, store=results, source=source, sink=sink, on_progress=progress,
                              on_event=on_event, stop=stop, cache=cache, paths=paths, connections=connections,
                              batch=batch)

            if batches is None or not batches.batched:
                return await runner(None, on_progress).run()
            rounds = RunRounds(on_progress)

            async def run_round(answers: BatchAnswers) -> RunOutcome:
                outcome = await runner(answers, rounds.seen).run()
                return replace(outcome, progress=rounds.ended(outcome.progress))

            outcome, refused = await batches.run(run_round, client=client, stop=stop, on_event=on_event)
            return outcome if refused is None else replace(outcome, stopped=True, budget=refused)
        finally:
            if store is None:
                await results.close()
    finally:
        await source.close()
