"""A run in batch mode: rounds of the live run whose requests of batched steps wait for provider batches.

Each round runs the rows that are not done (see `batch_answers`); the requests it could not answer are planned in
the ledger, cut into files by each deployment's limits, uploaded and submitted; the run then follows its batches
(any process may: the ledger says what is out) and collects each one's lines as it ends, then runs the next round.
A run is over when a round wants nothing. Expired, failed or cancelled batches keep the lines they finished; the
rest is wanted again by the next round. Once the run's deadline is near, what is left goes live.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Protocol, TypeVar

import orjson

from engine.errors import InputError
from engine.events import RunEvent
from engine.gateway import BudgetExceeded, ChatClient
from engine.gateway.batch_api import ENDED, BatchStatus, ProviderBatch
from engine.gateway.batch_providers import BatchDeployments
from engine.gateway.config import Price
from engine.gateway.errors import GatewayError
from engine.gateway.openai_client import usage_of
from engine.results.batch_ledger import OPEN, BatchLedger, BatchLine, BatchRecord, BatchState, LineKey
from engine.results.store import encode_key
from engine.run.batch_answers import BatchAnswers
from engine.run.batch_files import DEFAULT_MAX_TOKENS, PendingBatch, unit_of
from engine.spec.flow import RunStep, pipeline
from engine.spec.models import EmbedStep, PromptStep, RunMode, WorkflowSpec

log = logging.getLogger(__name__)
EventCallback = Callable[[RunEvent, str, dict[str, Any]], None]
OutcomeT = TypeVar("OutcomeT")
# A provider batch's statuses in which it cannot be cancelled: it ended, or it is being cancelled.
UNCANCELLABLE = frozenset({*(s.value for s in ENDED), BatchStatus.CANCELLING.value})
LIVE_MARGIN = 0.05  # the share of the deadline left when what remains goes live (at least two polls)


class BatchBudget(Protocol):
    """Budgets as batches use them: the most a batch may cost is held when it is submitted, its lines' cost
    settled when they are collected."""

    output_tokens: int  # an answer's tokens at most, when a request sets no max_tokens (as the live holds assume)

    async def hold(self, label: str, amount: float) -> None:
        """Hold `amount` for the batch `label`; BudgetExceeded when a budget has no room for it."""

    async def settle(self, label: str, held: float, cost: float) -> None:
        """The batch `label`'s lines cost `cost` of the `held` amount (held by this process, or by one before it)."""


