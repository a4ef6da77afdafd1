"""Each kind of step as it runs on one row: what it asks, the results it stores, the columns it writes.

A step gets the row's values so far (source columns and earlier steps' columns) and the results of its own
that an earlier run made durable; it asks only for what is missing.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from engine.errors import InputError
from engine.gateway import BudgetExceeded, Unsent
from engine.results.store import ErrorClass, Key, RowResult, RowStatus, Unit
from engine.retrieval import KnowledgeTable, load_knowledge, open_knowledge
from engine.run.attempts import RowProcessor
from engine.run.batching import Batcher
from engine.run.embedder import Embedded, Embedder, EmbedFailed
from engine.run.prompts import PromptRenderer
from engine.sources.mysql_connection import Connections
from engine.spec.flow import RunStep
from engine.spec.models import EmbedStep, FilterStep, Prompt, RetrieveStep
from engine.spec.paths import PathPolicy
from engine.spec.step_flow import compare_columns, model_columns

if TYPE_CHECKING:
    from engine.run.batch_answers import BatchAnswers

SEARCH_BATCH = 64  # queries scored in one pass over the knowledge table
SEARCH_WAIT_S = 0.001  # how long a query waits for others to share its pass


@dataclass
class StepOutcome:
    """What a step did for a row: results to store, columns written, and whether the row goes on."""

    made: list[RowResult] = field(default_factory=list)  # new results (durable before the next step)
    columns: dict[str, Any] = field(default_factory=dict)
    failure: RowResult | None = None  # the result that fails the row
    goes_on: bool = True
    budget: Unsent | None = None  # no budget left for a request, or it waits for a batch: the row stops unsent


class StepRun(Protocol):
    """A step of the pipeline, ready to run rows."""

    id: str
    units: list[Unit]  # the results it stores a row

    async def run(self, key: Key, values: dict[str, Any], done: dict[Unit, RowResult]) -> StepOutcome:
        """Run the step on one row."""
        ...


class PromptRun:
    """A prompt step: one model, or a fan-out to several at once with an optional agreement column."""

    def __init__(self, step: RunStep, processors: dict[str, RowProcessor]) -> None:
        self.step = step
        self.id = step.step.id
        self.processors = processors  # by target ("" for a step of one model)
        self.units = [(self.id, target) for target in processors]

    async def run(self, key: Key, values: dict[str, Any], done: dict[Unit, RowResult]) -> StepOutcome:
        """Ask every model the step lists that has no answer yet, all at once."""
        record = {c: values.get(c) for c in self.step.step.input}
        waiting = {target: processor for target, processor in self.processors.items()
                   if (self.id, target) not in done}
        asked: list[RowResult | BaseException]
        if len(waiting) == 1:  # no task a row for a step of one model
            try:
                asked = [await self._ask(next(iter(waiting.values())), key, record)]
            except Unsent as exc:
                asked = [exc]
        else:
            asked = await asyncio.gather(*(self._ask(processor, key, record) for processor in waiting.values()),
                                         return_exceptions=True)
        outcome = StepOutcome()
        results = {target: done[(self.id, target)] for target in self.processors if (self.id, target) in done}
        for target, answer in zip(waiting, asked, strict=True):
            if isinstance(answer, Unsent):
                outcome.budget = answer if isinstance(answer, BudgetExceeded) else outcome.budget or answer
            elif isinstance(answer, BaseException):
                raise answer
            else:
                results[target] = answer
                outcome.made.append(answer)
        for target, result in results.items():
            if result.status is RowStatus.DONE:
                outcome.columns |= {column: result.outputs.get(name)
                                    for name, column in model_columns(self.step.step, target).items()}
            elif outcome.failure is None:
                outcome.failure = result
        if len(results) == len(self.processors) and outcome.failure is None:
            outcome.columns |= agreement(self.step, results)
        return outcome

    @staticmethod
    async def _ask(processor: RowProcessor, key: Key, record: dict[str, Any]) -> RowResult:
        return await processor.process(processor.tasks([(key, record)])[0])


def agreement(step: RunStep, results: dict[str, RowResult]) -> dict[str, Any]:
    """The agreement columns of a fan-out's answers: `all`, `majority` or `none`, and the agreed value."""
    columns: dict[str, Any] = {}
    for name, (level_column, value_column) in compare_columns(step.step).items():
        answers = [repr(r.outputs.get(name)) for r in results.values()]
        (top, count), = Counter(answers).most_common(1)
        value = next(r.outputs.get(name) for r in results.values() if repr(r.outputs.get(name)) == top)
        level = "all" if count == len(answers) else "majority" if count * 2 > len(answers) else "none"
        columns[level_column] = level
        columns[value_column] = value if level != "none" else None
    return columns


