"""File sinks: CSV, JSONL, Parquet and Excel, each written to a temp file and renamed into place."""

from __future__ import annotations

import asyncio
import csv
import logging
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import polars as pl

from engine.errors import InputError
from engine.results.settled import SettledRows
from engine.results.store import ResultStore
from engine.sinks.base import merged_frames
from engine.sinks.output_dir import OutputDir, folder_of
from engine.sinks.temp_files import remove_stale, temp_path
from engine.sinks.xlsx_process import OUTPUT_SHEET, XlsxProcess
from engine.sources.base import Source
from engine.sources.excel import ExcelSheetSource, Workbook

Writer = Callable[[Path], "FrameWriter"]
# Dates and date-times as text, as an Excel output shows them (fractions of a second only when there are some).
DATE_TEXT = "%Y-%m-%d"
DATETIME_TEXT = "%Y-%m-%d %H:%M:%S%.f"
# A spreadsheet runs a cell that starts so as a formula (OWASP's CSV injection); a number is only a number.
FORMULA_START = r"^[=+\-@\t\r]"
NUMBER = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"
log = logging.getLogger(__name__)


class FrameWriter:
    """Writes frames one after another into one file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, frame: pl.DataFrame) -> None:
        """Append a frame."""
        raise NotImplementedError

    def finish(self, columns: list[str]) -> None:
        """Complete the file (`columns` for a file that got no rows)."""

    def abort(self) -> None:
        """Give up on the file (its temp file is removed by the caller)."""


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
    """CSV with one header line; text cells a spreadsheet would run as formulas get a ' first (unless told not)."""

    def __init__(self, path: Path, *, escape_formulas: bool = True) -> None:
        super().__init__(path)
        self.escape_formulas = escape_formulas

    def write(self, frame: pl.DataFrame) -> None:
        if self.escape_formulas:
            frame = without_formulas(frame)
        frame.write_csv(self.handle, include_header=self.rows == 0 and not self.handle.tell(),
                        date_format=DATE_TEXT, datetime_format=DATETIME_TEXT)
        self.rows += frame.height


def without_formulas(frame: pl.DataFrame) -> pl.DataFrame:
    """Text cells that start as a formula does (=, +, -, @, tab, CR) and are not numbers, with a ' before them."""
    texts = [name for name, dtype in frame.schema.items() if dtype == pl.Utf8]
    if not texts:
        return frame
    return frame.with_columns(
        pl.when(pl.col(name).str.contains(FORMULA_START) & ~pl.col(name).str.contains(NUMBER))
        .then(pl.lit("'") + pl.col(name)).otherwise(pl.col(name)).alias(name) for name in texts)


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
    """xlsxwriter in constant-memory mode, in a child process (see engine.sinks.xlsx_process for why).

    From an Excel source, the output keeps the sheet's name and place, and the workbook's other sheets (their
    cells' values and types; hidden ones stay hidden). Otherwise the workbook has one sheet, "Sheet1".
    """

    def __init__(self, path: Path, workbook: Workbook | None = None) -> None:
        super().__init__(path)
        sheets: list[tuple[str, bool, Sequence[Sequence[Any]] | None]] = [(OUTPUT_SHEET, False, None)]
        if workbook is not None:
            others = {info.name: rows for info, rows in workbook.other_sheets()}
            sheets = [(s.name, s.hidden, others[s.name]) if s.name in others else (s.name, False, None)
                      for s in workbook.sheets]
        self.process = XlsxProcess(path, sheets)
        self.typed_cells = workbook.typed_cells if workbook is not None else {}
        self.written = 0  # data rows so far
        self.started = False

    def write(self, frame: pl.DataFrame) -> None:
        rows: list[Sequence[Any]] = [] if self.started else [frame.columns]
        if not self.started:
            self.process.date_columns([i for i, dtype in enumerate(frame.dtypes) if dtype == pl.Date])
        self.started = True
        rows += self._with_typed_cells(frame)
        self.written += frame.height
        self.process.write(rows)

    def _with_typed_cells(self, frame: pl.DataFrame) -> Sequence[Sequence[Any]]:
        """The frame's rows, with a mixed column's cells as they were typed where the run left them as read."""
        rows = frame.rows()
        span = slice(self.written, self.written + frame.height)
        typed = [(frame.columns.index(name), texts[span], cells[span])
                 for name, (texts, cells) in self.typed_cells.items() if name in frame.columns]
        if not typed:
            return rows
        mended: list[Sequence[Any]] = []
        for i, row in enumerate(rows):
            values = list(row)
            for column, texts, cells in typed:
                if values[column] is not None and values[column] == texts[i]:  # not replaced by an answer
                    values[column] = cells[i]
            mended.append(values)
        return mended

    def finish(self, columns: list[str]) -> None:
        if not self.started:
            self.process.write([columns])
        self.process.finish()

    def abort(self) -> None:
        self.process.abort()


# The writers made from a path alone; CSV (formula escaping) and Excel (the source's workbook) take more.
WRITERS: dict[str, type[FrameWriter]] = {"jsonl": JsonlWriter, "parquet": ParquetWriter}


