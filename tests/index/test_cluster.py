"""An index built on a Ray cluster is the index one process builds: BM25 shards weighted by the whole
corpus score as one index does; on a real two-node cluster (two raylets on 127.0.0.1) the store and
the dense shards are the same bytes and both nodes did work; a driver killed with SIGKILL resumes at
the work it had not done."""

from __future__ import annotations

import gzip
import json
import signal
from pathlib import Path

import numpy as np
import pytest

from openbook.cli.main import bare_ray_means_local
from openbook.errors import InputError
from openbook.index.bm25 import Bm25sIndex, CorpusStats, ShardedBm25Index, new_builder, save_params, shard_folder
from openbook.index.build import build_index
from openbook.index.cluster import ClusterSettings
from openbook.index.info import index_info
from openbook.retrieve import BM25Retriever
from tests.conftest import ENCODER_BASE, write_jsonl
from tests.index.build_process import checksums, run, said

WORDS = "light cell energy plate water glass sugar acid wave orbit star stone river salt iron gene".split()
QUERIES = ["light energy of a star", "water and salt in the river", "iron gene", "sugar acid wave", "orbit", "zzz"]


def texts(count: int) -> list[str]:
    """Passages of uneven length and word mix, so document frequencies and lengths differ by shard."""
    return [" ".join(WORDS[(i * 7 + j * j) % len(WORDS)] for j in range(3 + i % 11)) for i in range(count)]


def test_bm25_shards_weighted_by_the_whole_corpus_score_as_one_index(tmp_path):
    corpus = texts(200)
    one = new_builder("bm25s", tmp_path / "one")
    one.add(corpus)
    save_params(tmp_path / "one", one.finish())
    cuts = [0, 37, 120, 200]
    ranges = list(zip(cuts, cuts[1:]))
    stats = CorpusStats.merged([CorpusStats.of_texts(corpus[a:b]) for a, b in ranges])
    assert (stats.passages, stats.tokens) == (200, CorpusStats.of_texts(corpus).tokens)
    shards = []
    for number, (a, b) in enumerate(ranges):
        builder = new_builder("bm25s", tmp_path / shard_folder(number), corpus=stats)
        builder.add(corpus[a:b])
        builder.finish()
        shards.append(Bm25sIndex(tmp_path / shard_folder(number)))
    rows, scores = Bm25sIndex(tmp_path / "one").search(QUERIES, 15)
    sharded_rows, sharded_scores = ShardedBm25Index(shards).search(QUERIES, 15)
    assert np.array_equal(scores, sharded_scores)  # bit for bit
    for q in range(len(QUERIES)):  # the same passages, but for the order of equal scores
        assert sorted(zip(scores[q], rows[q])) == sorted(zip(sharded_scores[q], sharded_rows[q]))
    # a shard too small for numba on its own is scored with it where the whole index is large enough
    assert Bm25sIndex(tmp_path / shard_folder(0), numba_from_passages=100)._engine.backend == "numpy"
    numba_shard = Bm25sIndex(tmp_path / shard_folder(0), numba_from_passages=100, index_passages=200)
    assert numba_shard._engine.backend == "numba"
    assert np.array_equal(numba_shard.search(QUERIES, 15)[1], shards[0].search(QUERIES, 15)[1])
    # weighted by its own shard alone, a passage scores otherwise: the statistics matter
    alone = new_builder("bm25s", tmp_path / "alone")
    alone.add(corpus[:37])
    alone.finish()
    assert not np.array_equal(Bm25sIndex(tmp_path / "alone").search(QUERIES[:1], 5)[1], scores[:1, :5])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> list[Path]:
    """Three inputs of 40 articles (120 passages), a document id repeated across two of them."""
    folder = tmp_path_factory.mktemp("cluster-corpus")
    inputs = []
    for name in ("a", "b", "c"):
        records = [
            {"id": f"{name}{i}", "title": f"{name} {i}", "text": f"Article {i} of {name}: " + texts(40)[i] + "."}
            for i in range(40)
        ]
        if name == "c":
            records[5]["id"] = "a5"  # dropped: its id came before, as a single process drops it
        inputs.append(write_jsonl(folder / f"{name}.jsonl", records))
    return inputs


