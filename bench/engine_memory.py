#!/usr/bin/env python3
"""Peak memory of a 5,000,000-row CSV run through the engine with the mock provider (no network).

    .venv/bin/python -m bench.engine_memory [--rows 5000000] [--in-flight 256]

The run happens in a child process; its peak RSS (ru_maxrss) is the figure. Target: <= 300 MB.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPEC = """name: memory
source: {{kind: csv, path: {path}, key: id, batch_size: 10000}}
columns:
  input: [subject, body]
  output: {{category: ai_category, summary: ai_summary}}
prompt:
  template: "Classify this ticket: {{record_json}}"
validation: {{category: [technical, business, general]}}
concurrency: {{in_flight: {in_flight}}}
sink: {{kind: csv, path: {out}}}
"""


def child(folder: Path, in_flight: int) -> None:
    """Run the engine and print its figures as JSON."""
    from engine import event_loop
    from engine.gateway.mock import MockClient
    from engine.run import run_spec
    from engine.spec import load_spec

    spec = load_spec(SPEC.format(path=folder / "in.csv", in_flight=in_flight, out=folder / "out.csv")).spec
    started = time.perf_counter()
    outcome = event_loop.run(run_spec(spec, client=MockClient(), base_dir=folder, work_dir=folder / "work"))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"done": outcome.progress.done, "seconds": round(time.perf_counter() - started, 1),
                      "peak_rss_mb": round(peak_mb, 1)}))


def write_input(path: Path, rows: int) -> None:
    """A CSV of `rows` tickets, written in chunks."""
    import polars as pl

    with path.open("wb") as handle:
        for start in range(0, rows, 500_000):
            count = min(500_000, rows - start)
            frame = pl.DataFrame({"id": pl.int_range(start, start + count, eager=True)}).with_columns(
                subject=pl.format("Printer {} does not print", "id"),
                body=pl.format("Ticket body {}: error code {}", "id", pl.col("id") % 97))
            frame.write_csv(handle, include_header=start == 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--in-flight", type=int, default=256)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.in_flight)
        return
    with tempfile.TemporaryDirectory(prefix="rowloom-memory-") as tmp:
        folder = Path(tmp)
        write_input(folder / "in.csv", args.rows)
        size_mb = (folder / "in.csv").stat().st_size / 2**20
        result = subprocess.run([sys.executable, "-m", "bench.engine_memory", "--child", str(folder),
                                 "--in-flight", str(args.in_flight)], capture_output=True, text=True, check=True)
        figures = json.loads(result.stdout.strip().splitlines()[-1])
        print(f"{args.rows:,} rows ({size_mb:,.0f} MB CSV), mock provider, in_flight {args.in_flight}: "
              f"{figures['done']:,} done in {figures['seconds']}s "
              f"({figures['done'] / figures['seconds']:,.0f} rows/s); peak RSS {figures['peak_rss_mb']} MB")


if __name__ == "__main__":
    main()
