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


# Issue 24: hostile exams are errors naming the file, line and field, never a silently different exam.
@pytest.mark.parametrize(
    "name, text, line, problem",
    [
        # a duplicated column: csv.DictReader kept the last one silently
        ("dup.csv", "id,prompt,A,B,A,answer\n1,p,a,b,a2,A\n", 1, "column 'A' appears twice (columns 3 and 5)"),
        ("dup.csv", "id,prompt,A,B, prompt \n1,p,a,b,q\n", 1, "column 'prompt' appears twice (columns 2 and 5)"),
        # NUL characters were kept inside the prompt or option
        ("nul.csv", HEADER + "1,p\x00q,a,b,c,d,e,A\n", 2, "NUL character (\\0) in field 'prompt'"),
        ("nul.csv", HEADER + "1,p,a,b\x00,c,d,e,A\n", 2, "NUL character (\\0) in field 'B'"),
        ("nul.csv", "i\x00d\x00,\x00p\x00\n", 1, "NUL character (\\0) in the header (is the file UTF-16?"),
        (
            "nul.jsonl",
            '{"id": 1, "prompt": "p\\u0000", "A": "a", "B": "b"}\n',
            1,
            "NUL character (\\0) in field 'prompt'",
        ),
        (
            "nul.jsonl",
            '{"id": 1, "prompt": "p", "A": "a", "B": "b"}\n{"id": 2, "prompt": "p\x00"}\n',
            2,
            "NUL character",
        ),
        # an unterminated quote swallowed the rest of the file: "row has 2 fields" or, last, silently taken
        ("open.csv", HEADER + '1,p,a,b,c,d,e,A\n2,"p,a,b,c,d,e,A\n3,p,a,b,c,d,e,A\n', 3, "unterminated quote"),
        (
            "open.csv",
            'id,prompt,A,B,answer,context\n1,p,a,b,A,x\n2,p,a,b,A,"source\n3,p,a,b,A,y\n',
            3,
            "unterminated quote: the quoted field opened on line 3 is never closed",
        ),
        ("open.csv", HEADER + '1,"multi\nline",a,b,c,d,e,"A\n\n', 3, "opened on line 3"),
        # text after a closing quote was glued on: "p"x read as px
        ("after.csv", HEADER + '1,"p"x,a,b,c,d,e,A\n', 2, "text after the closing quote of a field"),
        # a value under a column without a name was kept as extra column ''
        ("unnamed.csv", "id,prompt,A,B,,answer\n1,p,a,b,x,A\n", 2, "value 'x' in column 5, which has no name"),
        # JSON values that are not strings were read as their Python repr ("{'a': 'b'}", "True", "4")
        ("e.jsonl", '{"id": 1, "prompt": {"a": "b"}, "A": "a", "B": "b"}\n', 1, "field 'prompt' is a JSON object"),
        ("e.jsonl", '{"id": 1, "prompt": ["p"], "A": "a", "B": "b"}\n', 1, "field 'prompt' is a JSON list"),
        (
            "e.jsonl",
            '{"id": 1, "prompt": "p", "A": 4, "B": "b"}\n',
            1,
            "field 'A' is a JSON number (4); it must be a string",
        ),
        ("e.jsonl", '{"id": 1, "prompt": "p", "A": "a", "B": false}\n', 1, "field 'B' is a JSON boolean (false)"),
        (
            "e.jsonl",
            '{"id": 1, "prompt": "p", "A": "a", "B": "b", "answer": 1}\n',
            1,
            "field 'answer' is a JSON number",
        ),
        ("e.jsonl", '{"id": true, "prompt": "p", "A": "a", "B": "b"}\n', 1, "field 'id' is a JSON boolean"),
        ("e.jsonl", '{"id": 1.0, "prompt": "p", "A": "a", "B": "b"}\n', 1, "it must be a string or an integer"),
        (
            "e.json",
            '[\n{"id": 1, "prompt": "p", "A": "a", "B": "b"},\n{"id": 2, "prompt": true, "A": "a", "B": "b"}]',
            3,
            "field 'prompt' is a JSON boolean",
        ),
        # a duplicated JSON field: the last one was kept silently
        (
            "e.jsonl",
            '{"id": 1, "prompt": "first", "prompt": "second", "A": "a", "B": "b"}\n',
            1,
            "duplicate field 'prompt'",
        ),
        ("e.json", '[\n{"id": 1, "A": "a", "A": "b"}]', 2, "duplicate field 'A'"),
        # NaN / Infinity are not JSON; NaN was read as the id 'nan'
        ("e.jsonl", '{"id": NaN, "prompt": "p", "A": "a", "B": "b"}\n', 1, "NaN is not a JSON value"),
        # a RecursionError traceback
        ("e.jsonl", '{"id": 1, "prompt": ' + "[" * 100_000 + "]" * 100_000 + "}\n", 1, "nested too deeply"),
        # data after the array, or after a JSON line's object, was ignored
        ("e.json", '[{"id": 1, "prompt": "p", "A": "a", "B": "b"}]\n{"id": 2}\n', 2, "extra data after the array"),
        ("e.jsonl", '{"id": 1, "prompt": "p", "A": "a", "B": "b"} {"id": 2}\n', 1, "extra data after the object"),
    ],
)
def test_hostile_exams(tmp_path, name, text, line, problem):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    with pytest.raises(InputError) as caught:
        read_exam(path)
    assert (caught.value.line, problem in caught.value.problem) == (line, True), caught.value
    assert str(caught.value).startswith(f"{path}:{line}: ")


def test_json_extra_fields_keep_their_json_text_and_letters_ignore_case(tmp_path):
    path = write(
        tmp_path,
        '{"id": "q", "prompt": "p", "A": "a", "B": "b", "answer": " b ", "meta": {"k": true}, "n": 3}\n',
        name="e.jsonl",
    )
    (question,) = read_exam(path)
    assert question.answer == "B" and question.extra == {"meta": '{"k": true}', "n": "3"}  # not "{'k': True}"


def test_csv_column_names_are_trimmed_and_blank_unnamed_columns_dropped(tmp_path):
    (question,) = read_exam(write(tmp_path, "id, prompt , A,B,answer,\n 1 ,p,a,b,a,\n"))
    assert (question.id, question.answer, question.extra) == ("1", "A", {})
