"""Transactions that ride out a short database outage: tried again with backoff for a bounded time."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from core.outages import database_outage, is_database_outage, ride_out

T = TypeVar("T")


class DatabaseUnavailable(Exception):
    """The database stayed unreachable for longer than a transaction may wait."""


async def retrying(transaction: Callable[[], Awaitable[T]], *, within_s: float | None) -> T:
    """Run `transaction` (a whole transaction: it is run again from its start); while the database is unreachable,
    again with backoff for up to `within_s` seconds (None: for ever; 0: once), then DatabaseUnavailable.

    A transaction whose commit was sent but not acknowledged is run again: what it adds (a result's attempts,
    tokens and cost) may then be added twice. That needs the connection to drop in the moment of the commit."""
    try:
        return await ride_out(transaction, outage=database_outage, retried=is_database_outage, within_s=within_s)
    except Exception as exc:
        if not is_database_outage(exc):
            raise
        raise DatabaseUnavailable(f"the database was unreachable for more than {within_s:g}s "
                                  f"({type(exc).__name__})") from exc
