"""Jobs over the API: trigger, read, state transitions through the one table, idempotency, deletion."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import update

from core.db import Database
from core.models import Job, JobStatus, Scope
from core.models.job_states import ACTIONS, TRANSITIONS, JobAction
from tests.support.keys import bearer, new_key
from tests.support.records import make_job, make_workflow, spec_text


async def set_status(database: Database, job_id: int, status: JobStatus) -> None:
    """Put a job in a state that only a worker could reach (no worker exists in this issue)."""
    async with database.session() as session:
        await session.exec(update(Job).where(Job.id == job_id).values(status=status))  # type: ignore[arg-type]
        await session.commit()


async def test_trigger_by_name_or_id_records_a_queued_job(client: httpx.AsyncClient) -> None:
    workflow = await make_workflow(client)
    job = await make_job(client, name="november", priority="high", params={"source": {"path": "other.csv"}})
    assert job["status"] == "queued"
    assert job["workflow_name"] == "ticket-triage"
    assert job["version"] == 1
    assert job["priority"] == "high"
    assert job["params"] == {"source": {"path": "other.csv"}}
    assert job["counts"] == {"total": None, "done": 0, "failed": 0, "skipped": 0, "cached": 0}
    assert job["started_at"] is None and job["completed_at"] is None and job["error"] is None
    by_id = await make_job(client, workflow=workflow["workflow"]["id"])
    assert by_id["name"] == "ticket-triage"
    fetched = await client.get(f"/api/v1/jobs/{job['id']}")
    assert fetched.json() == job


async def test_default_version_is_the_newest_active(client: httpx.AsyncClient) -> None:
    await make_workflow(client)
    await client.post("/api/v1/workflows", json={"yaml": (await client.get(
        "/api/v1/workflows/ticket-triage/versions/1?format=yaml")).text + "# v2\n"})
    assert (await make_job(client))["version"] == 2
    assert (await make_job(client, version=1))["version"] == 1


@pytest.mark.parametrize(("action", "start", "expected"), [
    ("cancel", "queued", "cancelled"),
    ("cancel", "running", "cancelling"),
    ("cancel", "paused", "cancelled"),
    ("pause", "queued", "paused"),
    ("pause", "running", "paused"),
    ("resume", "paused", "queued"),
    ("retry", "failed", "queued"),
    ("retry", "cancelled", "queued"),
])
async def test_legal_actions_move_the_job(client: httpx.AsyncClient, database: Database,
                                          action: str, start: str, expected: str) -> None:
    await make_workflow(client)
    job = await make_job(client)
    await set_status(database, job["id"], JobStatus(start))
    response = await client.post(f"/api/v1/jobs/{job['id']}/{action}")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == expected
    assert response.json()["updated_at"] > job["updated_at"]


async def test_every_illegal_action_is_409_naming_the_state_and_changes_nothing(
        client: httpx.AsyncClient, database: Database) -> None:
    await make_workflow(client)
    job = await make_job(client)
    for status in JobStatus:
        await set_status(database, job["id"], status)
        before = (await client.get(f"/api/v1/jobs/{job['id']}")).json()
        for action in JobAction:
            if status in ACTIONS[action]:
                continue
            response = await client.post(f"/api/v1/jobs/{job['id']}/{action.value}")
            assert response.status_code == 409, (action, status)
            error = response.json()["error"]
            assert error["code"] == "conflict"
            assert f"it is {status.value}" in error["message"]
            assert (await client.get(f"/api/v1/jobs/{job['id']}")).json() == before


def test_transition_table_covers_every_status_and_completed_is_final() -> None:
    assert set(TRANSITIONS) == set(JobStatus)
    assert TRANSITIONS[JobStatus.COMPLETED] == frozenset()
    for moves in ACTIONS.values():
        for source, target in moves.items():
            assert target in TRANSITIONS[source]


async def test_racing_actions_apply_once(client: httpx.AsyncClient) -> None:
    await make_workflow(client)
    job = await make_job(client)
    results = await asyncio.gather(*(client.post(f"/api/v1/jobs/{job['id']}/cancel") for _ in range(4)))
    assert sorted(r.status_code for r in results) == [200, 409, 409, 409]
    assert (await client.get(f"/api/v1/jobs/{job['id']}")).json()["status"] == "cancelled"
    events = (await client.get(f"/api/v1/jobs/{job['id']}/events")).json()["items"]
    assert [e["kind"] for e in events] == ["created", "cancelled"]


async def test_retry_clears_error_and_completion(client: httpx.AsyncClient, database: Database) -> None:
    await make_workflow(client)
    job = await make_job(client)
    async with database.session() as session:
        await session.exec(update(Job).where(Job.id == job["id"]).values(  # type: ignore[arg-type]
            status=JobStatus.FAILED, error="upstream gone", rows_done=7))
        await session.commit()
    retried = (await client.post(f"/api/v1/jobs/{job['id']}/retry")).json()
    assert retried["status"] == "queued"
    assert retried["error"] is None and retried["completed_at"] is None
    assert retried["counts"]["done"] == 7  # done rows are kept


async def test_idempotency_key_returns_first_job_and_rejects_other_body(client: httpx.AsyncClient) -> None:
    await make_workflow(client)
    body = {"workflow": "ticket-triage", "name": "once"}
    first = await client.post("/api/v1/jobs", json=body, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == 201
    again = await client.post("/api/v1/jobs", json=body, headers={"Idempotency-Key": "k-1"})
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    other = await client.post("/api/v1/jobs", json={**body, "name": "twice"}, headers={"Idempotency-Key": "k-1"})
    assert other.status_code == 409
    assert other.json()["error"]["field"] == "Idempotency-Key"
    listing = (await client.get("/api/v1/jobs", params={"offset": 0})).json()
    assert listing["total"] == 1


async def test_an_idempotency_key_belongs_to_the_api_key_that_sent_it(client: httpx.AsyncClient,
                                                                       database: Database) -> None:
    """Another key's request with the same Idempotency-Key makes its own job, and never sees the first one."""
    await make_workflow(client)
    body = {"workflow": "ticket-triage", "name": "mine"}
    mine = await client.post("/api/v1/jobs", json=body, headers={"Idempotency-Key": "shared-1"})
    other_key = await new_key(database, Scope.WRITE, name="someone else")
    theirs = await client.post("/api/v1/jobs", json={**body, "name": "theirs"},
                               headers={"Idempotency-Key": "shared-1", **bearer(other_key)})
    again = await client.post("/api/v1/jobs", json={**body, "name": "theirs"},
                              headers={"Idempotency-Key": "shared-1", **bearer(other_key)})
    assert mine.status_code == theirs.status_code == 201 and again.status_code == 200
    assert theirs.json()["id"] != mine.json()["id"] and again.json()["id"] == theirs.json()["id"]
    assert theirs.json()["name"] == "theirs"


