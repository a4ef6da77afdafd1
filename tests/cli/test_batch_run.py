"""`rowloom run` in batch mode as a user runs it: a process killed while its batches are out, and another that
picks them up (the fake upstream's Files and Batches API on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import polars as pl

from tests.support.engine_helpers import expected_summary, make_spec, read_csv_text, tickets
from tests.support.fake_upstream import FakeUpstream, gateway_yaml
from tests.support.worker_helpers import wait_for

SPEC = """name: triage
source: {kind: csv, path: in.csv, key: id}
columns:
  input: [subject, body]
  output: {category: ai_category, summary: ai_summary}
prompt:
  system: You sort support tickets.
  template: "Classify this ticket: {record_json}"
validation: {category: [technical, business, general]}
concurrency: {in_flight: 64}
mode: batch
sink: {kind: csv, path: out.csv}
"""


async def rowloom_run(tmp_path: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rowloom", "run", "flow.yaml", "--gateway", "gateway.yaml", cwd=tmp_path,
        env={**os.environ, "KEY": "k"}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)


async def test_a_run_killed_with_two_batches_out_is_resumed_by_the_next_and_nothing_is_sent_twice(
        tmp_path: Path) -> None:
    tickets(2200).write_csv(tmp_path / "in.csv")
    (tmp_path / "flow.yaml").write_text(SPEC, encoding="utf-8")
    async with FakeUpstream() as up:
        (tmp_path / "gateway.yaml").write_text(
            gateway_yaml(up, extra={"m0": "batch: {max_requests: 1000, poll_s: 0.05}"}), encoding="utf-8")
        up.batches.delay_s = 3600.0  # out until the test lets them end
        first = await rowloom_run(tmp_path)

        async def two_out() -> bool | None:
            return True if up.batches.stats.batches_created == 2 else None

        await wait_for(two_out, what="two batches created")
        first.send_signal(signal.SIGKILL)
        await first.wait()
        for batch in up.batches.batches.values():
            batch["_ready_at"] = 0.0
        up.batches.delay_s = 0.0
        second = await rowloom_run(tmp_path)
        said = (await second.communicate())[0].decode()
    assert second.returncode == 0, said
    assert up.batches.stats.batches_created == 2 and len(up.batches.stats.custom_ids) == 1980
    assert len(up.stats.ok) == 1980 and set(up.stats.ok.values()) == {1}  # every request answered once
    assert up.batches.stats.files_deleted == 4 and not up.batches.files  # inputs and outputs
    assert "1980 done" in said.replace(",", "")
    spec = make_spec(source="{kind: csv, path: in.csv, key: id}")
    out = read_csv_text(tmp_path / "out.csv")
    assert out.height == 2200
    answered = out.filter(pl.col("body").is_not_null())
    assert answered["ai_summary"].to_list() == [expected_summary(spec, row) for row in answered.iter_rows(named=True)]
