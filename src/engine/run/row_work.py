"""What the runner does with a workflow's rows, behind one interface: one prompt, or a pipeline of steps."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from engine.gateway import ChatClient
from engine.results.store import Key, ResultStore, RowResult
from engine.run.attempts import RowProcessor, RowTask
from engine.run.pause import PauseGate
from engine.run.pipeline import Durable, PipelineTask, RowPipeline
from engine.run.reuse import AnswerReuse
from engine.sources.mysql_connection import Connections
from engine.spec.flow import first_prompt
from engine.spec.models import WorkflowSpec
from engine.spec.paths import PathPolicy
from engine.spec.secrets import Secrets

if TYPE_CHECKING:
    from engine.run.batch_answers import BatchAnswers

TaskT = TypeVar("TaskT")


class RowWork(Protocol[TaskT]):
    """Rows made ready to run, then each run to its result."""

    async def check(self) -> None:
        """What must hold before the first request is sent (a knowledge table opens)."""

    async def tasks(self, rows: Sequence[tuple[Key, dict[str, Any]]], store: ResultStore) -> list[TaskT]:
        """The rows made ready to run, in order."""

    async def process(self, task: TaskT, durable: Durable) -> tuple[RowResult, list[RowResult]]:
        """The row's own result, and the results of its last step, to be written with it (or before it)."""


class OnePrompt:
    """A one-step workflow: each row's result is its prompt's (stored as a row's own)."""

    def __init__(self, processor: RowProcessor) -> None:
        self.processor = processor

    async def check(self) -> None:
        """Nothing to check beyond the source and sink."""

    async def tasks(self, rows: Sequence[tuple[Key, dict[str, Any]]], store: ResultStore) -> list[RowTask]:
        """Rows rendered (and their cached answers asked for, all together)."""
        return self.processor.tasks(list(rows))

    async def process(self, task: RowTask, durable: Durable) -> tuple[RowResult, list[RowResult]]:
        """The row's answer; no step results of its own."""
        return await self.processor.process(task), []


class Pipeline:
    """A workflow of steps: each row with the step results an earlier run made durable, then through its steps."""

    def __init__(self, pipeline: RowPipeline) -> None:
        self.pipeline = pipeline

    async def check(self) -> None:
        """Every knowledge table opens and has its columns."""
        await self.pipeline.check()

    async def tasks(self, rows: Sequence[tuple[Key, dict[str, Any]]], store: ResultStore) -> list[PipelineTask]:
        """Rows with the results of their steps already in the store (looked up together)."""
        done = await store.done_units([key for key, _ in rows], self.pipeline.units)
        return [PipelineTask(key, record, done.get(key, {})) for key, record in rows]

    async def process(self, task: PipelineTask, durable: Durable) -> tuple[RowResult, list[RowResult]]:
        """The row through its steps."""
        return await self.pipeline.process(task, durable)


def row_work(spec: WorkflowSpec, client: ChatClient, gate: PauseGate, reuse: AnswerReuse | None, *,
             paths: PathPolicy | None, connections: Connections | None,
             batch: BatchAnswers | None = None) -> RowWork[Any]:
    """The work of the spec's rows: one prompt (`steps` absent), or its pipeline of steps; `batch` answers the
    requests of steps in batch mode."""
    if spec.steps is None:
        step = first_prompt(spec)
        assert step is not None
        return OnePrompt(RowProcessor(step, client, gate, reuse,
                                      batch=batch and batch.for_step(step.step.id, step.model.name)))
    return Pipeline(RowPipeline(spec, client, gate, reuse, paths=paths or PathPolicy(Path.cwd()),
                                connections=connections or Connections(Secrets(os.environ)), batch=batch))
