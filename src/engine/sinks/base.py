"""The sink protocol and the merge of stored results into the source's rows."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

import polars as pl

from engine.results import ResultStore
from engine.sources.base import Source


class Sink(Protocol):
    """Where results go."""

    description: str

    async def check(self) -> None:
        """Raise InputError now if writing will fail later (before any request is sent)."""
        ...

    async def save(self, source: Source, store: ResultStore) -> str:
        """Write every stored result; returns where the output is."""
        ...


def cell_text(value: Any) -> str | None:
    """An answer value as it is written into a cell."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


async def merged_frames(source: Source, store: ResultStore,
                        outputs: Mapping[str, str]) -> AsyncIterator[pl.DataFrame]:
    """The source's batches with output columns filled from done results; other cells stay as they were."""
    async for batch in source.batches():
        answers = await store.done_outputs(batch.keys)
        frame = batch.frame
        for field, column in outputs.items():
            values = [cell_text(a.get(field)) if (a := answers.get(k)) is not None else None for k in batch.keys]
            answer = pl.Series(column, values, dtype=pl.Utf8)
            if column in frame.columns:
                answer = pl.select(pl.coalesce(answer, frame.get_column(column).cast(pl.Utf8))).to_series()
            frame = frame.with_columns(answer.alias(column))
        yield frame
