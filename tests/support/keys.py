"""API keys for tests: made straight in the database, as `rowloom keys create` does."""

from __future__ import annotations

from api_server.services.keys import create_key
from core.db import Database
from core.models import Scope
from core.models.api_key import ApiKeyCreate


async def new_key(database: Database, *scopes: Scope, name: str = "test", rps: float | None = None,
                  tpm: int | None = None) -> str:
    """A fresh key's secret (admin unless scopes are given)."""
    data = ApiKeyCreate(name=name, scopes=list(scopes or [Scope.ADMIN]), rps=rps, tpm=tpm)
    async with database.session() as session:
        return (await create_key(session, data=data))[1]


def bearer(secret: str) -> dict[str, str]:
    """The header that carries a key."""
    return {"Authorization": f"Bearer {secret}"}
