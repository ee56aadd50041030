"""The dense search engines: their names, the one check of a name, and what every engine offers.

Below both engines: the sharded matmul (`index/dense.py`, which owns the store on disk and opens any
engine over it) and FAISS (`index/faiss_search.py`, which is handed the store's vectors and needs
nothing else of it), so neither imports the other's module for these.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from openbook.errors import ConfigError

MATMUL = "matmul"
FAISS_ENGINES = ("faiss-flat", "faiss-hnsw")
DENSE_ENGINES = (MATMUL, *FAISS_ENGINES)


def check_engine(engine: str) -> None:
    """A dense engine name that is not one of DENSE_ENGINES is refused (a user's option)."""
    if engine not in DENSE_ENGINES:
        raise ConfigError(f"unknown dense engine {engine!r}; choose from {', '.join(DENSE_ENGINES)}")


@dataclass(frozen=True, slots=True)
class SearchResult:
    rows: np.ndarray  # int64 (queries, k), -1 where fewer than k vectors exist
    scores: np.ndarray  # float32 (queries, k), best first


class VectorSearch:
    """What every dense search engine offers (the sharded matmul in `index/dense.py`, FAISS in
    `index/faiss_search.py`)."""

    name: str
    count: int

    def search(self, queries: np.ndarray, k: int) -> SearchResult:  # pragma: no cover - interface
        raise NotImplementedError
