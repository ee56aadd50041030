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
    assert result.exit_code == 2 and "latin1.csv: undecodable bytes" in " ".join(result.output.split())
