"""Excel in, Excel (or CSV) out: every original cell keeps its value and type, and the workbook keeps its sheets."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
import python_calamine
import xlsxwriter

from engine.errors import InputError
from engine.gateway.openai_client import OpenAIClient
from engine.run import run_spec
from engine.sources.excel import excel_source
from engine.spec.paths import ReadLimits
from tests.support.engine_helpers import make_spec
from tests.support.fake_upstream import FakeUpstream
from tests.support.workbooks import sparse_workbook

ROWS = 6


def workbook(path: Path) -> None:
    """A hidden first sheet; the data sheet "Tickets" (whole numbers, a formula, dates, date-times, booleans,
    text, and a column mixing text, numbers, a boolean and a date); a "Notes" sheet after it with a title, a
    number, a date and a gap."""
    book = xlsxwriter.Workbook(path)
    date = book.add_format({"num_format": "dd/mm/yyyy"})
    stamp = book.add_format({"num_format": "yyyy-mm-dd hh:mm"})
    lookup = book.add_worksheet("Lookup")
    lookup.write_row(0, 0, ["code", "label"])
    lookup.write_row(1, 0, [7, "seven"])
    data = book.add_worksheet("Tickets")
    data.write_row(0, 0, ["id", "subject", "body", "total", "opened", "updated", "urgent", "price", "ref"])
    for i in range(ROWS):
        data.write_number(i + 1, 0, i + 1)
        data.write_string(i + 1, 1, f"Printer {i}")
        data.write_string(i + 1, 2, f"Body {i}")
        data.write_formula(i + 1, 3, "=2+3", None, 5)
        data.write_datetime(i + 1, 4, dt.date(2020, 1, 2 + i), date)
        data.write_datetime(i + 1, 5, dt.datetime(2020, 1, 2, 3, 4, i), stamp)
        data.write_boolean(i + 1, 6, i % 2 == 0)
        data.write_number(i + 1, 7, 9.5 + i)
        mixed: dict[int, object] = {0: "R-0", 1: 101, 2: 2.5, 3: True, 4: dt.date(2021, 1, 1)}  # 5: empty
        if i == 4:
            data.write_datetime(i + 1, 8, mixed[i], date)
        elif i in mixed:
            data.write(i + 1, 8, mixed[i])
    notes = book.add_worksheet("Notes")
    notes.write_string(0, 0, "Quarterly notes")
    notes.write_number(2, 1, 42)
    notes.write_datetime(3, 2, dt.date(2021, 5, 6), date)
    data.activate()
    lookup.hide()
    book.close()


async def run(tmp_path: Path, sink: str) -> None:
    spec = make_spec(source="{kind: excel, path: in.xlsx, sheet: 0, key: id}", sink=sink)
    async with FakeUpstream() as up:
        client = OpenAIClient(up.base_url)
        try:
            outcome = await run_spec(spec, client=client, base_dir=tmp_path, work_dir=tmp_path / "work")
        finally:
            await client.aclose()
    assert outcome.progress.done == ROWS


def cells(path: Path, sheet: str) -> list[list[object]]:
    return python_calamine.CalamineWorkbook.from_path(str(path)).get_sheet_by_name(sheet).to_python(
        skip_empty_area=False)


async def test_an_excel_output_keeps_every_cell_its_sheet_name_and_the_other_sheets(tmp_path: Path) -> None:
    workbook(tmp_path / "in.xlsx")
    await run(tmp_path, "{kind: excel, path: out.xlsx}")
    out = tmp_path / "out.xlsx"
    book = python_calamine.CalamineWorkbook.from_path(str(out))
    assert book.sheet_names == ["Lookup", "Tickets", "Notes"]  # the sheet's name and place, the others around it
    hidden = {m.name: m.visible != python_calamine.SheetVisibleEnum.Visible for m in book.sheets_metadata}
    assert hidden == {"Lookup": True, "Tickets": False, "Notes": False}
    written, original = cells(out, "Tickets"), cells(tmp_path / "in.xlsx", "Tickets")
    assert written[0][:9] == original[0] and written[0][9:] == ["ai_category", "ai_summary"]
    for new, old in zip(written[1:], original[1:], strict=True):
        assert new[:9] == old  # the same values, the same types: dates as dates, numbers in a text column too
        assert [type(v) for v in new[:9]] == [type(v) for v in old]
    assert [row[8] for row in written[1:]] == ["R-0", 101, 2.5, True, dt.date(2021, 1, 1), ""]
    assert written[1][4] == dt.date(2020, 1, 2) and written[1][5] == dt.datetime(2020, 1, 2, 3, 4, 0)
    assert cells(out, "Notes") == cells(tmp_path / "in.xlsx", "Notes")
    assert cells(out, "Lookup") == cells(tmp_path / "in.xlsx", "Lookup")
    with_ints = pl.read_excel(out, sheet_name="Tickets")
    assert with_ints["id"].to_list() == list(range(1, ROWS + 1))


async def test_a_csv_output_from_excel_writes_numbers_and_dates_as_excel_shows_them(tmp_path: Path) -> None:
    workbook(tmp_path / "in.xlsx")
    await run(tmp_path, "{kind: csv, path: out.csv}")
    rows = [line.split(",") for line in (tmp_path / "out.csv").read_text(encoding="utf-8").splitlines()[1:]]
    assert rows[0][:9] == ["1", "Printer 0", "Body 0", "5", "2020-01-02", "2020-01-02 03:04:00", "true", "9.5", "R-0"]
    assert [row[8] for row in rows] == ["R-0", "101", "2.5", "true", "2021-01-01", ""]  # a date among texts too


def test_sheet_0_is_the_first_visible_sheet_and_a_hidden_one_is_read_by_name(tmp_path: Path) -> None:
    workbook(tmp_path / "in.xlsx")
    first = excel_source(tmp_path / "in.xlsx", sheet=0, header_row=0, key=None, batch_size=10)
    hidden = excel_source(tmp_path / "in.xlsx", sheet="Lookup", header_row=0, key=None, batch_size=10)
    assert first.columns[0] == "id" and hidden.columns == ["code", "label"]
    assert first.frame["id"].dtype == pl.Int64 and first.frame["total"].dtype == pl.Int64  # 1, not 1.0
    assert first.frame["opened"].dtype == pl.Date and first.frame["price"].dtype == pl.Float64
    with pytest.raises(InputError, match=r"no sheet 2 \(it has 2 visible: Tickets, Notes; a hidden sheet"):
        excel_source(tmp_path / "in.xlsx", sheet=2, header_row=0, key=None, batch_size=10)




def test_a_sheet_larger_than_the_cell_limit_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    sparse_workbook(tmp_path / "sparse.xlsx")
    with pytest.raises(InputError, match=r"sheet 'Sheet1' spans A1:XFD1048576 \(17,179,869,184 cells\); at most "
                                         r"20,000,000 are read"):
        excel_source(tmp_path / "sparse.xlsx", sheet=0, header_row=0, key=None, batch_size=10)


def test_a_workbook_that_exhausts_the_readers_memory_ends_the_child_not_the_caller(tmp_path: Path) -> None:
    """With no cell limit, the readers ask for 512 GiB: the child reaches its memory limit and ends; this
    process (an API server or a worker in real use) goes on and reports the input."""
    sparse_workbook(tmp_path / "sparse.xlsx")
    limits = ReadLimits(excel_cells=2**62, reader_memory_bytes=1 << 30)
    with pytest.raises(InputError, match=r"the Excel reader stopped before the end \(over its memory limit of 1,024"):
        excel_source(tmp_path / "sparse.xlsx", sheet=0, header_row=0, key=None, batch_size=10, limits=limits)
