"""Database connections are the operator's: a stored workflow names one, never a host it chooses, and no
login gives a password away in clear text."""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

import asyncmy
import httpx
import pytest

from api_server.main import create_app
from core.gateway_router import process_router
from core.settings import Settings
from engine.errors import InputError, SpecError
from engine.sources.mysql_connection import Connections
from engine.spec.connections import host_allowed, load_connections
from engine.spec.io_models import MysqlConnection
from engine.spec.secrets import Secrets
from tests.support.engine_helpers import SPEC, tickets
from tests.support.fake_mysql import ClearTextServer, SilentServer
from tests.support.fake_upstream import FakeUpstream
from tests.support.keys import bearer
from tests.support.services import execute, mysql_fields, write_connections
from tests.support.worker_helpers import platform, wait_for, wait_status

PASSWORD = "pw-" + secrets.token_hex(12)


def mysql_workflow(connection: str, *, name: str = "triage", table: str = "named_tickets", model: str = "auto") -> str:
    """The tests' triage workflow over a MariaDB table, through `connection` (a name or an inline mapping)."""
    return SPEC.format(source=f"{{kind: mysql, connection: {connection}, table: {table}, key: id}}", in_flight=4,
                       api=1, content=1, extra=f"model: {{name: {model}}}").replace("name: triage", f"name: {name}")


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """The operator names one connection, `warehouse`; no inline host is allowed."""
    return Settings(database_url=database_url, redis_url=None,
                    connections_file=write_connections(tmp_path / "connections.yaml", warehouse=mysql_fields()))


@pytest.mark.parametrize("plugin", ["mysql_clear_password", "dialog"])
async def test_a_server_asking_for_the_password_in_clear_text_gets_nothing(plugin: str) -> None:
    async with ClearTextServer(plugin) as server:
        connections = Connections(Secrets({"DB_PASSWORD": PASSWORD}))
        inline = MysqlConnection(host="127.0.0.1", port=server.port, password="${DB_PASSWORD}", database="x")
        with pytest.raises(InputError, match="asked for the password in clear text; refused") as refused:
            await connections.connect(inline)
    assert server.logins == 1 and server.received == []  # the client hung up instead of answering the switch
    assert PASSWORD not in str(refused.value)


def test_clear_text_passwords_can_be_allowed_only_over_tls() -> None:
    with pytest.raises(SpecError, match="allow_cleartext_password needs tls") as refused:
        load_connections("connections:\n  ldap: {host: db, database: x, allow_cleartext_password: true}\n")
    assert refused.value.issues[0].line == 2
    named = load_connections("connections:\n  ldap: {host: db, database: x, tls: verified, "
                             "allow_cleartext_password: true}\n")
    assert named["ldap"].allow_cleartext_password


@pytest.mark.parametrize(("entry", "host", "port", "allowed"), [
    ("db.internal", "DB.internal", 3307, True), ("db.internal:3306", "db.internal", 3306, True),
    ("db.internal:3306", "db.internal", 3307, False), ("10.0.0.5", "10.0.0.50", 3306, False),
    ("[::1]:3306", "::1", 3306, True), ("::1", "::1", 3306, True), ("db", "db.internal", 3306, False)])
def test_allowed_hosts_match_a_host_and_an_optional_port(entry: str, host: str, port: int, allowed: bool) -> None:
    assert host_allowed(host, port, [entry]) is allowed


def _problems(response: httpx.Response) -> list[tuple[str, str]]:
    assert response.status_code == 422, response.text
    return [(d["field"], d["message"]) for d in response.json()["error"]["details"]]


async def test_a_workflow_may_not_choose_a_database_host(client: httpx.AsyncClient) -> None:
    inline = "{host: 10.1.2.3, port: 3306, user: root, password: '${ROWLOOM_SECRET_DB}', database: test}"
    [(field, message)] = _problems(await client.post("/api/v1/workflows", json={"yaml": mysql_workflow(inline)}))
    assert field == "source.connection.host" and "connection: NAME" in message
    steps = ("source: {kind: inline, rows: [{id: 1, q: a}]}\nsteps:\n  - {id: e, kind: embed, input: q, output: v}\n"
             "  - id: r\n    kind: retrieve\n    query: v\n    output: ctx\n    knowledge:\n"
             f"      source: {{kind: mysql, connection: {inline}, table: kb, key: id}}\n      text: t\n")
    problems = _problems(await client.post("/api/v1/workflows", json={"yaml": "name: s\n" + steps}))
    assert [f for f, _ in problems] == ["steps.1.knowledge.source.connection.host"]
    sink = mysql_workflow("warehouse") + f"sink: {{kind: mysql, connection: {inline}, table: t, key: id}}\n"
    assert [f for f, _ in _problems(await client.post("/api/v1/workflows", json={"yaml": sink}))] == [
        "sink.connection.host"]
    unknown = _problems(await client.post("/api/v1/workflows", json={"yaml": mysql_workflow("elsewhere")}))
    assert unknown == [("source.connection", "no connection named 'elsewhere' on this server (configured: warehouse)")]


