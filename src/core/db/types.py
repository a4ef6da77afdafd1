"""Column types that behave the same on SQLite and MySQL/MariaDB."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, SmallInteger, Text
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

# SQLite auto-increments only an INTEGER PRIMARY KEY; MySQL wants BIGINT for ids that grow.
MAX_ID = 2**63 - 1  # the largest id (or offset) either database can hold: larger ones are refused at the API
BigIntId = BigInteger().with_variant(Integer(), "sqlite")

# MySQL's TEXT stops at 64 KiB; a workflow's YAML or a job's error may be longer.
LongText = Text().with_variant(mysql.MEDIUMTEXT(), "mysql")


def utcnow() -> datetime:
    """Now, in UTC, timezone-aware."""
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out; stored naive UTC with microseconds."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "mysql":
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


class RankedEnum(TypeDecorator[Any]):
    """A str enum stored as its rank (a small int), so ORDER BY sorts by meaning, not spelling."""

    impl = SmallInteger
    cache_ok = True

    def __init__(self, enum_class: type[StrEnum]) -> None:
        super().__init__()
        self.enum_class = enum_class  # same name as the argument: SQLAlchemy's cache key reads it
        self._members = list(enum_class)

    def process_bind_param(self, value: Any, dialect: Dialect) -> int | None:
        return None if value is None else self._members.index(self.enum_class(value))

    def process_result_value(self, value: int | None, dialect: Dialect) -> StrEnum | None:
        return None if value is None else self._members[value]
