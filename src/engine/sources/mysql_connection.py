"""MySQL/MariaDB connections for the table source and the write-back sink (asyncmy)."""

from __future__ import annotations

from typing import Any

import asyncmy

from engine.errors import InputError
from engine.spec.models import MysqlConnection
from engine.spec.secrets import Secrets


def quote(identifier: str) -> str:
    """A MySQL identifier in backticks."""
    return "`" + identifier.replace("`", "``") + "`"


async def connect(config: MysqlConnection, secrets: Secrets) -> Any:
    """An asyncmy connection (autocommit off), or InputError naming the server (never the password)."""
    password = secrets.resolve(config.password)
    try:
        return await asyncmy.connect(host=config.host, port=config.port, user=config.user, password=password,
                                     database=config.database, charset="utf8mb4", autocommit=False,
                                     connect_timeout=10)
    except Exception as exc:  # asyncmy raises several unrelated types for refused, auth, unknown db
        raise InputError(f"mysql {config.user}@{config.host}:{config.port}/{config.database}: cannot connect: "
                         f"{secrets.scrub(str(exc))}") from None


async def table_columns(connection: Any, database: str, table: str) -> list[str]:
    """The table's columns in order; InputError if there is no such table."""
    async with connection.cursor() as cursor:
        await cursor.execute("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s "
                             "AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION", (database, table))
        columns = [row[0] for row in await cursor.fetchall()]
    await connection.commit()
    if not columns:
        raise InputError(f"mysql {database}.{table}: no such table")
    return columns
