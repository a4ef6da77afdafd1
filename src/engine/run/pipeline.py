"""A row through a workflow's steps, in order: each step's results durable before the next step sees them."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.errors import InputError
from engine.gateway import ChatClient
from engine.results.store import ErrorClass, Key, RowResult, RowStatus, Unit
from engine.run.attempts import RowProcessor
from engine.run.embedder import Embedder
from engine.run.pause import PauseGate
from engine.run.reuse import AnswerReuse
from engine.run.step_runs import EmbedRun, FilterRun, PromptRun, RetrieveRun, StepRun
from engine.sources.mysql_connection import Connections
from engine.spec.flow import RunStep, pipeline
from engine.spec.models import EmbedStep, FilterStep, PromptStep, WorkflowSpec
from engine.spec.paths import PathPolicy
from engine.spec.step_flow import vector_steps, written_columns

if TYPE_CHECKING:
    from engine.run.batch_answers import BatchAnswers

Durable = Callable[[list[RowResult]], Awaitable[None]]


@dataclass(frozen=True)
class PipelineTask:
    """A row to run: its key, its source values, and the step results an earlier run made durable."""

    key: Key
    record: dict[str, Any]
    done: dict[Unit, RowResult]


class RowPipeline:
    """The steps of a multi-step workflow, ready to run rows (many at once: each row in its own task)."""

    def __init__(self, spec: WorkflowSpec, client: ChatClient, gate: PauseGate, reuse: AnswerReuse | None, *,
                 paths: PathPolicy, connections: Connections, batch: BatchAnswers | None = None) -> None:
        steps = pipeline(spec)
        embedders = {step.id: Embedder(client, model=step.model, batch_size=step.batch_size,
                                       retry=step.retry or spec.retry, gate=gate, reuse=reuse)
                     for step in steps if isinstance(step, EmbedStep)}
        vectors = vector_steps(steps)
        self.runs: list[StepRun] = []
        self.retrieves: list[RetrieveRun] = []
        for index, step in enumerate(steps):
            if isinstance(step, PromptStep):
                run = RunStep.of(spec, step)
                self.runs.append(PromptRun(run, {target: RowProcessor(
                    run, client, gate, reuse, model=target or None, unit=(step.id, target),
                    batch=batch and batch.for_step(step.id, target or run.model.name)) for target in run.targets}))
            elif isinstance(step, EmbedStep):
                self.runs.append(EmbedRun(step, embedders[step.id],
                                          batch=batch and batch.for_step(step.id, step.model)))
            elif isinstance(step, FilterStep):
                self.runs.append(FilterRun(step))
            else:
                retrieve = RetrieveRun(step, embedders[vectors[step.query].id], paths=paths, connections=connections,
                                       field=f"steps.{index}.knowledge")
                self.retrieves.append(retrieve)
                self.runs.append(retrieve)
        self.units = [unit for run in self.runs for unit in run.units]
        self.columns = [c.name for c in written_columns(steps)]

    async def check(self) -> None:
        """Every knowledge table opens and has its columns (before any request is sent)."""
        for retrieve in self.retrieves:
            await retrieve.check()

    async def process(self, task: PipelineTask, durable: Durable) -> tuple[RowResult, list[RowResult]]:
        """The row's own result once its steps ran, and the results of its last step, which are to be written
        with it (or before it). The results of a step that another step follows are made durable before that
        step starts."""
        values = dict(task.record)
        started = time.monotonic()

        def ended(status: RowStatus, **fields: Any) -> RowResult:
            return RowResult(key=task.key, status=status, latency_s=time.monotonic() - started, **fields)

        for index, run in enumerate(self.runs):
            try:
                outcome = await run.run(task.key, values, task.done)
            except InputError:
                raise  # a table that cannot be read fails the run, not the row
            except Exception as exc:  # a bug or an environment fault: this row fails with it
                return ended(RowStatus.FAILED, error_class=ErrorClass.SYSTEM,
                             error=f"step {run.id}: {type(exc).__name__}: {exc}"[:2000]), []
            values.update(outcome.columns)
            if outcome.budget is not None:
                await durable(outcome.made)  # kept: the row goes on from this step on resume
                raise outcome.budget  # not the row's failure
            if (failed := outcome.failure) is not None:
                where = f"step {run.id}" + (f" ({failed.target})" if failed.target else "")
                return ended(RowStatus.FAILED, error_class=failed.error_class, error=f"{where}: {failed.error}",
                             model=failed.model, attempts=failed.attempts), outcome.made
            if not outcome.goes_on or index == len(self.runs) - 1:
                return ended(RowStatus.DONE, outputs={c: values[c] for c in self.columns if c in values}), \
                    outcome.made
            if outcome.made:
                await durable(outcome.made)
        raise AssertionError("a pipeline has at least one step")
