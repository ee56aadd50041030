from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pytest

from conftest import ARTICLES, write_jsonl
from openbook.corpus import ChunkSettings, FieldMap
from openbook.errors import OpenbookError
from openbook.index.bm25 import _english_tokenizer
from openbook.index.build import IndexSettings, build_index
from openbook.index.manifest import Manifest
from openbook.index.store import PassageStore
from openbook.provenance import sha256_of
from openbook.retrieve import BM25Retriever


@pytest.fixture(params=["bm25s", "tantivy"])
def engine(request) -> str:
    return request.param


def build(tmp_path: Path, inputs: list[Path], engine: str = "bm25s", name: str = "index", **kwargs) -> Path:
    out = tmp_path / name
    build_index(inputs, out, IndexSettings(bm25_engine=engine, **kwargs), show_progress=False)
    return out


def test_search_finds_the_right_article(tmp_path, articles_jsonl, engine):
    retriever = BM25Retriever(build(tmp_path, [articles_jsonl], engine))
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
    out = build(tmp_path, [articles_jsonl])
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


def test_manifest_describes_the_index(tmp_path, articles_jsonl, engine):
    broken = write_jsonl(
        tmp_path / "broken.jsonl",
        [{"id": "1", "title": "Dup", "text": "Duplicate id."}, {"id": "9", "title": "Empty", "text": ""}],
    )
    out = build(tmp_path, [articles_jsonl, broken], engine, chunk=ChunkSettings(size=256, overlap=40))
    manifest = Manifest.load(out)
    assert manifest.chunking == {"size": 256, "overlap": 40}
    assert [Path(i.path).name for i in manifest.inputs] == ["articles.jsonl", "broken.jsonl"]
    assert manifest.inputs[0].sha256 == sha256_of(articles_jsonl)
    assert manifest.inputs[0].bytes == articles_jsonl.stat().st_size
    assert manifest.inputs[0].documents == 4 and manifest.inputs[1].documents == 0
    assert manifest.documents == 4 and manifest.passages == len(PassageStore(out))
    assert {r: v["count"] for r, v in manifest.dropped.items()} == {"duplicate document id": 1, "empty text": 1}
    assert manifest.indexes["bm25"]["engine"] == engine
    assert {"python", "openbook", "pyarrow", "bm25s"} <= set(manifest.versions)
    assert json.loads((out / "manifest.json").read_text())["passages"] == manifest.passages


def test_same_corpus_and_settings_give_the_same_passages(tmp_path, articles_jsonl):
    first = PassageStore(build(tmp_path, [articles_jsonl], name="a", chunk=ChunkSettings(size=64)))
    second = PassageStore(build(tmp_path, [articles_jsonl], name="b", chunk=ChunkSettings(size=64)))
    assert len(first) > len(ARTICLES)  # small chunks: several passages per article
    assert first.get(range(len(first))) == second.get(range(len(second)))


def test_keeps_the_same_index_and_refuses_to_overwrite_another_unless_asked(tmp_path, articles_jsonl):
    out = build(tmp_path, [articles_jsonl])
    built = (out / "manifest.json").read_text()
    build_index([articles_jsonl], out, show_progress=False)  # same inputs and settings: kept as it is
    assert (out / "manifest.json").read_text() == built
    with pytest.raises(OpenbookError, match="not empty"):
        build_index([articles_jsonl], out, IndexSettings(chunk=ChunkSettings(size=128)), show_progress=False)
    with pytest.raises(OpenbookError, match="not empty"):  # other columns read as the text: not the same index
        build_index([articles_jsonl], out, IndexSettings(fields=FieldMap(text="title")), show_progress=False)
    build_index([articles_jsonl], out, show_progress=False, overwrite=True)
    stranger = tmp_path / "someone-else"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    with pytest.raises(OpenbookError, match="not an openbook index"):
        build_index([articles_jsonl], stranger, show_progress=False, overwrite=True)
    assert (stranger / "notes.txt").exists()


