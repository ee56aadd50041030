"""Fitted ensembles, calibration and the confidence a run reports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from openbook.cli.main import app
from openbook.ensemble import Ensemble, ScoredQuestion, fit_ensemble, scored_from_runs
from openbook.ensemble.calibrate import expected_calibration_error, fit_temperature, with_temperature
from openbook.errors import InputError, OpenbookError
from openbook.records import Question

LETTERS = ("A", "B", "C", "D", "E")


def synthetic_questions(count: int, seed: int = 0) -> list[ScoredQuestion]:
    """`good` points at the answer more often than not; `noise` is random; coverage is uninformative."""
    rng = np.random.default_rng(seed)
    questions = []
    for i in range(count):
        answer = int(rng.integers(5))
        good = rng.normal(0, 1, 5)
        good[answer] += 1.5
        noise = rng.normal(0, 1, 5)
        questions.append(
            ScoredQuestion(
                id=str(i),
                letters=LETTERS,
                answer=LETTERS[answer],
                readers={"good": np.exp(good) / np.exp(good).sum(), "noise": np.exp(noise) / np.exp(noise).sum()},
                coverage=rng.uniform(0, 1, 5),
            )
        )
    return questions


def test_temperature_fit_recovers_the_temperature_answers_were_drawn_with():
    rng = np.random.default_rng(1)
    scores = [rng.normal(0, 2, 5) for _ in range(3000)]
    answers = [int(rng.choice(5, p=with_temperature(s, 2.5))) for s in scores]
    assert fit_temperature(scores, answers) == pytest.approx(2.5, rel=0.1)


def test_expected_calibration_error():
    assert expected_calibration_error([0.9] * 10, [True] * 9 + [False]) == pytest.approx(0.0)
    assert expected_calibration_error([0.9] * 10, [False] * 10) == pytest.approx(0.9)
    # two bins: 0.25 confident and right half the time, 0.95 confident and always right
    assert expected_calibration_error([0.25, 0.25, 0.95, 0.95], [True, False, True, True]) == pytest.approx(
        0.5 * 0.25 + 0.5 * 0.05
    )


def test_fitted_ensemble_trusts_the_informative_reader_and_saves_as_json(tmp_path):
    questions = synthetic_questions(300)
    ensemble = fit_ensemble(questions, methods=("mean", "weighted", "ranker"), folds=5)
    table = ensemble.validation["cross_validation"]
    assert set(table) == {"mean", "weighted", "ranker"} and ensemble.method == ensemble.validation["chosen"]
    # fitting beats the blind average, which listens to the noise as much as to the good reader
    assert max(table["weighted"]["map_at_3"], table["ranker"]["map_at_3"]) > table["mean"]["map_at_3"] + 0.03
    weighted = fit_ensemble(questions, methods=("weighted",))
    assert weighted.weights["good"] > 0.8 > weighted.weights["noise"]
    ensemble.save(tmp_path / "ensemble.json")
    loaded = Ensemble.load(tmp_path / "ensemble.json")
    probabilities = loaded.probabilities(questions[0])
    assert probabilities.sum() == pytest.approx(1.0)
    assert np.allclose(probabilities, ensemble.probabilities(questions[0]))
    assert ensemble.temperature > 0


def test_the_calibration_reported_is_measured_out_of_fold():
    from openbook.ensemble.learned import evaluate_scores, log_scores

    questions = synthetic_questions(60, seed=7)
    rows = [log_scores(q.readers["noise"]) for q in questions]
    reported, temperature = evaluate_scores(questions, rows, "mean")
    answers = [q.letters.index(q.answer) for q in questions]
    in_sample = np.mean([-np.log(with_temperature(r, temperature)[a]) for r, a in zip(rows, answers)])
    assert reported.nll > in_sample  # the temperature fitted on all of them is the best there: not what is reported


def test_ensembles_and_missing_readers():
    questions = synthetic_questions(40)
    weighted = fit_ensemble(questions, methods=("weighted",))
    partial = ScoredQuestion("x", LETTERS, "A", {"good": questions[0].readers["good"]}, questions[0].coverage)
    # a weight fitted beside a reader means nothing without it: every method needs all of its readers
    for ensemble in (weighted, Ensemble("mean", ["good", "noise"]), fit_ensemble(questions, methods=("ranker",))):
        assert not ensemble.covers({"good"}) and ensemble.covers({"good", "noise", "other"})
        with pytest.raises(OpenbookError, match=r"\['noise'\] were not run"):
            ensemble.probabilities(partial)
    with pytest.raises(OpenbookError, match="at least 10"):
        fit_ensemble(questions[:5])
    with pytest.raises(OpenbookError, match="at least 2 folds"):
        fit_ensemble(questions, folds=1)
    # a cascade's run: the main readers read some questions only; fitted without them, they would be ignored
    mixed = [
        ScoredQuestion(
            q.id, q.letters, q.answer, {**q.readers, **({"main": q.readers["good"]} if i % 2 else {})}, q.coverage
        )
        for i, q in enumerate(questions)
    ]
    with pytest.raises(OpenbookError, match=r"readers \['main'\] read only some"):
        fit_ensemble(mixed)
    assert fit_ensemble(mixed, readers=["good", "noise"], methods=("mean",)).readers == ["good", "noise"]


def test_a_broken_ensemble_or_predictions_file_is_named(tmp_path):
    bad = tmp_path / "ensemble.json"
    bad.write_text('{"method": "magic", "readers": []}')
    with pytest.raises(OpenbookError, match="unknown ensemble method"):
        Ensemble.load(bad)
    bad.write_text("{")
    with pytest.raises(OpenbookError, match="not an ensemble file"):
        Ensemble.load(bad)
    run = tmp_path / "run"
    run.mkdir()
    one = [Question("1", "p", {"A": "a", "B": "b"}, "A")]
    (run / "predictions.jsonl").write_text('{"id": "1", "readers": {}}\nnot json\n{"id": "1", "readers": {}}\n')
    with pytest.raises(InputError, match=r"predictions.jsonl:2: damaged line"):
        scored_from_runs([run], one)
    # only the last line may be cut (by a stop): dropped, not read (question 2 is not in the exam)
    (run / "predictions.jsonl").write_text('{"id": "1", "readers": {}}\n{"id": "2", "readers": {"le')
    assert [scored.id for scored in scored_from_runs([run], one)] == ["1"]
    for line in (
        '{"id": "1", "readers": {"letter": {"A": "x"}}}',
        '{"id": "1", "readers": [1]}',
        '{"id": "1", "readers": {}, "probabilities": {"A": null}}',
    ):
        (run / "predictions.jsonl").write_text(line + "\n")
        with pytest.raises(InputError, match=r"predictions.jsonl:1: its (readers|probabilities) are not"):
            scored_from_runs([run], one)
    with pytest.raises(OpenbookError, match="typo: not a run"):
        scored_from_runs([tmp_path / "typo"], [Question("1", "p", {"A": "a", "B": "b"}, "A")])


def exam_of_synthetic(synthetic: list[ScoredQuestion], path: Path) -> tuple[list[Question], Path]:
    """The synthetic questions as an exam CSV (each option's text names its letter and question)."""
    questions = [
        Question(q.id, f"question {q.id}", {letter: f"option {letter}{q.id}" for letter in LETTERS}, q.answer)
        for q in synthetic
    ]
    path.write_text(
        "id,prompt,A,B,C,D,E,answer\n"
        + "".join(f"{q.id},{q.prompt},{','.join(q.options.values())},{q.answer}\n" for q in questions)
    )
    return questions, path


def write_run(folder, questions: list[Question], readers: dict[str, list[np.ndarray]], exam):
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"settings": {"exam": str(exam)}}))
    with (folder / "predictions.jsonl").open("w") as handle:
        for i, question in enumerate(questions):
            record = {
                "id": question.id,
                "answer": question.answer,
                "readers": {name: dict(zip(question.letters, map(float, rows[i]))) for name, rows in readers.items()},
                "contexts": [{"passages": [{"text": f"{question.options['A']} is right"}]}],
            }
            handle.write(json.dumps(record) + "\n")


