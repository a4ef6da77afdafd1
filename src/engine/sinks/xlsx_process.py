"""Excel output written by a child process: `python -P xlsx_process.py PATH`, rows arriving on stdin.

xlsxwriter is pure Python and costs ~7 µs a cell (20,000 rows of 5 columns: 0.9 s). In the engine's
process that time is taken from the event loop, which shares the GIL with every thread: writing the output
behind the run slowed the requests by as much as it saved. In a child process it runs on another core,
and the parent only pickles rows (~0.1 µs a cell). The module imports nothing but xlsxwriter, and the child
runs it as a file (not `-m`, which would import the sinks package and polars first), so it starts in a few
tens of milliseconds.

Protocol: pickled messages on the child's stdin, `("rows", [tuple, ...])` any number of times (the first
row is the header), then `("finish", None)`; the child closes the workbook and exits 0, or exits non-zero
with the reason on stderr.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import xlsxwriter

BOOK_OPTIONS = {"constant_memory": True, "strings_to_numbers": False, "strings_to_formulas": False,
                "strings_to_urls": False, "default_date_format": "yyyy-mm-dd hh:mm:ss", "nan_inf_to_errors": True}


def write_workbook(path: str, messages: IO[bytes]) -> None:
    """The child's work: rows from `messages` into one sheet, in order (constant memory needs it)."""
    book = xlsxwriter.Workbook(path, BOOK_OPTIONS)
    sheet = book.add_worksheet()
    write_row, row = sheet.write_row, 0
    while True:
        kind, payload = pickle.load(messages)
        if kind == "finish":
            book.close()
            return
        for values in payload:
            write_row(row, 0, values)
            row += 1


class XlsxProcess:
    """The parent's end: starts the child, sends it rows, and waits for it to finish the file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # A file, not a pipe, so a chatty child can never block on it; closed by finish() or abort().
        self._errors = tempfile.TemporaryFile()  # noqa: SIM115
        self._child = subprocess.Popen([sys.executable, "-P", __file__, str(path)], stdin=subprocess.PIPE,
                                       stdout=subprocess.DEVNULL, stderr=self._errors)
        assert self._child.stdin is not None
        self._stdin = self._child.stdin

    @property
    def exit_code(self) -> int | None:
        """The child's exit status once it has ended."""
        return self._child.poll()

    def write(self, rows: Sequence[Sequence[Any]]) -> None:
        """Send rows to be written after those sent before (the header is the first)."""
        self._send(("rows", rows))

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
