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


def test_ids_are_trimmed_and_letters_read_in_either_case_as_in_exams(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("id , prediction\n 1 ,a b c\nq2,B  a\n")
    assert read_submission(path) == {"1": ("A", "B", "C"), "q2": ("B", "A")}


# Issue 24: hostile submissions are errors naming the file, line and field, never silently misread.
@pytest.mark.parametrize(
    "text, line, problem",
    [
        ("id,prediction,prediction\n1,A B C,C B A\n", 1, "column 'prediction' appears twice"),  # last one won
        (
            "id,prediction\n1,B,A,C\n",
            2,
            "row has 4 fields, header has 2; letters of a prediction are separated by spaces",
        ),
        ("id,prediction\n1,A B C,x\n", 2, "row has 3 fields"),  # the surplus was dropped
        ("id,prediction\n1\n", 2, "row has 1 fields, header has 2"),  # was "prediction None is not ..."
        ("id,prediction\n1,A\n1 ,B\n", 3, "duplicate id '1' (first seen on line 2)"),  # '1 ' was another id
        ("id,prediction\n,A\n", 2, "empty id"),  # was ignored
        ("id,prediction\n1,A B\x00 C\n", 2, "NUL character (\\0) in field 'prediction'"),
        ('id,prediction\n1,"A B C\n2,B\n', 2, "unterminated quote: the quoted field opened on line 2"),  # said line 3
        ('id,prediction\n1,"B"A\n', 2, "text after the closing quote"),  # was read as 'BA'
        ("id;prediction\n1;A\n", 1, "a submission needs the columns id,prediction; missing column(s) id, prediction"),
        ('{"id": 1, "prediction": "A"}\n', 1, "this one looks like JSON"),  # was "text after the closing quote"
        ("id,prediction\n1,A B\n2,caf\u00e9\n", 3, "prediction 'café' is not space-separated letters A-E"),
    ],
)
def test_hostile_submissions(tmp_path, text, line, problem):
    path = tmp_path / "s.csv"
    path.write_bytes(text.encode("utf-8"))
    with pytest.raises(InputError) as caught:
        read_submission(path)
    assert (caught.value.line, problem in caught.value.problem) == (line, True), caught.value
    assert str(caught.value).startswith(f"{path}:{line}: ")


def test_undecodable_submission_names_its_line(tmp_path):
    path = tmp_path / "s.csv"
    path.write_bytes(b"id,prediction\n1,A\n2,\xff\n")
    with pytest.raises(InputError, match=r"s.csv:3: undecodable bytes"):
        read_submission(path)
