"""An Excel sheet as a source, with its cells' types kept, and the rest of its workbook for an Excel output.

fastexcel reads the sheet column by column (fast enough for millions of rows). Excel stores every number as a
double and every date as a number with a date format, so two repairs make the columns what the person typed:
a number column whose values are all whole numbers becomes an integer column (a key `1` stays `1`, not
`1.0`), and a date-time column whose cells carry a date-only format becomes a date column. The cells' formats
come from python-calamine, which reads cells one by one (the first rows are enough). Formulas come as the
values Excel last computed.

A column that mixes text with numbers, dates or booleans is text for the engine (its prompts, CSV, Parquet);
its cells as they were typed are kept beside it, so that an Excel output writes each one back with its type.

A sheet index counts the visible sheets only, as a person sees the tabs: `sheet: 0` is the first visible
sheet; a hidden sheet is read by its name.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastexcel
import polars as pl
import python_calamine

from engine.errors import InputError
from engine.sources.files import FrameSource

TYPE_SAMPLE_ROWS = 1000  # cells looked at, a column, for their date formats
WHOLE_LIMIT = 2**53  # whole numbers a double holds exactly


@dataclass(frozen=True)
class SheetInfo:
    """A sheet of the workbook: its name and whether it is hidden."""

    name: str
    hidden: bool


@dataclass(frozen=True)
class Workbook:
    """Where a source sheet sits in its workbook, so an Excel output can keep the sheet's name and the others."""

    path: Path
    sheets: tuple[SheetInfo, ...]
    sheet: str  # the sheet read
    # A mixed column's cells by row: the text the engine read, and the cell as it was typed.
    typed_cells: dict[str, tuple[list[str | None], list[Any]]] = field(default_factory=dict)

    def other_sheets(self) -> list[tuple[SheetInfo, list[list[Any]]]]:
        """Every other sheet's cells, typed (whole numbers as integers), each in its place."""
        book = python_calamine.CalamineWorkbook.from_path(str(self.path))
        return [(info, [[whole(v) for v in row] for row in
                        book.get_sheet_by_name(info.name).to_python(skip_empty_area=False)])
                for info in self.sheets if info.name != self.sheet]


def whole(value: Any) -> Any:
    """A float that holds a whole number exactly, as an int; anything else as it is."""
    if type(value) is float and value.is_integer() and abs(value) < WHOLE_LIMIT:
        return int(value)
    return value


def excel_source(path: Path, *, sheet: int | str, header_row: int, key: str | None, batch_size: int) -> FrameSource:
    """An .xlsx/.xls sheet by name or index among the visible sheets; formulas come as their cached values."""
    try:
        reader = fastexcel.read_excel(path)
        book = python_calamine.CalamineWorkbook.from_path(str(path))
    except (fastexcel.FastExcelError, python_calamine.CalamineError) as exc:
        raise InputError(f"{path}: not a readable Excel file: {exc}") from None
    sheets = tuple(SheetInfo(m.name, m.visible != python_calamine.SheetVisibleEnum.Visible)
                   for m in book.sheets_metadata)
    name = _sheet_name(path, sheets, sheet)
    try:
        frame = reader.load_sheet(name, header_row=header_row).to_polars()
    except fastexcel.FastExcelError as exc:
        raise InputError(f"{path}: cannot read sheet {name!r}: {exc}") from None
    sheet_cells = book.get_sheet_by_name(name)
    sample = sheet_cells.to_python(skip_empty_area=False, nrows=header_row + 1 + TYPE_SAMPLE_ROWS)[header_row + 1:]
    frame = typed_columns(frame, sample)
    mixed = [i for i, dtype in enumerate(frame.dtypes) if dtype == pl.Utf8
             and any(i < len(row) and not isinstance(row[i], str) for row in sample)]
    typed = mixed_cells(frame, sheet_cells.to_python(skip_empty_area=False)[header_row + 1:], mixed) \
        if mixed else {}
    source = FrameSource(frame, description=f"{path} [{name}]", key=key, batch_size=batch_size,
                         header_rows=header_row + 1)
    source.workbook = Workbook(path, sheets, name, typed)
    return source


def mixed_cells(frame: pl.DataFrame, rows: list[list[Any]], columns: list[int]
                ) -> dict[str, tuple[list[str | None], list[Any]]]:
    """The typed cells of mixed columns, by row; a column whose cells do not line up with the frame's text
    (every text cell equal, every empty cell null) is left out, and stays text."""
    typed: dict[str, tuple[list[str | None], list[Any]]] = {}
    for index in columns:
        name = frame.columns[index]
        texts = frame[name].to_list()
        cells = [row[index] if index < len(row) else "" for row in rows[:len(texts)]]
        cells += [""] * (len(texts) - len(cells))
        lined_up = all((cell == "") == (text is None) and (cell == "" or not isinstance(cell, str) or cell == text)
                       for cell, text in zip(cells, texts, strict=True))
        if lined_up:
            typed[name] = (texts, [None if cell == "" else whole(cell) for cell in cells])
    return typed


def _sheet_name(path: Path, sheets: tuple[SheetInfo, ...], sheet: int | str) -> str:
    names = [s.name for s in sheets]
    if isinstance(sheet, str):
        if sheet not in names:
            raise InputError(f"{path}: no sheet {sheet!r} (sheets: {', '.join(names)})")
        return sheet
    visible = [s.name for s in sheets if not s.hidden]
    if not 0 <= sheet < len(visible):
        raise InputError(f"{path}: no sheet {sheet} (it has {len(visible)} visible: {', '.join(visible)}; "
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
