"""Reading an Excel workbook, with its cells' types kept: the work of the reader's child process.

fastexcel reads the sheet column by column (fast enough for millions of rows). Excel stores every number as a
double and every date as a number with a date format, so two repairs make the columns what the person typed:
a number column whose values are all whole numbers becomes an integer column (a key `1` stays `1`, not
`1.0`), and a date-time column whose cells carry a date-only format becomes a date column. The cells' formats
come from python-calamine, which reads cells one by one (the first rows are enough). Formulas come as the
values Excel last computed.

A column that mixes text with numbers, dates or booleans is text for the engine (its prompts, CSV, Parquet),
each cell as Excel shows it (a date cell as 2020-01-02); its cells as they were typed are kept beside it, so
that an Excel output writes each one back with its type.

The readers build a sheet as one block from its first to its last cell, so a sheet's size is checked first
(its `<dimension>`), and the whole read runs in a child process with a memory limit (engine.sources.excel).
"""

from __future__ import annotations

import datetime as dt
import re
import zipfile
from dataclasses import dataclass
from typing import Any

import fastexcel
import polars as pl
import python_calamine

TYPE_SAMPLE_ROWS = 1000  # cells looked at, a column, for their date formats
WHOLE_LIMIT = 2**53  # whole numbers a double holds exactly
XML_HEAD = 16_384  # bytes of a sheet's XML read for its <dimension> (it comes first)
_DIMENSION = re.compile(rb'<(?:\w+:)?dimension\s+ref="([A-Z]+)?(\d+)?(?::([A-Z]+)(\d+))?"')
_SHEET = re.compile(rb'<(?:\w+:)?sheet\b[^>]*?\bname="([^"]*)"[^>]*?\br:id="([^"]*)"')
_RELATION = re.compile(rb'<Relationship\b[^>]*?\bId="([^"]*)"[^>]*?\bTarget="([^"]*)"')


class ReadProblem(Exception):
    """The workbook cannot be read as asked; the message is for the user."""


@dataclass(frozen=True)
class SheetInfo:
    """A sheet of the workbook: its name and whether it is hidden."""

    name: str
    hidden: bool


@dataclass(frozen=True)
class SheetRead:
    """A sheet read: its rows (typed columns), the workbook's sheets, and a mixed column's cells as typed."""

    frame: pl.DataFrame
    sheets: tuple[SheetInfo, ...]
    sheet: str
    typed_cells: dict[str, tuple[list[str | None], list[Any]]]


def whole(value: Any) -> Any:
    """A float that holds a whole number exactly, as an int; anything else as it is."""
    if type(value) is float and value.is_integer() and abs(value) < WHOLE_LIMIT:
        return int(value)
    return value


def check_dimensions(path: str, max_cells: int) -> None:
    """ReadProblem if a sheet of an .xlsx/.xlsm declares more cells than `max_cells` (other formats, and sheets
    without a <dimension>, are held by the child's memory limit alone)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = _sheet_files(archive)
            for member in archive.namelist():
                if not (member.startswith("xl/worksheets/") and member.endswith(".xml")):
                    continue
                with archive.open(member) as handle:
                    match = _DIMENSION.search(handle.read(XML_HEAD))
                if match is not None:
                    cells = _cells(*match.groups())
                    if cells > max_cells:
                        name = names.get(member, member)
                        span = match.group(0).split(b'"')[1].decode()
                        raise ReadProblem(f"sheet {name!r} spans {span} ({cells:,} cells); at most {max_cells:,} "
                                          "are read (EXCEL_MAX_CELLS)")
    except (zipfile.BadZipFile, KeyError, OSError):
        return  # not a zip (.xls, .ods kept as they are): the readers say what is wrong


def _sheet_files(archive: zipfile.ZipFile) -> dict[str, str]:
    """Each worksheet file by the sheet name a person sees."""
    try:
        book = archive.open("xl/workbook.xml").read(1 << 20)
        relations = archive.open("xl/_rels/workbook.xml.rels").read(1 << 20)
    except KeyError:
        return {}
    targets = {rid: target.decode().lstrip("/") for rid, target in _RELATION.findall(relations)}
    files: dict[str, str] = {}
    for name, rid in _SHEET.findall(book):
        target = targets.get(rid)
        if target is not None:
            files[target if target.startswith("xl/") else f"xl/{target}"] = name.decode(errors="replace")
    return files


def _column(letters: bytes | None) -> int:
    number = 0
    for letter in letters or b"A":
        number = number * 26 + letter - 64
    return number


def _cells(first_col: bytes | None, first_row: bytes | None, last_col: bytes | None, last_row: bytes | None) -> int:
    if last_col is None:  # a single cell ("A1")
        return 1
    rows = int(last_row or b"1") - int(first_row or b"1") + 1
    return max(rows, 1) * max(_column(last_col) - _column(first_col) + 1, 1)


def read_sheet(path: str, *, sheet: int | str, header_row: int) -> SheetRead:
    """A sheet by name or index among the visible sheets; formulas come as their cached values."""
    try:
        reader = fastexcel.read_excel(path)
        book = python_calamine.CalamineWorkbook.from_path(path)
    except (fastexcel.FastExcelError, python_calamine.CalamineError) as exc:
        raise ReadProblem(f"not a readable Excel file: {exc}") from None
    sheets = tuple(SheetInfo(m.name, m.visible != python_calamine.SheetVisibleEnum.Visible)
                   for m in book.sheets_metadata)
    name = _sheet_name(sheets, sheet)
    try:
        frame = reader.load_sheet(name, header_row=header_row).to_polars()
    except fastexcel.FastExcelError as exc:
        raise ReadProblem(f"cannot read sheet {name!r}: {exc}") from None
    sheet_cells = book.get_sheet_by_name(name)
    sample = sheet_cells.to_python(skip_empty_area=False, nrows=header_row + 1 + TYPE_SAMPLE_ROWS)[header_row + 1:]
    frame = typed_columns(frame, sample)
    mixed = [i for i, dtype in enumerate(frame.dtypes) if dtype == pl.Utf8
             and any(i < len(row) and not isinstance(row[i], str) for row in sample)]
    typed: dict[str, tuple[list[str | None], list[Any]]] = {}
    if mixed:
        frame, typed = mixed_cells(frame, sheet_cells.to_python(skip_empty_area=False)[header_row + 1:], mixed)
    return SheetRead(frame, sheets, name, typed)


def read_other_sheets(path: str, names: list[str]) -> list[list[list[Any]]]:
    """The named sheets' cells, typed (whole numbers as integers), each in its place."""
    book = python_calamine.CalamineWorkbook.from_path(path)
    return [[[whole(v) for v in row] for row in book.get_sheet_by_name(name).to_python(skip_empty_area=False)]
            for name in names]


