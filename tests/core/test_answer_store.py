"""The answer cache in the platform's database: shared by jobs and workers, shown on the job and its items."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from tests.support.fake_upstream import FakeUpstream
from tests.support.worker_helpers import all_pages, job_of, platform, wait_for, wait_status, write_tickets

PRICE = (100.0, 400.0)  # per 1M tokens: large enough that every answer has a visible cost


async def test_a_second_identical_job_sends_nothing_and_gives_the_same_output(database_url: str,
                                                                               tmp_path: Path) -> None:
    write_tickets(tmp_path, 150)
    async with FakeUpstream() as upstream, \
            platform(database_url=database_url, data_dir=tmp_path, upstream_url=upstream.base_url,
                     price=PRICE) as p:
        first = await wait_status(p.http, await p.start_job(), "completed")
        sent = upstream.stats.requests
        second = await wait_status(p.http, await p.start_job(), "completed")
        items = await all_pages(p.http, f"/api/v1/jobs/{second['id']}/items")
        first_items = await all_pages(p.http, f"/api/v1/jobs/{first['id']}/items")
    assert sent == 135 and upstream.stats.requests == sent  # 15 rows have no body: skipped
    assert first["counts"]["cached"] == 0 and first["usage"]["cost"] > 0
    assert second["counts"] == {"total": 150, "done": 135, "failed": 0, "skipped": 15, "cached": 135}
    assert second["usage"]["cost"] == 0 and second["usage"]["tokens_in"] == 0
    assert abs(second["usage"]["cost_saved"] - first["usage"]["cost"]) < 1e-9
    assert all(i["cached"] and i["cost"] == 0 and i["attempts"] == 0 for i in items)
    assert not any(i["cached"] for i in first_items)
    assert pl.read_csv(tmp_path / first["output"]).equals(pl.read_csv(tmp_path / second["output"]))


async def test_a_job_whose_rows_repeat_100_prompts_sends_100_requests(database_url: str, tmp_path: Path) -> None:
    pl.DataFrame({"id": [f"T{i:05d}" for i in range(1000)],
                  "subject": [f"Printer {i % 100} is jammed" for i in range(1000)],
                  "body": [f"Body {i % 100}" for i in range(1000)]}).write_csv(tmp_path / "tickets.csv")
    async with FakeUpstream(latency_s=0.01) as upstream, \
            platform(database_url=database_url, data_dir=tmp_path, upstream_url=upstream.base_url) as p:
        job = await wait_status(p.http, await p.start_job(), "completed", within_s=60)
    assert upstream.stats.requests == 100
    assert job["counts"]["done"] == 1000 and job["counts"]["cached"] == 900
    out = pl.read_csv(tmp_path / job["output"])
    assert out.group_by("subject").agg(pl.col("ai_summary").n_unique())["ai_summary"].to_list() == [1] * 100


async def test_a_changed_temperature_or_prompt_asks_every_row_again(database_url: str, tmp_path: Path) -> None:
    write_tickets(tmp_path, 50)
    async with FakeUpstream() as upstream, \
            platform(database_url=database_url, data_dir=tmp_path, upstream_url=upstream.base_url) as p:
        await wait_status(p.http, await p.start_job(), "completed")
        warmer = await p.start_job(params={"model": {"temperature": 0.9}})
        await wait_status(p.http, warmer, "completed")
        after_temperature = upstream.stats.requests
        reworded = await p.start_job(params={"prompt": {"system": "You sort support tickets carefully."}})
        await wait_status(p.http, reworded, "completed")
        off = await p.start_job(params={"cache": {"mode": "off"}})
        await wait_status(p.http, off, "completed")
    assert after_temperature == 2 * 45
    assert upstream.stats.requests == 4 * 45


async def test_a_job_records_its_estimate_beside_its_usage(database_url: str, tmp_path: Path) -> None:
    write_tickets(tmp_path, 200)
    async with FakeUpstream() as upstream, \
            platform(database_url=database_url, data_dir=tmp_path, upstream_url=upstream.base_url,
                     price=PRICE) as p:
        first = await p.start_job()
        await wait_status(p.http, first, "completed")

        async def estimated(job_id: int) -> dict[str, object] | None:
            return (await job_of(p.http, job_id))["estimate"]

        estimate = await wait_for(lambda: estimated(first), what="the job's estimate")
        job = await job_of(p.http, first)
        again = await p.start_job()
        second = await wait_for(lambda: estimated(again), what="the second job's estimate")
    assert estimate["rows_to_send"] == 180 and estimate["rows_cached"] == 0
    assert estimate["input_tokens"] > 0 and job["usage"]["tokens_in"] > 0  # the two side by side on the record
    assert 0 < estimate["cost_low"] < estimate["cost_expected"] < estimate["cost_high"]
    # Made after the first job's answers were kept: the second would send nothing.
    assert second["rows_cached"] == 180 and second["rows_to_send"] == 0 and second["cost_expected"] == 0
