"""The sentence-transformers embedder on the shipped all-MiniLM-L6-v2."""

from __future__ import annotations

import numpy as np

from tests.conftest import SEMANTIC_QUERY


def test_embedder_gives_unit_vectors_that_match_meaning(minilm):
    vectors = minilm.encode(["The mitochondrion produces ATP.", "Volcanoes erupt at plate boundaries."], "passage")
    query = minilm.encode([SEMANTIC_QUERY], "query")
    assert vectors.shape == (2, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert (vectors @ query.T)[0, 0] > (vectors @ query.T)[1, 0]
