"""The prompt readers (letter, yes/no) served from one shared prefix per question (`PromptReaders`,
`read_question`), on the smallest shipped models: the same probabilities with and without sharing,
several readers on one prefix evaluation, and probabilities over the options present only."""

from __future__ import annotations

import numpy as np
import pytest

from openbook.readers import LetterReader, YesNoReader, read_question
from openbook.records import Context, Question
from tests.conftest import CONTEXT, QUESTION, read


@pytest.fixture
def backend(tiny_llm):
    return tiny_llm


@pytest.mark.parametrize("model", ["tiny_llm", "k_quant_llm"])
@pytest.mark.parametrize("make_reader", [YesNoReader, lambda b: LetterReader(b, rotations=3)])
def test_readers_same_probabilities_with_and_without_prefix_sharing(request, model, make_reader):
    backend = request.getfixturevalue(model)
    shared = read(make_reader(backend), share_prefix=True)
    naive = read(make_reader(backend), share_prefix=False)
    assert set(shared.probabilities) == set("ABCDE")
    assert sum(shared.probabilities.values()) == pytest.approx(1.0)
    for letter in "ABCDE":
        assert shared.probabilities[letter] == pytest.approx(naive.probabilities[letter], abs=1e-3)
    assert shared.evidence == ("2:0",)


def test_several_readers_share_one_prefix_evaluation(backend):
    readers = [LetterReader(backend, rotations=1), LetterReader(backend, rotations=3), YesNoReader(backend)]
    together = read_question(readers, backend, QUESTION, CONTEXT)
    alone = [read(reader) for reader in readers]
    assert [o.reader for o in together] == ["letter", "letter-rot3", "yesno"]
    for joint, single in zip(together, alone):
        for letter in "ABCDE":
            assert joint.probabilities[letter] == pytest.approx(single.probabilities[letter], abs=1e-3)


def test_absent_options_get_no_probability(backend):
    question = Question(id="q3", prompt="Is water wet?", options={"A": "Yes", "B": "No", "D": "Sometimes"})
    for reader in (LetterReader(backend, rotations=3), YesNoReader(backend)):
        output = read(reader, question, Context("", (), 0))
        assert set(output.probabilities) == {"A", "B", "D"}
        assert sum(output.probabilities.values()) == pytest.approx(1.0)


def test_readers_give_probabilities_not_nan_when_some_spellings_are_impossible(backend):
    question = Question("q", "p?", {"A": "a", "B": "b", "C": "c"})
    yesno = YesNoReader(backend)
    yes, no = len(yesno.yes_ids), len(yesno.no_ids)
    rows = np.full((3, yes + no), -np.inf)
    rows[1, :yes] = -0.1  # B: only yes possible; A: nothing possible; C: only no possible
    rows[2, yes:] = -0.1
    probabilities = yesno.interpret(question, rows)
    assert np.isfinite(list(probabilities.values())).all() and sum(probabilities.values()) == pytest.approx(1.0)
    assert probabilities["B"] > probabilities["A"] > probabilities["C"]
    letter = LetterReader(backend)
    plan = letter.plan(question)
    impossible = np.full((1, len(plan.targets)), -np.inf)
    assert np.isfinite(list(letter.interpret(question, impossible).values())).all()
