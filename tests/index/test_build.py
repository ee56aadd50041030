"""Building an index (`index.build`): the manifest it writes, the same passages from the same corpus
and settings, an index kept or refused, inputs checked before any work, folders expanded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from openbook.corpus import ChunkSettings, FieldMap
from openbook.errors import OpenbookError
from openbook.index.build import IndexSettings, build_index
from openbook.index.manifest import Manifest
from openbook.index.store import PassageStore
from openbook.provenance import sha256_of
from tests.conftest import ARTICLES, build_test_index, write_jsonl


@pytest.fixture(params=["bm25s", "tantivy"])
def engine(request) -> str:
    return request.param


def test_manifest_describes_the_index(tmp_path, articles_jsonl, engine):
    broken = write_jsonl(
        tmp_path / "broken.jsonl",
        [{"id": "1", "title": "Dup", "text": "Duplicate id."}, {"id": "9", "title": "Empty", "text": ""}],
    )
    out = build_test_index(tmp_path, [articles_jsonl, broken], engine, chunk=ChunkSettings(size=256, overlap=40))
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
    first = PassageStore(build_test_index(tmp_path, [articles_jsonl], name="a", chunk=ChunkSettings(size=64)))
    second = PassageStore(build_test_index(tmp_path, [articles_jsonl], name="b", chunk=ChunkSettings(size=64)))
    assert len(first) > len(ARTICLES)  # small chunks: several passages per article
    assert first.get(range(len(first))) == second.get(range(len(second)))


def test_keeps_the_same_index_and_refuses_to_overwrite_another_unless_asked(tmp_path, articles_jsonl):
    out = build_test_index(tmp_path, [articles_jsonl])
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
    out = build_test_index(tmp_path, [tmp_path / "extracted"])
    assert Manifest.load(out).documents == 2


def test_inputs_that_share_a_file_name_keep_their_id_less_documents_apart(tmp_path):
    for folder, text in (("a", "Photosynthesis turns light into sugar."), ("b", "Mitochondria make ATP for cells.")):
        (tmp_path / "in" / folder).mkdir(parents=True)
        (tmp_path / "in" / folder / "part-0.jsonl").write_text(json.dumps({"title": folder, "text": text}) + "\n")
    out = build_test_index(tmp_path, [tmp_path / "in"])
    manifest = Manifest.load(out)
    assert manifest.documents == 2 and not manifest.dropped
    assert sorted(p.doc_id for batch in PassageStore(out).iter_batches() for p in batch) == [
        "a/part-0.jsonl:1",
        "b/part-0.jsonl:1",
    ]
