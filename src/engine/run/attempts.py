"""One row from prompt to a valid answer or a failure with its reason, within the spec's retry limits."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from opentelemetry import trace

from engine.errors import ContentError
from engine.gateway import (
    ChatClient,
    ChatRequest,
    GatewayError,
    RequestRejected,
    Unsent,
    UpstreamError,
    Usage,
)
from engine.results.answer_cache import request_key
from engine.results.store import ErrorClass, Key, RowResult, RowStatus, Unit
from engine.run.answers import AnswerContract
from engine.run.pause import PauseGate
from engine.run.prompts import PromptRenderer
from engine.run.reuse import AnswerReuse
from engine.spec.flow import RunStep
from engine.spec.models import ModelChoice

if TYPE_CHECKING:
    from engine.run.batch_answers import BatchAnswers

MAX_RETRY_AFTER_S = 60.0
TRACER = "rowloom.engine"


def attempt_tracer() -> trace.Tracer | None:
    """The tracer for row-attempt spans, or None while no span would go anywhere: no tracer provider installed,
    or an SDK provider without a span processor (a worker with no exporter, which still gives each job a trace
    id). A span per attempt costs about a tenth of the engine's CPU per row when recorded, ~4% as a no-op."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider):
        return None
    # The SDK keeps its processors privately; a provider that does not look like the SDK's is assumed to record.
    processors = getattr(getattr(provider, "_active_span_processor", None), "_span_processors", None)
    if processors is not None and not processors:
        return None
    return trace.get_tracer(TRACER)


def row_request(choice: ModelChoice, messages: list[dict[str, str]], *, model: str,
                response_format: dict[str, Any] | None) -> ChatRequest:
    """The request a row's messages make to `model` (its cache key is this request's)."""
    return ChatRequest(model=model, messages=messages, temperature=choice.temperature,
                       max_tokens=choice.max_tokens, response_format=response_format)


def response_format_of(step: RunStep) -> dict[str, Any] | None:
    """The `response_format` a row's requests carry: the answer's JSON schema when the step asks for it."""
    return AnswerContract.of(step.step).response_format() if step.step.prompt.json_schema else None


def row_cache_key(step: RunStep, messages: list[dict[str, str]], *, scope: str,
                  response_format: dict[str, Any] | None, model: str | None = None) -> str:
    """The answer cache's key of a row's first request (to the step's model, or to `model` of a fan-out)."""
    return request_key(row_request(step.model, messages, model=model or step.model.name,
                                   response_format=response_format), scope)


@dataclass(frozen=True)
class RowTask:
    """A row to ask about: its key, its input values, its messages and its request's cache key (if cached)."""

    key: Key
    record: dict[str, Any]
    messages: list[dict[str, str]]
    cache_key: str | None = None


