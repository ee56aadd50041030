"""Retrieval scores (`evaluate.retrieval`): recall at k and mean reciprocal rank of the source passage."""

from __future__ import annotations

import pytest

from openbook.evaluate.retrieval import score_ranks


def test_recall_and_mrr():
    scores = score_ranks("p", [0, 3, None, 19, 7], seconds=0.5)
    assert scores.recall == {1: 0.2, 5: 0.4, 20: 0.8}
    assert scores.mrr == pytest.approx((1 + 1 / 4 + 1 / 20 + 1 / 8) / 5)
    assert scores.ms_per_question == pytest.approx(100.0)