class EmbedRun:
    """An embed step: a column's text (or a rendered template) to a vector."""

    def __init__(self, step: EmbedStep, embedder: Embedder, *, batch: BatchAnswers | None = None) -> None:
        self.step = step
        self.id = step.id
        self.embedder = embedder
        self.batch = batch  # the step's requests go in provider batches (None: live)
        self.units = [(self.id, "")]
        self.renderer = PromptRenderer(Prompt(template=step.template)) if step.template else None

    def text(self, values: dict[str, Any]) -> str:
        """The text embedded for a row."""
        if self.renderer is not None:
            return self.renderer.messages(values)[-1]["content"]
        value = values.get(self.step.input or "")
        return "" if value is None else str(value)

    async def run(self, key: Key, values: dict[str, Any], done: dict[Unit, RowResult]) -> StepOutcome:
        """The row's vector: stored before, or embedded now."""
        if (stored := done.get((self.id, ""))) is not None:
            return StepOutcome(columns={self.step.output: stored.outputs.get(self.step.output)})
        started = time.monotonic()
        ask = None if self.batch is None else \
            functools.partial(self.batch.embedded, embedder=self.embedder, key=key, unit=self.units[0])
        try:
            made = await self.embedder.embed(self.text(values), ask=ask)
        except Unsent as exc:
            return StepOutcome(budget=exc)
        except EmbedFailed as exc:
            failed = RowResult(key=key, status=RowStatus.FAILED, error_class=exc.error_class, error=str(exc),
                               model=self.step.model, attempts=exc.attempts, step=self.id,
                               latency_s=time.monotonic() - started)
            return StepOutcome(made=[failed], failure=failed)
        result = RowResult(key=key, status=RowStatus.DONE, outputs={self.step.output: made.vector}, model=made.model,
                           attempts=made.attempts, latency_s=time.monotonic() - started, tokens_in=made.tokens,
                           cost=made.cost, cached=made.cached, step=self.id)
        return StepOutcome(made=[result], columns={self.step.output: made.vector})


