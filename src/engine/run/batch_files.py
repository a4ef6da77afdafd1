"""A step's requests as a provider batch's input files: each line's custom_id names its (row, step, model), and
the lines are cut into files of at most so many requests and bytes."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import orjson

from engine.errors import InputError
from engine.gateway.config import Price
from engine.gateway.types import ChatRequest
from engine.results.store import Key, Unit

MAX_REQUESTS = 50_000  # a batch's requests, at most (OpenAI's limit)
MAX_BYTES = 200 << 20  # a batch's input file, at most (OpenAI's limit)
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


@dataclass
class BatchFile:
    """A batch's input file, written to a temporary file (deleted when closed) as it is cut: a file of 200 MB is
    uploaded from the disk, not held in memory."""

    requests: int = 0
    size: int = 0
    _file: BinaryIO = field(default_factory=lambda: tempfile.TemporaryFile(  # noqa: SIM115  # closed by `close`
        prefix="rowloom-batch-file-"))

    def add(self, line: bytes) -> None:
        """Append a request line."""
        self._file.write(line)
        self.requests += 1
        self.size += len(line)

    def content(self) -> BinaryIO:
        """The file, written out and read from its start."""
        self._file.flush()
        self._file.seek(0)
        return self._file

    def close(self) -> None:
        """The file deleted."""
        self._file.close()


def batch_file(lines: Iterable[bytes]) -> BatchFile:
    """The lines in one file."""
    file = BatchFile()
    for line in lines:
        file.add(line)
    return file


def batch_files(lines: Iterable[bytes], *, max_requests: int = MAX_REQUESTS,
                max_bytes: int = MAX_BYTES) -> Iterator[BatchFile]:
    """The lines (each ending in a newline) cut, in order, into files of at most `max_requests` lines and
    `max_bytes` bytes (each closed by the caller); InputError for a line larger than a whole file may be."""
    file: BatchFile | None = None
    for line in lines:
        if len(line) > max_bytes:
            raise InputError(f"a batch request of {len(line):,} bytes is larger than a batch file may be "
                             f"({max_bytes:,} bytes)")
        if file is not None and (file.requests == max_requests or file.size + len(line) > max_bytes):
            yield file
            file = None
        if file is None:
            file = BatchFile()
        file.add(line)
    if file is not None:
        yield file
