"""pyarrow's streaming CSV and JSON readers, with small blocks that grow when a row is longer than one."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa

from engine.errors import InputError

log = logging.getLogger(__name__)

# pyarrow reads up to ~32 blocks ahead of the consumer in a background thread (its background generator's
# queue), so a reader holds ~40 blocks: 1 MiB blocks cost ~40 MB a reader, and a run reads its input twice
# at once (the rows, and the output written behind them). 256 KiB blocks: ~10 MB a reader.
BLOCK_BYTES = 256 << 10
MAX_BLOCK_BYTES = 1 << 30  # pyarrow's own limit for one block is 2 GiB
GROWTH = 4

ReaderOpener = Callable[[int, list[str] | None], pa.RecordBatchReader]


class GrowingBlocks:
    """Opens readers of one file at the smallest block size that holds its longest row found so far.

    A row longer than a block fails a read with "straddling object"; the read then starts again with
    blocks 4 times larger and skips the rows it already gave, so a file with a few huge cells still reads,
    and every later read of the file starts at the larger size.
    """

    def __init__(self, path: Path, open_reader: ReaderOpener) -> None:
        self.path = path
        self.block_size = BLOCK_BYTES
        self._open_reader = open_reader

    def open(self, columns: list[str] | None) -> pa.RecordBatchReader:
        """A reader of `columns` (None: all); opening reads the first block."""
        while True:
            try:
                return self._open_reader(self.block_size, columns)
            except (pa.ArrowException, OSError, ValueError) as exc:
                self._grow_or_raise(exc)

    def batches(self, columns: list[str] | None) -> Iterator[pa.RecordBatch]:
        """Every row of `columns` (None: all), in file order, in record batches of about one block."""
        given = 0
        while True:
            skip = given
            reader = self.open(columns)  # its own errors are handled there
            try:
                for batch in reader:
                    if skip >= batch.num_rows:
                        skip -= batch.num_rows
                        continue
                    part, skip = batch.slice(skip), 0
                    given += part.num_rows
                    yield part
                return
            except (pa.ArrowException, OSError, ValueError) as exc:
                self._grow_or_raise(exc)

    def _grow_or_raise(self, exc: Exception) -> None:
        if "straddl" in str(exc) and self.block_size < MAX_BLOCK_BYTES:
            self.block_size *= GROWTH
            log.info("%s: a row is longer than a read block; reading again with %d KiB blocks",
                     self.path, self.block_size >> 10)
            return
        raise InputError(f"{self.path}: cannot read: {exc}") from None
