"""arq on a real Redis for tests: the platform with an arq queue of the test's own, and a worker in this process."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from arq.worker import Worker

from core.queue import ArqQueue
from core.settings import Settings
from tests.support.fake_upstream import FakeUpstream
from tests.support.services import redis_url
from tests.support.worker_helpers import Platform, platform
from worker.arq_app import build_worker


@pytest.fixture
def queue_name() -> str:
    """A queue of the test's own, so entries of other runs never meet it."""
    return f"rowloom-test:{uuid.uuid4().hex[:12]}"


@contextlib.asynccontextmanager
async def arq_platform(database_url: str, data_dir: Path, upstream: FakeUpstream, queue_name: str,
                       **overrides: Any) -> AsyncIterator[Platform]:
    url = redis_url()
    async with platform(database_url=database_url, data_dir=data_dir, upstream_url=upstream.base_url,
                        queue=ArqQueue(url, queue_name), redis_url=url, queue_name=queue_name, **overrides) as p:
        yield p


@contextlib.asynccontextmanager
async def arq_worker(settings: Settings) -> AsyncIterator[Worker]:
    """An arq worker running in this event loop; closed (and its close checked to succeed) on exit."""
    worker = build_worker(settings, handle_signals=False, poll_delay=0.05)
    task = asyncio.create_task(worker.async_run())
    try:
        yield worker
    finally:
        await worker.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
