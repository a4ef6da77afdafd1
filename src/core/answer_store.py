"""The answer cache in the platform's database: one table of answers shared by every job, worker and workflow.

Rows ask for their answers one at a time, but a lookup is one query for every key asked while the previous
query ran (a worker's window of rows in flight takes a few queries, not one each). New answers are written in
groups, at most WRITE_EVERY_S after they were bought, and served from memory until then: one lost in a crash
is only bought again.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import mysql, sqlite

from core.db import Database
from core.models import Answer
from engine.results.answer_cache import CachedAnswer

ANSWERS = Answer.__table__  # type: ignore[attr-defined]
IN_CHUNK = 500  # keys per IN (...) lookup
WRITE_GROUP = 256  # answers that start a write at once
WRITE_EVERY_S = 0.5  # the longest a bought answer waits for a write (other workers see it after that)
COLUMNS = ("content", "model", "tokens_in", "tokens_out", "cost", "stored_at")


class DbAnswerCache:
    """The `AnswerCache` the engine asks, on the `answers` table. One per process: its jobs share it."""

    def __init__(self, database: Database, *, scope: str) -> None:
        self.database = database
        self.scope = scope
        self._asked: dict[str, asyncio.Future[CachedAnswer | None]] = {}
        self._lookup: asyncio.Task[None] | None = None
        self._pending: dict[str, CachedAnswer] = {}
        self._writer: asyncio.Task[None] | None = None
        self._full = asyncio.Event()

    async def get(self, key: str) -> CachedAnswer | None:
        """The answer stored under `key`, if any (looked up with the other keys asked meanwhile)."""
        if (pending := self._pending.get(key)) is not None:
            return pending
        future = self._asked.get(key)
        if future is None:
            future = self._asked[key] = asyncio.get_running_loop().create_future()
            if self._lookup is None:
                self._lookup = asyncio.create_task(self._look_up())
        return await asyncio.shield(future)  # one caller cancelled does not cancel the others' answer

    async def _look_up(self) -> None:
        try:
            await asyncio.sleep(0)  # the rows that ask in this turn of the loop join the first query
            while self._asked:
                asked, self._asked = self._asked, {}
                try:
                    found = await self._fetch(list(asked))
                except Exception as exc:
                    for future in asked.values():
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for key, future in asked.items():
                    if not future.done():
                        future.set_result(found.get(key))
        finally:
            self._lookup = None

    async def _fetch(self, keys: list[str]) -> dict[str, CachedAnswer]:
        found: dict[str, CachedAnswer] = {}
        for start in range(0, len(keys), IN_CHUNK):
            query = select(ANSWERS.c.key, *(ANSWERS.c[c] for c in COLUMNS)).where(
                ANSWERS.c.key.in_(keys[start:start + IN_CHUNK]))
            found |= {row[0]: CachedAnswer(*tuple(row)[1:]) for row in await self.database.execute(query)}
        return found

    async def put(self, key: str, answer: CachedAnswer) -> None:
        """Store (or replace) the answer under `key`: served at once, written within WRITE_EVERY_S."""
        self._pending[key] = answer
        if len(self._pending) >= WRITE_GROUP:
            self._full.set()
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_soon())

    async def _write_soon(self) -> None:
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), WRITE_EVERY_S)
            self._full.clear()
            await self.flush()
        finally:
            self._writer = None

    async def flush(self) -> None:
        """Write every answer not yet written."""
        while self._pending:
            batch = dict(self._pending)
            await self.database.execute(self._upsert(), [
                {"key": key, **{c: getattr(answer, c) for c in COLUMNS}} for key, answer in batch.items()])
            for key, answer in batch.items():
                if self._pending.get(key) is answer:
                    del self._pending[key]

    def _upsert(self) -> Any:
        if self.database.backend == "mysql":
            statement = mysql.insert(ANSWERS)
            return statement.on_duplicate_key_update({c: statement.inserted[c] for c in COLUMNS})
        lite = sqlite.insert(ANSWERS)
        return lite.on_conflict_do_update(index_elements=["key"], set_={c: lite.excluded[c] for c in COLUMNS})

    async def close(self) -> None:
        """Write what is pending; stop the background write."""
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        await self.flush()
