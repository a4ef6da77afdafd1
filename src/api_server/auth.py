"""Who is calling: API keys from `Authorization: Bearer <secret>`, their scopes, and the route dependencies.

Every route but /ping (and /health's summary) takes one of the `...Key` dependencies below. A missing or
unknown key is a 401, a key without the route's scope a 403, both in the API's one error shape.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api_server.services.errors import Forbidden, Unauthenticated
from api_server.services.keys import digest, key_by_secret, revocations
from core.background import cancel_and_wait
from core.db import Database
from core.models import ApiKey, Scope
from core.outages import backoff_s, database_outage, is_database_outage, is_redis_outage, outage_of, redis_outage
from core.redis_retry import API_PATIENCE_S, patient_redis

log = logging.getLogger(__name__)
CACHE_S = 5.0  # without the revocation watch running (an app used without its lifespan): look keys up again
WATCH_S = 0.5  # how often a server reads the revocations in the database (`rowloom keys revoke` from a shell)
REVOKED_CHANNEL = "rowloom:keys:revoked"  # Redis pub/sub: every server process drops its cache at once


@dataclass(frozen=True)
class Caller:
    """The key behind a request: its id and name, scopes, and limits on /v1 (id None: auth is turned off)."""

    key_id: int | None
    name: str
    scopes: frozenset[Scope]
    rps: float | None = None
    tpm: int | None = None
    prefix: str = ""  # the secret's first characters: with the id, a name no other key ever had

    @classmethod
    def of(cls, key: ApiKey) -> Caller:
        """From a stored key."""
        return cls(key.id, key.name, key.scope_set, key.rps, key.tpm, key.prefix)


ANONYMOUS = Caller(None, "anonymous (auth off)", frozenset(Scope))


class KeyRing:
    """Finds the key of a secret, caching live keys so that the gateway's hot path costs no query.

    The cache is dropped whenever a key is revoked: at once by the revoking process, through Redis pub/sub in
    every other server process, and within WATCH_S by a watch on the database (a revocation from the CLI).
    Concurrent requests with a key not in the cache share one lookup.
    """

    def __init__(self, database: Database | None, *, redis_url: str | None = None, required: bool = True) -> None:
        self.database = database
        self.required = required
        self._revocation = asyncio.Event()  # set (and replaced) at each revocation: long streams wake on it
        self.redis = patient_redis(redis_url, patience_s=API_PATIENCE_S) if redis_url else None
        self._cache: dict[str, tuple[Caller, float]] = {}
        self._lookups: dict[str, asyncio.Future[Caller | None]] = {}
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Watch for revocations: in the database, and through Redis when configured."""
        if self.database is not None:
            # The first reading is taken now, not by the watch later: a revocation right after the start counts.
            self._tasks.append(asyncio.create_task(self._watch_database(self.database,
                                                                        await self._revocations(self.database))))
        if self.redis is not None:
            self._tasks.append(asyncio.create_task(self._follow_revocations()))

    async def caller(self, authorization: str | None) -> Caller | None:
        """The caller an `Authorization` header names, or None (no header, not Bearer, unknown or revoked)."""
        if not self.required:
            return ANONYMOUS
        if not authorization:
            return None
        scheme, _, secret = authorization.partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret or len(secret) > 512:
            return None
        return await self.by_secret(secret)

    async def by_secret(self, secret: str) -> Caller | None:
        """The live key with this secret: from the cache, or one lookup shared by concurrent requests."""
        hashed = digest(secret)
        cached = self._cache.get(hashed)
        if cached is not None and (self._tasks or time.monotonic() - cached[1] < CACHE_S):
            return cached[0]
        pending = self._lookups.get(hashed)
        if pending is not None:
            return await asyncio.shield(pending)
        pending = self._lookups[hashed] = asyncio.get_running_loop().create_future()
        try:
            caller = await self._lookup(secret)
        except BaseException as exc:
            pending.set_exception(exc)
            pending.exception()  # retrieved: the waiters (if any) raise it themselves
            raise
        finally:
            del self._lookups[hashed]
        pending.set_result(caller)
        if caller is not None:
            self._cache[hashed] = (caller, time.monotonic())
        return caller

    async def _lookup(self, secret: str) -> Caller | None:
        if self.database is None:  # only an app without a database and without keys (AUTH_REQUIRED=false)
            return None
        async with self.database.session() as session:
            key = await key_by_secret(session, secret=secret)
        return Caller.of(key) if key is not None else None

    def _forget(self) -> None:
        """Drop every cached key, and wake whoever waits for a revocation."""
        self._cache.clear()
        self._revocation.set()
        self._revocation = asyncio.Event()

    async def until_revocation(self, timeout_s: float) -> None:
        """Sleep `timeout_s`, or less if a key is revoked meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._revocation.wait(), timeout=timeout_s)

    async def revoked(self) -> None:
        """A key was revoked: forget every cached key here, and tell the other processes."""
        self._forget()
        if self.redis is not None:
            try:
                await self.redis.publish(REVOKED_CHANNEL, b"1")
            except Exception:  # the revocation is in the database: other processes see it within WATCH_S
                log.warning("could not announce a key revocation through Redis", exc_info=True)

    @staticmethod
    async def _revocations(database: Database) -> tuple[int, Any] | None:
        try:
            async with database.session() as session:
                return await revocations(session)
        except Exception:  # the database is down: the watch reads it again
            log.warning("could not read key revocations", exc_info=True)
            return None

    async def _watch_database(self, database: Database, seen: tuple[int, Any] | None) -> None:
        while True:
            await asyncio.sleep(WATCH_S)
            try:
                async with database.session() as session:
                    latest = await revocations(session)
                database_outage.recovered()
                if seen is not None and latest != seen:
                    self._forget()
                seen = latest
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is down: no key is found anyway until it is back
                if not is_database_outage(exc):
                    log.warning("could not read key revocations; trying again", exc_info=True)
                database_outage.failed(exc)
                self._cache.clear()

    async def _follow_revocations(self) -> None:
        assert self.redis is not None
        failures = 0
        while True:
            try:
                async with self.redis.pubsub() as pubsub:
                    await pubsub.subscribe(REVOKED_CHANNEL)
                    failures = 0
                    redis_outage.recovered()
                    self._forget()  # anything revoked while we were not listening
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self._forget()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if is_redis_outage(exc):
                    redis_outage.failed(exc)
                else:
                    log.warning("lost the Redis subscription to key revocations; retrying", exc_info=True)
                self._cache.clear()
                failures += 1
                await asyncio.sleep(backoff_s(failures))

    async def aclose(self) -> None:
        """Stop watching revocations and close Redis."""
        await cancel_and_wait(self._tasks)
        self._tasks = []
        if self.redis is not None:
            await self.redis.aclose()


bearer = HTTPBearer(auto_error=False, description="An API key: `rowloom keys create`, or the one the first start "
                                                  "printed.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


async def optional_caller(request: Request, _: Credentials) -> Caller | None:
    """The caller if the request carries a valid key (for routes that show more to a known caller)."""
    # `Credentials` only documents the scheme in OpenAPI: the header is read as the /v1 fast path reads it
    keys: KeyRing = request.app.state.keys
    return await keys.caller(request.headers.get("authorization"))


async def caller_if_reachable(request: Request, credentials: Credentials) -> Caller | None:
    """The caller, or None when the key cannot be looked up now (the database or Redis away): for /health, which
    answers whatever is down."""
    try:
        return await optional_caller(request, credentials)
    except Exception as exc:
        if outage_of(exc) is None:
            raise
        return None


async def still_allowed(request: Request, scope: Scope) -> bool:
    """Whether the request's key still grants `scope` (a long stream asks again as it goes: a revoked key's streams
    end within a poll of the revocation)."""
    keys: KeyRing = request.app.state.keys
    caller = await keys.caller(request.headers.get("authorization"))
    return caller is not None and scope.granted_by(caller.scopes)


async def stream_pause(request: Request, seconds: float) -> None:
    """A stream's wait between polls, cut short by a key's revocation."""
    keys: KeyRing = request.app.state.keys
    await keys.until_revocation(seconds)


def require(scope: Scope) -> Any:
    """A dependency that returns the caller if its key grants `scope`; 401 or 403 otherwise."""

    async def check(caller: Annotated[Caller | None, Depends(optional_caller)]) -> Caller:
        return authorize(caller, scope)

    check.__name__ = f"require_{scope.value}"
    return Depends(check)


def authorize(caller: Caller | None, scope: Scope) -> Caller:
    """The caller, if it may use `scope`."""
    if caller is None:
        raise Unauthenticated("an API key is required: send `Authorization: Bearer <key>` (create one with "
                              "`rowloom keys create`)", field="Authorization")
    if not scope.granted_by(caller.scopes):
        raise Forbidden(f"this API key ({caller.name}) lacks the {scope.value} scope", field="Authorization")
    return caller


ReadKey = Annotated[Caller, require(Scope.READ)]
WriteKey = Annotated[Caller, require(Scope.WRITE)]
AdminKey = Annotated[Caller, require(Scope.ADMIN)]
GatewayKey = Annotated[Caller, require(Scope.GATEWAY)]
