"""Rerankers (`retrieve.rerank`): the edit-distance reranker, and the embedding reranker on a dense
index's stored vectors (the shipped embedder), beside the hybrid retrievers. The cross-encoder is
tested with the model it trains (train/test_cross_encoder.py)."""

from __future__ import annotations

import pytest

from openbook.records import Hit, Passage, Question
from openbook.retrieve import Retrieval, RetrievalSpec
from openbook.retrieve.rerank import EditDistanceReranker
from tests.conftest import SEMANTIC_QUERY, ids


def test_edit_distance_reranker_puts_the_closest_passage_first():
    question = Question("q", "Which organelle produces ATP?", {"A": "mitochondrion", "B": "ribosome"})
    candidates = [
        Hit(Passage("x", "x", "Volcano", "Volcanoes erupt lava at plate boundaries."), 5.0, 0, "bm25"),
        Hit(
            Passage("y", "y", "Mitochondrion", "The mitochondrion is the organelle that produces ATP."), 4.0, 1, "bm25"
        ),
    ]
    (reranked,) = EditDistanceReranker().rerank([question], [candidates])
    assert ids(reranked) == ["y", "x"] and reranked[0].retriever == "bm25>edit" and reranked[0].rank == 0


def test_hybrid_and_embedding_reranker(dense_index, minilm):
    from openbook.retrieve.rerank import EmbeddingReranker

    retrieval = Retrieval(dense_index, candidates=4)
    question = Question("q", SEMANTIC_QUERY, {"A": "the nucleus", "B": "the mitochondrion"})
    for text in ("hybrid-rrf", "hybrid-weighted", "dense/both", "bm25+embed", "bm25+embed-options"):
        (found,) = retrieval.search([question], RetrievalSpec.parse(text), k=2)
        assert found[0].passage.title == "Mitochondrion", text
    assert retrieval.resolve("auto") == RetrievalSpec.parse("hybrid-rrf+embed")
    (reranked,) = retrieval.search([question], RetrievalSpec.parse("bm25+embed-question"), k=4)
    assert reranked[0].retriever.endswith(">embed-question") and reranked[0].score >= reranked[-1].score
    # the index's stored fp16 vectors serve the reranker, with the scores of embedding on the fly
    (candidates,) = retrieval.search([question], RetrievalSpec.parse("bm25"), k=4)
    assert retrieval.reranker("embed").stored is not None
    (stored,) = retrieval.reranker("embed").rerank([question], [candidates])
    (fresh,) = EmbeddingReranker(minilm, "embed").rerank([question], [candidates])
    assert [h.passage.id for h in stored] == [h.passage.id for h in fresh]
    assert [h.score for h in stored] == pytest.approx([h.score for h in fresh], abs=2e-3)
    assert EmbeddingReranker(minilm, "embed").rerank([question], [[]]) == [[]]
    assert retrieval.reranker("embed").rerank([], []) == []
