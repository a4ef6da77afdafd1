#!/usr/bin/env python3
"""Workflows with steps: two chained prompts and a fan-out against fakellm, retrieval, and an embed job's memory.

    .venv/bin/python -m bench.steps chain [--rows 20000] [--latency-ms 100] [--in-flight 256]
    .venv/bin/python -m bench.steps fan-out [--rows 10000] [--latency-ms 100] [--in-flight 256]
    .venv/bin/python -m bench.steps retrieve [--knowledge 100000] [--dims 256 1536] [--queries 1000]
    .venv/bin/python -m bench.steps embed-memory [--rows 1000000]

`chain` and `fan-out` print upstream requests/s against the ceiling (requests in flight / latency; a row of a
two-step chain has one request in flight at a time, a fan-out row one per model) and fakellm's duplicates (must
be 0). `retrieve` prints milliseconds a top-5 query over the knowledge table. `embed-memory` runs an embed step
over a CSV in a child process (the mock model, 16 dimensions, no network) and prints its peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._fakellm import fakellm, reset, run_parser, stats
from bench.engine_memory import write_input

HEADER = """name: {name}
source: {{kind: csv, path: {path}, key: id, batch_size: 5000}}
concurrency: {{in_flight: {in_flight}}}
sink: {{kind: csv, path: {out}}}
steps:
  - id: classify
    kind: prompt
    input: [subject, body]
    output: {{category: category}}
    prompt: {{template: "Classify this ticket: {{subject}} {{body}}"}}
    validation: {{category: [technical, business, general]}}
"""
CHAIN = HEADER + """  - id: summarize
    kind: prompt
    input: [body, category]
    output: {{summary: summary}}
    prompt: {{template: "Summarize this {{category}} ticket: {{body}}"}}
"""
FAN_OUT = HEADER + """    models: [fake-a, fake-b, fake-c]
    compare: {{fields: [category]}}
"""
EMBED = """name: embed
source: {{kind: csv, path: {path}, key: id, batch_size: 10000}}
steps:
  - {{id: embed, kind: embed, template: "{{subject}} {{body}}", output: vector, batch_size: 256}}
