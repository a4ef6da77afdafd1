"""The results store: every finished row is made durable here before it counts as done.

The engine ships a file-backed store (`SqliteResultStore`); the worker supplies one backed by the platform
database. Both implement `ResultStore`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

Key = int | str


class RowStatus(StrEnum):
    """How a row ended."""

    DONE = "done"
    FAILED = "failed"


class ErrorClass(StrEnum):
    """Why an attempt failed; each class has its own retry limit in the spec."""

    API = "api_error"
    CONTENT = "content_error"
    SYSTEM = "system_error"


@dataclass(frozen=True)
class RowResult:
    """One finished row: its answer (outputs by answer field) or its error, and what it cost."""

    key: Key
    status: RowStatus
    outputs: dict[str, Any] = field(default_factory=dict)
    error_class: ErrorClass | None = None
    error: str | None = None
    model: str | None = None
    attempts: int = 0
    latency_s: float = 0.0
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    cached: bool = False  # answered from the answer cache: no request made
    saved: float = 0.0  # what the cached answer had cost
    step: str = ""  # a step's result ("": the row's own, what the output and the row counts show)
    target: str = ""  # the model a fan-out step asked ("": a step of one model)

    @property
    def unit(self) -> Unit:
        """Which result of its row this is."""
        return self.step, self.target


Unit = tuple[str, str]  # (step, target): ("", "") is a row's own result


class ResultStore(Protocol):
    """Durable per-row results of one run, looked up by row key."""

    async def write(self, results: Sequence[RowResult]) -> None:
        """Store results (replacing earlier ones for the same keys); durable when this returns."""
        ...

    async def done_keys(self, keys: Sequence[Key]) -> set[Key]:
        """Which of these keys already have a done result."""
        ...

    async def results_for(self, keys: Sequence[Key]) -> dict[Key, RowResult]:
        """The stored results for these keys."""
        ...

    async def done_units(self, keys: Sequence[Key], units: Sequence[Unit]) -> dict[Key, dict[Unit, RowResult]]:
        """The done step results (of these units) of these rows: what a resumed row does not ask again."""
        ...

    async def done_outputs(self, keys: Sequence[Key]) -> dict[Key, dict[str, Any]]:
        """The answers of those of these keys that are done (what a sink writes)."""
        ...

    async def failures(self) -> list[RowResult]:
        """Every failed row, in key order."""
        ...

    async def done_page(self, *, after: str | None, limit: int) -> tuple[list[RowResult], str | None]:
        """Done results in a stable order, `limit` at a time; returns them and the position to continue after."""
        ...

    async def close(self) -> None:
        """Release the store."""
        ...


def encode_key(key: Key) -> str:
    """A key as stored: JSON, so 7 and "7" stay different."""
    return json.dumps(key)


UNIT_MARK = "\x1f"  # never in an encoded key (JSON escapes control characters)


def stored_key(encoded: str, unit: Unit) -> str:
    """The stored key of a row's result (`encoded` itself) or of one of its step results."""
    return encoded if unit == ("", "") else f"{encoded}{UNIT_MARK}{unit[0]}{UNIT_MARK}{unit[1]}"
