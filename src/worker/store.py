"""The results store in the platform database (`job_items`): the engine's ResultStore for one job."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Select, select

from core.db import Database
from core.db.types import utcnow
from core.db.upserts import CompiledUpsert, adding_upsert
from core.models import JobItem
from core.models.job_item import MAX_ROW_KEY
from core.usage_rollup import UsageSubject
from engine import ErrorClass, Key, RowResult, RowStatus, Unit, encode_key, stored_key

ITEMS = JobItem.__table__  # type: ignore[attr-defined]
IN_CHUNK = 500  # keys per IN (...) lookup
# A re-run row (a failed row retried) replaces its answer but adds its cost: every attempt stays counted.
ADDED = ("attempts", "tokens_in", "tokens_out", "cost")
REPLACED = ("key_json", "step", "target", "status", "outputs", "error_class", "error", "model", "latency_s", "cached",
            "workflow_version_id",
            "prompt_hash", "updated_at")
RESULT_COLUMNS = ("key_json", "status", "outputs", "error_class", "error", "model", "attempts", "latency_s",
                  "tokens_in", "tokens_out", "cost", "step", "target")


def lookup_key(key: Key, unit: Unit = ("", "")) -> str:
    """A row's (or a step result's) key as the primary key column holds it: its JSON, or a hash of it when that
    is too long."""
    return _lookup(stored_key(encode_key(key), unit))


def _lookup(encoded: str) -> str:
    return encoded if len(encoded) <= MAX_ROW_KEY else "#" + hashlib.sha256(encoded.encode()).hexdigest()


class DbResultStore:
    """One job's finished rows in `job_items`, stamped with the workflow version and prompt they ran under."""

    def __init__(self, database: Database, *, job_id: int, workflow_version_id: int, prompt_hash: str,
                 usage: UsageSubject, clock: Callable[[], datetime] = utcnow) -> None:
        self.database = database
        self.job_id = job_id
        self.workflow_version_id = workflow_version_id
        self.prompt_hash = prompt_hash
        self.usage = usage
        self.clock = clock
        self._compiled: CompiledUpsert | None = None

    async def write(self, results: Sequence[RowResult]) -> None:
        """Upsert a batch, and add it to its hour's usage, in one transaction."""
        if not results:
            return
        now = self.clock()
        encoded = [encode_key(r.key) for r in results]
        rows = [{"job_id": self.job_id, "row_key": _lookup(stored_key(key_json, r.unit)), "key_json": key_json,
                 "step": r.step, "target": r.target, "status": r.status.value, "outputs": r.outputs,
                 "error_class": r.error_class.value if r.error_class else None, "error": r.error, "model": r.model,
                 "attempts": r.attempts, "latency_s": r.latency_s, "tokens_in": r.tokens_in,
                 "tokens_out": r.tokens_out, "cost": r.cost, "cached": r.cached,
                 "workflow_version_id": self.workflow_version_id, "prompt_hash": self.prompt_hash, "updated_at": now}
                for r, key_json in zip(results, encoded, strict=True)]
        # The driver's executemany: SQLAlchemy's own converts the same values through more layers, a third of a
        # write's cost.
        in_thread = self.database.thread_engine
        dialect = (in_thread or self.database.engine).dialect
        upsert = self._compiled_upsert(dialect)
        statements = [(upsert.sql, upsert.params(rows)), self.usage.added(results, at=now, dialect=dialect)]

        async def transaction() -> None:
            if in_thread is not None:
                await asyncio.to_thread(_execute_many, in_thread, statements)
                return
            async with self.database.engine.begin() as connection:
                for statement, values in statements:
                    await connection.exec_driver_sql(statement, values)

        await self.database.retrying(transaction)

    def _compiled_upsert(self, dialect: Any) -> CompiledUpsert:
        if self._compiled is None:
            self._compiled = adding_upsert(ITEMS, dialect, keys=("job_id", "row_key"), replaced=REPLACED, added=ADDED)
        return self._compiled

    async def _rows_for(self, keys: Sequence[Key], *columns: str, done_only: bool = False,
                        units: Sequence[Unit] = (("", ""),)) -> list[tuple[Key, Any]]:
        """(key, row of `columns`) for the stored results among these keys, of these units (default: the rows'
        own)."""
        by_lookup = {lookup_key(k, unit): k for k in keys for unit in units}

        async def read() -> list[tuple[Key, Any]]:
            found: list[tuple[Key, Any]] = []
            async with self.database.engine.connect() as connection:
                for chunk in _chunks(list(by_lookup), IN_CHUNK):
                    query = self._select("row_key", *columns).where(ITEMS.c.row_key.in_(chunk))
                    if done_only:
                        query = query.where(ITEMS.c.status == RowStatus.DONE.value)
                    found += [(by_lookup[row[0]], row) for row in await connection.execute(query)]
            return found

        return await self.database.retrying(read)

    def _select(self, *columns: str) -> Select[Any]:
        return select(*(ITEMS.c[c] for c in columns)).where(ITEMS.c.job_id == self.job_id)

    async def done_keys(self, keys: Sequence[Key]) -> set[Key]:
        """Which of these keys are done."""
        return {key for key, _ in await self._rows_for(keys, done_only=True)}

    async def results_for(self, keys: Sequence[Key]) -> dict[Key, RowResult]:
        """Stored results of these keys."""
        return {key: _result(row[1:]) for key, row in await self._rows_for(keys, *RESULT_COLUMNS)}

    async def done_units(self, keys: Sequence[Key], units: Sequence[Unit]) -> dict[Key, dict[Unit, RowResult]]:
        """Done step results of these rows."""
        found: dict[Key, dict[Unit, RowResult]] = {}
        for key, row in await self._rows_for(keys, *RESULT_COLUMNS, done_only=True, units=units):
            result = _result(row[1:])
            found.setdefault(key, {})[result.unit] = result
        return found

    async def done_outputs(self, keys: Sequence[Key]) -> dict[Key, dict[str, Any]]:
        """Answers of the done rows among these keys."""
        return {key: row[1] or {} for key, row in await self._rows_for(keys, "outputs", done_only=True)}

    async def failures(self) -> list[RowResult]:
        """Every failed row, by stored key."""
        query = self._select(*RESULT_COLUMNS).where(ITEMS.c.status == RowStatus.FAILED.value, ITEMS.c.step == "")
        rows = await self._read(query.order_by(ITEMS.c.row_key))
        return [_result(row) for row in rows]

    async def done_page(self, *, after: str | None, limit: int) -> tuple[list[RowResult], str | None]:
        """Done results by stored key, `limit` at a time."""
        query = (self._select("row_key", *RESULT_COLUMNS)
                 .where(ITEMS.c.status == RowStatus.DONE.value, ITEMS.c.step == "", ITEMS.c.row_key > (after or ""))
                 .order_by(ITEMS.c.row_key).limit(limit))
        rows = await self._read(query)
        return [_result(row[1:]) for row in rows], (rows[-1][0] if rows else None)

    async def _read(self, query: Select[Any]) -> list[Any]:
        async def read() -> list[Any]:
            async with self.database.engine.connect() as connection:
                return list(await connection.execute(query))

        return await self.database.retrying(read)

    async def close(self) -> None:
        """Nothing to release: connections return to the database's pool after each call."""


def _execute_many(engine: Engine, statements: list[tuple[str, list[tuple[Any, ...]]]]) -> None:
    """One transaction, in the calling (worker) thread."""
    with engine.begin() as connection:
        for sql, params in statements:
            connection.exec_driver_sql(sql, params)


def _result(row: Any) -> RowResult:
    (key_json, status, outputs, error_class, error, model, attempts, latency_s, tokens_in, tokens_out, cost, step,
     target) = row
    return RowResult(key=json.loads(key_json), status=RowStatus(status), outputs=outputs or {},
                     error_class=ErrorClass(error_class) if error_class else None, error=error, model=model,
                     attempts=attempts, latency_s=latency_s, tokens_in=tokens_in, tokens_out=tokens_out, cost=cost,
                     step=step or "", target=target or "")


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