def test_fit_command_joins_runs_by_folder_and_reads_coverage(tmp_path):
    synthetic = synthetic_questions(60, seed=3)
    questions, exam = exam_of_synthetic(synthetic, tmp_path / "exam.csv")
    write_run(tmp_path / "one", questions, {"letter": [q.readers["good"] for q in synthetic]}, exam)
    write_run(tmp_path / "two", questions, {"letter": [q.readers["noise"] for q in synthetic]}, exam)
    runner = CliRunner()
    out = tmp_path / "ensemble"  # a folder: ensemble.json in it
    result = runner.invoke(app, ["ensemble", "fit", str(tmp_path / "one"), str(tmp_path / "two"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "(chosen)" in result.output and "one/letter" in result.output
    fitted = json.loads((out / "ensemble.json").read_text())
    assert fitted["readers"] == ["one/letter", "two/letter"]
    scored = scored_from_runs([tmp_path / "one", tmp_path / "two"], questions)
    assert scored[0].coverage[0] == 1.0 and scored[0].coverage[1] < 1.0  # option A's words are in the context
    # runs whose folders share a name would give their readers one name: refused, not overwritten
    write_run(tmp_path / "again" / "one", questions, {"letter": [q.readers["noise"] for q in synthetic]}, exam)
    with pytest.raises(OpenbookError, match="share folder names"):
        scored_from_runs([tmp_path / "one", tmp_path / "again" / "one"], questions)
    # a run of another exam (its ids 0, 1, … would join other questions): refused, --exam given or not
    _, other_exam = exam_of_synthetic(synthetic, tmp_path / "other.csv")
    write_run(tmp_path / "three", questions, {"letter": [q.readers["good"] for q in synthetic]}, other_exam)
    for given in ([], ["--exam", str(exam)]):
        result = runner.invoke(
            app, ["ensemble", "fit", str(tmp_path / "one"), str(tmp_path / "three"), "--out", str(out), *given]
        )
        assert result.exit_code == 2 and "answered" in result.output and "other.csv" in result.output
    result = runner.invoke(app, ["ensemble", "fit", str(tmp_path / "typo"), "--out", str(out)])
    assert result.exit_code == 2 and "typo: not a run" in " ".join(result.output.split())


def test_coverage_is_computed_from_the_same_text_when_answering_and_when_fitting(tmp_path):
    """`decide` (answering) and `ensemble fit` (from predictions.jsonl) must see the same evidence."""
    from openbook.answer.decide import evidence_text
    from openbook.ensemble.features import context_text
    from openbook.records import Hit, Passage, Prediction, QuestionResult, RetrievedContext
    from openbook.retrieve.context import pack_context
    from openbook.runlog import RunLog, read_records

    hits = [
        Hit(Passage(f"p{i}", f"d{i}", f"Title {i}", f"First sentence {i}. Second sentence {i}."), 1.0 / (i + 1), i)
        for i in range(3)
    ]
    packed = pack_context(hits, budget_tokens=14, count_tokens=lambda text: len(text.split()))
    assert packed.passage_ids == ("p0", "p1")  # the second passage in part, the third left out
    question = Question("q", "Which?", {"A": "first", "B": "third"}, "A")
    contexts = [RetrievedContext("bm25", hits, packed)]
    with RunLog(tmp_path, {"settings": {}}, {}) as log:
        log.add(QuestionResult(question, Prediction("q", ("A", "B"), {"A": 0.6, "B": 0.4}), [], contexts))
    (record,) = read_records(tmp_path / "predictions.jsonl")
    assert evidence_text(contexts) == context_text(record)
    assert "Second sentence 1" in evidence_text(contexts) and "sentence 2" not in evidence_text(contexts)


def write_final_run(folder, questions: list[Question], probabilities: list[np.ndarray], exam) -> None:
    """A finished run's predictions.jsonl: final probabilities, and a reader that `--final` ignores."""
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"settings": {"exam": str(exam)}}))
    with (folder / "predictions.jsonl").open("w") as handle:
        for question, row in zip(questions, probabilities):
            final = dict(zip(question.letters, map(float, row)))
            handle.write(
                json.dumps(
                    {
                        "id": question.id,
                        "probabilities": final,
                        "readers": {"letter@triage": {letter: 0.2 for letter in question.letters}},
                    }
                )
                + "\n"
            )


