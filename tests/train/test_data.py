"""Training questions (`train.data`): excluded and repeated prompts left out, a seeded split."""

from __future__ import annotations

from tests.conftest import fact_exam


def test_excluded_and_repeated_prompts_are_not_trained_on():
    from openbook.train.data import split, training_questions

    exam = fact_exam(1)
    kept = training_questions([exam, exam[:2]], exclude=[exam[0]])
    assert [q.prompt for q in kept] == [q.prompt for q in exam[1:]]
    assert kept[0].id == "0:0-1"
    train, validation = split(kept, 0.25, seed=1)
    assert len(validation) == 2 and not {q.id for q in train} & {q.id for q in validation}
    assert split(kept, 0.25, seed=1) == (train, validation)