async def test_params_may_not_point_a_named_connection_elsewhere(client: httpx.AsyncClient) -> None:
    assert (await client.post("/api/v1/workflows", json={"yaml": mysql_workflow("warehouse")})).status_code == 201
    evil = {"host": "127.0.0.1", "port": 1, "database": "test", "password": "${ROWLOOM_SECRET_DB}"}
    params = {"source": {"connection": evil}}
    response = await client.post("/api/v1/jobs", json={"workflow": "triage", "params": params})
    assert [f for f, _ in _problems(response)] == ["params.source.connection.host"]


@pytest.fixture
async def named_table() -> Any:
    """`named_tickets` in the test MariaDB, and a user with a password that only the operator's file holds."""
    root = mysql_fields()
    await execute(root, "DROP TABLE IF EXISTS named_tickets",
                  "CREATE TABLE named_tickets (id VARCHAR(20) PRIMARY KEY, subject VARCHAR(200), body TEXT NULL, "
                  "ai_category VARCHAR(40) NULL, ai_summary VARCHAR(200) NULL) CHARSET utf8mb4",
                  "DROP USER IF EXISTS 'rowloom_named'@'%'",
                  f"CREATE USER 'rowloom_named'@'%' IDENTIFIED BY '{PASSWORD}'",
                  "GRANT SELECT, UPDATE ON test.named_tickets TO 'rowloom_named'@'%'",
                  "INSERT INTO named_tickets (id, subject, body) VALUES (%s, %s, %s)",
                  rows=list(tickets(8).select("id", "subject", "body").iter_rows()))
    yield root
    await execute(root, "DROP TABLE IF EXISTS named_tickets", "DROP USER IF EXISTS 'rowloom_named'@'%'")


@pytest.mark.mysql
async def test_a_named_connection_runs_and_its_secret_resolves_only_inside_it(
        database_url: str, tmp_path: Path, named_table: dict[str, Any]) -> None:
    operator, data = tmp_path / "operator", tmp_path / "data"
    operator.mkdir()
    data.mkdir()
    (operator / "secrets.env").write_text(f"WAREHOUSE_PASSWORD={PASSWORD}\nROWLOOM_SECRET_WAREHOUSE={PASSWORD}\n")
    warehouse = {**named_table, "user": "rowloom_named", "password": "${ROWLOOM_SECRET_WAREHOUSE}"}
    connections = write_connections(operator / "connections.yaml", warehouse=warehouse)
    host = named_table["host"]
    borrowed = (f"{{host: '{host}', port: {named_table['port']}, user: rowloom_named, "
                "password: '${ROWLOOM_SECRET_WAREHOUSE}', database: test}")
    async with FakeUpstream() as upstream, \
            platform(database_url=database_url, data_dir=data, upstream_url=upstream.base_url,
                     connections_file=connections, secrets_file=operator / "secrets.env",
                     allowed_db_hosts=[host]) as p:
        for yaml in (mysql_workflow("warehouse"), mysql_workflow(borrowed, name="borrowed")):
            assert (await p.http.post("/api/v1/workflows", json={"yaml": yaml})).status_code == 201
        done = (await p.http.post("/api/v1/jobs", json={"workflow": "triage"})).json()
        refused = (await p.http.post("/api/v1/jobs", json={"workflow": "borrowed"})).json()
        done = await wait_status(p.http, done["id"], "completed")
        refused = await wait_status(p.http, refused["id"], "failed")
        download = await p.http.get(f"/api/v1/jobs/{done['id']}/output")
    assert done["counts"]["done"] == 8
    assert done["output"] == "mysql test.named_tickets"  # a table, named without its connection's secrets
    assert download.status_code == 409 and "no file to download" in download.json()["error"]["message"]
    assert "belongs to a connection the operator named" in refused["error"] and PASSWORD not in refused["error"]
    rows = await execute(named_table, "SELECT COUNT(*) FROM named_tickets WHERE ai_summary IS NOT NULL")
    assert rows[0][0] == 8


def _silent(port: int, **timeouts: float) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": port, "user": "u", "database": "d", **timeouts}


async def test_a_server_that_never_speaks_fails_the_job_at_its_deadline(database_url: str, tmp_path: Path) -> None:
    async with SilentServer() as silent, FakeUpstream() as upstream:
        silent_db = _silent(silent.port, connect_timeout_s=0.5)
        connections = write_connections(tmp_path / "connections.yaml", silent=silent_db)
        async with platform(database_url=database_url, data_dir=tmp_path, upstream_url=upstream.base_url,
                            connections_file=connections) as p:
            job_id = await p.start_job(yaml=mysql_workflow("silent"))
            job = await wait_status(p.http, job_id, "failed")
    assert job["error"] == "mysql connection 'silent': cannot connect: no answer within 0.5s"
    assert silent.connections >= 1 and upstream.stats.requests == 0


