"""Fusing the hit lists of several retrievers (`retrieve.fusion`): reciprocal rank fusion, weighted
score fusion and the hybrid retriever."""

from __future__ import annotations

import pytest

from openbook.retrieve.fusion import HybridRetriever, reciprocal_rank_fusion, weighted_score_fusion
from tests.conftest import hits, ids


def test_rrf_rewards_agreement_and_follows_its_formula():
    fused = reciprocal_rank_fusion([hits(("a", 9), ("b", 8), ("c", 7)), hits(("c", 0.9), ("a", 0.8))], k=3)
    assert ids(fused) == ["a", "c", "b"]
    assert fused[0].score == pytest.approx(1 / 61 + 1 / 62)
    assert fused[1].score == pytest.approx(1 / 63 + 1 / 61)
    assert [h.rank for h in fused] == [0, 1, 2] and fused[0].retriever == "rrf"
    weighted = reciprocal_rank_fusion([hits(("a", 9), ("b", 8)), hits(("b", 1), ("a", 0))], k=2, weights=[1, 3])
    assert ids(weighted) == ["b", "a"]
    # equal fused scores: the better place in one list, then the earlier list (ids would say z9 < z10 < ...)
    tied = reciprocal_rank_fusion([hits(("z9", 5), ("z10", 4)), hits(("z2", 0.9), ("z1", 0.8))], k=4)
    assert ids(tied) == ["z9", "z2", "z10", "z1"]


def test_weighted_fusion_normalises_each_list_before_weighting():
    bm25 = hits(("a", 30.0), ("b", 20.0), ("c", 10.0))  # normalised 1, .5, 0
    dense = hits(("c", 0.9), ("b", 0.8), ("d", 0.5))  # normalised 1, .75, 0
    fused = weighted_score_fusion([bm25, dense], k=4, weights=[1.0, 1.0])
    assert ids(fused) == ["b", "a", "c", "d"]
    assert [h.score for h in fused] == pytest.approx([1.25, 1.0, 1.0, 0.0])
    assert ids(weighted_score_fusion([bm25, dense], k=1, weights=[0.1, 1.0])) == ["c"]


def test_hybrid_retriever_asks_each_retriever_for_depth_candidates():
    class Fixed:
        def __init__(self, name, result):
            self.name, self.result, self.asked = name, result, []

        def search(self, queries, k):
            self.asked.append(k)
            return [self.result for _ in queries]

    sparse, dense = Fixed("bm25", hits(("a", 3), ("b", 2))), Fixed("dense", hits(("b", 0.9), ("c", 0.1)))
    (fused,) = HybridRetriever([sparse, dense], "rrf", depth=30).search(["q"], k=2)
    assert sparse.asked == dense.asked == [30]
    assert ids(fused) == ["b", "a"] and fused[0].retriever == "hybrid-rrf"