class BatchRun:
    """The provider batches of one run (see the module docstring)."""

    def __init__(self, spec: WorkflowSpec, *, deployments: BatchDeployments, ledger: BatchLedger,
                 budget: BatchBudget | None = None,
                 on_waiting: Callable[[list[BatchRecord]], Awaitable[None]] | None = None,
                 park: bool = False, clock: Callable[[], float] = time.time) -> None:
        self.spec = spec
        self.deployments = deployments
        self.ledger = ledger
        self.on_event: EventCallback | None = None  # the run's (`run` sets it)
        self.budget = budget
        self.on_waiting = on_waiting  # told which batches are out each time the run waits for them ([]: no more)
        self.clock = clock
        self.live_lines: set[LineKey] = set()  # left unanswered by a batch whose deployment says `on_expiry: live`
        self.batched = {(step, model): name for step, mode, models in _asking_steps(spec) for model in models
                        if (name := self._deployment_for(step, mode, model)) is not None}
        # Raise BatchesOut rather than wait for batches still out (the caller runs it again later), unless they
        # live in this process.
        self.park = park and not any(deployments.in_process(name) for name in self.batched.values())

    def _deployment_for(self, step: str, mode: RunMode, model: str) -> str | None:
        if mode is RunMode.LIVE:
            return None
        deployment = self.deployments.for_model(model)
        if deployment is None or deployment.batch is None:
            if mode is RunMode.BATCH:
                raise InputError(f"step {step}: mode batch, but model {model!r} has no deployment that takes "
                                 "batches (`batch` in the gateway config)")
            return None
        if mode is RunMode.AUTO and self.spec.deadline is not None and self.spec.deadline < deployment.batch.window_s:
            return None
        return deployment.name

    async def run(self, run_round: Callable[[BatchAnswers], Awaitable[OutcomeT]], *, client: ChatClient,
                  stop: asyncio.Event, on_event: EventCallback | None = None) -> tuple[OutcomeT, BudgetExceeded | None]:
        """Rounds until one wants nothing, the run stops, or a budget has no room for the next batch: the last
        round's outcome, and the budget's refusal if that ended it. Batches submitted and ended, and a pause for a
        budget, go to `on_event`."""
        self.on_event = on_event
        deadline = None if self.spec.deadline is None else await self.ledger.started_at() + self.spec.deadline
        output_tokens = DEFAULT_MAX_TOKENS if self.budget is None else self.budget.output_tokens
        while True:
            await self.follow(stop, deadline=deadline)
            live = deadline is not None and self._near(deadline)
            answers = BatchAnswers(self.ledger, client=client, deployments=self.deployments, batched=self.batched,
                                   live=live, shared=self.spec.cache.mode.value != "off",
                                   live_lines=self.live_lines, flush=self.submit,
                                   output_tokens=output_tokens)
            try:
                outcome = await run_round(answers)
                if stop.is_set() or not answers.waits:
                    return outcome, None
                refused = None
                for pending in answers.take_pending():
                    with contextlib.closing(pending):
                        refused = refused or await self.submit(pending)
            finally:
                answers.close()
                del answers
                # The round's runner leaves reference cycles holding its rows' state: gone before the next round
                # reads the table again (one collection a round).
                gc.collect()
            if refused is not None:
                if on_event is not None:
                    on_event(RunEvent.PAUSED_FOR_BUDGET, str(refused), refused.details)
                return outcome, refused

    def _near(self, deadline: float) -> bool:
        left = deadline - self.clock()
        return left <= max(LIVE_MARGIN * (self.spec.deadline or 0.0), 2 * self._poll_s())

    def _poll_s(self) -> float:
        return min((self.deployments[name].batch.poll_s for name in set(self.batched.values())  # type: ignore[union-attr]
                    ), default=60.0)

    async def submit(self, pending: PendingBatch) -> BudgetExceeded | None:
        """Plan, upload and submit a batch (as smaller ones when a budget has no room for it whole); a budget's
        refusal of what it had no room for."""
        costs = [request.max_cost for request in pending.planned()]
        sent = 0
        while sent < len(costs):
            size = len(costs) - sent
            label = uuid.uuid4().hex
            while True:
                max_cost = math.fsum(costs[sent:sent + size])
                try:
                    if self.budget is not None:
                        await self.budget.hold(label, max_cost)
                    break
                except BudgetExceeded as exc:
                    if size == 1:
                        return exc
                    size //= 2  # the budget has room for part of it: a smaller batch
            if size == len(costs):
                await self._send(label, pending, max_cost)
            else:
                with contextlib.closing(pending.part(sent, size)) as part:
                    await self._send(label, part, max_cost)
            sent += size
        return None

    async def _send(self, label: str, pending: PendingBatch, max_cost: float) -> None:
        record = BatchRecord(label=label, deployment=pending.deployment, requests=pending.requests,
                             max_cost=max_cost)
        await self.ledger.plan(record, [(request.custom_id, request.key) for request in pending.planned()])
        provider = self.deployments.provider(record.deployment)

        async def uploaded(file_id: str) -> None:
            record.file_id, record.state = file_id, BatchState.UPLOADED
            await self.ledger.update(record)

        batch = await provider.submit(pending.content(), label=label, uploaded=uploaded, endpoint=pending.url)
        self._took(record, batch)
        record.state = BatchState.SUBMITTED
        await self.ledger.update(record)
        self._event(RunEvent.BATCH_SUBMITTED, f"batch {batch.id} submitted to {record.deployment}: "
                    f"{record.requests:,} requests", batch=record.public())

    async def follow(self, stop: asyncio.Event, *, deadline: float | None = None) -> None:
        """Follow the open batches until each ended and is collected, or the run stops. Once the deadline is near
        they are cancelled, and what they finished is collected. `on_waiting` hears of the batches still out at
        each poll, and of none once they all ended."""
        cancelled = False
        while True:
            open_batches = [b for b in await self.ledger.batches() if b.state in OPEN]
            if not open_batches or stop.is_set():
                if self.on_waiting is not None:  # (also when an earlier process of the run saw them out)
                    await self.on_waiting([])
                return
            if deadline is not None and self._near(deadline) and not cancelled:
                await self.cancel()
                cancelled = True
            for record in open_batches:
                await self._poll(record)
            still = [b for b in open_batches if b.state is not BatchState.COLLECTED]
            if not still:
                continue
            if self.on_waiting is not None:
                await self.on_waiting(still)
            if self.park:
                raise BatchesOut(len(still), self._poll_s())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._poll_s())

    async def _poll(self, record: BatchRecord) -> None:
        provider = self.deployments.provider(record.deployment)
        try:
            if record.state in (BatchState.PLANNED, BatchState.UPLOADED):  # a crash came before its id was kept
                found = await provider.find(record.label)
                if found is None:  # never created: its requests are wanted again by the next round
                    record.status = "not created"
                    await self.ledger.collect(record, [])
                    return
                self._took(record, found)
                record.state = BatchState.SUBMITTED
                await self.ledger.update(record)
            assert record.batch_id is not None
            batch = await provider.get(record.batch_id)
        except GatewayError as exc:
            log.warning("batch %s: %s (asked again at the next poll)", record.batch_id or record.label, exc)
            return
        seen = (record.status, record.completed, record.failed)
        self._took(record, batch)
        if batch.ended:
            record.state, record.ended_at = BatchState.ENDED, record.ended_at or self.clock()
            await self._collect(record, batch)
        elif seen != (record.status, record.completed, record.failed):
            await self.ledger.update(record)

    async def _collect(self, record: BatchRecord, batch: ProviderBatch) -> None:
        provider = self.deployments.provider(record.deployment)
        requests = await self.ledger.requests(record.label)
        price = self.deployments[record.deployment].price
        raw = await provider.lines(batch)
        record.cost = record.saved = 0.0
        answered: set[LineKey] = set()

        def lines() -> Iterator[BatchLine]:  # taken by the ledger one at a time, as it stores them
            for text in raw:
                if (line := _line(text, requests, record.deployment, price)) is not None:
                    record.cost += line.cost
                    record.saved += line.saved
                    answered.add(line.key)
                    yield line

        await self.ledger.collect(record, lines())
        back = len(answered)
        support = self.deployments[record.deployment].batch
        if batch.status is not BatchStatus.COMPLETED and support is not None and support.on_expiry == "live":
            self.live_lines |= set(requests.values()) - answered
        if self.budget is not None:
            await self.budget.settle(record.label, record.max_cost, record.cost)
        try:
            await provider.clean_up(batch)
        except GatewayError as exc:  # the files stay at the provider, which deletes them itself in time
            log.warning("batch %s: its files could not be deleted: %s", batch.id, exc)
        self._event(RunEvent.BATCH_ENDED, f"batch {batch.id} {batch.status.value}: {back:,} of "
                    f"{record.requests:,} lines back", batch=record.public())

    async def cancel(self) -> None:
        """Cancel the run's batches the provider is still working on (their finished lines are collected as they
        end)."""
        await cancel_batches(self.ledger, self.deployments)

    def _took(self, record: BatchRecord, batch: ProviderBatch) -> None:
        record.batch_id = batch.id
        record.status = batch.status.value
        record.completed, record.failed = batch.completed, batch.failed
        record.file_id = record.file_id or batch.input_file_id or None

    def _event(self, kind: RunEvent, message: str, **data: Any) -> None:
        if self.on_event is not None:
            self.on_event(kind, message, data)


