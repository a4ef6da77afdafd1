"""Bad input gets a clear 4xx in the one error shape, names the field, and changes nothing stored."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from api_server.main import create_app
from core.db import Database
from core.settings import Settings
from tests.support.keys import bearer
from tests.support.records import error_of, spec_text


async def test_malformed_yaml_names_line_and_column(client: httpx.AsyncClient, stored: Any) -> None:
    broken = spec_text(note="v2").replace("input: [subject, body]", "input: [subject, body")
    error = error_of(await client.post("/api/v1/workflows", json={"yaml": broken}), 422)
    assert error["field"] == "yaml"
    [detail] = error["details"]
    assert detail["line"] == 6 and detail["column"] >= 1
    assert "YAML syntax" in detail["message"]


async def test_spec_errors_name_field_line_and_column(client: httpx.AsyncClient, stored: Any) -> None:
    text = spec_text(note="v2").replace("  system:", "  sytem:").replace("kind: csv", "kind: cvs")
    error = error_of(await client.post("/api/v1/workflows", json={"yaml": text}), 422)
    details = {d["field"]: d for d in error["details"]}
    assert details["source"]["line"] == 3
    assert "unknown kind 'cvs'" in details["source"]["message"]
    raw = await client.post("/api/v1/workflows", content=spec_text(note="x").replace("  system:", "  sytem:"),
                            headers={"Content-Type": "application/yaml"})
    [detail] = error_of(raw, 422)["details"]
    assert (detail["field"], detail["line"], detail["column"]) == ("prompt.sytem", 8, 3)


@pytest.mark.parametrize(("yaml", "field"), [
    ("", "yaml"),
    ("- just\n- a list\n", "yaml"),
    ("source: {kind: csv, path: a.csv}\ncolumns: {input: [q], output: {a: b}}\n"
     "prompt: {template: 'x {nope}'}\nname: t\n", "prompt.template"),
])
async def test_other_invalid_specs(client: httpx.AsyncClient, stored: Any, yaml: str, field: str) -> None:
    error = error_of(await client.post("/api/v1/workflows", json={"yaml": yaml, "name": "other"}), 422)
    assert field in {error["field"], *(d["field"] for d in error["details"])}


async def test_bad_workflow_bodies(client: httpx.AsyncClient, stored: Any) -> None:
    no_name = spec_text().replace("name: ticket-triage\n", "")
    assert error_of(await client.post("/api/v1/workflows", json={"yaml": no_name}), 422)["field"] == "name"
    bad_name = await client.post("/api/v1/workflows", json={"yaml": spec_text(), "name": "has space"})
    assert error_of(bad_name, 422)["field"] == "name"
    unknown = await client.post("/api/v1/workflows", json={"yaml": spec_text(), "colour": "red"})
    assert error_of(unknown, 422)["field"] == "colour"
    not_json = await client.post("/api/v1/workflows", content=b"{nope",
                                 headers={"Content-Type": "application/json"})
    assert error_of(not_json, 422)["field"] == "body"
    not_utf8 = await client.post("/api/v1/workflows", content=b"name: \xff\xfe",
                                 headers={"Content-Type": "application/yaml"})
    assert error_of(not_utf8, 422)["field"] == "body"
    error_of(await client.post("/api/v1/workflows", content=b"x", headers={"Content-Type": "image/png"}), 415)
    bad_tag = await client.patch("/api/v1/workflows/ticket-triage", json={"tags": ["no spaces allowed"]})
    assert error_of(bad_tag, 422)["field"] == "tags"


async def test_bad_job_bodies(client: httpx.AsyncClient, stored: Any) -> None:
    unknown = await client.post("/api/v1/jobs", json={"workflow": "nope"})
    assert error_of(unknown, 422)["field"] == "workflow"
    assert error_of(await client.post("/api/v1/jobs", json={"workflow": 999999}), 422)["field"] == "workflow"
    no_version = await client.post("/api/v1/jobs", json={"workflow": "ticket-triage", "version": 9})
    assert error_of(no_version, 422)["field"] == "version"
    priority = await client.post("/api/v1/jobs", json={"workflow": "ticket-triage", "priority": "asap"})
    assert error_of(priority, 422)["field"] == "priority"
    params = await client.post("/api/v1/jobs", json={"workflow": "ticket-triage",
                                                     "params": {"concurrency": {"in_flight": 0}}})
    assert error_of(params, 422)["details"][0]["field"] == "params.concurrency.in_flight"
    typo = await client.post("/api/v1/jobs", json={"workflow": "ticket-triage", "params": {"sorce": {}}})
    assert error_of(typo, 422)["details"][0]["field"] == "params.sorce"
    extra = await client.post("/api/v1/jobs", json={"workflow": "ticket-triage", "prio": "high"})
    assert error_of(extra, 422)["field"] == "prio"


@pytest.mark.parametrize(("path", "params", "field"), [
    ("/api/v1/jobs", {"status": "bogus"}, "status.0"),
    ("/api/v1/jobs", {"status": "queued,nope"}, "status.1"),
    ("/api/v1/jobs", {"limit": 0}, "limit"),
    ("/api/v1/jobs", {"limit": 1001}, "limit"),
    ("/api/v1/jobs", {"offset": -1}, "offset"),
    ("/api/v1/jobs", {"created_after": "yesterday"}, "created_after"),
    ("/api/v1/jobs", {"order_by": "params desc"}, "order_by"),
    ("/api/v1/jobs", {"order_by": "created_at sideways"}, "order_by"),
    ("/api/v1/jobs", {"stauts": "queued"}, "stauts"),
    ("/api/v1/jobs", {"workflow": "nope"}, "workflow"),
    ("/api/v1/jobs", {"priority": "asap"}, "priority.0"),
    ("/api/v1/workflows", {"is_active": "maybe"}, "is_active"),
    ("/api/v1/workflows", {"order_by": "latest_version"}, "order_by"),
    ("/api/v1/workflows", {"tags": "x"}, "tags"),
    ("/api/v1/jobs/1", {"verbose": "1"}, "verbose"),
    ("/api/v1/workflows/ticket-triage/versions/1", {"format": "xml"}, "format"),
])
async def test_bad_query_parameters_are_named(client: httpx.AsyncClient, stored: Any, path: str,
                                              params: dict[str, Any], field: str) -> None:
    error = error_of(await client.get(path, params=params), 422)
    assert error["field"] == field


async def test_unknown_things_are_404(client: httpx.AsyncClient, stored: Any) -> None:
    for path in ("/api/v1/jobs/424242", "/api/v1/workflows/nope", "/api/v1/workflows/ticket-triage/versions/7",
                 "/no/such/route"):
        assert error_of(await client.get(path), 404)["code"] == "not_found"
    error_of(await client.post("/api/v1/jobs/424242/cancel"), 404)
    assert error_of(await client.get("/api/v1/jobs/abc"), 422)["field"] == "job_id"
    error_of(await client.put("/api/v1/jobs"), 405)


async def test_oversized_bodies_are_413(client: httpx.AsyncClient, stored: Any, settings: Settings) -> None:
    huge = spec_text(note="x" * settings.max_body_bytes)
    error = error_of(await client.post("/api/v1/workflows", json={"yaml": huge}), 413)
    assert error["field"] == "body"

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(settings.max_body_bytes // 1000 + 2):
            yield b"#" * 1000

    error_of(await client.post("/api/v1/workflows", content=chunks(),
                               headers={"Content-Type": "application/yaml"}), 413)


async def test_a_crash_is_a_500_without_internals(tmp_path: Any) -> None:
    broken = Database(f"sqlite+aiosqlite:///{tmp_path}/missing-dir/x.db")
    app = create_app(Settings(database_url=broken.url), broken)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        response = await http.get("/api/v1/jobs", headers=bearer("rlk_any"))  # looking the key up fails
    error = error_of(response, 500)
    assert error["code"] == "internal"
    assert "sqlite" not in response.text.lower() and "missing-dir" not in response.text
    await broken.dispose()


async def test_ids_beyond_what_a_database_holds_are_a_4xx_not_a_crash(client: httpx.AsyncClient,
                                                                      stored: Any) -> None:
    huge = "341700652173588955136"  # > 2**63: once an OverflowError deep in the driver, a 500
    for method, path in (("GET", f"/api/v1/jobs/{huge}"), ("POST", f"/api/v1/jobs/{huge}/retry"),
                         ("GET", f"/api/v1/jobs/{huge}/progress"), ("GET", f"/api/v1/jobs/{huge}/items"),
                         ("DELETE", f"/admin/keys/{huge}"), ("GET", f"/api/v1/workflows/{huge}"),
                         ("GET", f"/api/v1/workflows/ticket-triage/versions/{huge}"),
                         ("GET", f"/api/v1/jobs?version={huge}"), ("GET", f"/api/v1/jobs?offset={huge}0")):
        response = await client.request(method, path)
        assert response.status_code in (404, 422), (method, path, response.text)
    error_of(await client.post("/api/v1/jobs", json={"workflow": "ticket-triage", "version": int(huge)}), 422)


async def test_the_progress_of_a_missing_job_is_a_404_before_the_stream(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/jobs/999/progress")
    assert error_of(response, 404)["code"] == "not_found"
    assert response.headers["content-type"].startswith("application/json")
