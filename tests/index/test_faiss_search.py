"""FAISS behind the dense search's interface (`index.faiss_search`): flat agrees with the exact
search, HNSW finds most, and write errors are named."""

from __future__ import annotations

import numpy as np
import pytest

from openbook.embed import unit_rows
from openbook.errors import OpenbookError
from openbook.index.dense import DENSE_DIR, open_vector_search
from tests.conftest import write_vectors


def test_faiss_flat_agrees_and_hnsw_finds_most(tmp_path, vectors):
    pytest.importorskip("faiss")
    write_vectors(tmp_path, vectors)
    queries = unit_rows(np.random.default_rng(2).standard_normal((40, 32)))
    exact = open_vector_search(tmp_path, "matmul").search(queries, 10)
    flat = open_vector_search(tmp_path, "faiss-flat").search(queries, 10)
    np.testing.assert_array_equal(flat.rows, exact.rows)
    np.testing.assert_allclose(flat.scores, exact.scores, rtol=1e-5, atol=1e-6)
    assert (tmp_path / DENSE_DIR / "faiss-flat.index").is_file()  # built once, then read
    hnsw = open_vector_search(tmp_path, "faiss-hnsw").search(queries, 10)
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(hnsw.rows, exact.rows)])
    assert overlap > 0.8
    with pytest.raises(OpenbookError, match="unknown dense engine"):
        open_vector_search(tmp_path, "faiss-nope")
    (tmp_path / DENSE_DIR / "faiss-hnsw.index").unlink()
    (tmp_path / DENSE_DIR / "faiss-hnsw.index.partial").mkdir()  # stands for a place FAISS cannot write
    with pytest.raises(OpenbookError, match="cannot write the faiss-hnsw index"):
        open_vector_search(tmp_path, "faiss-hnsw")
