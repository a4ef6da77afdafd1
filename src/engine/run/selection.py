"""Which rows of a batch are sent: inputs present (all or any) and outputs not already filled."""

from __future__ import annotations

import polars as pl

from engine.spec.models import RequireMode, WorkflowSpec


def _filled(column: str) -> pl.Expr:
    return pl.col(column).is_not_null() & (pl.col(column).cast(pl.Utf8).str.strip_chars() != "")


def send_mask(frame: pl.DataFrame, spec: WorkflowSpec) -> pl.Series:
    """True for the rows to send; the rest are skipped."""
    inputs = [_filled(c) for c in spec.columns.input]
    ready = pl.all_horizontal(inputs) if spec.select.require is RequireMode.ALL else pl.any_horizontal(inputs)
    outputs = list(spec.columns.output.values())
    if spec.select.skip_filled and all(c in frame.columns for c in outputs):
        ready = ready & ~pl.all_horizontal([_filled(c) for c in outputs])
    return frame.select(ready.alias("send")).to_series()
