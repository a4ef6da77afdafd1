"""Transactions that ride out a short database outage: tried again with backoff for a bounded time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from core.outages import backoff_s, database_outage, is_database_outage

T = TypeVar("T")


class DatabaseUnavailable(Exception):
    """The database stayed unreachable for longer than a transaction may wait."""


async def retrying(transaction: Callable[[], Awaitable[T]], *, within_s: float | None) -> T:
    """Run `transaction` (a whole transaction: it is run again from its start); while the database is unreachable,
    again with backoff for up to `within_s` seconds (None: for ever; 0: once), then DatabaseUnavailable.

    A transaction whose commit was sent but not acknowledged is run again: what it adds (a result's attempts,
    tokens and cost) may then be added twice. That needs the connection to drop in the moment of the commit."""
    loop = asyncio.get_running_loop()
    deadline = None if within_s is None else loop.time() + within_s
    failures = 0
    while True:
        try:
            result = await transaction()
        except Exception as exc:
            if not is_database_outage(exc):
                raise
            failures += 1
            database_outage.failed(exc)
            pause = backoff_s(failures)
            if deadline is not None and loop.time() + pause > deadline:
                raise DatabaseUnavailable(f"the database was unreachable for more than {within_s:g}s "
                                          f"({type(exc).__name__})") from exc
            await asyncio.sleep(pause)
        else:
            database_outage.recovered()
            return result
