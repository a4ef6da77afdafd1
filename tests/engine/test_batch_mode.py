"""Batch mode in the engine: rows answered through provider batches (the fake upstream's Files and Batches API on
127.0.0.1), with the same values, failures and resume as a live run."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from engine import RunEvent
from engine.gateway import BudgetExceeded, Router
from engine.gateway.batch_providers import BatchDeployments
from engine.gateway.config import load_gateway
from engine.results.batch_ledger import SqliteBatchLedger
from engine.run import run_spec
from engine.run.batch_files import unit_of
from engine.run.batch_run import BatchBudget, BatchRun
from engine.run.estimate import estimate_run
from engine.run.runner import RunOutcome
from engine.sources import open_source
from engine.sources.mysql_connection import Connections
from engine.spec import load_spec
from engine.spec.models import WorkflowSpec
from engine.spec.paths import PathPolicy
from engine.spec.secrets import Secrets
from tests.support.engine_helpers import expected_summary, make_spec, read_csv_text, tickets
from tests.support.fake_upstream import FakeUpstream, gateway_yaml
from tests.support.worker_helpers import wait_for

BATCH = "batch: {max_requests: 1000, poll_s: 0.02}"


def batch_with(extra: str) -> str:
    """The deployment's `batch` with more fields."""
    return BATCH[:-1] + f", {extra}}}"


def csv_spec(tmp_path: Path, rows: int, *, extra: str = "mode: batch") -> WorkflowSpec:
    tickets(rows).write_csv(tmp_path / "in.csv")
    return make_spec(source="{kind: csv, path: in.csv, key: id}", sink="{kind: csv, path: out.csv}",
                     in_flight=64, extra=extra)


async def run(spec: WorkflowSpec, up: FakeUpstream, work: Path, *, batch: str = BATCH,
              budget: BatchBudget | None = None, **kwargs: Any) -> RunOutcome:
    config = load_gateway(gateway_yaml(up, extra={"m0": batch}))
    router = Router(config, env={"KEY": "k"})
    deployments = BatchDeployments(config, env={"KEY": "k"})
    ledger = SqliteBatchLedger(work / "batches.sqlite")
    try:
        return await run_spec(spec, client=router, base_dir=work.parent, work_dir=work,
                              batches=BatchRun(spec, deployments=deployments, ledger=ledger, budget=budget), **kwargs)
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


async def test_batch_files_stay_within_max_bytes_and_a_request_larger_than_a_file_goes_live(tmp_path: Path) -> None:
    spec = csv_spec(tmp_path, 200)
    async with FakeUpstream() as up:
        outcome = await run(spec, up, tmp_path / "small", batch=batch_with("max_bytes: 8000"))
    sizes = up.batches.stats.uploaded_bytes
    assert len(sizes) >= 3 and max(sizes) <= 8000 and sum(sizes) > 8000 * (len(sizes) - 1) // 2
    assert outcome.progress.done == 180 and up.batches.stats.lines == 180 == sum(up.stats.ok.values())
    tickets(20).drop_nulls().with_columns(body=pl.lit("long " * 300)).write_csv(tmp_path / "in.csv")
    async with FakeUpstream() as up:
        outcome = await run(spec, up, tmp_path / "long", batch=batch_with("max_bytes: 1024"))
    done = outcome.progress.done
    assert up.batches.stats.batches_created == 0 and done > 0 and done == sum(up.stats.ok.values())


def stored(work: Path) -> dict[str, tuple[str, str | None, str | None]]:
    """Each stored result's status, error class and error (JSON spacing aside: a batch line's body is the
    provider's JSON re-encoded)."""
    with sqlite3.connect(work / "results.sqlite") as db:
        return {key: (status, error_class, error and error.replace(" ", ""))
                for key, status, error_class, error in db.execute(
                    "SELECT key, status, error_class, error FROM results")}


