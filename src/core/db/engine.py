"""The async engine and session factory for SQLite (aiosqlite) or MySQL/MariaDB (asyncmy)."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy import CursorResult, Engine, Executable, Row, event
from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db.retry import retrying

T = TypeVar("T")


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    """An async engine with the per-backend settings Rowloom relies on."""
    parsed = make_url(url)
    kwargs: dict[str, Any] = {"echo": echo}
    if parsed.get_backend_name() == "mysql":
        # utf8mb4 so that any unicode in names and YAML round-trips; recycle under MySQL's wait_timeout.
        if "charset" not in parsed.query:
            parsed = parsed.update_query_dict({"charset": "utf8mb4"})
        kwargs |= {"pool_pre_ping": True, "pool_recycle": 3600}
    engine = create_async_engine(parsed, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (API lists) run while a worker writes; FKs are off by default in SQLite.
    cursor = dbapi_connection.cursor()
    for pragma in ("journal_mode=WAL", "foreign_keys=ON", "busy_timeout=10000", "synchronous=NORMAL"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


class Database:
    """One engine and its session factory; the app and the worker each hold one.

    `outage_s` is how long a transaction run through `retrying` rides out the database being unreachable: 0 in
    the API (a request answers 503 at once), DB_OUTAGE_S in a worker (its jobs go on where they were)."""

    def __init__(self, url: str, *, echo: bool = False, outage_s: float | None = 0) -> None:
        self.url = url
        self.engine = create_engine(url, echo=echo)
        self.sessions = async_sessionmaker(self.engine, class_=AsyncSession, expire_on_commit=False)
        self._thread_engine: Engine | None = None
        self.outage_s = outage_s

    def with_patience(self, outage_s: float | None) -> Database:
        """The same connections, with transactions riding out an outage for `outage_s` (None: for ever)."""
        self.thread_engine  # noqa: B018  # made now, so both share it (and dispose closes it)
        patient = copy.copy(self)
        patient.outage_s = outage_s
        return patient

    async def retrying(self, transaction: Callable[[], Awaitable[T]], *, for_ever: bool = False) -> T:
        """Run `transaction` (all of it again on each try) while the database is unreachable, for `outage_s` (or
        `for_ever`: a write that must land, such as a job's final status), then DatabaseUnavailable."""
        return await retrying(transaction, within_s=None if for_ever else self.outage_s)

    @property
    def thread_engine(self) -> Engine | None:
        """With SQLite, a blocking engine on the same file for a transaction run whole in a worker thread: one
        hand-over to the thread instead of one a statement (aiosqlite's), for writes made many times a second.
        None with MySQL, whose driver is asynchronous."""
        if self.backend != "sqlite":
            return None
        if self._thread_engine is None:
            url = make_url(self.url).set(drivername="sqlite")
            self._thread_engine = sa_create_engine(url, connect_args={"check_same_thread": False})
            event.listen(self._thread_engine, "connect", _sqlite_pragmas)
        return self._thread_engine

    @property
    def backend(self) -> str:
        """`sqlite` or `mysql`."""
        return self.engine.dialect.name

    async def execute_all(self, statements: Sequence[tuple[Executable, Sequence[dict[str, Any]] | None]]
                          ) -> list[list[Row[Any]]]:
        """Run statements in one transaction (the rows of each that returns any), `retrying`: in a worker thread on
        the thread engine with SQLite (see `thread_engine`), on the async engine otherwise."""
        async def transaction() -> list[list[Row[Any]]]:
            if (engine := self.thread_engine) is not None:
                return await asyncio.to_thread(_execute_all, engine, statements)
            async with self.engine.begin() as connection:
                return [_rows(await connection.execute(statement, params)) for statement, params in statements]

        return await self.retrying(transaction)

    @asynccontextmanager
    async def pinned_session(self) -> AsyncIterator[AsyncSession]:
        """A session that keeps one connection for the whole block, across commits: what a lock held by a
        connection (MySQL's GET_LOCK) needs, since a plain session hands its connection back at each commit."""
        async with self.engine.connect() as connection, \
                AsyncSession(bind=connection, expire_on_commit=False) as session:
            yield session

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session that rolls back if the block raises."""
        async with self.sessions() as session:
            yield session

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()
        if self._thread_engine is not None:
            self._thread_engine.dispose()


def _execute_all(engine: Engine, statements: Sequence[tuple[Executable, Sequence[dict[str, Any]] | None]]
                 ) -> list[list[Row[Any]]]:
    with engine.begin() as connection:
        return [_rows(connection.execute(statement, params)) for statement, params in statements]


def _rows(result: CursorResult[Any]) -> list[Row[Any]]:
    return list(result) if result.returns_rows else []
