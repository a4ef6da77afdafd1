"""API keys: who may call the API, with which scopes and limits. Only a hash of each secret is stored."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import ConfigDict, Strict, StrictInt
from sqlalchemy import Double, String
from sqlmodel import Field, SQLModel

from core.db.types import BigIntId, UtcDateTime, utcnow

MAX_KEY_NAME = 128


class Scope(StrEnum):
    """What a key may do. `write` includes `read`; `admin` includes every other scope."""

    READ = "read"  # GET workflows, jobs and what jobs produced
    WRITE = "write"  # store workflows, trigger jobs, act on them
    ADMIN = "admin"  # keys, deletes, /admin/*, /metrics
    GATEWAY = "gateway"  # the OpenAI-compatible /v1/* routes

    def granted_by(self, scopes: frozenset[Scope]) -> bool:
        """Whether a key holding `scopes` may do what this scope guards."""
        return bool(scopes & IMPLIED_BY[self])


IMPLIED_BY: dict[Scope, frozenset[Scope]] = {
    Scope.READ: frozenset({Scope.READ, Scope.WRITE, Scope.ADMIN}),
    Scope.WRITE: frozenset({Scope.WRITE, Scope.ADMIN}),
    Scope.ADMIN: frozenset({Scope.ADMIN}),
    Scope.GATEWAY: frozenset({Scope.GATEWAY, Scope.ADMIN}),
}


class ApiKey(SQLModel, table=True):
    """One key: its name, the first characters of its secret (to recognise it), the secret's sha256, scopes."""

    __tablename__ = "api_keys"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigIntId)
    name: str = Field(sa_type=String(MAX_KEY_NAME))
    prefix: str = Field(sa_type=String(16))
    secret_sha256: str = Field(sa_type=String(64), unique=True)
    scopes: str = Field(sa_type=String(64))  # comma-separated Scope values
    rps: float | None = Field(default=None, sa_type=Double)  # /v1 requests per second, any number of processes
    tpm: int | None = None  # /v1 tokens per minute
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    created_by: int | None = Field(default=None, sa_type=BigIntId)  # the key that made this one (None: the CLI)
    revoked_at: datetime | None = Field(default=None, sa_type=UtcDateTime)

    @property
    def scope_set(self) -> frozenset[Scope]:
        """The key's scopes as enum members."""
        return frozenset(Scope(s) for s in self.scopes.split(",") if s)


# --- API schemas --------------------------------------------------------------------------------


class ApiKeyCreate(SQLModel):
    """A new key: its name, scopes, and optional limits on the gateway routes."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={  # type: ignore[assignment]
        "examples": [{"name": "ci", "scopes": ["write"]}, {"name": "notebook", "scopes": ["gateway"], "rps": 5}]})

    name: str = Field(min_length=1, max_length=MAX_KEY_NAME, regex=r"^[A-Za-z0-9][A-Za-z0-9 ._:@/-]*$")
    scopes: list[Scope] = Field(min_length=1, description="Any of read, write, admin, gateway.")
    rps: Annotated[float, Strict()] | None = Field(default=None, gt=0,
                                                   description="Requests/s on /v1, across every server process.")
    tpm: StrictInt | None = Field(default=None, gt=0, description="Tokens per minute on /v1, across every process.")


class ApiKeyPublic(SQLModel):
    """A key as the API shows it: never its secret."""

    id: int
    name: str
    prefix: str = Field(description="The secret's first characters, to tell keys apart.")
    scopes: list[Scope]
    rps: float | None
    tpm: int | None
    created_at: datetime
    created_by: int | None
    revoked_at: datetime | None

    @classmethod
    def from_key(cls, key: ApiKey) -> ApiKeyPublic:
        """Build from a table row."""
        return cls.model_validate(key.model_dump() | {"scopes": sorted(key.scope_set)})


class ApiKeyCreated(ApiKeyPublic):
    """A key just made: the only time its secret is shown."""

    secret: str = Field(description="Send it as `Authorization: Bearer <secret>`. It is not stored and cannot be "
                                    "shown again.")