def faults(prompt: str, attempt: int, _: dict[str, Any]) -> str | None:
    """Some rows always answer out of the allowed values, some are refused, some fail or come malformed once."""
    draw = random.Random(prompt).random()
    if draw < 0.04:
        return "bad-enum"
    if draw < 0.08:
        return "400"
    if attempt == 1 and draw < 0.2:
        return "500"
    return "malformed" if attempt == 1 and draw < 0.3 else None


@pytest.mark.parametrize("retry", ["live", "batch"])
async def test_error_lines_and_malformed_answers_end_as_a_live_run_ends(tmp_path: Path, retry: str) -> None:
    outcomes = {}
    for mode in ("batch", "live"):
        spec = csv_spec(tmp_path, 600, extra=f"mode: {mode}")
        async with FakeUpstream(faults=faults) as up:
            outcomes[mode] = await run(spec, up, tmp_path / mode, batch=batch_with(f"retry: {retry}"))
        (tmp_path / "out.csv").rename(tmp_path / f"{mode}.csv")
        if mode == "batch" and retry == "live":  # retries and re-asks went live
            assert up.batches.stats.lines == 540 and up.batches.stats.batches_created == 1
        elif mode == "batch":  # each round of retries and re-asks in a batch of its own
            assert up.batches.stats.lines > 540 and up.batches.stats.batches_created > 2
            assert up.stats.requests == up.batches.stats.lines
    batch, live = outcomes["batch"].progress, outcomes["live"].progress
    assert (batch.done, batch.failed, batch.skipped) == (live.done, live.failed, live.skipped)
    assert 0 < batch.failed < 100 and batch.done > 400
    assert stored(tmp_path / "batch") == stored(tmp_path / "live")
    assert read_csv_text(tmp_path / "batch.csv").equals(read_csv_text(tmp_path / "live.csv"))


@pytest.mark.parametrize("on_expiry", ["resubmit", "live"])
async def test_an_expired_batchs_unanswered_lines_are_submitted_again_or_sent_live(tmp_path: Path,
                                                                                   on_expiry: str) -> None:
    spec = csv_spec(tmp_path, 400)
    async with FakeUpstream() as up:
        up.batches.expire = True  # the first batch ends expired with half its lines answered

        def seen(kind: RunEvent, *_: Any) -> None:
            if kind is RunEvent.BATCH_ENDED:
                up.batches.expire = False

        outcome = await run(spec, up, tmp_path / "work", on_event=seen, batch=batch_with(f"on_expiry: {on_expiry}"))
    first, second = up.batches.stats.custom_ids[:360], up.batches.stats.custom_ids[360:]
    if on_expiry == "resubmit":
        assert up.batches.stats.batches_created == 2 and sorted(second) == sorted(first[180:])
        assert up.batches.stats.lines == 360
    else:  # the other half went live at once
        assert up.batches.stats.batches_created == 1 and second == [] and up.batches.stats.lines == 180
        assert up.stats.requests == 360
    assert set(up.stats.ok.values()) == {1} and len(up.stats.ok) == 360  # no request answered twice
    assert outcome.progress.done == 360
    out = read_csv_text(tmp_path / "out.csv").filter(pl.col("body").is_not_null())
    assert [row["ai_summary"] for row in out.iter_rows(named=True)] == \
        [expected_summary(spec, row) for row in out.iter_rows(named=True)]


TWO_STEPS = """name: two
source: {kind: csv, path: in.csv, key: id}
steps:
  - id: triage
    kind: prompt
    input: [subject, body]
    output: {category: category}
    prompt: {template: "Triage: {subject} / {body}"}
    validation: {category: [technical, billing, other]}
  - id: reply
    kind: prompt
    input: [subject, category]
    output: {reply: reply}
    prompt: {template: "Reply to a {category} ticket: {subject}"}
concurrency: {in_flight: 32}
sink: {kind: csv, path: out.csv}
"""


