"""Pick the sink a spec names (or the default beside the input)."""

from __future__ import annotations

from pathlib import Path

from engine.sinks.base import Sink
from engine.sinks.files import FileSink
from engine.sources.open import resolve
from engine.spec.models import (
    CsvSourceSpec,
    ExcelSourceSpec,
    JsonlSourceSpec,
    MysqlSinkSpec,
    MysqlSourceSpec,
    ParquetSourceSpec,
    WorkflowSpec,
)

_SUFFIX = {"csv": ".csv", "jsonl": ".jsonl", "parquet": ".parquet", "excel": ".xlsx"}


def default_output(spec: WorkflowSpec, base_dir: Path) -> tuple[Path, str]:
    """Without a sink: a file of the source's kind beside it, named `<stem>.rowloom<suffix>`."""
    source = spec.source
    if isinstance(source, CsvSourceSpec | JsonlSourceSpec | ParquetSourceSpec | ExcelSourceSpec):
        path = resolve(source.path, base_dir)
        return path.with_name(f"{path.stem}.rowloom{_SUFFIX[source.kind]}"), source.kind
    return base_dir / f"{spec.name or 'output'}.rowloom.jsonl", "jsonl"


async def open_sink(spec: WorkflowSpec, *, base_dir: Path, output: Path | None = None) -> Sink:
    """The spec's sink, checked; `output` (e.g. from the CLI) overrides a file sink's path."""
    config = spec.sink
    sink: Sink
    if isinstance(config, MysqlSinkSpec) or (config is None and isinstance(spec.source, MysqlSourceSpec)):
        from engine.sinks.mysql import MysqlWriteBack

        sink = MysqlWriteBack.from_spec(spec)
    elif config is None:
        path, kind = default_output(spec, base_dir)
        sink = FileSink(output or path, kind, spec.columns.output)
    else:
        sink = FileSink(output or resolve(config.path, base_dir), config.kind, spec.columns.output)
    await sink.check()
    return sink
