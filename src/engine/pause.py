"""The global pause on API errors, with AI-DataFlux's error window: one pause per window, not per error."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class PauseGate:
    """Every request waits here; an API error closes the gate for `pause_s` unless it was closed recently."""

    def __init__(self, *, pause_s: float, window_s: float,
                 on_pause: Callable[[str, float], None] | None = None) -> None:
        self.pause_s = pause_s
        self.window_s = window_s
        self.on_pause = on_pause
        self.pauses = 0
        self._open = asyncio.Event()
        self._open.set()
        self._last = float("-inf")

    async def wait(self) -> None:
        """Return at once unless a pause is running."""
        await self._open.wait()

    def trip(self, cause: str) -> bool:
        """An API error happened: pause everyone, once per error window. True if this started a pause."""
        now = time.monotonic()
        if self.pause_s <= 0 or now - self._last < max(self.window_s, self.pause_s):
            return False
        self._last = now
        self.pauses += 1
        self._open.clear()
        asyncio.get_running_loop().call_later(self.pause_s, self._open.set)
        if self.on_pause is not None:
            self.on_pause(cause, self.pause_s)
        return True
