"""Finished runs read back and compared: two real runs of the same questions on a scripted backend
(one biased towards a letter, one not), summarised and compared answer by answer."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from openbook.answer import AnswerOptions
from openbook.cli.main import app
from openbook.errors import InputError
from openbook.evaluate.review import RunFolder, compare, question_seconds, source_recall, summarize
from openbook.evaluate.run import run_exam
from openbook.records import Question
from tests.scripted_backend import ScriptedBackend

QUESTIONS = [
    Question(f"q{i}", f"Which is number {i}?", {letter: f"option {letter}{i}" for letter in "ABCDE"}, "ABCDE"[i % 5])
    for i in range(10)
]


def score(prompt: str, option: str, with_context: bool) -> float:
    """The right option leads by a little on even questions and not at all on odd ones."""
    number = int(prompt.rstrip("?").split()[-1])
    right = option == f"option {'ABCDE'[number % 5]}{number}"
    return 0.5 if right and number % 2 == 0 else 0.0


def answered(out: Path, slot_bias: tuple[float, ...]) -> Path:
    options = AnswerOptions(out=out, triage_readers=["none"], progress=False)
    outcome = run_exam(options, questions=QUESTIONS, backend=ScriptedBackend(score=score, slot_bias=slot_bias))
    assert outcome.run.failure is None
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("runs")
    return answered(folder / "plain", (0.0,) * 5), answered(folder / "biased", (3.0, 0.0, 0.0, 0.0, 0.0))


def test_a_run_is_summarised_from_its_folder(runs):
    plain = summarize(RunFolder.read(runs[0]))
    assert plain.questions == plain.answered == 10
    assert plain.accuracy == pytest.approx(0.6)  # the even questions, and q5 whose tie goes to its answer A
    assert plain.stages["first"].questions == 10 and plain.stages["first"].map3 == plain.map3
    assert plain.gold_letters == {letter: 2 for letter in "ABCDE"}
    biased = summarize(RunFolder.read(runs[1]))
    assert biased.predicted_letters["A"] == 10  # the letter bias wins every question
    assert biased.budget_used is None and biased.model


def test_two_runs_are_compared_question_by_question(runs):
    plain, biased = RunFolder.read(runs[0]), RunFolder.read(runs[1])
    found = compare(plain, biased)
    scores_plain, scores_biased = plain.scores(), biased.scores()
    differences = [scores_biased[q] - scores_plain[q] for q in scores_plain]
    assert found.questions == 10 and found.difference == pytest.approx(sum(differences) / 10)
    assert found.standard_error > 0 and not math.isnan(found.standard_error)
    assert set(found.better) == {q for q in scores_plain if scores_biased[q] > scores_plain[q]}
    assert "q2" in found.worse and "q0" not in found.top_changed  # q0's answer is A either way
    assert compare(plain, plain).difference == 0 and compare(plain, plain).top_changed == ()


def test_a_folder_that_is_not_a_run_is_refused_by_name(tmp_path):
    with pytest.raises(InputError, match="not a run folder \\(no run.json\\)"):
        RunFolder.read(tmp_path)


def test_show_and_compare_print_their_tables(runs, tmp_path):
    shown = CliRunner().invoke(app, ["show", str(runs[0])], env={"COLUMNS": "120"})
    assert shown.exit_code == 0 and "MAP@3" in shown.output and "position bias" in shown.output
    compared = CliRunner().invoke(app, ["compare", str(runs[0]), str(runs[1])], env={"COLUMNS": "120"})
    assert compared.exit_code == 0 and "B - A:" in compared.output and "worse in B:" in compared.output
    missing = CliRunner().invoke(app, ["show", str(tmp_path)])
    assert missing.exit_code == 2 and "not a run folder" in missing.output


def test_each_answer_logs_its_model_seconds_which_add_up_to_the_run(runs):
    folder = RunFolder.read(runs[0])
    seconds = question_seconds(folder)
    assert list(seconds) == ["first"] and len(seconds["first"]) == 10 and min(seconds["first"]) >= 0
    assert sum(seconds["first"]) <= folder.run["seconds"]["model"] + 0.01  # run.json rounds to 0.01 s


def test_source_recall_counts_the_questions_that_read_the_passage_they_were_written_from(tmp_path):
    source = "The mitochondrion is the powerhouse of the cell, where respiration makes most of its ATP."
    other = "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen in chloroplasts."
    exam = [
        Question(
            f"q{i}", "Which organelle makes ATP?", {"A": "mitochondrion", "B": "nucleus"}, "A", {"context": source}
        )
        for i in range(3)
    ] + [Question("q3", "No source?", {"A": "a", "B": "b"}, "A")]

    def record(qid: str, *passages: str) -> dict:
        contexts = [
            {"retrieval": "bm25", "tokens": 10, "passages": [{"id": "p", "title": "", "score": 1.0, "text": t}]}
            for t in passages
        ]
        return {"id": qid, "ranking": ["A", "B"], "answer": "A", "contexts": contexts}

    records = (record("q0", source), record("q1", other, source), record("q2", other), record("q3", other))
    found = source_recall(RunFolder(tmp_path, {}, records), exam)
    assert found is not None and (found.questions, found.read) == (3, 2)
    assert found.recall == {1: pytest.approx(1 / 3), 3: pytest.approx(2 / 3), 5: pytest.approx(2 / 3)}
    assert source_recall(RunFolder(tmp_path, {}, records), exam[3:]) is None  # no sources: nothing measured
