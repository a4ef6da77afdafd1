"""A job's provider batches in the platform database: the engine's BatchLedger for one job, so that whichever
worker runs the job next follows the batches the last one submitted."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import fields
from typing import Any, TypeVar

from sqlalchemy import func, insert, select, update

from core.db import Database
from core.models import JobBatch, JobBatchLine, JobBatchRequest
from engine import BatchLine, BatchRecord, BatchState

BATCHES = JobBatch.__table__  # type: ignore[attr-defined]
REQUESTS = JobBatchRequest.__table__  # type: ignore[attr-defined]
LINES = JobBatchLine.__table__  # type: ignore[attr-defined]
RECORD = tuple(f.name for f in fields(BatchRecord))
WRITE_ROWS = 2000  # rows an INSERT carries at most (and keys an IN lists)
T = TypeVar("T")


class DbBatchLedger:
    """One job's batches, their requests and their lines (tables job_batches, job_batch_requests, job_batch_lines)."""

    def __init__(self, database: Database, *, job_id: int) -> None:
        self.database = database
        self.job_id = job_id

    async def started_at(self) -> float:
        """When the job's first batch was planned (now, for a job with none)."""
        rows = (await self.database.execute_all([(select(func.min(BATCHES.c.created_at))
                                                  .where(BATCHES.c.job_id == self.job_id), None)]))[0]
        return float(rows[0][0]) if rows and rows[0][0] is not None else time.time()

    async def plan(self, record: BatchRecord, requests: Sequence[tuple[str, tuple[str, str, int]]]) -> None:
        """The batch and its requests, in one transaction."""
        seq = select(func.coalesce(func.max(BATCHES.c.seq), 0) + 1).where(BATCHES.c.job_id == self.job_id) \
            .scalar_subquery()
        rows = [{"label": record.label, "position": position, "custom_id": cid, "line_id": line_id,
                 "request": request, "ask": ask} for position, (cid, (line_id, request, ask)) in enumerate(requests)]
        await self.database.execute_all([
            (insert(BATCHES).values(**_row(record), job_id=self.job_id, seq=seq), None),
            *((insert(REQUESTS), chunk) for chunk in _chunks(rows))])

    async def update(self, record: BatchRecord) -> None:
        """Every field of the record."""
        await self.database.execute_all([(self._update(record), None)])

    def _update(self, record: BatchRecord) -> Any:
        return update(BATCHES).where(BATCHES.c.label == record.label).values(**_row(record))

    async def batches(self) -> list[BatchRecord]:
        """Every batch of the job, in the order planned."""
        query = select(*(BATCHES.c[name] for name in RECORD)).where(BATCHES.c.job_id == self.job_id) \
            .order_by(BATCHES.c.seq)
        rows = (await self.database.execute_all([(query, None)]))[0]
        return [_record(row) for row in rows]

    async def requests(self, label: str) -> dict[str, tuple[str, str, int]]:
        """The line key of each custom_id in a batch."""
        query = select(REQUESTS.c.custom_id, REQUESTS.c.line_id, REQUESTS.c.request, REQUESTS.c.ask) \
            .where(REQUESTS.c.label == label)
        rows: list[Any] = (await self.database.execute_all([(query, None)]))[0]
        return {row[0]: (row[1], row[2], row[3]) for row in rows}

    async def collect(self, record: BatchRecord, lines: Iterable[BatchLine]) -> None:
        """The batch's lines stored and the batch marked collected, in one transaction (a line stored before, by a
        collection cut short, is replaced by the same)."""
        rows = [{"job_id": self.job_id, "line_hash": _line_hash(line.key), "line_id": line.key[0],
                 "request": line.key[1], "ask": line.key[2], "row_hash": _row_hash(line.row), "status": line.status,
                 "body": line.body.decode(), "deployment": line.deployment, "cost": line.cost} for line in lines]
        hashes = [row["line_hash"] for row in rows]
        await self.database.execute_all([
            *((LINES.delete().where(LINES.c.job_id == self.job_id, LINES.c.line_hash.in_(chunk)), None)
              for chunk in _chunks(hashes)),
            *((insert(LINES), chunk) for chunk in _chunks(rows)),
            (self._update(_collected(record)), None)])

    async def lines_of(self, rows: Sequence[str]) -> list[BatchLine]:
        """The lines answering these rows' requests."""
        hashes = {_row_hash(row): row for row in rows}
        found: list[BatchLine] = []
        for chunk in _chunks(list(hashes)):
            found += await self._lines(LINES.c.row_hash.in_(chunk), hashes)
        return found

    async def line(self, key: tuple[str, str, int]) -> BatchLine | None:
        """The line of this key, if collected."""
        found = await self._lines(LINES.c.line_hash == _line_hash(key), {})
        return found[0] if found else None

    async def _lines(self, where: Any, rows: dict[str, str]) -> list[BatchLine]:
        query = select(LINES.c.line_id, LINES.c.request, LINES.c.ask, LINES.c.row_hash, LINES.c.status,
                       LINES.c.body, LINES.c.deployment, LINES.c.cost).where(LINES.c.job_id == self.job_id, where)
        found: list[Any] = (await self.database.execute_all([(query, None)]))[0]
        return [BatchLine((row[0], row[1], row[2]), rows.get(row[3], ""), row[4], row[5].encode(), row[6], row[7])
                for row in found]

    async def close(self) -> None:
        """Nothing to release: connections go back to the pool after each call."""


def _chunks(items: list[T]) -> Iterator[list[T]]:
    """WRITE_ROWS at a time."""
    for start in range(0, len(items), WRITE_ROWS):
        yield items[start:start + WRITE_ROWS]


def _collected(record: BatchRecord) -> BatchRecord:
    record.state = BatchState.COLLECTED
    return record


def _row(record: BatchRecord) -> dict[str, Any]:
    values = {name: getattr(record, name) for name in RECORD}
    values["state"] = record.state.value
    return values


def _record(row: Any) -> BatchRecord:
    values = dict(zip(RECORD, row, strict=True))
    values["state"] = BatchState(values["state"])
    return BatchRecord(**values)


def _row_hash(row: str) -> str:
    return hashlib.sha256(row.encode()).hexdigest()


def _line_hash(key: tuple[str, str, int]) -> str:
    return hashlib.sha256(f"{key[0]}\x1f{key[1]}\x1f{key[2]}".encode()).hexdigest()
