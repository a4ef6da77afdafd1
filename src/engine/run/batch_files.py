"""A step's requests as a provider batch's input file: each line's custom_id names its (row, step, model), each
file holds one deployment's requests to one endpoint, within its limits of requests and bytes."""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import orjson

from engine.gateway.config import Price
from engine.gateway.types import ChatRequest
from engine.results.batch_ledger import LineKey
from engine.results.store import Key, Unit

DEFAULT_MAX_TOKENS = 4096  # an answer's tokens at most, for a batch's maximum cost, when a step sets none


def custom_id(key: Key, unit: Unit) -> str:
    """The custom_id of a row's request for a step's model: JSON, so a key keeps its type (7 and "7" differ)."""
    return orjson.dumps([key, unit[0], unit[1]]).decode()


def unit_of(custom_id: str) -> tuple[Key, Unit]:
    """The row key, step and model a custom_id names; ValueError for one this engine did not write."""
    try:
        key, step, target = orjson.loads(custom_id)
    except (orjson.JSONDecodeError, TypeError, ValueError):
        raise ValueError(f"custom_id {custom_id[:100]!r} is not one of this run's") from None
    if isinstance(key, bool) or not isinstance(key, int | str) or not isinstance(step, str) or \
            not isinstance(target, str):
        raise ValueError(f"custom_id {custom_id[:100]!r} is not one of this run's")
    return key, (step, target)


def max_batch_cost(request: ChatRequest, price: Price, *, output_tokens: int = DEFAULT_MAX_TOKENS) -> float:
    """The most a request may cost in a batch: its most input tokens, and its longest answer (`max_tokens`, else
    `output_tokens`)."""
    tokens_out = output_tokens if request.max_tokens is None else request.max_tokens
    return price.batch_cost(request.most_input_tokens(), tokens_out)


@dataclass(frozen=True, slots=True)
class PlannedRequest:
    """A request of a pending batch: its custom_id, its line key, and the most it may cost."""

    custom_id: str
    key: LineKey
    max_cost: float


class PendingBatch:
    """The next batch of a deployment to one endpoint, filled as a round finds requests without an answer: their
    lines in a temporary file (the batch's input file, uploaded from it), what ties each to its row and the most
    it may cost in another (both deleted when closed). Memory holds their counts and a hash a request, so a
    batch of 200 MB costs little more than its hashes."""

    def __init__(self, deployment: str, url: str) -> None:
        self.deployment = deployment
        self.url = url  # the endpoint of every line
        self.requests = 0
        self.size = 0
        self._lines = _temporary()
        self._plans = _temporary()
        self._held: set[int] = set()  # the line keys' hashes: a request wanted twice is one line

    def holds(self, key: LineKey) -> bool:
        """Whether a request of this key is in the batch (a collision of hashes reads as held: that request waits
        one more round)."""
        return hash(key) in self._held

    def fits(self, size: int, *, max_requests: int, max_bytes: int) -> bool:
        """Whether one more line of `size` bytes stays within the limits."""
        return self.requests < max_requests and self.size + size <= max_bytes

    def add(self, line: bytes, request: PlannedRequest) -> None:
        """Append a request's line (ending in a newline)."""
        self._lines.write(line)
        self._plans.write(orjson.dumps([request.custom_id, *request.key, request.max_cost]) + b"\n")
        self._held.add(hash(request.key))
        self.requests += 1
        self.size += len(line)

    def planned(self) -> Iterator[PlannedRequest]:
        """The requests, in order, read back from their file."""
        for custom, line_id, request, ask, max_cost in map(orjson.loads, _read(self._plans)):
            yield PlannedRequest(custom, (line_id, request, ask), max_cost)

    def content(self) -> BinaryIO:
        """The input file, written out and read from its start."""
        return _rewound(self._lines)

    def part(self, start: int, count: int) -> PendingBatch:
        """A batch of `count` of these requests from the `start`-th (a budget has room for part of it)."""
        part = PendingBatch(self.deployment, self.url)
        pairs = zip(_read(self._lines), self.planned(), strict=True)
        for line, request in itertools.islice(pairs, start, start + count):
            part.add(line, request)
        return part

    def close(self) -> None:
        """The files deleted."""
        self._lines.close()
        self._plans.close()


def _temporary() -> BinaryIO:
    return tempfile.TemporaryFile(prefix="rowloom-batch-")  # closed by PendingBatch.close


def _rewound(file: BinaryIO) -> BinaryIO:
    file.flush()
    file.seek(0)
    return file


def _read(file: BinaryIO) -> Iterator[bytes]:
    for line in _rewound(file):  # noqa: UP028  # (`yield from` would close the file when this generator is closed)
        yield line
