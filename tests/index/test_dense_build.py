"""Building the dense store (`index.dense_build`): embedding every passage into fp16 shards with the
shipped embedder, resumed after a stop, the writer resumed after a half-written row."""

from __future__ import annotations

import numpy as np
import pytest

from openbook.embed import EmbedderSettings
from openbook.errors import OpenbookError
from openbook.index.dense import DENSE_DIR, DenseInfo, ShardedMatmulSearch, shard_paths
from openbook.index.dense_build import DenseWriter, build_dense_index
from openbook.retrieve.dense import DenseRetriever
from tests.conftest import ENCODER_BASE, SEMANTIC_QUERY, write_vectors


def test_dense_index_in_shards_finds_by_meaning(dense_index):
    info = DenseInfo.load(dense_index / DENSE_DIR)
    assert info.complete and info.passages == 4 and info.model == ENCODER_BASE
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
    resumed = build_dense_index(dense_index, EmbedderSettings(ENCODER_BASE), shard_rows=3, show_progress=False)
    assert resumed.complete
    again = np.concatenate([np.fromfile(p, dtype="<f2") for p in shard_paths(folder)]).reshape(-1, 384)
    np.testing.assert_allclose(again.astype(np.float32), complete.astype(np.float32), atol=2e-3)
    with pytest.raises(OpenbookError, match="shard_rows = 3, not 5; pass --overwrite to replace it"):
        build_dense_index(dense_index, EmbedderSettings(ENCODER_BASE), shard_rows=5, show_progress=False)


def test_writer_resumes_after_a_half_written_row(tmp_path, vectors):
    folder = write_vectors(tmp_path, vectors[:250], shard_rows=100, complete=False)
    with (folder / "shard-00002.f16").open("ab") as handle:
        handle.write(b"\x01\x02\x03")  # a row cut by a stop
    info = DenseInfo.load(folder)
    writer = DenseWriter(folder, info)
    assert writer.rows == 250
    writer.add(vectors[250:])
    result = ShardedMatmulSearch(folder).search(vectors[[0, 999]], 1)
    assert result.rows[:, 0].tolist() == [0, 999]
    assert writer.rows == 1000 and len(list(folder.glob("shard-*.f16"))) == 10
