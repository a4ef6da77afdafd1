"""Open the source a spec names, where the path policy allows, and check it before any request."""

from __future__ import annotations

import asyncio
from pathlib import Path

from engine.errors import InputError
from engine.sources.base import Source, check_columns, check_distinct_columns
from engine.sources.excel import excel_source
from engine.sources.files import csv_source, inline_source, jsonl_source, parquet_source
from engine.sources.mysql_connection import Connections
from engine.spec.flow import pipeline
from engine.spec.models import (
    CsvSourceSpec,
    ExcelSourceSpec,
    InlineSourceSpec,
    JsonlSourceSpec,
    MysqlSourceSpec,
    ParquetSourceSpec,
    SourceSpec,
    WorkflowSpec,
)
from engine.spec.paths import PathPolicy
from engine.spec.step_flow import source_inputs


def _existing_file(path: str, paths: PathPolicy, field: str) -> Path:
    resolved = paths.resolve(path, field=f"{field}.path")
    if not resolved.is_file():
        shown = paths.shown(path)
        raise InputError(f"{shown}: no such file" if not resolved.exists() else f"{shown}: not a file")
    return resolved


async def open_source(spec: WorkflowSpec, *, paths: PathPolicy, connections: Connections) -> Source:
    """The spec's source, opened and checked: file, sheet, input columns, key column."""
    config = spec.source
    source = await open_table(config, paths=paths, connections=connections)
    key = getattr(config, "key", None)
    check_columns(source, [*source_inputs(pipeline(spec)), *([key] if key else [])], what="input or key")
    check_key = getattr(source, "check_key", None)
    if check_key is not None:
        check_key()
    return source


async def open_table(config: SourceSpec, *, paths: PathPolicy, connections: Connections,
                     field: str = "source") -> Source:
    """A table of rows (a source, or a retrieve step's knowledge table at `field`), opened: its file or server."""
    source: Source
    if isinstance(config, CsvSourceSpec):
        source = csv_source(_existing_file(config.path, paths, field), key=config.key, batch_size=config.batch_size,
                            separator=config.separator, encoding=config.encoding)
    elif isinstance(config, ParquetSourceSpec):
        source = parquet_source(_existing_file(config.path, paths, field), key=config.key, batch_size=config.batch_size)
    elif isinstance(config, JsonlSourceSpec):
        source = jsonl_source(_existing_file(config.path, paths, field), key=config.key, batch_size=config.batch_size)
    elif isinstance(config, ExcelSourceSpec):
        source = await asyncio.to_thread(
            excel_source, _existing_file(config.path, paths, field), sheet=config.sheet,
            header_row=config.header_row, key=config.key, batch_size=config.batch_size, limits=paths.limits)
    elif isinstance(config, InlineSourceSpec):
        source = inline_source(config.rows, key=config.key, batch_size=10_000)
    elif isinstance(config, MysqlSourceSpec):
        from engine.sources.mysql import MysqlTableSource

        source = await MysqlTableSource.open(config, connections)
    else:  # pragma: no cover - the spec's union is closed
        raise InputError(f"unsupported source kind {config.kind!r}")
    check_distinct_columns(source)
    return source