def test_combine_command_averages_whole_runs_or_weighs_them_by_a_fit_on_other_runs(tmp_path):
    synthetic = synthetic_questions(60, seed=5)
    questions, exam = exam_of_synthetic(synthetic, tmp_path / "exam.csv")
    # validation runs and test runs live in folders of the same names, as the fitted readers are named
    for split, part in (("val", slice(0, 40)), ("test", slice(40, 60))):
        write_final_run(
            tmp_path / split / "cascade", questions[part], [q.readers["good"] for q in synthetic[part]], exam
        )
        write_final_run(
            tmp_path / split / "encoder", questions[part], [q.readers["noise"] for q in synthetic[part]], exam
        )
    runner = CliRunner()
    test_runs = [str(tmp_path / "test" / "cascade"), str(tmp_path / "test" / "encoder")]

    result = runner.invoke(app, ["ensemble", "combine", *test_runs, "--out", str(tmp_path / "mean")])
    assert result.exit_code == 0, result.output
    assert "combined the 20 of 60 questions" in result.output  # the test runs answered 20
    records = [json.loads(line) for line in (tmp_path / "mean" / "predictions.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == [q.id for q in questions[40:]]
    for record, q in zip(records, synthetic[40:]):
        expected = (q.readers["good"] + q.readers["noise"]) / 2
        assert np.allclose([record["probabilities"][letter] for letter in LETTERS], expected)
        assert set(record["readers"]) == {"cascade", "encoder"} and not record["calibrated"]
        assert record["prediction"] == " ".join(LETTERS[i] for i in np.argsort(-expected, kind="stable")[:3])
    submission = (tmp_path / "mean" / "submission.csv").read_text().splitlines()
    assert submission[0] == "id,prediction" and len(submission) == 21
    metrics = json.loads((tmp_path / "mean" / "metrics.json").read_text())
    assert metrics["count"] == 20

    fitted = tmp_path / "fitted"  # the folder `ensemble fit --out` makes; combine --ensemble takes it
    result = runner.invoke(
        app,
        [
            "ensemble",
            "fit",
            str(tmp_path / "val" / "cascade"),
            str(tmp_path / "val" / "encoder"),
            "--final",
            "--method",
            "weighted",
            "--out",
            str(fitted),
        ],
    )
    assert result.exit_code == 0, result.output
    weights = json.loads((fitted / "ensemble.json").read_text())["weights"]
    assert weights["cascade"] > weights["encoder"]  # the informative run
    result = runner.invoke(
        app, ["ensemble", "combine", *test_runs, "--ensemble", str(fitted), "--out", str(tmp_path / "fit")]
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (tmp_path / "fit" / "predictions.jsonl").read_text().splitlines()]
    assert all(r["calibrated"] for r in records)
    ensemble = Ensemble.load(fitted)
    scored = scored_from_runs([tmp_path / "test" / "cascade", tmp_path / "test" / "encoder"], questions, final=True)
    assert np.allclose([records[0]["probabilities"][letter] for letter in LETTERS], ensemble.probabilities(scored[0]))

    # a fit on runs named otherwise, a run without final answers, runs with nothing in common: named
    result = runner.invoke(
        app, ["ensemble", "combine", test_runs[0], "--ensemble", str(fitted), "--out", str(tmp_path / "x")]
    )
    assert result.exit_code != 0 and "fitted on runs in folders named cascade, encoder" in result.output
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "predictions.jsonl").write_text(json.dumps({"id": questions[40].id, "readers": {}}) + "\n")
    with pytest.raises(OpenbookError, match="has no final probabilities"):
        scored_from_runs([broken], questions, final=True)
    result = runner.invoke(
        app,
        [
            "ensemble",
            "combine",
            str(tmp_path / "val" / "cascade"),
            test_runs[1],
            "--exam",
            str(exam),
            "--out",
            str(tmp_path / "y"),
        ],
    )
    assert result.exit_code != 0 and "was answered by every one of" in result.output
