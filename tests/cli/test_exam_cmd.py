"""`openbook check` and `openbook score`."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from openbook.cli.main import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_check_and_score(tmp_path):
    exam = tmp_path / "exam.csv"
    exam.write_text("id,prompt,A,B,C,answer\n1,p,a,b,c,A\n2,q,a,b,c,C\n")
    assert "2 questions" in invoke("check", exam).output
    submission = tmp_path / "submission.csv"
    submission.write_text("id,prediction\n1,A B C\n2,A B C\n")
    scores = json.loads(invoke("score", submission, exam).output)
    assert scores == {"map@3": pytest.approx((1 + 1 / 3) / 2), "accuracy": 0.5, "count": 2}
    unanswered = tmp_path / "unanswered.csv"
    unanswered.write_text("id,prompt,A,B\n1,p,a,b\n")
    for args, problem in [
        ((tmp_path / "nope.csv", exam), "nope.csv: submission file not found"),
        ((tmp_path, exam), "submission file not found"),
        ((submission, unanswered), "no question has an answer to score against"),
    ]:
        result = invoke("score", *args)
        assert result.exit_code == 2 and problem in " ".join(result.output.split()), result.output
    (tmp_path / "latin1.csv").write_bytes(b"id,prediction\n1,A B \xff\n")
    result = invoke("score", tmp_path / "latin1.csv", exam)
    assert result.exit_code == 2 and "latin1.csv:2: undecodable bytes" in " ".join(result.output.split())


def test_score_reports_extra_ids_and_reads_ids_and_letters_as_the_exam_does(tmp_path):
    exam = tmp_path / "exam.csv"
    exam.write_text("id,prompt,A,B,C,answer\n1,p,a,b,c,a\n2,q,a,b,c,C\n3,r,a,b,c,\n")
    submission = tmp_path / "submission.csv"
    # ' 1 ' is question 1 (was: "no prediction" for 1); 'a b c' is A B C (was an error); 3 is in the exam, unanswered
    submission.write_text("id,prediction\n 1 ,a b c\n2,c\n3,A\nx,A\ny,B\nz,C\nw,D\n")
    result = runner.invoke(app, ["score", str(submission), str(exam)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"map@3": 1.0, "accuracy": 1.0, "count": 2}
    # extra ids were silently ignored: now counted, with examples and their lines
    warning = " ".join(result.stderr.split())
    assert (
        "warning:" in warning and "4 id(s) not in" in warning and "'x' (line 5), 'y' (line 6), 'z' (line 7)" in warning
    )


@pytest.mark.parametrize(
    "command, name, text, expected",
    [
        ("check", "e.csv", "id,prompt,A,B,A\n1,p,a,b,c\n", "e.csv:1: column 'A' appears twice"),
        ("check", "e.csv", "id,prompt,A,B\n1,p\x00,a,b\n", "e.csv:2: NUL character (\\0) in field 'prompt'"),
        ("check", "e.csv", 'id,prompt,A,B\n1,p,a,b\n2,"p,a,b\n3,p,a,b\n', "e.csv:3: unterminated quote"),
        (
            "check",
            "e.jsonl",
            '{"id": 1, "prompt": {"a": "b"}, "A": "a", "B": "b"}\n',
            "e.jsonl:1: field 'prompt' is a JSON object",
        ),
        (
            "check",
            "e.jsonl",
            '{"id": 1, "prompt": ' + "[" * 100_000 + "]" * 100_000 + "}\n",
            "e.jsonl:1: invalid JSON: nested too deeply",
        ),
        ("score", "s.csv", "id,prediction\n1,A,B\n", "s.csv:2: row has 3 fields, header has 2"),
        ("score", "s.csv", "id,prediction,prediction\n1,A,B\n", "s.csv:1: column 'prediction' appears twice"),
    ],
)
def test_hostile_inputs_are_one_line_errors(tmp_path, command, name, text, expected):
    exam = tmp_path / "exam.csv"
    exam.write_text("id,prompt,A,B,answer\n1,p,a,b,A\n")
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    args = [command, str(path)] + ([str(exam)] if command == "score" else [])
    result = runner.invoke(app, args)  # any exception but OpenbookError escapes: exit 1, result.exception
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    (line,) = result.stderr.strip().splitlines()  # one line, naming the file, line and field
    assert line.startswith(f"error: {path}") and expected in line, line
