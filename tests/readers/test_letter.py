"""The letter prior (batch calibration): estimated over a pass, divided out of every order's reading,
shared by a completion, and applied by the answer path after its first pass (no model needed here)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from openbook.answer.decide import apply_letter_prior, decide
from openbook.readers import letter
from openbook.readers.letter import (
    complete_rotations,
    estimate_slot_prior,
    option_probabilities,
    with_slot_prior,
)
from openbook.records import OrderReading, Question, QuestionResult, ReaderOutput

LETTERS5 = ("A", "B", "C", "D", "E")


def reading(rows: list[list[float]], first: int = 0) -> OrderReading:
    """Slot probabilities -> an order reading (log-probabilities normalised per order)."""
    array = np.array(rows, dtype=float)
    return OrderReading(first, tuple(map(tuple, np.log(array / array.sum(axis=1, keepdims=True)).tolist())))


def simulated(content: np.ndarray, bias: np.ndarray, orders: int, first: int = 0) -> OrderReading:
    """A reading by a model whose letter log-probability is option content + slot preference."""
    n = len(content)
    rows = [[content[(slot + r) % n] + bias[slot] for slot in range(n)] for r in range(first, first + orders)]
    return reading(np.exp(rows).tolist(), first)


def test_the_prior_is_the_slot_preference_apart_from_what_the_options_say(monkeypatch):
    rng = np.random.default_rng(0)
    bias = np.log([0.4, 0.25, 0.15, 0.1, 0.1])
    truth = bias - bias.mean()
    # every answer sits in slot A of the first order: an exam's answer positions must not leak in
    readings = [simulated(np.r_[3.0, rng.normal(size=4)], bias, 3) for _ in range(300)]
    prior = estimate_slot_prior(readings)
    assert set(prior) == {5} and prior[5].mean() == pytest.approx(0.0)
    # shrunk towards no preference by a few readings' worth: close to the truth, never beyond it
    assert prior[5] == pytest.approx(truth, rel=0.02) and np.all(np.abs(prior[5]) <= np.abs(truth))
    monkeypatch.setattr(letter, "PRIOR_PSEUDO_READINGS", 0.0)
    assert estimate_slot_prior(readings)[5] == pytest.approx(truth, abs=1e-9)
    monkeypatch.undo()
    # the mean slot probability, by contrast, is led by the answers
    mean_probability = np.mean([np.exp(r.logprobs[0]) for r in readings], axis=0)
    assert mean_probability[0] > 0.8
    small = np.log([0.5, 0.3, 0.2])
    three = estimate_slot_prior([simulated(np.array([1.0, 0.0, 0.0]), small, 2)] * 50)
    assert three[3] == pytest.approx(small - small.mean(), rel=0.15)  # 100 orders: shrunk more
    assert np.all(np.abs(three[3]) <= np.abs(small - small.mean()))
    # one order has nothing to tell the slot from the option: no prior
    assert estimate_slot_prior([simulated(np.zeros(5), bias, 1)] * 10) == {} and estimate_slot_prior([]) == {}


def test_dividing_by_the_prior_removes_a_letter_preference():
    """A reader that puts 0.4 on slot A whatever it shows: calibrated, its evidence decides."""
    bias = np.array([0.4, 0.15, 0.15, 0.15, 0.15])
    evidence = np.array([1.0, 1.0, 1.2, 1.0, 1.0])  # the option shown in slot C is slightly better
    observed = bias * evidence
    prior = {5: np.log(bias)}
    raw = option_probabilities(LETTERS5, reading([observed.tolist()]))
    calibrated = option_probabilities(LETTERS5, reading([observed.tolist()]), prior)
    assert max(raw, key=raw.get) == "A"
    assert max(calibrated, key=calibrated.get) == "C"
    assert sum(calibrated.values()) == pytest.approx(1.0)
    expected = evidence / evidence.sum()
    assert [calibrated[k] for k in LETTERS5] == pytest.approx(expected.tolist())
    # no prior for this option count: unchanged
    assert option_probabilities(LETTERS5, reading([observed.tolist()]), {4: np.zeros(4)}) == pytest.approx(raw)


def test_orders_are_mapped_back_to_their_options_and_completion_shares_the_prior():
    """Rotation r shows option (s + r) mod n in slot s; a reading completed from two parts equals the
    reading of all its orders, calibrated or not."""
    rows = [
        [0.5, 0.2, 0.1, 0.1, 0.1],
        [0.1, 0.6, 0.1, 0.1, 0.1],
        [0.2, 0.2, 0.2, 0.2, 0.2],
        [0.1, 0.1, 0.1, 0.1, 0.6],
        [0.3, 0.1, 0.2, 0.2, 0.2],
    ]
    whole = reading(rows)
    # rotation 1 shows option B in slot A: its 0.1 in slot A counts for B
    second = option_probabilities(LETTERS5, reading(rows[1:2], first=1))
    assert second["B"] == pytest.approx(0.1) and second["C"] == pytest.approx(0.6) and second["A"] == pytest.approx(0.1)
    prior = {5: np.log([0.3, 0.25, 0.15, 0.15, 0.15])}
    few = ReaderOutput("q", "letter-rot3@triage", {}, orders=reading(rows[:3]))
    rest = ReaderOutput("q", "letter-rot5-from3", {}, orders=reading(rows[3:], first=3))
    for applied in (None, prior):
        full = complete_rotations(few, rest, 5, LETTERS5, applied)
        assert full.reader == "letter-rot5" and full.orders.first_order == 0 and len(full.orders.logprobs) == 5
        assert full.probabilities == pytest.approx(option_probabilities(LETTERS5, whole, applied))
    with pytest.raises(ValueError, match="do not follow"):
        complete_rotations(few, ReaderOutput("q", "x", {}, orders=reading(rows[4:], first=4)), 5, LETTERS5)
    with pytest.raises(ValueError, match="order reading"):
        complete_rotations(few, ReaderOutput("q", "x", {"A": 1.0}), 5, LETTERS5)
    with pytest.raises(ValueError, match="no order reading"):
        with_slot_prior(ReaderOutput("q", "encoder", {"A": 1.0}), LETTERS5, prior)


def test_the_pipeline_calibrates_the_first_pass_per_reader_and_reports_changed_answers():
    """A model that strongly prefers slot A reads every question in 3 orders, where options D and E
    never show in slot A; after the pass, the prior per reader name is divided out, predictions are
    recombined, and `on_result` sees each changed answer again."""
    bias = np.log([0.8, 0.05, 0.05, 0.05, 0.05])
    results = []
    for i in range(40):
        answer = i % 5
        question = Question(f"q{i}", "?", dict(zip(LETTERS5, "abcde")), LETTERS5[answer])
        orders = simulated(np.where(np.arange(5) == answer, 1.0, 0.0), bias, 3)
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


def test_the_log_keeps_order_readings_so_a_resumed_run_can_calibrate_again():
    from openbook.runlog import record_of, result_of

    question = Question("q", "?", dict(zip(LETTERS5, "abcde")), "B")
    orders = reading([[0.5, 0.2, 0.1, 0.1, 0.1], [0.1, 0.6, 0.1, 0.1, 0.1]], first=1)
    outputs = [
        ReaderOutput("q", "letter-rot3@triage", option_probabilities(LETTERS5, orders), orders=orders),
        ReaderOutput("q", "yesno@triage", {k: 0.2 for k in LETTERS5}),
    ]
    record = record_of(QuestionResult(question, decide(question, outputs, [], None), outputs, []))
    assert set(record["orders"]) == {"letter-rot3@triage"}
    back = result_of(json.loads(json.dumps(record)), question)
    assert back.outputs[0].orders.first_order == 1
    assert np.array(back.outputs[0].orders.logprobs) == pytest.approx(np.array(orders.logprobs))
    assert back.outputs[1].orders is None
