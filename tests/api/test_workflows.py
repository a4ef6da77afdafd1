"""Workflow definitions over the API: versions, byte-for-byte YAML, metadata, deletion."""

from __future__ import annotations

import hashlib

import httpx

from tests.support.records import make_job, make_workflow, spec_text


async def test_create_stores_yaml_byte_for_byte_with_its_hash(client: httpx.AsyncClient) -> None:
    text = spec_text(note="kept: comments, spacing   and order")
    response = await client.post("/api/v1/workflows",
                                 json={"yaml": text, "description": "tickets", "tags": ["support", "b"]})
    assert response.status_code == 201
    body = response.json()
    assert body["created"] is True
    assert body["workflow"]["name"] == "ticket-triage"
    assert body["workflow"]["tags"] == ["b", "support"]
    assert body["version"]["version"] == 1
    assert body["version"]["sha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert body["version"]["spec"]["prompt"]["required_fields"] == ["category"]
    assert response.headers["location"].endswith("/versions/1")

    raw = await client.get("/api/v1/workflows/ticket-triage/versions/1?format=yaml")
    assert raw.status_code == 200
    assert raw.content == text.encode()
    assert raw.headers["content-type"].startswith("application/yaml")
    by_accept = await client.get("/api/v1/workflows/ticket-triage/versions/1",
                                 headers={"Accept": "application/yaml"})
    assert by_accept.content == text.encode()
    as_json = await client.get(f"/api/v1/workflows/{body['workflow']['id']}/versions/1")
    assert as_json.json()["yaml"] == text


async def test_raw_yaml_body_with_unicode_is_kept_exactly(client: httpx.AsyncClient) -> None:
    text = spec_text("工单分类", note="中文注释 ✓").replace("name: 工单分类", "name: tickets_zh")
    response = await client.post("/api/v1/workflows", content=text.encode(),
                                 headers={"Content-Type": "application/yaml"})
    assert response.status_code == 201, response.text
    assert response.json()["workflow"]["name"] == "tickets_zh"
    raw = await client.get("/api/v1/workflows/tickets_zh/versions/1", params={"format": "yaml"})
    assert raw.content == text.encode()


async def test_new_yaml_makes_next_version_and_identical_yaml_returns_existing(client: httpx.AsyncClient) -> None:
    await make_workflow(client)
    second = await client.post("/api/v1/workflows", json={"yaml": spec_text(note="v2")})
    assert second.status_code == 201
    assert second.json()["version"]["version"] == 2
    again = await client.post("/api/v1/workflows", json={"yaml": spec_text()})
    assert again.status_code == 200
    assert again.json()["created"] is False
    assert again.json()["version"]["version"] == 1
    versions = (await client.get("/api/v1/workflows/ticket-triage/versions")).json()
    assert [v["version"] for v in versions] == [2, 1]
    assert "yaml" not in versions[0]
    workflow = (await client.get("/api/v1/workflows/ticket-triage")).json()
    assert workflow["latest_version"] == 2


async def test_name_in_body_wins_over_spec_name(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/workflows", json={"name": "triage-copy", "yaml": spec_text()})
    assert response.status_code == 201
    assert response.json()["workflow"]["name"] == "triage-copy"


async def test_patch_edits_metadata_only(client: httpx.AsyncClient) -> None:
    created = await make_workflow(client, tags=["a"])
    response = await client.patch("/api/v1/workflows/ticket-triage",
                                  json={"description": "new words", "tags": ["x", "y"], "is_active": False})
    assert response.status_code == 200
    body = response.json()
    assert (body["description"], body["tags"], body["is_active"]) == ("new words", ["x", "y"], False)
    assert body["updated_at"] >= created["workflow"]["updated_at"]
    refused = await client.patch("/api/v1/workflows/ticket-triage", json={"yaml": spec_text(note="x")})
    assert refused.status_code == 422
    assert refused.json()["error"]["field"] == "yaml"
    assert (await client.get("/api/v1/workflows/ticket-triage")).json()["latest_version"] == 1


async def test_version_can_be_deactivated_and_is_then_not_picked(client: httpx.AsyncClient) -> None:
    await make_workflow(client)
    await client.post("/api/v1/workflows", json={"yaml": spec_text(note="v2")})
    off = await client.patch("/api/v1/workflows/ticket-triage/versions/2", json={"is_active": False})
    assert off.status_code == 200
    assert off.json()["is_active"] is False
    job = await make_job(client)
    assert job["version"] == 1
    explicit = await client.post("/api/v1/jobs", json={"workflow": "ticket-triage", "version": 2})
    assert explicit.status_code == 409
    assert "inactive" in explicit.json()["error"]["message"]


async def test_delete_is_refused_while_jobs_reference_the_workflow(client: httpx.AsyncClient) -> None:
    await make_workflow(client)
    job = await make_job(client)
    refused = await client.delete("/api/v1/workflows/ticket-triage")
    assert refused.status_code == 409
    assert "deactivate" in refused.json()["error"]["message"]
    assert (await client.get("/api/v1/workflows/ticket-triage")).status_code == 200
    await client.post(f"/api/v1/jobs/{job['id']}/cancel")
    assert (await client.delete(f"/api/v1/jobs/{job['id']}")).status_code == 204
    assert (await client.delete("/api/v1/workflows/ticket-triage")).status_code == 204
    gone = await client.get("/api/v1/workflows/ticket-triage")
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "not_found"


async def test_list_filters_by_name_tag_and_activity(client: httpx.AsyncClient) -> None:
    await make_workflow(client, "alpha-one", tags=["red", "big"])
    await make_workflow(client, "alpha-two", tags=["red"])
    await make_workflow(client, "beta", tags=["big"], is_active=False)

    async def names(**params: object) -> list[str]:
        response = await client.get("/api/v1/workflows", params=params)
        assert response.status_code == 200, response.text
        return [w["name"] for w in response.json()["items"]]

    assert await names(order_by="name") == ["alpha-one", "alpha-two", "beta"]
    assert await names(name="alpha", order_by="name desc") == ["alpha-two", "alpha-one"]
    assert await names(tag="red", order_by="name") == ["alpha-one", "alpha-two"]
    assert await names(tag="red,big") == ["alpha-one"]
    assert await names(is_active="false") == ["beta"]
    assert await names(created_after="2999-01-01T00:00:00Z") == []
