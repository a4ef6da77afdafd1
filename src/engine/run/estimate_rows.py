"""The rows an estimate counts: each row's input tokens and answer-cache key, counted once and kept.

An `EstimateMemo` keeps them by what decides them: the source file unchanged (same size, modification time and
inode), the same spec, tokenizers and cache scope. A repeat (the estimate a job makes right after the one its
user asked for, or the same table estimated again) then skips reading, rendering and tokenizing, and only asks
the answer cache which rows it would answer now.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass

from engine.results.answer_cache import AnswerCache
from engine.results.store import ResultStore
from engine.run.attempts import response_format_of, row_cache_key
from engine.run.prompts import PromptRenderer
from engine.run.reuse import AnswerReuse
from engine.run.selection import rows_to_send
from engine.run.tokens import count_messages
from engine.sources import Source
from engine.spec.flow import RunStep
from engine.spec.models import WorkflowSpec

MEMO_ROWS = 250_000  # rows an EstimateMemo keeps at most (~200 bytes each), the least recently used dropped first


@dataclass(frozen=True)
class CountedBatch:
    """One source batch as an estimate counts it: its rows to send, each with its tokens and cache key."""

    height: int
    skipped: int
    done: int
    tokens: list[tuple[int, ...]]  # a row's input tokens by tokenizer (in `counted_by` order)
    keys: list[str] | None  # a row's answer-cache key (None: the cache is not asked)


class CachedRows:
    """Which rows' requests the answer cache would answer: one stored (and usable under the workflow's `cache`
    setting), or met earlier in the run (identical requests go upstream once)."""

    def __init__(self, step: RunStep, spec: WorkflowSpec, cache: AnswerCache | None,
                 stored_before: float | None = None) -> None:
        self.step = step
        self.stored_before = stored_before
        self.reuse = AnswerReuse.of(cache, spec.cache)
        self.response_format = response_format_of(step)
        self.seen: set[str] = set()

    @property
    def scope(self) -> str | None:
        """The cache's scope (None: the cache is not asked)."""
        return self.reuse.cache.scope if self.reuse is not None else None

    def keys_of(self, batch: list[list[dict[str, str]]]) -> list[str] | None:
        """Each row's cache key (None when the cache is not asked)."""
        reuse = self.reuse
        if reuse is None:
            return None
        return [row_cache_key(self.step, messages, scope=reuse.cache.scope, response_format=self.response_format)
                for messages in batch]

    async def sent(self, keys: list[str]) -> list[bool]:
        """Whether each row's request would be sent: not answered by the cache, nor met earlier in the run."""
        assert self.reuse is not None
        fresh = [key for key in dict.fromkeys(keys) if key not in self.seen]
        known = await self.reuse.usable_keys(fresh, before=self.stored_before)
        sent = []
        for key in keys:
            sent.append(key not in self.seen and key not in known)
            self.seen.add(key)
        return sent


async def counted_batches(source: Source, spec: WorkflowSpec, store: ResultStore | None, renderer: PromptRenderer,
                          cached: CachedRows, counted_by: dict[str, str]) -> AsyncIterator[CountedBatch]:
    """The source's batches, each row rendered, counted by every tokenizer and keyed for the cache."""
    async for selected in rows_to_send(source, spec, store):
        batch = [renderer.messages(record) for _, _, record in selected.rows]
        # In a thread: tokenizing a batch takes long enough to hold up everything else the loop serves.
        tokens = await asyncio.to_thread(_row_tokens, batch, counted_by)
        yield CountedBatch(selected.height, selected.skipped, selected.done, tokens, cached.keys_of(batch))


def _row_tokens(batch: list[list[dict[str, str]]], counted_by: dict[str, str]) -> list[tuple[int, ...]]:
    models = list(counted_by.values())
    return [tuple(count_messages(messages, model) for model in models) for messages in batch]


class EstimateMemo:
    """Counted batches of recent estimates, by source file and spec (see the module)."""

    def __init__(self, max_rows: int = MEMO_ROWS) -> None:
        self.max_rows = max_rows
        self._kept: OrderedDict[str, list[CountedBatch]] = OrderedDict()
        self._rows = 0
        self.hits = 0

    def key(self, source: Source, spec: WorkflowSpec, counted_by: dict[str, str], scope: str | None) -> str | None:
        """What decides the counts; None for a source that is not a file (a table can change unseen)."""
        path = getattr(source, "path", None)
        if path is None:
            return None
        try:
            stat = os.stat(path)
        except OSError:
            return None
        decided = (str(path), stat.st_size, stat.st_mtime_ns, stat.st_ino, spec.model_dump_json(),
                   sorted(counted_by.items()), scope)
        return hashlib.sha256(repr(decided).encode()).hexdigest()

    def get(self, key: str) -> list[CountedBatch] | None:
        """The batches kept under `key`."""
        batches = self._kept.get(key)
        if batches is not None:
            self._kept.move_to_end(key)
            self.hits += 1
        return batches

    def put(self, key: str, batches: list[CountedBatch]) -> None:
        """Keep `batches` (dropping the least recently used beyond `max_rows`)."""
        rows = sum(len(b.tokens) for b in batches)
        if rows > self.max_rows:
            return
        self._kept[key] = batches
        self._rows += rows
        while self._rows > self.max_rows:
            _, dropped = self._kept.popitem(last=False)
            self._rows -= sum(len(b.tokens) for b in dropped)
