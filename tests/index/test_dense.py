"""The dense store's search (`index.dense`): exact blocked search over fp16 shards, the lone-query fp16
filter, incomplete or damaged stores refused."""

from __future__ import annotations

import numpy as np
import pytest

from openbook.embed import unit_rows
from openbook.errors import OpenbookError
from openbook.index.dense import DENSE_DIR, DenseInfo, ShardedMatmulSearch, open_vector_search
from openbook.index.dense_build import DenseWriter
from tests.conftest import write_vectors


def brute_force(vectors, queries, k):
    widened = vectors.astype(np.float16).astype(np.float32)
    scores = queries @ widened.T
    rows = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return rows, np.take_along_axis(scores, rows, axis=1)


def test_blocked_search_is_exact_across_shards_and_blocks(tmp_path, vectors):
    folder = write_vectors(tmp_path, vectors, shard_rows=300)
    assert [p.stat().st_size for p in sorted(folder.glob("shard-*.f16"))] == [300 * 64] * 3 + [100 * 64]
    queries = unit_rows(np.random.default_rng(1).standard_normal((50, 32)))
    expected_rows, expected_scores = brute_force(vectors, queries, 10)
    for block_rows, query_batch in [(16384, 1024), (64, 7), (5, 50)]:
        result = ShardedMatmulSearch(folder, block_rows=block_rows, query_batch=query_batch).search(queries, 10)
        np.testing.assert_array_equal(result.rows, expected_rows)
        np.testing.assert_allclose(result.scores, expected_scores, rtol=1e-5, atol=1e-6)


def test_k_larger_than_the_store_pads_with_minus_one(tmp_path, vectors):
    folder = write_vectors(tmp_path, vectors[:3], shard_rows=2, pieces=3)
    result = ShardedMatmulSearch(folder).search(vectors[:1], 5)
    assert result.rows[0].tolist()[:1] == [0] and result.rows[0].tolist()[3:] == [-1, -1]
    assert sorted(result.rows[0][:3].tolist()) == [0, 1, 2]


def test_an_incomplete_index_is_refused_with_the_way_out(tmp_path, vectors):
    write_vectors(tmp_path, vectors[:10], complete=False)
    info = DenseInfo.load(tmp_path / DENSE_DIR)
    info.passages = 20
    info.save(tmp_path / DENSE_DIR)
    with pytest.raises(OpenbookError, match="incomplete .10 of 20.*run the same `openbook index` again"):
        open_vector_search(tmp_path)


def test_a_lone_query_is_filtered_in_fp16_and_still_exact(tmp_path, vectors, monkeypatch):
    """One query takes the fp16 filter (no widened pass at all) and returns exactly the brute-force top-k."""
    folder = write_vectors(tmp_path, vectors, shard_rows=300)
    search = ShardedMatmulSearch(folder)
    assert search.info.max_row_norm is None  # written without it: worked out on first use

    def no_widening(*_args):
        raise AssertionError("a lone query widened the store")

    monkeypatch.setattr(search, "_widened_search", no_widening)
    queries = unit_rows(np.random.default_rng(2).standard_normal((40, 32)))
    queries[0] = vectors[5]  # a query equal to a stored row
    expected_rows, expected_scores = brute_force(vectors, queries, 10)
    for query, rows, scores in zip(queries, expected_rows, expected_scores):
        result = search.search(query, 10)
        np.testing.assert_array_equal(result.rows[0], rows)
        np.testing.assert_allclose(result.scores[0], scores, rtol=1e-5, atol=1e-6)
    assert search.info.max_row_norm == pytest.approx(1.0, abs=1e-3)


def test_the_lone_query_filter_stands_aside_where_its_bound_cannot_hold(tmp_path, vectors, monkeypatch):
    """Rows far from unit length, near-ties crowding the top, and scores beyond fp16's range: the
    answer stays exact, through the filter or through the widened search."""
    rng = np.random.default_rng(3)
    scaled = vectors * rng.uniform(0.01, 40.0, size=(len(vectors), 1))
    crowded = np.repeat(vectors[:1], 400, axis=0) + 1e-4 * rng.standard_normal((400, 32))
    stores = {"scaled": scaled, "crowded": np.concatenate([crowded, vectors[1:600]]), "huge": vectors * 3000.0}
    for name, stored in stores.items():
        folder = write_vectors(tmp_path / name, stored, shard_rows=256)
        search = ShardedMatmulSearch(folder)
        search.MAX_CANDIDATES = 100
        queries = np.concatenate([unit_rows(rng.standard_normal((5, 32))), stored[:1] * 1.5]).astype(np.float32)
        expected_rows, _ = brute_force(stored, queries, 10)
        for query, rows in zip(queries, expected_rows):
            np.testing.assert_array_equal(search.search(query, 10).rows[0], rows, err_msg=name)
    widened = []
    search = ShardedMatmulSearch(tmp_path / "crowded" / DENSE_DIR)
    search.MAX_CANDIDATES = 100
    monkeypatch.setattr(
        search,
        "_widened_search",
        lambda queries, k: widened.append(k) or ShardedMatmulSearch._widened_search(search, queries, k),
    )
    search.search(stores["crowded"][0], 10)
    assert widened == [10]  # 400 near-copies of the query's row: too many candidates, so it widened


def test_the_lone_query_filter_keeps_rows_its_fp16_scores_put_out_of_order(tmp_path, monkeypatch):
    """Rows whose exact scores are 1e-5 apart, finer than the query's rounding to fp16 (~1e-4 here):
    fp16 scores shuffle the order near the top (seed 4: two rows of the exact top-10 fall below the
    fp16 10th), and only a sound error bound keeps them among the candidates."""
    rng = np.random.default_rng(4)
    query = unit_rows(rng.standard_normal((1, 32)))[0]
    others = rng.standard_normal((1000, 32))
    others = unit_rows(others - np.outer(others @ query, query))  # orthogonal to the query
    alphas = 0.01 + 1e-5 * rng.permutation(1000)  # each row's score
    stored = (alphas[:, None] * query + np.sqrt(1 - alphas[:, None] ** 2) * others).astype(np.float32)
    folder = write_vectors(tmp_path, stored, shard_rows=512)
    search = ShardedMatmulSearch(folder)
    monkeypatch.setattr(search, "_widened_search", lambda *_: pytest.fail("the filter stood aside"))
    expected_rows, _ = brute_force(stored, query[None].astype(np.float32), 10)
    np.testing.assert_array_equal(search.search(query.astype(np.float32), 10).rows, expected_rows)


def test_a_store_with_a_missing_shard_is_refused_instead_of_misread(tmp_path, vectors):
    folder = write_vectors(tmp_path, vectors, shard_rows=300)
    (folder / "shard-00001.f16").unlink()
    with pytest.raises(OpenbookError, match="shard 1 is missing"):
        ShardedMatmulSearch(folder)
    with pytest.raises(OpenbookError, match="shard 1 is missing"):  # nor is it appended to
        DenseWriter(folder, DenseInfo.load(folder))


def test_a_lone_query_breaks_ties_at_the_kth_place_by_row_and_refuses_k_0(tmp_path, vectors):
    stored = np.concatenate([vectors[:5], np.repeat(vectors[5:6], 4, axis=0), vectors[6:50]])  # rows 5-8 equal
    folder = write_vectors(tmp_path, stored, shard_rows=16)
    search = ShardedMatmulSearch(folder)
    result = search.search(stored[5], 2)
    assert result.rows[0].tolist() == [5, 6] and result.scores[0][0] == result.scores[0][1]
    with pytest.raises(ValueError, match="at least one"):
        search.search(stored[5], 0)
