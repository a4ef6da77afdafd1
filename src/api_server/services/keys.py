"""API keys: create (the secret is shown once), list, revoke, look up by secret, and the first start's key."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api_server.services.errors import Conflict, NotFound
from core.db.types import utcnow
from core.models import ApiKey, Scope
from core.models.api_key import ApiKeyCreate

SECRET_PREFIX = "rlk_"  # so a leaked key is recognisable (and secret scanners can match it)
SHOWN_CHARS = 12  # of the secret, stored to tell keys apart in lists


def digest(secret: str) -> str:
    """What is stored of a secret: its sha256 (a key is 256 random bits, so no slow hash is needed)."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


async def create_key(session: AsyncSession, *, data: ApiKeyCreate, created_by: int | None = None) -> tuple[ApiKey, str]:
    """Make a key; returns it and its secret, which is stored only as a hash."""
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(name=data.name, prefix=secret[:SHOWN_CHARS], secret_sha256=digest(secret),
                 scopes=",".join(sorted(set(data.scopes))), rps=data.rps, tpm=data.tpm, created_by=created_by)
    session.add(key)
    await session.commit()
    await session.refresh(key)
    return key, secret


async def list_keys(session: AsyncSession, *, include_revoked: bool = False) -> Sequence[ApiKey]:
    """Every key, oldest first."""
    query = select(ApiKey).order_by(col(ApiKey.id))
    if not include_revoked:
        query = query.where(col(ApiKey.revoked_at).is_(None))
    return (await session.exec(query)).all()


async def revoke_key(session: AsyncSession, *, key_id: int) -> ApiKey:
    """Revoke a key: it stops working at once, in every process (see KeyRing)."""
    key = await session.get(ApiKey, key_id)
    if key is None:
        raise NotFound(f"API key {key_id} not found", field="key_id")
    if key.revoked_at is not None:
        raise Conflict(f"API key {key_id} is already revoked", field="key_id")
    key.revoked_at = utcnow()
    await session.commit()
    await session.refresh(key)
    return key


async def key_by_secret(session: AsyncSession, *, secret: str) -> ApiKey | None:
    """The live key with this secret, if any."""
    key = (await session.exec(select(ApiKey).where(col(ApiKey.secret_sha256) == digest(secret)))).one_or_none()
    return key if key is not None and key.revoked_at is None else None


async def revocations(session: AsyncSession) -> tuple[int, Any]:
    """How many keys are revoked, and the latest revocation: when this changes, a key was revoked."""
    row = (await session.exec(select(func.count(), func.max(col(ApiKey.revoked_at)))
                              .where(col(ApiKey.revoked_at).is_not(None)))).one()
    return int(row[0]), row[1]


async def first_key(session: AsyncSession) -> str | None:
    """On a database without any key, make an admin key and return its secret (shown once); otherwise None."""
    if (await session.exec(select(func.count()).select_from(ApiKey))).one():
        return None
    _, secret = await create_key(session, data=ApiKeyCreate(name="first admin key", scopes=[Scope.ADMIN]))
    return secret
