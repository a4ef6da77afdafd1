"""What a run's provider batches hold, written before each is submitted: its label, its deployment, the
requests in it, the provider's ids and counts as they become known, and the lines it returned.

A batch is `planned` (its requests recorded), `uploaded` (its input file at the provider), `submitted` (the
provider's batch id recorded), `ended` (the provider is done with it) and `collected` (its lines stored, its
files deleted). A crash between any two of these leaves what the next process needs: a planned or uploaded batch
is looked for by its label before it is created again, and a submitted one is followed.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

LineKey = tuple[str, str, int]  # (the row's custom_id, or "" for a line identical requests share; the request's
# hash; which of its asks this is)


@dataclass(frozen=True, slots=True)
class BatchLine:
    """One answer a provider batch returned: the request it answered, and the reply as the provider gave it."""

    key: LineKey
    row: str  # the key (JSON) of the row whose request it answers, for taking a window of rows' lines at once
    status: int  # the reply's HTTP status (0: the provider gave no reply, only an error)
    body: bytes  # the reply's body (a chat completion, or an error)
    deployment: str
    cost: float  # at the deployment's batch price
    saved: float = 0.0  # what the same answer costs live, less `cost`


class BatchState(StrEnum):
    """Where a run's batch is in its life (see the module docstring)."""

    PLANNED = "planned"
    UPLOADED = "uploaded"
    SUBMITTED = "submitted"
    ENDED = "ended"
    COLLECTED = "collected"


OPEN = (BatchState.PLANNED, BatchState.UPLOADED, BatchState.SUBMITTED, BatchState.ENDED)


@dataclass
class BatchRecord:
    """One provider batch of a run, as the ledger holds it."""

    label: str  # the run's own name for it, also in the provider's metadata
    deployment: str
    state: BatchState = BatchState.PLANNED
    requests: int = 0
    max_cost: float = 0.0  # what its requests may cost at most (held against budgets when submitted)
    file_id: str | None = None
    batch_id: str | None = None
    status: str | None = None  # the provider's status
    completed: int = 0
    failed: int = 0
    cost: float = 0.0  # what its lines cost
    saved: float = 0.0  # what the same lines cost live, less `cost`
    created_at: float = field(default_factory=time.time)
    ended_at: float | None = None

    def public(self) -> dict[str, Any]:
        """What a job record and its events show of it."""
        return {"id": self.batch_id, "label": self.label, "deployment": self.deployment, "state": self.state.value,
                "status": self.status, "requests": self.requests, "completed": self.completed,
                "failed": self.failed, "cost": self.cost, "saved": self.saved}


class BatchLedger(Protocol):
    """Where a run keeps its batches: the engine's SQLite file, or the platform's database."""

    async def started_at(self) -> float:
        """When the run's first batch was planned (now, for a run with none)."""

    async def plan(self, record: BatchRecord, requests: Sequence[tuple[str, LineKey]]) -> None:
        """Record a batch and the (custom_id, line key) of each request in it, before anything is uploaded."""

    async def update(self, record: BatchRecord) -> None:
        """Record what became known of a batch (its ids, status, counts, state)."""

    async def batches(self) -> list[BatchRecord]:
        """Every batch of the run, in the order planned."""

    async def requests(self, label: str) -> dict[str, LineKey]:
        """The line key of each custom_id in a batch."""

    async def collect(self, record: BatchRecord, lines: Iterable[BatchLine]) -> None:
        """Store a batch's lines, then the record (which taking the lines may complete), in one transaction; the
        batch is then collected."""

    async def lines_of(self, rows: Sequence[str]) -> list[BatchLine]:
        """The lines answering requests of these rows (by key JSON)."""

    async def line(self, key: LineKey) -> BatchLine | None:
        """The line of this key, if one was collected (a request another row asked for)."""

    async def close(self) -> None:
        """Release the file or connection."""


_COLUMNS = tuple(f.name for f in fields(BatchRecord))


