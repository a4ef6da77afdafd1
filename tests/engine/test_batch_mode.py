"""Batch mode in the engine: rows answered through provider batches (the fake upstream's Files and Batches API on
127.0.0.1), with the same values, failures and resume as a live run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from engine.gateway import Router
from engine.gateway.batch_providers import BatchDeployments
from engine.gateway.config import load_gateway
from engine.results.batch_ledger import SqliteBatchLedger
from engine.run import run_spec
from engine.run.batch_run import BatchRun
from engine.run.runner import RunOutcome
from engine.spec.models import WorkflowSpec
from tests.support.engine_helpers import make_spec, read_csv_text, tickets
from tests.support.fake_upstream import FakeUpstream, first_attempts, gateway_yaml

BATCH = "batch: {max_requests: 1000, poll_s: 0.02}"


def csv_spec(tmp_path: Path, rows: int, *, extra: str = "mode: batch") -> WorkflowSpec:
    tickets(rows).write_csv(tmp_path / "in.csv")
    return make_spec(source="{kind: csv, path: in.csv, key: id}", sink="{kind: csv, path: out.csv}",
                     in_flight=64, extra=extra)


async def run(spec: WorkflowSpec, up: FakeUpstream, work: Path, *, batch: str = BATCH,
              **kwargs: Any) -> RunOutcome:
    config = load_gateway(gateway_yaml(up, extra={"m0": batch}))
    router = Router(config, env={"KEY": "k"})
    deployments = BatchDeployments(config, env={"KEY": "k"})
    ledger = SqliteBatchLedger(work / "batches.sqlite")
    try:
        return await run_spec(spec, client=router, base_dir=work.parent, work_dir=work,
                              batches=BatchRun(spec, deployments=deployments, ledger=ledger), **kwargs)
    finally:
        await ledger.close()
        await deployments.aclose()
        await router.aclose()


async def test_3000_rows_in_batches_of_1000_give_every_row_the_live_answer(tmp_path: Path) -> None:
    spec = csv_spec(tmp_path, 3000)
    async with FakeUpstream() as up:
        outcome = await run(spec, up, tmp_path / "work")
    batched = read_csv_text(tmp_path / "out.csv")
    assert up.batches.stats.batches_created == 3 and up.batches.stats.lines == 2700
    assert up.stats.ok and sum(up.stats.ok.values()) == 2700  # every answer came from a batch line, once
    assert up.batches.stats.files_deleted == up.batches.stats.files_uploaded + 3  # inputs and outputs
    p = outcome.progress
    assert (p.total, p.done, p.failed, p.skipped) == (3000, 2700, 0, 300)

    live_spec = csv_spec(tmp_path, 3000, extra="mode: live")
    (tmp_path / "out.csv").rename(tmp_path / "batched.csv")
    async with FakeUpstream() as up:
        await run(live_spec, up, tmp_path / "live")
    assert up.batches.stats.batches_created == 0
    live = read_csv_text(tmp_path / "out.csv")
    assert batched.equals(live) and batched.height == 3000
    assert batched.filter(pl.col("ai_summary").is_not_null()).height == 2700
