"""Per-deployment capacity: token buckets for requests/s and tokens/minute, and cool-downs."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

MAX_COOLDOWN_S = 60.0
FIRST_COOLDOWN_S = 2.0
DEPLOYMENT_BURST_S = 2.0  # a deployment's request bucket holds this many seconds of requests


@dataclass
class TokenBucket:
    """`rate` tokens a second up to `capacity`; may go negative when actual use exceeds an estimate."""

    rate: float
    capacity: float
    tokens: float = field(init=False)
    updated: float = field(default=0.0)

    def __post_init__(self) -> None:
        self.tokens = self.capacity

    def _refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def level(self, now: float) -> float:
        """Tokens there now."""
        self._refill(now)
        return self.tokens

    def wait_s(self, amount: float, now: float) -> float:
        """Seconds until `amount` tokens are there (0 if now)."""
        self._refill(now)
        need = min(amount, self.capacity) - self.tokens
        return 0.0 if need <= 0 else need / self.rate

    def take(self, amount: float, now: float) -> None:
        """Spend tokens (the caller checked wait_s first, or is settling an estimate)."""
        self._refill(now)
        self.tokens -= amount


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
