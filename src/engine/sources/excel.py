"""An Excel sheet as a source, with its cells' types kept, and the rest of its workbook for an Excel output.

Every read of a workbook (the sheet, and for an Excel output its other sheets) runs in a child process with a
memory limit, after a check of the sheets' declared sizes (see engine.sources.excel_process and excel_read):
a hostile workbook fails its job with a reason, and the API or worker that opened it goes on.

A sheet index counts the visible sheets only, as a person sees the tabs: `sheet: 0` is the first visible
sheet; a hidden sheet is read by its name.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from engine.errors import InputError
from engine.sources.excel_process import OTHERS, SHEET, ChildFailed, new_out_dir, read_in_child
from engine.sources.excel_read import SheetInfo
from engine.sources.files import FrameSource
from engine.spec.paths import ReadLimits

__all__ = ["ExcelSheetSource", "SheetInfo", "Workbook", "excel_source"]


@dataclass(frozen=True)
class Workbook:
    """Where a source sheet sits in its workbook, so an Excel output can keep the sheet's name and the others."""

    path: Path
    sheets: tuple[SheetInfo, ...]
    sheet: str  # the sheet read
    # A mixed column's cells by row: the text the engine read, and the cell as it was typed.
    typed_cells: dict[str, tuple[list[str | None], list[Any]]] = field(default_factory=dict)
    limits: ReadLimits = field(default_factory=ReadLimits)

    def other_sheets(self) -> list[tuple[SheetInfo, list[list[Any]]]]:
        """Every other sheet's cells, typed (whole numbers as integers), each in its place."""
        others = [info for info in self.sheets if info.name != self.sheet]
        if not others:
            return []
        rows: list[list[list[Any]]] = _read(OTHERS, self.path, {"names": [o.name for o in others]}, self.limits)
        return list(zip(others, rows, strict=True))


class ExcelSheetSource(FrameSource):
    """A sheet's rows (read whole, then served in batches) and where the sheet sits in its workbook."""

    def __init__(self, frame: pl.DataFrame, workbook: Workbook, *, key: str | None, batch_size: int,
                 header_rows: int) -> None:
        super().__init__(frame, description=f"{workbook.path} [{workbook.sheet}]", key=key, batch_size=batch_size,
                         header_rows=header_rows)
        self.workbook = workbook


def _read(kind: str, path: Path, args: dict[str, Any], limits: ReadLimits, out_dir: Path | None = None) -> Any:
    """A read in the child; InputError for the workbook's problems, and when the reader could not finish."""
    out = out_dir or new_out_dir()
    try:
        status, payload = read_in_child(kind, path, args, max_cells=limits.excel_cells,
                                        memory_bytes=limits.reader_memory_bytes, out_dir=out)
    except ChildFailed:
        raise InputError(f"{path}: the Excel reader stopped before the end (over its memory limit of "
                         f"{limits.reader_memory_bytes >> 20:,} MB, or a file it cannot read)") from None
    finally:
        if out_dir is None:
            shutil.rmtree(out, ignore_errors=True)
    if status != "ok":
        raise InputError(f"{path}: {payload}")
    return payload


def excel_source(path: Path, *, sheet: int | str, header_row: int, key: str | None, batch_size: int,
                 limits: ReadLimits = ReadLimits()) -> ExcelSheetSource:
    """An .xlsx/.xls sheet by name or index among the visible sheets; formulas come as their cached values.
    Blocking (a child process reads it): call it from a thread."""
    out = new_out_dir()
    try:
        sheets, name, typed = _read(SHEET, path, {"sheet": sheet, "header_row": header_row}, limits, out)
        sheets = tuple(SheetInfo(sheet_name, hidden) for sheet_name, hidden in sheets)
        frame = pl.read_ipc(out / "sheet.arrow")
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return ExcelSheetSource(frame, Workbook(path, sheets, name, typed, limits), key=key, batch_size=batch_size,
                            header_rows=header_row + 1)