def mixed_cells(frame: pl.DataFrame, rows: list[list[Any]], columns: list[int]
                ) -> tuple[pl.DataFrame, dict[str, tuple[list[str | None], list[Any]]]]:
    """The typed cells of mixed columns, by row, and the frame with each date cell's text as Excel shows it; a
    column whose cells do not line up with the frame's text (every text cell equal, every empty cell null) is
    left out, and stays text as read."""
    typed: dict[str, tuple[list[str | None], list[Any]]] = {}
    shown: list[pl.Series] = []
    for index in columns:
        name = frame.columns[index]
        texts = frame[name].to_list()
        cells = [row[index] if index < len(row) else "" for row in rows[:len(texts)]]
        cells += [""] * (len(texts) - len(cells))
        lined_up = all((cell == "") == (text is None) and (cell == "" or not isinstance(cell, str) or cell == text)
                       for cell, text in zip(cells, texts, strict=True))
        if lined_up:
            texts = [cell.isoformat() if type(cell) is dt.date else text
                     for cell, text in zip(cells, texts, strict=True)]
            shown.append(pl.Series(name, texts, dtype=pl.Utf8))
            typed[name] = (texts, [None if cell == "" else whole(cell) for cell in cells])
    return (frame.with_columns(shown) if shown else frame), typed


def _sheet_name(sheets: tuple[SheetInfo, ...], sheet: int | str) -> str:
    names = [s.name for s in sheets]
    if isinstance(sheet, str):
        if sheet not in names:
            raise ReadProblem(f"no sheet {sheet!r} (sheets: {', '.join(names)})")
        return sheet
    visible = [s.name for s in sheets if not s.hidden]
    if not 0 <= sheet < len(visible):
        raise ReadProblem(f"no sheet {sheet} (it has {len(visible)} visible: {', '.join(visible)}; "
                          f"a hidden sheet is read by its name)")
    return visible[sheet]


def typed_columns(frame: pl.DataFrame, sample: list[list[Any]]) -> pl.DataFrame:
    """Whole-number columns as integers; date-time columns whose cells are dates (by their format) as dates."""
    changes = []
    for index, (name, dtype) in enumerate(frame.schema.items()):
        column = frame[name]
        if dtype == pl.Float64 and column.null_count() < frame.height:
            values = column.drop_nulls()
            if bool(((values % 1) == 0).all()) and bool((values.abs() < WHOLE_LIMIT).all()):
                changes.append(column.cast(pl.Int64))
        elif isinstance(dtype, pl.Datetime):
            seen = [row[index] for row in sample if index < len(row) and isinstance(row[index], dt.date)]
            if seen and all(type(v) is dt.date for v in seen):
                changes.append(column.cast(pl.Date))
    return frame.with_columns(changes) if changes else frame