async def test_a_two_step_workflow_goes_step_by_step_each_in_its_batch(tmp_path: Path) -> None:
    tickets(120).drop_nulls().write_csv(tmp_path / "in.csv")
    outputs = {}
    progress = {}
    for mode in ("batch", "live"):
        spec = load_spec(TWO_STEPS + f"mode: {mode}\n").spec
        async with FakeUpstream() as up:
            progress[mode] = (await run(spec, up, tmp_path / mode)).progress
        outputs[mode] = read_csv_text(tmp_path / "out.csv")
        if mode == "batch":
            steps = [[unit_of(c)[1][0] for c in up.batches.stats.custom_ids[i:i + 108]] for i in (0, 108)]
            assert up.batches.stats.batches_created == 2 and steps == [["triage"] * 108, ["reply"] * 108]
    assert outputs["batch"].equals(outputs["live"]) and outputs["batch"]["reply"].null_count() == 0
    batch, live = progress["batch"], progress["live"]  # the run's own figures over its rounds, as a live run's
    with sqlite3.connect(tmp_path / "batch" / "results.sqlite") as db:
        stored_in, stored_cost = db.execute("SELECT SUM(tokens_in), SUM(cost) FROM results").fetchone()
    assert (batch.done, batch.reused, batch.tokens_in, batch.tokens_out) == (live.done, 0, live.tokens_in,
                                                                            live.tokens_out)
    assert batch.tokens_in == stored_in and batch.cost == pytest.approx(stored_cost)
    assert {step: counts[""]["done"] for step, counts in batch.steps.items()} == {"triage": 108, "reply": 108}
    assert batch.models == {"m0 (batch)": 216}


async def created(up: FakeUpstream, count: int) -> bool | None:
    return True if up.batches.stats.batches_created >= count else None


class Allowance:
    """A budget of `limit`: each batch's maximum is held when submitted, its cost settled when collected."""

    def __init__(self, limit: float, output_tokens: int = 4096) -> None:
        self.limit = limit
        self.output_tokens = output_tokens
        self.held = self.spent = 0.0
        self.holds: list[float] = []
        self.asked: list[float] = []

    async def hold(self, label: str, amount: float) -> None:
        self.asked.append(amount)
        if self.spent + self.held + amount > self.limit:
            raise BudgetExceeded("no room", details={"needed": amount})
        self.held += amount
        self.holds.append(amount)

    async def settle(self, label: str, held: float, cost: float) -> None:
        self.held -= held
        self.spent += cost


async def test_a_budget_smaller_than_a_batchs_maximum_splits_it_and_stops_the_run_at_its_limit(
        tmp_path: Path) -> None:
    spec = csv_spec(tmp_path, 400)
    prices = BATCH + ", price: {input: 1000, output: 1000}"
    async with FakeUpstream() as up:
        probe = Allowance(0.0)
        await run(spec, up, tmp_path / "probe", batch=prices, budget=probe)
        whole = probe.asked[0]  # the one batch the 360 requests make, at its most
        short = Allowance(0.0, output_tokens=10)  # answers assumed no longer than 10 tokens
        await run(spec, up, tmp_path / "short", batch=prices, budget=short)
        budget = Allowance(whole * 0.6)
        up.batches.delay_s = 3600.0  # out until the test lets them end
        stopped = await run(spec, up, tmp_path / "work", batch=prices, budget=budget)
        out = up.batches.stats.batches_created
        up.batches.delay_s = 0.0
        for batch in up.batches.batches.values():
            batch["_ready_at"] = 0.0
        done = await run(spec, up, tmp_path / "work", batch=prices, budget=Allowance(1e9))
    assert probe.holds == [] and stopped.stopped and stopped.budget is not None
    assert short.asked[0] == pytest.approx(whole - 360 * (4096 - 10) * 1000 / 2 / 1e6)  # batch output at half price
    assert budget.asked[:2] == [whole, pytest.approx(whole / 2, rel=0.02)]  # refused whole, then half of it
    assert out == len(budget.holds) >= 2 and whole / 2 <= sum(budget.holds) <= budget.limit
    assert budget.held == pytest.approx(sum(budget.holds))  # nothing settled yet: the batches are out
    assert up.batches.stats.batches_created > out  # the rest went once a budget allowed it
    assert set(up.stats.ok.values()) == {1} and done.progress.done == 360


