"""The output written behind the run: rows merged only once settled, nothing half-written left behind."""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
import sys
from pathlib import Path

import fastexcel
import polars as pl
import pytest

from engine.gateway.openai_client import OpenAIClient
from engine.results.settled import SettledRows
from engine.results.sqlite_store import SqliteResultStore
from engine.results.store import ResultStore, RowResult, RowStatus
from engine.run import run_spec
from engine.run.runner import Runner
from engine.sinks.base import WRITE_BEHIND_ROWS
from engine.sinks.files import FileSink
from engine.sinks.temp_files import HOST
from engine.sinks.xlsx_process import XlsxProcess
from engine.sources.base import Source
from engine.sources.files import inline_source
from tests.support.engine_helpers import make_spec
from tests.support.fake_upstream import FakeUpstream
from tests.support.worker_helpers import wait_for

ROWS = 2 * WRITE_BEHIND_ROWS + 500


def test_the_mark_is_the_first_row_not_settled() -> None:
    settled = SettledRows()
    assert settled.mark == 0
    settled.sending("a", 2)  # rows 0 and 1 were looked at and not sent (skipped or done before)
    settled.sending("b", 3)
    assert settled.mark == 2
    settled.finished(["b"])
    assert settled.mark == 2  # row 2 is still out
    settled.looked_at(10)
    settled.finished(["a"])
    assert settled.mark == 10
    settled.sending("stuck", 10)  # one row retries while 10,000 after it finish
    for position in range(11, 10_011):
        settled.sending(position, position)
        settled.finished([position])
    assert settled.mark == 10
    settled.finished(["stuck"])
    assert settled.mark == 10_011
    settled.sending("last", 10_020)
    settled.all_settled()
    assert settled.mark == math.inf


def names(folder: Path) -> list[str]:
    """The names in a folder (sync on purpose: a test looks at a few files)."""
    return sorted(p.name for p in folder.iterdir())


async def let_it_run(task: asyncio.Task[str]) -> None:
    """Give the save many turns of the loop, so one that merged rows too early would have done so."""
    for _ in range(200):
        await asyncio.sleep(0)
    assert not task.done()  # it ends only after the run says every row is settled


@pytest.mark.parametrize("kind", ["csv", "excel"])
async def test_rows_are_merged_only_once_settled_so_late_answers_are_never_lost(tmp_path: Path, kind: str) -> None:
    source = inline_source([{"id": f"K{i:05d}", "text": f"row {i}"} for i in range(ROWS)], key="id",
                           batch_size=ROWS)
    store = SqliteResultStore(tmp_path / "results.sqlite")
    path = tmp_path / ("out.csv" if kind == "csv" else "out.xlsx")
    sink = FileSink(path, kind, {"answer": "ai_answer"})
    settled = SettledRows()
    save = asyncio.create_task(sink.save(source, store, settled=settled))
    for i in range(ROWS):
        settled.sending(f"K{i:05d}", i)


    async def answer(start: int) -> None:
        keys = [f"K{i:05d}" for i in range(start, start + 250)]
        await store.write([RowResult(key=k, status=RowStatus.DONE, outputs={"answer": f"a-{k}"}) for k in keys])
        settled.finished(keys)
        await let_it_run(save)

    for start in range(ROWS - 250, 0, -250):  # answers arrive last row first: nothing may be merged yet
        await answer(start)
        assert not path.exists()
    await answer(0)
    settled.all_settled()
    assert await save == str(path)
    await store.close()
    frame = pl.read_csv(path) if kind == "csv" else fastexcel.read_excel(path).load_sheet(0).to_polars()
    assert frame.height == ROWS
    assert frame["ai_answer"].to_list() == [f"a-K{i:05d}" for i in range(ROWS)]
    assert [name for name in names(tmp_path) if name.endswith(".tmp")] == []


async def test_a_run_that_ends_early_leaves_no_half_written_output(tmp_path: Path) -> None:
    source = inline_source([{"id": i, "text": f"row {i}"} for i in range(ROWS)], key="id", batch_size=500)
    store = SqliteResultStore(tmp_path / "results.sqlite")
    sink = FileSink(tmp_path / "out" / "out.csv", "csv", {"answer": "ai_answer"})
    await sink.check()
    settled = SettledRows()
    settled.looked_at(WRITE_BEHIND_ROWS + 10)  # the first slice can be written, the second waits
    save = asyncio.create_task(sink.save(source, store, settled=settled))

    async def temp_file() -> bool:
        return any((tmp_path / "out").glob(".out.csv.*.tmp"))

    await wait_for(temp_file, what="the save's temp file")
    await let_it_run(save)
    save.cancel()
    with pytest.raises(asyncio.CancelledError):
        await save
    await store.close()
    assert names(tmp_path / "out") == []


def ended_process_id() -> int:
    """The id of a process that has ended (sync on purpose: a short child)."""
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    return int(ended.stdout)