def test_on_two_nodes_the_index_is_the_single_process_one(corpus, two_nodes, tmp_path, minilm):
    from openbook.embed import EmbedderSettings
    from openbook.index.dense_build import DenseSettings

    dense = DenseSettings(EmbedderSettings(ENCODER_BASE), shard_rows=32, batch_passages=16)
    alone = build_index(corpus, tmp_path / "alone", show_progress=False, dense=dense)
    settings = ClusterSettings(two_nodes.address, unit_documents=7, bm25_shard_rows=25, embed_workers=2)
    spread = build_index(corpus, tmp_path / "spread", show_progress=False, dense=dense, cluster=settings)

    assert (spread.passages, spread.documents) == (alone.passages, alone.documents) == (119, 119)
    assert spread.dropped["duplicate document id"]["examples"] == [f"{corpus[2]} (id 'a5')"]
    same = checksums(tmp_path / "alone")
    different = checksums(tmp_path / "spread")
    assert different["passages.arrow"] == same["passages.arrow"]  # the same passages, ids and batches
    shards = [part for part in same if part.startswith("dense/")]
    assert len(shards) == 4 and all(different[part] == same[part] for part in shards)
    bm25 = spread.indexes["bm25"]
    assert bm25["shards"] == [25, 25, 25, 25, 19] and "shards" not in alone.indexes["bm25"]
    one, many = BM25Retriever(tmp_path / "alone"), BM25Retriever(tmp_path / "spread")
    for found, sharded in zip(one.search(QUERIES, 10), many.search(QUERIES, 10)):
        assert [h.score for h in found] == [h.score for h in sharded]  # bit for bit
        # the same passages, but among equal scores at the last place (the inputs repeat texts)
        above = [h.score for h in found][-1:]
        assert {(h.score, h.passage.id) for h in found if [h.score] != above} == {
            (h.score, h.passage.id) for h in sharded if [h.score] != above
        }
    # every stage ran on both nodes
    work = spread.cluster["work"]
    assert spread.cluster["nodes"] == 2
    for stage in ("passages (units chunked)", "bm25 (shards built)", "dense (shards embedded)"):
        assert len(work[stage]) == 2, (stage, work)
    assert sum(work["passages (units chunked)"].values()) == 18  # 6 units of 7 documents per input of 40
    described = " ".join(index_info(tmp_path / "spread").lines())
    assert (
        "5 shards of up to 25 passages" in described and "built on Ray (2 nodes): passages (units chunked)" in described
    )


def test_tantivy_is_built_on_the_driver_the_rest_on_the_cluster(corpus, two_nodes, tmp_path):
    pytest.importorskip("tantivy")
    from openbook.index.build import IndexSettings

    settings = IndexSettings(bm25_engine="tantivy")
    build_index(corpus, tmp_path / "alone", settings, show_progress=False)
    cluster = ClusterSettings(two_nodes.address, unit_documents=7)
    spread = build_index(corpus, tmp_path / "spread", settings, show_progress=False, cluster=cluster)
    assert spread.indexes["bm25"]["engine"] == "tantivy" and "bm25 (shards built)" not in spread.cluster["work"]
    assert len(spread.cluster["work"]["passages (units chunked)"]) == 2
    one, many = BM25Retriever(tmp_path / "alone"), BM25Retriever(tmp_path / "spread")
    for found, same in zip(one.search(QUERIES, 10), many.search(QUERIES, 10)):
        assert [(h.score, h.passage.id) for h in found] == [(h.score, h.passage.id) for h in same]


