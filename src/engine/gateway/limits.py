"""Per-deployment and per-key capacity: sliding windows for requests/s and tokens/min, and cool-downs.

A window keeps the send time (and size) of every request of its last period, so a request is sent only
if no window of that period, anywhere in time, then holds more than the limit: an upstream counting
per second or per minute never sees the limit exceeded (a token bucket, by contrast, lets a full bucket
plus its refill through in one period).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

MAX_COOLDOWN_S = 60.0
FIRST_COOLDOWN_S = 2.0
REQUEST_WINDOW_S = 1.0  # safe_rps and a key's rps count requests over any 1 s
TOKEN_WINDOW_S = 60.0  # tpm counts tokens over any 60 s
# Each window is held this much longer than its period: a request's bytes leave a little after its slot is
# taken (a Redis round trip, a new connection), and the next window's requests must not catch up with them.
WINDOW_MARGIN_S = 0.05
EXPIRY_EPSILON_S = 1e-6  # a wait ends just after the oldest send leaves the window, not on its edge


@dataclass(slots=True)
class WindowEntry:
    """One request in a window: when it was sent and what it counts (1 request, or its tokens)."""

    at: float
    amount: float
    live: bool = True  # still in its window


@dataclass
class SlidingWindow:
    """At most `limit` in any `period_s` (plus WINDOW_MARGIN_S), by the log of what was sent in the last one."""

    limit: float
    period_s: float
    entries: deque[WindowEntry] = field(default_factory=deque)
    used: float = 0.0

    @property
    def span_s(self) -> float:
        """How long a send stays in the window."""
        return self.period_s + WINDOW_MARGIN_S

    def _expire(self, now: float) -> None:
        while self.entries and self.entries[0].at + self.span_s < now:
            entry = self.entries.popleft()
            entry.live = False
            self.used -= entry.amount
        if not self.entries:
            self.used = 0.0  # no float drift carried across an empty window

    def level(self, now: float) -> float:
        """What may still be sent now."""
        self._expire(now)
        return max(0.0, self.limit - self.used)

    def wait_s(self, amount: float, now: float) -> float:
        """Seconds until `amount` fits (0: now). More than the whole limit fits only an empty window."""
        self._expire(now)
        excess = self.used + min(amount, self.limit) - self.limit
        if excess <= 0:
            return 0.0
        freed = 0.0
        for entry in self.entries:
            freed += entry.amount
            if freed >= excess:
                return entry.at + self.span_s - now + EXPIRY_EPSILON_S
        return self.entries[-1].at + self.span_s - now + EXPIRY_EPSILON_S  # pragma: no cover - excess <= used

    def take(self, amount: float, now: float) -> WindowEntry:
        """Record a send (the caller checked wait_s first); the entry can be settled later."""
        self._expire(now)
        entry = WindowEntry(now, amount)
        self.entries.append(entry)
        self.used += amount
        return entry

    def settle(self, entry: WindowEntry, amount: float) -> None:
        """Replace an estimate by what the request really counted (its real tokens)."""
        if entry.live:
            self.used += amount - entry.amount
        entry.amount = amount


@dataclass
class Cooldown:
    """Exponential back-off after consecutive failures (2, 4, 8 ... 60 s), reset by a success.

    A failure counts only if its request was sent after the last counted one: the requests already in
    flight when a deployment fails (a burst of 502s, timeouts coming in one by one) are one failure, so
    a bad moment cools it 2 s, not 60, and requests that hang cannot keep a deployment cooling down while
    nothing new is sent to it.
    """

    failures: int = 0
    until: float = -math.inf
    counted_at: float = -math.inf  # when the last counted failure came

    def failed(self, now: float, retry_after_s: float | None = None, sent_at: float | None = None) -> float:
        """Record a failure of a request sent at `sent_at` (None: now); a later deadline wins. Returns it."""
        if sent_at is None or sent_at >= self.counted_at:
            self.failures += 1
            self.counted_at = now
            self.until = max(self.until, now + min(FIRST_COOLDOWN_S * 2 ** (self.failures - 1), MAX_COOLDOWN_S))
        self.until = max(self.until, now + (retry_after_s or 0.0))
        return self.until

    def succeeded(self) -> None:
        """A success ends the back-off."""
        self.failures = 0
        self.until = -math.inf
