"""A retrieval pipeline named in one string, and the components it needs, loaded once.

Grammar: `RETRIEVER[/QUERY][+RERANKER]`, e.g. `bm25`, `dense/per-option`, `hybrid-rrf/both+embed`,
or `auto`, the default of `openbook answer`: hybrid-rrf+embed where the index has a dense part, else
bm25 (docs/design.md, "Choosing the default retriever": the default cascade answers as well with either, and the hybrid
finds the source passage of 0.987 of llmse-stem-1k's questions in its top 5, BM25 0.764).
- RETRIEVER: bm25 | dense | hybrid-rrf | hybrid-weighted (BM25 + dense fused)
- QUERY: joint (default) | per-option | both (see `retrieve/query.py`)
- RERANKER: edit | embed-question | embed-options | embed | cross:MODEL (see `retrieve/rerank.py`);
  a reranker reorders the top `candidates` and keeps the best k.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from openbook.embed import DEFAULT_EMBEDDER, Embedder, EmbedderSettings, load_embedder
from openbook.errors import ConfigError
from openbook.index.dense import DENSE_DIR, DenseInfo
from openbook.index.engines import check_engine
from openbook.index.store import PassageStore
from openbook.records import Hit, Question
from openbook.retrieve.base import Retriever
from openbook.retrieve.fusion import HybridRetriever
from openbook.retrieve.query import QUERY_FORMS, search_questions
from openbook.retrieve.rerank import CrossEncoderReranker, EditDistanceReranker, EmbeddingReranker, Reranker
from openbook.retrieve.sparse import BM25Retriever, check_index_folder

RETRIEVERS = ("bm25", "dense", "hybrid-rrf", "hybrid-weighted")
# `auto`: the pipeline the default cascade reads (bench/experiments/cascade_retrieval.py) that the index supports
AUTO = "auto"
AUTO_WITH_DENSE = "hybrid-rrf+embed"
AUTO_SPARSE_ONLY = "bm25"


@dataclass(frozen=True, slots=True)
class RetrievalSpec:
    retriever: str = "bm25"
    query: str = "joint"
    rerank: str | None = None

    @classmethod
    def parse(cls, text: str) -> RetrievalSpec:
        """A spec from its text; `auto` is not a spec but a choice per index (`Retrieval.resolve`)."""
        head, _, rerank = text.strip().partition("+")
        retriever, _, query = head.partition("/")
        spec = cls(retriever=retriever or "bm25", query=query or "joint", rerank=rerank or None)
        if spec.retriever not in RETRIEVERS:
            raise ConfigError(
                f"retrieval {text!r}: unknown retriever {spec.retriever!r}; choose from {', '.join(RETRIEVERS)}"
            )
        if spec.query not in QUERY_FORMS:
            raise ConfigError(
                f"retrieval {text!r}: unknown query form {spec.query!r}; choose from {', '.join(QUERY_FORMS)}"
            )
        if spec.rerank == "cross:":
            raise ConfigError(f"retrieval {text!r}: name the cross-encoder (cross:MODEL, a folder or hub id)")
        if (
            spec.rerank
            and spec.rerank not in EmbeddingReranker.MODES + ("edit",)
            and not spec.rerank.startswith("cross:")
        ):
            raise ConfigError(
                f"retrieval {text!r}: unknown reranker {spec.rerank!r}; choose from edit, "
                f"{', '.join(EmbeddingReranker.MODES)}, cross:MODEL"
            )
        return spec

    def label(self) -> str:
        return (
            self.retriever
            + ("" if self.query == "joint" else f"/{self.query}")
            + (f"+{self.rerank}" if self.rerank else "")
        )


@dataclass
class Retrieval:
    """Builds retrievers and rerankers for an index on first use and keeps them for the next spec."""

    index: Path
    candidates: int = 50  # per retriever before fusion, and what a reranker reorders
    dense_engine: str = "matmul"
    hybrid_weights: tuple[float, float] = (1.0, 1.0)  # BM25, dense
    _parts: dict[str, object] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.index = Path(self.index)
        check_index_folder(self.index)  # a clear error before any part is loaded
        check_engine(self.dense_engine)

    def _part(self, key: str, build):
        if key not in self._parts:
            self._parts[key] = build()
        return self._parts[key]

    def store(self) -> PassageStore:
        return self._part("store", lambda: PassageStore(self.index))

    def retriever(self, name: str) -> Retriever:
        if name == "bm25":
            return self._part("bm25", lambda: BM25Retriever(self.index, store=self.store()))
        if name == "dense":
            from openbook.retrieve.dense import DenseRetriever

            return self._part(
                "dense",
                lambda: DenseRetriever(
                    self.index, self.dense_engine, store=self.store(), embedder=self.index_embedder()
                ),
            )
        method = name.removeprefix("hybrid-")
        return self._part(
            name,
            lambda: HybridRetriever(
                [self.retriever("bm25"), self.retriever("dense")], method, self.hybrid_weights, depth=self.candidates
            ),
        )

    def index_embedder(self) -> Embedder | None:
        """The dense index's own model, shared by the dense retriever and embedding rerankers."""
        if not self.has_dense():
            return None
        info = DenseInfo.load(self.index / DENSE_DIR)
        return self._part(
            f"embedder:{info.model}",
            lambda: load_embedder(
                EmbedderSettings(info.model, query_prefix=info.query_prefix, passage_prefix=info.passage_prefix)
            ),
        )

    def reranker(self, name: str) -> Reranker:
        if name == "edit":
            return self._part(name, EditDistanceReranker)
        if name.startswith("cross:"):
            return self._part(name, lambda: CrossEncoderReranker(name.removeprefix("cross:")))
        embedder = self.index_embedder()
        if embedder is not None:  # the index's own model: its stored passage vectors serve the reranker
            from openbook.index.dense import ShardedMatmulSearch

            stored = self._part("stored", lambda: ShardedMatmulSearch(self.index / DENSE_DIR)).vectors
            return self._part(name, lambda: EmbeddingReranker(embedder, name, stored))
        embedder = self._part(f"embedder:{DEFAULT_EMBEDDER}", lambda: load_embedder(EmbedderSettings(DEFAULT_EMBEDDER)))
        return self._part(name, lambda: EmbeddingReranker(embedder, name))

    def has_dense(self) -> bool:
        """A complete dense part (one stopped half way is finished by running `openbook index` again)."""
        folder = self.index / DENSE_DIR
        return (folder / "dense.json").is_file() and DenseInfo.load(folder).complete

    def resolve(self, text: str) -> RetrievalSpec:
        if text == AUTO:
            return RetrievalSpec.parse(AUTO_WITH_DENSE if self.has_dense() else AUTO_SPARSE_ONLY)
        return RetrievalSpec.parse(text)

    def search(self, questions: Sequence[Question], spec: RetrievalSpec, k: int) -> list[list[Hit]]:
        depth = max(k, self.candidates) if spec.rerank else k
        hit_lists = search_questions(self.retriever(spec.retriever), questions, spec.query, depth)
        if spec.rerank:
            hit_lists = [hits[:k] for hits in self.reranker(spec.rerank).rerank(questions, hit_lists)]
        return hit_lists
