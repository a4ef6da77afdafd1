"""A retrieve step's knowledge table: its rows read once, their texts embedded once (and kept by content)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import polars as pl

from engine.errors import InputError
from engine.retrieval.index import Hit, KnowledgeIndex
from engine.sources.base import Source, check_columns
from engine.sources.mysql_connection import Connections
from engine.sources.open import open_table
from engine.spec.paths import PathPolicy
from engine.spec.step_models import Knowledge

Embed = Callable[[list[str]], Awaitable[list[list[float]]]]


@dataclass(frozen=True)
class KnowledgeTable:
    """The rows that have a text: their ids and texts, and the index of their vectors."""

    ids: list[Any]
    texts: list[str]
    index: KnowledgeIndex

    def search_many(self, queries: list[list[float]], k: int) -> list[list[tuple[Any, str, float]]]:
        """(id, text, score) of the k nearest rows of each query, best first."""
        found: list[list[Hit]] = self.index.search_many(queries, k)
        return [[(self.ids[h.position], self.texts[h.position], h.score) for h in hits] for hits in found]


async def open_knowledge(config: Knowledge, *, paths: PathPolicy, connections: Connections, field: str) -> Source:
    """The table at `config` (spec location `field`), opened, with its text and id columns checked."""
    source = await open_table(config.source, paths=paths, connections=connections, field=f"{field}.source")
    try:
        check_columns(source, [config.text, *([config.id] if config.id else [])], what="knowledge text or id")
    except BaseException:
        await source.close()
        raise
    return source


async def load_knowledge(config: Knowledge, *, paths: PathPolicy, connections: Connections, field: str,
                         embed: Embed) -> KnowledgeTable:
    """Read the table at `config` (spec location `field`), embed its texts with `embed`, index the vectors."""
    source = await open_knowledge(config, paths=paths, connections=connections, field=field)
    try:
        ids: list[Any] = []
        texts: list[str] = []
        position = 0
        async for batch in source.batches():
            column_texts = batch.frame.get_column(config.text).cast(pl.Utf8).to_list()
            column_ids = batch.frame.get_column(config.id).to_list() if config.id else None
            for i, text in enumerate(column_texts):
                if text is not None and text.strip():
                    texts.append(text)
                    ids.append(column_ids[i] if column_ids is not None else position + i)
            position += batch.frame.height
    finally:
        await source.close()
    if not texts:
        raise InputError(f"{field}: the knowledge table has no row with a text in {config.text!r}")
    unique = list(dict.fromkeys(texts))
    by_text = dict(zip(unique, await embed(unique), strict=True))
    dims = {len(v) for v in by_text.values()}
    if len(dims) != 1:
        raise InputError(f"{field}: the embedding model gave vectors of different lengths ({sorted(dims)})")
    index = await asyncio.to_thread(KnowledgeIndex, [by_text[t] for t in texts])
    return KnowledgeTable(ids, texts, index)
