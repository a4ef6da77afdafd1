"""Which rows of a batch are sent: inputs present (all or any), outputs not already filled, not done before."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import polars as pl

from engine.results.store import Key, ResultStore
from engine.sources import Source
from engine.spec.flow import pipeline
from engine.spec.models import RequireMode, WorkflowSpec
from engine.spec.step_flow import source_inputs, written_columns


def _filled(column: str) -> pl.Expr:
    return pl.col(column).is_not_null() & (pl.col(column).cast(pl.Utf8).str.strip_chars() != "")


def send_mask(frame: pl.DataFrame, spec: WorkflowSpec) -> pl.Series:
    """True for the rows to send; the rest are skipped."""
    steps = pipeline(spec)
    inputs = [_filled(c) for c in source_inputs(steps)]
    ready = pl.all_horizontal(inputs) if spec.select.require is RequireMode.ALL else pl.any_horizontal(inputs)
    outputs = [c.name for c in written_columns(steps)]
    if spec.select.skip_filled and all(c in frame.columns for c in outputs):
        ready = ready & ~pl.all_horizontal([_filled(c) for c in outputs])
    return frame.select(ready.alias("send")).to_series()


@dataclass(frozen=True)
class Selected:
    """One batch of the source: its size, the rows `select` skips and those done before, and the rows to send
    (position in the batch, key, input values)."""

    height: int
    skipped: int
    done: int
    rows: list[tuple[int, Key, dict[str, Any]]]


async def rows_to_send(source: Source, spec: WorkflowSpec, store: ResultStore | None) -> AsyncIterator[Selected]:
    """The source's batches in order, each with the rows to send; `store` holds the rows done before (a resume)."""
    inputs = source_inputs(pipeline(spec))
    async for batch in source.batches():
        chosen = [i for i, send in enumerate(send_mask(batch.frame, spec).to_list()) if send]
        keys = [batch.keys[i] for i in chosen]
        done = await store.done_keys(keys) if store is not None else set()
        records = batch.frame[chosen].select(inputs).to_dicts() if chosen else []
        yield Selected(batch.frame.height, batch.frame.height - len(chosen), len(done),
                       [(i, key, record) for i, key, record in zip(chosen, keys, records, strict=True)
                        if key not in done])
