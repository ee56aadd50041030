"""The parts of an index tied together and checked (`index.parts`, `index.verify`): every part in the
manifest with its size and checksum, the build id in each; a part cut short, missing or from another
index named at open with the command that rebuilds it; `openbook index` keeps only an index that
passes the same check; the full check reads every byte."""

from __future__ import annotations

import json
import shutil

import pytest

from openbook.errors import OpenbookError
from openbook.index.bm25 import open_index
from openbook.index.build import build_index
from openbook.index.dense import DENSE_DIR, DenseInfo, open_vector_search
from openbook.index.manifest import Manifest
from openbook.index.parts import DamagedIndex, part_files
from openbook.index.store import PassageStore
from openbook.index.verify import check_index, verify_index
from openbook.provenance import sha256_of
from tests.conftest import write_jsonl


@pytest.fixture
def index(tmp_path, articles_jsonl):
    out = tmp_path / "index"
    build_index([articles_jsonl], out, show_progress=False)
    return out


@pytest.fixture
def other_index(tmp_path):
    """An index of another, larger corpus."""
    corpus = write_jsonl(
        tmp_path / "other.jsonl", [{"id": i, "title": "Other", "text": f"Another text number {i}."} for i in range(50)]
    )
    out = tmp_path / "other"
    build_index([corpus], out, show_progress=False)
    return out


def test_every_part_is_recorded_with_its_size_and_checksum_and_carries_the_build_id(dense_index):
    manifest = Manifest.load(dense_index)
    assert sorted(manifest.parts) == sorted(part_files(dense_index))
    assert {"passages.arrow", "bm25/data.csc.index.npy", "dense/shard-00000.f16", "dense/shard-00001.f16"} <= set(
        manifest.parts
    )
    for part, record in manifest.parts.items():
        assert (record.bytes, record.sha256) == ((dense_index / part).stat().st_size, sha256_of(dense_index / part))
    assert len(manifest.build) == 16 and manifest.build == manifest.identity()
    assert PassageStore(dense_index).build() == manifest.build
    assert json.loads((dense_index / "bm25" / "openbook.bm25.json").read_text())["build"] == manifest.build
    assert DenseInfo.load(dense_index / DENSE_DIR).build == manifest.build
    assert manifest.indexes["dense"]["model"] == "all-minilm-l6-v2"
    assert not verify_index(dense_index).problems


