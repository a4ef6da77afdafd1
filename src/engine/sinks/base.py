"""The sink protocol and the merge of stored results into the source's rows."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

import polars as pl

from engine.results.settled import SettledRows
from engine.results.store import Key, ResultStore
from engine.sources.base import Source

WRITE_BEHIND_ROWS = 1_000  # rows merged and written at a time while the run goes on


class Sink(Protocol):
    """Where results go."""

    description: str

    async def check(self) -> None:
        """Raise InputError now if writing will fail later (before any request is sent)."""
        ...

    async def save(self, source: Source, store: ResultStore, *, settled: SettledRows | None = None) -> str:
        """Write every stored result; returns where the output is.

        With `settled`, the save starts while the run goes on and writes rows as they settle.
        """
        ...


def cell_text(value: Any) -> str | None:
    """An answer value as it is written into a cell."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


async def merged_frames(source: Source, store: ResultStore, outputs: Mapping[str, str], *,
                        settled: SettledRows | None = None,
                        lists: Mapping[str, bool] | None = None) -> AsyncIterator[pl.DataFrame]:
    """The source's rows with output columns filled from done results; other cells stay as they were.

    With `settled`, rows are merged a slice at a time, each once all its rows are settled. Output columns named
    in `lists` are lists (of numbers, where it says true); the others text.
    """
    position = 0
    async for batch in source.batches():
        step = WRITE_BEHIND_ROWS if settled is not None else max(1, batch.frame.height)
        for start in range(0, batch.frame.height, step):
            frame, keys = batch.frame.slice(start, step), batch.keys[start:start + step]
            position += frame.height
            if settled is not None:
                await settled.until(position)
            yield await _merged(frame, keys, store, outputs, lists or {})


async def _merged(frame: pl.DataFrame, keys: list[Key], store: ResultStore,
                  outputs: Mapping[str, str], lists: Mapping[str, bool]) -> pl.DataFrame:
    answers = await store.done_outputs(keys)
    for field, column in outputs.items():
        if column in lists:
            cells = [a.get(field) if (a := answers.get(k)) is not None else None for k in keys]
            frame = frame.with_columns(pl.Series(column, cells, dtype=pl.List(pl.Float64) if lists[column] else None,
                                                 strict=False))
            continue
        values = [cell_text(a.get(field)) if (a := answers.get(k)) is not None else None for k in keys]
        answer = pl.Series(column, values, dtype=pl.Utf8)
        if column in frame.columns:
            answer = pl.select(pl.coalesce(answer, frame.get_column(column).cast(pl.Utf8))).to_series()
        frame = frame.with_columns(answer.alias(column))
    return frame
