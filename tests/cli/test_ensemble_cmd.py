"""`openbook ensemble fit` and `openbook ensemble combine` on synthetic runs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from openbook.cli.main import app
from openbook.ensemble import Ensemble, scored_from_runs
from openbook.errors import OpenbookError
from tests.synthetic_runs import LETTERS, exam_of_synthetic, synthetic_questions, write_final_run, write_run, write_runs

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def flat(output: str) -> str:
    """Help text without its boxes and line breaks: wrapped words joined again."""
    return " ".join(output.replace("│", " ").split())


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


def test_ensemble_out_is_a_folder_that_combine_and_answer_take(tmp_path):
    from openbook.ensemble import Ensemble

    runs = write_runs(tmp_path / "val", tmp_path / "exam.csv")
    config = tmp_path / "ensemble.toml"
    config.write_text(f'[ensemble-fit]\nout = "{tmp_path / "fitted"}"\nfolds = 1\nfinal = true\n')
    result = invoke("ensemble", "fit", *runs, "--config", config)
    assert result.exit_code == 2 and "--folds must be >= 2; got 1" in result.output  # the file's value
    result = invoke("ensemble", "fit", *runs, "--config", config, "--folds", "3", "--method", "weighted")
    assert result.exit_code == 0, result.output  # the command line wins
    fitted = tmp_path / "fitted"
    assert (fitted / "ensemble.json").is_file()
    assert Ensemble.load(fitted) == Ensemble.load(fitted / "ensemble.json")  # answer --ensemble takes either
    assert Ensemble.load(fitted).readers == ["good", "noise"]  # --final from the file
    result = invoke("ensemble", "combine", *runs, "--ensemble", fitted, "--out", tmp_path / "combined")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "combined" / "submission.csv").is_file()
    result = invoke("ensemble", "fit", *runs)
    assert result.exit_code == 2 and "missing --out (or `out` in the [ensemble-fit] table)" in flat(result.output)
    result = invoke("ensemble", "fit", *runs, "--out", tmp_path / "exam.csv")
    assert result.exit_code == 2 and "is a file; --out names the folder" in flat(result.output)
