"""`rowloom keys create|list|revoke`: API keys, straight in the configured database (no server needed)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

from pydantic import ValidationError
from sqlmodel.ext.asyncio.session import AsyncSession

from api_server.services import keys as service
from api_server.services.errors import DomainError
from core.db import Database
from core.models import Scope
from core.models.api_key import ApiKeyCreate, ApiKeyPublic
from core.settings import get_settings

T = TypeVar("T")


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `keys` and its subcommands on the `rowloom` parser."""
    keys = commands.add_parser("keys", help="create, list and revoke API keys").add_subparsers(
        dest="keys_command", required=True)
    create = keys.add_parser("create", help="create a key and print its secret (shown only this once)")
    create.add_argument("--name", required=True)
    create.add_argument("--scope", action="append", required=True, choices=[s.value for s in Scope],
                        help="repeat for several: read, write (includes read), admin (includes all), gateway")
    create.add_argument("--rps", type=float, help="requests/s on /v1, across every server process")
    create.add_argument("--tpm", type=int, help="tokens/min on /v1, across every server process")
    create.add_argument("--quiet", action="store_true", help="print only the secret")
    keys.add_parser("list", help="list live keys (never their secrets)")
    revoke = keys.add_parser("revoke", help="revoke a key by id; it stops working at once")
    revoke.add_argument("key_id", type=int)


def keys_command(args: argparse.Namespace) -> int:
    """`rowloom keys ...`."""
    try:
        if args.keys_command == "create":
            data = ApiKeyCreate(name=args.name, scopes=[Scope(s) for s in args.scope], rps=args.rps, tpm=args.tpm)
            key, secret = _with_session(lambda s: service.create_key(s, data=data))
            print(secret if args.quiet else f"created key {key.id} ({key.name}, {key.scopes}); its secret, shown "
                  f"only this once:\n{secret}")
        elif args.keys_command == "list":
            for key in _with_session(lambda s: service.list_keys(s)):
                public = ApiKeyPublic.from_key(key)
                limits = ", ".join(f"{v:g} {u}" for v, u in ((key.rps, "rps"), (key.tpm, "tpm")) if v)
                print(f"{public.id:>5}  {public.prefix}...  {','.join(public.scopes):<22} {public.name}"
                      f"{'  (' + limits + ')' if limits else ''}")
        else:
            key = _with_session(lambda s: service.revoke_key(s, key_id=args.key_id))
            asyncio.run(_announce_revocation())
            print(f"revoked key {key.id} ({key.name})")
    except DomainError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    except ValidationError as exc:
        print(f"error: {'; '.join(str(e['msg']) for e in exc.errors())}", file=sys.stderr)
        return 2
    return 0


async def _announce_revocation() -> None:
    """Servers sharing Redis drop their cached keys now; others notice within a second (they watch the database)."""
    redis_url = get_settings().redis_url
    if redis_url:
        from redis.asyncio import Redis

        from api_server.auth import REVOKED_CHANNEL

        redis = Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=2)
        try:
            await redis.publish(REVOKED_CHANNEL, b"1")
        except Exception:  # the revocation is in the database: the servers' watch picks it up
            pass
        finally:
            await redis.aclose()


def _with_session(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    async def run() -> T:
        database = Database(get_settings().database_url)
        try:
            async with database.session() as session:
                return await work(session)
        finally:
            await database.dispose()

    return asyncio.run(run())