class RowProcessor:
    """Asks the model about rows, one attempt at a time, and classifies every failure."""

    def __init__(self, step: RunStep, client: ChatClient, gate: PauseGate,
                 reuse: AnswerReuse | None = None, *, model: str | None = None, unit: Unit = ("", ""),
                 batch: BatchAnswers | None = None) -> None:
        self.step = step
        self.model = model or step.model.name  # in a fan-out, each model has a processor of its own
        self.unit = unit
        self.step_id, self.target = unit  # what its results are of: ("", "") a row's own (a one-step workflow)
        self.batch = batch  # the step's requests are answered by provider batches
        self.reuse = reuse
        self.client = client
        self.gate = gate
        self.contract = AnswerContract.of(step.step)
        self.renderer = PromptRenderer(step.step.prompt)
        self.response_format = response_format_of(step)
        self.limits = {ErrorClass.API: step.retry.api_error, ErrorClass.CONTENT: step.retry.content_error,
                       ErrorClass.SYSTEM: step.retry.system_error}
        self.tracer = attempt_tracer()

    def tasks(self, rows: list[tuple[Key, dict[str, Any]]]) -> list[RowTask]:
        """Rows made ready to ask: their messages rendered and, with the cache on, their stored answers asked for
        all together (so a row finds its answer waiting when its turn comes)."""
        made = [RowTask(key, record, self.renderer.messages(record)) for key, record in rows]
        if self.reuse is None:
            return made
        scope = self.reuse.cache.scope
        made = [RowTask(t.key, t.record, t.messages,
                        row_cache_key(self.step, t.messages, scope=scope, response_format=self.response_format,
                                      model=self.model))
                for t in made]
        self.reuse.cache.prefetch([t.cache_key for t in made if t.cache_key is not None])
        return made

    async def process(self, task: RowTask) -> RowResult:
        """The row's answer: reused when the same request was answered before, else asked."""
        messages = task.messages
        if self.reuse is None or task.cache_key is None:
            return (await self._ask(task, messages))[0]
        key = task.cache_key
        async with self.reuse.flight(key) as stored:
            if stored is not None:
                try:
                    outputs = self.contract.check(stored.content)
                except ContentError:
                    pass  # the workflow's checks changed since it was stored: ask again
                else:
                    return RowResult(key=task.key, status=RowStatus.DONE, outputs=outputs, model=stored.model,
                                     step=self.step_id, target=self.target,
                                     cached=True, saved=stored.cost)
            result, content = await self._ask(task, messages)
            if content is not None:
                await self.reuse.keep(key, content=content, model=result.model or "", tokens_in=result.tokens_in,
                                      tokens_out=result.tokens_out, cost=result.cost)
            return result

    def _request(self, messages: list[dict[str, str]], model: str) -> ChatRequest:
        return row_request(self.step.model, messages, model=model, response_format=self.response_format)

    async def _ask(self, task: RowTask, messages: list[dict[str, str]]) -> tuple[RowResult, str | None]:
        """Attempts until the answer is valid or an error class runs out of retries; with the valid answer's text."""
        tries = Attempts(self, task.key, messages)
        while True:
            await self.gate.wait()
            tries.count += 1
            outcome = await self._attempt(tries)
            if isinstance(outcome, Ended):
                return outcome.result, outcome.content
            if outcome:  # the upstream asked for a wait (Retry-After)
                await asyncio.sleep(min(outcome, MAX_RETRY_AFTER_S))

    async def _attempt(self, tries: Attempts) -> Ended | float:
        """One request and its answer checked: how the row ended, or the seconds to wait before asking again."""
        model = tries.model
        with contextlib.nullcontext(trace.INVALID_SPAN) if self.tracer is None else \
                self.tracer.start_as_current_span("row.attempt", attributes={
                    "rowloom.row.key": str(tries.key), "rowloom.attempt": tries.count, "gen_ai.request.model": model,
                }) as span:
            try:
                request = self._request(tries.messages, model)
                result = await (self.client.chat(request) if self.batch is None else
                                self.batch.chat(request, tries.key, self.unit, tries.asks))
            except Unsent:
                raise  # not the row's failure: the row is sent later (on resume, or once its batch ended)
            except Exception as exc:
                span.set_attribute("rowloom.outcome", (ErrorClass.API if isinstance(exc, GatewayError)
                                                       else ErrorClass.SYSTEM).value)
                return self._unanswered(tries, exc)
            tries.usage += result.usage
            span.set_attributes({"gen_ai.response.model": result.model,
                                 "gen_ai.usage.input_tokens": result.usage.prompt_tokens,
                                 "gen_ai.usage.output_tokens": result.usage.completion_tokens})
            try:
                answer = self.contract.check(result.content)
            except ContentError as exc:
                span.set_attribute("rowloom.outcome", ErrorClass.CONTENT.value)
                return self._not_accepted(tries, result.content, result.model, exc)
            span.set_attribute("rowloom.outcome", "done")
            return Ended(tries.ended(RowStatus.DONE, outputs=answer, model=result.model), result.content)

    def _unanswered(self, tries: Attempts, exc: Exception) -> Ended | float:
        """A request with no answer: refused as the caller's fault, the row fails now; another gateway error counts
        toward `api_error` (and toward the pause of all requests); anything else toward `system_error`."""
        if isinstance(exc, RequestRejected):
            return Ended(tries.ended(RowStatus.FAILED, error_class=ErrorClass.API, error=str(exc)[:2000],
                                     model=tries.model), None)
        if isinstance(exc, GatewayError):
            if not exc.replayed:
                self.gate.trip(str(exc))
            return tries.give_up(ErrorClass.API, str(exc)) or \
                ((exc.retry_after_s or 0.0) if isinstance(exc, UpstreamError) else 0.0)
        # a bug or an environment fault: a system error, retried within limits
        return tries.give_up(ErrorClass.SYSTEM, f"{type(exc).__name__}: {exc}") or 0.0

    def _not_accepted(self, tries: Attempts, content: str, answered_by: str, exc: ContentError) -> Ended | float:
        """An answer the contract refused: counted toward `content_error`; the model is asked again with the
        reason (the fallback model once `fallback_after` such answers came)."""
        if failed := tries.give_up(ErrorClass.CONTENT, str(exc), answered_by):
            return failed
        tries.messages = [*tries.messages, {"role": "assistant", "content": content},
                          {"role": "user", "content": f"Your answer was not accepted: {exc}. "
                                                      "Answer again with only the corrected JSON object."}]
        if self.step.model.fallback and tries.errors[ErrorClass.CONTENT] >= self.step.model.fallback_after:
            tries.model = self.step.model.fallback
        return 0.0


class Ended(NamedTuple):
    """How a row's attempts ended, and the valid answer's text (None: it failed)."""

    result: RowResult
    content: str | None


class Attempts:
    """One row's attempts so far: their count, the failures of each class, the usage, the model asked and the
    conversation sent (an answer not accepted adds itself and the reason)."""

    __slots__ = ("asks", "count", "errors", "key", "messages", "model", "processor", "started", "usage")

    def __init__(self, processor: RowProcessor, key: Key, messages: list[dict[str, str]]) -> None:
        self.processor = processor
        self.key = key
        self.messages = messages
        self.model = processor.model
        self.count = 0
        self.errors: Counter[ErrorClass] = Counter()
        self.usage = Usage()
        self.started = time.monotonic()
        self.asks: dict[str, int] = {}  # in batch mode: the asks of each request (see BatchAnswers.chat)

    def ended(self, status: RowStatus, **fields: Any) -> RowResult:
        """The row's result, with what the attempts used."""
        usage = self.usage
        return RowResult(key=self.key, status=status, attempts=self.count, latency_s=time.monotonic() - self.started,
                         tokens_in=usage.prompt_tokens, tokens_out=usage.completion_tokens, cost=usage.cost,
                         step=self.processor.step_id, target=self.processor.target, **fields)

    def give_up(self, kind: ErrorClass, reason: str, answered_by: str | None = None) -> Ended | None:
        """Count a failure of `kind`; the row's end once its class has no retry left (else None). The failure
        names the model that gave the bad answer, else the one asked."""
        self.errors[kind] += 1
        if self.errors[kind] <= self.processor.limits[kind]:
            return None
        return Ended(self.ended(RowStatus.FAILED, error_class=kind, error=reason[:2000],
                                model=answered_by or self.model), None)