class FileSink:
    """Writes the source's rows with output columns filled into `path`, atomically, through a held folder.

    With an `owner` (a job writing in a folder that jobs share, OUTPUT_ROOT), an existing file is replaced only
    if that owner wrote it: a job cannot replace another job's output, or a file Rowloom did not write.
    """

    def __init__(self, path: Path, kind: str, outputs: Mapping[str, str], *,
                 lists: Mapping[str, bool] | None = None, escape_formulas: bool = True,
                 folder: OutputDir | None = None, owner: str | None = None) -> None:
        self.path = path  # where it is: for messages and the job record
        self.kind = kind
        self.escape_formulas = escape_formulas
        self.outputs = dict(outputs)
        self.lists = dict(lists or {})  # columns written as lists (true: of numbers, a vector)
        self.description = str(path)
        self.folder = folder
        self.owner = owner

    def _target(self) -> Path:
        """The output's name inside its held folder (opened on first use)."""
        if self.folder is None:
            self.folder = folder_of(self.path)
        return self.folder.path(self.path.name)

    async def check(self) -> None:
        """The folder can be created and written, and the target is not a folder, read-only, or (with an owner)
        someone else's file. Temp files a killed run left beside the output are removed."""
        target = await asyncio.to_thread(self._target)
        await asyncio.to_thread(check_writable, target, shown=self.path)
        if self.owner is not None and not await asyncio.to_thread(owned_by, target, self.owner):
            raise InputError(f"{self.path}: the file exists and is not this job's output (another job's, or one "
                             "Rowloom did not write): choose another path")
        for stale in await asyncio.to_thread(remove_stale, target):
            log.info("removed %s, left by a run that ended before writing it", stale.name)

    def _writer(self, temp: Path, workbook: Workbook | None) -> FrameWriter:
        if self.kind == "excel":
            return ExcelWriter(temp, workbook)
        if self.kind == "csv":
            return CsvWriter(temp, escape_formulas=self.escape_formulas)
        return WRITERS[self.kind](temp)

    async def save(self, source: Source, store: ResultStore, *, settled: SettledRows | None = None) -> str:
        """Write the output and the errors file; returns the output path."""
        target = await asyncio.to_thread(self._target)
        temp = temp_path(target)  # its own: a periodic save may run while the final one is written behind
        workbook = source.workbook if isinstance(source, ExcelSheetSource) else None
        writer = await asyncio.to_thread(self._writer, temp, workbook)
        columns = list(source.columns) + [c for c in self.outputs.values() if c not in source.columns]
        try:
            async for frame in merged_frames(source, store, self.outputs, settled=settled, lists=self.lists):
                await asyncio.to_thread(writer.write, frame)
            await asyncio.to_thread(writer.finish, columns)
            if self.owner is not None:
                await asyncio.to_thread(owner_mark(target).write_text, self.owner, encoding="utf-8")
            await asyncio.to_thread(os.replace, temp, target)
        except BaseException:
            writer.abort()
            raise
        finally:
            temp.unlink(missing_ok=True)
        if settled is not None:
            await settled.until(math.inf)  # a source with no rows left has nothing to wait for
        await write_errors(store, target.with_name(f"{target.stem}.errors.csv"), first_row=source.first_row)
        return str(self.path)


def owner_mark(target: Path) -> Path:
    """The file beside an output in a shared folder that names who wrote it."""
    return target.with_name(f".{target.name}.owner")


def owned_by(target: Path, owner: str) -> bool:
    """Whether `target` may be replaced by `owner`: it does not exist yet, or `owner` wrote it."""
    if not target.exists():
        return True
    mark = owner_mark(target)
    return mark.is_file() and mark.read_text(encoding="utf-8", errors="replace") == owner


async def write_errors(store: ResultStore, path: Path, *, first_row: int | None = None) -> None:
    """The failed rows (key, error class, reason, attempts) as CSV beside the output; none: no file.

    Rows with a key column are named by their key (column `key`); rows keyed by position by the row number a
    person sees in the input, header counted (column `row`), given `first_row`, the number of position 0.
    """
    failures = await store.failures()
    if not failures:
        await asyncio.to_thread(path.unlink, missing_ok=True)
        return

    def write() -> None:
        temp = path.with_name(f".{path.name}.tmp")
        with temp.open("w", newline="", encoding="utf-8") as handle:
            out = csv.writer(handle)
            out.writerow(["key" if first_row is None else "row", "error_class", "reason", "attempts", "model"])
            for f in failures:
                where = f.key if first_row is None or not isinstance(f.key, int) else f.key + first_row
                out.writerow([where, f.error_class.value if f.error_class else "", formula_safe(f.error), f.attempts,
                              f.model])
        os.replace(temp, path)

    await asyncio.to_thread(write)


def formula_safe(text: str | None) -> str | None:
    """A text a spreadsheet shows as text (a ' before what would start a formula)."""
    return "'" + text if text and re.match(FORMULA_START, text) and not re.match(NUMBER, text) else text


def check_writable(path: Path, *, shown: Path | None = None) -> None:
    """InputError unless a file can be written at `path` (not a folder, not read-only), named as `shown`."""
    shown = shown or path
    if path.is_dir():
        raise InputError(f"{shown}: output path is a folder")
    try:
        probe = tempfile.NamedTemporaryFile(dir=path.parent, prefix=".rowloom-probe-", delete=True)  # noqa: SIM115
        probe.close()
    except OSError as exc:
        raise InputError(f"{shown}: cannot write the output there: {exc.strerror or exc}") from None
    if path.exists() and not os.access(path, os.W_OK):
        raise InputError(f"{shown}: output file is read-only or locked")


