"""The interface every retriever shares (BM25 now; dense, hybrid and rerankers build on it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from openbook.types import Hit


class Retriever(Protocol):
    name: str

    def search(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        """The best `k` passages for each query, best first (fewer where fewer match)."""
        ...
