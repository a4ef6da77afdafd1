"""The columns a spec's steps read that neither the source nor an earlier step has: found before a job runs.

The source's columns are read where that is cheap and certain: an inline source's rows, a CSV's header line, a
Parquet file's schema. Other sources (JSON Lines, Excel, MySQL) are checked when the run opens them.
"""

from __future__ import annotations

import pyarrow as pa

from engine.errors import InputError
from engine.sources.files import csv_source, inline_source, parquet_source
from engine.spec.base import Location
from engine.spec.flow import pipeline
from engine.spec.models import CsvSourceSpec, InlineSourceSpec, ParquetSourceSpec, SourceSpec, WorkflowSpec
from engine.spec.paths import PathPolicy
from engine.spec.step_flow import step_location, step_reads, step_writes


def source_columns(source: SourceSpec, policy: PathPolicy) -> list[str] | None:
    """The source's column names, or None when they are not cheaply known (or the file cannot be read now)."""
    if isinstance(source, InlineSourceSpec):
        return list(inline_source(source.rows, key=None, batch_size=len(source.rows)).columns)
    if not isinstance(source, CsvSourceSpec | ParquetSourceSpec) or policy.problem(source.path) is not None:
        return None
    path = policy.resolve(source.path, field="source.path")
    try:  # the run's own readers, which read the header (or the schema) and nothing more when opened
        if isinstance(source, ParquetSourceSpec):
            return list(parquet_source(path, key=None, batch_size=source.batch_size).columns)
        return list(csv_source(path, key=None, batch_size=source.batch_size, separator=source.separator,
                               encoding=source.encoding).columns)
    except (InputError, OSError, ValueError, LookupError, pa.ArrowException):  # the run reports what is wrong
        return None


def source_column_errors(spec: WorkflowSpec, policy: PathPolicy) -> list[tuple[Location, str]]:
    """Each column a step reads that the source lacks and no earlier step writes, where the spec names it."""
    available = source_columns(spec.source, policy)
    if available is None:
        return []
    known = set(available)
    shown = ", ".join(available[:30]) + ("..." if len(available) > 30 else "")
    errors: list[tuple[Location, str]] = []
    steps = pipeline(spec)
    anywhere = {c.name for step in steps for c in step_writes(step)}  # read too early: the spec's own check says so
    for index, step in enumerate(steps):
        at: Location = step_location(index, step) if spec.steps is not None else ("columns",)
        for where, column in step_reads(step):
            if column not in known and column not in anywhere:
                errors.append(((*at, *where), f"column {column!r} is not in the source (columns: {shown}) and no "
                                              f"earlier step writes it"))
        known.update(c.name for c in step_writes(step))
    return errors
