#!/usr/bin/env python3
"""The same 100,000-row job live and in provider batches against fakellm: CPU a row, peak memory, and the time
from the provider's completion to the job's output written.

    .venv/bin/python -m bench.batch_mode [--rows 100000] [--in-flight 256] [--batch-delay-s 5] [--poll-s 1]
                                         [--max-requests 50000]

Each run is a child process (the engine with a gateway config on fakellm, the answer cache off so both modes send
every row); its CPU (user + system) and peak RSS (ru_maxrss) are the figures. fakellm reports a batch completed
--batch-delay-s after its creation; the lag is from then to the batch collected (the poll) and to the output
written (collecting, replaying the lines through the run's checks, storing and writing). Targets: batch CPU a
row <= live CPU a row; peak RSS <= 300 MB.
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
from typing import Any

from bench._fakellm import fakellm, reset, run_parser, stats
from bench.engine_memory import SPEC as MEMORY_SPEC
from bench.engine_memory import write_input

# The memory benchmark's job, every row sent (the answer cache off), in the mode asked for.
SPEC = MEMORY_SPEC.replace("sink:", 'cache: {{mode: "off"}}\nmode: {mode}\nsink:')
GATEWAY = """models:
  - {{name: m, model: fake, channel: c, timeout: 60, batch: {{poll_s: {poll_s}, max_requests: {max_requests}}}}}
channels:
  c: {{base_url: '{root}'}}
"""


def child(folder: Path, mode: str, in_flight: int) -> None:
    """Run the engine and print its figures as JSON."""
    from engine import BatchRun, RunEvent, SqliteBatchLedger, event_loop, run_spec
    from engine.gateway import BatchDeployments, Router, load_gateway
    from engine.spec import load_spec

    spec = load_spec(SPEC.format(path=folder / "in.csv", in_flight=in_flight, out=folder / f"{mode}.csv",
                                 mode=mode)).spec
    config = load_gateway((folder / "gateway.yaml").read_text())
    seen: dict[str, list[float]] = {}

    def on_event(kind: RunEvent, *_: Any) -> None:
        seen.setdefault(kind.value, []).append(time.time())

    async def run() -> Any:
        router = Router(config)
        batches = BatchRun(spec, deployments=BatchDeployments(config),
                           ledger=SqliteBatchLedger(folder / f"work-{mode}" / "batches.sqlite"))
        try:
            return await run_spec(spec, client=router, base_dir=folder, work_dir=folder / f"work-{mode}",
                                  on_event=on_event, batches=batches)
        finally:
            await router.aclose()
            await batches.deployments.aclose()

    started = time.perf_counter()
    outcome = event_loop.run(run())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"done": outcome.progress.done, "seconds": time.perf_counter() - started,
                      "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024,
                      "events": seen}))


def measure(folder: Path, mode: str, in_flight: int) -> dict[str, Any]:
    result = subprocess.run([sys.executable, "-m", "bench.batch_mode", "--child", str(folder), "--mode", mode,
                             "--in-flight", str(in_flight)], capture_output=True, text=True, check=True)
    figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


def main() -> None:
    parser = run_parser(__doc__, rows=100_000, latency_ms=0.0, in_flight=256)
    parser.add_argument("--batch-delay-s", type=float, default=5.0)
    parser.add_argument("--poll-s", type=float, default=1.0)
    parser.add_argument("--max-requests", type=int, default=50_000, help="the deployment's batch.max_requests")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.mode, args.in_flight)
        return
    with tempfile.TemporaryDirectory(prefix="rowloom-batch-") as tmp, \
            fakellm(args.fakellm, "--latency-ms", str(args.latency_ms), "--batch-delay-s",
                    str(args.batch_delay_s)) as url:
        folder = Path(tmp)
        write_input(folder / "in.csv", args.rows)
        (folder / "gateway.yaml").write_text(GATEWAY.format(poll_s=args.poll_s, max_requests=args.max_requests,
                                                        root=url.removesuffix("/v1")))
        results, upstream = {}, {}
        for mode in ("live", "batch"):
            reset(url)
            results[mode] = measure(folder, mode, args.in_flight)
            upstream[mode] = stats(url)
        same = (folder / "live.csv").read_bytes() == (folder / "batch.csv").read_bytes()
    for mode, r in results.items():
        print(f"{mode:5}: {r['done']:,} rows in {r['seconds']:.1f}s, CPU {r['cpu_s'] / r['done'] * 1e6:,.0f} µs a "
              f"row, peak RSS {r['peak_rss_mb']:.0f} MB")
    events = results["batch"]["events"]
    submitted, ended, written = events["batch_submitted"], events["batch_ended"], events["output_written"][-1]
    completed = max(submitted) + args.batch_delay_s  # fakellm: completed batch-delay-s after its creation
    print(f"batch: {len(submitted)} batches; provider completion -> last batch collected {max(ended) - completed:.2f}s "
          f"(polls every {args.poll_s:g}s) -> output written {written - max(ended):.2f}s")
    print(f"outputs identical: {same}; fakellm, batch run: {upstream['batch']['batches_created']} batches created, "
          f"{upstream['batch']['batch_lines']:,} lines, {upstream['batch']['requests']:,} requests, "
          f"{upstream['batch']['duplicate_ok_extra_requests']} answered twice")


if __name__ == "__main__":
    main()
