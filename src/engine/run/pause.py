"""The global pause on API errors, with AI-DataFlux's error window: one pause per window, not per error."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class PauseGate:
    """Every request waits here; an API error closes the gate for `pause_s` unless it was closed recently."""

    def __init__(self, *, pause_s: float, window_s: float,
                 on_pause: Callable[[str, float], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.pause_s = pause_s
        self.window_s = window_s
        self.on_pause = on_pause
        self.pauses = 0
        self._clock = clock
        self._open = asyncio.Event()
        self._open.set()
        self._last_ends_at = float("-inf")

    async def wait(self) -> None:
        """Return at once unless a pause is running."""
        await self._open.wait()

    def trip(self, cause: str) -> bool:
        """An API error happened: pause everyone, unless a pause runs or ended less than the window ago.

        The window starts when the last pause ends (as in AI-DataFlux): with a steady trickle of errors,
        requests go out between pauses instead of the gate staying closed. True if this started a pause.
        """
        now = self._clock()
        if self.pause_s <= 0 or now - self._last_ends_at <= self.window_s:
            return False
        self._last_ends_at = now + self.pause_s
        self.pauses += 1
        self._open.clear()
        asyncio.get_running_loop().call_later(self.pause_s, self._open.set)
        if self.on_pause is not None:
            self.on_pause(cause, self.pause_s)
        return True