class RetrieveRun:
    """A retrieve step: the knowledge table's nearest rows to the row's vector, as a context column."""

    def __init__(self, step: RetrieveStep, embedder: Embedder, *, paths: PathPolicy, connections: Connections,
                 field: str) -> None:
        self.step = step
        self.id = step.id
        self.units = [(self.id, "")]
        self.embedder = embedder  # the query's embed step's: the table is embedded by the same model
        self.paths = paths
        self.connections = connections
        self.field = field
        self._table: asyncio.Task[tuple[KnowledgeTable, Embedded | None]] | None = None
        self._build_paid = False
        self._searches: Batcher[list[float], list[tuple[Any, str, float]]] = Batcher(
            self._search_many, size=SEARCH_BATCH, wait_s=SEARCH_WAIT_S)

    async def _search_many(self, queries: list[list[float]]) -> list[list[tuple[Any, str, float]]]:
        table, _ = await self.table()
        return await asyncio.to_thread(table.search_many, queries, self.step.top_k)

    async def check(self) -> None:
        """The knowledge table opens and has its columns (before any request is sent)."""
        source = await open_knowledge(self.step.knowledge, paths=self.paths, connections=self.connections,
                                      field=self.field)
        await source.close()

    async def table(self) -> tuple[KnowledgeTable, Embedded | None]:
        """The knowledge table (read and embedded on first use), and what embedding it took: the deployment that
        made its vectors, its tokens and cost (None: every vector came from the cache)."""
        if self._table is None:
            self._table = asyncio.create_task(self._load())
        return await asyncio.shield(self._table)

    async def _load(self) -> tuple[KnowledgeTable, Embedded | None]:
        bought: list[Embedded] = []

        async def embed(texts: list[str]) -> list[list[float]]:
            try:
                made = await self.embedder.embed_all(texts)
            except EmbedFailed as exc:
                raise InputError(f"{self.field}: the knowledge table could not be embedded: {exc}") from None
            bought.extend(m for m in made if not m.cached)
            return [m.vector for m in made]

        table = await load_knowledge(self.step.knowledge, paths=self.paths, connections=self.connections,
                                     field=self.field, embed=embed)
        spent = Embedded([], bought[0].model, sum(m.tokens for m in bought), sum(m.cost for m in bought)) \
            if bought else None
        return table, spent

    async def run(self, key: Key, values: dict[str, Any], done: dict[Unit, RowResult]) -> StepOutcome:
        """The row's context: stored before, or searched now."""
        if (stored := done.get((self.id, ""))) is not None:
            return StepOutcome(columns=dict(stored.outputs))
        started = time.monotonic()
        try:
            table, spent = await self.table()
        except BudgetExceeded as exc:
            self._table = None  # built again on resume
            return StepOutcome(budget=exc)
        query = values.get(self.step.query)
        if not isinstance(query, list) or len(query) != table.index.dims:
            failed = RowResult(key=key, status=RowStatus.FAILED, error_class=ErrorClass.CONTENT, step=self.id,
                               error=f"no vector of {table.index.dims} numbers in {self.step.query!r} to search with")
            return StepOutcome(made=[failed], failure=failed)
        hits = await self._searches.submit(query)
        columns = self.columns(hits)
        paid = spent if not self._build_paid else None  # the table's embedding is counted once, here
        self._build_paid = True
        result = RowResult(key=key, status=RowStatus.DONE, outputs=columns, step=self.id,
                           latency_s=time.monotonic() - started, tokens_in=paid.tokens if paid else 0,
                           cost=paid.cost if paid else 0.0, model=paid.model if paid else None)
        return StepOutcome(made=[result], columns=columns)

    def columns(self, hits: list[tuple[Any, str, float]]) -> dict[str, Any]:
        """The context column (and the ids and scores columns, if asked for) of these hits."""
        step = self.step
        parts = [step.format.replace("{id}", str(id_)).replace("{text}", text).replace("{score}", f"{score:.4f}")
                 for id_, text, score in hits]
        columns: dict[str, Any] = {step.output: step.separator.join(parts)}
        if step.ids_output:
            columns[step.ids_output] = [id_ for id_, _, _ in hits]
        if step.scores_output:
            columns[step.scores_output] = [round(score, 6) for _, _, score in hits]
        return columns


class FilterRun:
    """A filter step: whether the row goes on to the next steps."""

    def __init__(self, step: FilterStep) -> None:
        self.step = step
        self.id = step.id
        self.units = [(self.id, "")]

    async def run(self, key: Key, values: dict[str, Any], done: dict[Unit, RowResult]) -> StepOutcome:
        """Decide (the same way every time: nothing is asked)."""
        passed = self.step.passes(values.get(self.step.column))
        made = [] if (self.id, "") in done else [RowResult(key=key, status=RowStatus.DONE, step=self.id,
                                                           outputs={"passed": passed})]
        return StepOutcome(made=made, goes_on=passed)
