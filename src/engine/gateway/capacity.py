"""Capacity shared between processes: the router asks it before sending when limits are fleet-wide.

The engine defines only what the router needs; the platform supplies an implementation (Redis).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class SharedLevels:
    """A deployment's shared state right now: cool-down left and what its windows may still send."""

    cooldown_s: float
    requests: float | None
    tokens: float | None


class SharedCapacity(Protocol):
    """Requests/s and tokens/min windows and cool-downs of deployments, seen alike by every process."""

    async def take(self, name: str, *, rps: float | None, tpm: int | None, tokens: float, ticket: str) -> float:
        """Record one request of `tokens` (named `ticket`) in the deployment's windows; returns 0, or the seconds
        to wait."""
        ...

    async def cool_down(self, name: str, seconds: float) -> float:
        """Make the deployment cool down for at least `seconds` everywhere; returns the time left."""
        ...

    async def settle_tokens(self, name: str, *, ticket: str, tokens: float) -> None:
        """Replace the request's estimated tokens by what it really used."""
        ...

    async def levels(self, name: str, *, rps: float | None, tpm: int | None) -> SharedLevels:
        """The deployment's cool-down left and what its windows may still send, as every process sees them."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