concurrency: {{in_flight: 256}}
cache: {{mode: "off"}}
sink: {{kind: parquet, path: {out}}}
"""


def prompts(args: argparse.Namespace, template: str, per_row: int) -> None:
    """Run a workflow of prompt steps against fakellm; print requests/s against the ceiling."""
    from engine import event_loop
    from engine.gateway.openai_client import OpenAIClient
    from engine.run import run_spec
    from engine.spec import load_spec

    folder = Path(tempfile.mkdtemp(prefix="rowloom-bench-steps-"))
    try:
        write_input(folder / "in.csv", args.rows)
        spec = load_spec(template.format(name=args.mode, path=folder / "in.csv", in_flight=args.in_flight,
                                         out=folder / "out.csv")).spec
        with fakellm(args.fakellm, "--latency-ms", str(args.latency_ms)) as base_url:
            reset(base_url)
            client = OpenAIClient(base_url, max_connections=args.in_flight * per_row)

            async def run() -> object:
                try:
                    return await run_spec(spec, client=client, base_dir=folder, work_dir=folder / "work")
                finally:
                    await client.aclose()

            started = time.perf_counter()
            outcome = event_loop.run(run())
            elapsed = time.perf_counter() - started
            seen = stats(base_url)
        requests = seen["requests"]
        ceiling = args.in_flight * per_row / (args.latency_ms / 1000)
        rate = requests / elapsed
        done = getattr(outcome, "progress").done  # noqa: B009 - the outcome's type is the engine's
        # fakellm counts a prompt answered twice as a duplicate; a fan-out asks each of its models once
        duplicates = seen["duplicate_ok_extra_requests"] - (per_row - 1) * seen["distinct_prompts_ok"]
        print(f"{args.mode}: {done:,} rows, {requests:,} requests in {elapsed:.2f}s = {rate:,.0f} requests/s = "
              f"{rate / ceiling:.1%} of the ceiling {ceiling:,.0f}/s ({args.in_flight} rows in flight, fakellm "
              f"{args.latency_ms:g} ms); duplicates {duplicates}", flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def retrieve(args: argparse.Namespace) -> None:
    """Milliseconds a top-5 query over `--knowledge` rows, for each dimension count."""
    import numpy as np

    from engine.retrieval import KnowledgeIndex
    from engine.run.step_runs import SEARCH_BATCH

    rng = np.random.default_rng(5)
    for dims in args.dims:
        vectors = rng.standard_normal((args.knowledge, dims), dtype=np.float32)
        started = time.perf_counter()
        index = KnowledgeIndex(vectors)  # type: ignore[arg-type]  # an array of rows is what it takes
        built = time.perf_counter() - started
        queries = rng.standard_normal((args.queries, dims)).tolist()
        started = time.perf_counter()
        for query in queries:
            index.search(query, 5)
        alone = (time.perf_counter() - started) / args.queries * 1000
        started = time.perf_counter()
        for first in range(0, args.queries, SEARCH_BATCH):
            index.search_many(queries[first:first + SEARCH_BATCH], 5)
        batched = (time.perf_counter() - started) / args.queries * 1000
        print(f"retrieve: top-5 over {args.knowledge:,} rows of {dims} dimensions ({index.matrix.dtype}): "
              f"{batched:.2f} ms a query in passes of {SEARCH_BATCH} (as a run makes them), {alone:.2f} ms one "
              f"at a time ({args.queries:,} queries); index built in {built:.1f}s", flush=True)


def embed_memory_child(folder: Path) -> None:
    """In the child: run the embed workflow; print its figures as JSON."""
    from engine import event_loop
    from engine.gateway.mock import MockClient
    from engine.run import run_spec
    from engine.spec import load_spec

    spec = load_spec(EMBED.format(path=folder / "in.csv", out=folder / "out.parquet")).spec
    started = time.perf_counter()
    outcome = event_loop.run(run_spec(spec, client=MockClient(dimensions=16), base_dir=folder,
                                      work_dir=folder / "work"))
    print(json.dumps({"done": outcome.progress.done, "seconds": round(time.perf_counter() - started, 1),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))


def embed_memory(args: argparse.Namespace) -> None:
    """Peak RSS of an embed job over `--rows` rows, run in a child process."""
    folder = Path(tempfile.mkdtemp(prefix="rowloom-bench-embed-"))
    try:
        write_input(folder / "in.csv", args.rows)
        child = subprocess.run([sys.executable, "-m", "bench.steps", "embed-memory-child", str(folder)],
                               capture_output=True, text=True, check=True)
        figures = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"embed-memory: {figures['done']:,} rows embedded (16 dimensions, Parquet list column) in "
              f"{figures['seconds']}s; peak RSS {figures['peak_rss_mb']} MB", flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = run_parser(__doc__, rows=None, latency_ms=100, in_flight=256)
    parser.add_argument("mode", choices=["chain", "fan-out", "retrieve", "embed-memory", "embed-memory-child"])
    parser.add_argument("folder", nargs="?", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--knowledge", type=int, default=100_000)
    parser.add_argument("--dims", type=int, nargs="+", default=[256, 1536])
    parser.add_argument("--queries", type=int, default=1000)
    args = parser.parse_args()
    if args.mode == "chain":
        args.rows = args.rows or 20_000
        prompts(args, CHAIN, 1)
    elif args.mode == "fan-out":
        args.rows = args.rows or 10_000
        prompts(args, FAN_OUT, 3)
    elif args.mode == "retrieve":
        retrieve(args)
    elif args.mode == "embed-memory":
        args.rows = args.rows or 1_000_000
        embed_memory(args)
    else:
        embed_memory_child(args.folder)


if __name__ == "__main__":
    main()
