"""Exact top-k by cosine similarity over a knowledge table's vectors (a brute-force scan, which is exact).

Vectors are kept normalized in float64 while the table fits in EXACT_ELEMENTS numbers; larger tables are kept in
float32 (half the memory). Queries are scored in batches (one matrix product reads the table once for all of
them), then the rows that can be in the top k (those within the scan's rounding of the k-th score) are scored
again one by one, the same way for every row, so that equal rows score equal: ties rank by position in the
table, and a search is deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

EXACT_ELEMENTS = 32_000_000  # 256 MB of float64: beyond it, float32
SCAN_SLACK = {np.dtype(np.float64): 1e-9, np.dtype(np.float32): 1e-4}  # far beyond either scan's rounding


@dataclass(frozen=True)
class Hit:
    """One retrieved row: its position in the table and its cosine similarity to the query."""

    position: int
    score: float


class KnowledgeIndex:
    """The normalized vectors of a table's rows; `search` gives the top k (all rows must have one dimension)."""

    def __init__(self, vectors: Sequence[Sequence[float]]) -> None:
        rows = len(vectors)
        dims = len(vectors[0]) if rows else 0
        dtype = np.float64 if rows * dims <= EXACT_ELEMENTS else np.float32
        matrix = np.asarray(vectors, dtype=dtype).reshape(rows, dims)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        norms[norms == 0] = 1.0  # a zero vector scores 0 against everything
        self.matrix = matrix / norms
        self.dims = dims

    def __len__(self) -> int:
        return int(self.matrix.shape[0])

    def search(self, query: Sequence[float], k: int) -> list[Hit]:
        """The k rows most similar to `query`, best first (ties: the earlier row first)."""
        return self.search_many([query], k)[0]

    def search_many(self, queries: Sequence[Sequence[float]], k: int) -> list[list[Hit]]:
        """`search` of each query, the table read once for all of them."""
        if not len(self):
            return [[] for _ in queries]
        vectors = np.asarray(queries, dtype=self.matrix.dtype)
        if vectors.ndim != 2 or vectors.shape[1] != self.dims:
            shown = vectors.shape[1] if vectors.ndim == 2 else "other"
            raise ValueError(f"a query of {shown} dimensions against a table of {self.dims}")
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        vectors = vectors / norms
        scanned: Any = vectors @ self.matrix.T  # one row of scores a query
        slack = SCAN_SLACK[self.matrix.dtype]
        return [self._top(vectors[i], scanned[i], k, slack) for i in range(len(vectors))]

    def _top(self, query: Any, scores: Any, k: int, slack: float) -> list[Hit]:
        if k < len(scores):
            kth = scores[np.argpartition(-scores, k - 1)[k - 1]]
            candidates = np.flatnonzero(scores >= kth - slack)  # rows tied with (or a rounding from) the k-th
        else:
            candidates = np.arange(len(scores))
        exact = (self.matrix[candidates] * query).sum(axis=1)  # row by row, the same sum for equal rows
        ranked = np.lexsort((candidates, -exact))[:k]
        return [Hit(int(candidates[i]), float(exact[i])) for i in ranked]
