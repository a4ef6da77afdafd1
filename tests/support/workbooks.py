"""Workbooks the tests write and read: tickets with typed cells, and one sparse sheet too big to parse."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import fastexcel
import polars as pl
import xlsxwriter

from tests.support.engine_helpers import tickets


def write_workbook(path: Path, rows: int, *, notes_first: bool = True) -> None:
    """Tickets plus a date, a number and a formula (with its cached value), in a sheet named 'Tickets'."""
    book = xlsxwriter.Workbook(str(path))
    if notes_first:
        book.add_worksheet("Notes").write(0, 0, "not this sheet")
    sheet = book.add_worksheet("Tickets")
    dates = book.add_format({"num_format": "yyyy-mm-dd"})
    sheet.write_row(0, 0, ["id", "subject", "body", "opened", "amount", "double"])
    frame = tickets(rows)
    for i, row in enumerate(frame.iter_rows(named=True), start=1):
        sheet.write_string(i, 0, row["id"])
        sheet.write_string(i, 1, row["subject"])
        if row["body"] is not None:
            sheet.write_string(i, 2, row["body"])
        sheet.write_datetime(i, 3, datetime(2026, 1, 1 + i % 28), dates)
        sheet.write_number(i, 4, i * 1.5)
        sheet.write_formula(i, 5, f"=E{i + 1}*2", None, i * 3.0)
    book.close()


def read_sheet(path: Path, sheet: str | int = 0) -> pl.DataFrame:
    """A sheet of a workbook (by name or index) as the engine's own reader sees it."""
    frame: pl.DataFrame = fastexcel.read_excel(path).load_sheet(sheet).to_polars()
    return frame


def sparse_workbook(path: Path) -> None:
    """1.5 KB on disk: `id` and one row, and one cell at XFD1048576 (the readers would allocate 512 GiB)."""
    book = xlsxwriter.Workbook(path)
    sheet = book.add_worksheet()
    sheet.write_row(0, 0, ["id", "subject", "body"])
    sheet.write_row(1, 0, [1, "Printer", "Body"])
    sheet.write(1_048_575, 16_383, "x")
    book.close()
