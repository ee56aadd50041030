from __future__ import annotations

import pytest

from openbook.errors import InputError
from openbook.evaluate.submission import read_submission, write_submission
from openbook.metrics import average_precision_at_3, score_rankings
from openbook.records import Prediction, submission_letters


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


def test_submission_format_and_round_trip(tmp_path):
    predictions = [Prediction("q1", ("C", "A", "B", "E", "D")), Prediction("q2", ("B", "A"))]
    path = write_submission(predictions, tmp_path / "out" / "submission.csv")
    assert path.read_text() == "id,prediction\nq1,C A B\nq2,B A C\n"
    assert read_submission(path) == {"q1": ("C", "A", "B"), "q2": ("B", "A", "C")}


def test_submission_letters_dedupes_and_pads():
    assert submission_letters(["D", "D", "A"]) == "D A B"


def test_bad_submission(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("id,prediction\n1,A B C\n2,A X\n")
    with pytest.raises(InputError, match=r"s.csv:3: prediction 'A X'"):
        read_submission(path)
