"""submission.csv (`evaluate.submission`): Kaggle's format, written and read back, a bad one located."""

from __future__ import annotations

import pytest

from openbook.errors import InputError
from openbook.evaluate.submission import read_submission, write_submission
from openbook.records import Prediction


def test_submission_format_and_round_trip(tmp_path):
    predictions = [Prediction("q1", ("C", "A", "B", "E", "D")), Prediction("q2", ("B", "A"))]
    path = write_submission(predictions, tmp_path / "out" / "submission.csv")
    assert path.read_text() == "id,prediction\nq1,C A B\nq2,B A C\n"
    assert read_submission(path) == {"q1": ("C", "A", "B"), "q2": ("B", "A", "C")}


def test_bad_submission(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("id,prediction\n1,A B C\n2,A X\n")
    with pytest.raises(InputError, match=r"s.csv:3: prediction 'A X'"):
        read_submission(path)
