"""Redis calls that wait out an outage: reconnect with backoff, say so once, and carry on when Redis is back.

Every Redis client of a worker (arq's pool, the shared limits, the budget counters) retries a call that failed
to connect, lost its connection or timed out, with exponential backoff capped at BACKOFF_CAP_S, for as long
as it takes: a job waits for Redis rather than failing or being handed back. The API's clients give up after
API_PATIENCE_S, so no request waits long on Redis (what they do then is theirs: a queue offer is left to the
reaper, a key's limit falls back to this process's windows).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from arq.connections import RedisSettings
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, RedisError, TimeoutError

from core.outages import BACKOFF_BASE_S, BACKOFF_CAP_S, redis_outage

T = TypeVar("T")
API_PATIENCE_S = 1.0
RETRIED = (ConnectionError, TimeoutError, OSError)  # BusyLoadingError (Redis loading its data) is a ConnectionError


class PatientRetry(Retry):
    """redis-py's Retry that waits out an outage (for `patience_s`, or for ever when None)."""

    def __init__(self, patience_s: float | None = None) -> None:
        super().__init__(ExponentialBackoff(cap=BACKOFF_CAP_S, base=BACKOFF_BASE_S), -1, RETRIED)  # type: ignore[arg-type]
        self.patience_s = patience_s

    async def call_with_retry(self, do: Callable[[], Awaitable[T]],
                              fail: Callable[[RedisError], Any]) -> T:
        """Call `do` until it succeeds, backing off between tries; re-raise once patience runs out."""
        self._backoff.reset()  # type: ignore[no-untyped-call]
        failures = 0
        deadline = None if self.patience_s is None else time.monotonic() + self.patience_s
        while True:
            try:
                result = await do()
            except self._supported_errors as error:
                failures += 1
                redis_outage.failed(error)
                await fail(error)
                pause = self._backoff.compute(failures)
                if deadline is not None and time.monotonic() + pause > deadline:
                    raise
                await asyncio.sleep(pause)
            else:
                redis_outage.recovered()
                return result


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
