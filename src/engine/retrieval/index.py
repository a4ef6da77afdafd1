"""Exact top-k by cosine similarity over a knowledge table's vectors (a brute-force scan, which is exact).

Vectors are kept normalized in float64 while the table fits in EXACT_ELEMENTS numbers, so the ranking is the
reference ranking to the last bit; larger tables are kept in float32 (half the memory, scores within ~1e-7).
Ties rank by position in the table, so a search is deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

EXACT_ELEMENTS = 32_000_000  # 256 MB of float64: beyond it, float32


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
        if not len(self):
            return []
        vector = np.asarray(query, dtype=self.matrix.dtype)
        if vector.shape != (self.dims,):
            raise ValueError(f"a query of {vector.shape[0] if vector.ndim == 1 else vector.shape} dimensions "
                             f"against a table of {self.dims}")
        norm = float(np.linalg.norm(vector))
        scores: Any = self.matrix @ (vector / norm if norm else vector)
        if k < len(scores):
            kth = scores[np.argpartition(-scores, k - 1)[k - 1]]
            candidates = np.flatnonzero(scores >= kth)  # every row tied with the k-th stays in the running
        else:
            candidates = np.arange(len(scores))
        ranked = candidates[np.lexsort((candidates, -scores[candidates]))][:k]
        return [Hit(int(i), float(scores[i])) for i in ranked]
