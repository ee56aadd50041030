"""Dense retrieval with the real shipped embedders (pulled the way a user pulls them)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import ARTICLES
from openbook.embed import EmbedderSettings, load_embedder
from openbook.errors import OpenbookError
from openbook.index.build import build_index
from openbook.index.dense import DENSE_DIR, DenseInfo, shard_paths
from openbook.index.dense_build import build_dense_index
from openbook.models import MODELS, ModelStore, resolve_model
from openbook.records import Question
from openbook.retrieve import Retrieval, RetrievalSpec
from openbook.retrieve.dense import DenseRetriever

pytest.importorskip(
    "sentence_transformers", reason="dense retrieval needs sentence-transformers (pip install -e .[dev])"
)

EMBEDDER = "all-minilm-l6-v2"
# no word of the answer passage ("powerhouse", "ATP", "respiration") is in the query
SEMANTIC_QUERY = "Which part of a cell makes its energy?"


@pytest.fixture(scope="session")
def minilm():
    ModelStore().pull(MODELS[EMBEDDER], log=lambda _: None)
    return load_embedder(EmbedderSettings(EMBEDDER))


@pytest.fixture
def dense_index(tmp_path, articles_jsonl, minilm):
    index = tmp_path / "index"
    build_index([articles_jsonl], index, show_progress=False)
    build_dense_index(index, EmbedderSettings(EMBEDDER), shard_rows=3, batch_passages=2, show_progress=False)
    return index


def test_embedder_gives_unit_vectors_that_match_meaning(minilm):
    vectors = minilm.encode(["The mitochondrion produces ATP.", "Volcanoes erupt at plate boundaries."], "passage")
    query = minilm.encode([SEMANTIC_QUERY], "query")
    assert vectors.shape == (2, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert (vectors @ query.T)[0, 0] > (vectors @ query.T)[1, 0]


def test_dense_index_in_shards_finds_by_meaning(dense_index):
    info = DenseInfo.load(dense_index / DENSE_DIR)
    assert info.complete and info.passages == 4 and info.model == EMBEDDER
    assert info.max_row_norm == pytest.approx(1.0, abs=1e-3)  # unit embeddings, recorded for lone queries
    assert [p.stat().st_size for p in shard_paths(dense_index / DENSE_DIR)] == [3 * 384 * 2, 384 * 2]
    (found,) = DenseRetriever(dense_index).search([SEMANTIC_QUERY], k=2)
    assert found[0].passage.title == "Mitochondrion" and found[0].retriever == "dense"
    assert found[0].score > found[1].score


def test_a_stopped_dense_build_resumes_and_gives_the_same_vectors(dense_index, tmp_path):
    folder = dense_index / DENSE_DIR
    complete = np.concatenate([np.fromfile(p, dtype="<f2") for p in shard_paths(folder)]).reshape(-1, 384)
    first = shard_paths(folder)[0]
    first.write_bytes(first.read_bytes()[: 384 * 2 + 100])  # one row and a piece of the next, as at a stop
    shard_paths(folder)[1].unlink()
    info = DenseInfo.load(folder)
    info.complete = False
    info.save(folder)
    with pytest.raises(OpenbookError, match="incomplete"):
        DenseRetriever(dense_index)
    resumed = build_dense_index(dense_index, EmbedderSettings(EMBEDDER), shard_rows=3, show_progress=False)
    assert resumed.complete
    again = np.concatenate([np.fromfile(p, dtype="<f2") for p in shard_paths(folder)]).reshape(-1, 384)
    np.testing.assert_allclose(again.astype(np.float32), complete.astype(np.float32), atol=2e-3)
    with pytest.raises(OpenbookError, match="shard_rows = 3, not 5; delete .* to rebuild it"):
        build_dense_index(dense_index, EmbedderSettings(EMBEDDER), shard_rows=5, show_progress=False)


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


def test_index_and_eval_retrieval_commands(tmp_path, articles_jsonl, minilm):
    from typer.testing import CliRunner

    from openbook.cli.main import app

    runner = CliRunner()
    index = tmp_path / "index"
    built = runner.invoke(app, ["index", str(articles_jsonl), "--out", str(index), "--dense", EMBEDDER, "--quiet"])
    assert built.exit_code == 0, built.output
    assert json.loads((index / "manifest.json").read_text())["indexes"]["dense"]["vectors"] == 4
    again = runner.invoke(app, ["index", str(articles_jsonl), "--out", str(index), "--dense", EMBEDDER, "--quiet"])
    assert again.exit_code == 0 and "kept" in again.output  # nothing rebuilt
    exam = tmp_path / "exam.csv"
    sources = {title: text for _, title, text in ARTICLES}  # each question written from a whole article
    exam.write_text(
        "id,prompt,A,B,context\n"
        f'1,Which part of a cell makes its energy?,nucleus,mitochondrion,"{sources["Mitochondrion"]}"\n'
        f'2,How fast is light?,fast,slow,"{sources["Speed of light"]}"\n'
        "3,No source here,a,b,\n"
    )
    out = tmp_path / "scores"  # a folder: retrieval.json in it
    result = runner.invoke(
        app,
        [
            "eval-retrieval",
            str(exam),
            "--index",
            str(index),
            "--retrieval",
            "bm25",
            "--retrieval",
            "dense",
            "--retrieval",
            "hybrid-rrf/per-option+edit",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    rows = {row["pipeline"]: row for row in json.loads((out / "retrieval.json").read_text())["results"]}
    assert set(rows) == {"bm25", "dense", "hybrid-rrf/per-option+edit"}
    assert rows["dense"]["questions"] == 2 and rows["dense"]["recall@1"] == 1.0 and rows["dense"]["mrr"] == 1.0
    assert "R@5" in result.output
    bad = runner.invoke(app, ["eval-retrieval", str(exam), "--index", str(index), "--retrieval", "sparse"])
    assert bad.exit_code == 2 and "unknown retriever" in bad.output
    # search's default is answer's: auto, the hybrid with the embedding reranker where the index is dense
    searched = {
        given: runner.invoke(app, ["search", str(index), SEMANTIC_QUERY, "-k", "2", *given]).output
        for given in ((), ("--retrieval", "hybrid-rrf+embed"), ("--retrieval", "bm25"))
    }
    assert "Mitochondrion" in searched[()] and searched[()] == searched[("--retrieval", "hybrid-rrf+embed")]
    assert searched[()] != searched[("--retrieval", "bm25")]


def test_gguf_embedder_applies_nomic_prefixes():
    pytest.importorskip("llama_cpp")
    ModelStore().pull(MODELS["nomic-embed-text-v1.5"], log=lambda _: None)
    embedder = load_embedder(EmbedderSettings("nomic-embed-text-v1.5"))
    assert (embedder.query_prefix, embedder.passage_prefix) == ("search_query: ", "search_document: ")
    passages = embedder.encode(["The mitochondrion produces ATP for the cell.", "Volcanoes erupt lava."], "passage")
    query = embedder.encode([SEMANTIC_QUERY], "query")
    as_passage = embedder.encode([SEMANTIC_QUERY], "passage")
    assert passages.shape == (2, 768)
    np.testing.assert_allclose(np.linalg.norm(passages, axis=1), 1.0, atol=1e-5)
    assert (query @ as_passage.T)[0, 0] < 0.999  # the prefix changes the vector
    assert (passages @ query.T)[0, 0] > (passages @ query.T)[1, 0]
    # a language model's GGUF declares no pooling: one vector per token, not an embedder
    ModelStore().pull(MODELS["smollm2-135m-instruct"], log=lambda _: None)
    with pytest.raises(OpenbookError, match="declares no pooling"):
        load_embedder(EmbedderSettings(str(resolve_model("smollm2-135m-instruct"))))


def test_cross_encoder_trains_saves_and_reranks(tmp_path, articles_jsonl, minilm):
    """A few steps on a tiny exam: the command runs end to end and its model serves `+cross:`."""
    from typer.testing import CliRunner

    from openbook.cli.main import app

    index = tmp_path / "index"
    build_index([articles_jsonl], index, show_progress=False)
    exam = tmp_path / "exam.csv"
    exam.write_text(
        "id,prompt,A,B,context\n"
        "1,Which part of a cell makes its energy?,nucleus,mitochondrion,"
        '"The mitochondrion is the powerhouse of the cell. It produces ATP by cellular respiration."\n'
        '2,How fast is light?,fast,slow,"The speed of light in vacuum is exactly 299792458 metres per second."\n'
    )
    model = tmp_path / "cross"
    result = CliRunner().invoke(
        app,
        [
            "train",
            "cross-encoder",
            str(exam),
            "--index",
            str(index),
            "--out",
            str(model),
            "--negatives",
            "2",
            "--batch-size",
            "4",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (model / "config.json").is_file() and "pairs" in result.output
    retrieval = Retrieval(index, candidates=4)
    (reranked,) = retrieval.search(
        [Question("q", SEMANTIC_QUERY, {"A": "x"})], RetrievalSpec.parse(f"bm25+cross:{model}"), k=3
    )
    assert reranked and reranked[0].retriever.endswith(f">cross:{model}")
    assert [h.score for h in reranked] == sorted((h.score for h in reranked), reverse=True)
    # an embedder is no cross-encoder: its scoring head would start random, its order noise
    with pytest.raises(OpenbookError, match="is not a cross-encoder with one relevance score"):
        retrieval.search(
            [Question("q", SEMANTIC_QUERY, {"A": "x"})], RetrievalSpec.parse(f"bm25+cross:{EMBEDDER}"), k=3
        )
    for flag, value in (("--epochs", "0"), ("--batch-size", "0"), ("--negatives", "-1")):
        result = CliRunner().invoke(
            app,
            [
                "train",
                "cross-encoder",
                str(exam),
                "--index",
                str(index),
                "--out",
                str(tmp_path / "bad"),
                flag,
                value,
                "--quiet",
            ],
        )
        assert result.exit_code == 2 and f"{flag} must be" in result.output, result.output


def test_prefixes_from_configuration_are_recorded_and_used_for_queries(tmp_path, articles_jsonl, minilm):
    index = tmp_path / "index"
    build_index([articles_jsonl], index, show_progress=False)
    info = build_dense_index(
        index, EmbedderSettings(EMBEDDER, query_prefix="query: ", passage_prefix="passage: "), show_progress=False
    )
    assert (info.query_prefix, info.passage_prefix) == ("query: ", "passage: ")
    retriever = DenseRetriever(index)
    assert (retriever.embedder.query_prefix, retriever.embedder.passage_prefix) == ("query: ", "passage: ")
    plain = minilm.encode(["Mitochondrion\nThe mitochondrion"], "passage")
    prefixed = retriever.embedder.encode(["Mitochondrion\nThe mitochondrion"], "passage")
    assert (plain @ prefixed.T)[0, 0] < 0.9999


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
