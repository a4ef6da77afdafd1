"""Pick the sink a spec names (or the default beside the input)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from engine.errors import InputError
from engine.sinks.base import Sink
from engine.sinks.files import FileSink
from engine.sinks.output_dir import OutputDir
from engine.sources.mysql_connection import Connections
from engine.spec.flow import list_columns, output_fields
from engine.spec.models import (
    CsvSourceSpec,
    ExcelSourceSpec,
    JsonlSourceSpec,
    MysqlSinkSpec,
    ParquetSourceSpec,
    WorkflowSpec,
    mysql_output,
)
from engine.spec.paths import PathPolicy, path_fields

LIST_KINDS = ("parquet", "jsonl")  # formats whose cells hold lists of numbers
_SUFFIX = {"csv": ".csv", "jsonl": ".jsonl", "parquet": ".parquet", "excel": ".xlsx"}


def default_output(spec: WorkflowSpec, paths: PathPolicy) -> tuple[str, str]:
    """Without a sink: a file of the source's kind named `<stem>.rowloom<suffix>`, beside the input on the user's
    own machine, in the job's own folder on the platform."""
    source = spec.source
    if isinstance(source, CsvSourceSpec | JsonlSourceSpec | ParquetSourceSpec | ExcelSourceSpec):
        name = f"{Path(source.path).stem}.rowloom{_SUFFIX[source.kind]}"
        if paths.roots is not None:
            return name, source.kind
        return str(paths.resolve(source.path, field="source.path").with_name(name)), source.kind
    name = f"{spec.name or 'output'}.rowloom.jsonl"
    return (name if paths.roots is not None else str(paths.base_dir / name)), "jsonl"


def output_file(spec: WorkflowSpec, paths: PathPolicy) -> tuple[str, str]:
    """The path and kind of the file a spec writes (one with no MySQL output): its sink's, or the default."""
    sink = spec.sink
    if sink is None or isinstance(sink, MysqlSinkSpec):
        return default_output(spec, paths)
    return sink.path, sink.kind


async def file_sink(spec: WorkflowSpec, paths: PathPolicy, path: str, kind: str) -> FileSink:
    """A file sink of `kind` for the spec's output columns (vectors as lists where the format holds lists), in its
    folder held open; never over one of the spec's own input files."""
    root, parts, name = paths.output(path, field="sink.path")
    folder = await asyncio.to_thread(OutputDir, root, parts)
    target = folder.real / name
    if await asyncio.to_thread(_is_an_input, spec, paths, target):
        raise InputError(f"sink.path: {paths.shown(path)} is an input of this workflow; an output never replaces it")
    lists_kept = kind in LIST_KINDS
    return FileSink(target, kind, output_fields(spec, lists_kept=lists_kept),
                    lists=list_columns(spec) if lists_kept else {},
                    escape_formulas=getattr(spec.sink, "escape_formulas", True), folder=folder,
                    owner=paths.owner if paths.in_output_root(path) else None)


def _is_an_input(spec: WorkflowSpec, paths: PathPolicy, target: Path) -> bool:
    inputs = {os.path.realpath(paths.resolve(p, field=".".join(map(str, where))))
              for where, p in path_fields(spec) if where[0] != "sink"}
    return os.path.realpath(target) in inputs


async def open_sink(spec: WorkflowSpec, *, paths: PathPolicy, connections: Connections,
                    output: Path | None = None) -> Sink:
    """The spec's sink, checked; `output` (the CLI's flag) overrides a file sink's path, under the same rules."""
    sink: Sink
    if mysql_output(spec) is not None:
        from engine.sinks.mysql import MysqlWriteBack

        sink = MysqlWriteBack.from_spec(spec, connections)
    else:
        path, kind = output_file(spec, paths)
        sink = await file_sink(spec, paths, str(output or path), kind)
    await sink.check()
    return sink
