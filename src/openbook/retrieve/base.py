"""The interface every retriever shares, and the one way rows of the passage store become hits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from openbook.index.store import PassageStore
from openbook.records import Hit


class Retriever(Protocol):
    name: str

    def search(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        """The best `k` passages for each query, best first (fewer where fewer match)."""
        ...


def hits_from_rows(
    store: PassageStore, rows: np.ndarray, scores: np.ndarray, retriever: str, keep: float = -np.inf
) -> list[list[Hit]]:
    """Per query, the passages at `rows` (−1 = none) scoring above `keep`, best first."""
    results: list[list[Hit]] = []
    for query_rows, query_scores in zip(rows, scores):
        kept = [(int(r), float(s)) for r, s in zip(query_rows, query_scores) if r >= 0 and s > keep]
        passages = store.get([r for r, _ in kept])
        results.append(
            [
                Hit(passage=p, score=s, rank=i, retriever=retriever, row=r)
                for i, (p, (r, s)) in enumerate(zip(passages, kept))
            ]
        )
    return results