def test_a_bad_input_is_refused_before_any_work(tmp_path, articles_jsonl):
    bad = tmp_path / "notes.txt"
    bad.write_text("just words\n")
    out = tmp_path / "never"
    with pytest.raises(OpenbookError, match="cannot tell the corpus format"):
        build_index([articles_jsonl, bad], out, show_progress=False)
    assert not out.exists()


def test_folder_inputs_are_expanded(tmp_path):
    folder = tmp_path / "extracted" / "AA"
    folder.mkdir(parents=True)
    (folder / "wiki_00").write_text('<doc id="1" url="u" title="Alpha">\nAlpha\n\nAlpha text here.\n</doc>\n')
    (folder / "wiki_01").write_text('<doc id="2" url="u" title="Beta">\nBeta\n\nBeta text here.\n</doc>\n')
    out = build(tmp_path, [tmp_path / "extracted"])
    assert Manifest.load(out).documents == 2


def test_numba_and_numpy_scorers_agree(tmp_path, articles_jsonl):
    from openbook.index.bm25 import Bm25sIndex

    out = build(tmp_path, [articles_jsonl], chunk=ChunkSettings(size=64))
    queries = ["light in glass", "cell DNA mother", "plates and volcanoes", "qqqq zzzz"]
    every = len(PassageStore(out))  # rank all passages, so ties at a cut-off cannot differ

    def scored(index: Bm25sIndex) -> list[dict[int, float]]:
        rows, scores = index.search(queries, every)
        return [{int(r): round(float(s), 4) for r, s in zip(rs, ss) if s > 0} for rs, ss in zip(rows, scores)]

    numpy_results = scored(Bm25sIndex(out / "bm25"))
    assert scored(Bm25sIndex(out / "bm25", numba_from_passages=0)) == numpy_results
    assert [len(r) > 0 for r in numpy_results] == [True, True, True, False]


def test_store_lookup_across_record_batches(tmp_path):
    from openbook.index.store import PassageWriter
    from openbook.records import Passage

    writer = PassageWriter(tmp_path, batch_rows=3)
    passages = [Passage(id=f"d:{i}", doc_id="d", title="T", text=f"text {i}", chunk=i) for i in range(10)]
    for passage in passages:
        writer.add([passage])
    assert writer.close() == 10
    store = PassageStore(tmp_path)
    assert len(store) == 10
    assert store.get([9, 0, 4, 3, 4]) == [passages[i] for i in (9, 0, 4, 3, 4)]
    assert [p for batch in store.iter_batches() for p in batch] == passages
    with pytest.raises(IndexError):
        store.get([10])


def test_a_damaged_manifest_is_named(tmp_path, articles_jsonl):
    out = build(tmp_path, [articles_jsonl])
    assert not (out / "manifest.json.partial").exists()  # saved by write-then-rename
    (out / "manifest.json").write_text('{"created": "2026-01-01", "chunk')  # a save cut short
    with pytest.raises(OpenbookError, match="manifest.json: not an openbook index manifest"):
        BM25Retriever(out)


def test_inputs_that_share_a_file_name_keep_their_id_less_documents_apart(tmp_path):
    for folder, text in (("a", "Photosynthesis turns light into sugar."), ("b", "Mitochondria make ATP for cells.")):
        (tmp_path / "in" / folder).mkdir(parents=True)
        (tmp_path / "in" / folder / "part-0.jsonl").write_text(json.dumps({"title": folder, "text": text}) + "\n")
    out = build(tmp_path, [tmp_path / "in"])
    manifest = Manifest.load(out)
    assert manifest.documents == 2 and not manifest.dropped
    assert sorted(p.doc_id for batch in PassageStore(out).iter_batches() for p in batch) == [
        "a/part-0.jsonl:1",
        "b/part-0.jsonl:1",
    ]


def test_a_query_without_a_known_word_finds_nothing_not_the_wordless_passages(tmp_path, engine):
    corpus = tmp_path / "c.jsonl"
    write_jsonl(
        corpus,
        [
            {"id": "1", "title": "", "text": "It is."},  # stopwords only: no word to index
            {"id": "2", "title": "Cells", "text": "Cells make energy from sugar."},
        ],
    )
    retriever = BM25Retriever(build(tmp_path, [corpus], engine))
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
