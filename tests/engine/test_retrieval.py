"""Retrieval's top-k against a brute-force reference: every row scored in plain Python, sorted."""

from __future__ import annotations

import math
import random

import pytest

from engine.retrieval import KnowledgeIndex


def reference(rows: list[list[float]], query: list[float], k: int) -> list[int]:
    """Cosine of every row, in float64, sorted by score and then by position."""
    q = math.sqrt(sum(x * x for x in query))
    scored = []
    for position, row in enumerate(rows):
        norm = math.sqrt(sum(x * x for x in row)) or 1.0
        scored.append((-sum(a * b for a, b in zip(row, query, strict=True)) / (norm * q), position))
    return [position for _, position in sorted(scored)[:k]]


def test_top_k_matches_brute_force_on_10000_rows_ties_included() -> None:
    rng = random.Random(15)
    rows = [[rng.gauss(0, 1) for _ in range(24)] for _ in range(10_000)]
    for source, copy in ((17, 9_000), (17, 9_001), (4_242, 5)):  # identical rows: exact ties, ranked by position
        rows[copy] = list(rows[source])
    index = KnowledgeIndex(rows)
    queries = [[rng.gauss(0, 1) for _ in range(24)] for _ in range(12)] + [rows[17], rows[4_242]]
    for query in queries:
        for k in (1, 5, 20):
            assert [hit.position for hit in index.search(query, k)] == reference(rows, query, k)
    assert [hit.position for hit in index.search(rows[17], 3)] == [17, 9_000, 9_001]
    best = index.search(rows[4_242], 2)
    assert [h.position for h in best] == [5, 4_242] and abs(best[0].score - 1.0) < 1e-12


def test_small_tables_and_odd_queries() -> None:
    index = KnowledgeIndex([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    assert [h.position for h in index.search([1.0, 0.1], 10)] == [0, 1, 2]  # k beyond the table: all of it
    assert [h.score for h in index.search([0.0, 0.0], 3)] == [0.0, 0.0, 0.0]  # a zero query ranks by position
    with pytest.raises(ValueError, match="3 dimensions against a table of 2"):
        index.search([1.0, 0.0, 0.0], 1)
