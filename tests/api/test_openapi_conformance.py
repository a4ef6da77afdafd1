"""Schemathesis against /openapi.json: every answer is documented (status, content type, body schema), no
input gives a 5xx, and no request that breaks the schema is accepted. Bounded: a few examples an operation."""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.records import make_job, make_workflow

CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,"
          "negative_data_rejection")


@pytest.fixture
def database_url(tmp_path: Path, sqlite_template: Path) -> str:
    """One SQLite file: what is checked is the HTTP layer, the same on every database."""
    path = tmp_path / "rowloom.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


async def test_every_answer_is_the_documented_one(served_url: str, client: httpx.AsyncClient, admin_key: str,
                                                  tmp_path: Path) -> None:
    await make_workflow(client)  # something for the routes with an id to find
    await make_job(client)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "schemathesis.cli", "run", f"{served_url}/openapi.json",
        "--header", f"Authorization: Bearer {admin_key}", "--checks", CHECKS, "--max-examples", "8",
        "--seed", "20261129", "--phases", "examples,coverage,fuzzing", "--no-color",
        "--exclude-path", "/admin/keys/{key_id}",  # revoking keys would revoke the one this run uses
        "--exclude-path", "/api/v1/jobs/changes",  # a stream that never ends: tests/api/test_dashboard.py drives it
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp_path)
    out, _ = await asyncio.wait_for(process.communicate(), timeout=600)
    report = out.decode(errors="replace")
    assert process.returncode == 0, report[-6000:]
    assert "Authentication failed" not in report, report[-3000:]  # every operation was reached with the key
