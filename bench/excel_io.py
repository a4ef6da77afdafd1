#!/usr/bin/env python3
"""Excel read + write through the engine's source and sink vs raw fastexcel + xlsxwriter.

    .venv/bin/python -m bench.excel_io [--rows 1000000]

Input: ROWS x 6 columns (int, 2 texts, float, datetime, text). Engine: the excel source reads it, the excel
sink writes it with two output columns filled from a results store holding an answer for every row. Raw:
fastexcel reads it, xlsxwriter (constant memory) writes the same 8 columns. Target: engine <= 1.2x raw.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import fastexcel
import polars as pl
import xlsxwriter

from engine.results.sqlite_store import SqliteResultStore
from engine.results.store import RowResult, RowStatus
from engine.sinks.files import ExcelWriter, FileSink
from engine.sources.excel import excel_source


def make_input(path: Path, rows: int) -> None:
    book = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    sheet = book.add_worksheet()
    stamp = book.add_format({"num_format": "yyyy-mm-dd hh:mm"})
    sheet.write_row(0, 0, ["id", "name", "city", "amount", "opened", "note"])
    start = datetime(2025, 1, 1)
    for i in range(1, rows + 1):
        sheet.write_number(i, 0, i)
        sheet.write_string(i, 1, f"customer {i}")
        sheet.write_string(i, 2, ("Berlin", "Paris", "東京", "Lagos")[i % 4])
        sheet.write_number(i, 3, i * 0.25)
        sheet.write_datetime(i, 4, start + timedelta(minutes=i), stamp)
        sheet.write_string(i, 5, f"note {i % 1000}")
    book.close()


def raw(source: Path, target: Path) -> float:
    started = time.perf_counter()
    frame = fastexcel.read_excel(source).load_sheet(0).to_polars()
    frame = frame.with_columns(pl.lit("technical").alias("ai_category"), pl.lit("a summary").alias("ai_summary"))
    writer = ExcelWriter(target)  # the same constant-memory xlsxwriter settings the sink uses
    writer.write(frame)
    writer.finish(frame.columns)
    return time.perf_counter() - started


async def through_engine(source: Path, target: Path, store: SqliteResultStore) -> float:
    started = time.perf_counter()
    reader = excel_source(source, sheet=0, header_row=0, key="id", batch_size=10_000)
    sink = FileSink(target, "excel", {"category": "ai_category", "summary": "ai_summary"})
    await sink.save(reader, store)
    return time.perf_counter() - started


async def fill_store(store: SqliteResultStore, rows: int) -> None:
    for start in range(1, rows + 1, 50_000):
        await store.write([RowResult(key=i, status=RowStatus.DONE,
                                     outputs={"category": "technical", "summary": "a summary"})
                           for i in range(start, min(start + 50_000, rows + 1))])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rowloom-excel-") as tmp:
        folder = Path(tmp)
        source = folder / "in.xlsx"
        started = time.perf_counter()
        make_input(source, args.rows)
        print(f"made {args.rows:,} x 6 input in {time.perf_counter() - started:.1f}s "
              f"({source.stat().st_size / 2**20:.0f} MB)", flush=True)
        store = SqliteResultStore(folder / "results.sqlite")
        asyncio.run(fill_store(store, args.rows))
        raw_s = raw(source, folder / "raw.xlsx")
        print(f"raw fastexcel read + xlsxwriter write: {raw_s:.1f}s", flush=True)
        engine_s = asyncio.run(through_engine(source, folder / "engine.xlsx", store))
        asyncio.run(store.close())
        print(f"engine source + sink (outputs merged from the store): {engine_s:.1f}s")
        print(f"engine / raw: {engine_s / raw_s:.2f}x (target <= 1.2x)")
        check = fastexcel.read_excel(folder / "engine.xlsx").load_sheet(0).to_polars()
        assert check.height == args.rows and check["ai_summary"].null_count() == 0


if __name__ == "__main__":
    main()
