"""Excel in and out, and bad input caught before any request is sent."""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from pathlib import Path

import polars as pl
import pytest

from engine.errors import InputError
from engine.gateway.openai_client import OpenAIClient
from engine.run import run_spec
from engine.sources import blocks
from engine.sources.files import ArrowFileSource, csv_source, jsonl_source
from tests.support.engine_helpers import expected_summary, make_spec, tickets
from tests.support.fake_upstream import FakeUpstream
from tests.support.workbooks import read_sheet, write_workbook


async def test_excel_in_and_out_keeps_every_cell(tmp_path: Path) -> None:
    write_workbook(tmp_path / "in.xlsx", 40)
    spec = make_spec(source="{kind: excel, path: in.xlsx, sheet: Tickets, key: id}",
                     sink="{kind: excel, path: out.xlsx}")
    async with FakeUpstream() as up:
        client = OpenAIClient(up.base_url)
        outcome = await run_spec(spec, client=client, base_dir=tmp_path, work_dir=tmp_path / "w")
        await client.aclose()
    assert (outcome.progress.done, outcome.progress.skipped) == (36, 4)
    source = read_sheet(tmp_path / "in.xlsx", "Tickets")
    out = read_sheet(tmp_path / "out.xlsx", "Tickets")  # the sheet keeps its name (and the others stay)
    assert out.columns == [*source.columns, "ai_category", "ai_summary"]
    assert out.select(source.columns).equals(source)  # unicode, empties, dates, numbers, formula values
    assert source["opened"][0] == datetime(2026, 1, 2) or source["opened"][0] == date(2026, 1, 2)
    assert source["double"].to_list()[:3] == [3.0, 6.0, 9.0]
    for row in out.iter_rows(named=True):
        if row["body"] is None:
            assert row["ai_summary"] is None
        else:
            assert row["ai_summary"] == expected_summary(spec, row)


SOURCE_ERRORS = [
    ("{kind: csv, path: missing.csv}", "no such file"),
    ("{kind: excel, path: in.xlsx, sheet: Nope}", "no sheet 'Nope'"),
    ("{kind: excel, path: in.xlsx, sheet: 7}", "no sheet 7"),
    ("{kind: excel, path: in.xlsx, sheet: Notes}", "column(s) not found: subject, body"),
    ("{kind: csv, path: in.csv, key: ticket_no}", "not found: ticket_no"),
    ("{kind: csv, path: dupes.csv, key: id}", "repeated values"),
    ("{kind: parquet, path: in.csv}", "cannot read"),
    ("{kind: csv, path: twice.csv, key: id}", "the column names subject and body each appear more than once"),
]


@pytest.mark.parametrize(("source", "message"), SOURCE_ERRORS)
async def test_bad_sources_fail_before_any_request(tmp_path: Path, source: str, message: str) -> None:
    write_workbook(tmp_path / "in.xlsx", 3)
    tickets(3).write_csv(tmp_path / "in.csv")
    pl.concat([tickets(3), tickets(1)]).write_csv(tmp_path / "dupes.csv")
    (tmp_path / "twice.csv").write_text("id,subject,body,subject,body\n1,a,b,c,d\n")
    spec = make_spec(source=source, sink="{kind: csv, path: out.csv}")
    async with FakeUpstream() as up:
        client = OpenAIClient(up.base_url)
        with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
            await run_spec(spec, client=client, base_dir=tmp_path, work_dir=tmp_path / "w")
        await client.aclose()
    assert up.stats.requests == 0


@pytest.mark.parametrize("case", ["folder", "parent-is-file"])
async def test_unwritable_outputs_fail_before_any_request(tmp_path: Path, case: str) -> None:
    tickets(3).write_csv(tmp_path / "in.csv")
    (tmp_path / "taken").mkdir()
    (tmp_path / "afile").write_text("x")
    target = {"folder": "taken", "parent-is-file": "afile/out.csv"}[case]
    spec = make_spec(source="{kind: csv, path: in.csv}", sink=f"{{kind: csv, path: {target}}}")
    async with FakeUpstream() as up:
        client = OpenAIClient(up.base_url)
        with pytest.raises(InputError):
            await run_spec(spec, client=client, base_dir=tmp_path, work_dir=tmp_path / "w")
        await client.aclose()
    assert up.stats.requests == 0


@pytest.mark.parametrize("repeat", [False, True])
def test_key_check_streams_many_keys(tmp_path: Path, repeat: bool) -> None:
    keys = [f"K{i * 7919 % 1_000_003}" for i in range(100_000)]
    if repeat:
        keys[77_777] = keys[3]
    pl.DataFrame({"id": keys, "subject": "s", "body": "b"}).write_csv(tmp_path / "many.csv")
    source = csv_source(tmp_path / "many.csv", key="id", batch_size=1000, separator=",", encoding="utf8")
    if repeat:
        with pytest.raises(InputError, match=f"repeated values \\(e.g. '{keys[3]}'\\)"):
            source.check_key()
    else:
        source.check_key()


def _batches_read(source: ArrowFileSource) -> list[pl.DataFrame]:
    async def collect() -> list[pl.DataFrame]:
        return [batch.frame async for batch in source.batches()]
    return asyncio.run(collect())


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_rows_longer_than_a_read_block_are_read_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      kind: str) -> None:
    monkeypatch.setattr(blocks, "BLOCK_BYTES", 1024)
    frame = pl.DataFrame({"id": [str(i) for i in range(600)],
                          "subject": ["x" * 20_000 if i in (3, 450) else f"line one\nline {i}" for i in range(600)],
                          "body": [f"body {i}" for i in range(600)]})
    path = tmp_path / f"wide.{kind}"
    if kind == "csv":
        frame.write_csv(path)
        source = csv_source(path, key="id", batch_size=100, separator=",", encoding="utf8")
    else:
        frame.write_ndjson(path)
        source = jsonl_source(path, key="id", batch_size=100)
    source.check_key()
    assert asyncio.run(source.count()) == 600
    batches = _batches_read(source)
    assert [batch.height for batch in batches] == [100] * 6, "batches of batch_size rows, whatever the blocks"
    assert pl.concat(batches).equals(frame), "every row once, in order, each cell whole"


def test_a_file_gone_after_it_was_opened_is_an_input_error_said_once(tmp_path: Path) -> None:
    tickets(3).write_csv(tmp_path / "in.csv")
    source = csv_source(tmp_path / "in.csv", key="id", batch_size=10, separator=",", encoding="utf8")
    (tmp_path / "in.csv").unlink()
    with pytest.raises(InputError) as caught:
        _batches_read(source)
    assert str(caught.value).count("cannot read") == 1 and "No such file" in str(caught.value)


def test_a_malformed_row_past_the_first_block_is_an_input_error(tmp_path: Path) -> None:
    lines = ["id,subject,body"] + [f"{i},s{i},b{i}" for i in range(20_000)]
    lines[15_001] = "15000,s,b,one too many"
    (tmp_path / "bad.csv").write_text("\n".join(lines) + "\n")
    source = csv_source(tmp_path / "bad.csv", key="id", batch_size=1000, separator=",", encoding="utf8")
    message = r"bad.csv: cannot read: CSV parse error: Row #15002: Expected 3 columns, got 4"
    with pytest.raises(InputError, match=message):
        source.check_key()
    with pytest.raises(InputError, match=message):
        asyncio.run(source.count())
