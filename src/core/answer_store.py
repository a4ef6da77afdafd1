"""The answer cache in the platform's database: one table of answers shared by every job, worker and workflow.

Rows ask for their answers one at a time (or a window of rows ahead, `prefetch`), but one transaction at a
time does the cache's I/O: it writes the answers bought since the last write (in groups, at most
WRITE_EVERY_S after they were bought; until then they are served from memory: one lost in a crash is only
bought again) and looks up every key asked meanwhile. Lookups and writes never compete for the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import mysql, sqlite

from core.db import Database
from core.models import StoredAnswer
from engine import STORED_AT_CHUNK, CachedAnswer

log = logging.getLogger(__name__)

ANSWERS = StoredAnswer.__table__  # type: ignore[attr-defined]
IN_CHUNK = 500  # keys per IN (...) lookup
WRITE_GROUP = 256  # answers that make a write due at once
WRITE_EVERY_S = 0.5  # the longest a bought answer waits for a write (other workers see it after that)
COLUMNS = ("content", "model", "tokens_in", "tokens_out", "cost", "stored_at")


class DbAnswerCache:
    """The `AnswerCache` the engine asks, on the `answers` table. One per process: its jobs share it."""

    def __init__(self, database: Database, *, scope: str) -> None:
        self.database = database
        self.scope = scope
        self._asked: dict[str, asyncio.Future[CachedAnswer | None]] = {}
        self._prefetched: dict[str, asyncio.Future[CachedAnswer | None]] = {}  # until the row asks
        self._pending: dict[str, CachedAnswer] = {}  # bought, not yet written
        self._since = 0.0  # when the oldest pending answer was bought (monotonic)
        self._io: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    async def get(self, key: str) -> CachedAnswer | None:
        """The answer stored under `key`, if any (looked up with the other keys asked meanwhile)."""
        if (pending := self._pending.get(key)) is not None:
            return pending
        future = self._prefetched.pop(key, None) or self._lookup_of(key)
        return await asyncio.shield(future)  # one caller cancelled does not cancel the others' answer

    def prefetch(self, keys: list[str]) -> None:
        """Look these keys up now, all in one query: a row finds its answer waiting when it asks."""
        for key in keys:
            if key not in self._pending and key not in self._prefetched:
                self._prefetched[key] = self._lookup_of(key)

    def _lookup_of(self, key: str) -> asyncio.Future[CachedAnswer | None]:
        future = self._asked.get(key)
        if future is None:
            future = self._asked[key] = asyncio.get_running_loop().create_future()
            self._run()
        return future

    async def stored_at(self, keys: list[str]) -> dict[str, float]:
        """When each of these keys' answer was stored (a key without one is absent), thousands a query."""
        found = {key: self._pending[key].stored_at for key in keys if key in self._pending}
        wanted = [key for key in keys if key not in found]
        dialect = self.database.engine.dialect
        marker = "?" if dialect.paramstyle == "qmark" else "%s"
        column = dialect.identifier_preparer.quote("key")

        async def read() -> dict[str, float]:
            # The driver's own SQL: SQLAlchemy's IN of thousands of values costs more than the query.
            stored: dict[str, float] = {}
            async with self.database.engine.connect() as connection:
                for start in range(0, len(wanted), STORED_AT_CHUNK):
                    chunk = wanted[start:start + STORED_AT_CHUNK]
                    markers = ",".join([marker] * len(chunk))
                    result = await connection.exec_driver_sql(
                        f"SELECT {column}, stored_at FROM answers WHERE {column} IN ({markers})", tuple(chunk))
                    stored.update(tuple(row) for row in result)
            return stored

        return found | (await self.database.retrying(read) if wanted else {})

    async def put(self, key: str, answer: CachedAnswer) -> None:
        """Store (or replace) the answer under `key`: served at once, written within WRITE_EVERY_S."""
        if not self._pending:
            self._since = time.monotonic()
        self._pending[key] = answer
        self._run()

    def _run(self) -> None:
        self._wake.set()
        if self._io is None:
            self._io = asyncio.create_task(self._serve())

    async def _serve(self) -> None:
        """One transaction at a time: due writes and every lookup asked, until there is nothing left to do."""
        try:
            while self._asked or self._pending:
                due = self._pending and (len(self._pending) >= WRITE_GROUP
                                         or time.monotonic() - self._since >= WRITE_EVERY_S)
                if not self._asked and not due:  # only answers to write, not due yet: wait for them or a lookup
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), WRITE_EVERY_S - (time.monotonic() - self._since))
                    continue
                asked, self._asked = self._asked, {}
                writes = dict(self._pending) if due else {}
                try:
                    found = await self._transaction(writes, list(asked))
                except Exception as exc:
                    for future in asked.values():
                        if not future.done():
                            future.set_exception(exc)
                            future.exception()  # retrieved: a look-up made ahead that no row asks for stays quiet
                    if not asked:  # only writes: they stay pending, and are tried again a little later
                        log.warning("could not store answers in the cache (%s); trying again", exc)
                        await asyncio.sleep(WRITE_EVERY_S)
                    continue
                self._written(writes)
                for key, future in asked.items():
                    if not future.done():
                        future.set_result(found.get(key))
        finally:
            self._io = None

    async def _transaction(self, writes: dict[str, CachedAnswer], keys: list[str]) -> dict[str, CachedAnswer]:
        statements: list[tuple[Any, list[dict[str, Any]] | None]] = []
        if writes:
            statements.append((self._upsert(), [{"key": key, **{c: getattr(a, c) for c in COLUMNS}}
                                                for key, a in writes.items()]))
        for start in range(0, len(keys), IN_CHUNK):
            statements.append((select(ANSWERS.c.key, *(ANSWERS.c[c] for c in COLUMNS)).where(
                ANSWERS.c.key.in_(keys[start:start + IN_CHUNK])), None))
        found: dict[str, CachedAnswer] = {}
        for rows in await self.database.execute_all(statements):
            found |= {row[0]: CachedAnswer(*tuple(row)[1:]) for row in rows}
        return found

    def _written(self, writes: dict[str, CachedAnswer]) -> None:
        for key, answer in writes.items():
            if self._pending.get(key) is answer:
                del self._pending[key]
        if self._pending:
            self._since = time.monotonic()

    async def flush(self) -> None:
        """Write every answer not yet written (at a job's end: what it looked up ahead and never asked for is
        dropped too, so no lookup grows stale)."""
        self._prefetched.clear()
        if self._pending:
            writes = dict(self._pending)
            await self._transaction(writes, [])
            self._written(writes)

    def _upsert(self) -> Any:
        if self.database.backend == "mysql":
            statement = mysql.insert(ANSWERS)
            return statement.on_duplicate_key_update({c: statement.inserted[c] for c in COLUMNS})
        lite = sqlite.insert(ANSWERS)
        return lite.on_conflict_do_update(index_elements=["key"], set_={c: lite.excluded[c] for c in COLUMNS})

    async def close(self) -> None:
        """Write what is pending; stop the background I/O."""
        if self._io is not None:
            self._io.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._io
        await self.flush()
