"""Secrets: stored only as ${NAME} references to allowed names, resolved when a job runs, and never shown
by a route, an event, an error or a log line."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import asyncmy
import httpx
import pytest

from core.job_secrets import RESOLVED, SecretFilter
from core.settings import Settings
from engine.errors import InputError
from engine.spec.io_models import MysqlConnection
from engine.spec.secrets import Secrets
from tests.support.engine_helpers import SPEC, tickets
from tests.support.fake_upstream import FakeUpstream
from tests.support.services import mysql_url
from tests.support.worker_helpers import all_pages, platform, wait_status

PASSWORD = "hunter2-" + secrets.token_hex(8)  # a literal a user might paste


@pytest.fixture
def settings(database_url: str) -> Settings:
    """The operator allows inline connections to this machine's MariaDB (their passwords are the job's secrets)."""
    return Settings(database_url=database_url, redis_url=None, allowed_db_hosts=["127.0.0.1"])


def mysql_spec(password: str, *, host: str = "127.0.0.1", port: int = 3306, user: str = "root") -> str:
    connection = f"{{host: '{host}', port: {port}, user: '{user}', password: '{password}', database: test}}"
    return SPEC.format(source=f"{{kind: mysql, connection: {connection}, table: secret_tickets, key: id}}",
                       in_flight=4, api=1, content=1, extra="model: {name: auto}")


@pytest.mark.parametrize(("password", "says"), [
    (PASSWORD, "a secret is never stored"), ("x${ROWLOOM_SECRET_A}", "a secret is never stored"),
    ("${DATABASE_URL}", "only variables whose names start with ROWLOOM_SECRET_"),
    ("${HOME}", "only variables whose names start with ROWLOOM_SECRET_")])
async def test_a_password_in_a_spec_is_refused_without_being_echoed(client: httpx.AsyncClient, password: str,
                                                                   says: str) -> None:
    response = await client.post("/api/v1/workflows", json={"yaml": mysql_spec(password)})
    assert response.status_code == 422
    [detail] = response.json()["error"]["details"]
    assert detail["field"] == "source.connection.password" and says in detail["message"]
    assert detail["line"] == 2
    if password == PASSWORD:
        assert PASSWORD not in response.text


async def test_a_reference_is_stored_and_params_are_held_to_the_same_rule(client: httpx.AsyncClient) -> None:
    stored = await client.post("/api/v1/workflows", json={"yaml": mysql_spec("${ROWLOOM_SECRET_DB}")})
    assert stored.status_code == 201, stored.text
    params = {"source": {"connection": {"password": PASSWORD}}}
    response = await client.post("/api/v1/jobs", json={"workflow": "triage", "params": params})
    assert response.status_code == 422 and PASSWORD not in response.text
    assert response.json()["error"]["details"][0]["field"] == "params.source.connection.password"


def test_the_resolver_names_what_is_missing_or_refused_and_scrubs_what_it_gave() -> None:
    resolver = Secrets({"ROWLOOM_SECRET_A": PASSWORD, "DATABASE_URL": "mysql://x"}, prefix="ROWLOOM_SECRET_")
    assert resolver.resolve("${ROWLOOM_SECRET_A}") == PASSWORD
    with pytest.raises(InputError, match="ROWLOOM_SECRET_B is not set"):
        resolver.resolve("${ROWLOOM_SECRET_B}")
    with pytest.raises(InputError, match="only variables whose names start with") as refused:
        resolver.resolve("${DATABASE_URL}")
    assert "mysql://x" not in str(refused.value)
    assert resolver.scrub(f"Access denied for 'u' with {PASSWORD}!") == "Access denied for 'u' with ***!"


def test_log_records_are_scrubbed_of_resolved_secrets() -> None:
    RESOLVED.add(PASSWORD)
    try:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "connect failed: %s", (PASSWORD,), None)
        assert SecretFilter().filter(record) and PASSWORD not in record.getMessage()
        try:
            raise RuntimeError(f"bad password {PASSWORD}")
        except RuntimeError:
            import sys

            failed = logging.LogRecord("x", logging.ERROR, __file__, 1, "job failed", (), sys.exc_info())
        SecretFilter().filter(failed)
        assert failed.exc_info is None and PASSWORD not in (failed.exc_text or "") and "***" in (failed.exc_text or "")
    finally:
        RESOLVED.discard(PASSWORD)


@pytest.fixture
async def mysql_user() -> AsyncIterator[dict[str, Any]]:
    """A MariaDB user with a password, owning a table of tickets in `test`."""
    parsed = urlparse(mysql_url().replace("+asyncmy", ""))
    root = {"host": parsed.hostname, "port": parsed.port or 3306, "user": parsed.username or "root",
            "password": parsed.password or "", "database": "test"}
    password = "pw-" + secrets.token_hex(12)
    frame = tickets(12)
    connection = await asyncmy.connect(**root, autocommit=True)
    async with connection.cursor() as cursor:
        for statement in ("DROP TABLE IF EXISTS secret_tickets",
                          "CREATE TABLE secret_tickets (id VARCHAR(20) PRIMARY KEY, subject VARCHAR(200), "
                          "body TEXT NULL, ai_category VARCHAR(40) NULL, ai_summary VARCHAR(200) NULL)",
                          "DROP USER IF EXISTS 'rowloom_secret'@'%'",
                          f"CREATE USER 'rowloom_secret'@'%' IDENTIFIED BY '{password}'",
                          "GRANT SELECT, UPDATE ON test.secret_tickets TO 'rowloom_secret'@'%'"):
            await cursor.execute(statement)
        await cursor.executemany("INSERT INTO secret_tickets (id, subject, body) VALUES (%s, %s, %s)",
                                 list(frame.select("id", "subject", "body").iter_rows()))
    try:
        yield {"host": root["host"], "port": root["port"], "password": password}
    finally:
        async with connection.cursor() as cursor:
            await cursor.execute("DROP TABLE IF EXISTS secret_tickets")
            await cursor.execute("DROP USER IF EXISTS 'rowloom_secret'@'%'")
        connection.close()


@pytest.mark.mysql
async def test_a_job_resolves_its_secret_and_no_route_shows_it(database_url: str, tmp_path: Path,
                                                               mysql_user: dict[str, Any],
                                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secrets_file = tmp_path / "secrets.env"
    secrets_file.write_text(f"ROWLOOM_SECRET_DB={mysql_user['password']}\nROWLOOM_SECRET_WRONG=nope-{PASSWORD}\n")
    good = mysql_spec("${ROWLOOM_SECRET_DB}", host=mysql_user["host"], port=mysql_user["port"],
                      user="rowloom_secret")
    wrong = good.replace("ROWLOOM_SECRET_DB", "ROWLOOM_SECRET_WRONG").replace("name: triage", "name: wrong")
    async with FakeUpstream() as upstream, \
            platform(database_url=database_url, data_dir=tmp_path, upstream_url=upstream.base_url,
                     secrets_file=secrets_file, allowed_db_hosts=[mysql_user["host"]]) as p:
        for yaml in (good, wrong):
            assert (await p.http.post("/api/v1/workflows", json={"yaml": yaml})).status_code == 201
        done = (await p.http.post("/api/v1/jobs", json={"workflow": "triage"})).json()
        failed = (await p.http.post("/api/v1/jobs", json={"workflow": "wrong"})).json()
        done = await wait_status(p.http, done["id"], "completed")
        failed = await wait_status(p.http, failed["id"], "failed")
        assert done["counts"]["done"] > 0 and "cannot connect" in failed["error"]
        seen = [await p.http.get(path) for path in (
            "/api/v1/workflows", "/api/v1/workflows/triage", "/api/v1/workflows/triage/versions",
            "/api/v1/workflows/triage/versions/1", "/api/v1/workflows/triage/versions/1?format=yaml",
            "/api/v1/workflows/wrong/versions/1", "/api/v1/jobs", "/admin/models", "/admin/keys", "/metrics",
            "/health", "/openapi.json")]
        for job in (done, failed):
            seen += [await p.http.get(f"/api/v1/jobs/{job['id']}{tail}") for tail in (
                "", "/events", "/items", "/errors", "/output")]
            events = await all_pages(p.http, f"/api/v1/jobs/{job['id']}/events")
        seen += [await p.http.get("/api/v1/jobs/999"), await p.http.post("/api/v1/jobs/999/cancel")]
    texts = [response.text for response in seen] + [str(events)] + [r.getMessage() for r in caplog.records]
    for value in (mysql_user["password"], f"nope-{PASSWORD}"):
        assert not [text[:200] for text in texts if value in text]
    assert "${ROWLOOM_SECRET_DB}" in seen[4].text  # the stored text keeps the reference


async def test_the_secrets_file_setting_reads_name_value_lines(tmp_path: Path) -> None:
    from core.job_secrets import job_secrets

    path = tmp_path / "secrets.env"
    path.write_text("ROWLOOM_SECRET_X=from-file\nROWLOOM_SECRET_Y='quoted value'\n")
    resolver = job_secrets(Settings(secrets_file=path))
    assert resolver.resolve("${ROWLOOM_SECRET_X}") == "from-file"
    assert resolver.resolve("${ROWLOOM_SECRET_Y}") == "quoted value"


async def test_an_unset_secret_is_named_in_the_log_not_in_the_job(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    """A job's error is read by every read key: the name of the missing variable goes to the server's log."""
    from core.job_secrets import job_connections

    connections = job_connections(Settings(_env_file=None, allowed_db_hosts=["127.0.0.1"]))  # type: ignore[call-arg]
    inline = MysqlConnection(host="127.0.0.1", password="${ROWLOOM_SECRET_NEVER_SET_ANYWHERE}", database="d")
    with pytest.raises(InputError) as missing:
        await connections.connect(inline)
    assert str(missing.value) == "a secret the spec needs is not set on the server (its log names it)"
    assert any("ROWLOOM_SECRET_NEVER_SET_ANYWHERE" in r.getMessage() for r in caplog.records)


def test_a_pool_that_could_not_reset_a_connection_in_an_outage_says_so_in_one_warning_line() -> None:
    import asyncmy.errors

    from core.logs import PoolResetInOutage

    def record(error: BaseException) -> logging.LogRecord:
        return logging.LogRecord("sqlalchemy.pool.impl.AsyncAdaptedQueuePool", logging.ERROR, __file__, 1,
                                 "Exception during reset or similar", None, (type(error), error, None))

    lost = record(asyncmy.errors.OperationalError(2013, "Lost connection to MySQL server during query"))
    wrong = record(asyncmy.errors.ProgrammingError(1064, "You have an error in your SQL syntax"))
    assert PoolResetInOutage().filter(lost) and PoolResetInOutage().filter(wrong)
    assert (lost.levelno, lost.exc_info) == (logging.WARNING, None) and "Lost connection" in lost.getMessage()
    assert wrong.levelno == logging.ERROR and wrong.exc_info is not None  # not an outage: the traceback stays
