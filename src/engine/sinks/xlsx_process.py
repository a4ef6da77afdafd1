"""Excel output written by a child process: `python -P xlsx_process.py PATH`, rows arriving on stdin.

xlsxwriter is pure Python and costs ~7 µs a cell (20,000 rows of 5 columns: 0.9 s). In the engine's
process that time is taken from the event loop, which shares the GIL with every thread: writing the output
behind the run slowed the requests by as much as it saved. In a child process it runs on another core,
and the parent only pickles rows (~0.1 µs a cell). The module imports nothing but xlsxwriter, and the child
runs it as a file (not `-m`, which would import the sinks package and polars first), so it starts in a few
tens of milliseconds.

Protocol: pickled messages on the child's stdin: `("book", [(name, hidden, rows or None), ...])` once, the
workbook's sheets in order, each other sheet with all its rows and the output sheet with None; then
`("dates", [column, ...])`, the output sheet's date columns (written with a date-only format), then
`("rows", [tuple, ...])` any number of times (the first row is the header), then `("finish", None)`; the
child closes the workbook and exits 0, or exits non-zero with the reason on stderr.
"""

from __future__ import annotations

import datetime as dt
import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import xlsxwriter

OUTPUT_SHEET = "Sheet1"  # an Excel output's sheet when the source is not an Excel sheet
DATE_FORMAT = "yyyy-mm-dd"  # a date cell; a date-time cell takes default_date_format
BOOK_OPTIONS = {"constant_memory": True, "strings_to_numbers": False, "strings_to_formulas": False,
                "strings_to_urls": False, "default_date_format": "yyyy-mm-dd hh:mm:ss", "nan_inf_to_errors": True}


def write_workbook(path: str, messages: IO[bytes]) -> None:
    """The child's work: the other sheets whole, then the output sheet's rows in order (constant memory)."""
    book = xlsxwriter.Workbook(path, BOOK_OPTIONS)
    date_format = book.add_format({"num_format": DATE_FORMAT})
    kind, sheets = pickle.load(messages)
    assert kind == "book"
    output = None
    for name, hidden, rows in sheets:
        sheet = book.add_worksheet(name)
        if rows is None:
            output = sheet
            continue
        for index, values in enumerate(rows):
            write_cells(sheet, index, values, date_format)
        if hidden:
            sheet.hide()
    assert output is not None
    output.activate()
    row, dates = 0, []
    while True:
        kind, payload = pickle.load(messages)
        if kind == "finish":
            book.close()
            return
        if kind == "dates":
            dates = payload
            continue
        for values in payload:
            output.write_row(row, 0, values)
            for column in dates:  # dates again, with a date-only format (the default shows a time)
                if values[column] is not None and row:
                    output.write_datetime(row, column, values[column], date_format)
            row += 1


def write_cells(sheet: Any, row: int, values: Sequence[Any], date_format: Any) -> None:
    """One row of a copied sheet, each cell by its type (dates with a date-only format)."""
    for column, value in enumerate(values):
        if value is None or value == "":
            continue
        if type(value) is dt.date:
            sheet.write_datetime(row, column, value, date_format)
        elif isinstance(value, dt.timedelta):
            sheet.write_number(row, column, value.total_seconds() / 86400)
        else:
            sheet.write(row, column, value)


class XlsxProcess:
    """The parent's end: starts the child, sends it rows, and waits for it to finish the file."""

    def __init__(self, path: Path, sheets: Sequence[tuple[str, bool, Sequence[Sequence[Any]] | None]] = (
                 (OUTPUT_SHEET, False, None),)) -> None:
        """Start the child; `sheets` as the "book" message says (default for a plain output: one "Sheet1")."""
        self.path = path
        # A file, not a pipe, so a chatty child can never block on it; closed by finish() or abort().
        self._errors = tempfile.TemporaryFile()  # noqa: SIM115
        self._child = subprocess.Popen([sys.executable, "-P", __file__, str(path)], stdin=subprocess.PIPE,
                                       stdout=subprocess.DEVNULL, stderr=self._errors)
        assert self._child.stdin is not None
        self._stdin = self._child.stdin
        self._send(("book", list(sheets)))

    @property
    def exit_code(self) -> int | None:
        """The child's exit status once it has ended."""
        return self._child.poll()

    def write(self, rows: Sequence[Sequence[Any]]) -> None:
        """Send rows to be written after those sent before (the header is the first)."""
        self._send(("rows", rows))

    def date_columns(self, columns: list[int]) -> None:
        """Which columns of the output sheet hold dates (sent before their rows)."""
        self._send(("dates", columns))

    def finish(self) -> None:
        """Close the workbook and wait; OSError with the child's reason if it failed."""
        self._send(("finish", None))
        self._stdin.close()
        if self._child.wait() != 0:
            raise self._failure()
        self._errors.close()

    def abort(self) -> None:
        """Stop the child without finishing the file."""
        self._child.kill()
        self._child.wait()
        self._errors.close()

    def _send(self, message: tuple[str, Any]) -> None:
        try:
            pickle.dump(message, self._stdin, protocol=pickle.HIGHEST_PROTOCOL)
        except BrokenPipeError:  # the child died: its reason is on stderr
            self._child.wait()
            raise self._failure() from None

    def _failure(self) -> OSError:
        self._errors.seek(0)
        lines = self._errors.read().decode("utf-8", "replace").strip().splitlines()
        self._errors.close()
        return OSError(f"{self.path}: writing the Excel file failed: {lines[-1] if lines else 'no reason given'}")


if __name__ == "__main__":
    if hasattr(os, "nice"):  # a background writer: under contention the engine's requests go first
        os.nice(10)
    write_workbook(sys.argv[1], sys.stdin.buffer)
