"""The letter reader: cyclic option orders averaged (debiasing, on the smallest shipped model), a
reading over some orders completed to all of them, and the letter prior (batch calibration):
estimated over a pass, divided out of every order's reading, shared by a completion (no model)."""

from __future__ import annotations

import numpy as np
import pytest

import openbook.readers.letter as letter_module
from openbook.readers import LetterReader
from openbook.readers.letter import (
    complete_rotations,
    estimate_slot_prior,
    option_probabilities,
    with_slot_prior,
)
from openbook.records import Question, ReaderOutput
from tests.conftest import QUESTION, biased_reading, order_reading, read

LETTERS5 = ("A", "B", "C", "D", "E")


@pytest.fixture
def backend(tiny_llm):
    return tiny_llm


def test_debiasing_with_all_rotations_is_invariant_to_cyclic_option_order(backend):
    reader = LetterReader(backend, rotations=5)
    texts = list(QUESTION.options.values())
    by_text = []
    for shift in range(5):
        shifted = texts[shift:] + texts[:shift]
        question = Question(id=f"s{shift}", prompt=QUESTION.prompt, options=dict(zip("ABCDE", shifted)))
        output = read(reader, question)
        by_text.append({question.options[letter]: p for letter, p in output.probabilities.items()})
    for other in by_text[1:]:
        for text, probability in by_text[0].items():
            assert other[text] == pytest.approx(probability, abs=1e-3)
    plain = LetterReader(backend, rotations=1)
    first = read(plain, Question("a", QUESTION.prompt, dict(zip("ABCDE", texts))))
    moved = read(plain, Question("b", QUESTION.prompt, dict(zip("ABCDE", texts[1:] + texts[:1]))))
    # without debiasing the order matters (the test above is not vacuous)
    assert max(abs(first.probabilities[l1] - moved.probabilities[l2]) for l1, l2 in zip("ABCDE", "EABCD")) > 1e-3


def test_a_reading_over_some_orders_is_completed_to_the_reading_over_all(backend):
    """Orders 0-2, then 3-4 (`first_rotation`), merged by `complete_rotations`, give what reading all
    five orders at once gives; on four options the completion reads the one order left."""
    from openbook.readers.letter import complete_rotations, orders_read

    four = Question("q4", QUESTION.prompt, {k: v for k, v in QUESTION.options.items() if k != "E"})
    for question in (QUESTION, four):
        n = len(question.options)
        few, rest = (
            read(LetterReader(backend, rotations=3), question),
            read(LetterReader(backend, 5, first_rotation=3), question),
        )
        assert LetterReader(backend, 5, first_rotation=3).orders(n) == [
            [(j + r) % n for j in range(n)] for r in range(3, n)
        ]
        assert orders_read(5, 3, n) == n - 3 and orders_read(5, 3, 3) == 0
        full = complete_rotations(few, rest, 5, question.letters)
        direct = read(LetterReader(backend, rotations=5), question)
        assert full.reader == "letter-rot5" and sum(full.probabilities.values()) == pytest.approx(1.0)
        for letter, probability in direct.probabilities.items():
            assert full.probabilities[letter] == pytest.approx(probability, abs=1e-3)
        assert max(abs(few.probabilities[k] - direct.probabilities[k]) for k in direct.probabilities) > 1e-3
    with pytest.raises(ValueError, match="first_rotation"):
        LetterReader(backend, 3, first_rotation=3)
    three = Question("q3", QUESTION.prompt, {"A": "a", "B": "b", "C": "c"})
    with pytest.raises(ValueError, match="no order left"):
        read(LetterReader(backend, 5, first_rotation=3), three)


