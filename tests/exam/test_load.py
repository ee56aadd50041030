from __future__ import annotations

from pathlib import Path

import pytest

from openbook.errors import InputError
from openbook.exam import read_exam

HEADER = "id,prompt,A,B,C,D,E,answer\n"


def write(tmp_path: Path, text: str, name: str = "exam.csv", raw: bytes | None = None) -> Path:
    path = tmp_path / name
    if raw is not None:
        path.write_bytes(raw)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_csv_with_absent_options_and_extra_columns(tmp_path):
    path = write(
        tmp_path,
        "id,prompt,A,B,C,D,E,answer,subject\n"
        "q1,What is 2+2?,3,4,5,,,B,math\n"
        'q2,"Which, with a comma?",x,"multi\nline",,y,,D,misc\n',
    )
    q1, q2 = read_exam(path)
    assert q1.options == {"A": "3", "B": "4", "C": "5"}
    assert q1.answer == "B" and q1.extra == {"subject": "math"}
    assert q2.letters == ("A", "B", "D")  # C is absent; D keeps its letter
    assert q2.options["B"] == "multi\nline"


def test_jsonl_exam_same_fields(tmp_path):
    path = write(
        tmp_path, '{"id": 7, "prompt": "p?", "A": "a", "B": "b", "C": null, "answer": "a"}\n\n', name="exam.jsonl"
    )
    (question,) = read_exam(path)
    assert question.id == "7" and question.options == {"A": "a", "B": "b"} and question.answer == "A"


def test_jsonl_strings_may_hold_unicode_line_separators(tmp_path):
    path = write(
        tmp_path,
        '{"id": 1, "prompt": "Energy\u2028is \u0085conserved?", "A": "a\u2029b", "B": "b"}\n'
        '{"id": 2, "prompt": "p", "A": "a", "B": "b"}\n',
        name="exam.jsonl",
    )
    first, second = read_exam(path)
    assert first.prompt == "Energy\u2028is \u0085conserved?" and first.options["A"] == "a\u2029b" and second.id == "2"


def test_json_array_exam_and_its_errors_located(tmp_path):
    items = (
        '[\n  {"id": 1, "prompt": "p?", "A": "a", "B": "b", "answer": "B"},\n'
        '  {"id": 2, "prompt": "q?", "A": "a", "B": "b"}\n]\n'
    )
    assert [q.id for q in read_exam(write(tmp_path, items, name="exam.json"))] == ["1", "2"]
    for text, line, problem in [
        (items.replace('"prompt": "q?", ', ""), 3, "missing field(s) prompt"),
        ('[{"id": 1, "prompt": "p", "A": "a", "B": "b"},\n 7]', 2, "each item of the array"),
        ('[{"id": 1, "prompt": "p", "A": "a", "B": "b"}\n {"id": 2}]', 2, "expected ','"),
    ]:
        with pytest.raises(InputError) as caught:
            read_exam(write(tmp_path, text, name="bad.json"))
        assert (caught.value.line, problem in caught.value.problem) == (line, True), caught.value


def test_no_answer_column_means_unlabelled(tmp_path):
    path = write(tmp_path, "id,prompt,A,B\n1,p,a,b\n")
    assert read_exam(path)[0].answer is None


@pytest.mark.parametrize(
    "text, line, problem",
    [
        ("id,prompt,A\n1,p,a\n", 1, "missing column(s) B"),
        (HEADER + "1,,a,b,c,d,e,A\n", 2, "empty prompt"),
        (HEADER + "1,p,a,b,c,d,e,A\n2,p,a,b,c,d,e,A\n1,p,a,b,c,d,e,A\n", 4, "duplicate id '1' (first seen on line 2)"),
        (HEADER + "1,p,a,b,,,,C\n", 2, "answer 'C' of question '1' is not one of its options A, B"),
        (HEADER + "1,p,a,,,,,A\n", 2, "has 1 option(s); at least 2 are needed"),
        (HEADER + "1,p,a,b,c,d,e,A,extra\n", 2, "row has 9 fields, header has 8"),
        (HEADER + "1,p,a,b,c,d,e,A\n" + '2,"multi\nline",a,b,c,d,e,A\n3,,a,b,c,d,e,A\n', 5, "empty prompt"),
        (HEADER + "1,p,a,b,c,d,e,A\n" + '2,"multi\nline",a,b,c,d,e,A,extra\n', 3, "row has 9 fields, header has 8"),
        (HEADER + "1,p,a,b,c,d,e,A\n\n\n2,p,a,b,c,d,e,A,extra\n", 5, "row has 9 fields, header has 8"),  # blank lines
        (HEADER + "1,p,a,b,c\n", 2, "row has 5 fields, header has 8"),  # short: not filled with None
    ],
)
def test_bad_exams_name_file_line_and_problem(tmp_path, text, line, problem):
    path = write(tmp_path, text)
    with pytest.raises(InputError) as caught:
        read_exam(path)
    assert caught.value.line == line
    assert problem in caught.value.problem
    assert str(caught.value).startswith(f"{path}:{line}: ")


def test_undecodable_bytes_report_their_line(tmp_path):
    path = write(tmp_path, "", raw=(HEADER + "1,p,a,b,c,d,e,A\n2,caf\xe9,a,b,c,d,e,A\n").encode("latin-1"))
    with pytest.raises(InputError, match=r"exam.csv:3: undecodable bytes"):
        read_exam(path)


def test_invalid_jsonl_line(tmp_path):
    path = write(tmp_path, '{"id": 1, "prompt": "p", "A": "a", "B": "b"}\n{oops\n', name="e.jsonl")
    with pytest.raises(InputError, match=r"e.jsonl:2: invalid JSON"):
        read_exam(path)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="exam file not found"):
        read_exam(tmp_path / "nope.csv")


def test_every_shared_exam_loads(shared_data):
    expected = {
        "llmse-6k-dev.csv": 5484,
        "llmse-stem-1k.csv": 999,
        "arc-challenge-val.csv": 299,
        "arc-easy-val.csv": 570,
        "openbookqa-val.csv": 500,
        "sciq-val.csv": 1000,
        "mmlu-stem-val.csv": 502,
    }
    for name, count in expected.items():
        questions = read_exam(shared_data / "exams" / name)
        assert len(questions) == count
        assert all(q.answer in q.options for q in questions)
    stem = read_exam(shared_data / "exams" / "llmse-stem-1k.csv")
    assert all("context" in q.extra for q in stem)
    assert {len(q.options) for q in read_exam(shared_data / "exams" / "mmlu-stem-val.csv")} == {4}
