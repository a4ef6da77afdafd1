"""Redis calls that wait out an outage: reconnect with backoff, say so once, and carry on when Redis is back.

Every Redis client of a worker (arq's pool, the shared limits, the budget counters) retries a call that failed
to connect, lost its connection or timed out, with exponential backoff capped at BACKOFF_CAP_S, for as long
as it takes: a job waits for Redis rather than failing or being handed back. The API's clients give up after
API_PATIENCE_S, so no request waits long on Redis (what they do then is theirs: a queue offer is left to the
reaper, a key's limit falls back to this process's windows).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from arq.connections import RedisSettings
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError, RedisError, TimeoutError

from core.outages import redis_outage, ride_out

T = TypeVar("T")
API_PATIENCE_S = 1.0
RETRIED = (ConnectionError, TimeoutError, OSError)  # BusyLoadingError (Redis loading its data) is a ConnectionError


class PatientRetry(Retry):
    """redis-py's Retry that waits out an outage (for `patience_s`, or for ever when None), as the database's
    transactions do (`core.outages.ride_out`, whose backoff this is; redis-py's own is not asked)."""

    def __init__(self, patience_s: float | None = None) -> None:
        super().__init__(NoBackoff(), -1, RETRIED)  # type: ignore[arg-type]
        self.patience_s = patience_s

    async def call_with_retry(self, do: Callable[[], Awaitable[T]],
                              fail: Callable[[RedisError], Any]) -> T:
        """Call `do` until it succeeds, backing off between tries; re-raise once patience runs out."""
        return await ride_out(do, outage=redis_outage, retried=lambda error: isinstance(error, self._supported_errors),
                              within_s=self.patience_s, on_failure=fail)


def patient_redis(url: str, *, patience_s: float | None = None, **options: Any) -> Redis:
    """A Redis client whose calls wait out an outage (see the module)."""
    client: Redis = Redis.from_url(url, retry=PatientRetry(patience_s), retry_on_error=list(RETRIED), **options)
    return client


def patient_settings(url: str, patience_s: float | None = None) -> RedisSettings:
    """arq's connection settings for `url`, its calls waiting out an outage (see the module)."""
    settings = RedisSettings.from_dsn(url)
    settings.retry = PatientRetry(patience_s)
    settings.retry_on_error = list(RETRIED)
    return settings
