"""How far, in source order, every row is settled: so the output can be written behind the run.

A row is settled once the run is done with it: its result is stored (done or failed), it was not selected,
or it was done before this run. The output writer waits on `until(n)` before it merges rows below n, so
writing the output overlaps the requests instead of following them (an xlsx write of 20,000 rows takes
about as long as 2,000 rows of requests at 256 in flight).
"""

from __future__ import annotations

import asyncio
import heapq
import math

from engine.results import Key


class SettledRows:
    """The low-water mark of unsettled rows, by their position in the source (0-based)."""

    def __init__(self) -> None:
        self._sent: dict[Key, int] = {}  # rows sent and not finished yet, by key -> position
        self._positions: list[int] = []  # heap of those positions; finished ones are dropped lazily
        self._finished: set[int] = set()
        self._looked_at = 0  # every row before this position has been either sent or settled
        self._everything = False
        self._changed = asyncio.Event()

    @property
    def mark(self) -> float:
        """Every row before this position is settled."""
        if self._everything:
            return math.inf
        return min(self._positions[0], self._looked_at) if self._positions else self._looked_at

    def sending(self, key: Key, position: int) -> None:
        """The row at `position` goes upstream; the rows before it were looked at."""
        self._sent[key] = position
        heapq.heappush(self._positions, position)
        self._looked_at = position + 1

    def looked_at(self, upto: int) -> None:
        """Rows before `upto` were looked at (those not sent are settled)."""
        self._looked_at = max(self._looked_at, upto)
        self._changed.set()

    def finished(self, keys: list[Key]) -> None:
        """These rows' results are stored."""
        for key in keys:
            position = self._sent.pop(key, None)
            if position is not None:
                self._finished.add(position)
        positions = self._positions
        while positions and positions[0] in self._finished:
            self._finished.discard(heapq.heappop(positions))
        self._changed.set()

    def all_settled(self) -> None:
        """The run is over: what was not finished stays as it is in the output."""
        self._everything = True
        self._changed.set()

    async def until(self, position: float) -> None:
        """Wait until every row before `position` is settled (math.inf: until the run is over)."""
        while self.mark < position:
            self._changed.clear()
            await self._changed.wait()
