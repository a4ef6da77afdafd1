"""Texts to vectors through the gateway: several texts a request, each vector kept in the answer cache by content.

Rows ask one text at a time; the embedder gathers the texts asked within EMBED_WAIT_S (or `batch_size` of them)
into one request, so a window of rows in flight makes requests of many rows each. Retries follow the step's
limits; a batch that fails fails each of its rows with the reason.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson

from engine.gateway import BudgetExceeded, ChatClient, GatewayError, RequestRejected
from engine.results.answer_cache import embedding_key
from engine.results.store import ErrorClass
from engine.run.batching import Batcher
from engine.run.pause import PauseGate
from engine.run.reuse import AnswerReuse
from engine.spec.models import Retry

EMBED_WAIT_S = 0.002  # how long a text waits for others to share its request
MANY_AT_ONCE = 16  # requests in flight at once when a whole table is embedded


@dataclass(frozen=True)
class Embedded:
    """One text's vector, the deployment that made it, and its share of the request's tokens and cost."""

    vector: list[float]
    model: str
    tokens: int = 0
    cost: float = 0.0
    cached: bool = False
    attempts: int = 1


class EmbedFailed(Exception):
    """A text's request failed past its retries."""

    def __init__(self, error_class: ErrorClass, reason: str, attempts: int) -> None:
        super().__init__(reason)
        self.error_class = error_class
        self.attempts = attempts


class Embedder:
    """Embeds texts with one model: batched, retried, and cached by (upstream, model, text)."""

    def __init__(self, client: ChatClient, *, model: str, batch_size: int, retry: Retry, gate: PauseGate,
                 reuse: AnswerReuse | None) -> None:
        self.client = client
        self.model = model
        self.batch_size = batch_size
        self.limits = {ErrorClass.API: retry.api_error, ErrorClass.CONTENT: retry.content_error,
                       ErrorClass.SYSTEM: retry.system_error}
        self.gate = gate
        self.reuse = reuse
        self._batcher: Batcher[str, Embedded] = Batcher(self._request, size=batch_size, wait_s=EMBED_WAIT_S)

    def key(self, text: str) -> str:
        """The cache key of a text's vector."""
        return embedding_key(self.model, text, self.reuse.cache.scope if self.reuse is not None else "")

    async def embed(self, text: str, *, ask: Callable[[str], Awaitable[Embedded]] | None = None) -> Embedded:
        """The text's vector (EmbedFailed, or an Unsent error, when it cannot be had). `ask` embeds a text the
        answer cache does not hold (default: `live`)."""
        ask = ask or self.live
        if self.reuse is None:
            return await ask(text)
        key = self.key(text)
        async with self.reuse.flight(key) as stored:
            if stored is not None:
                return Embedded(orjson.loads(stored.content), stored.model, cached=True, attempts=0)
            made = await ask(text)
            await self.reuse.keep(key, content=orjson.dumps(made.vector).decode(), model=made.model,
                                  tokens_in=made.tokens, tokens_out=0, cost=made.cost)
            return made

    async def embed_all(self, texts: list[str]) -> list[Embedded]:
        """Every text's vector, in order, MANY_AT_ONCE requests at a time (a whole table)."""
        if self.reuse is not None:
            self.reuse.cache.prefetch([self.key(t) for t in texts])
        done: list[Embedded] = []
        step = self.batch_size * MANY_AT_ONCE
        for start in range(0, len(texts), step):
            done += await asyncio.gather(*(self.embed(t) for t in texts[start:start + step]))
        return done

    async def live(self, text: str) -> Embedded:
        """The text's vector from the gateway now, in one request with the texts other rows ask meanwhile."""
        return await self._batcher.submit(text)

    async def _request(self, texts: list[str]) -> list[Embedded]:
        errors: Counter[ErrorClass] = Counter()
        attempts = 0

        def give_up(kind: ErrorClass, reason: str) -> EmbedFailed | None:
            errors[kind] += 1
            return EmbedFailed(kind, reason[:2000], attempts) if errors[kind] > self.limits[kind] else None

        while True:
            await self.gate.wait()
            attempts += 1
            try:
                result = await self.client.embed(texts, model=self.model)
            except BudgetExceeded:
                raise
            except RequestRejected as exc:  # the caller's fault: asking again would not help
                raise EmbedFailed(ErrorClass.API, str(exc), attempts) from None
            except GatewayError as exc:
                self.gate.trip(str(exc))
                if failed := give_up(ErrorClass.API, str(exc)):
                    raise failed from None
                continue
            except Exception as exc:  # a bug or an environment fault: retried within limits
                if failed := give_up(ErrorClass.SYSTEM, f"{type(exc).__name__}: {exc}"):
                    raise failed from None
                continue
            if len(result.vectors) != len(texts) or any(not v for v in result.vectors):
                if failed := give_up(ErrorClass.CONTENT, f"{len(result.vectors)} vectors for {len(texts)} texts"):
                    raise failed
                continue
            return _shared(texts, result.vectors, result.model, result.usage.prompt_tokens, result.usage.cost,
                           attempts)


def _shared(texts: list[str], vectors: list[list[float]], model: str, tokens: int, cost: float,
            attempts: int) -> list[Embedded]:
    """Each text's vector with its share of the request's tokens and cost (by length)."""
    lengths = [max(1, len(t)) for t in texts]
    total = sum(lengths)
    return [Embedded(list(vector), model, round(tokens * n / total), cost * n / total, attempts=attempts)
            for vector, n in zip(vectors, lengths, strict=True)]
