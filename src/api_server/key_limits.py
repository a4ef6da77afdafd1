"""Limits of an API key on the gateway routes: requests/s and tokens/min, shared through Redis when configured.

A request is admitted if its key's windows (any 1 s for requests, any 60 s for tokens) have room for one
request and its estimated tokens; otherwise it gets a 429 with Retry-After. Once the answer's real usage is
known, the token estimate is settled.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from dataclasses import dataclass

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from api_server.auth import Caller
from api_server.services.errors import TooManyRequests
from core.outages import BACKOFF_CAP_S
from core.shared_limits import SharedLimits
from engine.gateway import REQUEST_WINDOW_S, TOKEN_WINDOW_S, SlidingWindow, WindowEntry


@dataclass(frozen=True, slots=True)
class Admission:
    """A request let through: what it holds in the key's token window, to settle with its real usage."""

    ticket: str
    entry: WindowEntry | None = None  # in this process's window (None: in Redis, or no tpm)


class KeyLimits:
    """Per-key windows: in this process, or in Redis (`shared`) so every server process counts together."""

    def __init__(self, shared: SharedLimits | None = None) -> None:
        self.shared = shared
        self._shared_after = 0.0  # after a Redis outage is seen, requests count here until then
        self._local: dict[int, tuple[SlidingWindow | None, SlidingWindow | None]] = {}

    async def admit(self, caller: Caller, tokens: float) -> Admission | None:
        """Record one request and `tokens` in the key's windows, or raise TooManyRequests."""
        if caller.key_id is None or not (caller.rps or caller.tpm):
            return None
        admission = Admission(uuid.uuid4().hex)
        wait: float | None = None
        if self.shared is not None and time.monotonic() >= self._shared_after:
            try:
                wait = await self.shared.take(self._name(caller), rps=caller.rps, tpm=caller.tpm, tokens=tokens,
                                              ticket=admission.ticket)
            except (RedisConnectionError, RedisTimeoutError):  # Redis is away: this process's windows meanwhile,
                self._shared_after = time.monotonic() + BACKOFF_CAP_S  # and Redis asked again in a while
        if wait is None:
            wait, admission = self._take_local(caller, tokens, admission)
        if wait > 0:
            raise TooManyRequests(f"API key {caller.name}: over its limit of "
                                  + " and ".join(f"{v:g} {unit}" for v, unit in ((caller.rps, "requests/s"),
                                                                                 (caller.tpm, "tokens/min")) if v),
                                  retry_after_s=wait, field="Authorization")
        return admission

    async def settle(self, caller: Caller, admission: Admission | None, used: int) -> None:
        """Replace the request's estimated tokens by what it really used."""
        if admission is None or not caller.tpm or not used:
            return
        if self.shared is not None and admission.entry is None:
            with contextlib.suppress(RedisConnectionError, RedisTimeoutError):  # the estimate stays: on the safe side
                await self.shared.settle_tokens(self._name(caller), ticket=admission.ticket, tokens=used)
            return
        tokens = self._windows(caller)[1]
        if tokens is not None and admission.entry is not None:
            tokens.settle(admission.entry, used)

    def _take_local(self, caller: Caller, tokens: float, admission: Admission) -> tuple[float, Admission]:
        now = time.monotonic()
        requests, token_window = self._windows(caller)
        waits = [window.wait_s(amount, now) for window, amount in ((requests, 1.0), (token_window, tokens))
                 if window is not None]
        wait = max(waits, default=0.0)
        if wait > 0:
            return wait, admission
        if requests is not None:
            requests.take(1.0, now)
        if token_window is not None:
            admission = Admission(admission.ticket, token_window.take(tokens, now))
        return 0.0, admission

    def _windows(self, caller: Caller) -> tuple[SlidingWindow | None, SlidingWindow | None]:
        assert caller.key_id is not None
        windows = self._local.get(caller.key_id)
        if windows is None:
            windows = (SlidingWindow(caller.rps, REQUEST_WINDOW_S) if caller.rps else None,
                       SlidingWindow(caller.tpm, TOKEN_WINDOW_S) if caller.tpm else None)
            self._local[caller.key_id] = windows
        return windows

    @staticmethod
    def _name(caller: Caller) -> str:
        return f"key:{caller.key_id}:{caller.prefix}"

    async def aclose(self) -> None:
        """Close the Redis pool."""
        if self.shared is not None:
            await self.shared.aclose()