def test_the_prior_is_the_slot_preference_apart_from_what_the_options_say(monkeypatch):
    rng = np.random.default_rng(0)
    bias = np.log([0.4, 0.25, 0.15, 0.1, 0.1])
    truth = bias - bias.mean()
    # every answer sits in slot A of the first order: an exam's answer positions must not leak in
    readings = [biased_reading(np.r_[3.0, rng.normal(size=4)], bias, 3) for _ in range(300)]
    prior = estimate_slot_prior(readings)
    assert set(prior) == {5} and prior[5].mean() == pytest.approx(0.0)
    # shrunk towards no preference by a few readings' worth: close to the truth, never beyond it
    assert prior[5] == pytest.approx(truth, rel=0.02) and np.all(np.abs(prior[5]) <= np.abs(truth))
    monkeypatch.setattr(letter_module, "PRIOR_PSEUDO_READINGS", 0.0)
    assert estimate_slot_prior(readings)[5] == pytest.approx(truth, abs=1e-9)
    monkeypatch.undo()
    # the mean slot probability, by contrast, is led by the answers
    mean_probability = np.mean([np.exp(r.logprobs[0]) for r in readings], axis=0)
    assert mean_probability[0] > 0.8
    small = np.log([0.5, 0.3, 0.2])
    three = estimate_slot_prior([biased_reading(np.array([1.0, 0.0, 0.0]), small, 2)] * 50)
    assert three[3] == pytest.approx(small - small.mean(), rel=0.15)  # 100 orders: shrunk more
    assert np.all(np.abs(three[3]) <= np.abs(small - small.mean()))
    # one order has nothing to tell the slot from the option: no prior
    assert estimate_slot_prior([biased_reading(np.zeros(5), bias, 1)] * 10) == {} and estimate_slot_prior([]) == {}


def test_dividing_by_the_prior_removes_a_letter_preference():
    """A reader that puts 0.4 on slot A whatever it shows: calibrated, its evidence decides."""
    bias = np.array([0.4, 0.15, 0.15, 0.15, 0.15])
    evidence = np.array([1.0, 1.0, 1.2, 1.0, 1.0])  # the option shown in slot C is slightly better
    observed = bias * evidence
    prior = {5: np.log(bias)}
    raw = option_probabilities(LETTERS5, order_reading([observed.tolist()]))
    calibrated = option_probabilities(LETTERS5, order_reading([observed.tolist()]), prior)
    assert max(raw, key=raw.get) == "A"
    assert max(calibrated, key=calibrated.get) == "C"
    assert sum(calibrated.values()) == pytest.approx(1.0)
    expected = evidence / evidence.sum()
    assert [calibrated[k] for k in LETTERS5] == pytest.approx(expected.tolist())
    # no prior for this option count: unchanged
    assert option_probabilities(LETTERS5, order_reading([observed.tolist()]), {4: np.zeros(4)}) == pytest.approx(raw)


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
    whole = order_reading(rows)
    # rotation 1 shows option B in slot A: its 0.1 in slot A counts for B
    second = option_probabilities(LETTERS5, order_reading(rows[1:2], first=1))
    assert second["B"] == pytest.approx(0.1) and second["C"] == pytest.approx(0.6) and second["A"] == pytest.approx(0.1)
    prior = {5: np.log([0.3, 0.25, 0.15, 0.15, 0.15])}
    few = ReaderOutput("q", "letter-rot3@triage", {}, orders=order_reading(rows[:3]))
    rest = ReaderOutput("q", "letter-rot5-from3", {}, orders=order_reading(rows[3:], first=3))
    for applied in (None, prior):
        full = complete_rotations(few, rest, 5, LETTERS5, applied)
        assert full.reader == "letter-rot5" and full.orders.first_order == 0 and len(full.orders.logprobs) == 5
        assert full.probabilities == pytest.approx(option_probabilities(LETTERS5, whole, applied))
    with pytest.raises(ValueError, match="do not follow"):
        complete_rotations(few, ReaderOutput("q", "x", {}, orders=order_reading(rows[4:], first=4)), 5, LETTERS5)
    with pytest.raises(ValueError, match="order reading"):
        complete_rotations(few, ReaderOutput("q", "x", {"A": 1.0}), 5, LETTERS5)
    with pytest.raises(ValueError, match="no order reading"):
        with_slot_prior(ReaderOutput("q", "encoder", {"A": 1.0}), LETTERS5, prior)