def cut(path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


@pytest.mark.parametrize(
    ("damage", "opener", "named"),
    [
        (lambda i, o: cut(i / "passages.arrow", 1000), PassageStore, r"passages.arrow has 1,000 bytes, not the"),
        (lambda i, o: (i / "passages.arrow").unlink(), PassageStore, r"passages.arrow is missing"),
        (
            lambda i, o: shutil.copy(o / "passages.arrow", i / "passages.arrow"),  # larger: 50 passages, not 4
            PassageStore,
            r"passages.arrow has [\d,]+ bytes, not the",
        ),
        (lambda i, o: cut(i / "bm25" / "data.csc.index.npy", 100), open_index, r"data.csc.index.npy has 100 bytes"),
        (
            lambda i, o: shutil.copy(o / "bm25" / "vocab.index.json", i / "bm25" / "vocab.index.json"),
            open_index,
            r"bm25/vocab.index.json has [\d,]+ bytes, not the",
        ),
    ],
    ids=["store-cut", "store-missing", "store-of-another-index", "bm25-array-cut", "bm25-file-of-another-index"],
)
def test_a_damaged_part_is_named_at_open_with_the_command_that_rebuilds_the_index(
    index, other_index, articles_jsonl, damage, opener, named
):
    damage(index, other_index)
    with pytest.raises(DamagedIndex, match=named) as raised:
        opener(index)
    assert f"the index in {index} is damaged: rebuild it with `openbook index {articles_jsonl} --out {index}`" in str(
        raised.value
    )
    with pytest.raises(DamagedIndex):
        check_index(index)
    assert verify_index(index).problems


def test_a_part_of_another_index_of_the_same_size_is_named_by_its_build_id(index, other_index):
    shutil.copy(other_index / "passages.arrow", index / "passages.arrow")
    manifest = Manifest.load(index)
    manifest.parts["passages.arrow"] = Manifest.load(other_index).parts["passages.arrow"]  # sizes that happen to agree
    manifest.save(index)
    with pytest.raises(DamagedIndex, match=r"passages.arrow belongs to another index \(build \w+, not \w+\)"):
        PassageStore(index)


def test_an_index_built_before_parts_were_recorded_opens_and_counts_still_tie_its_parts(index, other_index):
    legacy = json.loads((index / "manifest.json").read_text())
    del legacy["build"], legacy["parts"]
    (index / "manifest.json").write_text(json.dumps(legacy))
    assert len(PassageStore(index)) == 4 and open_index(index).search(["light"], 1)[0].shape == (1, 1)
    assert not verify_index(index).problems
    shutil.copy(other_index / "passages.arrow", index / "passages.arrow")  # 50 passages for an index of 4
    with pytest.raises(DamagedIndex, match=r"passages.arrow holds 50 passages, the index 4 passages"):
        PassageStore(index)


def test_a_truncated_store_without_a_manifest_is_named_not_a_bare_arrow_error(index):
    (index / "manifest.json").unlink()
    cut(index / "passages.arrow", 1000)
    with pytest.raises(OpenbookError, match=r"passages.arrow is not a whole passage store \("):
        PassageStore(index)


@pytest.mark.parametrize(
    "damage",
    [
        lambda i: (i / "passages.arrow").unlink(),
        lambda i: cut(i / "passages.arrow", 1000),
        lambda i: cut(i / "bm25" / "indptr.csc.index.npy", 50),
    ],
    ids=["store-deleted", "store-cut", "bm25-cut"],
)
def test_the_same_command_rebuilds_a_damaged_index_instead_of_keeping_it(index, articles_jsonl, damage, capsys):
    damage(index)
    build_index([articles_jsonl], index, show_progress=False)
    said = " ".join(capsys.readouterr().err.split())
    assert f"{index} is damaged (" in said and "rebuilding it" in said and "kept" not in said
    assert not verify_index(index).problems
    build_index([articles_jsonl], index, show_progress=False)
    assert "whole: kept" in " ".join(capsys.readouterr().err.split())


def test_verify_reads_every_byte_and_names_every_problem(index):
    store = index / "passages.arrow"
    data = bytearray(store.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped bit: the size and every open check still pass
    store.write_bytes(bytes(data))
    check_index(index)
    (index / "bm25" / "stray.npy").write_bytes(b"x")
    problems = verify_index(index).problems
    assert problems[:2] == [  # then the batch the flipped bit lands in (its text no longer UTF-8), if it does
        f"{store} does not have the checksum it was built with (its bytes changed)",
        f"{index / 'bm25' / 'stray.npy'} is not a part of this index",
    ]


def test_a_faiss_file_is_tied_to_its_index_and_built_again_when_it_is_not(dense_index):
    pytest.importorskip("faiss")
    folder = dense_index / DENSE_DIR
    open_vector_search(dense_index, "faiss-flat")
    record = json.loads((folder / "faiss-flat.index.json").read_text())
    assert record["build"] == Manifest.load(dense_index).build and record["vectors"] == 4
    assert not verify_index(dense_index).problems
    (folder / "faiss-flat.index").write_bytes(b"\0" * 10)  # cut short: not read, built again
    assert open_vector_search(dense_index, "faiss-flat").count == 4
    assert not verify_index(dense_index).problems
    record["build"] = "0000000000000000"
    (folder / "faiss-flat.index.json").write_text(json.dumps(record))
    assert any("was built for another index" in problem for problem in verify_index(dense_index).problems)
