"""CSV, Parquet and JSONL read lazily in batches with polars; Excel read whole with fastexcel; inline rows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import fastexcel
import polars as pl

from engine.sources.base import Batch, InputError, check_key, keyed


async def _in_thread(iterator: Iterator[Batch]) -> AsyncIterator[Batch]:
    """Drive a blocking iterator from a worker thread, one batch at a time."""
    done = object()
    while True:
        batch = await asyncio.to_thread(next, iterator, done)
        if batch is done:
            return
        assert isinstance(batch, Batch)
        yield batch


class LazyFileSource:
    """A CSV, Parquet or JSONL file scanned by polars; memory stays at one batch."""

    def __init__(self, path: Path, scan: Callable[[], pl.LazyFrame], *, key: str | None, batch_size: int) -> None:
        self.path = path
        self.description = str(path)
        self._scan = scan
        self.key = key
        self.batch_size = batch_size
        try:
            self.columns = scan().collect_schema().names()
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise InputError(f"{path}: cannot read: {exc}") from None

    def check_key(self) -> None:
        """Key column values must be present and unique."""
        if self.key is not None:
            check_key(self._scan(), self.key, self.description)

    async def count(self) -> int | None:
        """Rows in the file (a streaming count)."""
        result = await asyncio.to_thread(lambda: self._scan().select(pl.len()).collect().item())
        return int(result)

    def batches(self) -> AsyncIterator[Batch]:
        """Batches of `batch_size` rows, in file order."""
        frames = self._scan().collect_batches(chunk_size=self.batch_size)
        return _in_thread(keyed(iter(frames), self.key))

    async def close(self) -> None:
        """Nothing held open."""


def csv_source(path: Path, *, key: str | None, batch_size: int, separator: str, encoding: str) -> LazyFileSource:
    """CSV with every column read as text, so values round-trip exactly."""
    def scan() -> pl.LazyFrame:
        return pl.scan_csv(path, separator=separator, encoding=encoding, infer_schema=False)  # type: ignore[arg-type]

    return LazyFileSource(path, scan, key=key, batch_size=batch_size)


def parquet_source(path: Path, *, key: str | None, batch_size: int) -> LazyFileSource:
    """Parquet with its own column types."""
    return LazyFileSource(path, lambda: pl.scan_parquet(path), key=key, batch_size=batch_size)


def jsonl_source(path: Path, *, key: str | None, batch_size: int) -> LazyFileSource:
    """JSON Lines, one object a row."""
    return LazyFileSource(path, lambda: pl.scan_ndjson(path, infer_schema_length=None), key=key,
                          batch_size=batch_size)


class FrameSource:
    """Rows already in memory (Excel, which must be read whole; inline rows), served in batches."""

    def __init__(self, frame: pl.DataFrame, *, description: str, key: str | None, batch_size: int) -> None:
        self.frame = frame
        self.description = description
        self.columns = frame.columns
        self.key = key
        self.batch_size = batch_size

    def check_key(self) -> None:
        """Key column values must be present and unique."""
        if self.key is not None:
            check_key(self.frame, self.key, self.description)

    async def count(self) -> int | None:
        """Rows in the frame."""
        return self.frame.height

    def batches(self) -> AsyncIterator[Batch]:
        """Slices of `batch_size` rows."""
        return _in_thread(keyed(iter(self.frame.iter_slices(self.batch_size)), self.key))

    async def close(self) -> None:
        """Nothing held open."""


def excel_source(path: Path, *, sheet: int | str, header_row: int, key: str | None, batch_size: int) -> FrameSource:
    """An .xlsx/.xls sheet by name or index; formulas come as their cached values."""
    try:
        reader = fastexcel.read_excel(path)
    except fastexcel.FastExcelError as exc:
        raise InputError(f"{path}: not a readable Excel file: {exc}") from None
    try:
        frame = reader.load_sheet(sheet, header_row=header_row).to_polars()
    except fastexcel.SheetNotFoundError:
        raise InputError(f"{path}: no sheet {sheet!r} (sheets: {', '.join(reader.sheet_names)})") from None
    except fastexcel.FastExcelError as exc:
        raise InputError(f"{path}: cannot read sheet {sheet!r}: {exc}") from None
    return FrameSource(frame, description=f"{path} [{sheet}]", key=key, batch_size=batch_size)


def inline_source(rows: list[dict[str, Any]], *, key: str | None, batch_size: int) -> FrameSource:
    """Rows given with the job."""
    try:
        frame = pl.DataFrame(rows, infer_schema_length=None)
    except (pl.exceptions.PolarsError, TypeError, ValueError) as exc:
        raise InputError(f"inline rows: {exc}") from None
    return FrameSource(frame, description="inline rows", key=key, batch_size=batch_size)
