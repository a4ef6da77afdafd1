"""The dashboard in a real browser (Debian's chromium through Playwright), served over HTTP on 127.0.0.1.

Each test saves screenshots of the pages it visits to `screenshots/` (see the README); none lets a request
leave 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.models import Scope
from tests.support.browser import browser_page
from tests.support.fake_upstream import FakeUpstream
from tests.support.keys import new_key
from tests.support.served import served
from tests.support.worker_helpers import Platform, platform, wait_status, workflow_yaml, write_tickets

SCREENSHOTS = Path(__file__).resolve().parents[2] / "screenshots"
TIMEOUT_MS = 30_000  # what a page may take to show a state, on a slow machine


@dataclass
class Dashboard:
    """A browser page on the served platform, the platform, and what left 127.0.0.1."""

    page: Any
    base_url: str
    platform: Platform
    key: str
    outside: list[str]
    upstream: FakeUpstream

    async def sign_in(self, key: str | None = None) -> None:
        await self.page.goto(f"{self.base_url}/")
        await self.page.fill("#api-key", key or self.key)
        await self.page.click("#sign-in button[type=submit]")

    async def shot(self, name: str) -> None:
        SCREENSHOTS.mkdir(exist_ok=True)
        await self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@asynccontextmanager
async def dashboard(database_url: str, data_dir: Path, *, rows: int = 60, latency_s: float = 0.0,
                    batch: str | None = None) -> AsyncIterator[Dashboard]:
    write_tickets(data_dir, rows)
    outside: list[str] = []
    async with FakeUpstream(latency_s=latency_s) as upstream, \
            platform(database_url=database_url, data_dir=data_dir, upstream_url=upstream.base_url,
                     price=(100.0, 400.0), batch=batch) as p, served(p.app) as base_url, browser_page(outside) as page:
        page.set_default_timeout(TIMEOUT_MS)
        key = p.http.headers["Authorization"].removeprefix("Bearer ")
        yield Dashboard(page, base_url, p, key, outside, upstream)
    assert outside == []  # nothing was fetched from anywhere but 127.0.0.1


async def test_nothing_is_shown_or_done_without_a_key(database_url: str, tmp_path: Path) -> None:
    async with dashboard(database_url, tmp_path) as d:
        job_id = await d.platform.start_job(name="seen")
        await wait_status(d.platform.http, job_id, "completed")
        asked: list[str] = []
        d.page.on("request", lambda request: asked.append(request.url))
        await d.page.goto(f"{d.base_url}/#/jobs/{job_id}")
        await d.page.wait_for_selector("#sign-in")
        await d.shot("sign-in")
        assert not [url for url in asked if "/api/" in url or "/admin/" in url]  # no data before a key
        without_key = await d.page.evaluate("""async (id) => [
            (await fetch('/api/v1/jobs')).status,
            (await fetch(`/api/v1/jobs/${id}/cancel`, {method: 'POST', headers: {'Content-Type': 'application/json'},
                                                       body: '{}'})).status]""", job_id)
        assert without_key == [401, 401]
        page = await d.platform.http.get("/ui/", headers={"Authorization": ""})
        assert page.status_code == 200 and "script-src 'self';" in page.headers["content-security-policy"]
        assert (await d.platform.http.get("/ui/..%2Fmain.py")).status_code == 404  # its own three files only
        await d.sign_in("rlk_not-a-key")
        await d.page.wait_for_selector("#sign-in-error:has-text('not known')")
        reader = await new_key(d.platform.database, Scope.READ, name="reader")
        await d.sign_in(reader)
        await d.page.wait_for_selector(f"tr[data-job='{job_id}']")
        await d.page.goto(f"{d.base_url}/#/jobs/{job_id}")
        d.page.on("dialog", lambda dialog: dialog.accept())
        await d.page.click("#action-retry")
        await d.page.wait_for_selector("#action-error:has-text('may only read')")  # a read key sees, cannot act
        assert (await d.platform.http.get(f"/api/v1/jobs/{job_id}")).json()["status"] == "completed"


async def test_a_job_page_follows_the_run_live_to_completed(database_url: str, tmp_path: Path) -> None:
    async with dashboard(database_url, tmp_path, rows=300, latency_s=0.02) as d:
        await d.sign_in()
        await d.page.wait_for_selector("#jobs")
        job_id = await d.platform.start_job(yaml=workflow_yaml(in_flight=2), name="followed")
        await d.page.goto(f"{d.base_url}/#/jobs/{job_id}")
        await d.page.evaluate("window.__sameDocument = true")
        await d.page.wait_for_function(  # part way: the bar moved and is not full
            "() => { const bar = document.getElementById('job-progress');"
            " return bar !== null && bar.value > 0 && bar.value < 100; }")  # (null until the page is drawn)
        partway = await d.page.eval_on_selector("#job-progress", "bar => bar.value")
        await d.shot("job-running")
        await d.page.wait_for_selector("#job-status .badge.completed")
        final = await d.page.eval_on_selector("#job-progress", "bar => bar.value")
        assert await d.page.evaluate("window.__sameDocument === true")  # no reload on the way
        assert 0 < partway < final == 100
        assert await d.page.locator("#throughput").count() == 1  # the throughput chart was drawn
        await d.page.wait_for_selector("text=output_written")  # the events, loaded again at the end
        await d.shot("job")


async def test_a_running_job_is_cancelled_from_its_page(database_url: str, tmp_path: Path) -> None:
    async with dashboard(database_url, tmp_path, rows=300, latency_s=0.05) as d:
        await d.sign_in()
        await d.page.wait_for_selector("#jobs")
        job_id = await d.platform.start_job(yaml=workflow_yaml(in_flight=2), name="cancelled")
        await wait_status(d.platform.http, job_id, "running")
        await d.page.goto(f"{d.base_url}/#/jobs/{job_id}")
        await d.page.wait_for_selector("#job-status .badge.running")
        asked: list[str] = []

        async def confirm(dialog: Any) -> None:
            asked.append(dialog.message)
            await dialog.accept()

        d.page.on("dialog", confirm)
        await d.page.click("#action-cancel")
        await d.page.wait_for_selector("#job-status .badge.cancelled")
        assert asked == [f"Cancel job #{job_id}?"]  # confirmed first
        job = (await d.platform.http.get(f"/api/v1/jobs/{job_id}")).json()
        assert job["status"] == "cancelled" and job["counts"]["done"] < 270


async def test_the_jobs_list_filters_and_the_other_pages_show(database_url: str, tmp_path: Path) -> None:
    async with dashboard(database_url, tmp_path) as d:
        ids = [await d.platform.start_job(name=name) for name in ("alpha one", "beta two", "alpha three")]
        for job_id in ids:
            await wait_status(d.platform.http, job_id, "completed")
        changed = await d.platform.http.post("/api/v1/workflows", json={
            "yaml": workflow_yaml().replace("Classify this ticket", "Sort this ticket")})
        assert changed.status_code == 201
        await d.sign_in()
        await d.page.wait_for_selector("#jobs tbody tr")
        assert await d.page.locator("#jobs tbody tr").count() == 3
        await d.shot("jobs")
        await d.page.fill("#job-filters input[name=name]", "alpha")
        await d.page.click("#job-filters button[type=submit]")
        await d.page.wait_for_function("() => document.querySelectorAll('#jobs tbody tr').length === 2")
        shown = await d.page.locator("#jobs tbody tr td:nth-child(2)").all_inner_texts()
        assert sorted(shown) == ["alpha one", "alpha three"]
        await d.platform.start_job(name="alpha four")  # the list hears of it by its stream
        await d.page.wait_for_selector("#new-jobs:not([hidden])")
        await d.page.click("#new-jobs a")
        await d.page.wait_for_function("() => document.querySelectorAll('#jobs tbody tr').length === 3")
        await d.page.goto(f"{d.base_url}/#/workflows/triage")
        await d.page.click("#show-diff")
        await d.page.wait_for_selector("#diff .add")
        assert "Sort this ticket" in await d.page.inner_text("#diff .add")
        assert await d.page.inner_text("#yaml") == workflow_yaml().replace("Classify this ticket", "Sort this ticket")
        await d.shot("workflow")
        await d.page.goto(f"{d.base_url}/#/usage")
        await d.page.wait_for_selector("text=Spend per model")
        await d.shot("usage")
        await d.page.goto(f"{d.base_url}/#/models")
        await d.page.wait_for_selector("table td:has-text('fake')")
        assert "latency_p50_ms" in await d.page.inner_text("table thead")  # health, capacity, latency, errors
        await d.shot("models")


async def test_a_batch_jobs_page_shows_it_waiting_with_its_batches_then_what_they_saved(
        database_url: str, tmp_path: Path) -> None:
    async with dashboard(database_url, tmp_path, batch="{max_requests: 30, poll_s: 0.05}") as d:
        d.upstream.batches.delay_s = 3600.0
        await d.sign_in()
        await d.page.wait_for_selector("#jobs")
        job_id = await d.platform.start_job(name="in batches", params={"mode": "batch"})
        await d.page.goto(f"{d.base_url}/#/jobs/{job_id}")
        await d.page.wait_for_selector("#job-status .badge.waiting")
        await d.page.wait_for_function(
            "() => document.querySelectorAll('#job-batches tbody tr').length === 2")
        shown = await d.page.eval_on_selector_all("#job-batches tbody tr td:nth-child(3)", "cells => "
                                                  "cells.map(c => c.textContent)")
        await d.shot("job-waiting-for-batches")
        d.upstream.batches.delay_s = 0.0
        for batch in d.upstream.batches.batches.values():
            batch["_ready_at"] = 0.0
        await d.page.wait_for_selector("#job-status .badge.completed")
        saved = await d.page.inner_text("#figure-saved")
        job = (await d.platform.http.get(f"/api/v1/jobs/{job_id}")).json()
    assert shown == ["in_progress", "in_progress"]
    total = sum(b["saved"] for b in job["batches"])
    assert job["usage"]["cost"] > 0 and abs(total - job["usage"]["cost"]) < 1e-9  # half price: saved as much
    assert saved == f"${total:.4f}"
