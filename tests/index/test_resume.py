"""A build killed with SIGKILL in each stage (real processes, `build_process.py`), then the same
command completes with a store and index byte-identical to a build never stopped; the index that was
there serves until then."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from openbook.index.verify import verify_index
from openbook.retrieve import BM25Retriever
from tests.conftest import ENCODER_BASE, write_jsonl
from tests.index.build_process import checksums, run, said


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Two inputs of 60 short articles each: 120 passages, 8 store batches of 16."""
    folder = tmp_path_factory.mktemp("corpus")
    words = "light cell energy plate water glass sugar acid wave orbit".split()
    for name in ("a", "b"):
        write_jsonl(
            folder / f"{name}.jsonl",
            [
                {"id": f"{name}{i}", "title": f"{name} {i}", "text": f"Article {i} of {name} is about {words[i % 10]}."}
                for i in range(60)
            ],
        )
    return folder


@pytest.fixture(scope="module")
def reference(corpus, tmp_path_factory) -> Path:
    """The index built in one go."""
    out = tmp_path_factory.mktemp("reference") / "index"
    done = run("none", 0, "index", corpus / "a.jsonl", corpus / "b.jsonl", "--out", out, "--quiet")
    assert done.returncode == 0, done.stderr
    return out


@pytest.mark.parametrize(
    ("point", "calls"),
    [("passages", 3), ("passages", 6), ("bm25", 1)],
    ids=["passages-first-input", "passages-second-input", "bm25"],
)
def test_killed_in_a_stage_the_same_command_completes_the_same_bytes(corpus, reference, tmp_path, point, calls):
    out = tmp_path / "index"
    command = ("index", corpus / "a.jsonl", corpus / "b.jsonl", "--out", out, "--quiet")
    killed = run(point, calls, *command)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not out.exists()  # nothing in place until the build is complete
    assert (tmp_path / ".index.building" / "build-state.json").is_file()
    resumed = run("none", 0, *command)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming the build stopped in" in said(resumed)
    assert "taking over the lock" in said(resumed) and "no longer running" in said(resumed)
    assert_same_index(out, reference)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]  # no building folder, no lock left


def test_killed_while_replacing_the_index_the_same_command_finds_it_replaced(corpus, reference, tmp_path):
    out = tmp_path / "index"
    assert run("none", 0, "index", corpus / "a.jsonl", "--out", out, "--quiet").returncode == 0
    command = ("index", corpus / "a.jsonl", corpus / "b.jsonl", "--out", out, "--overwrite", "--quiet")
    killed = run("exchange", 1, *command)  # the new index in place, the old one beside it
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert (tmp_path / ".index.building").is_dir() and (out / "build-state.json").is_file()
    again = run("none", 0, *command)
    assert again.returncode == 0, again.stderr
    assert "already holds this index, whole: kept" in said(again)  # --overwrite never rebuilds the same index
    assert_same_index(out, reference)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]


def assert_same_index(out: Path, reference: Path) -> None:
    assert checksums(out) == checksums(reference)
    assert (
        json.loads((out / "manifest.json").read_text())["parts"]
        == json.loads((reference / "manifest.json").read_text())["parts"]
    )
    assert not verify_index(out).problems


def test_resumed_passages_start_at_the_input_and_document_of_the_last_checkpoint(corpus, tmp_path):
    out = tmp_path / "index"
    command = ("index", corpus / "a.jsonl", corpus / "b.jsonl", "--out", out, "--quiet")
    assert run("passages", 6, *command).returncode == -signal.SIGKILL
    state = json.loads((tmp_path / ".index.building" / "build-state.json").read_text())
    # the fifth batch of 16 passages was the last one checkpointed: 80 passages, 20 documents into b.jsonl
    assert (state["passages"]["input"], state["passages"]["consumed"], state["passages"]["batches"]) == (1, 20, 5)
    resumed = run("none", 0, *command)
    assert f"passages, at {corpus / 'b.jsonl'} after its document 20 (80 passages kept)" in said(resumed)


def test_a_killed_overwrite_leaves_the_old_index_serving(corpus, reference, tmp_path):
    out = tmp_path / "index"
    first = run("none", 0, "index", corpus / "a.jsonl", "--out", out, "--quiet")
    assert first.returncode == 0, first.stderr
    before = checksums(out)
    command = ("index", corpus / "a.jsonl", corpus / "b.jsonl", "--out", out, "--overwrite", "--quiet")
    for point, calls in (("passages", 4), ("bm25", 1)):
        assert run(point, calls, *command).returncode == -signal.SIGKILL
        assert checksums(out) == before and not verify_index(out).problems
        served = BM25Retriever(out)  # the index of a.jsonl alone, whole
        assert len(served.store) == 60 and served.search(["sugar"], k=1)[0][0].passage.doc_id.startswith("a")
    resumed = run("none", 0, *command)  # the same command, --overwrite and all: it resumes
    assert resumed.returncode == 0, resumed.stderr
    assert_same_index(out, reference)


def test_killed_while_embedding_the_same_command_completes_the_same_vectors(corpus, tmp_path, minilm):
    out, reference = tmp_path / "index", tmp_path / "reference"
    dense = ("--dense", ENCODER_BASE, "--shard-rows", "20", "--quiet")
    done = run("none", 0, "index", corpus / "a.jsonl", "--out", reference, *dense)
    assert done.returncode == 0, done.stderr
    # BM25 built, then the dense part killed in its fourth batch of 8 (a row cut in two)
    killed = run("dense", 4, "index", corpus / "a.jsonl", "--out", out, *dense)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not out.exists()
    resumed = run("none", 0, "index", corpus / "a.jsonl", "--out", out, *dense)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming the dense index at passage 24 of 60" in said(resumed)
    assert_same_index(out, reference)
    assert [p for p in checksums(out) if p.startswith("dense/")] == [f"dense/shard-0000{i}.f16" for i in range(3)]
    # added to an index already built: killed, then completed, the BM25 files linked from it, not rebuilt
    bm25_only = tmp_path / "added"
    assert run("none", 0, "index", corpus / "a.jsonl", "--out", bm25_only, "--quiet").returncode == 0
    store_inode = (bm25_only / "passages.arrow").stat().st_ino
    assert run("dense", 2, "index", corpus / "a.jsonl", "--out", bm25_only, *dense).returncode == -signal.SIGKILL
    assert "dense" not in json.loads((bm25_only / "manifest.json").read_text())["indexes"]  # the old one serves
    resumed = run("none", 0, "index", corpus / "a.jsonl", "--out", bm25_only, *dense)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_index(bm25_only, reference)
    assert (bm25_only / "passages.arrow").stat().st_ino == store_inode
