"""How far, in source order, every row is settled: so the output can be written behind the run.

A row is settled once the run is done with it: its result is stored (done or failed), it was not selected,
or it was done before this run. The output writer waits on `until(n)` before it merges rows below n, so
writing the output overlaps the requests instead of following them (an xlsx write of 20,000 rows takes
about as long as 2,000 rows of requests at 256 in flight).
"""

from __future__ import annotations

import asyncio
import math

from engine.results.store import Key


class SettledRows:
    """The low-water mark of unsettled rows, by their position in the source (0-based).

    Rows out at once are tracked as one byte each from the mark to the newest row sent, so a row that is
    stuck (retrying behind a long Retry-After) while thousands finish after it costs kilobytes, not a set.
    """

    def __init__(self) -> None:
        self._sent: dict[Key, int] = {}  # rows sent and not finished yet, by key -> position
        self._base = 0  # the position of _out[0]
        self._out = bytearray()  # 1 where the row at _base + i is sent and not finished
        self._looked_at = 0  # every row before this position has been either sent or settled
        self._everything = False
        self._changed = asyncio.Event()

    @property
    def mark(self) -> float:
        """Every row before this position is settled."""
        if self._everything:
            return math.inf
        first_out = self._out.find(1)
        return self._base + first_out if first_out >= 0 else self._looked_at

    def sending(self, key: Key, position: int) -> None:
        """The row at `position` (after every row sent before) goes upstream; the rows before it were looked at."""
        self._sent[key] = position
        self._out.extend(bytes(position - self._base - len(self._out)))
        self._out.append(1)
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
                self._out[position - self._base] = 0
        first_out = self._out.find(1)
        drop = len(self._out) if first_out < 0 else first_out
        del self._out[:drop]
        self._base += drop
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
