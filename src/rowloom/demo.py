"""`rowloom serve --demo`: once the API is up, run a small job through it (mock model) and say where its output is.

It goes through the public HTTP API exactly as a user would, so it doubles as a smoke test of a fresh install.
"""

from __future__ import annotations

import asyncio
import csv
import logging
from pathlib import Path
from typing import Any

import httpx

from core.models.job_states import FINISHED
from core.settings import Settings

log = logging.getLogger(__name__)

DEMO_INPUT = "data/tickets.csv"
NOVEMBER_INPUT = "data/nov.csv"  # the README's "Try it" runs a job over it
DEMO_WORKFLOW = f"""# The demo that `rowloom serve --demo` runs: classify support tickets with the built-in mock model.
name: demo-ticket-triage
source: {{kind: csv, path: {DEMO_INPUT}, key: id}}
columns:
  input: [subject, body]
  output: {{category: ai_category, urgency: ai_urgency}}
prompt:
  system: You are a support analyst.
  template: "Classify this ticket: {{record_json}}"
  required_fields: [category, urgency]
validation:
  category: [technical, business, general]
  urgency: [low, medium, high]
"""
TICKETS = [
    ("Cannot log in", "The password reset mail never arrives."),
    ("Invoice question", "Why was I charged twice in October?"),
    ("Feature idea", "An export to Parquet would help our data team."),
    ("App crashes", "Opening a report with 10k rows crashes the app."),
    ("Contract renewal", "We want to add 40 seats before renewal."),
    ("Où est ma facture ?", "Je ne trouve pas la facture de novembre."),
    ("Slow dashboard", "The dashboard takes 30 seconds to load."),
    ("Thank you", "Great support last week, thanks!"),
]
NOVEMBER = [
    ("Export fails", "The CSV export stops at 65,536 rows."),
    ("Upgrade plan", "What does the enterprise plan include?"),
    ("Login loop", "After the update the login page reloads forever."),
    ("Refund", "Please refund the duplicate November payment."),
]


def write_demo_input(data_dir: Path) -> Path:
    """The demo's tickets and the README's November tickets (CSV), written once under DATA_DIR."""
    for name, rows in ((NOVEMBER_INPUT, NOVEMBER), (DEMO_INPUT, TICKETS)):
        path = data_dir / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("w", newline="", encoding="utf-8") as file:
                writer = csv.writer(file)
                writer.writerow(["id", "subject", "body"])
                writer.writerows((i + 1, subject, body) for i, (subject, body) in enumerate(rows))
    return data_dir / DEMO_INPUT


async def run_demo(base_url: str, settings: Settings, api_key: str) -> None:
    """Store the demo workflow, trigger a job, wait for it, and print where its output is."""
    write_demo_input(settings.data_dir)
    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(base_url=base_url, timeout=10, headers=headers) as http:
        for _ in range(100):  # the server starts accepting requests just after the lifespan starts
            try:
                await http.get("/ping")
                break
            except httpx.TransportError:
                await asyncio.sleep(0.1)
        stored = await http.post("/api/v1/workflows", json={"yaml": DEMO_WORKFLOW,
                                                             "description": "the demo of `rowloom serve --demo`"})
        stored.raise_for_status()
        created = await http.post("/api/v1/jobs", json={"workflow": "demo-ticket-triage", "name": "demo job"})
        created.raise_for_status()
        job_id = created.json()["id"]
        print(f"demo: job {job_id} queued: {base_url}/api/v1/jobs/{job_id}", flush=True)
        job = await _until_finished(http, job_id)
    counts = job["counts"]
    print(f"demo: job {job_id} {job['status']}: {counts['done']} rows done, {counts['failed']} failed; "
          f"output: {job['output']}  (download: {base_url}/api/v1/jobs/{job_id}/output)", flush=True)


async def _until_finished(http: httpx.AsyncClient, job_id: int) -> dict[str, Any]:
    while True:
        job: dict[str, Any] = (await http.get(f"/api/v1/jobs/{job_id}")).json()
        if job["status"] in FINISHED:
            return job
        await asyncio.sleep(0.2)
