"""Outages of what a process depends on (the database, Redis): noticed once, logged once each way, and
recognised by their errors."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from asyncmy.errors import InterfaceError as MySQLInterfaceError
from asyncmy.errors import OperationalError as MySQLOperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

log = logging.getLogger(__name__)

T = TypeVar("T")

BACKOFF_BASE_S = 0.05  # the first wait before trying an unreachable dependency again; it doubles from there
BACKOFF_CAP_S = 2.0  # up to this: a dependency that comes back is in use again within this long

# MySQL/MariaDB errors that say the server is away or busy, not that the statement is wrong: can't connect (2002,
# 2003), gone away (2006), lost the connection (2013, 2055), too many connections (1040), shutting down (1053),
# connection killed (1927), lock wait timeout (1205), deadlock (1213).
MYSQL_TRANSIENT = frozenset({2002, 2003, 2006, 2013, 2055, 1040, 1053, 1927, 1205, 1213})
SQLITE_TRANSIENT = ("database is locked", "database is busy")


def backoff_s(failures: int) -> float:
    """The wait before try `failures` + 1: doubling from BACKOFF_BASE_S up to BACKOFF_CAP_S."""
    return min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2.0 ** min(failures - 1, 16))


class Outage:
    """One dependency as this process sees it: reachable, or unreachable since when."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.since: float | None = None
        self.ended_at: float | None = None  # monotonic time the last outage ended

    def failed(self, error: BaseException) -> None:
        """A call could not reach it (the first such call of an outage logs it)."""
        if self.since is None:
            self.since = time.monotonic()
            first_line = (str(error).splitlines() or [""])[0]
            log.warning("%s is unreachable (%s); waiting and reconnecting with backoff", self.name,
                        f"{type(error).__name__}: {first_line}"[:300])

    def recovered(self) -> None:
        """A call reached it (the first after an outage logs it)."""
        if self.since is not None:
            self.ended_at = time.monotonic()
            log.warning("%s is reachable again after %.1fs", self.name, self.ended_at - self.since)
            self.since = None

    @property
    def down(self) -> bool:
        """Whether the last call failed to reach it."""
        return self.since is not None

    def ended_within(self, seconds: float) -> bool:
        """Whether it is down, or was until less than `seconds` ago."""
        return self.down or (self.ended_at is not None and time.monotonic() - self.ended_at < seconds)


database_outage = Outage("the database")
redis_outage = Outage("Redis")


def is_database_outage(error: BaseException) -> bool:
    """Whether `error` says the database is unreachable or busy (try again) rather than the statement is wrong."""
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, OperationalError | InterfaceError):
        args = getattr(error.orig, "args", ())
        if args and isinstance(args[0], int):
            return args[0] in MYSQL_TRANSIENT
        return isinstance(error, InterfaceError) or any(text in str(error.orig) for text in SQLITE_TRANSIENT)
    if isinstance(error, MySQLOperationalError | MySQLInterfaceError):  # the driver's, before SQLAlchemy wraps it
        return bool(error.args) and error.args[0] in MYSQL_TRANSIENT
    return isinstance(error, ConnectionError | TimeoutError)  # the driver's socket, before SQLAlchemy wraps it


async def ride_out(call: Callable[[], Awaitable[T]], *, outage: Outage, retried: Callable[[BaseException], bool],
                   within_s: float | None, on_failure: Callable[[Any], Awaitable[Any]] | None = None) -> T:
    """Call until it succeeds; while it fails with an error `retried` says is `outage`'s, again after backoff
    (`backoff_s`) for up to `within_s` seconds (None: for ever), then that error goes on up."""
    deadline = None if within_s is None else time.monotonic() + within_s
    failures = 0
    while True:
        try:
            result = await call()
        except Exception as exc:
            if not retried(exc):
                raise
            failures += 1
            outage.failed(exc)
            if on_failure is not None:
                await on_failure(exc)
            pause = backoff_s(failures)
            if deadline is not None and time.monotonic() + pause > deadline:
                raise
            await asyncio.sleep(pause)
        else:
            outage.recovered()
            return result


def outage_of(error: BaseException) -> Outage | None:
    """The dependency `error` (or the error that caused it) says is away, if it says so."""
    for said in (error, error.__cause__):
        if said is not None and is_database_outage(said):
            return database_outage
        if said is not None and is_redis_outage(said):
            return redis_outage
    return None


@contextmanager
def quiet_outage() -> Iterator[None]:
    """A periodic task's block: an outage of the database or Redis ends it quietly (logged once for the process;
    the next run tries again); any other error goes on up."""
    try:
        yield
    except Exception as exc:
        if (outage := outage_of(exc)) is None:
            raise
        outage.failed(exc)


def is_redis_outage(error: BaseException) -> bool:
    """Whether `error` says Redis is unreachable."""
    return isinstance(error, RedisConnectionError | RedisTimeoutError)
