"""Run a spec end to end: open and check source and sink, then stream, store and write."""

from __future__ import annotations

import asyncio
from pathlib import Path

from engine.gateway import ChatClient
from engine.progress import ProgressCallback
from engine.results import ResultStore, SqliteResultStore
from engine.runner import EventCallback, Runner, RunOutcome
from engine.sinks import open_sink
from engine.sources import open_source
from engine.spec.models import WorkflowSpec


async def run_spec(spec: WorkflowSpec, *, client: ChatClient, base_dir: Path, work_dir: Path,
                   store: ResultStore | None = None, output: Path | None = None,
                   on_progress: ProgressCallback | None = None, on_event: EventCallback | None = None,
                   stop: asyncio.Event | None = None) -> RunOutcome:
    """Every input check happens before the first request; results go to `store` (default: work_dir)."""
    source = await open_source(spec, base_dir=base_dir)
    try:
        sink = await open_sink(spec, base_dir=base_dir, output=output)
        results = store or SqliteResultStore(work_dir / "results.sqlite")
        try:
            runner = Runner(spec, client=client, store=results, source=source, sink=sink,
                            on_progress=on_progress, on_event=on_event, stop=stop)
            return await runner.run()
        finally:
            if store is None:
                await results.close()
    finally:
        await source.close()