async def test_a_run_parks_only_batches_that_outlive_its_process(tmp_path: Path) -> None:
    spec = csv_spec(tmp_path, 10)
    mock = load_gateway("models:\n  - {name: m0, model: m0, provider: mock, batch: {}}\n")
    async with FakeUpstream() as up:
        remote = load_gateway(gateway_yaml(up, extra={"m0": BATCH}))
    parks = [BatchRun(spec, deployments=BatchDeployments(config), ledger=SqliteBatchLedger(tmp_path / "b.sqlite"),
                      park=True).park for config in (remote, mock)]
    assert parks == [True, False]  # the mock's batches are known only to the process that made them


async def test_cancelling_a_run_cancels_its_provider_batches(tmp_path: Path) -> None:
    spec = csv_spec(tmp_path, 2500)
    async with FakeUpstream() as up:
        up.batches.delay_s = 3600.0
        stop = asyncio.Event()
        config = load_gateway(gateway_yaml(up, extra={"m0": BATCH}))
        batches = BatchRun(spec, deployments=BatchDeployments(config, env={"KEY": "k"}),
                           ledger=SqliteBatchLedger(tmp_path / "w" / "batches.sqlite"))
        router = Router(config, env={"KEY": "k"})
        running = asyncio.create_task(run_spec(spec, client=router, base_dir=tmp_path, work_dir=tmp_path / "w",
                                               batches=batches, stop=stop))
        await wait_for(lambda: created(up, 3))
        await batches.cancel()
        stop.set()
        outcome = await running
        states = [b.status for b in await batches.ledger.batches()]
        await router.aclose()
        await batches.deployments.aclose()
    assert outcome.stopped and outcome.progress.done == 0
    assert up.batches.stats.batches_cancelled == 3 and len(states) == 3  # (cancelled once a poll saw it end)
    assert set(states) <= {"cancelling", "cancelled"}


async def test_an_estimate_shows_the_batch_cost_beside_the_live_cost(tmp_path: Path) -> None:
    spec = csv_spec(tmp_path, 100)
    config = load_gateway("""models:
  - {name: m0, model: gpt-4o-mini, provider: mock, price: {input: 1, output: 4}, batch: {}}
  - {name: m1, model: gpt-4o-mini, provider: mock, batch: {},
     price: {input: 1, output: 4, batch_input: 0.8, batch_output: 3}}
  - {name: m2, model: gpt-4o-mini, provider: mock, price: {input: 1, output: 4}}
groups: {both: [m0, m2], all: [m0, m1, m2]}
""")
    source = await open_source(spec, paths=PathPolicy(tmp_path), connections=Connections(Secrets({})))
    half = await estimate_run(spec, source=source, deployments=config.members("m0"))
    mixed = await estimate_run(spec, source=source, deployments=config.members("both"))
    priced = await estimate_run(spec, source=source, deployments=config.members("all"))
    live = await estimate_run(spec, source=source, deployments=config.members("m2"))
    await source.close()
    assert half.batch_cost == pytest.approx((half.cost_low / 2, half.cost_expected / 2, half.cost_high / 2))
    assert live.batch_cost is None and live.models[0].batch_cost is None
    m0, m2 = mixed.models  # half each: m0's half in batches at half price, m2's live
    assert mixed.batch_cost == pytest.approx(tuple(a + b for a, b in zip(m0.batch_cost or (), (
        m2.cost_low, m2.cost_expected, m2.cost_high), strict=True)))
    m1 = priced.models[1]
    assert m1.batch_cost is not None and m1.batch_cost[1] == pytest.approx(
        (m1.input_tokens * 0.8 + m1.output_tokens * 3) / 1e6)
