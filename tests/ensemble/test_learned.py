"""Fitted ensembles (`ensemble.learned`): the informative reader trusted, calibration measured out of
fold, missing readers, a broken ensemble or predictions file named."""

from __future__ import annotations

import numpy as np
import pytest

from openbook.ensemble import Ensemble, ScoredQuestion, fit_ensemble, scored_from_runs
from openbook.ensemble.calibrate import with_temperature
from openbook.errors import InputError, OpenbookError
from openbook.records import Question
from tests.synthetic_runs import LETTERS, synthetic_questions


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
