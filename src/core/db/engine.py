"""The async engine and session factory for SQLite (aiosqlite) or MySQL/MariaDB (asyncmy)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import CursorResult, Engine, Executable, Row, event
from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession


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
    """One engine and its session factory; the app and the worker each hold one."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.engine = create_engine(url, echo=echo)
        self.sessions = async_sessionmaker(self.engine, class_=AsyncSession, expire_on_commit=False)
        self._thread_engine: Engine | None = None

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
        """Run statements in one transaction (the rows of each that returns any): in a worker thread on the
        thread engine with SQLite (see `thread_engine`), on the async engine otherwise."""
        if (engine := self.thread_engine) is not None:
            return await asyncio.to_thread(_execute_all, engine, statements)
        async with self.engine.begin() as connection:
            return [_rows(await connection.execute(statement, params)) for statement, params in statements]

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
