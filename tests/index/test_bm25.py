"""The BM25 engines (`index.bm25`: bm25s and tantivy): the right article found, scores that follow
Lucene's formula, numba and numpy scorers alike, queries without a known word, bm25s imported with
JAX kept off the GPU."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from openbook.corpus import ChunkSettings
from openbook.index.bm25 import _english_tokenizer
from openbook.index.store import PassageStore
from openbook.retrieve import BM25Retriever
from tests.conftest import build_test_index, write_jsonl


@pytest.fixture(params=["bm25s", "tantivy"])
def engine(request) -> str:
    return request.param


def test_search_finds_the_right_article(tmp_path, articles_jsonl, engine):
    retriever = BM25Retriever(build_test_index(tmp_path, [articles_jsonl], engine))
    queries = [
        "Which organelle produces ATP?",
        "What do chlorophyll pigments absorb?",
        "Where do earthquakes happen?",
        "How fast does light travel in vacuum?",
    ]
    top = [hits[0].passage.title for hits in retriever.search(queries, k=2)]
    assert top == ["Mitochondrion", "Photosynthesis", "Plate tectonics", "Speed of light"]
    (hits,) = retriever.search(["zzzz qqqq"], k=3)
    assert hits == []  # nothing shares a term with the query
    assert retriever.search(["the of it is"], k=3) == [[]]  # stopwords only: no term at all
    # capitalised AND/OR/NOT/IN are words of the prompt, not query operators
    (negated, plain) = retriever.search(["Which organelle does NOT produce ATP IN cells", "OR"], k=2)
    assert negated[0].passage.title == "Mitochondrion" and plain == []


def test_bm25s_scores_match_a_reference_formula(tmp_path, articles_jsonl):
    """Lucene BM25 recomputed by hand over the same tokens must equal what the index returns."""
    out = build_test_index(tmp_path, [articles_jsonl])
    store = PassageStore(out)
    tokenizer = _english_tokenizer()
    vocab_tokens = tokenizer.tokenize(
        [p.indexed_text() for p in store.get(range(len(store)))], return_as="tuple", show_progress=False
    )
    inverse = {i: t for t, i in vocab_tokens.vocab.items()}
    docs = [Counter(inverse[i] for i in ids) for ids in vocab_tokens.ids]
    avg_len = sum(sum(d.values()) for d in docs) / len(docs)
    query = "light travels slower in glass and water"
    query_terms = tokenizer.tokenize([query], return_as="tuple", update_vocab=False, show_progress=False)
    terms = [inverse[i] for i in query_terms.ids[0]]
    k1, b = 1.2, 0.75

    def score(doc: Counter) -> float:
        total = 0.0
        for term in terms:
            df = sum(term in d for d in docs)
            idf = math.log(1 + (len(docs) - df + 0.5) / (df + 0.5))
            tf = doc[term]
            total += idf * tf / (tf + k1 * (1 - b + b * sum(doc.values()) / avg_len))
        return total

    expected = [(s, row) for s, row in sorted(((score(d), row) for row, d in enumerate(docs)), reverse=True) if s > 0]
    assert len(expected) == 2  # only two articles mention light, glass or water
    (hits,) = BM25Retriever(out).search([query], k=3)
    assert [h.score for h in hits] == pytest.approx([s for s, _ in expected], rel=1e-4)
    assert [h.passage.id for h in hits] == [store.get([row])[0].id for _, row in expected]


def test_numba_and_numpy_scorers_agree(tmp_path, articles_jsonl):
    from openbook.index.bm25 import Bm25sIndex

    out = build_test_index(tmp_path, [articles_jsonl], chunk=ChunkSettings(size=64))
    queries = ["light in glass", "cell DNA mother", "plates and volcanoes", "qqqq zzzz"]
    every = len(PassageStore(out))  # rank all passages, so ties at a cut-off cannot differ

    def scored(index: Bm25sIndex) -> list[dict[int, float]]:
        rows, scores = index.search(queries, every)
        return [{int(r): round(float(s), 4) for r, s in zip(rs, ss) if s > 0} for rs, ss in zip(rows, scores)]

    numpy_results = scored(Bm25sIndex(out / "bm25"))
    assert scored(Bm25sIndex(out / "bm25", numba_from_passages=0)) == numpy_results
    assert [len(r) > 0 for r in numpy_results] == [True, True, True, False]


def test_a_query_without_a_known_word_finds_nothing_not_the_wordless_passages(tmp_path, engine):
    corpus = tmp_path / "c.jsonl"
    write_jsonl(
        corpus,
        [
            {"id": "1", "title": "", "text": "It is."},  # stopwords only: no word to index
            {"id": "2", "title": "Cells", "text": "Cells make energy from sugar."},
        ],
    )
    retriever = BM25Retriever(build_test_index(tmp_path, [corpus], engine))
    assert retriever.search(["the of it is", "zzzz qqqq"], k=2) == [[], []]
    assert [h.passage.doc_id for h in retriever.search(["How do cells make energy?"], k=2)[0]] == ["2"]


def test_bm25s_is_imported_with_jax_kept_off_the_gpu(monkeypatch):
    """bm25s imports JAX when installed, and JAX then takes 75 % of a GPU's memory: openbook imports
    bm25s with JAX_PLATFORMS=cpu unless the user set it (recorded at the moment JAX is asked for)."""
    import importlib.abc
    import os
    import sys

    from openbook.index.bm25 import import_bm25s

    asked = []

    class RecordJax(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "jax":
                asked.append(os.environ.get("JAX_PLATFORMS"))
                raise ImportError("no jax in this test")  # bm25s then goes on without it
            return None

    monkeypatch.setattr(sys, "meta_path", [RecordJax(), *sys.meta_path])
    monkeypatch.setenv("JAX_PLATFORMS", "unset-after-the-test")  # so teardown restores the variable as it was
    for chosen in (None, "cuda"):
        if chosen is None:
            monkeypatch.delenv("JAX_PLATFORMS")
        else:
            monkeypatch.setenv("JAX_PLATFORMS", chosen)
        for name in [m for m in sys.modules if m == "bm25s" or m.startswith("bm25s.") or m == "jax"]:
            monkeypatch.delitem(sys.modules, name)  # restored after the test
        assert import_bm25s().BM25 is not None
    assert asked == ["cpu", "cuda"]
