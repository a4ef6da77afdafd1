"""A step's requests as batch input files: custom_ids that name (row, step, model) exactly, files cut by count and
size."""

from __future__ import annotations

import pytest

from engine.errors import InputError
from engine.gateway.batch_api import request_line
from engine.run.batch_files import batch_files, custom_id, unit_of

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


def test_files_hold_at_most_so_many_requests_and_bytes_in_order() -> None:
    lines = [request_line(custom_id(i, ("", "")), {"model": "m", "messages": [{"role": "user", "content": "x" * i}]})
             for i in range(100)]
    by_count = [f.content().read() for f in batch_files(lines, max_requests=30)]
    assert [f.count(b"\n") for f in by_count] == [30, 30, 30, 10]
    limit = 2_000
    files = list(batch_files(lines, max_bytes=limit))
    by_size = [f.content().read() for f in files]
    assert all(len(f) <= limit for f in by_size) and len(by_size) > 1
    assert [(f.requests, f.size) for f in files] == [(c.count(b"\n"), len(c)) for c in by_size]
    assert b"".join(by_size) == b"".join(lines) == b"".join(by_count)


def test_a_request_larger_than_a_file_may_be_is_an_input_error() -> None:
    with pytest.raises(InputError, match="larger than a batch file may be"):
        list(batch_files([b"x" * 11 + b"\n"], max_bytes=10))
