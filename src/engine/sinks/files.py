"""File sinks: CSV, JSONL, Parquet and Excel, each written to a temp file and renamed into place."""

from __future__ import annotations

import asyncio
import csv
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

import polars as pl
import xlsxwriter

from engine.results import ResultStore
from engine.sinks.base import merged_frames
from engine.sources.base import InputError, Source

Writer = Callable[[Path], "FrameWriter"]


class FrameWriter:
    """Writes frames one after another into one file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, frame: pl.DataFrame) -> None:
        """Append a frame."""
        raise NotImplementedError

    def finish(self, columns: list[str]) -> None:
        """Complete the file (`columns` for a file that got no rows)."""


class _TextWriter(FrameWriter):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.handle: IO[bytes] = path.open("wb")
        self.rows = 0

    def finish(self, columns: list[str]) -> None:
        if self.rows == 0:
            self.write(pl.DataFrame(schema=dict.fromkeys(columns, pl.Utf8)))
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()


class CsvWriter(_TextWriter):
    """CSV with one header line."""

    def write(self, frame: pl.DataFrame) -> None:
        frame.write_csv(self.handle, include_header=self.rows == 0 and not self.handle.tell())
        self.rows += frame.height


class JsonlWriter(_TextWriter):
    """One JSON object a line."""

    def write(self, frame: pl.DataFrame) -> None:
        if frame.height:
            frame.write_ndjson(self.handle)
        self.rows += frame.height

    def finish(self, columns: list[str]) -> None:
        self.rows = max(self.rows, 1)  # an empty JSONL file is a valid empty table
        super().finish(columns)


class ParquetWriter(FrameWriter):
    """Parts written as they come, then streamed into one file (memory stays at one batch)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.parts = Path(tempfile.mkdtemp(prefix=".parts-", dir=path.parent))
        self.count = 0

    def write(self, frame: pl.DataFrame) -> None:
        frame.write_parquet(self.parts / f"{self.count:08d}.parquet")
        self.count += 1

    def finish(self, columns: list[str]) -> None:
        try:
            if self.count == 0:
                pl.DataFrame(schema=dict.fromkeys(columns, pl.Utf8)).write_parquet(self.path)
            else:
                pl.scan_parquet(self.parts / "*.parquet").sink_parquet(self.path)
        finally:
            shutil.rmtree(self.parts, ignore_errors=True)


class ExcelWriter(FrameWriter):
    """xlsxwriter in constant-memory mode: rows go to disk as they are written."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.book = xlsxwriter.Workbook(str(path), {"constant_memory": True, "strings_to_numbers": False,
                                                    "strings_to_formulas": False, "strings_to_urls": False,
                                                    "default_date_format": "yyyy-mm-dd hh:mm:ss",
                                                    "nan_inf_to_errors": True})
        self.sheet = self.book.add_worksheet()
        self.row = 0

    def write(self, frame: pl.DataFrame) -> None:
        if self.row == 0:
            self.sheet.write_row(0, 0, frame.columns)
            self.row = 1
        write_row, row = self.sheet.write_row, self.row
        for values in frame.iter_rows():
            write_row(row, 0, values)
            row += 1
        self.row = row

    def finish(self, columns: list[str]) -> None:
        if self.row == 0:
            self.sheet.write_row(0, 0, columns)
        self.book.close()


WRITERS: dict[str, type[FrameWriter]] = {"csv": CsvWriter, "jsonl": JsonlWriter, "parquet": ParquetWriter,
                                         "excel": ExcelWriter}


class FileSink:
    """Writes the source's rows with output columns filled into `path`, atomically."""

    def __init__(self, path: Path, kind: str, outputs: Mapping[str, str]) -> None:
        self.path = path
        self.kind = kind
        self.outputs = dict(outputs)
        self.description = str(path)
        self.errors_path = path.with_name(f"{path.stem}.errors.csv")

    async def check(self) -> None:
        """The folder can be created and written, and the target is not a folder or read-only."""
        await asyncio.to_thread(check_writable, self.path)

    async def save(self, source: Source, store: ResultStore) -> str:
        """Write the output and the errors file; returns the output path."""
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        writer = await asyncio.to_thread(WRITERS[self.kind], temp)
        columns = list(source.columns) + [c for c in self.outputs.values() if c not in source.columns]
        try:
            async for frame in merged_frames(source, store, self.outputs):
                await asyncio.to_thread(writer.write, frame)
            await asyncio.to_thread(writer.finish, columns)
            await asyncio.to_thread(os.replace, temp, self.path)
        finally:
            temp.unlink(missing_ok=True)
        await write_errors(store, self.errors_path)
        return str(self.path)


async def write_errors(store: ResultStore, path: Path) -> None:
    """The failed rows (key, error class, reason, attempts) as CSV beside the output; none: no file."""
    failures = await store.failures()
    if not failures:
        await asyncio.to_thread(path.unlink, missing_ok=True)
        return

    def write() -> None:
        temp = path.with_name(f".{path.name}.tmp")
        with temp.open("w", newline="", encoding="utf-8") as handle:
            out = csv.writer(handle)
            out.writerow(["key", "error_class", "reason", "attempts", "model"])
            for f in failures:
                out.writerow([f.key, f.error_class.value if f.error_class else "", f.error, f.attempts, f.model])
        os.replace(temp, path)

    await asyncio.to_thread(write)


def check_writable(path: Path) -> None:
    """InputError unless a file can be written at `path` (folder creatable, not a folder, not read-only)."""
    if path.is_dir():
        raise InputError(f"{path}: output path is a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=path.parent, prefix=".rowloom-probe-", delete=True)  # noqa: SIM115
        probe.close()
    except OSError as exc:
        raise InputError(f"{path}: cannot write the output there: {exc.strerror or exc}") from None
    if path.exists() and not os.access(path, os.W_OK):
        raise InputError(f"{path}: output file is read-only or locked")


