"""Answers kept by what decided them: the same request is bought once, in a run, across runs and workflows.

The key is a sha256 of the request as the model receives it: messages, model (or group) name, temperature,
max_tokens and the answer schema (response_format). Only answers that passed the workflow's checks are kept.
The engine defines the store it needs; the CLI keeps it in a SQLite file, the platform in its database.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson

from engine.gateway.types import ChatRequest

STORED_AT_CHUNK = 20_000  # keys one look-up of stored_at asks (SQLite takes 32,766 parameters since 3.32)


@dataclass(frozen=True)
class CachedAnswer:
    """An answer as it was bought: its text, who gave it, what it cost, and when (Unix seconds)."""

    content: str
    model: str
    tokens_in: int
    tokens_out: int
    cost: float
    stored_at: float


class AnswerCache(Protocol):
    """Where answers are kept by key. `scope` names the upstream behind the answers (a URL and model, a gateway):
    it is part of every key, so answers of one upstream are never taken for another's."""

    scope: str

    async def get(self, key: str) -> CachedAnswer | None:
        """The answer stored under `key`, if any."""
        ...

    async def put(self, key: str, answer: CachedAnswer) -> None:
        """Store (or replace) the answer under `key`."""
        ...

    def prefetch(self, keys: list[str]) -> None:
        """Start looking these keys up: they are about to be asked for (a hint; it may do nothing)."""
        ...

    async def stored_at(self, keys: list[str]) -> dict[str, float]:
        """When each of these keys' answer was stored (a key without one is absent): what an estimate needs to
        know, without the answers themselves."""
        ...

    async def close(self) -> None:
        """Release what it holds."""
        ...


def request_key(request: ChatRequest, scope: str = "") -> str:
    """The cache key of a request to the upstream `scope`: everything that decides its answer."""
    decided = {"scope": scope, "messages": request.messages, "model": request.model,
               "temperature": request.temperature, "max_tokens": request.max_tokens,
               "response_format": request.response_format}
    return _digest(decided)


def embedding_key(model: str, text: str, scope: str = "") -> str:
    """The cache key of a text's vector from the embedding `model` of the upstream `scope`."""
    return _digest({"scope": scope, "embedding_model": model, "input": text})


def _digest(decided: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(decided, option=orjson.OPT_SORT_KEYS)).hexdigest()


def now() -> float:
    """The time answers are stamped with (wall clock: they outlive processes)."""
    return time.time()


class SqliteAnswerCache:
    """Answers in a SQLite file (the CLI's, shared by every spec run from one folder).

    A lookup is one primary-key read, made on the caller's thread (cheaper than a hand-over to another for
    a local file). New answers are written in groups of WRITE_GROUP, and at close; until then they are served
    from memory. One lost in a crash is only bought again.
    """

    WRITE_GROUP = 512

    def __init__(self, path: Path, *, scope: str = "") -> None:
        self.path = path
        self.scope = scope
        self._db: sqlite3.Connection | None = None
        self._pending: dict[str, CachedAnswer] = {}

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA busy_timeout=10000")  # several runs in one folder share the file
            db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, content TEXT NOT NULL, "
                       "model TEXT NOT NULL, tokens_in INTEGER, tokens_out INTEGER, cost REAL, stored_at REAL)")
            self._db = db
        return self._db

    async def get(self, key: str) -> CachedAnswer | None:
        """The answer stored under `key`, if any."""
        if (pending := self._pending.get(key)) is not None:
            return pending
        row = self._connection().execute(
            "SELECT content, model, tokens_in, tokens_out, cost, stored_at FROM answers WHERE key = ?",
            (key,)).fetchone()
        return CachedAnswer(*row) if row is not None else None

    def prefetch(self, keys: list[str]) -> None:
        """Nothing: a lookup in a local file is quicker than keeping the answers around."""

    async def stored_at(self, keys: list[str]) -> dict[str, float]:
        """When each of these keys' answer was stored (a key without one is absent)."""
        found = {key: self._pending[key].stored_at for key in keys if key in self._pending}
        db = self._connection()
        for start in range(0, len(keys), STORED_AT_CHUNK):
            chunk = keys[start:start + STORED_AT_CHUNK]
            marks = ",".join("?" * len(chunk))
            found |= {key: at for key, at in db.execute(
                f"SELECT key, stored_at FROM answers WHERE key IN ({marks})", chunk) if key not in found}
        return found

    async def put(self, key: str, answer: CachedAnswer) -> None:
        """Store (or replace) the answer under `key`."""
        self._pending[key] = answer
        if len(self._pending) >= self.WRITE_GROUP:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        db = self._connection()
        with db:
            db.executemany("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?, ?, ?)",
                           [(key, a.content, a.model, a.tokens_in, a.tokens_out, a.cost, a.stored_at)
                            for key, a in self._pending.items()])
        self._pending.clear()

    async def close(self) -> None:
        """Write what is pending and close the file."""
        self._flush()
        if self._db is not None:
            self._db.close()
            self._db = None