async def test_temp_files_of_ended_runs_on_this_host_are_removed_before_a_run(tmp_path: Path) -> None:
    dead_pid = ended_process_id()
    left = {name: tmp_path / f".out.csv.{name}.0.tmp" for name in
            (f"{HOST}-{dead_pid}", f"{HOST}-{os.getpid()}", f"elsewhere-{dead_pid}")}
    for path in left.values():
        path.write_text("half an output")
    await FileSink(tmp_path / "out.csv", "csv", {"answer": "ai_answer"}).check()
    assert names(tmp_path) == sorted(path.name for owner, path in left.items() if owner != f"{HOST}-{dead_pid}")


class FillsUpSink:
    """A sink whose disk fills up once the first slice of rows is settled (no real disk can be filled here)."""

    description = "a disk that fills up"

    async def check(self) -> None:
        pass

    async def save(self, source: Source, store: ResultStore, *, settled: SettledRows | None = None) -> str:
        assert settled is not None
        await settled.until(WRITE_BEHIND_ROWS)
        raise OSError(28, "No space left on device")


async def test_an_output_that_cannot_be_written_stops_the_run_early(tmp_path: Path) -> None:
    rows = 5 * WRITE_BEHIND_ROWS
    spec = make_spec(source="{kind: csv, path: in.csv, key: id}", in_flight=16)
    source = inline_source([{"id": f"T{i:05d}", "subject": "s", "body": f"b {i}"} for i in range(rows)], key="id",
                           batch_size=500)
    store = SqliteResultStore(tmp_path / "results.sqlite")
    async with FakeUpstream() as up:
        client = OpenAIClient(up.base_url)
        runner = Runner(spec, client=client, store=store, source=source, sink=FillsUpSink())
        with pytest.raises(OSError, match="No space left"):
            await runner.run()
        await client.aclose()
    await store.close()
    assert WRITE_BEHIND_ROWS <= up.stats.requests < 2 * WRITE_BEHIND_ROWS  # it stopped soon after, not at the end


def test_an_aborted_excel_writer_stops_its_child(tmp_path: Path) -> None:
    writer = XlsxProcess(tmp_path / "out.xlsx")
    writer.write([("id", "text"), (1, "one")])
    writer.abort()
    assert writer.exit_code is not None and not (tmp_path / "out.xlsx").exists()


def test_an_excel_file_that_cannot_be_written_says_why(tmp_path: Path) -> None:
    writer = XlsxProcess(tmp_path / "gone" / "out.xlsx")
    writer.write([("id", "text"), (1, "one")])
    with pytest.raises(OSError, match=r"gone/out\.xlsx: writing the Excel file failed: .*No such file"):
        writer.finish()


FORMULAS = ["=HYPERLINK(\"http://x\",\"y\")", "+1+2", "-abc", "@SUM(A1)", "\tx", "\rx", "-5", "+1.5e3", "plain", ""]


@pytest.mark.parametrize("escape", [True, False])
async def test_csv_cells_a_spreadsheet_would_run_are_escaped_unless_told_not(tmp_path: Path, escape: bool) -> None:
    cells = [pl.Series([v]).to_frame().write_csv(include_header=False).removesuffix("\n") for v in FORMULAS]
    rows = "".join(f"{i},{cell},body\n" for i, cell in enumerate(cells))
    (tmp_path / "in.csv").write_text("id,subject,body\n" + rows, encoding="utf-8")
    sink = f"{{kind: csv, path: out.csv{'' if escape else ', escape_formulas: false'}}}"
    spec = make_spec(source="{kind: csv, path: in.csv, key: id}", sink=sink, extra="select: {require: any}")
    async with FakeUpstream(reply=lambda _: '{"category": "general", "summary": "=cmd|\' /C calc\'!A0"}') as up:
        client = OpenAIClient(up.base_url)
        await run_spec(spec, client=client, base_dir=tmp_path, work_dir=tmp_path / "w")
        await client.aclose()
    out = pl.read_csv(tmp_path / "out.csv", infer_schema=False)
    subjects = [v or "" for v in out["subject"].to_list()]
    if escape:
        assert subjects == ["'" + v if i < 6 else v for i, v in enumerate(FORMULAS)]
        assert set(out["ai_summary"]) == {"'=cmd|' /C calc'!A0"}
    else:
        assert subjects == FORMULAS and set(out["ai_summary"]) == {"=cmd|' /C calc'!A0"}


async def test_an_excel_output_writes_formula_like_text_as_text(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text('id,subject,body\n1,"=HYPERLINK(""http://x"",""y"")",body\n', encoding="utf-8")
    spec = make_spec(source="{kind: csv, path: in.csv, key: id}", sink="{kind: excel, path: out.xlsx}")
    async with FakeUpstream(reply=lambda _: '{"category": "general", "summary": "=1+1"}') as up:
        client = OpenAIClient(up.base_url)
        await run_spec(spec, client=client, base_dir=tmp_path, work_dir=tmp_path / "w")
        await client.aclose()
    sheet = fastexcel.read_excel(tmp_path / "out.xlsx").load_sheet(0).to_polars()
    assert sheet["subject"].to_list() == ['=HYPERLINK("http://x","y")'] and sheet["ai_summary"].to_list() == ["=1+1"]
