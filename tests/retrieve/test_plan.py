"""Retrieval pipelines named in one string (`retrieve.plan`): the grammar, a BM25 pipeline with a
reranker on an index, `auto` resolved per index, and two spellings of one pipeline refused.

On a dense index (the shipped embedder), `auto` is the hybrid; on a sparse one, BM25."""

from __future__ import annotations

import pytest

from openbook.errors import ConfigError
from openbook.index.build import build_index
from openbook.index.dense import DENSE_DIR
from openbook.records import Question
from openbook.retrieve import Retrieval, RetrievalSpec
from tests.conftest import SEMANTIC_QUERY


def test_spec_grammar_and_errors():
    spec = RetrievalSpec.parse("hybrid-rrf/both+embed")
    assert (spec.retriever, spec.query, spec.rerank) == ("hybrid-rrf", "both", "embed")
    assert spec.label() == "hybrid-rrf/both+embed" and RetrievalSpec.parse("bm25").label() == "bm25"
    assert RetrievalSpec.parse("dense+cross:/models/ce").rerank == "cross:/models/ce"
    for bad, problem in [
        ("sparse", "unknown retriever"),
        ("bm25/all", "unknown query form"),
        ("bm25+magic", "unknown reranker"),
    ]:
        with pytest.raises(ConfigError, match=problem):
            RetrievalSpec.parse(bad)


def test_bm25_pipeline_with_reranker_keeps_k_of_the_candidates(tmp_path, articles_jsonl):
    index = tmp_path / "index"
    build_index([articles_jsonl], index, show_progress=False)
    retrieval = Retrieval(index, candidates=4)
    question = Question(
        "q", "How fast does light travel in vacuum?", {"A": "299792458 metres per second", "B": "slowly"}
    )
    (plain,) = retrieval.search([question], RetrievalSpec.parse("bm25"), k=2)
    (reranked,) = retrieval.search([question], RetrievalSpec.parse("bm25/both+edit"), k=2)
    assert plain[0].passage.title == reranked[0].passage.title == "Speed of light"
    assert len(reranked) == 2 and reranked[0].retriever == "bm25>edit"
    with pytest.raises(Exception, match="no dense index"):
        retrieval.search([question], RetrievalSpec.parse("dense"), k=2)
    assert retrieval.resolve("auto") == RetrievalSpec.parse("bm25")  # no dense part: plain BM25
    from openbook.answer import AnswerOptions, make_plan

    def plan(*texts: str):
        return make_plan(AnswerOptions(index=index, retrieval=list(texts), triage_readers=["none"]))

    assert plan("auto", "bm25/both").first.context.retrieval == ("bm25", "bm25/both")  # labels as resolved here
    for twice in (["bm25", "bm25/joint"], ["auto", "bm25"]):  # one pipeline under two spellings
        with pytest.raises(ConfigError, match="names the pipeline bm25 twice"):
            plan(*twice)


def test_the_default_context_comes_from_the_hybrid_where_the_index_is_dense(dense_index):
    """`openbook answer`'s default retrieval (`auto`) reads hybrid-rrf+embed context from a dense index,
    which finds a passage sharing no word with the question; plain BM25 from a sparse one."""
    from openbook.answer import AnswerOptions, make_plan
    from openbook.answer.stages import open_retrieval, retrieve_contexts

    question = Question("q", SEMANTIC_QUERY, {"A": "in its nucleus", "B": "in its mitochondria"})
    count_words = lambda text: len(text.split())  # noqa: E731 - any token counter packs
    options = AnswerOptions(index=dense_index, passages=1, context_tokens=200)

    def main_context():
        """The context the main stage reads (the default triage pass reads none), as planned on the index now."""
        plan = make_plan(options)
        assert plan.first.context is None
        (context,) = retrieve_contexts(
            [question], open_retrieval(plan.reread.stage.context), plan.reread.stage.context, count_words
        )
        return context

    (context,) = main_context()
    assert context.retrieval == "hybrid-rrf+embed" and context.hits[0].passage.title == "Mitochondrion"
    (dense_index / DENSE_DIR / "dense.json").unlink()
    (context,) = main_context()
    assert context.retrieval == "bm25"
