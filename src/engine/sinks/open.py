"""Pick the sink a spec names (or the default beside the input)."""

from __future__ import annotations

from pathlib import Path

from engine.sinks.base import Sink
from engine.sinks.files import FileSink
from engine.sources.mysql_connection import Connections
from engine.spec.flow import list_columns, output_fields
from engine.spec.models import (
    CsvSourceSpec,
    ExcelSourceSpec,
    JsonlSourceSpec,
    MysqlSinkSpec,
    MysqlSourceSpec,
    ParquetSourceSpec,
    WorkflowSpec,
)
from engine.spec.paths import PathPolicy

LIST_KINDS = ("parquet", "jsonl")  # formats whose cells hold lists of numbers
_SUFFIX = {"csv": ".csv", "jsonl": ".jsonl", "parquet": ".parquet", "excel": ".xlsx"}


def default_output(spec: WorkflowSpec, paths: PathPolicy) -> tuple[Path, str]:
    """Without a sink: a file of the source's kind beside it, named `<stem>.rowloom<suffix>`."""
    source = spec.source
    if isinstance(source, CsvSourceSpec | JsonlSourceSpec | ParquetSourceSpec | ExcelSourceSpec):
        path = paths.resolve(source.path, field="source.path")
        return path.with_name(f"{path.stem}.rowloom{_SUFFIX[source.kind]}"), source.kind
    return paths.base_dir / f"{spec.name or 'output'}.rowloom.jsonl", "jsonl"


def file_sink(spec: WorkflowSpec, path: Path, kind: str) -> FileSink:
    """A file sink of `kind` for the spec's output columns (vectors as lists where the format holds lists)."""
    lists_kept = kind in LIST_KINDS
    return FileSink(path, kind, output_fields(spec, lists_kept=lists_kept),
                    lists=list_columns(spec) if lists_kept else {},
                    escape_formulas=getattr(spec.sink, "escape_formulas", True))


async def open_sink(spec: WorkflowSpec, *, paths: PathPolicy, connections: Connections,
                    output: Path | None = None) -> Sink:
    """The spec's sink, checked; `output` (the CLI's flag, or a job's own folder) overrides a file sink's path and is
    checked against the policy like any other."""
    config = spec.sink
    sink: Sink
    if isinstance(config, MysqlSinkSpec) or (config is None and isinstance(spec.source, MysqlSourceSpec)):
        from engine.sinks.mysql import MysqlWriteBack

        sink = MysqlWriteBack.from_spec(spec, connections)
    elif config is None:
        path, kind = default_output(spec, paths)
        sink = file_sink(spec, paths.resolve(str(output or path), field="sink.path"), kind)
    else:
        sink = file_sink(spec, paths.resolve(str(output or config.path), field="sink.path"), config.kind)
    await sink.check()
    return sink