class BatchesOut(Exception):
    """The run's batches are still out, and it does not wait for them (`park`): run it again to follow them."""

    def __init__(self, count: int, poll_s: float) -> None:
        super().__init__(f"{count} provider batch{'es' if count != 1 else ''} still out")
        self.count = count
        self.poll_s = poll_s  # when to look at them again


async def cancel_batches(ledger: BatchLedger, deployments: BatchDeployments) -> None:
    """Cancel the batches of a ledger that the provider is still working on (their finished lines stay readable)."""
    for record in await ledger.batches():
        if record.state is BatchState.SUBMITTED and record.batch_id is not None and record.status not in UNCANCELLABLE:
            try:
                await deployments.provider(record.deployment).cancel(record.batch_id)
            except GatewayError as exc:
                log.warning("batch %s could not be cancelled: %s", record.batch_id, exc)
                continue
            record.status = BatchStatus.CANCELLING.value
            await ledger.update(record)


def requires_batches(spec: WorkflowSpec) -> bool:
    """Whether a prompt or embed step of the spec is in `batch` mode (its own, or the workflow's): it cannot run
    live."""
    return any(mode is RunMode.BATCH for _, mode, _ in _asking_steps(spec))


def _asking_steps(spec: WorkflowSpec) -> Iterator[tuple[str, RunMode, list[str]]]:
    """The steps that send requests (prompt and embed): each one's id, mode and models."""
    for step in pipeline(spec):
        if isinstance(step, PromptStep):
            run = RunStep.of(spec, step)
            yield step.id, step.mode or spec.mode, [target or run.model.name for target in run.targets]
        elif isinstance(step, EmbedStep):
            yield step.id, step.mode or spec.mode, [step.model]


def _line(raw: bytes, requests: dict[str, LineKey], deployment: str, price: Price) -> BatchLine | None:
    """A line of an output or error file, tied to the request it answers (None: not one of this batch's)."""
    try:
        line = orjson.loads(raw)
        key = requests[line["custom_id"]]
        row = encode_key(unit_of(line["custom_id"])[0])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        log.warning("a batch line that is none of its requests was left out: %.200r", raw)
        return None
    response = line.get("response") or {}
    status = int(response.get("status_code") or 0)
    body = response.get("body")
    if body is None:  # no reply, only an error: as a live request answered 500 with that error
        body = {"error": line.get("error") or {"message": "no response"}}
    cost = live = 0.0
    if 200 <= status < 300 and isinstance(body, dict):
        body = _kept(body)
        usage = usage_of(body.get("usage"))  # (read as a live answer's usage is)
        cost = price.batch_cost(usage.prompt_tokens, usage.completion_tokens)
        live = price.cost(usage.prompt_tokens, usage.completion_tokens)
    return BatchLine(key, row, status, orjson.dumps(body), deployment, cost, live - cost)


def _kept(completion: dict[str, Any]) -> dict[str, Any]:
    """What a run reads of a chat completion (the answer's text, the model, the usage): a run in batch mode keeps
    every line until its rows take them. A body not shaped so is kept whole (it fails as a live one would)."""
    try:
        content = completion["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return completion
    return {"model": completion.get("model"), "usage": completion.get("usage"),
            "choices": [{"message": {"content": content}}]}
