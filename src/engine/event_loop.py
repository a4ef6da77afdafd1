"""Run a coroutine on uvloop when it is installed (it comes with uvicorn[standard]), else asyncio."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run` for a process's main coroutine: uvloop where available, and a GC tuned for it."""
    tune_gc()
    try:
        import uvloop
    except ImportError:  # pragma: no cover - e.g. Windows
        return asyncio.run(main)
    return uvloop.run(main)


def tune_gc() -> None:
    """Fewer young-generation collections: a run allocates a few objects per request and keeps few.

    Measured on bench/engine_throughput (256 in flight): +8% rows/s; startup objects are frozen so full
    collections do not walk them again.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