async def test_concurrent_posts_with_one_key_make_one_job(client: httpx.AsyncClient) -> None:
    await make_workflow(client)
    body = {"workflow": "ticket-triage"}
    responses = await asyncio.gather(*(client.post("/api/v1/jobs", json=body, headers={"Idempotency-Key": "r"})
                                       for _ in range(5)))
    assert {r.json()["id"] for r in responses} == {responses[0].json()["id"]}
    assert sorted(r.status_code for r in responses) == [200, 200, 200, 200, 201]


async def test_delete_only_finished_jobs(client: httpx.AsyncClient, database: Database) -> None:
    await make_workflow(client)
    job = await make_job(client)
    refused = await client.delete(f"/api/v1/jobs/{job['id']}")
    assert refused.status_code == 409
    assert "queued" in refused.json()["error"]["message"]
    await set_status(database, job["id"], JobStatus.COMPLETED)
    assert (await client.delete(f"/api/v1/jobs/{job['id']}")).status_code == 204
    assert (await client.get(f"/api/v1/jobs/{job['id']}")).status_code == 404


async def test_inactive_workflow_cannot_start_jobs(client: httpx.AsyncClient) -> None:
    await make_workflow(client, is_active=False)
    response = await client.post("/api/v1/jobs", json={"workflow": "ticket-triage"})
    assert response.status_code == 409
    assert response.json()["error"]["field"] == "workflow"


async def test_a_cost_is_shown_without_float_noise(client: httpx.AsyncClient, database: Database) -> None:
    await make_workflow(client)
    job = await make_job(client)
    async with database.session() as session:
        await session.exec(update(Job).where(Job.id == job["id"]).values(  # type: ignore[arg-type]
            cost=0.020976850000000002))  # as a sum of float costs comes out
        await session.commit()
    shown = (await client.get(f"/api/v1/jobs/{job['id']}")).json()["usage"]["cost"]
    assert repr(shown) == "0.02097685"


async def test_an_unknown_model_is_refused_at_post(client: httpx.AsyncClient) -> None:
    await make_workflow(client)
    for params, field in (({"model": {"name": "gpt-9"}}, "params.model.name"),
                          ({"model": {"fallback": "nope"}}, "params.model.fallback")):
        response = await client.post("/api/v1/jobs", json={"workflow": "ticket-triage", "params": params})
        assert response.status_code == 422, response.text
        [detail] = response.json()["error"]["details"]
        assert detail["field"] == field and "unknown model" in detail["message"] and "auto" in detail["message"]
    stored = await client.post("/api/v1/workflows", json={"yaml": spec_text("other") + "model: {name: gpt-9}\n"})
    assert stored.status_code == 422
    [detail] = stored.json()["error"]["details"]
    assert detail["field"] == "model.name" and detail["line"] == 13
    assert (await client.get("/api/v1/jobs", params={"offset": 0})).json()["total"] == 0


async def test_the_changes_stream_refuses_what_it_cannot_follow(client: httpx.AsyncClient) -> None:
    too_many = ",".join(str(i) for i in range(1, 202))
    for query, field in ((f"ids={too_many}", "ids"), ("ids=seven", "ids.0"), ("since_id=-1", "since_id"),
                         ("other=1", "other")):
        response = await client.get(f"/api/v1/jobs/changes?{query}")
        assert response.status_code == 422, (query, response.text)
        assert response.json()["error"]["details"][0]["field"] == field, response.text
