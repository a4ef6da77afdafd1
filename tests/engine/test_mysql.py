"""MySQL/MariaDB tables as source and write-back sink (real MariaDB on 127.0.0.1)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from engine.errors import InputError
from engine.gateway.openai_client import OpenAIClient
from engine.run import run_spec
from engine.spec import load_spec
from tests.support.engine_helpers import cosine, expected_summary, make_spec, tickets
from tests.support.fake_upstream import FakeUpstream, fake_vector
from tests.support.services import execute, mysql_url

pytestmark = pytest.mark.mysql


@pytest.fixture
async def mysql() -> AsyncIterator[dict[str, Any]]:
    """Connection settings of the test database; the tables a test makes are dropped after it."""
    parsed = urlparse(mysql_url().replace("+asyncmy", ""))
    settings = {"host": parsed.hostname, "port": parsed.port or 3306, "user": parsed.username or "root",
                "password": parsed.password or "", "database": parsed.path.lstrip("/")}
    yield settings
    await execute(settings, "DROP TABLE IF EXISTS engine_tickets", "DROP TABLE IF EXISTS engine_nokey")




def source_flow(mysql: dict[str, Any], table: str, extra: str = "") -> str:
    connection = f"{{host: {mysql['host']}, port: {mysql['port']}, user: {mysql['user']}, " \
                 f"password: '{mysql['password']}', database: {mysql['database']}}}"
    return f"{{kind: mysql, connection: {connection}, table: {table}, key: id, batch_size: 25{extra}}}"


async def test_table_rows_are_answered_and_written_back_by_key(tmp_path: Path, mysql: dict[str, Any]) -> None:
    frame = tickets(120)
    await execute(mysql, "DROP TABLE IF EXISTS engine_tickets",
                  "CREATE TABLE engine_tickets (id INT PRIMARY KEY, ticket VARCHAR(20), subject VARCHAR(200), "
                  "body TEXT NULL, ai_category VARCHAR(40) NULL, ai_summary VARCHAR(200) NULL) CHARSET utf8mb4",
                  "INSERT INTO engine_tickets (id, ticket, subject, body, ai_category, ai_summary) "
                  "VALUES (%s, %s, %s, %s, %s, %s)",
                  rows=[(i * 3, r["id"], r["subject"], r["body"],
                         *(("business", "kept") if i % 20 == 0 else (None, None)))
                        for i, r in enumerate(frame.iter_rows(named=True))])
    spec = make_spec(source=source_flow(mysql, "engine_tickets", ", where: 'id < 300'"))
    async with FakeUpstream() as up:
        client = OpenAIClient(up.base_url)
        outcome = await run_spec(spec, client=client, base_dir=tmp_path, work_dir=tmp_path / "w")
        await client.aclose()
    rows = await execute(mysql, "SELECT id, subject, body, ai_category, ai_summary FROM engine_tickets ORDER BY id")
    assert outcome.progress.total == 100
    answered = 0
    for id_, subject, body, category, summary in rows:
        if (id_ // 3) % 20 == 0:
            assert (category, summary) == ("business", "kept")  # outputs already filled: skipped, kept
        elif id_ >= 300:
            assert summary is None  # outside the WHERE: untouched
        elif body is None:
            assert summary is None  # an empty input: skipped
        else:
            assert summary == expected_summary(spec, {"subject": subject, "body": body})
            assert category in ("technical", "business", "general")
            answered += 1
    assert answered == outcome.progress.done == up.stats.requests


async def test_table_without_the_key_column_fails_before_any_request(tmp_path: Path,
                                                                     mysql: dict[str, Any]) -> None:
    await execute(mysql, "DROP TABLE IF EXISTS engine_nokey",
                  "CREATE TABLE engine_nokey (ticket VARCHAR(20), subject TEXT, body TEXT, ai_category TEXT, "
                  "ai_summary TEXT)")
    spec = make_spec(source=source_flow(mysql, "engine_nokey"))
    async with FakeUpstream() as up:
        client = OpenAIClient(up.base_url)
        with pytest.raises(InputError, match="key column 'id' not found"):
            await run_spec(spec, client=client, base_dir=tmp_path, work_dir=tmp_path / "w")
        missing = make_spec(source=source_flow(mysql, "engine_missing"))
        with pytest.raises(InputError, match="no such table"):
            await run_spec(missing, client=client, base_dir=tmp_path, work_dir=tmp_path / "w")
        await client.aclose()
    assert up.stats.requests == 0


async def test_a_where_reads_exactly_the_rows_it_names(tmp_path: Path, mysql: dict[str, Any]) -> None:
    """The condition is rebuilt with its values as query parameters: quotes, % and \\ in values mean themselves."""
    rows = [(i, f"T{i}", subject, "body") for i, subject in enumerate(
        ["it's 50% off", "50% off", "a\\b", "x", "y", "z", "Printer 1", "Printer 12", "Printer 2", None])]
    await execute(mysql, "DROP TABLE IF EXISTS engine_tickets",
                  "CREATE TABLE engine_tickets (id INT PRIMARY KEY, ticket VARCHAR(20), subject VARCHAR(200) NULL, "
                  "body TEXT NULL, ai_category VARCHAR(40) NULL, ai_summary VARCHAR(200) NULL) CHARSET utf8mb4",
                  "INSERT INTO engine_tickets (id, ticket, subject, body) VALUES (%s, %s, %s, %s)", rows=rows)
    where = ("\"subject = 'it''s 50% off' OR subject LIKE 'Printer 1%' OR (id BETWEEN 2 AND 3 AND "
             "NOT subject IN ('x', 'z')) OR ticket = \\\"T9\\\"\"")
    spec = make_spec(source=source_flow(mysql, "engine_tickets", f", where: {where}"))
    async with FakeUpstream() as up:
        client = OpenAIClient(up.base_url)
        outcome = await run_spec(spec, client=client, base_dir=tmp_path, work_dir=tmp_path / "w")
        unknown = make_spec(source=source_flow(mysql, "engine_tickets", ", where: 'nope = 1 OR id > 0'"))
        with pytest.raises(InputError, match="where names column\\(s\\) not in the table: 'nope'"):
            await run_spec(unknown, client=client, base_dir=tmp_path, work_dir=tmp_path / "w2")
        await client.aclose()
    answered = await execute(mysql, "SELECT id FROM engine_tickets WHERE ai_summary IS NOT NULL ORDER BY id")
    assert [row[0] for row in answered] == [0, 2, 6, 7]  # row 9 (T9) has no subject: skipped, not answered
    assert outcome.progress.total == 5


async def test_missing_password_variable_is_named_not_printed(tmp_path: Path, mysql: dict[str, Any],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROWLOOM_TEST_NO_SUCH_PASSWORD", raising=False)
    flow = source_flow(mysql, "engine_tickets").replace(f"password: '{mysql['password']}'",
                                                        "password: '${ROWLOOM_TEST_NO_SUCH_PASSWORD}'")
    spec = make_spec(source=flow)
    with pytest.raises(InputError, match="ROWLOOM_TEST_NO_SUCH_PASSWORD is not set"):
        await run_spec(spec, client=OpenAIClient("http://127.0.0.1:9/v1"), base_dir=tmp_path, work_dir=tmp_path)


async def test_a_retrieve_step_searches_a_knowledge_table_in_mysql(tmp_path: Path, mysql: dict[str, Any]) -> None:
    articles = [(i, f"kb-{i}", f"Article {i} about error {i * 11 % 23}") for i in range(30)]
    await execute(mysql, "DROP TABLE IF EXISTS engine_kb",
                  "CREATE TABLE engine_kb (id INT PRIMARY KEY, doc VARCHAR(20), text TEXT) CHARSET utf8mb4",
                  "INSERT INTO engine_kb (id, doc, text) VALUES (%s, %s, %s)", rows=articles)
    (tmp_path / "q.csv").write_text("id,body\n1,error 5 again\n2,error 17 today\n", encoding="utf-8")
    knowledge = source_flow(mysql, "engine_kb").replace("batch_size: 25", "batch_size: 7")
    spec = load_spec(f"""name: kb
source: {{kind: csv, path: q.csv, key: id}}
steps:
  - {{id: embed, kind: embed, input: body, output: vector}}
  - {{id: find, kind: retrieve, query: vector, knowledge: {{source: {knowledge}, text: text, id: doc}},
     top_k: 3, output: context, ids_output: ids}}
sink: {{kind: jsonl, path: out.jsonl}}
""").spec
    try:
        async with FakeUpstream() as up:
            client = OpenAIClient(up.base_url, timeout_s=10)
            try:
                outcome = await run_spec(spec, client=client, base_dir=tmp_path, work_dir=tmp_path / "work")
            finally:
                await client.aclose()
    finally:
        await execute(mysql, "DROP TABLE IF EXISTS engine_kb")
    assert outcome.progress.done == 2
    by_doc = {doc: text for _, doc, text in articles}
    for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        query = fake_vector(row["body"])
        expected = sorted(by_doc, key=lambda doc: (-cosine(query, fake_vector(by_doc[doc])), int(doc[3:])))[:3]
        assert row["ids"] == expected  # every row of the table (read in batches of 7) was searched
        assert row["context"].startswith(f"[{expected[0]}] {by_doc[expected[0]]}")