class SqliteBatchLedger:
    """The ledger in a SQLite file of the run's work folder (beside the results `rowloom run` resumes from)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            with db:
                db.execute(f"CREATE TABLE IF NOT EXISTS batches ({', '.join(_COLUMNS)}, seq INTEGER PRIMARY KEY)")
                db.execute("CREATE UNIQUE INDEX IF NOT EXISTS batches_label ON batches (label)")
                db.execute("CREATE TABLE IF NOT EXISTS requests (label TEXT, custom_id TEXT, line_id TEXT, "
                           "request TEXT, ask INTEGER, PRIMARY KEY (label, custom_id))")
                db.execute("CREATE TABLE IF NOT EXISTS lines (line_id TEXT, request TEXT, ask INTEGER, row TEXT, "
                           "status INTEGER, body BLOB, deployment TEXT, cost REAL, "
                           "PRIMARY KEY (line_id, request, ask))")
                db.execute("CREATE INDEX IF NOT EXISTS lines_row ON lines (row)")
            self._db = db
        return self._db

    async def _call(self, fn: Any, *args: Any) -> Any:
        async with self._lock:
            return await asyncio.to_thread(fn, self._connection(), *args)

    async def started_at(self) -> float:
        """The first batch's creation."""
        def first(db: sqlite3.Connection) -> float:
            row = db.execute("SELECT min(created_at) FROM batches").fetchone()
            return time.time() if row[0] is None else float(row[0])
        return float(await self._call(first))

    async def plan(self, record: BatchRecord, requests: Sequence[tuple[str, LineKey]]) -> None:
        """The batch and its requests, in one transaction."""
        def write(db: sqlite3.Connection) -> None:
            with db:
                db.execute(f"INSERT INTO batches ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                           _values(record))
                db.executemany("INSERT INTO requests VALUES (?, ?, ?, ?, ?)",
                               [(record.label, cid, *key) for cid, key in requests])
        await self._call(write)

    async def update(self, record: BatchRecord) -> None:
        """Every field of the record."""
        def write(db: sqlite3.Connection) -> None:
            with db:
                db.execute(f"UPDATE batches SET {', '.join(f'{c} = ?' for c in _COLUMNS)} WHERE label = ?",
                           (*_values(record), record.label))
        await self._call(write)

    async def batches(self) -> list[BatchRecord]:
        """All, in order."""
        def read(db: sqlite3.Connection) -> list[BatchRecord]:
            return [_record(row) for row in db.execute(f"SELECT {', '.join(_COLUMNS)} FROM batches ORDER BY seq")]
        result: list[BatchRecord] = await self._call(read)
        return result

    async def requests(self, label: str) -> dict[str, LineKey]:
        """By custom_id."""
        def read(db: sqlite3.Connection) -> dict[str, LineKey]:
            return {cid: (line_id, request, ask) for cid, line_id, request, ask in db.execute(
                "SELECT custom_id, line_id, request, ask FROM requests WHERE label = ?", (label,))}
        result: dict[str, LineKey] = await self._call(read)
        return result

    async def collect(self, record: BatchRecord, lines: Iterable[BatchLine]) -> None:
        """Lines (taken one at a time) and state together."""
        record.state = BatchState.COLLECTED

        def write(db: sqlite3.Connection) -> None:
            with db:
                db.executemany("INSERT OR REPLACE INTO lines VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                               ((*line.key, line.row, line.status, line.body, line.deployment, line.cost)
                                for line in lines))
                db.execute(f"UPDATE batches SET {', '.join(f'{c} = ?' for c in _COLUMNS)} WHERE label = ?",
                           (*_values(record), record.label))
        await self._call(write)

    async def lines_of(self, rows: Sequence[str]) -> list[BatchLine]:
        """By the row index, 500 rows a query."""
        def read(db: sqlite3.Connection) -> list[BatchLine]:
            found: list[BatchLine] = []
            for start in range(0, len(rows), 500):
                chunk = rows[start:start + 500]
                found += [_line(row) for row in db.execute(
                    f"SELECT * FROM lines WHERE row IN ({', '.join('?' * len(chunk))})", chunk)]
            return found
        result: list[BatchLine] = await self._call(read)
        return result

    async def line(self, key: LineKey) -> BatchLine | None:
        """By its primary key."""
        def read(db: sqlite3.Connection) -> BatchLine | None:
            row = db.execute("SELECT * FROM lines WHERE line_id = ? AND request = ? AND ask = ?", key).fetchone()
            return None if row is None else _line(row)
        result: BatchLine | None = await self._call(read)
        return result

    async def close(self) -> None:
        """The file closed."""
        if self._db is not None:
            self._db.close()
            self._db = None


def _line(row: Sequence[Any]) -> BatchLine:
    line_id, request, ask, key, status, body, deployment, cost = row
    return BatchLine((line_id, request, ask), key, status, bytes(body), deployment, cost)


def _values(record: BatchRecord) -> tuple[Any, ...]:
    return tuple(getattr(record, name) for name in _COLUMNS)


def _record(row: Sequence[Any]) -> BatchRecord:
    values = dict(zip(_COLUMNS, row, strict=True))
    values["state"] = BatchState(values["state"])
    return BatchRecord(**values)
