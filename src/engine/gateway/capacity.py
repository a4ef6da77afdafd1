"""Capacity shared between processes: the router asks it before sending when limits are fleet-wide.

The engine defines only what the router needs; the platform supplies an implementation (Redis).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class SharedLevels:
    """A deployment's shared state right now: cool-down left and what its buckets hold."""

    cooldown_s: float
    requests: float | None
    tokens: float | None


class SharedCapacity(Protocol):
    """Requests/s and tokens/min buckets and cool-downs of deployments, seen alike by every process."""

    async def take(self, name: str, *, rps: float | None, tpm: int | None, tokens: float) -> float:
        """Take one request and `tokens` from the deployment's buckets; returns 0, or the seconds to wait."""
        ...

    async def cool_down(self, name: str, seconds: float) -> float:
        """Make the deployment cool down for at least `seconds` everywhere; returns the time left."""
        ...

    async def settle_tokens(self, name: str, tokens_back: float) -> None:
        """Give back (or take) tokens once real usage is known."""
        ...

    async def levels(self, name: str, *, rps: float | None, tpm: int | None) -> SharedLevels:
        """The deployment's cool-down left and bucket levels, as every process sees them (reads only)."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
