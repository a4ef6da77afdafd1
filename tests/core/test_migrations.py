"""Alembic: `upgrade head` on an empty database builds the schema the models describe."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from core.db import Database
from core.db.migrate import only_rowloom_tables
from core.models import JobItem, metadata
from tests.support.records import make_job, make_workflow
from tests.support.services import mysql_url

ROOT = Path(__file__).resolve().parents[2]


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True, "include_name": only_rowloom_tables})
    return list(compare_metadata(context, metadata))


async def _assert_models_match(url: str) -> None:
    database = Database(url)
    try:
        async with database.engine.connect() as connection:
            assert await connection.run_sync(_diff) == []
            tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert {"workflows", "workflow_versions", "workflow_tags", "jobs", "alembic_version"} <= tables
    finally:
        await database.dispose()


def test_alembic_cli_upgrade_on_empty_sqlite_matches_models(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/fresh.db"
    result = subprocess.run([sys.executable, "-m", "alembic", "upgrade", "head"], cwd=ROOT,
                            env={"DATABASE_URL": url, "PATH": ""}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    import asyncio

    asyncio.run(_assert_models_match(url))


@pytest.mark.mysql
def test_migrated_mariadb_matches_models(mysql_migrated: str) -> None:
    import asyncio

    asyncio.run(_assert_models_match(mysql_migrated))


@pytest.mark.mysql
def test_downgrade_to_base_and_up_again_on_mariadb(mysql_migrated: str) -> None:
    url = mysql_url()
    for step in (["downgrade", "base"], ["upgrade", "head"]):
        result = subprocess.run([sys.executable, "-m", "alembic", *step], cwd=ROOT,
                                env={"DATABASE_URL": url, "PATH": ""}, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
    import asyncio

    asyncio.run(_assert_models_match(url))


def _alembic(url: str, *step: str) -> None:
    result = subprocess.run([sys.executable, "-m", "alembic", *step], cwd=ROOT,
                            env={"DATABASE_URL": url, "PATH": ""}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


async def test_usage_hours_are_filled_from_the_results_stored_before_them(client: httpx.AsyncClient,
                                                                          database: Database) -> None:
    """Upgrading to the hourly rollups keeps every result stored before counted, in its hour."""
    await make_workflow(client, "triage")
    job_id = (await make_job(client, "triage"))["id"]
    async with database.session() as session:
        for i, (model, hour, minute) in enumerate([("small", 9, 5), ("small", 9, 59), (None, 10, 0)]):
            session.add(JobItem(job_id=job_id, row_key=str(i), key_json=str(i), status="done", model=model,
                                attempts=1, tokens_in=10 * (i + 1), cost=0.5,
                                updated_at=datetime(2026, 11, 28, hour, minute, 30, 7, tzinfo=UTC)))
        await session.commit()
    _alembic(database.url, "downgrade", "0006")
    _alembic(database.url, "upgrade", "head")
    usage = (await client.get("/api/v1/usage", params={"group_by": "hour,model"})).json()["items"]
    assert [(g["hour"], g["model"], g["rows"], g["tokens_in"], g["cost"]) for g in usage] == [
        ("2026-11-28 10", None, 1, 30, 0.5), ("2026-11-28 09", "small", 2, 30, 1.0)]