def test_dense_shards_a_cluster_cannot_embed_as_one_process_are_refused_before_any_work(corpus, tmp_path):
    from openbook.embed import EmbedderSettings
    from openbook.errors import ConfigError
    from openbook.index.dense_build import DenseSettings

    dense = DenseSettings(EmbedderSettings(ENCODER_BASE), shard_rows=100, batch_passages=64)
    with pytest.raises(ConfigError, match="--shard-rows 100 is not a multiple of 64 passages per batch"):
        build_index(corpus, tmp_path / "index", show_progress=False, dense=dense, cluster=ClusterSettings())
    assert list(tmp_path.iterdir()) == []  # nothing read, nothing started


def test_ray_without_an_address_starts_a_cluster_here(corpus):
    assert bare_ray_means_local(["c.jsonl", "--ray"]) == ["c.jsonl", "--ray", "local"]
    assert bare_ray_means_local(["--ray", "--quiet"]) == ["--ray", "local", "--quiet"]
    assert bare_ray_means_local(["--ray", "10.0.0.2:6379"]) == ["--ray", "10.0.0.2:6379"]
    assert bare_ray_means_local(["--ray", str(corpus[0]), "--out", "x"]) == [
        "--ray",
        "local",
        str(corpus[0]),
        "--out",
        "x",
    ]


def test_an_input_that_fails_on_a_worker_is_named_as_in_one_process(corpus, two_nodes, tmp_path):
    lines = [json.dumps({"id": str(i), "title": f"T{i}", "text": f"Passage number {i} " * 8}) for i in range(3000)]
    whole = gzip.compress("\n".join(lines).encode())
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(whole[: len(whole) * 2 // 3])
    settings = ClusterSettings(two_nodes.address, unit_documents=500)
    with pytest.raises(InputError, match=r"cut.jsonl.gz:\d+: damaged or truncated"):
        build_index([corpus[0], cut], tmp_path / "index", show_progress=False, cluster=settings)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.jsonl.gz"]  # nothing half-built is left


def test_a_driver_killed_mid_build_resumes_at_the_work_not_done(corpus, tmp_path, minilm):
    pytest.importorskip("ray", reason="the cluster build needs Ray (pip install -e .[dev])")
    dense = ("--dense", ENCODER_BASE, "--shard-rows", "32", "--quiet")
    reference = tmp_path / "reference"
    assert run("none", 0, "index", *corpus, "--out", reference, *dense).returncode == 0
    out = tmp_path / "index"
    command = ("index", *corpus, "--out", out, "--ray", "--unit-documents", "7", "--bm25-shard-rows", "25", *dense)
    # killed while writing the store from the units: every unit chunked, none needed again
    killed = run("cluster-store", 9, *command)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not out.exists() and len(list((tmp_path / ".index.building" / "units").iterdir())) == 18
    # killed with every BM25 shard built, before the shards are put in place
    killed = run("bm25", 1, *command)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert "resuming the build stopped in" in said(killed) and "passages, from the start" in said(killed)
    # killed with every dense shard embedded, before the dense part says it is complete
    killed = run("cluster-dense", 1, *command)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert "BM25" in said(killed)  # resumed at its BM25 stage
    # the shards of other dense settings are never mixed in
    other = run("none", 0, *command[:-3], "--shard-rows", "64", "--quiet")
    assert other.returncode == 2 and "shard_rows = 32, not 64" in said(other)
    resumed = run("none", 0, *command)
    assert resumed.returncode == 0, resumed.stderr

    def store_and_vectors(index: Path) -> dict[str, str]:  # BM25 is sharded in one, whole in the other
        return {part: digest for part, digest in checksums(index).items() if not part.startswith("bm25/")}

    assert store_and_vectors(out) == store_and_vectors(reference) and len(store_and_vectors(out)) == 5
    work = json.loads((out / "manifest.json").read_text())["cluster"]["work"]
    assert work == {}  # units, BM25 shards and dense shards were on disk: the last run redid none of them
    assert [h.score for h in BM25Retriever(out).search(QUERIES, 10)[0]] == [
        h.score for h in BM25Retriever(reference).search(QUERIES, 10)[0]
    ]
