"""Limits of an API key on the gateway routes: requests/s and tokens/min, shared through Redis when configured.

A request is admitted if its key's buckets hold one request and its estimated tokens; otherwise it gets a
429 with Retry-After. Once the answer's real usage is known, the token estimate is settled.
"""

from __future__ import annotations

import time

from api_server.auth import Caller
from api_server.services.errors import TooManyRequests
from core.shared_limits import SharedLimits
from engine.gateway.limits import TokenBucket

REQUEST_BURST_S = 1.0  # a key's request bucket holds one second of requests


class KeyLimits:
    """Per-key buckets: in this process, or in Redis (`shared`) so every server process counts together."""

    def __init__(self, shared: SharedLimits | None = None) -> None:
        self.shared = shared
        self._local: dict[int, tuple[TokenBucket | None, TokenBucket | None]] = {}

    async def admit(self, caller: Caller, tokens: float) -> None:
        """Take one request and `tokens` from the key's buckets, or raise TooManyRequests."""
        if caller.key_id is None or not (caller.rps or caller.tpm):
            return
        if self.shared is not None:
            wait = await self.shared.take(self._name(caller), rps=caller.rps, tpm=caller.tpm, tokens=tokens,
                                          burst_s=REQUEST_BURST_S)
        else:
            wait = self._take_local(caller, tokens)
        if wait > 0:
            raise TooManyRequests(f"API key {caller.name}: over its limit of "
                                  + " and ".join(f"{v:g} {unit}" for v, unit in ((caller.rps, "requests/s"),
                                                                                 (caller.tpm, "tokens/min")) if v),
                                  retry_after_s=wait, field="Authorization")

    async def settle(self, caller: Caller, estimate: float, used: int) -> None:
        """Give back what the estimate over-counted (or take what it under-counted)."""
        if caller.key_id is None or not caller.tpm or not used:
            return
        if self.shared is not None:
            await self.shared.settle_tokens(self._name(caller), estimate - used)
            return
        tokens = self._buckets(caller)[1]
        if tokens is not None:
            tokens.take(used - estimate, time.monotonic())

    def _take_local(self, caller: Caller, tokens: float) -> float:
        now = time.monotonic()
        requests, token_bucket = self._buckets(caller)
        waits = [bucket.wait_s(amount, now) for bucket, amount in ((requests, 1.0), (token_bucket, tokens))
                 if bucket is not None]
        wait = max(waits, default=0.0)
        if wait == 0:
            for bucket, amount in ((requests, 1.0), (token_bucket, tokens)):
                if bucket is not None:
                    bucket.take(amount, now)
        return wait

    def _buckets(self, caller: Caller) -> tuple[TokenBucket | None, TokenBucket | None]:
        assert caller.key_id is not None
        buckets = self._local.get(caller.key_id)
        if buckets is None:
            now = time.monotonic()
            buckets = (TokenBucket(caller.rps, REQUEST_BURST_S * caller.rps, updated=now) if caller.rps else None,
                       TokenBucket(caller.tpm / 60, caller.tpm, updated=now) if caller.tpm else None)
            self._local[caller.key_id] = buckets
        return buckets

    @staticmethod
    def _name(caller: Caller) -> str:
        return f"key:{caller.key_id}:{caller.prefix}"

    async def aclose(self) -> None:
        """Close the Redis pool."""
        if self.shared is not None:
            await self.shared.aclose()
