#!/usr/bin/env python3
"""Engine throughput against fakellm (a separate process): rows/s vs the ceiling in_flight / latency.

    .venv/bin/python -m bench.engine_throughput [--rows 20000] [--latency-ms 100] [--in-flight 64 256]
        [--kinds csv xlsx] [--fakellm ../shared/fakellm/fakellm.py]

Also prints CPU seconds of the engine process (and its Excel writer child) per 1,000 rows and fakellm's
duplicate count (must be 0).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

import polars as pl
import xlsxwriter

from bench._fakellm import DEFAULT, fakellm, reset, stats
from engine import event_loop
from engine.gateway.openai_client import OpenAIClient
from engine.run import run_spec
from engine.spec import load_spec

SPEC = """name: bench
source: {{kind: {kind}, path: {path}, key: id, batch_size: 5000}}
columns:
  input: [subject, body]
  output: {{category: ai_category, summary: ai_summary}}
prompt:
  system: You sort support tickets.
  template: "Classify this ticket: {{record_json}}"
validation: {{category: [technical, business, general]}}
concurrency: {{in_flight: {in_flight}}}
sink: {{kind: {kind}, path: {out}}}
"""


def make_inputs(folder: Path, rows: int) -> dict[str, Path]:
    frame = pl.DataFrame({"id": list(range(rows)),
                          "subject": [f"Printer {i} does not print" for i in range(rows)],
                          "body": [f"Ticket body {i}: the device shows error {i % 97}" for i in range(rows)]})
    csv = folder / "in.csv"
    frame.write_csv(csv)
    xlsx = folder / "in.xlsx"
    book = xlsxwriter.Workbook(str(xlsx), {"constant_memory": True})
    sheet = book.add_worksheet()
    sheet.write_row(0, 0, frame.columns)
    for i, row in enumerate(frame.iter_rows(), start=1):
        sheet.write_row(i, 0, row)
    book.close()
    return {"csv": csv, "xlsx": xlsx}


def _cpu_seconds() -> float:
    """CPU of this process and of its finished children (the Excel writer; fakellm ends after every run)."""
    return sum(u.ru_utime + u.ru_stime for u in map(resource.getrusage, (resource.RUSAGE_SELF,
                                                                         resource.RUSAGE_CHILDREN)))


async def one_run(base_url: str, kind: str, source: Path, in_flight: int, folder: Path) -> tuple[int, float, float]:
    spec_kind = "excel" if kind == "xlsx" else "csv"
    work = folder / f"work-{kind}-{in_flight}"
    shutil.rmtree(work, ignore_errors=True)
    spec = load_spec(SPEC.format(kind=spec_kind, path=source, in_flight=in_flight,
                                 out=folder / f"out-{in_flight}.{kind}")).spec
    client = OpenAIClient(base_url, model="fake-small", max_connections=in_flight)
    usage = _cpu_seconds()
    started = time.perf_counter()
    try:
        outcome = await run_spec(spec, client=client, base_dir=folder, work_dir=work)
    finally:
        await client.aclose()
    elapsed = time.perf_counter() - started
    cpu = _cpu_seconds() - usage
    return outcome.progress.done, elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--latency-ms", type=float, default=100)
    parser.add_argument("--in-flight", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--kinds", nargs="+", default=["csv", "xlsx"], choices=["csv", "xlsx"])
    parser.add_argument("--fakellm", type=Path, default=DEFAULT)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="rowloom-bench-"))
    try:
        inputs = make_inputs(folder, args.rows)
        with fakellm(args.fakellm, "--latency-ms", str(args.latency_ms)) as base_url:
            print(f"{args.rows:,} rows, fakellm latency {args.latency_ms:g} ms")
            for kind in args.kinds:
                for in_flight in args.in_flight:
                    reset(base_url)
                    upstream_cpu = base_url.cpu_seconds()
                    done, elapsed, cpu = event_loop.run(one_run(base_url, kind, inputs[kind], in_flight, folder))
                    seen = stats(base_url)
                    upstream_cpu = base_url.cpu_seconds() - upstream_cpu
                    ceiling = in_flight / (args.latency_ms / 1000)
                    rate = done / elapsed
                    print(f"{kind:<5} in_flight {in_flight:>4}: {done:,} rows in {elapsed:6.2f}s = {rate:7.0f} rows/s "
                          f"= {rate / ceiling:6.1%} of ceiling {ceiling:,.0f}/s; CPU {cpu / done * 1000:.3f} s/1k "
                          f"rows (fakellm: {upstream_cpu / elapsed:.0%} of a core); upstream peak in flight "
                          f"{seen['peak_inflight']}, duplicates {seen['duplicate_ok_extra_requests']}", flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
