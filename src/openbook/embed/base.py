"""What dense retrieval needs from an embedding model: unit vectors for queries and for passages.

Models trained with task prefixes (nomic-embed: "search_query: " / "search_document: ", e5:
"query: " / "passage: ") get them prepended here, so no caller has to remember them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

TextKind = Literal["query", "passage"]


@dataclass(frozen=True, slots=True)
class EmbedderSettings:
    model: str  # registered name, local path (folder or GGUF) or hub id
    query_prefix: str | None = None  # None: the registered model's own prefix ("" if unknown)
    passage_prefix: str | None = None
    batch_size: int = 64
    max_tokens: int | None = None  # None: the model's own limit
    threads: int | None = None


class Embedder(Protocol):
    name: str  # what the index records, to refuse a query embedder that does not match
    dimension: int
    query_prefix: str
    passage_prefix: str

    def encode(self, texts: Sequence[str], kind: TextKind) -> np.ndarray:
        """float32 (len(texts), dimension), each row of unit length; the kind's prefix prepended."""
        ...


class PrefixedEmbedder:
    """What every concrete embedder shares: the kind's prefix, empty input, unit-length rows.
    Subclasses set `name`, `dimension` and the prefixes, and embed prefixed texts in `_embed`."""

    name: str
    dimension: int
    query_prefix: str = ""
    passage_prefix: str = ""

    def encode(self, texts: Sequence[str], kind: TextKind) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        prefix = self.query_prefix if kind == "query" else self.passage_prefix
        return unit_rows(self._embed([prefix + text for text in texts]))

    def _embed(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
