"""The engine's own results store: a SQLite file in the run's work folder (what `rowloom run` resumes from)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from engine.results.store import UNIT_MARK, ErrorClass, Key, RowResult, RowStatus, Unit, encode_key, stored_key

T = TypeVar("T")
_IN_CHUNK = 900  # SQLite's older builds allow 999 bound parameters per statement
ROWS_ONLY = "instr(key, char(31)) = 0"  # a row's own result, not one of its steps' (see stored_key)


class SqliteResultStore:
    """Results in a SQLite file (WAL: a committed row survives a crash of the process)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="results")
        self._db: sqlite3.Connection | None = None

    async def _call(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, status TEXT NOT NULL, "
                       "outputs TEXT, error_class TEXT, error TEXT, model TEXT, attempts INTEGER, latency_s REAL, "
                       "tokens_in INTEGER, tokens_out INTEGER, cost REAL)")
            self._db = db
        return self._db

    async def write(self, results: Sequence[RowResult]) -> None:
        """Upsert a batch in one transaction."""
        rows = [(stored_key(encode_key(r.key), r.unit), r.status.value,
                 json.dumps(r.outputs, ensure_ascii=False, default=str),
                 r.error_class.value if r.error_class else None, r.error, r.model, r.attempts, r.latency_s,
                 r.tokens_in, r.tokens_out, r.cost) for r in results]

        def write() -> None:
            db = self._connection()
            with db:
                db.executemany("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)

        await self._call(write)

    async def _rows_for(self, keys: Sequence[Key], columns: str, condition: str = "1=1",
                        units: Sequence[Unit] = (("", ""),)) -> list[tuple[Any, ...]]:
        """`columns` of the results with these keys (and `condition`), of these units (default: the rows' own);
        the first column is the key, decoded."""
        encoded = {stored_key(encode_key(k), unit): k for k in keys for unit in units}

        def read() -> list[tuple[Any, ...]]:
            db = self._connection()
            rows: list[tuple[Any, ...]] = []
            for chunk in _chunks(list(encoded), _IN_CHUNK):
                marks = ",".join("?" * len(chunk))
                rows += db.execute(f"SELECT key, {columns} FROM results WHERE {condition} AND key IN ({marks})",
                                   chunk).fetchall()
            return rows

        return [(encoded[row[0]], *row[1:]) for row in await self._call(read)]

    async def done_keys(self, keys: Sequence[Key]) -> set[Key]:
        """Keys among these whose stored status is done (reads keys only, decodes nothing)."""
        return {row[0] for row in await self._rows_for(keys, "status", "status = 'done'")}

    async def results_for(self, keys: Sequence[Key]) -> dict[Key, RowResult]:
        """Stored results of these keys."""
        rows = await self._rows_for(keys, "status, outputs, error_class, error, model, attempts, latency_s, "
                                          "tokens_in, tokens_out, cost")
        return {row[0]: _result(row[0], row[1:]) for row in rows}

    async def done_units(self, keys: Sequence[Key], units: Sequence[Unit]) -> dict[Key, dict[Unit, RowResult]]:
        """Done step results of these rows."""
        rows = await self._rows_for(keys, "key, status, outputs, error_class, error, model, attempts, latency_s, "
                                          "tokens_in, tokens_out, cost", "status = 'done'", units)
        found: dict[Key, dict[Unit, RowResult]] = {}
        for row in rows:
            result = _stored(row[1:])
            found.setdefault(row[0], {})[result.unit] = result
        return found

    async def done_outputs(self, keys: Sequence[Key]) -> dict[Key, dict[str, Any]]:
        """Answers of the done rows among these keys (no other columns read or decoded)."""
        return {key: json.loads(outputs) for key, outputs in await self._rows_for(keys, "outputs", "status = 'done'")}

    async def failures(self) -> list[RowResult]:
        """Every failed row."""
        def read() -> list[tuple[Any, ...]]:
            return self._connection().execute(
                f"SELECT * FROM results WHERE status = 'failed' AND {ROWS_ONLY} ORDER BY key").fetchall()

        return [_stored(row) for row in await self._call(read)]

    async def mean_tokens_out(self) -> float | None:
        """Output tokens of an answer on average over the done rows (None: none yet), for estimates."""
        def read() -> float | None:
            value = self._connection().execute(
                f"SELECT avg(tokens_out) FROM results WHERE status = 'done' AND attempts = 1 AND {ROWS_ONLY}",
            ).fetchone()[0]
            return None if value is None else float(value)

        result: float | None = await self._call(read)
        return result

    async def done_page(self, *, after: str | None, limit: int) -> tuple[list[RowResult], str | None]:
        """Done results by stored key, `limit` at a time."""
        def read() -> list[tuple[Any, ...]]:
            return self._connection().execute(
                f"SELECT * FROM results WHERE status = 'done' AND {ROWS_ONLY} AND key > ? ORDER BY key LIMIT ?",
                (after or "", limit),
            ).fetchall()

        rows = await self._call(read)
        return [_stored(row) for row in rows], (rows[-1][0] if rows else None)

    async def close(self) -> None:
        """Close the file and the thread."""
        def close() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        await self._call(close)
        self._thread.shutdown(wait=True)


def _stored(row: tuple[Any, ...]) -> RowResult:
    """A whole stored result (its key still stored) as a RowResult."""
    encoded, step, target = (*row[0].split(UNIT_MARK), "", "")[:3]
    return replace(_result(json.loads(encoded), row[1:]), step=step, target=target)


def _result(key: Key, fields: tuple[Any, ...]) -> RowResult:
    status, outputs, error_class, error, model, attempts, latency_s, tokens_in, tokens_out, cost = fields
    return RowResult(key=key, status=RowStatus(status), outputs=json.loads(outputs or "{}"),
                     error_class=ErrorClass(error_class) if error_class else None, error=error, model=model,
                     attempts=attempts or 0, latency_s=latency_s or 0.0, tokens_in=tokens_in or 0,
                     tokens_out=tokens_out or 0, cost=cost or 0.0)


def _chunks(items: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
