"""A step's requests as batch input files: custom_ids that name (row, step, model) exactly, a pending batch's lines
and requests kept on disk."""

from __future__ import annotations

import pytest

from engine.gateway.batch_api import request_line
from engine.run.batch_files import PendingBatch, PlannedRequest, custom_id, unit_of

KEYS = [(7, ("", "")), ("7", ("", "")), ("ticket \u00e9\u00df \U0001f600", ("s1", "m2")), (-12, ("embed", "")),
        ('a"b\\c', ("p", 'model "x"'))]


@pytest.mark.parametrize(("key", "unit"), KEYS)
def test_a_custom_id_names_its_row_step_and_model_with_the_keys_type(key: int | str, unit: tuple[str, str]) -> None:
    assert unit_of(custom_id(key, unit)) == (key, unit)
    assert type(unit_of(custom_id(key, unit))[0]) is type(key)


@pytest.mark.parametrize("foreign", ["", "row-1", "[1, 2]", "[true, \"\", \"\"]", "[[1], \"\", \"\"]", "{}",
                                     "[1, \"\", 3]"])
def test_a_custom_id_this_engine_did_not_write_is_refused(foreign: str) -> None:
    with pytest.raises(ValueError, match="is not one of this run's"):
        unit_of(foreign)


def test_a_pending_batch_keeps_its_lines_and_requests_in_files_and_gives_back_any_part_of_them() -> None:
    lines = [request_line(custom_id(i, ("s", "m")), {"model": "m", "messages": [{"role": "user", "content": "x" * i}]})
             for i in range(100)]
    requests = [PlannedRequest(custom_id(i, ("s", "m")), (custom_id(i, ("s", "m")), f"digest-{i}", i % 3), i / 7)
                for i in range(100)]
    pending = PendingBatch("m0", "/v1/chat/completions")
    for line, request in zip(lines, requests, strict=True):
        assert not pending.holds(request.key)
        pending.add(line, request)
        assert pending.holds(request.key)
    assert (pending.requests, pending.size) == (100, sum(map(len, lines)))
    assert pending.content().read() == b"".join(lines)
    assert list(pending.planned()) == requests  # the costs back exactly, the keys with their types
    part = pending.part(30, 25)
    assert (part.deployment, part.url, part.requests) == ("m0", "/v1/chat/completions", 25)
    assert part.content().read() == b"".join(lines[30:55]) and list(part.planned()) == requests[30:55]
    assert pending.content().read() == b"".join(lines)  # the whole batch is still there to send
    assert pending.fits(10, max_requests=101, max_bytes=pending.size + 10)
    assert not pending.fits(11, max_requests=101, max_bytes=pending.size + 10)
    assert not pending.fits(1, max_requests=100, max_bytes=pending.size + 10)
    part.close()
    pending.close()
