"""Provider batches' answers, replayed to the rows that asked for them.

A run in batch mode goes in rounds. Each round runs every row that is not done, as a live run would, but a
request of a step in batch mode is answered from the lines its earlier batches returned; one with no line yet is
written down for the next batch, and its row stops unsent (`Deferred`) until that batch ends. A row's attempts
replay in the same order every round, so its n-th request of a kind takes that request's n-th line: a re-ask, or
a retry after an error line, becomes one more line in a next batch, or is sent live (the deployment's
`batch.retry`). With the answer cache on, identical requests share one line, as live ones share one answer.
Validation, re-asks, fallbacks, retries, the answer cache and the store are the live run's own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import replace
from typing import Any

from engine.gateway import (
    BudgetExceeded,
    ChatClient,
    ChatRequest,
    ChatResult,
    Deferred,
    GatewayError,
    RequestRejected,
    Unsent,
    Usage,
)
from engine.gateway.batch_api import CHAT_URL, EMBEDDINGS_URL, request_line
from engine.gateway.batch_providers import BatchDeployments
from engine.gateway.config import Deployment, Price
from engine.gateway.openai_client import parse_completion, parse_embeddings, raise_for_status
from engine.gateway.transport import UpstreamReply
from engine.results.answer_cache import embedding_key, request_key
from engine.results.batch_ledger import BatchLedger, BatchLine, LineKey
from engine.results.store import ErrorClass, Key, Unit, encode_key
from engine.run.batch_files import DEFAULT_MAX_TOKENS, PendingBatch, PlannedRequest, custom_id, max_batch_cost
from engine.run.embedder import Embedded, Embedder, EmbedFailed

Flush = Callable[[PendingBatch], Awaitable[BudgetExceeded | None]]


class BatchAnswers:
    """One round's replay of the lines stored so far, and the requests it found unanswered (sent in batches as
    soon as a deployment has a batch's worth, through `flush`; the rest once the round ends)."""

    def __init__(self, ledger: BatchLedger, *, client: ChatClient, deployments: BatchDeployments,
                 batched: Collection[tuple[str, str]], shared: bool, flush: Flush, live: bool = False,
                 live_lines: Collection[LineKey] = (), output_tokens: int = DEFAULT_MAX_TOKENS) -> None:
        self.batched = batched  # the (step, model) pairs whose requests go in batches
        self.client = client  # asked for what is sent live
        self.deployments = deployments  # which deployment takes a model's batches (and its retry policy)
        self.shared = shared  # identical requests share one line (the answer cache is on: as live ones share)
        self.live = live  # everything without a line goes live (the deadline is near)
        self.live_lines = live_lines  # requests an ended batch left unanswered, sent live by its `on_expiry`
        self.flush = flush  # submits a full batch during the round; gives back a budget's refusal
        self.output_tokens = output_tokens  # an answer's tokens at most when a request sets no max_tokens
        self.ledger = ledger
        self._lines: dict[LineKey, BatchLine] = {}  # of the rows in flight (taken from the ledger by window)
        # By (deployment, endpoint): the requests of its next batch, and the flush of the last one going on.
        self._pending: dict[tuple[str, str], PendingBatch] = {}
        self._flushing: dict[tuple[str, str], asyncio.Event] = {}
        self.flushed = False  # some of this round's requests were submitted during it

    @property
    def waits(self) -> bool:
        """Whether some row of the round waits for a batch."""
        return self.flushed or bool(self._pending)

    def take_pending(self) -> list[PendingBatch]:
        """The batches the round leaves to submit (each closed by the caller)."""
        pending, self._pending = list(self._pending.values()), {}
        return pending

    async def prefetch(self, keys: Sequence[Key]) -> None:
        """Take the lines answering these rows (the next window of rows to run) from the ledger."""
        for line in await self.ledger.lines_of([encode_key(key) for key in keys]):
            self._lines[line.key] = line

    def close(self) -> None:
        """Delete the files of the batches not submitted (the run stopped)."""
        for pending in self.take_pending():
            pending.close()

    def for_step(self, step: str, model: str) -> BatchAnswers | None:
        """These answers for a step's requests to `model`, if they go in batches (None: live)."""
        return self if (step, model) in self.batched else None

    async def chat(self, request: ChatRequest, key: Key, unit: Unit, asks: dict[str, int]) -> ChatResult:
        """The line answering this ask of the row's request (its error raised as a live one would be); Deferred
        when there is none yet. `asks` is the row's own (for this unit): how often it asked each request so far
        this round ("": whether a line answered it, so that what it asks next is a retry)."""
        line = await self._line_for(key, unit, request_key(request), asks, model=request.model, url=CHAT_URL,
                                    body=lambda deployment: self.deployments.body(deployment.name, request),
                                    max_cost=lambda price: max_batch_cost(request, price,
                                                                          output_tokens=self.output_tokens))
        if line is None:
            return await self.client.chat(request)
        return answer_of(line, upstream=self.deployments[line.deployment].model)

    async def embedded(self, text: str, *, embedder: Embedder, key: Key, unit: Unit) -> Embedded:
        """The row's text's vector from its lines, the step's retries counted over them as over live requests
        (an error line asks again in a next batch, or live, by the deployment's `batch.retry`); Deferred when a
        line is still to come. A text asked live goes through `embedder`."""
        asks: dict[str, int] = {}
        failures = 0
        while True:
            try:
                line = await self._line_for(key, unit, embedding_key(embedder.model, text), asks, model=embedder.model,
                                            url=EMBEDDINGS_URL,
                                            body=lambda deployment: {"model": deployment.model, "input": [text]},
                                            max_cost=lambda price: price.batch_cost(len(text.encode()), 0))
                if line is None:
                    made = await embedder.live(text)
                    return replace(made, attempts=made.attempts + failures)
                upstream = self.deployments[line.deployment].model
                result = parse_embeddings(replayed(line, upstream=upstream).body, upstream)
                return Embedded(result.vectors[0], batch_model(line.deployment), tokens=result.usage.prompt_tokens,
                                cost=line.cost, attempts=failures + 1)
            except Unsent:
                raise
            except (GatewayError, IndexError) as exc:  # (IndexError: an answer of no vector)
                failures += 1
                if isinstance(exc, RequestRejected) or failures > embedder.limits[ErrorClass.API]:
                    raise EmbedFailed(ErrorClass.API, str(exc)[:2000] or "no vector", failures) from None

    async def _line_for(self, key: Key, unit: Unit, digest: str, asks: dict[str, int], *, model: str, url: str,
                        body: Callable[[Deployment], dict[str, Any]], max_cost: Callable[[Price], float]
                        ) -> BatchLine | None:
        """The line answering this ask of a row's request (`digest` names what it asks), or None when the request
        goes live; when it waits for a batch, it is written down for one (`body` and `max_cost` of the deployment
        that takes it) and Deferred is raised."""
        row_id = custom_id(key, unit)
        asked = ("" if self.shared else row_id, digest)
        ask = asks.get(digest, 0)
        line = self._lines.pop((*asked, ask), None)  # each line answers one ask a round
        if line is None and self.shared:  # identical requests share one line: another row's may answer this one
            line = await self.ledger.line((*asked, ask))
        if line is not None:
            asks[digest] = ask + 1
            asks[""] = 1
            return line
        deployment = self.deployments.for_model(model)
        if self.live or deployment is None or deployment.batch is None or (*asked, ask) in self.live_lines or \
                (asks.get("") and deployment.batch.retry == "live"):
            asks[digest] = ask + 1
            return None
        batch = (deployment.name, url)
        while (uploading := self._flushing.get(batch)) is not None:
            await uploading.wait()  # a batch's worth at most waits: none more while one uploads
        line_key: LineKey = (*asked, ask)
        pending = self._pending.get(batch)
        if pending is None or not pending.holds(line_key):  # (else another row wants it: its line answers both)
            text = request_line(row_id, body(deployment), url=url)
            support = deployment.batch
            if len(text) > support.max_bytes:  # larger than a batch's file may be: it can only go live
                asks[digest] = ask + 1
                return None
            if pending is not None and not pending.fits(len(text), max_requests=support.max_requests,
                                                        max_bytes=support.max_bytes):
                await self._flush(batch)  # (it takes the full batch: this request starts the next)
                pending = None
            if pending is None:
                pending = self._pending[batch] = PendingBatch(deployment.name, url)
            pending.add(text, PlannedRequest(row_id, line_key, max_cost(deployment.price)))
            if pending.requests >= support.max_requests:
                await self._flush(batch)
        raise Deferred(f"{model}: waiting for a provider batch")

    async def _flush(self, batch: tuple[str, str]) -> None:
        """Submit the deployment's full batch now (a round's requests are not all held until it ends); a budget's
        refusal raised."""
        pending = self._pending.pop(batch)
        ended = self._flushing[batch] = asyncio.Event()
        self.flushed = True
        try:
            refusal = await self.flush(pending)
        finally:
            pending.close()
            del self._flushing[batch]
            ended.set()
        if refusal is not None:
            raise refusal


def batch_model(deployment: str) -> str:
    """How a result answered in a provider batch names its model: the deployment, marked, so that usage, a job's
    models and its items show batch answers (and their cost) apart from live ones."""
    return f"{deployment} (batch)"


def answer_of(line: BatchLine, *, upstream: str) -> ChatResult:
    """A line's answer, or its failure raised as the gateway's error for the same reply to a live request (named by
    the `upstream` model, as a live one is)."""
    result = parse_completion(replayed(line, upstream=upstream), upstream, 0.0)
    usage = result.usage
    return ChatResult(result.content, batch_model(line.deployment),
                      Usage(usage.prompt_tokens, usage.completion_tokens, line.cost, usage.cached_tokens))


def replayed(line: BatchLine, *, upstream: str) -> UpstreamReply:
    """A line's reply; its failure raised as the gateway's error for the same reply to a live request."""
    reply = UpstreamReply(line.status or 500, {}, line.body)
    try:
        raise_for_status(reply, upstream)
    except GatewayError as exc:
        exc.replayed = True  # an upstream's past reply: no reason to pause the requests going now
        raise
    return reply
