"""A stage's contexts: whole passages, or the sentences that bear on the question."""

from __future__ import annotations

import pytest

from openbook.answer import AnswerOptions, make_plan
from openbook.answer.stages import open_retrieval, retrieve_contexts
from openbook.errors import ConfigError
from openbook.index.build import build_index
from openbook.records import Question

QUESTION = Question(
    "q", "Which organelle produces ATP by cellular respiration?", {"A": "Mitochondrion", "B": "Nucleus"}, "A"
)


def count_words(text: str) -> int:
    return len(text.split())


@pytest.fixture
def index(tmp_path, articles_jsonl):
    folder = tmp_path / "index"
    build_index([articles_jsonl], folder, show_progress=False)
    return folder


@pytest.mark.parametrize("evidence", ["passages", "sentences"])
def test_a_stage_packs_its_context_as_planned(index, evidence):
    plan = make_plan(AnswerOptions(index=index, triage_readers=["none"], context_tokens=40, evidence=evidence))
    context_plan = plan.first.context
    assert context_plan.evidence == evidence
    ((retrieved,),) = retrieve_contexts([QUESTION], open_retrieval(context_plan), context_plan, count_words)
    text = retrieved.context.text
    assert 0 < retrieved.context.tokens <= 40 and retrieved.context.passage_ids[0] == retrieved.hits[0].passage.id
    assert "It produces ATP by cellular respiration." in text
    # whole passages hold every sentence of the best one; sentence evidence only those sharing its words
    assert ("inherited from the mother" in text) is (evidence == "passages")


def test_an_unknown_evidence_kind_is_refused(index):
    with pytest.raises(ConfigError, match="unknown --evidence 'words'"):
        make_plan(AnswerOptions(index=index, evidence="words"))
