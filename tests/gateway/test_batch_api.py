"""A provider's batch API (OpenAI's Files and Batches) through `BatchApi`, against the fake upstream on 127.0.0.1."""

from __future__ import annotations

import json

import pytest

from engine.gateway import RequestRejected
from engine.gateway.batch_api import BatchApi, BatchStatus, request_line
from tests.support.fake_upstream import FakeUpstream, first_attempts, marker

SCHEMA = {"type": "json_schema", "json_schema": {"name": "answer", "schema": {
    "type": "object", "properties": {"summary": {"type": "string"}}, "required": ["summary"]}}}


def body(i: int) -> dict[str, object]:
    return {"model": "fake-0", "messages": [{"role": "user", "content": f"ticket {i}"}], "response_format": SCHEMA}


async def test_a_batch_is_uploaded_created_polled_read_and_its_files_deleted() -> None:
    async with FakeUpstream() as up:
        up.batches.delay_s = 60.0  # not answered until the test lets it
        api = BatchApi(up.base_url, api_key="k", name="m0")
        file_id = await api.upload(b"".join(request_line(f"row-{i}", body(i)) for i in range(5)), filename="in.jsonl")
        batch = await api.create(file_id, metadata={"job": "1"})
        assert batch.status is BatchStatus.IN_PROGRESS and not batch.ended and batch.total == 5
        assert (await api.get(batch.id)).status is BatchStatus.IN_PROGRESS
        up.batches.delay_s = 0.0
        for pending in up.batches.batches.values():
            pending["_ready_at"] = 0.0
        done = await api.get(batch.id)
        assert done.status is BatchStatus.COMPLETED and done.ended and (done.completed, done.failed) == (5, 0)
        assert done.output_file_id is not None and done.error_file_id is None
        lines = [json.loads(line) for line in (await api.content(done.output_file_id)).splitlines()]
        await api.delete_file(file_id)
        await api.delete_file(done.output_file_id)
        await api.delete_file(done.output_file_id)  # already gone: no error
        await api.aclose()
    assert [line["custom_id"] for line in lines] == [f"row-{i}" for i in range(5)]
    for i, line in enumerate(lines):  # each line answered as the live request would be, on its own row
        content = json.loads(line["response"]["body"]["choices"][0]["message"]["content"])
        assert content == {"summary": f"summary:{marker(f'ticket {i}')}"}
    assert up.batches.stats.files_deleted == 2 and up.stats.ok == {f"ticket {i}": 1 for i in range(5)}


async def test_failed_lines_land_in_the_error_file() -> None:
    async with FakeUpstream(faults=first_attempts({"500": 0.5})) as up:
        api = BatchApi(up.base_url, name="m0")
        batch = await api.create(await api.upload(b"".join(request_line(str(i), body(i)) for i in range(40)),
                                                  filename="in.jsonl"))
        done = await api.get(batch.id)
        assert done.error_file_id is not None and done.output_file_id is not None
        errors = [json.loads(line) for line in (await api.content(done.error_file_id)).splitlines()]
        await api.aclose()
    assert done.failed == len(errors) > 0 and done.completed == 40 - done.failed
    assert {line["response"]["status_code"] for line in errors} == {500}


async def test_an_expired_batch_keeps_the_lines_it_answered_and_a_cancel_is_seen() -> None:
    async with FakeUpstream() as up:
        up.batches.expire = True
        api = BatchApi(up.base_url, name="m0")
        expired = await api.get((await api.create(await api.upload(
            b"".join(request_line(str(i), body(i)) for i in range(10)), filename="in.jsonl"))).id)
        up.batches.expire, up.batches.delay_s = False, 60.0
        waiting = await api.create(await api.upload(request_line("x", body(0)), filename="in.jsonl"))
        cancelled = await api.cancel(waiting.id)
        await api.aclose()
    assert expired.status is BatchStatus.EXPIRED and expired.completed == 5
    assert cancelled.status is BatchStatus.CANCELLED and up.batches.stats.batches_cancelled == 1


async def test_an_unknown_file_is_the_callers_fault() -> None:
    async with FakeUpstream() as up:
        api = BatchApi(up.base_url, name="m0")
        with pytest.raises(RequestRejected, match="m0: HTTP 400"):
            await api.create("file-none")
        await api.aclose()


async def test_a_batch_is_found_again_by_its_metadata_across_pages() -> None:
    async with FakeUpstream() as up:
        up.batches.delay_s = 60.0
        api = BatchApi(up.base_url, name="m0")
        file_id = await api.upload(request_line("x", body(0)), filename="in.jsonl")
        made = [await api.create(file_id, metadata={"rowloom_batch": f"local-{i}"}) for i in range(250)]
        oldest = await api.find("rowloom_batch", "local-0")
        newest = await api.find("rowloom_batch", "local-249")
        missing = await api.find("rowloom_batch", "local-999")
        await api.aclose()
    assert oldest is not None and oldest.id == made[0].id  # on the third page of 100
    assert newest is not None and newest.id == made[-1].id and missing is None
