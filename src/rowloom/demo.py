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

DEMO_INPUT = "tickets.csv"
NOVEMBER_INPUT = "nov.csv"  # the README's "Try it" runs a job over it
HELP_ARTICLES = "kb.csv"  # the knowledge table the steps demo (and the README's steps example) searches
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
STEPS_WORKFLOW = f"""# The steps demo: answer each ticket from the help articles most like it (embed, retrieve, prompt).
name: demo-support-answers
source: {{kind: csv, path: {DEMO_INPUT}, key: id}}
steps:
  - {{id: embed, kind: embed, template: "{{subject}}. {{body}}", output: ticket_vector, text_files: omit}}
  - id: articles
    kind: retrieve
    query: ticket_vector
    knowledge: {{source: {{kind: csv, path: {HELP_ARTICLES}}}, text: text, id: article}}
    top_k: 2
    output: articles
    ids_output: article_ids
  - id: reply
    kind: prompt
    input: [subject, body, articles]
    output: {{reply: ai_reply}}
    prompt:
      system: You are a support agent. Answer from the help articles only.
      template: "Ticket: {{subject}}. {{body}}\n\nHelp articles:\n{{articles}}"
"""
ARTICLES = [
    ("password-reset", "Password reset: if the reset mail never arrives, check the spam folder; links last 1 hour."),
    ("billing-duplicate", "Billing: a payment charged twice is refunded within 5 days; write to billing."),
    ("exports", "Exports: CSV and Parquet exports; an export stops at 65,536 rows on the free plan."),
    ("crashes", "Crashes: an app that crashes when opening a report needs version 4.2 or later."),
    ("seats", "Seats and renewal: add seats any time before the renewal date from the admin page."),
    ("invoices", "Invoices: every invoice of a month is in Billing > Invoices, as PDF."),
    ("performance", "Performance: a slow dashboard loads faster with fewer widgets and a shorter period."),
    ("login", "Login: a login page that reloads forever is fixed by clearing the browser's cookies."),
]
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
    """The demo's tickets, the README's November tickets and the help articles (CSV), written once under
    DATA_DIR."""
    tables: list[tuple[str, list[str], list[tuple[Any, ...]]]] = [
        (NOVEMBER_INPUT, ["id", "subject", "body"], [(i + 1, *row) for i, row in enumerate(NOVEMBER)]),
        (DEMO_INPUT, ["id", "subject", "body"], [(i + 1, *row) for i, row in enumerate(TICKETS)]),
        (HELP_ARTICLES, ["article", "text"], list(ARTICLES))]
    for name, header, rows in tables:
        path = data_dir / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("w", newline="", encoding="utf-8") as file:
                writer = csv.writer(file)
                writer.writerow(header)
                writer.writerows(rows)
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
        for workflow, name, what in ((DEMO_WORKFLOW, "demo-ticket-triage", "demo job"),
                                     (STEPS_WORKFLOW, "demo-support-answers", "demo of steps")):
            stored = await http.post("/api/v1/workflows", json={"yaml": workflow,
                                                                 "description": "a demo of `rowloom serve --demo`"})
            stored.raise_for_status()
            created = await http.post("/api/v1/jobs", json={"workflow": name, "name": what})
            created.raise_for_status()
            job_id = created.json()["id"]
            print(f"demo: job {job_id} ({name}) queued: {base_url}/api/v1/jobs/{job_id}", flush=True)
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
