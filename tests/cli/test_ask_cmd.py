"""`openbook ask`: one question answered with what decided it and the evidence read; the evidence
alone without options; questions one after another from the terminal. The loop and the output run on
a scripted backend (milliseconds); one test asks through the real command with the smallest shipped
model."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from openbook.answer import AnswerOptions, make_plan
from openbook.answer.session import Session
from openbook.cli.ask_cmd import answer_one, asked, interactive
from openbook.cli.main import app
from openbook.errors import ConfigError
from tests.conftest import FACTS, TINY_MODEL
from tests.scripted_backend import ScriptedBackend

PROMPT, RIGHT, WRONG = FACTS[0]  # the powerhouse of the cell


def score(prompt: str, option: str, with_context: bool) -> float:
    return (1.0 + (2.0 if with_context else 0.0)) if option == RIGHT else 0.0


@pytest.fixture
def session(fact_index) -> Session:
    plan = make_plan(AnswerOptions(index=fact_index, context_tokens=120, context_coverage=0.0, progress=False))
    return Session(plan, backend=ScriptedBackend(score=score))


def test_options_are_lettered_in_order_and_mistakes_are_named():
    question = asked(" Which? ", ["one", "two", "three"])
    assert question.options == {"A": "one", "B": "two", "C": "three"} and question.prompt == "Which?"
    with pytest.raises(ConfigError, match="give 2 to 5 options"):
        asked("Which?", ["only one"])
    with pytest.raises(ConfigError, match="give 2 to 5 options"):
        asked("Which?", ["a", "b", "c", "d", "e", "f"])
    with pytest.raises(ConfigError, match="option B is empty"):
        asked("Which?", ["a", " "])
    with pytest.raises(ConfigError, match="the question is empty"):
        asked("  ", ["a", "b"])


def test_an_answer_shows_its_ranking_path_and_evidence(session, capsys):
    answer_one(session, PROMPT, [WRONG[0], RIGHT, WRONG[1]], as_json=False)
    shown = capsys.readouterr().out
    assert "The mitochondrion" in shown and "confidence" in shown and "decided by:" in shown
    assert "re-read with evidence" in shown and "evidence (bm25" in shown and "Mitochondrion" in shown


def test_json_carries_the_fields_of_the_run_log(session, capsys):
    answer_one(session, PROMPT, [WRONG[0], RIGHT], as_json=True)
    record = json.loads(capsys.readouterr().out)
    assert record["ranking"][0] == "B" and record["options"] == {"A": WRONG[0], "B": RIGHT}
    assert record["stage"] == "reread-context" and record["contexts"][-1]["read"]
    assert set(record) >= {"probabilities", "confidence", "calibrated", "readers", "contexts", "question"}


def test_without_options_the_evidence_alone_is_shown(session, capsys):
    answer_one(session, PROMPT, [], as_json=True)
    record = json.loads(capsys.readouterr().out)
    assert record["ranking"] is None and "options" in record["note"]
    assert any("Mitochondrion" == p["title"] for c in record["contexts"] for p in c["passages"])


def test_the_terminal_loop_answers_one_question_after_another(session, capsys):
    lines = iter([PROMPT, RIGHT, WRONG[0], "", FACTS[1][0], FACTS[1][1], FACTS[1][2][0], "", ""])
    interactive(session, as_json=True, read=lambda _: next(lines))
    answers = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [a["question"] for a in answers] == [PROMPT, FACTS[1][0]]


def test_ctrl_c_drops_the_question_being_typed_and_ctrl_d_ends(session, capsys):
    given = iter([PROMPT, KeyboardInterrupt, FACTS[1][0], FACTS[1][1], FACTS[1][2][0], "", EOFError])

    def read(_: str) -> str:
        item = next(given)
        if isinstance(item, type) and issubclass(item, BaseException):
            raise item
        return item

    interactive(session, as_json=True, read=read)
    captured = capsys.readouterr()
    answers = [json.loads(line) for line in captured.out.splitlines() if line.startswith("{")]
    assert [a["question"] for a in answers] == [FACTS[1][0]] and "question dropped" in captured.err


def test_a_mistake_in_the_loop_is_said_and_the_loop_goes_on(session, capsys):
    lines = iter([PROMPT, "only one", "", FACTS[1][0], FACTS[1][1], FACTS[1][2][0], "", ""])
    interactive(session, as_json=True, read=lambda _: next(lines))
    captured = capsys.readouterr()
    assert "give 2 to 5 options" in captured.err
    assert [json.loads(line)["question"] for line in captured.out.splitlines() if line.startswith("{")] == [FACTS[1][0]]


def test_ask_through_the_command_with_the_smallest_shipped_model(fact_index, tiny_llm):
    command = ["ask", "--index", str(fact_index), "--model", TINY_MODEL, "--n-ctx", "1024", PROMPT]
    answered = CliRunner().invoke(app, [*command, "-o", RIGHT, "-o", WRONG[0], "-o", WRONG[1], "--json"])
    assert answered.exit_code == 0, answered.output
    record = json.loads(answered.output)
    assert sorted(record["ranking"]) == ["A", "B", "C"] and abs(sum(record["probabilities"].values()) - 1) < 1e-6
    refused = CliRunner().invoke(app, [*command, "-o", RIGHT])
    assert refused.exit_code == 2 and "give 2 to 5 options" in refused.output


def test_ctrl_c_during_an_answer_stops_it_and_the_loop_answers_the_next(fact_index, capsys):
    """Ctrl-C arrives while the model reads the first question (the scripted model raises it from
    inside the reading, where a real SIGINT lands); the same session answers the next one."""
    interrupted = []

    def stopped_once(prompt: str, option: str, with_context: bool) -> float:
        if prompt == PROMPT and not interrupted:
            interrupted.append(prompt)
            raise KeyboardInterrupt
        return score(prompt, option, with_context)

    plan = make_plan(AnswerOptions(index=fact_index, context_tokens=120, context_coverage=0.0, progress=False))
    session = Session(plan, backend=ScriptedBackend(score=stopped_once))
    lines = iter([PROMPT, RIGHT, WRONG[0], "", PROMPT, RIGHT, WRONG[0], "", ""])
    interactive(session, as_json=True, read=lambda _: next(lines))
    captured = capsys.readouterr()
    answers = [json.loads(line) for line in captured.out.splitlines() if line.startswith("{")]
    assert interrupted and "answer stopped" in captured.err
    assert len(answers) == 1 and answers[0]["ranking"][0] == "A"  # the second asking, answered whole
