"""Answers bought once: a row whose request was answered before (in this run, an earlier one, or another
workflow) takes that answer, and identical requests in flight together go upstream once.

The first of several identical requests holds a flight; the others wait for it to end, then find its answer in
the cache (or, if it failed, ask themselves). Which stored answers count follows the workflow's `cache`
setting: all (`use`), only those stored during this run (`refresh`), and none older than `ttl_s`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from engine.results.answer_cache import AnswerCache, CachedAnswer, now
from engine.spec.models import Cache, CacheMode


class AnswerReuse:
    """The cache as one run uses it: its mode and TTL, and the requests in flight."""

    @classmethod
    def of(cls, cache: AnswerCache | None, setting: Cache) -> AnswerReuse | None:
        """The reuse of `cache` under the workflow's setting; None without a cache or with `mode: off`."""
        return cls(cache, setting) if cache is not None and setting.mode is not CacheMode.OFF else None

    def __init__(self, cache: AnswerCache, setting: Cache) -> None:
        self.cache = cache
        self.setting = setting
        self.started = now()
        self._flights: dict[str, asyncio.Event] = {}

    @asynccontextmanager
    async def flight(self, key: str) -> AsyncIterator[CachedAnswer | None]:
        """A usable stored answer for `key`, or None: then this caller asks, and identical requests wait."""
        while (other := self._flights.get(key)) is not None:
            await other.wait()
        ended = self._flights[key] = asyncio.Event()
        try:
            yield await self.usable(key)
        finally:
            del self._flights[key]
            ended.set()

    async def keep(self, key: str, *, content: str, model: str, tokens_in: int, tokens_out: int,
                   cost: float) -> None:
        """Store an answer that passed the workflow's checks."""
        await self.cache.put(key, CachedAnswer(content, model, tokens_in, tokens_out, cost, now()))

    async def usable_keys(self, keys: list[str], *, before: float | None = None) -> set[str]:
        """Which of `keys` have a stored answer (stored before `before`, if given) that the workflow's `cache`
        setting lets this run take."""
        stored = await self.cache.stored_at(keys)
        return {key for key, at in stored.items() if self._takes(at) and (before is None or at < before)}

    def _takes(self, stored_at: float) -> bool:
        if self.setting.mode is CacheMode.REFRESH and stored_at < self.started:
            return False
        return self.setting.ttl_s is None or stored_at + self.setting.ttl_s >= now()

    async def usable(self, key: str) -> CachedAnswer | None:
        """The stored answer under `key` if the workflow's `cache` setting lets this run take it."""
        answer = await self.cache.get(key)
        return answer if answer is not None and self._takes(answer.stored_at) else None
