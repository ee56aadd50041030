"""The letter prior applied by the answer path after its first pass (`answer.decide.apply_letter_prior`):
fitted per reader over the whole pass, divided out, answers decided again (no model needed here)."""

from __future__ import annotations

import numpy as np
import pytest

from openbook.answer.decide import apply_letter_prior, decide
from openbook.readers.letter import option_probabilities
from openbook.records import Question, QuestionResult, ReaderOutput
from tests.conftest import biased_reading

LETTERS5 = ("A", "B", "C", "D", "E")


def test_the_answer_path_calibrates_the_first_pass_per_reader_and_reports_changed_answers():
    """A model that strongly prefers slot A reads every question in 3 orders, where options D and E
    never show in slot A; after the pass, the prior per reader name is divided out, predictions are
    recombined, and `on_result` sees each changed answer again."""
    bias = np.log([0.8, 0.05, 0.05, 0.05, 0.05])
    results = []
    for i in range(40):
        answer = i % 5
        question = Question(f"q{i}", "?", dict(zip(LETTERS5, "abcde")), LETTERS5[answer])
        orders = biased_reading(np.where(np.arange(5) == answer, 1.0, 0.0), bias, 3)
        outputs = [
            ReaderOutput(question.id, "letter@triage", option_probabilities(LETTERS5, orders), orders=orders),
            ReaderOutput(question.id, "encoder@triage", {k: 0.2 for k in LETTERS5}),
        ]
        results.append(QuestionResult(question, decide(question, outputs, [], None), outputs, []))
    wrong_before = sum(r.prediction.ranking[0] != r.question.answer for r in results)
    assert wrong_before >= 8  # D and E lose to the options shown in slot A
    seen = []
    priors = apply_letter_prior(results, None, True, seen.append)
    assert set(priors) == {"letter@triage"}
    assert priors["letter@triage"][5] == pytest.approx(bias - bias.mean(), rel=0.15)
    assert len(seen) == 40 and all(r.prediction.ranking[0] == r.question.answer for r in results)
    for result in results:
        letter, encoder = result.outputs
        assert letter.probabilities == pytest.approx(
            option_probabilities(LETTERS5, letter.orders, priors["letter@triage"])
        )
        assert encoder.probabilities == {k: 0.2 for k in LETTERS5}  # no order reading: untouched
    # applied again, nothing changes and nothing is reported: the prior works from the raw readings
    again = []
    apply_letter_prior(results, None, True, again.append)
    assert again == []
    # resumed: the readings of questions an earlier run answered for good are fitted on too
    earlier = [("letter@triage", r.outputs[0].orders) for r in results[10:]]
    resumed = apply_letter_prior(results[:10], None, True, None, earlier)
    assert resumed["letter@triage"][5] == pytest.approx(priors["letter@triage"][5])
    alone = apply_letter_prior(results[:10], None, True, None)
    assert alone["letter@triage"][5] != pytest.approx(priors["letter@triage"][5])
