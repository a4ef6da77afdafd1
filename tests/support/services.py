"""Where the tests find MariaDB and Redis, and whether a missing one skips or fails the run."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import asyncmy
import pytest

REQUIRED = os.environ.get("ROWLOOM_REQUIRE_SERVICES") == "1"
MYSQL_URL = os.environ.get("ROWLOOM_TEST_MYSQL_URL", "mysql+asyncmy://root@127.0.0.1:3306/test")
REDIS_URL = os.environ.get("ROWLOOM_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url.replace("+asyncmy", ""))
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=1):
            return True
    except OSError:
        return False


def require(name: str, url: str, default_port: int) -> str:
    """The service's URL; skip the test without it, or fail when services are required (CI)."""
    if _reachable(url, default_port):
        return url
    message = f"{name} is not reachable at {url}"
    if REQUIRED:
        pytest.fail(f"{message}, and ROWLOOM_REQUIRE_SERVICES=1 requires it")
    pytest.skip(f"{message} (set ROWLOOM_REQUIRE_SERVICES=1 to make this a failure)")


def mysql_url() -> str:
    """MariaDB/MySQL for the tests (database `test`)."""
    return require("MariaDB", MYSQL_URL, 3306)


def redis_url() -> str:
    """Redis for the tests (database 15)."""
    return require("Redis", REDIS_URL, 6379)


def mysql_fields() -> dict[str, Any]:
    """The test MariaDB as a connection's fields (host, port, user, password, database `test`)."""
    parsed = urlparse(MYSQL_URL.replace("+asyncmy", ""))
    return {"host": parsed.hostname or "127.0.0.1", "port": parsed.port or 3306, "user": parsed.username or "root",
            "password": parsed.password or "", "database": "test"}


def write_connections(path: Path, **named: dict[str, Any]) -> Path:
    """An operator's connections file with these connections (JSON is YAML); returns its path."""
    path.write_text(json.dumps({"connections": named}))
    return path


async def execute(mysql: dict[str, Any], *statements: str, rows: list[tuple[Any, ...]] | None = None) -> list[Any]:
    """Run statements on MariaDB (`rows` for an executemany); the last one's rows."""
    connection = await asyncmy.connect(**mysql, autocommit=True, charset="utf8mb4")
    try:
        async with connection.cursor() as cursor:
            result: list[Any] = []
            for statement in statements:
                if rows is not None and "%s" in statement:
                    await cursor.executemany(statement, rows)
                else:
                    await cursor.execute(statement)
                    result = list(await cursor.fetchall())
            return result
    finally:
        connection.close()
