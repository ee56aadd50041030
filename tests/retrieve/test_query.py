"""The queries a question makes (`retrieve.query`): joint, per option or both, searched in one batch."""

from __future__ import annotations

import pytest

from openbook.errors import ConfigError
from openbook.records import Question
from openbook.retrieve.query import joint_query, option_queries, queries_for, search_questions
from tests.conftest import hits, ids

QUESTION = Question(id="q", prompt="What do green plants release?", options={"A": "oxygen", "B": "argon", "D": "neon"})


def test_query_forms():
    assert joint_query(QUESTION) == "What do green plants release? oxygen argon neon"
    assert option_queries(QUESTION)[2] == "What do green plants release? neon"
    assert len(queries_for(QUESTION, "both")) == 4
    with pytest.raises(ConfigError, match="unknown query form"):
        queries_for(QUESTION, "all")


def test_per_option_queries_are_searched_in_one_batch_and_fused():
    class Recorder:
        name = "rec"
        calls: list[list[str]] = []

        def search(self, queries, k):
            self.calls.append(list(queries))
            return [hits((q.split()[-1], 1.0), ("shared", 0.5)) for q in queries]

    retriever = Recorder()
    (merged,) = search_questions(retriever, [QUESTION], "per-option", k=5)
    assert len(retriever.calls) == 1 and len(retriever.calls[0]) == 3
    assert ids(merged)[0] == "shared"  # found by every option's query
    assert set(ids(merged)) == {"shared", "oxygen", "argon", "neon"} and merged[0].retriever == "rec"


def test_joint_query_has_prompt_and_all_options():
    question = Question(id="1", prompt="Which gas?", options={"A": "oxygen", "C": "argon"})
    assert joint_query(question) == "Which gas? oxygen argon"
