"""Fusing ranked lists: reciprocal-rank fusion and weighted score fusion, and a hybrid retriever.

RRF (Cormack et al. 2009): score = Σ weight / (constant + rank), rank from 1; it needs no score
calibration between BM25 and cosine similarity. Weighted fusion min-max normalises each list's
scores to [0, 1] first (a passage absent from a list gets 0 there), then takes the weighted sum.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from openbook.errors import ConfigError
from openbook.records import Hit
from openbook.retrieve.base import Retriever

FUSIONS = ("rrf", "weighted")


def _ranked(scored: dict[str, float], lists: Sequence[Sequence[Hit]], k: int, name: str) -> list[Hit]:
    """Best fused score first; equal scores (common in RRF: rank r in one list on each side) go to the
    passage placed higher in any one list, then to the earlier list, then by id."""
    place: dict[str, tuple[int, int]] = {}
    first: dict[str, Hit] = {}
    for number, hits in enumerate(lists):
        for position, hit in enumerate(hits):
            pid = hit.passage.id
            place[pid] = min(place.get(pid, (position, number)), (position, number))
            first.setdefault(pid, hit)
    order = sorted(scored, key=lambda pid: (-scored[pid], *place[pid], pid))[:k]
    return [replace(first[pid], score=scored[pid], rank=i, retriever=name) for i, pid in enumerate(order)]


def reciprocal_rank_fusion(
    lists: Sequence[Sequence[Hit]],
    k: int,
    weights: Sequence[float] | None = None,
    constant: float = 60.0,
    name: str = "rrf",
) -> list[Hit]:
    weights = weights or [1.0] * len(lists)
    scored: dict[str, float] = {}
    for hits, weight in zip(lists, weights):
        for position, hit in enumerate(hits, start=1):
            pid = hit.passage.id
            scored[pid] = scored.get(pid, 0.0) + weight / (constant + position)
    return _ranked(scored, lists, k, name)


def weighted_score_fusion(
    lists: Sequence[Sequence[Hit]], k: int, weights: Sequence[float] | None = None, name: str = "weighted"
) -> list[Hit]:
    weights = weights or [1.0] * len(lists)
    scored: dict[str, float] = {}
    for hits, weight in zip(lists, weights):
        if not hits:
            continue
        top, bottom = max(h.score for h in hits), min(h.score for h in hits)
        span = top - bottom
        for hit in hits:
            pid = hit.passage.id
            normalised = (hit.score - bottom) / span if span > 0 else 1.0
            scored[pid] = scored.get(pid, 0.0) + weight * normalised
    return _ranked(scored, lists, k, name)


def fuse(
    lists: Sequence[Sequence[Hit]], k: int, method: str, weights: Sequence[float] | None = None, name: str | None = None
) -> list[Hit]:
    if method == "rrf":
        return reciprocal_rank_fusion(lists, k, weights, name=name or "rrf")
    if method == "weighted":
        return weighted_score_fusion(lists, k, weights, name=name or "weighted")
    raise ConfigError(f"unknown fusion {method!r}; choose from {', '.join(FUSIONS)}")


class HybridRetriever:
    """Several retrievers' top `depth` fused into one list (BM25 + dense: the winners' retrieval)."""

    def __init__(
        self,
        retrievers: Sequence[Retriever],
        method: str = "rrf",
        weights: Sequence[float] | None = None,
        depth: int = 50,
    ):
        if method not in FUSIONS:
            raise ConfigError(f"unknown fusion {method!r}; choose from {', '.join(FUSIONS)}")
        self.retrievers, self.method, self.weights, self.depth = list(retrievers), method, weights, depth
        self.name = f"hybrid-{method}"

    def search(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        per_retriever = [r.search(queries, max(k, self.depth)) for r in self.retrievers]
        return [
            fuse([lists[q] for lists in per_retriever], k, self.method, self.weights, self.name)
            for q in range(len(queries))
        ]