async def test_cancel_interrupts_a_run_blocked_on_a_silent_server(database_url: str, tmp_path: Path) -> None:
    async with SilentServer() as silent, FakeUpstream() as upstream:
        silent_db = _silent(silent.port, connect_timeout_s=600)
        connections = write_connections(tmp_path / "connections.yaml", silent=silent_db)
        # (the job's background estimate ends at its own deadline; the in-process transport waits for it)
        async with platform(database_url=database_url, data_dir=tmp_path, upstream_url=upstream.base_url,
                            connections_file=connections, estimate_timeout_s=0.5) as p:
            job_id = await p.start_job(yaml=mysql_workflow("silent"))
            await wait_for(lambda: _connected(silent), what="the job to connect")
            cancelled_at = time.monotonic()
            assert (await p.http.post(f"/api/v1/jobs/{job_id}/cancel")).status_code == 200
            await wait_status(p.http, job_id, "cancelled")
            took = time.monotonic() - cancelled_at
            events = (await p.http.get(f"/api/v1/jobs/{job_id}/events")).json()["items"]
    assert took < 5.0, took
    assert "interrupted after 3 s of waiting for its source or sink" in events[-1]["message"]


async def _connected(server: SilentServer) -> bool:
    return server.connections > 0


async def test_an_estimate_answers_within_its_deadline(settings: Settings, database: Any, admin_key: str,
                                                      tmp_path: Path) -> None:
    async with SilentServer() as silent:
        connections = write_connections(tmp_path / "silent.yaml", silent=_silent(silent.port, connect_timeout_s=600))
        app = create_app(settings.model_copy(update={"connections_file": connections, "estimate_timeout_s": 0.5}),
                         database, process_router(settings))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t",
                                     headers=bearer(admin_key), timeout=30) as http:
            assert (await http.post("/api/v1/workflows", json={"yaml": mysql_workflow("silent")})).status_code == 201
            response = await http.post("/api/v1/jobs/estimate", json={"workflow": "triage"})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "source"
    assert response.json()["error"]["message"] == "the source did not answer within 0.5s"


@pytest.mark.mysql
async def test_a_query_that_does_not_end_fails_at_the_deadline(database_url: str, tmp_path: Path,
                                                               named_table: dict[str, Any]) -> None:
    """Another session holds the table locked: the job's read waits, and fails at the connection's deadline."""
    warehouse = {**named_table, "query_timeout_s": 1}
    connections = write_connections(tmp_path / "connections.yaml", warehouse=warehouse)
    locker = await asyncmy.connect(**named_table, autocommit=True)
    try:
        async with locker.cursor() as cursor:
            await cursor.execute("LOCK TABLES named_tickets WRITE")
        async with FakeUpstream() as upstream, \
                platform(database_url=database_url, data_dir=tmp_path, upstream_url=upstream.base_url,
                         connections_file=connections) as p:
            job = await wait_status(p.http, await p.start_job(yaml=mysql_workflow("warehouse")), "failed")
    finally:
        locker.close()
    assert job["error"] == "mysql connection 'warehouse': a query did not end within 1s"


@pytest.mark.mysql
async def test_a_database_error_reaches_the_job_as_its_class_and_the_log_as_its_text(
        database_url: str, tmp_path: Path, named_table: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    """The server's text can carry what a query read (an error-based injection's whole point): the job says the
    class of the problem and the error number; the server's log has the text."""
    await execute(named_table, "DROP USER IF EXISTS 'rowloom_reader'@'%'",
                  f"CREATE USER 'rowloom_reader'@'%' IDENTIFIED BY '{PASSWORD}'",
                  "GRANT SELECT ON test.named_tickets TO 'rowloom_reader'@'%'")
    reader = {**named_table, "user": "rowloom_reader", "password": PASSWORD}
    connections = write_connections(tmp_path / "connections.yaml", reader=reader)
    try:
        async with FakeUpstream() as upstream, \
                platform(database_url=database_url, data_dir=tmp_path, upstream_url=upstream.base_url,
                         connections_file=connections) as p:
            job = await wait_status(p.http, await p.start_job(yaml=mysql_workflow("reader")), "failed")
    finally:
        await execute(named_table, "DROP USER IF EXISTS 'rowloom_reader'@'%'")
    assert job["error"] == ("mysql connection 'reader': a write failed (refused by the server, error 1142; details "
                            "in the server log)")
    assert any("UPDATE command denied" in record.getMessage() for record in caplog.records)
