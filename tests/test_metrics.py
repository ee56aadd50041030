"""MAP@3 and accuracy (`openbook.metrics`), hand-computed."""

from __future__ import annotations

import pytest

from openbook.metrics import average_precision_at_3, score_rankings


@pytest.mark.parametrize(
    "ranking, answer, expected",
    [
        ("ABC", "A", 1.0),
        ("ABC", "B", 1 / 2),
        ("ABC", "C", 1 / 3),
        ("ABC", "D", 0.0),
        ("ABCDE", "D", 0.0),  # only the top three count
        ("BBB", "B", 1.0),  # a repeated correct letter counts once
        ("AAB", "B", 1 / 3),  # position, not distinct-letter rank
        ("", "A", 0.0),
    ],
)
def test_average_precision_at_3_hand_computed(ranking, answer, expected):
    assert average_precision_at_3(list(ranking), answer) == pytest.approx(expected)


def test_map_and_accuracy_over_questions():
    scores = score_rankings([("ABC", "A"), ("BCA", "A"), ("CDE", "A"), ("DAB", "A")])
    assert scores.map_at_3 == pytest.approx((1 + 1 / 3 + 0 + 1 / 2) / 4)
    assert scores.accuracy == pytest.approx(0.25)
    assert scores.count == 4
    assert score_rankings([]).count == 0
