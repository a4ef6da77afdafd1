"""Fixtures: an in-process API client over a migrated SQLite file, and over MariaDB when present."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from api_server.main import create_app
from core.db import Database
from core.gateway_router import process_router
from core.models import metadata
from core.outages import database_outage, redis_outage
from core.settings import Settings
from tests.support.keys import bearer, new_key
from tests.support.records import migrate
from tests.support.served import served
from tests.support.services import mysql_url

# Estimates in a thread: a process per app would start (and import the engine) in every test that makes a
# job. tests/engine/test_estimate.py runs them in processes, as a server does by default.
os.environ.setdefault("ESTIMATE_PROCESSES", "0")




@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once; each test gets a copy."""
    path = tmp_path_factory.mktemp("template") / "rowloom.db"
    asyncio.run(migrate(f"sqlite+aiosqlite:///{path}", fresh=False))
    return path


@pytest.fixture(scope="session")
def mysql_migrated() -> str:
    """The MariaDB test database, emptied and migrated once per run."""
    url = mysql_url()
    asyncio.run(migrate(url, fresh=True))
    return url


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                 sqlite_template: Path) -> Iterator[str]:
    """A migrated, empty database: SQLite always (in a folder of its own: never inside a test's DATA_DIR, which
    the server refuses), MariaDB when the service is there."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("db") / "rowloom.db"
        shutil.copy(sqlite_template, path)
        yield f"sqlite+aiosqlite:///{path}"
    else:
        url: str = request.getfixturevalue("mysql_migrated")
        asyncio.run(_empty(url))
        yield url


async def _empty(url: str) -> None:
    database = Database(url)
    try:
        async with database.engine.begin() as connection:
            for table in reversed(metadata.sorted_tables):
                await connection.execute(table.delete())
    finally:
        await database.dispose()


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """The Database the app under test uses."""
    db = Database(database_url)
    yield db
    await db.dispose()


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Settings for the app under test (small body limit so the 413 test stays small)."""
    return Settings(database_url=database_url, redis_url=None, max_body_bytes=64 * 1024)


@pytest.fixture
async def admin_key(database: Database) -> str:
    """An admin key's secret in the database under test."""
    return await new_key(database, name="tests")


@pytest.fixture
async def client(settings: Settings, database: Database, admin_key: str) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client calling the app in process (the default gateway: one mock model), with an admin key."""
    router = process_router(settings)
    app = create_app(settings, database, router)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://rowloom.test",
                                 headers=bearer(admin_key)) as http:
        yield http
    await router.aclose()


@pytest.fixture
async def served_url(settings: Settings, database: Database) -> AsyncIterator[str]:
    """The app (default gateway: one mock model) served by uvicorn on 127.0.0.1; its base URL."""
    router = process_router(settings)
    async with served(create_app(settings, database, router)) as url:
        yield url
    await router.aclose()









@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Worker processes started by a test; whatever is left is stopped."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


@pytest.fixture(autouse=True)
def no_outage_seen() -> Iterator[None]:
    """Each test starts with the database and Redis reachable as far as this process knows (an outage test's
    apps mark them away; the reaper then judges no lease for a while)."""
    yield
    for outage in (database_outage, redis_outage):
        outage.since = outage.ended_at = None
