#!/usr/bin/env python3
"""Fault drill: the engine and the gateway router against fakellm answering with hangs, 429s, 500s and
malformed JSON; prints how long the run took next to the same run without faults, and what every row became.

    .venv/bin/python -m bench.fault_drill [--rows 3000] [--in-flight 64] [--latency-ms 20]
        [--faults --phang 0.02 --p429 0.03 --p500 0.03 --pmalformed 0.03] [--fakellm ../shared/fakellm/fakellm.py]

The router spreads rows over two deployments of fakellm, each with a 2 s timeout; a third run sends every
row to one upstream without the router (2 s timeout), so the engine's global pause sees every API error.
A good run loses no row (each ends done, or failed with its reason), has no prompt answered twice
(fakellm's duplicate count; a request that hung past its timeout and was sent again counts there once
fakellm answers it, 30 s later), and stays within seconds of the run without faults: a hang costs one slot
2 s, a deployment cools down only while it keeps failing, and the global pause (2 s, then a 2 s window
without pauses) leaves requests going out between pauses.

A fourth run repeats the faults through the router with `safe_rps` on each deployment (`--safe-rps`) and
prints fakellm's busiest 1-second window against their sum: the limit holds when it is not above it.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import polars as pl

from bench._fakellm import fakellm, reset, run_parser, stats
from engine import event_loop
from engine.gateway import ChatClient
from engine.gateway.config import load_gateway
from engine.gateway.openai_client import OpenAIClient
from engine.gateway.router import Router
from engine.run import run_spec
from engine.run.runner import RunOutcome
from engine.spec import load_spec

SPEC = """name: drill
source: {{kind: csv, path: {path}, key: id}}
columns:
  input: [subject, body]
  output: {{category: ai_category, summary: ai_summary}}
prompt:
  template: "Classify this ticket: {{record_json}}"
  required_fields: [category, summary]
validation: {{category: [technical, business, general]}}
concurrency: {{in_flight: {in_flight}}}
sink: {{kind: csv, path: {out}}}
"""
GATEWAY = """models:
  - {{name: small, model: fake-small, channel: local, timeout: 2{limit}}}
  - {{name: large, model: fake-large, channel: local, timeout: 2{limit}}}
channels:
  local: {{base_url: '{base}', api_path: /v1/chat/completions}}
"""
FAULTS = ["--phang", "0.02", "--hang-s", "30", "--p429", "0.03", "--p500", "0.03", "--pmalformed", "0.03"]


async def one_run(base_url: str, folder: Path, in_flight: int, *, routed: bool,
                  safe_rps: float | None = None) -> tuple[RunOutcome, float]:
    shutil.rmtree(folder / "work", ignore_errors=True)
    spec = load_spec(SPEC.format(path=folder / "in.csv", in_flight=in_flight, out=folder / "out.csv")).spec
    limit = f", safe_rps: {safe_rps:g}" if safe_rps else ""
    client: ChatClient = Router(load_gateway(GATEWAY.format(base=base_url.removesuffix("/v1"), limit=limit))) \
        if routed else OpenAIClient(base_url, model="fake-small", timeout_s=2)
    started = time.perf_counter()
    try:
        outcome = await run_spec(spec, client=client, base_dir=folder, work_dir=folder / "work")
    finally:
        await client.aclose()
    return outcome, time.perf_counter() - started


def main() -> None:
    parser = run_parser(__doc__, rows=3000, latency_ms=20, in_flight=64)
    parser.add_argument("--faults", nargs=argparse.REMAINDER, default=FAULTS,
                        help="fakellm's fault flags (last on the line)")
    parser.add_argument("--safe-rps", type=float, default=300, help="each deployment's limit in the fourth run")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="rowloom-drill-"))
    try:
        pl.DataFrame({"id": range(args.rows), "subject": [f"Printer {i} does not print" for i in range(args.rows)],
                      "body": [f"Ticket {i}: error {i % 97}" for i in range(args.rows)]}).write_csv(folder / "in.csv")
        print(f"{args.rows:,} rows, in_flight {args.in_flight}, fakellm latency {args.latency_ms:g} ms, "
              f"2 deployments with a 2 s timeout")
        runs: list[tuple[str, list[str], bool, float | None]] = [
            ("no faults", [], True, None), ("faults", args.faults, True, None),
            ("faults, one upstream", args.faults, False, None),
            ("faults, safe_rps", args.faults, True, args.safe_rps)]
        for label, faults, routed, safe_rps in runs:
            with fakellm(args.fakellm, "--latency-ms", str(args.latency_ms), *faults) as base_url:
                reset(base_url)
                outcome, elapsed = event_loop.run(one_run(base_url, folder, args.in_flight, routed=routed,
                                                          safe_rps=safe_rps))
                seen = stats(base_url)
            progress = outcome.progress
            lost = args.rows - progress.done - progress.failed - progress.skipped
            print(f"{label:<20} ({' '.join(faults) or '-'}): {elapsed:6.2f}s; {progress.done:,} done, "
                  f"{progress.failed} failed, {lost} lost; upstream {seen['by_status']}, "
                  f"prompts answered twice {seen['duplicate_ok_prompts']}"
                  + (f"; busiest 1 s window at the upstream {seen['peak_rps_1s']} requests (limit: 2 deployments x "
                     f"safe_rps {safe_rps:g} = {2 * safe_rps:g})" if safe_rps else ""), flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
